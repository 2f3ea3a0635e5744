"""Damaged and hostile OVAs: verify and import must refuse them cleanly
(issue 5; CLI.md "Exit status").

A good OVA is exported from a VM with two disks; damaged copies are rebuilt
member by member with python tarfile (ustar). Where the point of a case is
a check after the manifest, the .mf is rebuilt with the right SHA256 of the
changed members (and, for a truncated disk, the .ovf's ovf:size too), so the
case reaches the named check instead of stopping at the manifest. Controls:
the unchanged rewrite and the rewrite with a rebuilt .mf verify and import.

For every damaged copy:
  verify     exit 1, stderr exactly one line "snapport: ..." that names the
             archive or the damaged member;
  import     exit 3, one such line; the store is unchanged (vm list, the
             files under vdis/ by name and content, the names of the other
             store files, every catalog row), staging/ empty or absent,
             store check exit 0;
  escape     nothing appears outside: no file named after the hostile
             members anywhere under the scratch folder, in its parent, at
             /abs or /tmp; the working folder (empty) stays empty.
Cases: manifest mismatch (one hex digit); a References file missing from the
tar; a VMDK member truncated (tar size and .mf fixed; with the .ovf's
ovf:size fixed too, and left stale); a corrupted grain (bytes flipped in the
first grain's deflate data); a grain table entry pointing past the end of the
VMDK (found by parsing the VMDK stream: header, grain and metadata markers);
an .ovf that is not well-formed; an unknown section with
ovf:required="true"; members ../x and /abs/x, unreferenced and in place of a
disk (referenced by the .ovf); an external entity (XXE, internal subset and
external DTD) and billion laughs in the .ovf; a .mf entry for a file not in
the archive; a bad manifest through stdin (verify - and import -).
"""

import hashlib
import os
import random
import re
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402
import xvatest as X  # noqa: E402
import hostile as H  # noqa: E402

K, M = S.K, S.M
EXE = TMP = CWD = None
RNG = random.Random(5150)
A_SIZE, B_SIZE = 16 * M, 24 * M + 512
EVIL = "sp_evil_ova_%d" % os.getpid()
SECTOR = 512


def run(*args, stdin=None, timeout=60):
    """snapport in the empty working folder CWD; stdin: a file path."""
    e = dict(os.environ)
    for k in ("SNAPPORT_STORE", "SNAPPORT_CRASH_AFTER", "SNAPPORT_CRASH_LOG", "SNAPPORT_LOCK_TIMEOUT"):
        e.pop(k, None)
    argv = [EXE] + [str(a) for a in args]
    f = open(stdin, "rb") if stdin else subprocess.DEVNULL
    try:
        p = subprocess.run(argv, stdin=f, capture_output=True, timeout=timeout, cwd=CWD, env=e)
        return T.Result(argv, p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"))
    except subprocess.TimeoutExpired as ex:
        return T.Result(argv, -1, "", (ex.stderr or b"").decode("utf-8", "replace"), timed_out=True)
    finally:
        if stdin:
            f.close()


# ---------------------------------------------------------------- the good archive

class Ova:
    """The members of the good OVA: name -> bytes, in tar order."""

    def __init__(self, mems):
        self.order = [m.name for m in mems]
        self.data = {m.name: m.data for m in mems}
        self.name = self.order[0][:-4]
        self.ovf = self.name + ".ovf"
        self.mf = self.name + ".mf"
        self.disk1 = self.name + "-disk1.vmdk"
        self.disk2 = self.name + "-disk2.vmdk"


def make_good():
    d = os.path.join(TMP, "src")
    os.makedirs(d)
    a = bytearray(A_SIZE)
    a[0:M] = RNG.randbytes(M)
    a[5 * M + 3000:5 * M + 3000 + 400 * K] = RNG.randbytes(400 * K)
    a[A_SIZE - 4096:] = RNG.randbytes(4096)
    b = bytearray(B_SIZE)
    b[2 * M:3 * M] = RNG.randbytes(M)
    b[B_SIZE - 512:] = b"\x77" * 512
    with open(os.path.join(d, "a.raw"), "wb") as f:
        f.write(a)
    with open(os.path.join(d, "b.raw"), "wb") as f:
        f.write(b)
    cfg = os.path.join(d, "bad.cfg")
    with open(cfg, "w") as f:
        f.write("name = 'src'\ntype = 'hvm'\nmemory = 256\nvcpus = 1\n"
                "disk = [ 'format=raw, vdev=xvda, target=a.raw', 'format=raw, vdev=xvdb, target=b.raw' ]\n"
                "vif = [ 'mac=00:16:3e:01:02:03' ]\n")
    st = S.Store(EXE, os.path.join(TMP, "st_src"), os.path.join(TMP, "flat_src"))
    st.ok("vm", "create", "--config", cfg)
    p = os.path.join(TMP, "good.ova")
    st.ok("export", "src", "-o", p, timeout=60)
    ova = Ova(X.members(T.read_file(p)))
    want = [ova.ovf, ova.mf, ova.disk1, ova.disk2]
    if ova.order != want:
        T.fatal("the good export does not have the expected members (test setup): %s, expected %s" % (
            ova.order, want))
    return ova, bytes(a), bytes(b)


# ---------------------------------------------------------------- builders

def mf_text(pairs):
    """A SHA256 manifest of [(name, bytes)]."""
    return "".join("SHA256(%s)= %s\n" % (n, hashlib.sha256(d).hexdigest()) for n, d in pairs).encode()


def build(ova, changes=None, drop=(), rename=None, insert=None, mf=True, extra_mf=""):
    """The archive bytes after: changes {name: new bytes}; drop: members left
    out (and out of a rebuilt .mf); rename {old: new} (member and .mf);
    insert [(after_name, name, bytes)]; mf True: rebuild the .mf over every
    disk and the .ovf present, False: keep the original .mf, bytes: use
    those; extra_mf: text appended to a rebuilt .mf."""
    changes = changes or {}
    rename = rename or {}
    mems = []
    for n in ova.order:
        if n in drop:
            continue
        mems.append([rename.get(n, n), changes.get(n, ova.data[n])])
    for after, name, data in insert or []:
        i = [m[0] for m in mems].index(after)
        mems.insert(i + 1, [name, data])
    if mf is True:
        listed = [(n, d) for n, d in mems if n != ova.mf and (n.endswith(".ovf") or n in
                                                               [rename.get(x, x) for x in (ova.disk1, ova.disk2)])]
        new = mf_text(listed) + extra_mf.encode()
    elif mf is False:
        new = ova.data[ova.mf]
    else:
        new = mf
    for m in mems:
        if m[0] == ova.mf:
            m[1] = new
    return X.tar_bytes([X.Member(n, d, mode=0o644) for n, d in mems])


def ovf_text(ova):
    return ova.data[ova.ovf].decode()


def set_file_size(ovf, href, size):
    pat = re.compile(r'(<File ovf:href="%s" ovf:id="[^"]+" ovf:size=")(\d+)(")' % re.escape(href))
    if len(pat.findall(ovf)) != 1:
        T.fatal("the .ovf has no single File %s with ovf:size (test setup)" % href)
    return pat.sub(lambda m: m.group(1) + str(size) + m.group(3), ovf)


# ---------------------------------------------------------------- VMDK stream parsing (independent)

vmdk_layout = H.vmdk_layout


def corrupt_first_grain(data):
    _, marks = vmdk_layout(data)
    g = [m for m in marks if m[1] == "grain"][0]
    b = bytearray(data)
    start = g[0] + 12
    mid = start + g[3] // 2
    for i in range(mid, mid + 16):
        b[i] ^= 0x5A
    return bytes(b)


def gt_entry_past_end(data):
    """Set the first non-zero entry of the first grain table to a sector far past the end."""
    _, marks = vmdk_layout(data)
    gts = [m for m in marks if m[1] == 1]
    if not gts:
        T.fatal("the exported VMDK has no grain table marker (test setup)")
    off, _, nsec, _ = gts[0]
    b = bytearray(data)
    base = off + SECTOR
    for i in range(nsec * SECTOR // 4):
        (v,) = struct.unpack_from("<I", b, base + 4 * i)
        if v:
            struct.pack_into("<I", b, base + 4 * i, 0x7FFFFF00)
            return bytes(b)
    T.fatal("the first grain table of the exported VMDK is all zero (test setup)")


def truncated(data):
    """The VMDK cut at a sector boundary in the middle of its grains."""
    cut = len(data) // 2 // SECTOR * SECTOR
    return data[:cut]


# ---------------------------------------------------------------- checks

EVIL_OUTSIDE = ["/abs/" + EVIL, "/tmp/" + EVIL, "/" + EVIL]


def no_escape(what):
    H.no_escape(what, EVIL_OUTSIDE, EVIL, TMP, [CWD])
    parent = os.path.dirname(TMP)
    for n in os.listdir(parent):
        T.check(EVIL not in n and n != "evil", "%s: %s appeared in the scratch folder's parent" % (what, n))
    for root, dirs, files in os.walk(TMP):
        for n in files + dirs:
            if n == "evil":
                T.check(False, "%s: a file named after a hostile member appeared: %s" % (what, os.path.join(root, n)))


def expect_refused(r, what, path, rc, members):
    label = "stdin" if path == "-" else os.path.basename(path)
    S.expect_failure(r, what, rc, [label] + list(members))
    T.check("ok" not in r.out.split(), "%s: printed ok: %r" % (what, r.out))


def staging_clean(st, what):
    sd = os.path.join(st.dir, "staging")
    if os.path.isdir(sd):
        T.check(os.listdir(sd) == [], "%s: files left in staging/: %s" % (what, os.listdir(sd)))


def bad_case(st, name, data, members=(), stdin=False):
    path = X.write(os.path.join(TMP, "bad-%s.ova" % name), data)
    before = X.fingerprint(st)
    r = run("verify", path)
    expect_refused(r, "verify %s" % name, path, 1, members)
    if stdin:
        r = run("verify", "-", stdin=path)
        expect_refused(r, "verify - < %s" % name, "-", 1, members)
    r = run("--store", st.dir, "import", path, "--name", "imp-" + name)
    expect_refused(r, "import %s" % name, path, 3, members)
    if stdin:
        r = run("--store", st.dir, "import", "-", "--name", "imp-" + name, "--format", "ova", stdin=path)
        expect_refused(r, "import - < %s" % name, "-", 3, members)
    after = X.fingerprint(st)
    for m in X.diff_fingerprint(before, after):
        T.check(False, "import %s: %s" % (name, m))
    staging_clean(st, "import %s" % name)
    r = st.check()
    T.check(r.rc == 0, "store check after import %s: %s" % (name, r.describe()))
    no_escape(name)


def good_case(st, name, data, a, b):
    path = X.write(os.path.join(TMP, "ok-%s.ova" % name), data)
    r = run("verify", path)
    T.check(r.rc == 0, "verify %s (control): %s" % (name, r.describe()))
    vm = "ok-" + name
    r = run("--store", st.dir, "import", path, "--name", vm)
    if T.check(r.rc == 0, "import %s (control): %s" % (name, r.describe())):
        j = st.show(vm, fatal=False) or {"disks": []}
        flats = [st.flatten(d["file"]) for d in j["disks"] if d["vdi"] and not d["cdrom"]]
        T.check(len(flats) == 2 and flats[0] == a and flats[1] == b, "import %s (control): disk contents differ" % name)
        st.ok("vm", "destroy", vm)
    no_escape(name)


LAUGHS = T.billion_laughs_prolog("Envelope")
XXE = T.xxe_prolog("Envelope", "/etc/passwd")
XXE_DTD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE Envelope SYSTEM "file:///etc/passwd">
"""


def doctype_ovf(ova, decl, ref):
    """The .ovf with decl as its prolog and ref in place of the VM's <Name>."""
    x = ovf_text(ova)
    body = x[x.index("<Envelope"):]
    if "<Name>src</Name>" not in body:
        T.fatal("the .ovf has no <Name>src</Name> (test setup)")
    return (decl + body.replace("<Name>src</Name>", "<Name>%s</Name>" % ref, 1)).encode()


def main():
    global EXE, TMP, CWD
    EXE, TMP = T.setup()
    CWD = os.path.join(TMP, "cwd")
    os.makedirs(CWD)
    for p in EVIL_OUTSIDE:
        if os.path.lexists(p):
            os.unlink(p)
    ova, a, b = make_good()
    st = S.Store(EXE, os.path.join(TMP, "st"), os.path.join(TMP, "flat"))
    st.ok("vm", "create", "--config", os.path.join(TMP, "src", "bad.cfg"))   # the store is not empty
    stok = S.Store(EXE, os.path.join(TMP, "st_ok"), os.path.join(TMP, "flat_ok"))
    d1, d2, ovf = ova.disk1, ova.disk2, ova.ovf

    # ---- controls: the python rewrite, and with a rebuilt .mf
    good_case(stok, "control", build(ova, mf=False), a, b)
    good_case(stok, "control-mf-rebuilt", build(ova), a, b)

    # ---- manifest
    mf = ova.data[ova.mf].decode()
    line = [l for l in mf.splitlines() if l.startswith("SHA256(%s)" % d1)][0]
    h = line.split("= ")[1]
    bad_line = line.replace(h, ("0" if h[10] != "0" else "1").join([h[:10], h[11:]]))
    bad_case(st, "mf-mismatch", build(ova, mf=mf.replace(line, bad_line).encode()), [d1], stdin=True)
    bad_case(st, "mf-entry-not-in-archive",
             build(ova, extra_mf="SHA256(ghost.vmdk)= %s\n" % hashlib.sha256(b"ghost").hexdigest()), ["ghost.vmdk"])

    # ---- disks
    bad_case(st, "reference-missing", build(ova, drop=[d2]), [d2])
    cut = truncated(ova.data[d1])
    bad_case(st, "vmdk-truncated", build(ova, changes={d1: cut, ovf: set_file_size(ovf_text(ova), d1, len(cut))
                                                        .encode()}), [d1])
    bad_case(st, "vmdk-truncated-stale-size", build(ova, changes={d1: cut}), [d1])
    bad_case(st, "grain-corrupt", build(ova, changes={d1: corrupt_first_grain(ova.data[d1])}), [d1])
    bad_case(st, "gt-entry-past-end", build(ova, changes={d2: gt_entry_past_end(ova.data[d2])}), [d2])

    # ---- the descriptor
    x = ovf_text(ova)
    bad_case(st, "ovf-not-well-formed", build(ova, changes={ovf: x[:len(x) // 2].encode()}), [ovf])
    req = ('<foo:SecretSection ovf:required="true" xmlns:foo="urn:example:foo">'
           '<Info>must be understood</Info></foo:SecretSection>\n  </VirtualSystem>')
    if "</VirtualSystem>" not in x:
        T.fatal("the .ovf has no </VirtualSystem> (test setup)")
    bad_case(st, "ovf-required-unknown-section",
             build(ova, changes={ovf: x.replace("</VirtualSystem>", req, 1).encode()}), [ovf])
    bad_case(st, "ovf-xxe", build(ova, changes={ovf: doctype_ovf(ova, XXE, "&xxe;")}), [ovf])
    bad_case(st, "ovf-xxe-external-dtd", build(ova, changes={ovf: doctype_ovf(ova, XXE_DTD, "src")}), [ovf])
    bad_case(st, "ovf-billion-laughs", build(ova, changes={ovf: doctype_ovf(ova, LAUGHS, "&lol9;")}), [ovf])

    # ---- hostile member names: unreferenced, and in place of a disk
    for label, evil in (("dotdot", "../" + EVIL), ("dotdot-deep", "../../../" + EVIL), ("absolute", "/abs/" + EVIL)):
        bad_case(st, label + "-member", build(ova, insert=[(ova.mf, evil, b"evil")]), [evil])
        bad_case(st, label + "-member-after-disks", build(ova, insert=[(d2, evil, b"evil")]), [evil])
        x2 = x.replace('ovf:href="%s"' % d2, 'ovf:href="%s"' % evil, 1)
        bad_case(st, label + "-as-disk", build(ova, rename={d2: evil}, changes={ovf: x2.encode()}), [evil])

    no_escape("the end")
    T.finish("test_ova_bad")


if __name__ == "__main__":
    main()
