"""Validate the test-only VHD writer (tests/tools/vhdgen.py) against real peers.

Does not use snapport.  If vhdgen writes something qemu-img, vhdiinfo or
pyvhdi reject or read differently from our model, the fixtures used by the
other tests cannot be trusted, so this must pass first.
"""

import os
import random
import re
import sys

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import vhdgen as G  # noqa: E402

K, M = 1024, 1024 * 1024


def qemu_info_ok(path, size):
    """qemu-img info accepts the file as vpc with the exact virtual size."""
    r = T.run(["qemu-img", "info", "--output=json", "-f", "vpc", path])
    if not T.check(r.rc == 0, "qemu-img info rejects %s: %s" % (path, r.describe())):
        return
    m = re.search(r'"virtual-size":\s*(\d+)', r.out)
    T.check(m and int(m.group(1)) == size,
            "qemu-img info virtual-size of %s: %s, expected %d" % (path, m and m.group(1), size))


def qemu_check_ok(path):
    r = T.run(["qemu-img", "check", "-f", "vpc", path])
    # vpc has no check implementation in some qemu versions: rc 63 = "not supported"
    T.check(r.rc in (0, 63), "qemu-img check %s: %s" % (path, r.describe()))


def vhdiinfo(path):
    r = T.run(["vhdiinfo", path])
    T.check(r.rc == 0, "vhdiinfo rejects %s: %s" % (path, r.describe()))
    return r.out


def vhdiinfo_size(out):
    m = re.search(r"Media size\s*:.*?\((\d+) bytes\)", out)
    return int(m.group(1)) if m else None


# Case: dynamic disk, 64K blocks, size not a multiple of the block size,
# partial bitmaps, blktap 4 KiB alignment on and off.
def case_dynamic(tmp, rng, align4k):
    size = 3 * M + 7 * 512
    img = G.DynamicVhd(size, block_size=64 * K, align4k=align4k)
    model = bytearray(size)
    for _ in range(25):
        s = rng.randrange(size // 512)
        n = rng.randint(1, min(40, size // 512 - s))
        data = T.rand_bytes(rng, n * 512)
        img.write_sectors(s, data)
        model[s * 512:(s + n) * 512] = data
    img.write_sectors(size // 512 - 1, b"\xee" * 512)  # last sector (partial block)
    model[-512:] = b"\xee" * 512
    path = img.save(os.path.join(tmp, "dyn%d.vhd" % align4k))
    if align4k:
        for b, off in img.layout.items():
            T.check((off + 512) % 4096 == 0, "align4k: block %d data at %d" % (b, off + 512))
    T.same_bytes(G.read_content(path), model, "vhdgen reader on %s" % path)
    qemu_info_ok(path, size)
    qemu_check_ok(path)
    raw = T.qemu_to_raw(path, path + ".qemu.raw")
    if raw is not None:
        T.same_bytes(raw, model, "qemu-img convert of %s" % path)
    out = vhdiinfo(path)
    T.check(vhdiinfo_size(out) == size, "vhdiinfo media size of %s: %s" % (path, vhdiinfo_size(out)))
    got = T.pyvhdi_read(path + ".pyvhdi.raw", path)
    if got is not None:
        T.same_bytes(got, model, "pyvhdi read of %s" % path)


# Case: fixed VHD.
def case_fixed(tmp, rng):
    size = 2 * M + 512
    img = G.FixedVhd(size)
    img.write(0, T.rand_bytes(rng, 100 * 512))
    img.write(size - 4096, b"\x5a" * 4096)
    path = img.save(os.path.join(tmp, "fixed.vhd"))
    T.check(G.parse(path)["footer_ok"], "fixed footer checksum")
    raw = T.qemu_to_raw(path, path + ".raw")
    if raw is not None:
        T.same_bytes(raw, bytes(img.data), "qemu-img convert of fixed")
    out = vhdiinfo(path)
    T.check(vhdiinfo_size(out) == size, "vhdiinfo fixed media size %s" % vhdiinfo_size(out))


# Case: 3-deep chain (dynamic + 2 differencing, blktap and XO locators),
# whole-byte bitmaps (libvhdi 20210425 mis-reads partial bitmap bytes).
def case_chain(tmp, rng):
    size = 2 * M
    base = G.DynamicVhd(size, block_size=64 * K)
    model = bytearray(size)

    def w(img, s, n, fill=None):
        data = bytes([fill]) * (n * 512) if fill is not None else T.rand_bytes(rng, n * 512)
        img.write_sectors(s, data)
        model[s * 512:(s + n) * 512] = data

    w(base, 0, 256)
    w(base, 1024, 64)
    bpath = base.save(os.path.join(tmp, "base.vhd"))
    mid = G.DynamicVhd.child_of(bpath, block_size=64 * K, conv="blktap")
    w(mid, 8, 16)
    w(mid, 1040, 8, fill=0)  # zeros shadowing parent data
    w(mid, 3000, 24)
    mpath = mid.save(os.path.join(tmp, "mid.vhd"))
    leaf = G.DynamicVhd.child_of(mpath, block_size=64 * K, conv="xo")
    w(leaf, 16, 8)
    w(leaf, 3008, 8)
    lpath = leaf.save(os.path.join(tmp, "leaf.vhd"))

    # our own model of the chain from the in-memory layers
    m2 = bytearray(size)
    for layer in (base, mid, leaf):
        layer.apply_to(m2)
    T.same_bytes(bytes(m2), bytes(model), "vhdgen apply_to model")
    c = G.read_content(bpath)
    c = G.read_content(mpath, c)
    c = G.read_content(lpath, c)
    T.same_bytes(c, model, "vhdgen reader on chain")

    out = vhdiinfo(lpath)
    T.check("Differential" in out, "vhdiinfo does not see leaf.vhd as differential:\n" + out)
    T.check("mid.vhd" in out, "vhdiinfo parent filename is not mid.vhd:\n" + out)
    got = T.pyvhdi_read(lpath + ".raw", lpath, mpath, bpath)
    if got is not None:
        T.same_bytes(got, model, "pyvhdi read of 3-deep vhdgen chain")
    # locators as written
    locs = G.parse(mpath)["locators"]
    T.check([l[0] for l in locs] == [G.PLAT_MACX, G.PLAT_W2KU, G.PLAT_W2RU],
            "blktap locator codes %r" % [hex(l[0]) for l in locs])
    T.check(locs[0][4] == b"file://./base.vhd", "MacX payload %r" % locs[0][4])
    T.check(locs[2][4].decode("utf-16-le") == ".\\base.vhd", "W2ru payload %r" % locs[2][4])
    T.check(all(l[1] % 512 == 0 for l in locs), "blktap data space not in bytes")
    xl = G.parse(lpath)["locators"]
    T.check(len(xl) == 1 and xl[0][0] == G.PLAT_W2KU and xl[0][1] == 1,
            "XO locator %r" % xl)


# Case: mutators really change what they say (checksum kept or broken).
def case_mutators(tmp):
    img = G.DynamicVhd(1 * M, block_size=64 * K)
    img.write_sectors(0, b"\x11" * 512)
    p = img.save(os.path.join(tmp, "mut.vhd"))
    G.set_footer_field(p, "hidden", 1)
    i = G.parse(p)
    T.check(i["footer"]["hidden"] == 1 and i["footer_ok"], "set hidden with checksum fix")
    G.set_header_field(p, "block_size", 3 * 4096, fix_checksum=False)
    i = G.parse(p)
    T.check(i["header"]["block_size"] == 12288 and not i["header_ok"], "header mutate w/o checksum")
    G.set_footer_field(p, "cookie", b"conectiy", fix_checksum=False)
    T.check(not G.parse(p)["footer_ok"], "broken footer checksum")
    T.check(G.chs(64 * M) == (963, 8, 17), "CHS of 64 MiB is %r" % (G.chs(64 * M),))


def main():
    _, tmp = T.setup(need_binary=False)
    for tool in ("qemu-img", "vhdiinfo"):
        T.need_tool(tool)
    rng = random.Random(4242)
    case_dynamic(tmp, rng, True)
    case_dynamic(tmp, rng, False)
    case_fixed(tmp, rng)
    case_chain(tmp, rng)
    case_mutators(tmp)
    T.finish("interop.test_vhdgen")


if __name__ == "__main__":
    main()
