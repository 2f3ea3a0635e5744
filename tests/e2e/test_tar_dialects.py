"""OVAs and XVAs in every tar dialect (issue 11): snapport tells the kind
from the first *real* member, whatever headers stand before it.

An OVA and an XVA are exported from a VM with one 3 MiB disk of random
bytes; their members are then repacked here:
  pax-python      Python tarfile PAX_FORMAT, a pax header (././@PaxHeader,
                  type x) before every member, as COT writes them;
  pax-global      Python, a global pax header (type g) first;
  gnu-longname    Python GNU_FORMAT, the .ovf and .mf renamed to 130-byte
                  names (././@LongLink, type L), the manifest line of the
                  .ovf rewritten with its SHA-256 computed here;
  ustar-python    Python USTAR_FORMAT (the control);
  tar-posix       GNU tar --format=posix (./PaxHeaders/NAME with atime,
                  ctime of the extracted files);
  tar-posix-old   the same with older GNU tar's ./PaxHeaders.NNNN/NAME;
  tar-posix-global  GNU tar --format=posix --pax-option comment=... (a
                  /tmp/GlobalHead.* header first);
  tar-gnu         GNU tar --format=gnu with the 130-byte names.
Every repacked archive must: have the dialect's first header (the test
checks the fixture's typeflag and name); `info` name the right kind (ova or
xva) and the VM; `verify` exit 0; `import` without --format give a VM
whose disk is the source image byte for byte; the OVAs also through a pipe
(`import -`).
"""

import hashlib
import io
import os
import random
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402

M = 1024 * 1024
EXE = TMP = None
RNG = random.Random(2024)
LONG = "a-very-long-appliance-name-" * 5          # 135 characters: past a header's 100-byte name field


def read_members(path):
    with tarfile.open(path, "r:") as t:
        return [(ti.name, t.extractfile(ti).read()) for ti in t if ti.isreg()]


def python_tar(path, mems, fmt, pax_each=False, pax_global=None):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:", format=fmt, pax_headers=pax_global or {}) as t:
        for name, data in mems:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            ti.mtime = 1764300000.25                   # a float, as os.stat gives: COT's case
            if pax_each:
                ti.pax_headers = {"comment": "written by a COT-like tool"}
            t.addfile(ti, io.BytesIO(data))
    T.write_file(path, buf.getvalue())
    return path


def gnu_tar(path, mems, *opts):
    """GNU tar over the members written as files, in this order, no directory entries."""
    d = path + ".d"
    os.makedirs(d)
    for name, data in mems:
        os.makedirs(os.path.dirname(os.path.join(d, name)), exist_ok=True)
        T.write_file(os.path.join(d, name), data)
    r = T.run(["tar", "-cf", path, "-C", d, "--no-recursion"] + list(opts) + [n for n, _ in mems])
    if r.rc != 0:
        T.fatal("tar %s: %s" % (" ".join(opts), r.describe()))
    return path


def first_header(path):
    with open(path, "rb") as f:
        h = f.read(512)
    return h[:100].rstrip(b"\0").decode("ascii", "replace"), chr(h[156]) if h[156] else "0"


def long_names(mems):
    """The .ovf and .mf renamed to LONG + ext; the manifest's line for the
    .ovf names it anew, its digest computed here."""
    ovf = next(n for n, _ in mems if n.endswith(".ovf"))
    base = ovf[:-4]
    out = []
    for name, data in mems:
        if name.endswith(".mf"):
            lines = []
            for line in data.decode().splitlines():
                if line.startswith("SHA256(%s)" % ovf):
                    ovf_data = next(d for n, d in mems if n == ovf)
                    line = "SHA256(%s.ovf)= %s" % (LONG, hashlib.sha256(ovf_data).hexdigest())
                T.check(not line.startswith("SHA256(") or base + ".ovf" not in line, "manifest rewrite")
                lines.append(line)
            data = ("\n".join(lines) + "\n").encode()
            name = LONG + ".mf"
        elif name == ovf:
            name = LONG + ".ovf"
        out.append((name, data))
    return out


def check_archive(st, name, path, kind, want_first, image_sha, pipe=False):
    first, typ = first_header(path)
    T.check(want_first(first, typ), "%s: fixture: first header %r type %r is not the dialect's" % (name, first, typ))
    r = T.sp(EXE, "info", path)
    T.check(r.rc == 0 and ("(%s" % kind) in r.out and "vm:          src (" in r.out,
            "%s: info should name a %s: %s" % (name, kind, r.describe()))
    r = T.sp(EXE, "verify", path)
    T.check(r.rc == 0 and r.out.strip().endswith(": ok"), "%s: verify: %s" % (name, r.describe()))
    vm = "imp-" + name
    r = st.sp("import", path, "--name", vm, timeout=60)
    if T.check(r.rc == 0, "%s: import: %s" % (name, r.describe())):
        dig = st.disk_digests(vm, fatal=False) or {}
        T.check(dig.get("xvda") == image_sha, "%s: imported disk differs from the source" % name)
        st.ok("vm", "destroy", vm)
    if pipe:
        cmd = "cat '%s' | '%s' --store '%s' import - --name '%s'" % (path, EXE, st.dir, vm + "-pipe")
        p = subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=60)
        if T.check(p.returncode == 0, "%s: import - from a pipe: %r" % (name, p.stderr)):
            dig = st.disk_digests(vm + "-pipe", fatal=False) or {}
            T.check(dig.get("xvda") == image_sha, "%s: disk imported from a pipe differs" % name)
            st.ok("vm", "destroy", vm + "-pipe")


def is_pax(first, typ):
    return typ == "x"


def main():
    global EXE, TMP
    EXE, TMP = T.setup()
    T.need_tool("tar")
    d = os.path.join(TMP, "src")
    os.makedirs(d)
    image = RNG.randbytes(3 * M)
    T.write_file(os.path.join(d, "a.raw"), image)
    T.write_file(os.path.join(d, "a.cfg"), b"name = 'src'\ntype = 'hvm'\nmemory = 128\nvcpus = 1\n"
                 b"disk = [ 'format=raw, vdev=xvda, target=a.raw' ]\n")
    st = S.Store(EXE, os.path.join(TMP, "st"), os.path.join(TMP, "flat"))
    st.ok("vm", "create", "--config", os.path.join(d, "a.cfg"))
    ova, xva = os.path.join(TMP, "src.ova"), os.path.join(TMP, "src.xva")
    st.ok("export", "src", "-o", ova, timeout=60)
    st.ok("export", "src", "-o", xva, timeout=60)
    want = S.sha(image)
    ovam, xvam = read_members(ova), read_members(xva)
    T.check(ovam[0][0].endswith(".ovf") and xvam[0][0] == "ova.xml", "exports: first members %s %s" % (
        ovam[0][0], xvam[0][0]))
    longm = long_names(ovam)

    def p(n):
        return os.path.join(TMP, n)

    # ---- OVAs
    check_archive(st, "ova-ustar-python", python_tar(p("u.ova"), ovam, tarfile.USTAR_FORMAT), "ova",
                  lambda f, t: f.endswith(".ovf") and t == "0", want)
    check_archive(st, "ova-pax-python", python_tar(p("px.ova"), ovam, tarfile.PAX_FORMAT, pax_each=True), "ova",
                  lambda f, t: "PaxHeader" in f and t == "x", want, pipe=True)
    check_archive(st, "ova-pax-global", python_tar(p("pg.ova"), ovam, tarfile.PAX_FORMAT,
                                                   pax_global={"comment": "global"}), "ova",
                  lambda f, t: t == "g", want)
    check_archive(st, "ova-pax-longname", python_tar(p("pl.ova"), longm, tarfile.PAX_FORMAT), "ova",
                  is_pax, want)
    check_archive(st, "ova-gnu-longname", python_tar(p("gl.ova"), longm, tarfile.GNU_FORMAT), "ova",
                  lambda f, t: f == "././@LongLink" and t == "L", want, pipe=True)
    check_archive(st, "ova-tar-posix", gnu_tar(p("tp.ova"), ovam, "--format=posix"), "ova",
                  lambda f, t: f.startswith("./PaxHeaders/") and t == "x", want, pipe=True)
    check_archive(st, "ova-tar-posix-old", gnu_tar(p("to.ova"), ovam, "--format=posix",
                                                   "--pax-option=exthdr.name=%d/PaxHeaders.%p/%f"), "ova",
                  lambda f, t: f.startswith("./PaxHeaders.") and t == "x", want)
    check_archive(st, "ova-tar-posix-global", gnu_tar(p("tg.ova"), ovam, "--format=posix",
                                                      "--pax-option=comment=snapport test"), "ova",
                  lambda f, t: "GlobalHead" in f and t == "g", want)
    check_archive(st, "ova-tar-gnu", gnu_tar(p("tgnu.ova"), longm, "--format=gnu"), "ova",
                  lambda f, t: f == "././@LongLink" and t == "L", want)

    # ---- XVAs
    check_archive(st, "xva-pax-python", python_tar(p("px.xva"), xvam, tarfile.PAX_FORMAT, pax_each=True), "xva",
                  lambda f, t: "PaxHeader" in f and t == "x", want, pipe=True)
    check_archive(st, "xva-gnu-python", python_tar(p("g.xva"), xvam, tarfile.GNU_FORMAT), "xva",
                  lambda f, t: f == "ova.xml", want)
    check_archive(st, "xva-tar-posix", gnu_tar(p("tp.xva"), xvam, "--format=posix"), "xva",
                  lambda f, t: f.startswith("./PaxHeaders/") and t == "x", want)
    check_archive(st, "xva-tar-posix-global", gnu_tar(p("tg.xva"), xvam, "--format=posix",
                                                      "--pax-option=comment=snapport test"), "xva",
                  lambda f, t: "GlobalHead" in f and t == "g", want)
    T.finish("test_tar_dialects")


if __name__ == "__main__":
    main()
