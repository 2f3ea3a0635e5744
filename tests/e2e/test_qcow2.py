"""qcow2 images made by qemu-img / qemu-io, read by snapport.

Sound images (v2, v3, 512-byte and 4 KiB clusters, backing qcow2 and raw
backing files with clusters overwritten and zeroed, a backing file smaller
than the image, a three-file chain, zlib and zstd compressed): for each,
  - `disk flatten X -o out.raw` is byte-identical to `qemu-img convert -O raw`
    (the reference, computed by qemu, never by snapport);
  - `disk info --json`: driver qcow2, depth = files in the chain, virtual size;
  - `disk check` exits 0, `disk compare X ref.raw` says identical;
  - `disk flatten` to .vhd and .vmdk reads back equal in `qemu-img compare`.
`disk flatten X -o y.qcow2` and `--format qcow2` exit 2 (snapport does not
write qcow2), no output left.

Hostile images (bytes patched here): `disk info` and `disk flatten` exit 3
with one stderr line naming the file, leave no output file, never crash or
hang; `disk check` exits 1 (damaged) or 3 (unsupported).
"""

import os
import random
import struct
import sys

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
from vhdgen import corrupt_bytes as patch  # noqa: E402  (bytes at an offset, in place)

K, M = 1024, 1024 * 1024
SIZE = 4 * M + 1536          # not a whole number of clusters
EXE = TMP = None
RNG = random.Random(4242)


def p(name):
    return os.path.join(TMP, name)


def peer(*args, cwd=None):
    r = T.run([str(a) for a in args], timeout=60, cwd=cwd)
    if r.rc != 0:
        T.fatal("peer command failed: " + r.describe())
    return r


def make_source(path, size=SIZE):
    """Random data, holes and zeros written as data, at odd offsets."""
    b = bytearray(size)
    off = 0
    while off < size:
        n = RNG.randint(1, 300 * K)
        kind = RNG.random()
        if kind < 0.45:
            b[off:off + n] = RNG.randbytes(min(n, size - off))
        elif kind < 0.6:
            b[off:off + n] = bytes([RNG.randint(1, 255)]) * min(n, size - off)
        off += n + RNG.randint(0, 200 * K)
    T.write_file(path, bytes(b))
    return path


def reference(img):
    """qemu-img's raw of img."""
    out = img + ".ref.raw"
    if not os.path.exists(out):
        peer("qemu-img", "convert", "-O", "raw", img, out)
    return out


def verify(name, img, depth):
    ref = reference(img)
    want = T.read_file(ref)
    info = T.info_json(EXE, img, fatal_errors=False)
    T.check(info.get("driver") == "qcow2", "%s: driver %r" % (name, info.get("driver")))
    T.check(info.get("depth") == depth, "%s: depth %r, expected %d" % (name, info.get("depth"), depth))
    T.check(info.get("virtual_size") == len(want), "%s: virtual_size %r, expected %d"
            % (name, info.get("virtual_size"), len(want)))
    r = T.sp(EXE, "disk", "check", img)
    T.check(r.rc == 0, "%s: disk check: %s" % (name, r.describe()))
    r = T.sp(EXE, "disk", "compare", img, ref)
    T.check(r.rc == 0 and "identical" in r.out, "%s: disk compare with qemu's raw: %s" % (name, r.describe()))
    out = p(name + ".out.raw")
    r = T.sp(EXE, "disk", "flatten", img, "-o", out)
    if T.check(r.rc == 0, "%s: flatten to raw: %s" % (name, r.describe())):
        T.same_bytes(T.read_file(out), want, "%s: flatten to raw" % name)
        os.unlink(out)
    for fmt, qfmt in (("vhd", "vpc"), ("vmdk", "vmdk")):
        out = p(name + ".out." + fmt)
        r = T.sp(EXE, "disk", "flatten", img, "-o", out)
        if T.check(r.rc == 0, "%s: flatten to %s: %s" % (name, fmt, r.describe())):
            r = T.run(["qemu-img", "compare", "-f", qfmt, "-F", "raw", out, ref], timeout=60)
            T.check(r.rc == 0, "%s: qemu-img compare of our %s: %s" % (name, fmt, r.describe()))
            os.unlink(out)


def qemu_io(img, *cmds):
    args = ["qemu-io", "-f", "qcow2"]
    for c in cmds:
        args += ["-c", c]
    peer(*(args + [img]))


# --- sound images ----------------------------------------------------------

def sound_cases(src):
    peer("qemu-img", "convert", "-O", "qcow2", "-o", "compat=0.10", src, p("v2.qcow2"))
    verify("v2", p("v2.qcow2"), 1)
    peer("qemu-img", "convert", "-O", "qcow2", src, p("v3.qcow2"))
    verify("v3", p("v3.qcow2"), 1)
    # small clusters: many L2 tables, runs across tables
    peer("qemu-img", "convert", "-O", "qcow2", "-o", "cluster_size=512", src, p("v3_512.qcow2"))
    verify("v3_512", p("v3_512.qcow2"), 1)
    peer("qemu-img", "convert", "-O", "qcow2", "-o", "cluster_size=4096", src, p("v3_4k.qcow2"))
    verify("v3_4k", p("v3_4k.qcow2"), 1)
    peer("qemu-img", "convert", "-c", "-O", "qcow2", src, p("zlib.qcow2"))
    verify("zlib", p("zlib.qcow2"), 1)
    peer("qemu-img", "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", src, p("zstd.qcow2"))
    verify("zstd", p("zstd.qcow2"), 1)
    peer("qemu-img", "convert", "-c", "-O", "qcow2", "-o", "cluster_size=4096", src, p("zlib_4k.qcow2"))
    verify("zlib_4k", p("zlib_4k.qcow2"), 1)


def edits(img):
    """Overwrites (whole and partial clusters) and zeroed clusters."""
    qemu_io(img, "write -P 0xab 64k 128k", "write -P 0x3c 1000k 5k", "write -z 1M 256k",
            "write -z 2M 64k", "write -P 0x11 3M 4k", "write -z 4M 1536")


def chain_cases(src):
    d = p("chain")
    os.makedirs(d)
    # qcow2 over a qcow2 base
    peer("qemu-img", "convert", "-O", "qcow2", src, os.path.join(d, "base.qcow2"))
    top = os.path.join(d, "top.qcow2")
    peer("qemu-img", "create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2", cwd=d)
    edits(top)
    verify("over_qcow2", top, 2)
    # three files: a compressed qcow2 over that
    peer("qemu-img", "create", "-f", "qcow2", "-b", "top.qcow2", "-F", "qcow2", "leaf.qcow2", cwd=d)
    qemu_io(os.path.join(d, "leaf.qcow2"), "write -c -P 0x77 2M 64k", "write -z 0 64k")
    verify("three_deep", os.path.join(d, "leaf.qcow2"), 3)
    # qcow2 over a raw file named relatively
    peer("cp", src, os.path.join(d, "base.raw"))
    over_raw = os.path.join(d, "over_raw.qcow2")
    peer("qemu-img", "create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "over_raw.qcow2", cwd=d)
    edits(over_raw)
    verify("over_raw", over_raw, 2)
    # a backing file smaller than the image: zeros past its end
    T.write_file(os.path.join(d, "small.raw"), RNG.randbytes(M + 512))
    peer("qemu-img", "create", "-f", "qcow2", "-b", "small.raw", "-F", "raw", "big.qcow2", "3M", cwd=d)
    qemu_io(os.path.join(d, "big.qcow2"), "write -P 0x5a 960k 128k")
    verify("small_backing", os.path.join(d, "big.qcow2"), 2)


def refuses_writing(src):
    for out, extra in ((p("y.qcow2"), []), (p("y.QCOW2"), []), (p("y"), ["--format", "qcow2"])):
        r = T.sp(EXE, "disk", "flatten", src, "-o", out, *extra)
        T.check(r.rc == 2 and "does not write qcow2" in r.err and not os.path.exists(out),
                "flatten -o %s %s: expected exit 2 'does not write qcow2': %s" % (out, extra, r.describe()))


# --- hostile images ----------------------------------------------------------

def be64(path, off):
    with open(path, "rb") as f:
        f.seek(off)
        return struct.unpack(">Q", f.read(8))[0]


def first_l2_entry(path, want_compressed):
    """File offset of the first allocated L2 entry (compressed or not)."""
    cbits = struct.unpack(">I", T.read_file(path)[20:24])[0]
    l1 = be64(path, 40)
    for i in range(struct.unpack(">I", T.read_file(path)[36:40])[0]):
        t = be64(path, l1 + 8 * i) & 0x00fffffffffffe00
        for j in range(t and (1 << cbits) // 8):
            e = be64(path, t + 8 * j)
            if e and bool(e & (1 << 62)) == want_compressed and (want_compressed or e & 0x00fffffffffffe00):
                return t + 8 * j, e, cbits
    T.fatal("%s: no allocated L2 entry" % path)


def hostile(name, base, mutate, check_rc=1, info_fails=True):
    d = p("bad_" + name)
    os.makedirs(d)
    img = os.path.join(d, "bad.qcow2")
    peer("cp", base, img)
    mutate(img)
    names = ["bad.qcow2"]
    cmds = [("disk", "info", img), ("disk", "flatten", img, "-o", os.path.join(d, "out.raw")),
            ("disk", "flatten", img, "-o", os.path.join(d, "out.vhd"))]
    for args in cmds:
        if args[1] == "info" and not info_fails:
            continue
        r = T.sp(EXE, *args)
        T.check(not r.crashed(), "%s: %s crashed or hung: %s" % (name, args[1], r.describe()))
        lines = r.err.splitlines()
        T.check(r.rc == 3 and len(lines) == 1 and lines[0].startswith("snapport: ")
                and any(n in lines[0] for n in names),
                "%s: %s: expected exit 3 and one line naming the file: %s" % (name, args[1], r.describe()))
        T.named_once(r.err.strip(), "%s: %s" % (name, args[1]))
    left = sorted(f for f in os.listdir(d) if f.startswith("out") or ".snapport-" in f)
    T.check(not left, "%s: output left behind: %s" % (name, left))
    r = T.sp(EXE, "disk", "check", img)
    T.check(not r.crashed() and r.rc == check_rc, "%s: disk check exit %d expected: %s"
            % (name, check_rc, r.describe()))


def hostile_cases(src):
    good = p("v3.qcow2")
    comp = p("zlib.qcow2")
    hostile("version1", good, lambda f: patch(f, 4, struct.pack(">I", 1)), check_rc=3)
    hostile("version9", good, lambda f: patch(f, 4, struct.pack(">I", 9)), check_rc=3)
    hostile("encrypted", good, lambda f: patch(f, 32, struct.pack(">I", 1)), check_rc=3)
    hostile("cluster_bits_30", good, lambda f: patch(f, 20, struct.pack(">I", 30)))
    hostile("cluster_bits_8", good, lambda f: patch(f, 20, struct.pack(">I", 8)))
    hostile("l1_past_eof", good, lambda f: patch(f, 40, struct.pack(">Q", 1 << 40)))
    hostile("l1_unaligned", good, lambda f: patch(f, 40, struct.pack(">Q", 65536 + 8)))
    hostile("l1_too_small", good, lambda f: patch(f, 36, struct.pack(">I", 0)))
    hostile("size_huge", good, lambda f: patch(f, 24, struct.pack(">Q", 1 << 63)))
    hostile("header_length", good, lambda f: patch(f, 100, struct.pack(">I", 0xfffffff0)))
    hostile("header_truncated", good, lambda f: os.truncate(f, 90))
    hostile("unknown_incompat", good, lambda f: patch(f, 72, struct.pack(">Q", 1 << 5)), check_rc=3)
    hostile("corrupt_bit", good, lambda f: patch(f, 72, struct.pack(">Q", 2)))
    hostile("data_file_bit", good, lambda f: patch(f, 72, struct.pack(">Q", 4)), check_rc=3)
    hostile("ext_too_long", good, lambda f: patch(f, 104 + 8, struct.pack(">II", 0xE2792ACA, 1 << 30)))

    def l2_past_eof(f):
        at, e, _ = first_l2_entry(f, False)
        patch(f, at, struct.pack(">Q", (e & ~0x00fffffffffffe00) | (1 << 45)))
    hostile("l2_entry_past_eof", good, l2_past_eof)

    def l1_entry_past_eof(f):
        patch(f, be64(f, 40), struct.pack(">Q", (1 << 63) | (1 << 44)))
    hostile("l1_entry_past_eof", good, l1_entry_past_eof)

    def comp_past_eof(f):
        at, e, cbits = first_l2_entry(f, True)
        x = 62 - (cbits - 8)
        patch(f, at, struct.pack(">Q", (e & ~((1 << x) - 1)) | (1 << 40)))
    hostile("compressed_past_eof", comp, comp_past_eof)

    def corrupt_deflate(f):
        at, e, cbits = first_l2_entry(f, True)
        host = e & ((1 << (62 - (cbits - 8))) - 1)
        patch(f, host, b"\xff" * 64)
    # info reads no data: only flatten and check meet the damage
    hostile("corrupt_deflate", comp, corrupt_deflate, info_fails=False)

    def zstd_garbage(f):
        at, e, cbits = first_l2_entry(f, True)
        patch(f, e & ((1 << (62 - (cbits - 8))) - 1), b"\x00" * 64)
    hostile("corrupt_zstd", p("zstd.qcow2"), zstd_garbage, info_fails=False)

    # a backing file that is itself
    def self_loop(f):
        data = T.read_file(f)
        patch(f, data.index(b"base.qcow2"), b"bad.qcow2")
        patch(f, 16, struct.pack(">I", len(b"bad.qcow2")))
    hostile("backing_loop", p("chain/top.qcow2"), self_loop)

    def backing_missing(f):
        data = T.read_file(f)
        patch(f, data.index(b"base.qcow2"), b"gone.qcow2")
    hostile("backing_missing", p("chain/top.qcow2"), backing_missing)

    def backing_long(f):
        patch(f, 16, struct.pack(">I", 5000))
    hostile("backing_name_long", p("chain/top.qcow2"), backing_long)

    def backing_format_bad(f):
        data = T.read_file(f)
        patch(f, data.index(b"qcow2", 104), b"qcow7")
    hostile("backing_format_unknown", p("chain/top.qcow2"), backing_format_bad, check_rc=3)


def extended_l2_refused(src):
    img = p("extl2.qcow2")
    peer("qemu-img", "convert", "-O", "qcow2", "-o", "extended_l2=on", src, img)
    r = T.sp(EXE, "disk", "info", img)
    T.check(r.rc == 3 and "subclusters" in r.err, "extended L2: expected a clear refusal: %s" % r.describe())


def dirty_reads(src):
    img = p("dirty.qcow2")
    peer("cp", p("v3.qcow2"), img)
    patch(img, 72, struct.pack(">Q", 1))
    out = p("dirty.out.raw")
    r = T.sp(EXE, "disk", "flatten", img, "-o", out)
    if T.check(r.rc == 0, "dirty bit: flatten: %s" % r.describe()):
        T.same_bytes(T.read_file(out), T.read_file(reference(p("v3.qcow2"))), "dirty bit: flatten")


def main():
    global EXE, TMP
    EXE, TMP = T.setup()
    T.need_tool("qemu-img")
    T.need_tool("qemu-io")
    src = make_source(p("src.raw"))
    sound_cases(src)
    chain_cases(src)
    refuses_writing(p("v3.qcow2"))
    extended_l2_refused(src)
    dirty_reads(src)
    hostile_cases(src)
    T.finish("e2e.test_qcow2")


if __name__ == "__main__":
    main()
