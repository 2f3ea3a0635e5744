"""snapport convert DISK OUT.xva|OUT.ova: a disk image of any format the disk
registry reads, wrapped in a minimal VM (name from the file name, --name,
--memory, --vcpus; HVM, one disk hda, no NIC).

Cases:
  formats   a raw image, a VHD and a streamOptimized VMDK (both made by
            qemu-img from the raw one, when qemu-img is installed), each
            converted to XVA and to OVA: verify exits 0; import into a
            store: the VM's name, memory, vCPUs and single disk are as
            asked; its VHD, read by a VHD reader written here in Python,
            equals the raw source byte for byte.
  bad       a text file and a missing file: exit 3, one error line, no
            output left in the folder.
  stream    a VHD piped into `convert -`: exit 3, one line saying it is a
            disk image, which convert takes from a file only; no output.
            `import` of the VHD file: one line saying it is a disk image.
"""

import os
import random
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402

K, M = S.K, S.M
EXE = TMP = None
RNG = random.Random(20261205)
SECTOR = 512
UNALLOCATED = 0xFFFFFFFF


# ---------------------------------------------------------------- a VHD reader

def vhd_read(path):
    """The content of a dynamic VHD without a parent (what an import makes)."""
    with open(path, "rb") as f:
        data = f.read()
    footer = data[-SECTOR:]
    T.check(footer[:8] == b"conectix", "%s: no VHD footer" % path)
    data_offset, = struct.unpack(">Q", footer[16:24])
    size, = struct.unpack(">Q", footer[48:56])
    disk_type, = struct.unpack(">I", footer[60:64])
    T.check(disk_type == 3, "%s: disk type %d, expected dynamic (3)" % (path, disk_type))
    hdr = data[data_offset:data_offset + 1024]
    table, = struct.unpack(">Q", hdr[16:24])
    entries, = struct.unpack(">I", hdr[28:32])
    block, = struct.unpack(">I", hdr[32:36])
    bitmap_len = -(-(block // SECTOR // 8) // SECTOR) * SECTOR
    out = bytearray(size)
    for b in range(entries):
        sec, = struct.unpack(">I", data[table + 4 * b:table + 4 * b + 4])
        if sec == UNALLOCATED:
            continue
        base = sec * SECTOR
        bitmap = data[base:base + bitmap_len]
        for s in range(block // SECTOR):
            off = b * block + s * SECTOR
            if off >= size or not bitmap[s // 8] & (0x80 >> (s % 8)):
                continue
            src = base + bitmap_len + s * SECTOR
            out[off:off + SECTOR] = data[src:src + SECTOR]
    return bytes(out)


# ---------------------------------------------------------------- cases

def make_raw(path):
    disk = bytearray(6 * M)
    disk[1000:70000] = RNG.randbytes(69000)
    disk[3 * M:3 * M + 4 * K] = b"snapport" * (K // 2)
    disk[-SECTOR:] = RNG.randbytes(SECTOR)
    T.write_file(path, disk)
    return bytes(disk)


def qemu(raw, out, *opts):
    if not shutil.which("qemu-img"):
        return False
    r = subprocess.run(["qemu-img", "convert", "-f", "raw"] + list(opts) + [raw, out], capture_output=True)
    return T.check(r.returncode == 0, "qemu-img convert %s: %s" % (out, r.stderr))


def check_import(st, archive, name, memory_mb, vcpus, want, what):
    r = st.sp("import", archive, timeout=120)
    if not T.expect_ok(r, "%s: import" % what):
        return
    j = st.show(name, fatal=False)
    if not T.check(j is not None, "%s: vm show %s" % (what, name)):
        return
    T.check((j["memory"] / 2**20) == memory_mb and j["vcpus"] == vcpus and j["type"] == "hvm",
            "%s: memory %s, vcpus %s, type %s; expected %s, %s, hvm" % (
                what, (j["memory"] / 2**20), j["vcpus"], j["type"], memory_mb, vcpus))
    disks = [d for d in j["disks"] if d["vdi"]]
    T.check(len(disks) == 1 and not j["vifs"], "%s: %d disks, vifs %s; expected one disk, none" % (
        what, len(disks), j["vifs"]))
    if disks:
        T.same_bytes(vhd_read(disks[0]["file"]), want, "%s: the imported disk" % what)
    st.ok("vm", "destroy", name)


def case_formats(st, raw, want):
    srcs = [("raw", raw)]
    vhd, vmdk = os.path.join(TMP, "web.vhd"), os.path.join(TMP, "web.vmdk")
    if qemu(raw, vhd, "-O", "vpc", "-o", "subformat=dynamic,force_size=on"):
        srcs.append(("vhd", vhd))
    if qemu(raw, vmdk, "-O", "vmdk", "-o", "subformat=streamOptimized"):
        srcs.append(("vmdk", vmdk))
    for kind, src in srcs:
        for fmt in ("xva", "ova"):
            what = "%s -> %s" % (kind, fmt)
            out = os.path.join(TMP, "%s-%s.%s" % (kind, fmt, fmt))
            if fmt == "xva":
                r = T.sp(EXE, "convert", src, out, "--memory", "512M", "--vcpus", "2", "--name", "w-" + kind)
                name, mem, cpus = "w-" + kind, 512, 2
            else:
                r = T.sp(EXE, "convert", src, out)
                name, mem, cpus = os.path.splitext(os.path.basename(src))[0], 1024, 1
            if not T.expect_ok(r, "%s: convert" % what):
                continue
            T.expect_ok(T.sp(EXE, "verify", out), "%s: verify" % what)
            check_import(st, out, name, mem, cpus, want, what)


def case_bad():
    d = os.path.join(TMP, "bad")
    os.makedirs(d)
    text = T.write_file(os.path.join(d, "notes.txt"), b"this is not a disk image\n")
    for src, what in ((text, "a text file"), (os.path.join(d, "missing.raw"), "a missing file")):
        out = os.path.join(d, "out.xva")
        r = T.sp(EXE, "convert", src, out)
        T.check(r.rc == 3, "convert of %s: exit %s, expected 3: %s" % (what, r.rc, r.describe()))
        S.one_error_line(r, "convert of %s" % what)
        T.check(sorted(os.listdir(d)) == ["notes.txt"], "convert of %s left %s" % (what, os.listdir(d)))


def case_stream(st, raw):
    """A disk image from a pipe: convert cannot seek in it, so it refuses,
    one line saying why (not libarchive's "Unrecognized archive format");
    import of a disk image file says it is one."""
    d = os.path.join(TMP, "stream")
    os.makedirs(d)
    vhd = os.path.join(d, "web.vhd")
    T.sp_ok(EXE, "disk", "flatten", raw, "-o", vhd)
    out = os.path.join(d, "out.xva")
    with open(vhd, "rb") as f:
        p = subprocess.run([EXE, "convert", "-", out], capture_output=True, timeout=60,
                           input=f.read())
    r = T.Result(["convert", "-", out], p.returncode, p.stdout.decode(), p.stderr.decode())
    S.expect_failure(r, "convert of a VHD from a pipe", 3, ["stdin"], ["vhd disk image", "from a file only"])
    T.check(sorted(os.listdir(d)) == ["web.vhd"], "convert from a pipe left %s" % os.listdir(d))
    r = st.sp("import", vhd)
    S.expect_failure(r, "import of a VHD file", 3, [vhd], ["vhd disk image, not an archive", "convert"])


def main():
    global EXE, TMP
    EXE, TMP = T.setup()
    st = S.Store(EXE, os.path.join(TMP, "st"), os.path.join(TMP, "flat"))
    raw = os.path.join(TMP, "web.raw")
    want = make_raw(raw)
    case_formats(st, raw, want)
    case_bad()
    case_stream(st, raw)
    T.finish("test_convert_disk")


if __name__ == "__main__":
    main()
