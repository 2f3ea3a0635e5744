"""Chains built by snapport itself must flatten to exactly the modelled bytes.

For each chain: `disk create` a base, `disk create --parent` the layers,
`disk write` into the leaf after each create, mirroring every write into a
Python bytearray.  Then:
  - `disk info --json`: depth and virtual_size;
  - `disk flatten -o x.raw` equals the model;
  - `disk flatten -o x.vhd` read back by snapport (flatten to raw again) and by
    `qemu-img convert -f vpc -O raw` equals the model;
  - `disk compare` leaf vs raw model (identical), vs a raw copy with one
    changed byte (differ at that offset), vs the previous chain level (first
    difference computed by the model), vs a raw of another size.
"""

import json
import os
import random
import sys

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import vhdgen as G  # noqa: E402

K, M = 1024, 1024 * 1024
BS = 64 * K
EXE = TMP = None


class Chain:
    """A chain being built with snapport, plus the model of the leaf content."""

    def __init__(self, name, size, block_size=BS):
        self.name, self.size, self.block_size = name, size, block_size
        self.layers = []   # file paths, base first
        self.models = []   # bytes of the content as of each layer
        self.model = bytearray(size)
        self.nwrite = 0
        self.touched = []  # per layer: set of sectors written into it

    @property
    def leaf(self):
        return self.layers[-1]

    def add_layer(self):
        path = os.path.join(TMP, "%s.%d.vhd" % (self.name, len(self.layers)))
        args = ["disk", "create", path, "--block-size", self.block_size]
        if self.layers:
            args += ["--parent", self.leaf]   # size defaults to the parent's
        else:
            args += ["--size", self.size]
        T.sp_ok(EXE, *args)
        if self.layers:
            self.models.append(bytes(self.model))  # snapshot of the parent's content
        self.layers.append(path)
        self.touched.append(set())

    def touch(self, offset, n):
        self.touched[-1].update(range(offset // 512, (offset + n + 511) // 512))

    def write(self, offset, data):
        """Write bytes through --from FILE."""
        src = os.path.join(TMP, "src.bin")
        with open(src, "wb") as f:
            f.write(data)
        T.sp_ok(EXE, "disk", "write", self.leaf, "--offset", offset, "--from", src)
        self.model[offset:offset + len(data)] = data
        self.touch(offset, len(data))
        self.nwrite += 1

    def fill(self, offset, byte, length):
        """Write through --pattern BYTE --length N."""
        T.sp_ok(EXE, "disk", "write", self.leaf, "--offset", offset,
                "--pattern", "0x%02x" % byte, "--length", length)
        self.model[offset:offset + length] = bytes([byte]) * length
        self.touch(offset, length)
        self.nwrite += 1

    def finish(self):
        self.models.append(bytes(self.model))


def random_write(chain, rng):
    """One random write of a kind chosen among the interesting shapes."""
    size = chain.size
    kind = rng.choice(["unaligned", "sectors_in_byte", "zeros_over", "cross_block",
                       "tail", "pattern"])
    if kind == "unaligned":          # any byte offset, any length
        off = rng.randrange(size - 1)
        n = rng.randint(1, min(3 * 512 + 77, size - off))
        chain.write(off, rng.randbytes(n))
    elif kind == "sectors_in_byte":  # 1..3 sectors inside one bitmap byte
        s = rng.randrange(size // 512 // 8) * 8 + rng.randrange(5)
        n = min(rng.randint(1, 3) * 512, size - s * 512)
        chain.write(s * 512, rng.randbytes(n))
    elif kind == "zeros_over":       # zeros over data the parent has
        nz = [i for i in range(0, size, 512) if any(chain.model[i:i + 512])]
        off = rng.choice(nz) if nz else 0
        off += rng.randrange(512)
        chain.fill(off, 0, min(rng.randint(1, 1500), size - off))
    elif kind == "cross_block":      # a write straddling a block boundary
        b = rng.randrange(1, (size - 1) // chain.block_size + 1)
        off = b * chain.block_size - rng.randint(1, 1000)
        chain.write(off, rng.randbytes(min(rng.randint(2, 2000), size - off) or 1))
    elif kind == "tail":             # last bytes of the disk (partial last block)
        n = rng.randint(1, 700)
        chain.write(size - n, rng.randbytes(n))
    else:                            # --pattern of a nonzero byte
        off = rng.randrange(size - 1)
        chain.fill(off, rng.randrange(1, 256), min(rng.randint(1, 5000), size - off))


def build(name, size, depth, rng, writes_per_layer=(0, 4), empty_every=0, block_size=BS):
    chain = Chain(name, size, block_size)
    for level in range(depth):
        chain.add_layer()
        if empty_every and level % empty_every == empty_every - 1 and level != 0:
            continue  # empty layer
        for _ in range(rng.randint(*writes_per_layer)):
            random_write(chain, rng)
    chain.finish()
    return chain


def check_info(chain):
    """disk info --json: depth, virtual_size, chain order."""
    info = T.info_json(EXE, chain.leaf)
    n = len(chain.layers)
    T.check(info.get("depth") == n, "%s: info depth %r, expected %d" % (chain.name, info.get("depth"), n))
    T.check(info.get("virtual_size") == chain.size,
            "%s: info virtual_size %r, expected %d" % (chain.name, info.get("virtual_size"), chain.size))
    fmts = [c.get("format") for c in info.get("chain", [])]
    want = ["vhd-differencing"] * (n - 1) + ["vhd-dynamic"]
    T.check(fmts == want, "%s: chain formats %r, expected %r" % (chain.name, fmts, want))
    if len(info.get("chain", [])) == n:
        for entry, path in zip(info["chain"], reversed(chain.layers)):
            T.check(os.path.basename(entry.get("path", "")) == os.path.basename(path),
                    "%s: chain entry %r, expected %s" % (chain.name, entry.get("path"), path))
        for child, parent in zip(info["chain"], info["chain"][1:]):
            T.check(child.get("parent_uuid") == parent.get("uuid") and parent.get("uuid"),
                    "%s: parent_uuid %r != parent uuid %r" % (chain.name, child.get("parent_uuid"), parent.get("uuid")))


def locator_target(child, code, payload):
    """Where a locator points, resolved like blktap (relative to the child)."""
    if code == G.PLAT_MACX:
        p = payload.decode("utf-8")
        p = p[len("file://"):] if p.startswith("file://") else p
    else:
        p = payload.decode("utf-16-le").replace("\\", "/")
    return p, os.path.normpath(os.path.join(os.path.dirname(child), p))


def check_layout(chain):
    """The files snapport wrote follow the contract's "XenServer way":
    creator tap, exact current size, both footers equal and checksummed,
    4 KiB-aligned block data, relative parent locators that resolve, parent
    UUID/name; written sectors marked in the bitmap, clear sectors zero."""
    bs = chain.block_size
    bmb = G.pad((bs // 512 + 7) // 8)
    for i, path in enumerate(chain.layers):
        what = "%s layer %d" % (chain.name, i)
        info = G.parse(path)
        ft, hd = info["footer"], info.get("header", {})
        raw = T.read_file(path)
        T.check(info["footer_ok"] and info.get("header_ok"), what + ": bad checksum")
        T.check(raw[:512] == raw[-512:], what + ": footer copy at 0 differs from the end footer")
        T.check(ft["creator_app"] == b"tap\0", what + ": creator %r" % ft["creator_app"])
        T.check(ft["current_size"] == chain.size, what + ": current size %d" % ft["current_size"])
        T.check(ft["disk_type"] == (G.TYPE_DIFF if i else G.TYPE_DYNAMIC), what + ": disk type %d" % ft["disk_type"])
        T.check(hd.get("block_size") == bs and hd.get("max_table_entries") == -(-chain.size // bs),
                what + ": block size %r, entries %r" % (hd.get("block_size"), hd.get("max_table_entries")))
        if i:
            parent = chain.layers[i - 1]
            T.check(hd["parent_uuid"] == G.parse(parent)["footer"]["uuid"], what + ": parent uuid")
            T.check(hd["parent_name"] == os.path.basename(parent), what + ": parent name %r" % hd["parent_name"])
            T.check(len(info["locators"]) > 0, what + ": no parent locator")
            for code, space, length, off, payload in info["locators"]:
                p, target = locator_target(path, code, payload)
                T.check(not p.startswith("/") and ":" not in p and os.path.exists(target)
                        and os.path.samefile(target, parent),
                        what + ": locator %x %r is not a relative path to the parent" % (code, p))
        ends = []
        for b, e in enumerate(info["bat"]):
            if e == G.BAT_UNUSED:
                continue
            o = e * 512
            T.check((o + bmb) % 4096 == 0, what + ": block %d data at %d not 4 KiB aligned" % (b, o + bmb))
            ends.append((o, o + bmb + bs))
            bm = raw[o:o + bmb]
            for k in range(bs // 512):
                s = b * (bs // 512) + k
                if s * 512 >= chain.size:
                    break
                d = raw[o + bmb + k * 512:o + bmb + (k + 1) * 512]
                if not G.get_bit(bm, k):
                    T.check(not any(d), what + ": sector %d has data but its bitmap bit is clear" % s)
                    T.check(s not in chain.touched[i] or i == 0,
                            what + ": written sector %d not marked in the bitmap" % s)
        for (a0, a1), (b0, b1) in zip(sorted(ends), sorted(ends)[1:]):
            T.check(a1 <= b0, what + ": blocks at %d and %d overlap" % (a0, b0))
        T.check(not ends or max(e for _, e in ends) <= len(raw) - 512, what + ": block past the footer")
        for s in chain.touched[i]:
            b = s // (bs // 512)
            T.check(info["bat"][b] != G.BAT_UNUSED or i == 0,
                    what + ": written sector %d but block %d unallocated" % (s, b))


def check_allocated(chain):
    """info --json allocated: per layer its allocated blocks, top = union;
    whole blocks, the last one counted up to the virtual size."""
    info = T.info_json(EXE, chain.leaf, fatal_errors=False)
    union = set()

    def nbytes(blocks):
        return sum(min(chain.block_size, chain.size - b * chain.block_size) for b in blocks)
    for entry, path in zip(info.get("chain", []), reversed(chain.layers)):
        blocks = {b for b, e in enumerate(G.parse(path)["bat"]) if e != G.BAT_UNUSED}
        union |= blocks
        T.check(entry.get("allocated") == nbytes(blocks),
                "%s: allocated of %s is %r, its BAT has %d blocks" % (
                    chain.name, path, entry.get("allocated"), len(blocks)))
    T.check(info.get("allocated") == nbytes(union),
            "%s: top allocated %r, union of BATs is %d blocks" % (chain.name, info.get("allocated"), len(union)))


def check_flatten(chain):
    """flatten to raw and to vhd; read the vhd back two ways."""
    model = bytes(chain.model)
    raw = os.path.join(TMP, chain.name + ".flat.raw")
    T.sp_ok(EXE, "disk", "flatten", chain.leaf, "-o", raw)
    T.same_bytes(T.read_file(raw), model, "%s: flatten to raw" % chain.name)

    vhd = os.path.join(TMP, chain.name + ".flat.vhd")
    T.sp_ok(EXE, "disk", "flatten", chain.leaf, "-o", vhd)
    info = T.info_json(EXE, vhd)
    T.check(info.get("format") == "vhd-dynamic" and info.get("depth") == 1,
            "%s: flattened vhd info format=%r depth=%r" % (chain.name, info.get("format"), info.get("depth")))
    raw2 = os.path.join(TMP, chain.name + ".flat2.raw")
    T.sp_ok(EXE, "disk", "flatten", vhd, "-o", raw2)
    T.same_bytes(T.read_file(raw2), model, "%s: flatten of flattened vhd" % chain.name)
    q = T.qemu_to_raw(vhd, os.path.join(TMP, chain.name + ".qemu.raw"))
    if q is not None:
        T.same_bytes(q, model, "%s: qemu-img convert of flattened vhd" % chain.name)
    for p in (raw, raw2, vhd, os.path.join(TMP, chain.name + ".qemu.raw")):
        if os.path.exists(p):
            os.unlink(p)


def expect_compare(a, b, rc, line, what):
    r = T.sp(EXE, "disk", "compare", a, b)
    T.check(r.rc == rc and r.out.strip() == line,
            "%s: expected rc=%d %r, got %s" % (what, rc, line, r.describe()))


def check_compare(chain, rng):
    """disk compare exit codes and first-difference offsets."""
    model = bytes(chain.model)
    ref = os.path.join(TMP, chain.name + ".model.raw")
    with open(ref, "wb") as f:
        f.write(model)
    expect_compare(chain.leaf, ref, 0, "identical", "%s: compare leaf vs model" % chain.name)
    # one changed byte at a known offset
    off = rng.randrange(chain.size)
    changed = bytearray(model)
    changed[off] ^= 0x5A
    with open(ref, "wb") as f:
        f.write(changed)
    expect_compare(chain.leaf, ref, 1, "differ at offset %d" % off,
                   "%s: compare vs model with byte %d changed" % (chain.name, off))
    # leaf vs its parent: first difference from the model
    if len(chain.layers) > 1:
        d = T.first_diff(chain.models[-1], chain.models[-2])
        line = "identical" if d is None else "differ at offset %d" % d
        expect_compare(chain.leaf, chain.layers[-2], 0 if d is None else 1, line,
                       "%s: compare leaf vs parent" % chain.name)
    # different sizes
    with open(ref, "wb") as f:
        f.write(model + b"\0" * 512)
    expect_compare(chain.leaf, ref, 1, "sizes differ: %d vs %d" % (chain.size, chain.size + 512),
                   "%s: compare vs longer raw" % chain.name)
    os.unlink(ref)


def check_chain(chain, rng):
    check_layout(chain)
    check_allocated(chain)
    r = T.sp(EXE, "disk", "check", chain.leaf)
    T.check(r.rc == 0 and r.out.strip().endswith(": ok"), "%s: disk check: %s" % (chain.name, r.describe()))
    check_info(chain)
    check_flatten(chain)
    check_compare(chain, rng)


# Case: a write past the virtual size fails with exit 3 and changes nothing.
def case_write_past_end(rng):
    chain = build("pastend", 512 * K + 1536, 2, rng, (2, 3))
    r = T.sp(EXE, "disk", "write", chain.leaf, "--offset", chain.size - 10,
             "--pattern", "0x77", "--length", 20)
    T.check(r.rc == 3, "write past end: expected exit 3, got " + r.describe())
    T.check(r.err.startswith("snapport: "), "write past end: stderr %r" % r.err)
    r = T.sp(EXE, "disk", "write", chain.leaf, "--offset", chain.size,
             "--pattern", "0x77", "--length", 1)
    T.check(r.rc == 3, "write at end: expected exit 3, got " + r.describe())
    check_flatten(chain)


# Case: a hand-placed chain covering every write shape deterministically.
def case_shapes():
    size = 5 * BS + 3 * 512          # not a multiple of the block size
    c = Chain("shapes", size)
    c.add_layer()
    c.fill(0, 0xA1, 2 * BS + 4096)              # base: two full blocks and a bit
    c.write(3 * BS + 100, bytes(range(256)) * 9)  # unaligned
    c.fill(size - 1536, 0xEE, 1536)             # the partial last block
    c.add_layer()
    c.fill(512 * 3, 0, 512 * 2)                 # zeros over parent, sectors 3-4 of bitmap byte 0
    c.fill(BS + 7 * 512 + 1, 0xB2, 10)          # 10 bytes inside one sector (copy-up)
    c.fill(BS - 300, 0xC3, 600)                 # straddles blocks 0/1
    c.add_layer()                               # empty layer
    c.add_layer()
    c.fill(0, 0, 1)                             # single zero byte at 0
    c.fill(size - 1, 0x01, 1)                   # very last byte
    c.write(2 * BS + 4000, b"\x00" * 200)       # zeros across parent-data edge
    c.fill(4 * BS + 511, 0xD4, 2)               # two bytes across a sector boundary, unallocated below
    c.finish()
    return c


# Case: CLI forms: --json after the command words, compare --json, --format
# for an output whose extension names no format (.img, .disk) and refused
# when the extension names another, writes into a raw file, raw vs raw.
def case_cli_forms(rng):
    c = build("forms", 1 * M, 2, rng, (3, 5))
    model = bytes(c.model)
    r = T.sp(EXE, "disk", "info", c.leaf, "--json")
    T.check(r.rc == 0 and '"depth"' in r.out, "--json after the command words: " + r.describe())
    out_vhd = os.path.join(TMP, "forms.img")          # no .vhd extension
    T.sp_ok(EXE, "disk", "flatten", c.leaf, "-o", out_vhd, "--format", "vhd")
    T.check(T.read_file(out_vhd)[-512:-504] == b"conectix", "--format vhd did not write a VHD")
    T.check(T.info_json(EXE, out_vhd).get("format") == "vhd-dynamic", "--format vhd: info format")
    bad = os.path.join(TMP, "forms.raw.vhd")          # .vhd name, raw format: contradicts itself
    r = T.sp(EXE, "disk", "flatten", c.leaf, "-o", bad, "--format", "raw")
    T.check(r.rc == 2 and "does not match the extension .vhd" in r.err and not os.path.exists(bad),
            "--format raw to a .vhd name: expected exit 2, nothing written: " + r.describe())
    out_raw = os.path.join(TMP, "forms.disk")         # an extension no format has, raw format
    T.sp_ok(EXE, "disk", "flatten", c.leaf, "-o", out_raw, "--format", "raw")
    T.same_bytes(T.read_file(out_raw), model, "--format raw to a .disk name")
    # write into a raw file, then compare raw vs raw and raw vs chain
    off = 123457
    T.sp_ok(EXE, "disk", "write", out_raw, "--offset", off, "--pattern", "0xfe", "--length", 3)
    changed = bytearray(model)
    changed[off:off + 3] = b"\xfe" * 3
    T.same_bytes(T.read_file(out_raw), bytes(changed), "disk write into a raw file")
    first = T.first_diff(bytes(changed), model)
    expect_compare(out_raw, c.leaf, 1, "differ at offset %d" % first, "compare raw vs chain")
    r = T.sp(EXE, "--json", "disk", "compare", c.leaf, out_raw)
    try:
        j = json.loads(r.out)
    except ValueError:
        j = {}
    want = {"identical": False, "first_difference": first, "size_a": c.size, "size_b": c.size, "exit": 1}
    T.check(r.rc == 1 and {k: j.get(k) for k in want} == want, "compare --json: " + r.describe())
    r = T.sp(EXE, "--json", "disk", "compare", c.leaf, out_vhd)
    T.check(r.rc == 0 and '"identical":true' in r.out.replace(" ", ""), "compare --json identical: " + r.describe())


# Case: parents in other directories (sub/ and ../), a file name with a
# space and non-ASCII letters, a child larger than its parent (a resized
# VDI: what lies past the parent's end reads as zeros), and the leaf opened
# from another working directory.
def case_dirs_and_resize():
    d = os.path.join(TMP, "dirs")
    os.makedirs(os.path.join(d, "sub"))
    os.makedirs(os.path.join(d, "other"))
    base = os.path.join(d, "sub", "base.vhd")
    mid = os.path.join(d, "other", "mid.vhd")
    leaf = os.path.join(d, "other", "gro\u00df \u00e9t\u00e9.vhd")
    small, big = 1 * M, 2 * M + 512
    model = bytearray(big)
    T.sp_ok(EXE, "disk", "create", base, "--size", small, "--block-size", "64K")
    T.sp_ok(EXE, "disk", "write", base, "--offset", 0, "--pattern", "0x11", "--length", small)
    model[0:small] = b"\x11" * small
    T.sp_ok(EXE, "disk", "create", mid, "--parent", base, "--block-size", "64K")
    T.sp_ok(EXE, "disk", "write", mid, "--offset", 4096 + 3, "--pattern", "0", "--length", 700)
    model[4099:4799] = bytes(700)
    T.sp_ok(EXE, "disk", "create", leaf, "--parent", mid, "--size", big, "--block-size", "64K")
    T.sp_ok(EXE, "disk", "write", leaf, "--offset", small - 100, "--pattern", "0x22", "--length", 300)
    model[small - 100:small + 200] = b"\x22" * 300
    T.sp_ok(EXE, "disk", "write", leaf, "--offset", big - 1, "--pattern", "0x33", "--length", 1)
    model[big - 1] = 0x33
    info = T.info_json(EXE, leaf)
    T.check(info.get("virtual_size") == big and info.get("depth") == 3,
            "dirs: info of the resized leaf: size %r depth %r" % (info.get("virtual_size"), info.get("depth")))
    out = os.path.join(TMP, "dirs.raw")
    r = T.sp(EXE, "disk", "flatten", os.path.relpath(leaf, "/"), "-o", out, cwd="/")
    if T.check(r.rc == 0, "dirs: flatten from cwd=/: " + r.describe()):
        T.same_bytes(T.read_file(out), bytes(model), "dirs: flatten of the resized chain across directories")


def main():
    global EXE, TMP
    EXE, TMP = T.setup()
    T.need_tool("qemu-img")
    rng = random.Random(20240611)

    chains = [case_shapes()]
    # fixed depths: 1, 2, 3, 7, 30 (30 = the XenServer chain limit)
    chains.append(build("d1", 1 * M + 1536, 1, rng, (3, 6)))
    chains.append(build("d2", 2 * M + 64 * K + 512, 2, rng, (3, 6)))
    chains.append(build("d3", 1 * M + 3584, 3, rng, (2, 5), empty_every=2))
    chains.append(build("d7", 2 * M - 512, 7, rng, (1, 4), empty_every=3))
    chains.append(build("d30", 1 * M + 2560, 30, rng, (1, 4), empty_every=5))
    # default block size (2 MiB): the disk is smaller than two blocks
    chains.append(build("defbs", 3 * M + 512, 2, rng, (3, 5), block_size=2 * M))
    # randomised, seed-fixed
    for seed in range(1, 9):
        r = random.Random(seed)
        depth = r.randint(2, 12)
        size = r.randint(8, 48) * 32 * K + r.randrange(0, 128) * 512
        chains.append(build("rnd%d" % seed, size, depth, r, (1, 8), empty_every=r.choice([0, 2, 4])))

    for c in chains:
        print("chain %s: depth %d, size %d, %d writes" % (c.name, len(c.layers), c.size, c.nwrite))
        check_chain(c, rng)

    # raw flatten output is sparse: a mostly empty 16 MiB disk
    c = Chain("sparse", 16 * M)
    c.add_layer()
    c.fill(5 * M, 0x42, 4096)
    c.finish()
    raw = os.path.join(TMP, "sparse.raw")
    T.sp_ok(EXE, "disk", "flatten", c.leaf, "-o", raw)
    T.same_bytes(T.read_file(raw), bytes(c.model), "sparse: flatten to raw")
    st = os.stat(raw)
    T.check(st.st_blocks * 512 < 4 * M, "sparse: flatten raw uses %d bytes on disk for 4 KiB of data"
            % (st.st_blocks * 512))

    case_write_past_end(rng)
    case_cli_forms(rng)
    case_dirs_and_resize()
    T.finish("e2e.test_chain_exact")


if __name__ == "__main__":
    main()
