"""Every place that takes a disk takes any registered format, told from its
bytes; formats snapport only recognises are refused as unsupported (exit 3),
never as damaged.

- disk info/check/flatten/compare on images of each format made by qemu-img
  (VHD, streamOptimized and monolithicSparse VMDK, qcow2) and on a VMDK that
  snapport wrote itself; flattened content equals the raw source, which the
  test writes itself.
- VHDX, an XVA/OVA (tar), a gzip file: exit 3 "unsupported format" for
  info, check and flatten, no output left.
- flatten to a format read but not written (.qcow2): exit 2 (a usage error:
  the output's name asks for what cannot be), nothing left.
- vm create from an xl.cfg whose disk is qcow2 (format=qcow2) or a
  streamOptimized VMDK (format=raw), exported to XVA and OVA and imported
  back: the imported disks hold the source bytes. A declared format that
  the bytes contradict, and an image that names another file under
  format=raw, are refused with nothing registered.
"""

import gzip
import json
import os
import random
import sys

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402

K, M = 1024, 1024 * 1024
EXE = TMP = None
RNG = random.Random(1010)


def source_raw(path, size=8 * M):
    """Data runs, zero runs and a hole, written here (the expected bytes)."""
    data = bytearray(size)
    for off, n in ((0, 64 * K), (1 * M + 4 * K, 300 * K), (3 * M, 1 * M), (size - 8 * K, 8 * K)):
        data[off:off + n] = RNG.randbytes(n)
    with open(path, "wb") as f:
        f.write(data)
    return bytes(data)


def qemu(*args):
    r = T.run(["qemu-img"] + list(args), timeout=120)
    if r.rc != 0:
        T.fatal("qemu-img failed: " + r.describe())


def flattened(path, what):
    out = path + ".flat.raw"
    r = T.sp(EXE, "disk", "flatten", path, "-o", out, "--force")
    if not T.expect_ok(r, "%s: flatten" % what):
        return None
    with open(out, "rb") as f:
        data = f.read()
    os.unlink(out)
    return data


def case_formats(raw_path, want):
    """Each format's image: info names its driver, check ok, flatten exact."""
    images = []
    vhd = os.path.join(TMP, "img.vhd")
    qemu("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic", raw_path, vhd)
    images.append((vhd, "vhd"))
    for sub in ("streamOptimized", "monolithicSparse"):
        p = os.path.join(TMP, "img-%s.vmdk" % sub)
        qemu("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=" + sub, raw_path, p)
        images.append((p, "vmdk"))
    q = os.path.join(TMP, "img.qcow2")
    qemu("convert", "-f", "raw", "-O", "qcow2", raw_path, q)
    images.append((q, "qcow2"))
    ours = os.path.join(TMP, "ours.vmdk")
    T.sp_ok(EXE, "disk", "flatten", vhd, "-o", ours)
    images.append((ours, "vmdk"))
    for path, driver in images:
        what = os.path.basename(path)
        j = T.info_json(EXE, path, fatal_errors=False)
        T.check(j.get("driver") == driver, "%s: driver %r, expected %r" % (what, j.get("driver"), driver))
        T.check(j.get("virtual_size", 0) >= len(want), "%s: virtual size %r" % (what, j.get("virtual_size")))
        T.expect_ok(T.sp(EXE, "disk", "check", path), "%s: check" % what)
        data = flattened(path, what)
        if data is not None:
            T.same_bytes(data[:len(want)], want, "%s flattened" % what)
            T.check(not any(data[len(want):]), "%s: bytes past the source are not zero" % what)
        r = T.sp(EXE, "disk", "compare", path, raw_path)
        T.check(r.rc == 0 or (r.rc == 1 and "sizes differ" in r.out),
                "%s: compare with the source: %s" % (what, r.describe()))


def expect_unsupported(path, what, hint=None):
    for cmd in (["disk", "info", path], ["disk", "check", path],
                ["disk", "flatten", path, "-o", os.path.join(TMP, "never.raw")]):
        r = T.sp(EXE, *cmd)
        T.check(r.rc == 3, "%s: %s: exit %s, expected 3: %s" % (what, cmd[1], r.rc, r.describe()))
        T.check("unsupported format" in r.err and path in r.err,
                "%s: %s: stderr does not say unsupported format naming the file: %r" % (what, cmd[1], r.err))
        T.check(len(r.err.strip().splitlines()) == 1, "%s: %s: not one line: %r" % (what, cmd[1], r.err))
        if hint:
            T.check(hint in r.err, "%s: %s: no pointer to %r: %r" % (what, cmd[1], hint, r.err))
    T.check(not os.path.exists(os.path.join(TMP, "never.raw")), "%s: flatten left an output" % what)


def case_refused(raw_path):
    vhdx = os.path.join(TMP, "x.vhdx")
    qemu("create", "-q", "-f", "vhdx", vhdx, "16M")
    expect_unsupported(vhdx, "vhdx")
    tarball = os.path.join(TMP, "fake.ova")
    T.write_file(tarball, tar_of("vm.ovf"))
    expect_unsupported(tarball, "tar archive", hint="snapport info")
    gz = os.path.join(TMP, "disk.raw.gz")
    with open(raw_path, "rb") as f, gzip.open(gz, "wb") as g:
        g.write(f.read(1 * M))
    expect_unsupported(gz, "gzip file")
    out = os.path.join(TMP, "out.qcow2")
    r = T.sp(EXE, "disk", "flatten", raw_path, "-o", out)
    T.check(r.rc == 2 and "qcow2" in r.err, "flatten to .qcow2: exit %s: %s" % (r.rc, r.describe()))
    T.check(not os.path.exists(out), "flatten to .qcow2 left %s" % out)


def tar_of(name):
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:", format=tarfile.GNU_FORMAT) as t:
        ti = tarfile.TarInfo(name)
        data = b"<Envelope/>"
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def write_cfg(name, disks):
    path = os.path.join(TMP, name + ".cfg")
    lines = ", ".join("'%s'" % d for d in disks)
    T.write_file(path, ("name = '%s'\nmemory = 256\nvcpus = 1\nbuilder = 'hvm'\ndisk = [ %s ]\n"
                        % (name, lines)).encode())
    return path


def case_vm_create(raw_path, want):
    st = S.Store(EXE, os.path.join(TMP, "store"), TMP)
    q = os.path.join(TMP, "vm.qcow2")
    base = os.path.join(TMP, "vm-base.qcow2")
    # a qcow2 over a backing file: the VM's disk is the pair
    qemu("convert", "-f", "raw", "-O", "qcow2", raw_path, base)
    qemu("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "vm-base.qcow2", q)
    r = T.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 2M 64K", q])
    T.expect_ok(r, "qemu-io write into the overlay")
    want_q = bytearray(want)
    want_q[2 * M:2 * M + 64 * K] = b"\x5a" * (64 * K)
    vmdk = os.path.join(TMP, "vm.vmdk")
    qemu("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw_path, vmdk)
    cfg = write_cfg("qv", ["format=qcow2, vdev=xvda, access=rw, target=vm.qcow2",
                           "format=raw, vdev=xvdb, access=rw, target=vm.vmdk"])
    st.ok("vm", "create", "--config", cfg, what="vm create with a qcow2 and a VMDK disk")
    expected = {"xvda": bytes(want_q), "xvdb": want}
    for kind in ("xva", "ova"):
        arch = os.path.join(TMP, "qv." + kind)
        st.ok("export", "qv", "-o", arch, timeout=120, what="export " + kind)
        st.ok("import", arch, "--name", "qv-" + kind, timeout=120, what="import " + kind)
        for name in ("qv", "qv-" + kind):
            j = st.show(name, fatal=False)
            if not T.check(j is not None, "vm show %s" % name):
                continue
            for d in j["disks"]:
                if d["vdev"] in expected and d["vdi"]:
                    data = st.flatten(d["file"])
                    if data is not None:
                        T.same_bytes(data[:len(want)], expected[d["vdev"]], "%s %s" % (name, d["vdev"]))
    before = st.files(include_catalog=False)
    # declared qcow2, but a VHD; a differencing VHD under format=raw
    vhd = os.path.join(TMP, "d.vhd")
    T.sp_ok(EXE, "disk", "create", vhd, "--size", "8M")
    child = os.path.join(TMP, "child.vhd")
    T.sp_ok(EXE, "disk", "create", child, "--parent", vhd)
    for name, disk, needle in (("lie", "format=qcow2, vdev=xvda, target=d.vhd", "declared qcow2"),
                               ("diff", "format=raw, vdev=xvda, target=child.vhd", "format=vhd"),
                               ("backed", "format=raw, vdev=xvda, target=vm.qcow2", "format=qcow2")):
        r = st.sp("vm", "create", "--config", write_cfg(name, [disk]))
        T.check(r.rc == 3 and needle in r.err, "vm create %s: exit %s, wanted 3 with %r: %s" % (
            name, r.rc, needle, r.describe()))
    T.check(st.files(include_catalog=False) == before, "a refused vm create changed the store")
    names = list(st.vms())
    T.check(not {"lie", "diff", "backed"} & set(names), "a refused VM was registered: %s" % names)


def main():
    global EXE, TMP
    EXE, TMP = T.setup()
    raw_path = os.path.join(TMP, "src.raw")
    want = source_raw(raw_path)
    case_formats(raw_path, want)
    case_refused(raw_path)
    case_vm_create(raw_path, want)
    T.finish("test_disk_registry")


if __name__ == "__main__":
    main()
