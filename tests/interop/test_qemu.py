"""Interop with qemu-img/qemu-io, vhdiinfo and pyvhdi (libvhdi).

qemu -> snapport: VHDs made by `qemu-img create -f vpc` + `qemu-io write`
and by `qemu-img convert -O vpc` (with and without force_size, dynamic and
fixed) flatten with snapport to exactly what `qemu-img convert -O raw` gives
and what our model says.  (CHS trap, reference vhd.md 1.1: without
force_size qemu rounds the size up to a CHS multiple; the comparison is
against qemu's own raw of the same file, whose size is what qemu reports.)

snapport -> peers: a dynamic VHD snapport creates and writes, and one it
writes with `disk flatten -o x.vhd`, read by `qemu-img convert -f vpc -O
raw`, `qemu-img compare`, vhdiinfo (size) and pyvhdi (bytes) identically.
`qemu-img check -f vpc` must not report a problem (qemu 7.2 answers "does
not support checks", exit 63, which is accepted; anything else fails).
Missing peers FAIL the test.
"""

import os
import random
import re
import sys

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402

K, M = 1024, 1024 * 1024
EXE = TMP = None
RNG = random.Random(9001)


def path(name):
    return os.path.join(TMP, name)


def qemu(*args, timeout=60):
    r = T.run(list(args), timeout=timeout)
    if r.rc != 0:
        T.fatal("peer command failed: " + r.describe())
    return r


def qemu_virtual_size(f, fmt="vpc"):
    r = qemu("qemu-img", "info", "--output=json", "-f", fmt, f)
    return int(re.search(r'"virtual-size":\s*(\d+)', r.out).group(1))


def snap_flatten_raw(src, name):
    out = path(name + ".snap.raw")
    r = T.sp(EXE, "disk", "flatten", src, "-o", out)
    if not T.check(r.rc == 0, "%s: snapport flatten failed: %s" % (name, r.describe())):
        return None
    return T.read_file(out)


def compare_with_qemu(name, vhd, model=None):
    """snapport flatten == qemu-img convert -O raw (== model if given)."""
    qraw = T.qemu_to_raw(vhd, path(name + ".qemu.raw"))
    if qraw is None:
        return
    if model is not None:
        T.same_bytes(qraw, model, "%s: qemu's own raw vs model (fixture sanity)" % name)
    got = snap_flatten_raw(vhd, name)
    if got is not None:
        T.same_bytes(got, qraw, "%s: snapport flatten vs qemu-img convert -O raw" % name)
    info = T.info_json(EXE, vhd, fatal_errors=False)
    T.check(info.get("virtual_size") == len(qraw),
            "%s: snapport virtual_size %r, qemu says %d" % (name, info.get("virtual_size"), len(qraw)))


# ------------------------------------------------------------ qemu -> snapport

# Case: qemu-img create -f vpc (+/- force_size) then qemu-io writes at
# unaligned-to-block offsets, including one across a 2 MiB block boundary.
def case_qemu_io(force):
    name = "qemuio_force%d" % force
    vhd = path(name + ".vhd")
    opts = ["-o", "force_size=on"] if force else []
    qemu("qemu-img", "create", "-f", "vpc", *opts, vhd, str(7 * M + 512))
    size = qemu_virtual_size(vhd)
    if force:
        T.check(size == 7 * M + 512, "%s: qemu force_size virtual size %d" % (name, size))
    model = bytearray(size)
    writes = [(0, 0xAB, 4096), (2 * M - 512, 0xCD, 1024), (5 * M + 3 * 512, 0xEF, 65536),
              (size - 512, 0x11, 512), (1 * M, 0x00, 512)]
    for off, pat, n in writes:
        qemu("qemu-io", "-f", "vpc", "-c", "write -P 0x%02x %d %d" % (pat, off, n), vhd)
        model[off:off + n] = bytes([pat]) * n
    compare_with_qemu(name, vhd, bytes(model))


# Case: qemu-img convert -O vpc from a raw file with random data and holes
# (dynamic and fixed, with and without force_size).
def case_qemu_convert(subformat, force):
    name = "convert_%s_force%d" % (subformat, force)
    size = 6 * M + 5 * 512             # not a CHS multiple, not a block multiple
    raw = bytearray(size)
    for off, n in ((0, 3 * 512), (600 * K, 100 * K), (2 * M - 1000, 2000), (size - 4096, 4096)):
        raw[off:off + n] = RNG.randbytes(n)
    src = path(name + ".src.raw")
    with open(src, "wb") as f:
        f.write(raw)
    vhd = path(name + ".vhd")
    opts = "subformat=%s%s" % (subformat, ",force_size=on" if force else "")
    qemu("qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", opts, src, vhd)
    qsize = qemu_virtual_size(vhd)
    T.check(qsize >= size, "%s: qemu virtual size %d < source %d" % (name, qsize, size))
    model = bytes(raw) + bytes(qsize - size)   # qemu pads to its (CHS) size with zeros
    compare_with_qemu(name, vhd, model)


# ------------------------------------------------------------ snapport -> peers

def vhdiinfo_size(f):
    r = T.run(["vhdiinfo", f])
    if not T.check(r.rc == 0, "vhdiinfo rejects %s: %s" % (f, r.describe())):
        return None
    m = re.search(r"Media size\s*:.*?\((\d+) bytes\)", r.out)
    return int(m.group(1)) if m else None


def peers_read(name, vhd, model):
    """qemu convert/compare/check, vhdiinfo size, pyvhdi bytes == model."""
    q = T.qemu_to_raw(vhd, path(name + ".qemu.raw"))
    if q is not None:
        T.same_bytes(q, model, "%s: qemu-img convert -f vpc -O raw" % name)
    T.check(qemu_virtual_size(vhd) == len(model), "%s: qemu virtual size" % name)
    ref = path(name + ".model.raw")
    with open(ref, "wb") as f:
        f.write(model)
    r = T.run(["qemu-img", "compare", "-f", "vpc", "-F", "raw", vhd, ref], timeout=60)
    T.check(r.rc == 0, "%s: qemu-img compare with model: %s" % (name, r.describe()))
    r = T.run(["qemu-img", "check", "-f", "vpc", vhd], timeout=60)
    T.check(r.rc == 0 or (r.rc == 63 and "does not support checks" in r.err),
            "%s: qemu-img check: %s" % (name, r.describe()))
    n = vhdiinfo_size(vhd)
    T.check(n == len(model), "%s: vhdiinfo media size %r, expected %d" % (name, n, len(model)))
    got = T.pyvhdi_read(path(name + ".pyvhdi.raw"), vhd)
    if got is not None:
        T.same_bytes(got, model, "%s: pyvhdi read" % name)


# Case: snapport disk create + disk write (unaligned, partial sectors,
# a zero pattern, the last byte); 64 KiB blocks and the default 2 MiB.
def case_snapport_dynamic(block_size):
    name = "snap_dyn_bs%d" % block_size
    size = 5 * M + 3 * 512
    vhd = path(name + ".vhd")
    T.sp_ok(EXE, "disk", "create", vhd, "--size", size, "--block-size", block_size)
    model = bytearray(size)
    src = path("src.bin")
    for off, n in ((0, 700), (64 * K - 100, 300), (3 * M + 17, 9000), (size - 1, 1)):
        data = RNG.randbytes(n)
        with open(src, "wb") as f:
            f.write(data)
        T.sp_ok(EXE, "disk", "write", vhd, "--offset", off, "--from", src)
        model[off:off + n] = data
    T.sp_ok(EXE, "disk", "write", vhd, "--offset", 3 * M + 1000, "--pattern", "0", "--length", 1000)
    model[3 * M + 1000:3 * M + 2000] = bytes(1000)
    peers_read(name, vhd, bytes(model))
    return vhd, model


# Case: a snapport chain flattened with -o x.vhd, read by the peers.
def case_snapport_flatten_vhd():
    name = "snap_flat"
    size = 4 * M
    base, leaf = path("fb.vhd"), path("fl.vhd")
    T.sp_ok(EXE, "disk", "create", base, "--size", size, "--block-size", "64K")
    model = bytearray(size)
    T.sp_ok(EXE, "disk", "write", base, "--offset", 0, "--pattern", "0x5a", "--length", 3 * M)
    model[0:3 * M] = b"\x5a" * (3 * M)
    T.sp_ok(EXE, "disk", "create", leaf, "--parent", base, "--block-size", "64K")
    T.sp_ok(EXE, "disk", "write", leaf, "--offset", 1 * M + 1, "--pattern", "0", "--length", 5000)
    model[1 * M + 1:1 * M + 5001] = bytes(5000)
    T.sp_ok(EXE, "disk", "write", leaf, "--offset", 3 * M + 512 * 3, "--pattern", "0x77", "--length", 512)
    model[3 * M + 1536:3 * M + 2048] = b"\x77" * 512
    out = path(name + ".vhd")
    T.sp_ok(EXE, "disk", "flatten", leaf, "-o", out)
    peers_read(name, out, bytes(model))
    # the same chain as a streamOptimized VMDK: qemu-img reads the model back
    vmdk = path(name + ".vmdk")
    T.sp_ok(EXE, "disk", "flatten", leaf, "-o", vmdk)
    qraw = path(name + "-vmdk.raw")
    qemu("qemu-img", "convert", "-f", "vmdk", "-O", "raw", vmdk, qraw)
    T.same_bytes(open(qraw, "rb").read(), bytes(model), "%s: qemu-img reading snapport's VMDK" % name)


# Case: qemu-io writes into a VHD snapport created (qemu allocates new
# blocks after snapport's 4 KiB-aligned ones and moves the footer); snapport
# then reads the result.
def case_qemu_modifies_snapport(vhd, model):
    name = "qemu_on_snap"
    for off, pat, n in ((1 * M, 0x99, 8192), (4 * M + 512, 0x44, 512)):
        qemu("qemu-io", "-f", "vpc", "-c", "write -P 0x%02x %d %d" % (pat, off, n), vhd)
        model[off:off + n] = bytes([pat]) * n
    got = snap_flatten_raw(vhd, name)
    if got is not None:
        T.same_bytes(got, bytes(model), "%s: snapport flatten after qemu-io writes" % name)
    r = T.sp(EXE, "disk", "check", vhd)
    T.check(r.rc == 0, "%s: disk check after qemu-io writes: %s" % (name, r.describe()))


# Case: a 3-deep snapport differencing chain read by libvhdi: vhdiinfo sees
# a differential image with the right parent, pyvhdi (parents set by hand)
# reads the modelled bytes.  Writes are whole bitmap bytes (8 sectors):
# libvhdi 20210425 mis-reads partially set bitmap bytes (vhd.md section 4).
def case_snapport_chain_libvhdi():
    name = "snap_chain_vhdi"
    size = 3 * M
    files = [path("vc%d.vhd" % i) for i in range(3)]
    model = bytearray(size)
    T.sp_ok(EXE, "disk", "create", files[0], "--size", size, "--block-size", "64K")
    for i, f in enumerate(files):
        if i:
            T.sp_ok(EXE, "disk", "create", f, "--parent", files[i - 1], "--block-size", "64K")
        for _ in range(4):
            off = RNG.randrange(size // 4096 - 8) * 4096
            n = RNG.randint(1, 8) * 4096
            pat = RNG.choice([0, 0x21 + i])
            T.sp_ok(EXE, "disk", "write", f, "--offset", off, "--pattern", pat, "--length", n)
            model[off:off + n] = bytes([pat]) * n
    r = T.run(["vhdiinfo", files[2]])
    T.check(r.rc == 0 and "Differential" in r.out and "vc1.vhd" in r.out,
            "%s: vhdiinfo on the leaf: %s" % (name, r.describe()))
    got = T.pyvhdi_read(path(name + ".raw"), files[2], files[1], files[0])
    if got is not None:
        T.same_bytes(got, bytes(model), "%s: pyvhdi read of the chain" % name)
    got = snap_flatten_raw(files[2], name)
    if got is not None:
        T.same_bytes(got, bytes(model), "%s: snapport flatten" % name)


def main():
    global EXE, TMP
    EXE, TMP = T.setup()
    for tool in ("qemu-img", "qemu-io", "vhdiinfo"):
        T.need_tool(tool)
    T.pyvhdi_python()   # fails the test if pyvhdi is nowhere
    case_qemu_io(False)
    case_qemu_io(True)
    for sub in ("dynamic", "fixed"):
        for force in (False, True):
            case_qemu_convert(sub, force)
    case_snapport_dynamic(64 * K)
    vhd, model = case_snapport_dynamic(2 * M)
    case_snapport_flatten_vhd()
    case_qemu_modifies_snapport(vhd, model)
    case_snapport_chain_libvhdi()
    T.finish("interop.test_qemu")


if __name__ == "__main__":
    main()
