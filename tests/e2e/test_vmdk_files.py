"""VMDKs made of a text descriptor and extent files, as qemu-img writes them
(monolithicSparse, monolithicFlat, twoGbMaxExtentSparse, twoGbMaxExtentFlat,
streamOptimized), read by snapport: flatten equals qemu-img's raw (and the
raw the test wrote), info lists one file per extent (as vmdkinfo counts
them), check passes, compare agrees, a flatten to VHD reads back equal in
qemu-img. Then hostile descriptors, edited here: each is refused with exit 3
and one line naming the file and the problem, no output left behind, and
`disk check` says 3 (unsupported) or 1 (damaged).
"""

import os
import random
import re
import shutil
import sys

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402

K, M, G = 1024, 1024 * 1024, 1024 * 1024 * 1024
SECTOR = 512
CHUNK = 16 * M
EXE = TMP = None
RNG = random.Random(4242)
SUBFORMATS = ("monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat",
              "streamOptimized")
DESC_MAX = 512 * K     # the descriptor size snapport reads (vmdk_internal.h VMDK_DESC_MAX)
EXTENTS_MAX = 4096     # VMDK_EXTENTS_MAX


def make_raw(path, size, pieces):
    """A sparse raw of size bytes: random data at each (offset, length) of
    pieces, written zeros where length is negative, holes elsewhere."""
    with open(path, "wb") as f:
        f.truncate(size)
        for off, n in pieces:
            f.seek(off)
            f.write(bytes(-n) if n < 0 else RNG.randbytes(n))
    return path


def same_files(a, b, what):
    """check() that two files hold the same bytes, read chunk by chunk."""
    sa, sb = os.path.getsize(a), os.path.getsize(b)
    if not T.check(sa == sb, "%s: size %d, expected %d" % (what, sa, sb)):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        off = 0
        while off < sa:
            x, y = fa.read(CHUNK), fb.read(CHUNK)
            if x != y:
                d = T.first_diff(x, y)
                return T.check(False, "%s: first difference at byte %d" % (what, off + d))
            off += len(x)
    return True


def qemu(*args):
    r = T.run(["qemu-img"] + list(args), timeout=300)
    T.check(r.rc == 0, "qemu-img %s: %s" % (args[0], r.describe()))
    return r.rc == 0


def vmdkinfo_extents(path):
    """(number of extents, media size) as libvmdk's vmdkinfo reads them."""
    r = T.run(["vmdkinfo", path])
    n = re.search(r"Number of extents:\s*(\d+)", r.out)
    size = re.search(r"Media size:.*\((\d+) bytes\)", r.out)
    if not T.check(r.rc == 0 and n and size, "vmdkinfo %s: %s" % (path, r.describe())):
        return None, None
    return int(n.group(1)), int(size.group(1))


def extent_files(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".vmdk") and f != "d.vmdk")


def check_info(name, img, sub, size):
    info = T.info_json(EXE, img, fatal_errors=False)
    T.check(info.get("driver") == "vmdk", "%s: driver %r" % (name, info.get("driver")))
    T.check(info.get("format") == sub, "%s: format %r, expected %s" % (name, info.get("format"), sub))
    T.check(info.get("virtual_size") == size, "%s: virtual_size %r, expected %d" % (name, info.get("virtual_size"), size))
    chain = info.get("chain", [])
    files = extent_files(os.path.dirname(img)) or ["d.vmdk"]  # monolithic sparse: the file itself
    T.check([os.path.basename(c["path"]) for c in chain] == files,
            "%s: chain %r, files %r" % (name, [c.get("path") for c in chain], files))
    n, media = vmdkinfo_extents(img)
    T.check(n == len(chain) and media == size, "%s: vmdkinfo says %r extents of %r bytes in all, snapport %d, %d"
            % (name, n, media, len(chain), size))
    r = T.sp(EXE, "disk", "info", img)
    T.check(r.rc == 0 and sub in r.out, "%s: disk info: %s" % (name, r.describe()))


def good_case(name, src, sub, min_files=0):
    """qemu-img makes the image from src; snapport reads it back."""
    d = os.path.join(TMP, name)
    os.makedirs(d)
    img, ref = os.path.join(d, "d.vmdk"), os.path.join(TMP, name + ".ref.raw")
    if not qemu("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=" + sub, src, img):
        return
    files = extent_files(d)
    T.check(len(files) >= min_files, "%s: qemu-img made %d extent files, the case wants %d" % (name, len(files), min_files))
    if not qemu("convert", "-O", "raw", img, ref):
        return
    same_files(ref, src, "%s: qemu-img's raw vs the source" % name)
    check_info(name, img, sub, os.path.getsize(ref))
    T.expect_ok(T.sp(EXE, "disk", "check", img), "%s: disk check" % name)
    out = os.path.join(TMP, name + ".out.raw")
    if T.expect_ok(T.sp(EXE, "disk", "flatten", img, "-o", out, timeout=300), "%s: flatten" % name):
        same_files(out, ref, "%s: flatten vs qemu-img" % name)
        os.unlink(out)
    T.expect_ok(T.sp(EXE, "disk", "compare", img, ref, timeout=300), "%s: disk compare with qemu-img's raw" % name)
    vhd = os.path.join(TMP, name + ".vhd")
    if T.expect_ok(T.sp(EXE, "disk", "flatten", img, "-o", vhd, timeout=300), "%s: flatten to vhd" % name):
        r = T.run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", vhd, ref], timeout=300)
        T.check(r.rc == 0, "%s: qemu-img compare of the flattened vhd: %s" % (name, r.describe()))
        os.unlink(vhd)
    os.unlink(ref)


def case_small():
    """A few MiB with data, holes and written zero runs, every subformat."""
    src = make_raw(os.path.join(TMP, "small.raw"), 6 * M + 3 * SECTOR,
                   [(0, 100000), (256 * K, -200 * K), (3 * M - 7 * SECTOR, 70000), (4 * M, -M),
                    (5 * M + 512, 64 * K), (6 * M, 3 * SECTOR)])
    for sub in SUBFORMATS:
        good_case("small-" + sub, src, sub, 0 if sub in ("monolithicSparse", "streamOptimized") else 1)


def case_over_2g():
    """Just over 2 GiB, little data: twoGb* split into two extents."""
    src = make_raw(os.path.join(TMP, "big.raw"), 2 * G + 5 * M,
                   [(0, 300000), (G, -M), (2 * G - 4096, 300000), (2 * G + 3 * M, 200000)])
    for sub in ("twoGbMaxExtentSparse", "twoGbMaxExtentFlat"):
        good_case("big-" + sub, src, sub, min_files=2)
    os.unlink(src)


def case_offset_and_zero():
    """A hand-written descriptor: a FLAT extent from an offset in its file,
    then a ZERO extent; expected bytes cut from the file here."""
    d = os.path.join(TMP, "offset")
    os.makedirs(d)
    flat = make_raw(os.path.join(d, "data.bin"), 2 * M, [(0, 2 * M)])
    desc = ('# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\n'
            'RW 2048 FLAT "data.bin" 1024\nRW 4096 ZERO\n\nddb.adapterType = "ide"\n')
    img = T.write_file(os.path.join(d, "d.vmdk"), desc.encode())
    with open(flat, "rb") as f:
        f.seek(1024 * SECTOR)
        expected = f.read(2048 * SECTOR) + bytes(4096 * SECTOR)
    out = os.path.join(TMP, "offset.out.raw")
    if T.expect_ok(T.sp(EXE, "disk", "flatten", img, "-o", out), "offset: flatten"):
        T.same_bytes(T.read_file(out), expected, "offset: flatten")
    # qemu-img 7.2 agrees on the FLAT extent's offset; it reads the ZERO
    # line as a second copy of the extent before it, so only the FLAT part
    # is compared with it
    ref = os.path.join(TMP, "offset.ref.raw")
    if qemu("convert", "-O", "raw", img, ref):
        T.same_bytes(T.read_file(ref)[:2048 * SECTOR], expected[:2048 * SECTOR], "offset: qemu-img's FLAT part")
    info = T.info_json(EXE, img, fatal_errors=False)
    T.check(len(info.get("chain", [])) == 2, "offset: %d layers, expected 2" % len(info.get("chain", [])))


def case_vhd_to_vmdk():
    """snapport's own VMDK output opens as a disk (flatten x.vhd -o x.vmdk)."""
    src = make_raw(os.path.join(TMP, "v.raw"), 4 * M, [(0, 70000), (2 * M, 4096)])
    vhd, vmdk = os.path.join(TMP, "x.vhd"), os.path.join(TMP, "x.vmdk")
    T.sp_ok(EXE, "disk", "flatten", src, "-o", vhd)
    T.sp_ok(EXE, "disk", "flatten", vhd, "-o", vmdk)
    info = T.info_json(EXE, vmdk, fatal_errors=False)
    T.check(info.get("format") == "streamOptimized" and info.get("virtual_size") == 4 * M,
            "vhd->vmdk: info %r" % info)
    T.expect_ok(T.sp(EXE, "disk", "compare", vmdk, src), "vhd->vmdk: compare")


# --- hostile descriptors ----------------------------------------------------

def base_image(sub):
    """A small qemu-img image of sub in a directory of its own (made once)."""
    d = os.path.join(TMP, "base-" + sub)
    if not os.path.isdir(d):
        os.makedirs(d)
        src = make_raw(os.path.join(TMP, "base.raw"), 2 * M, [(0, 50000), (M, 8192)])
        qemu("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=" + sub, src, os.path.join(d, "d.vmdk"))
    return d


def hostile_copy(name, sub):
    d = os.path.join(TMP, "bad-" + name)
    shutil.copytree(base_image(sub), d, symlinks=True)
    return d, os.path.join(d, "d.vmdk")


def edit_desc(img, fn):
    """Rewrites a descriptor file's text (qemu pads it with NULs)."""
    text = T.read_file(img).rstrip(b"\0").decode()
    T.write_file(img, fn(text).encode())


def expect_refused(name, img, words, check_rc):
    """info and flatten exit 3, one stderr line with the file and words; no
    output left; check exits check_rc."""
    out = os.path.join(TMP, "bad-%s.out.raw" % name)
    for args in (("disk", "info", img), ("disk", "flatten", img, "-o", out)):
        r = T.sp(EXE, *args)
        lines = r.err.strip().splitlines()
        T.check(not r.crashed() and r.rc == 3, "%s: %s: expected exit 3: %s" % (name, args[1], r.describe()))
        if T.check(len(lines) == 1, "%s: %s: %d stderr lines: %r" % (name, args[1], len(lines), r.err)):
            T.named_once(lines[0], "%s: %s" % (name, args[1]))
        for w in words:
            T.check(w in r.err, "%s: %s: %r not in %r" % (name, args[1], w, r.err))
    T.check(not os.path.exists(out), "%s: flatten left %s behind" % (name, out))
    T.check(not [f for f in os.listdir(TMP) if f.startswith("bad-%s.out" % name)], "%s: temporary output left" % name)
    r = T.sp(EXE, "disk", "check", img)
    T.check(not r.crashed() and r.rc == check_rc, "%s: disk check: expected exit %d: %s" % (name, check_rc, r.describe()))


def hostile_cases():
    d, img = hostile_copy("missing", "monolithicFlat")
    os.unlink(os.path.join(d, "d-flat.vmdk"))
    expect_refused("missing", img, ["d-flat.vmdk", "No such file"], 1)

    d, img = hostile_copy("absolute", "monolithicFlat")
    absolute = os.path.join(d, "d-flat.vmdk")
    edit_desc(img, lambda t: t.replace('"d-flat.vmdk"', '"%s"' % absolute))
    expect_refused("absolute", img, ["d.vmdk", absolute, "absolute path"], 3)

    d, img = hostile_copy("dotdot", "monolithicFlat")
    edit_desc(img, lambda t: t.replace('"d-flat.vmdk"', '"../bad-dotdot/d-flat.vmdk"'))
    expect_refused("dotdot", img, ["d.vmdk", "../bad-dotdot/d-flat.vmdk", "out of the descriptor's directory"], 3)

    d, img = hostile_copy("symlink", "monolithicFlat")
    os.rename(os.path.join(d, "d-flat.vmdk"), os.path.join(d, "real.bin"))
    os.symlink("real.bin", os.path.join(d, "d-flat.vmdk"))
    expect_refused("symlink", img, ["d-flat.vmdk", "symbolic link"], 3)

    d, img = hostile_copy("fifo", "monolithicFlat")  # an open that waited for a writer would hang here
    os.unlink(os.path.join(d, "d-flat.vmdk"))
    os.mkfifo(os.path.join(d, "d-flat.vmdk"))
    expect_refused("fifo", img, ["d-flat.vmdk", "not a regular file"], 1)

    d, img = hostile_copy("flat_short", "monolithicFlat")
    edit_desc(img, lambda t: re.sub(r"RW (\d+) FLAT", lambda m: "RW %d FLAT" % (int(m.group(1)) + 8), t))
    expect_refused("flat_short", img, ["d-flat.vmdk", "its line needs"], 1)

    d, img = hostile_copy("embedded_sum", "monolithicSparse")
    data = bytearray(T.read_file(img))
    m = re.search(rb"RW (\d+) SPARSE", data)
    wrong = str(int(m.group(1)) - 1).rjust(len(m.group(1)), "0").encode()  # same length: the file keeps its layout
    data[m.start(1):m.end(1)] = wrong
    T.write_file(img, bytes(data))
    expect_refused("embedded_sum", img, ["d.vmdk", "capacity"], 1)

    d, img = hostile_copy("sparse_capacity", "twoGbMaxExtentSparse")
    edit_desc(img, lambda t: re.sub(r"RW (\d+) SPARSE", lambda m: "RW %d SPARSE" % (int(m.group(1)) - 128), t))
    expect_refused("sparse_capacity", img, ["d-s001.vmdk", "its line says"], 1)

    d, img = hostile_copy("garbage", "monolithicFlat")
    edit_desc(img, lambda t: t.replace("# Extent description\n", "# Extent description\nthis is not a line\n"))
    expect_refused("garbage", img, ["d.vmdk", "line", "not a comment"], 1)

    d, img = hostile_copy("huge", "monolithicFlat")
    edit_desc(img, lambda t: t + "# padding\n" * (DESC_MAX // 10 + 1))
    expect_refused("huge", img, ["d.vmdk", "512 KiB"], 1)

    d, img = hostile_copy("create_type", "monolithicFlat")
    edit_desc(img, lambda t: t.replace('createType="monolithicFlat"', 'createType="fancyNewType"'))
    expect_refused("create_type", img, ["d.vmdk", "fancyNewType", "not supported"], 3)

    d, img = hostile_copy("delta", "monolithicFlat")
    edit_desc(img, lambda t: t.replace("parentCID=ffffffff", 'parentCID=12345678\nparentFileNameHint="base.vmdk"'))
    expect_refused("delta", img, ["d.vmdk", "delta disk", "base.vmdk"], 3)

    d, img = hostile_copy("too_many", "monolithicFlat")
    edit_desc(img, lambda t: re.sub(r"RW \d+ FLAT .*\n", "RW 1 ZERO\n" * (EXTENTS_MAX + 1), t))
    expect_refused("too_many", img, ["d.vmdk", "more than %d extents" % EXTENTS_MAX], 1)


def main():
    global EXE, TMP
    EXE, TMP = T.setup()
    T.need_tool("qemu-img")
    T.need_tool("vmdkinfo")
    for case in (case_small, case_over_2g, case_offset_and_zero, case_vhd_to_vmdk, hostile_cases):
        print("case", case.__name__)
        case()
    T.finish("e2e.test_vmdk_files")


if __name__ == "__main__":
    main()
