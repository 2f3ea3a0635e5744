"""XVA interop with xva-img (Debian xva-img 1.4.2; reference/xva.md
section 3). xva-img must be installed: the test fails (not skips) without it.
1.4.2 reads and writes only SHA-1 .checksum members and works on an
extracted folder.

Cases:
  export      a VM with three disks (6 MiB with zero blocks and a zero last
              block; 4 MiB with data only at the end; 5 MiB + 512 with a
              zero short tail) exported with --digest sha1, extracted with
              python tarfile: `xva-img disk-export <dir>/Ref:0N out.raw`
              gives exactly the source bytes and the store's flattened disk
              for each (xva-img checks every .checksum as it goes).
  repack      the extracted folder packed again by `xva-img package` (mode
              0 members, mtime 0): snapport verify exit 0, import equals
              the sources.
  import      the other way: `xva-img disk-import <dir>/Ref:00 disk.raw`
              (6 MiB, zero blocks, a zero last block) + the ova.xml of a
              snapport export of a one-disk VM of the same size, packed by
              `xva-img package out.xva dir/ova.xml dir/Ref:00/`, and by
              python tarfile (ustar, ova.xml first): snapport verify exit 0,
              info says sha1 and the size, import gives disk.raw byte for
              byte; store check clean.
"""

import json
import os
import random
import shutil
import sys
import tarfile

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402
import xvatest as X  # noqa: E402

K, M = S.K, S.M
EXE = TMP = None
RNG = random.Random(77)


def xva_img(*args, cwd=None):
    r = T.run(["xva-img"] + [str(a) for a in args], timeout=60, cwd=cwd)
    if r.crashed():
        T.check(False, "xva-img crashed or hung: %s" % r.describe())
    return r


def extract(xva, dest):
    """Every member of an XVA into dest (names checked: Ref:<n>/... or ova.xml)."""
    os.makedirs(dest)
    with tarfile.open(xva, "r:*") as t:
        for ti in t:
            if not (ti.isreg() and (ti.name == "ova.xml" or X.NAME_RE.match(ti.name))):
                T.fatal("%s: unexpected member %r (type %r)" % (xva, ti.name, ti.type))
            p = os.path.join(dest, ti.name)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(t.extractfile(ti).read())


def write_cfg(d, name, disks):
    """disks: [(file name, bytes)]; returns the cfg path."""
    os.makedirs(d, exist_ok=True)
    entries = []
    for i, (fn, data) in enumerate(disks):
        with open(os.path.join(d, fn), "wb") as f:
            f.write(data)
        entries.append("'format=raw, vdev=xvd%s, access=rw, target=%s'" % ("abcdefgh"[i], fn))
    cfg = os.path.join(d, name + ".cfg")
    with open(cfg, "w") as f:
        f.write("name = '%s'\ntype = 'hvm'\nmemory = 512\nvcpus = 2\ndisk = [ %s ]\n" % (name, ", ".join(entries)))
    return cfg


def import_and_compare(st, xva, name, expected, what):
    """verify 0, info sha1 + sizes, import, flattened disks == expected (list, in vdev order)."""
    r = T.sp(EXE, "verify", xva)
    T.check(r.rc == 0, "%s: snapport verify: %s" % (what, r.describe()))
    r = T.sp(EXE, "--json", "info", xva)
    if T.check(r.rc == 0, "%s: snapport info: %s" % (what, r.describe())):
        j = json.loads(r.out)
        T.check(j.get("checksum") == "sha1", "%s: info checksum %r, expected sha1" % (what, j.get("checksum")))
        T.check([d["virtual_size"] for d in j.get("disks", [])] == [len(e) for e in expected],
                "%s: info sizes %s, expected %s" % (what, [d["virtual_size"] for d in j.get("disks", [])],
                                                    [len(e) for e in expected]))
    r = st.sp("import", xva, "--name", name, timeout=60)
    if not T.check(r.rc == 0, "%s: snapport import: %s" % (what, r.describe())):
        return
    j = st.show(name, fatal=False) or {"disks": []}
    disks = [d for d in j["disks"] if d.get("vdi")]
    T.check(len(disks) == len(expected), "%s: imported VM has %d disks, expected %d" % (what, len(disks),
                                                                                         len(expected)))
    for d, e in zip(disks, expected):
        got = st.flatten(d["file"])
        if got is not None:
            T.same_bytes(got, e, "%s: imported disk %s" % (what, d["vdev"]))
    r = st.check()
    T.check(r.rc == 0, "%s: store check: %s" % (what, r.describe()))


def case_export(st):
    d1 = bytearray(6 * M)
    for b in (0, 1, 3):
        d1[b * M:(b + 1) * M] = RNG.randbytes(M)
    d1[4 * M + 12345:4 * M + 20000] = RNG.randbytes(20000 - 12345)
    d2 = bytearray(4 * M)
    d2[4 * M - 4096:] = RNG.randbytes(4096)
    d3 = bytearray(RNG.randbytes(5 * M + 512))
    d3[2 * M:3 * M] = bytes(M)
    d3[5 * M:] = bytes(512)
    srcs = [bytes(d1), bytes(d2), bytes(d3)]
    cfg = write_cfg(os.path.join(TMP, "src"), "exp", [("d1.raw", d1), ("d2.raw", d2), ("d3.raw", d3)])
    st.ok("vm", "create", "--config", cfg)
    xva = os.path.join(TMP, "exp.xva")
    st.ok("export", "exp", "-o", xva, "--digest", "sha1", timeout=60)
    ex = os.path.join(TMP, "exp.d")
    extract(xva, ex)
    show = st.show("exp")
    files = [dd["file"] for dd in show["disks"] if dd.get("vdi")]
    for n, src in enumerate(srcs):
        out = os.path.join(TMP, "xvaimg-%d.raw" % n)
        vdir = os.path.join(ex, "Ref:%02d" % n)
        if not T.check(os.path.isdir(vdir), "export: no folder %s in the extracted XVA: %s" % (vdir, os.listdir(ex))):
            continue
        r = xva_img("disk-export", vdir, out)
        if not T.check(r.rc == 0 and os.path.isfile(out), "xva-img disk-export Ref:%02d: %s" % (n, r.describe())):
            continue
        got = T.read_file(out)
        T.same_bytes(got, src, "xva-img disk-export of Ref:%02d vs the source" % n)
        flat = st.flatten(files[n]) if n < len(files) else None
        if flat is not None:
            T.same_bytes(got, flat, "xva-img disk-export of Ref:%02d vs snapport's flattened disk" % n)
    # the extracted folder packed again by xva-img
    rp = os.path.join(TMP, "repacked.xva")
    r = xva_img("package", rp, "exp.d/ova.xml", "exp.d/Ref:00/", "exp.d/Ref:01/", "exp.d/Ref:02/", cwd=TMP)
    if T.check(r.rc == 0 and os.path.isfile(rp), "xva-img package of the extracted export: %s" % r.describe()):
        names = [m.name for m in X.xva_members(rp)]
        T.check(names and names[0] == "ova.xml", "xva-img package: first member %r (test setup)" % names[:1])
        import_and_compare(st, rp, "exp-repacked", srcs, "snapport export repacked by xva-img")


def case_import(st):
    size = 6 * M
    disk = bytearray(size)
    disk[0:M] = RNG.randbytes(M)
    disk[2 * M + 5:2 * M + 5000] = RNG.randbytes(4995)
    disk[4 * M - 512:4 * M] = RNG.randbytes(512)     # block 3 ends with data
    disk = bytes(disk)                               # blocks 1, 4, 5 zero (5: the last)
    raw = os.path.join(TMP, "disk.raw")
    with open(raw, "wb") as f:
        f.write(disk)
    pk = os.path.join(TMP, "pk")
    os.makedirs(os.path.join(pk, "Ref:00"))
    r = xva_img("disk-import", os.path.join(pk, "Ref:00"), raw)
    if not T.check(r.rc == 0, "xva-img disk-import: %s" % r.describe()):
        return
    listing = sorted(os.listdir(os.path.join(pk, "Ref:00")))
    want = ["%08d%s" % (b, s) for b in (0, 2, 3, 5) for s in ("", ".checksum")]
    if listing != want:
        T.fatal("xva-img disk-import wrote %s, expected %s (xva-img behaves differently than 1.4.2)" % (listing, want))
    # ova.xml: from a snapport export of a one-disk VM of the same size (its VDI is Ref:00)
    cfg = write_cfg(os.path.join(TMP, "one"), "one", [("o.raw", bytes(size))])
    st.ok("vm", "create", "--config", cfg)
    one = os.path.join(TMP, "one.xva")
    st.ok("export", "one", "-o", one, "--digest", "sha1", timeout=60)
    mems = X.xva_members(one)
    if [m.name for m in mems][1:2] != ["Ref:00/00000000"]:
        T.fatal("the one-disk export does not stream Ref:00 (test setup): %s" % [m.name for m in mems][:4])
    with open(os.path.join(pk, "ova.xml"), "wb") as f:
        f.write(mems[0].data)

    out = os.path.join(TMP, "xvaimg.xva")
    r = xva_img("package", out, "pk/ova.xml", "pk/Ref:00/", cwd=TMP)
    if T.check(r.rc == 0 and os.path.isfile(out), "xva-img package: %s" % r.describe()):
        names = [m.name for m in X.xva_members(out)]
        T.check(names == ["ova.xml"] + ["Ref:00/" + n for n in want],
                "xva-img package wrote %s (test setup)" % names)
        import_and_compare(st, out, "from-xvaimg", [disk], "xva-img disk-import + package")

    # the same folder packed by python tarfile (ustar, ova.xml first)
    ms = [X.Member("ova.xml", mems[0].data)]
    for n in want:
        ms.append(X.Member("Ref:00/" + n, T.read_file(os.path.join(pk, "Ref:00", n))))
    out2 = X.write(os.path.join(TMP, "pytar.xva"), X.tar_bytes(ms))
    import_and_compare(st, out2, "from-pytar", [disk], "xva-img disk-import + python tarfile")


def main():
    global EXE, TMP
    EXE, TMP = T.setup()
    if not shutil.which("xva-img"):
        T.fatal("required peer tool xva-img not found in PATH (Debian package xva-img 1.4.2: apt-get install xva-img)")
    st = S.Store(EXE, os.path.join(TMP, "st"), os.path.join(TMP, "flat"))
    case_export(st)
    case_import(st)
    r = st.check()
    T.check(r.rc == 0, "store check at the end: %s" % r.describe())
    T.finish("test_xva_xvaimg")


if __name__ == "__main__":
    main()
