"""Chains written by other tools' conventions (via tests/tools/vhdgen.py, not
by snapport) must flatten to exactly the modelled bytes.

Every case builds a chain file by file with vhdgen, mirrors each write into a
bytearray model, then checks `disk info --json` (depth, size), `disk check`
(ok) and `disk flatten -o x.raw` (bytes equal to the model).
"""

import os
import random
import sys

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import vhdgen as G  # noqa: E402

K, M = 1024, 1024 * 1024
EXE = TMP = None
RNG = random.Random(777)


class Model:
    """The expected flattened content, updated alongside the vhdgen layers."""

    def __init__(self, size):
        self.data = bytearray(size)

    def write(self, layer, sector, nsect, fill=None):
        """Random (or fill-byte) data into layer at sector, mirrored here."""
        n = nsect * 512
        data = bytes([fill]) * n if fill is not None else RNG.randbytes(n)
        layer.write_sectors(sector, data)
        self.data[sector * 512:sector * 512 + n] = data

    def shadow_zero(self, layer, sector, nsect):
        """Set bits only: the stored sectors stay zero and hide the parent."""
        layer.set_bits(sector, nsect)
        self.data[sector * 512:(sector + nsect) * 512] = bytes(nsect * 512)


def case_dir(name):
    d = os.path.join(TMP, name)
    os.makedirs(d)
    return d


def verify(name, leaf, model, depth):
    """info depth/size, check ok, flatten == model."""
    info = T.info_json(EXE, leaf, fatal_errors=False)
    T.check(info.get("depth") == depth, "%s: depth %r, expected %d" % (name, info.get("depth"), depth))
    T.check(info.get("virtual_size") == len(model.data),
            "%s: virtual_size %r, expected %d" % (name, info.get("virtual_size"), len(model.data)))
    r = T.sp(EXE, "disk", "check", leaf)
    T.check(r.rc == 0, "%s: disk check of a sound chain: %s" % (name, r.describe()))
    out = os.path.join(TMP, name + ".flat.raw")
    r = T.sp(EXE, "disk", "flatten", leaf, "-o", out)
    if T.check(r.rc == 0, "%s: flatten failed: %s" % (name, r.describe())):
        T.same_bytes(T.read_file(out), bytes(model.data), "%s: flatten" % name)
        os.unlink(out)


def dyn_base(d, size, model, name="base.vhd", **kw):
    """A dynamic base with partial bitmaps (runs not aligned to bitmap bytes)."""
    kw.setdefault("block_size", 64 * K)
    base = G.DynamicVhd(size, **kw)
    model.write(base, 0, 300)         # blocks 0..2, last one partial
    model.write(base, 515, 3)         # inside a bitmap byte
    model.write(base, 1000, 50)
    model.write(base, size // 512 - 5, 5)  # tail of the (partial) last block
    return base.save(os.path.join(d, name))


def diff_layer(model, parent_path, fname, conv, edits, **kw):
    """A differencing child; edits(layer) applies writes via model."""
    kw.setdefault("block_size", 64 * K)
    layer = G.DynamicVhd.child_of(parent_path, conv=conv, **kw)
    edits(layer)
    return layer.save(os.path.join(os.path.dirname(parent_path), fname))


# Case: blktap/XenServer: MacX file://./p.vhd + W2ku + W2ru relative, data
# space in bytes, 4 KiB-aligned blocks, hidden byte set on the parents, a
# child with zeros in set sectors shadowing parent data, partial bitmaps.
def case_blktap():
    d = case_dir("blktap")
    size = 1 * M + 64 * K + 3 * 512
    m = Model(size)
    base = dyn_base(d, size, m, hidden=1)

    def mid_edits(l):
        m.write(l, 2, 3)               # sectors 2-4: part of bitmap byte 0
        m.shadow_zero(l, 512, 8)       # zeros over base data (base has 515-517)
        m.write(l, 140, 200)           # crosses blocks 1/2
        m.write(l, 1700, 1)            # a block the base does not have
    mid = diff_layer(m, base, "mid.vhd", "blktap", mid_edits, hidden=1)

    def leaf_edits(l):
        m.shadow_zero(l, 0, 1)         # first sector -> zeros
        m.write(l, 3, 1, fill=0x33)
        m.shadow_zero(l, 1000, 20)     # zeros over base run 1000..1049
        l.allocate(10)                 # allocated block with an empty bitmap
    leaf = diff_layer(m, mid, "leaf.vhd", "blktap", leaf_edits)
    for p in (mid, leaf):
        codes = [l[0] for l in G.parse(p)["locators"]]
        T.check(codes == [G.PLAT_MACX, G.PLAT_W2KU, G.PLAT_W2RU], "blktap fixture locators %r" % codes)
    verify("blktap", leaf, m, 3)


# Case: Xen Orchestra vhd-lib: a single W2KU locator (relative name, data
# space in sectors), no 4 KiB alignment, blocks laid out in reverse order.
def case_xo():
    d = case_dir("xo")
    size = 2 * M
    m = Model(size)
    base = dyn_base(d, size, m, align4k=False)

    def edits(l):
        m.write(l, 0, 128)             # one full block
        m.write(l, 130, 7)
        m.shadow_zero(l, 256, 40)      # zeros over base data
        m.write(l, 3000, 9)
        l.block_order = sorted(l.blocks, reverse=True)
    leaf = diff_layer(m, base, "leaf.vhd", "xo", edits, align4k=False)
    verify("xo", leaf, m, 2)


# Case: Hyper-V style: unicode name and W2ku hold an absolute Windows path
# that does not exist here; W2ru holds the relative path that works.
def case_hyperv():
    d = case_dir("hyperv")
    size = 1 * M
    m = Model(size)
    base = dyn_base(d, size, m, creator_app=b"win ")
    winpath = "C:\\Users\\Public\\Documents\\Hyper-V\\Virtual Hard Disks\\parent.vhd"
    os.rename(base, os.path.join(d, "parent.vhd"))
    base = os.path.join(d, "parent.vhd")

    def edits(l):
        m.write(l, 17, 30)
        m.shadow_zero(l, 1001, 2)
    leaf = diff_layer(m, base, "child.vhd", G.hyperv_locators(winpath, "parent.vhd"),
                      edits, name=winpath, creator_app=b"win ")
    verify("hyperv", leaf, m, 2)


# Case: a single W2ku locator holding an absolute POSIX path to a parent in
# another directory (blktap resolves locators starting with '/' as absolute).
def case_absolute_posix():
    d = case_dir("abs")
    pd = case_dir("abs_parent_dir")
    size = 1 * M
    m = Model(size)
    base = dyn_base(pd, size, m)

    def edits(l):
        m.write(l, 64, 64)
    leaf = diff_layer(m, base, "child.vhd", [G.loc_w2ku(os.path.abspath(base))], edits)
    os.rename(leaf, os.path.join(d, "child.vhd"))
    verify("absolute_w2ku", os.path.join(d, "child.vhd"), m, 2)


# Case: no parent locators at all: the parent is found by the header's
# unicode name (basename) next to the child.
def case_name_only():
    d = case_dir("nameonly")
    size = 1 * M - 512
    m = Model(size)
    base = dyn_base(d, size, m)

    def edits(l):
        m.write(l, 5, 2)
        m.shadow_zero(l, 300, 1)
    leaf = diff_layer(m, base, "leaf.vhd", "none", edits)
    T.check(G.parse(leaf)["locators"] == [], "name-only fixture has locators")
    verify("name_only", leaf, m, 2)


# Case: a MacX locator only (file URL, UTF-8).
def case_macx_only():
    d = case_dir("macx")
    size = 768 * K
    m = Model(size)
    base = dyn_base(d, size, m)

    def edits(l):
        m.write(l, 100, 100)
    leaf = diff_layer(m, base, "leaf.vhd", [G.loc_macx("file://./base.vhd")], edits,
                      name="some-other-name.vhd")
    verify("macx_only", leaf, m, 2)


# Case: a fixed VHD as the base of a two-level differencing chain.
def case_fixed_base():
    d = case_dir("fixed")
    size = 1 * M + 512
    m = Model(size)
    fx = G.FixedVhd(size)
    data = RNG.randbytes(size // 2)
    fx.write(4096, data)
    m.data[4096:4096 + len(data)] = data
    base = fx.save(os.path.join(d, "base.vhd"))

    def mid_edits(l):
        m.write(l, 9, 1)
        m.shadow_zero(l, 20, 3)
    mid = diff_layer(m, base, "mid.vhd", "blktap", mid_edits)

    def leaf_edits(l):
        m.write(l, 2048, 1)            # the very last sector
        m.shadow_zero(l, 10, 100)
    leaf = diff_layer(m, mid, "leaf.vhd", "blktap", leaf_edits)
    verify("fixed_base", leaf, m, 3)
    verify("fixed_alone", base, Model_from(fx.data), 1)


def Model_from(data):
    m = Model(len(data))
    m.data[:] = data
    return m


def random_edits(m, size):
    def edits(l):
        for _ in range(6):
            s = RNG.randrange(size // 512 - 20)
            if RNG.random() < 0.3:
                m.shadow_zero(l, s, RNG.randint(1, 20))
            else:
                m.write(l, s, RNG.randint(1, 20))
    return edits


# Case: a 6-deep chain mixing locator conventions, default 2 MiB blocks,
# random partial-bitmap writes everywhere, hidden parents.
def case_deep_mixed():
    d = case_dir("deep")
    size = 3 * M + 7 * 512
    m = Model(size)
    path = dyn_base(d, size, m, block_size=2 * M)
    for i, conv in enumerate(["blktap", "xo", "none", "blktap", "xo"]):
        path = diff_layer(m, path, "l%d.vhd" % i, conv, random_edits(m, size),
                          block_size=2 * M, hidden=int(i < 4))
    verify("deep_mixed", path, m, 6)


# Case: layers with different block sizes (2 MiB base, 64 KiB and 512 KiB
# children).  The spec ties nothing between a child's and its parent's block
# size (Virtual PC made such chains): the bytes must be exact.
def case_mixed_block_sizes():
    d = case_dir("mixbs")
    size = 2 * M + 512
    m = Model(size)
    path = dyn_base(d, size, m, block_size=2 * M)
    for i, bs in enumerate([64 * K, 512 * K, 64 * K]):
        path = diff_layer(m, path, "l%d.vhd" % i, "blktap", random_edits(m, size), block_size=bs)
    out = os.path.join(TMP, "mixbs.flat.raw")
    r = T.sp(EXE, "disk", "flatten", path, "-o", out)
    T.check(r.rc == 0, "mixed_block_sizes: flatten failed: " + r.describe())
    if r.rc == 0:
        T.same_bytes(T.read_file(out), bytes(m.data), "mixed_block_sizes: flatten")


# Case: a child larger than its parent (resized VDI; past the parent's end
# reads zeros), a parent file name with spaces and non-ASCII letters
# (UTF-16BE unicode name, UTF-16LE/UTF-8 locators), 4 KiB blocks.
def case_resized_unicode_small_blocks():
    d = case_dir("resized")
    small, big = 512 * K, 1 * M + 512
    m = Model(big)
    base = G.DynamicVhd(small, block_size=4 * K)
    m.write(base, 0, small // 512)
    bpath = base.save(os.path.join(d, "b\u00e4se \u00fcn\u00efcode.vhd"))

    def edits(l):
        m.write(l, small // 512 - 3, 6)     # straddles the parent's end
        m.shadow_zero(l, 17, 2)
        m.write(l, big // 512 - 1, 1)
    leaf = diff_layer(m, bpath, "leaf.vhd", "blktap", edits, size=big, block_size=4 * K)
    verify("resized_unicode_4k_blocks", leaf, m, 2)


# Case: a 40-deep chain (past XenServer's limit of 30, which is the store's
# business; the reader takes up to 64 files): exact content.
def case_very_deep():
    d = case_dir("verydeep")
    size = 1 * M
    m = Model(size)
    path = dyn_base(d, size, m, block_size=16 * K)
    for i in range(39):
        def edits(l, i=i):
            m.write(l, (i * 7) % 500, 3)
        path = diff_layer(m, path, "l%02d.vhd" % i, "blktap", edits, block_size=16 * K)
    out = os.path.join(TMP, "verydeep.raw")
    r = T.sp(EXE, "disk", "flatten", path, "-o", out)
    T.check(r.rc == 0, "very_deep: flatten failed: " + r.describe())
    if r.rc == 0:
        T.same_bytes(T.read_file(out), bytes(m.data), "very_deep: flatten")


def main():
    global EXE, TMP
    EXE, TMP = T.setup()
    for case in (case_blktap, case_xo, case_hyperv, case_absolute_posix, case_name_only,
                 case_macx_only, case_fixed_base, case_deep_mixed, case_mixed_block_sizes,
                 case_resized_unicode_small_blocks, case_very_deep):
        print("case", case.__name__)
        case()
    T.finish("e2e.test_read_foreign")


if __name__ == "__main__":
    main()
