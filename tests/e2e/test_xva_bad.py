"""Damaged and hostile XVAs: verify and import must refuse them cleanly
(CLI.md "Exit status", reference/xva.md sections 1-2).

A good XVA is exported from a VM with two disks (Ref:00: 6 MiB, blocks 0 1
3 5 stored, 2 and 4 zero; Ref:01: 3 MiB); damaged copies are rebuilt
member by member with python tarfile (ustar). The unchanged rewrite is the
control: it must verify and import. Legal variants (a block and its
checksum both left out = zeros; a zero-length keepalive block as XAPI
sends them, later counters shifted; the VDIs in another order than their
ids', each one's blocks together, as image builders write them) must
import with exactly the expected bytes.

For every damaged copy:
  verify     exit 1 (3 only for what is not an archive at all), one line
             "snapport: ..." naming the archive and, where the damage is in
             one member, that member (e.g. Ref:00/00000003);
  verify -   the same from stdin for some;
  import     exit 3, one line naming the archive; nothing added to the
             store (vm list, every file under vdis/ by name and content),
             store check exit 0;
  escape     no file appears outside the store: the absolute targets of
             the hostile names (/tmp/sp_evil_*), the working directory (an
             empty folder) and the scratch folder are checked.
Cases: flipped byte in a block (xxhash and sha1 archives), a changed
checksum member, block without checksum, checksum without block, last block
of a VDI missing (followed by the next VDI / by the end), truncated in a
block (plain and gzip), blocks swapped, a duplicated block,
malformed ova.xml, ova.xml missing or not first, virtual_size smaller /
larger / not matching the last block, members ../x, /tmp/x, Ref:00/../x,
a directory entry, a symlink and a hard link in place of a block, a member
after the last VDI, DOCTYPE with billion-laughs entities and with an
external (XXE) entity, an empty file, random bytes, a missing file, bytes
in lrzip/lzop/grzip compression (refused without running those programs).
"""

import gzip
import json
import os
import random
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402
import xvatest as X  # noqa: E402
import hostile as H  # noqa: E402

K, M = S.K, S.M
EXE = TMP = CWD = None
RNG = random.Random(4242)
A_SIZE, B_SIZE = 6 * M, 3 * M
EVIL = "sp_evil_%d" % os.getpid()
EVIL_PATHS = ["/tmp/" + EVIL, "/tmp/" + EVIL + "_abs", "/tmp/" + EVIL + "_tail", "/tmp/" + EVIL + "_link"]


def run(*args, stdin=None, timeout=T.TIMEOUT, path_first=None):
    """snapport in the empty working folder CWD; stdin: a file path;
    path_first: a folder put first in PATH."""
    e = dict(os.environ)
    if path_first:
        e["PATH"] = path_first + os.pathsep + e.get("PATH", "")
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

def make_good():
    d = os.path.join(TMP, "src")
    os.makedirs(d)
    a = bytearray(A_SIZE)
    for b in (0, 1, 3, 5):
        a[b * M:(b + 1) * M] = RNG.randbytes(M)
    b_ = bytearray(RNG.randbytes(B_SIZE))
    with open(os.path.join(d, "a.raw"), "wb") as f:
        f.write(a)
    with open(os.path.join(d, "b.raw"), "wb") as f:
        f.write(b_)
    cfg = os.path.join(d, "bad.cfg")
    with open(cfg, "w") as f:
        f.write("name = 'src'\ntype = 'hvm'\nmemory = 256\nvcpus = 1\n"
                "disk = [ 'format=raw, vdev=xvda, target=a.raw', 'format=raw, vdev=xvdb, target=b.raw' ]\n"
                "vif = [ 'mac=00:16:3e:01:02:03' ]\n")
    st = S.Store(EXE, os.path.join(TMP, "st_src"), os.path.join(TMP, "flat_src"))
    st.ok("vm", "create", "--config", cfg)
    good = {}
    for label, args in (("xxhash", []), ("sha1", ["--digest", "sha1"])):
        p = os.path.join(TMP, "good-%s.xva" % label)
        st.ok("export", "src", "-o", p, *args, timeout=60)
        good[label] = p
    mems = X.xva_members(good["xxhash"])
    names = [m.name for m in mems]
    want = ["ova.xml"] + ["Ref:00/%08d%s" % (b, s) for b in (0, 1, 3, 5) for s in ("", ".xxhash")] + \
           ["Ref:01/%08d%s" % (b, s) for b in (0, 1, 2) for s in ("", ".xxhash")]
    if names != want:
        T.fatal("the good export does not have the expected members (test setup):\n%s\nexpected\n%s" % (names, want))
    return good, bytes(a), bytes(b_)


# ---------------------------------------------------------------- damage builders

def pair(mems, name):
    """Indexes of a block member and its checksum member."""
    i = X.find(mems, name)
    return i, i + 1


def without(mems, *names):
    return [m for m in mems if m.name not in names]


def flipped(mems, name, at=1000):
    out = list(mems)
    i = X.find(out, name)
    d = bytearray(out[i].data)
    d[at] ^= 0x01
    out[i] = X.Member(out[i].name, bytes(d), out[i].type, out[i].mode, out[i].mtime)
    return out


def renamed(mems, old, new):
    out = list(mems)
    i = X.find(out, old)
    out[i] = X.Member(new, out[i].data, out[i].type, out[i].mode, out[i].mtime)
    return out


def with_xml(mems, xml):
    out = list(mems)
    out[0] = X.Member("ova.xml", xml.encode() if isinstance(xml, str) else xml)
    return out


def swap_pairs(mems, n1, n2):
    out = list(mems)
    i1, j1 = pair(out, n1)
    i2, j2 = pair(out, n2)
    out[i1], out[i2] = out[i2], out[i1]
    out[j1], out[j2] = out[j2], out[j1]
    return out


def insert_after(mems, name, member):
    out = list(mems)
    i = X.find(out, name) if name else -1
    out.insert(i + 1, member)
    return out


LAUGHS = T.billion_laughs_prolog("value")
XXE = T.xxe_prolog("value", "/etc/hostname")


def doctype_xml(xml, decl, ref):
    """ova.xml with decl in place of its prolog and ref as the VM's name."""
    body = xml[xml.index("<value>"):] if xml.startswith("<?xml") else xml
    pat = "<name>name_label</name><value>src</value>"
    if pat not in body:
        T.fatal("ova.xml: the VM name_label 'src' not found (test setup)")
    return decl + body.replace(pat, "<name>name_label</name><value>%s</value>" % ref, 1)


# ---------------------------------------------------------------- checks

def no_escape(what):
    H.no_escape(what, EVIL_PATHS, "sp_evil", TMP, [CWD])


def expect_refused(r, what, path, rcs, words):
    if r.crashed():
        return T.check(False, "%s: crashed or hung: %s" % (what, r.describe()))
    ok = T.check(r.rc in rcs, "%s: exit %s, expected %s: %s" % (what, r.rc, " or ".join(map(str, rcs)),
                                                                 r.describe()))
    lines = S.error_lines(r)
    if T.check(len(lines) == 1 and lines[0].startswith("snapport: "),
               "%s: expected one 'snapport: ...' line on stderr, got %r" % (what, r.err)):
        label = "stdin" if path == "-" else os.path.basename(path)
        T.check(label in lines[0], "%s: the message does not name the archive %s: %r" % (what, label, lines[0]))
        T.named_once(lines[0], what)
        for w in words:
            T.check(w in lines[0], "%s: the message does not mention %r: %r" % (what, w, lines[0]))
    return ok


def bad_case(st, name, data, words=(), verify_rcs=(1,), stdin=False):
    """data: the bytes of the damaged archive."""
    path = X.write(os.path.join(TMP, "bad-%s.xva" % name), data)
    before = X.fingerprint(st)
    r = run("verify", path)
    expect_refused(r, "verify %s" % name, path, verify_rcs, words)
    T.check(r.out.strip() == "" or "ok" not in r.out.split(), "verify %s printed ok: %r" % (name, r.out))
    if stdin:
        r = run("verify", "-", stdin=path)
        expect_refused(r, "verify - < %s" % name, "-", verify_rcs, words)
    r = run("--json", "info", path)
    T.check(r.rc != 0 and not r.crashed(), "info %s: exit %s, expected a failure: %s" % (name, r.rc, r.describe()))
    r = run("--store", st.dir, "import", path, "--name", "imp-" + name, timeout=60)
    expect_refused(r, "import %s" % name, path, (3,), ())
    if stdin:
        r = run("--store", st.dir, "import", "-", "--name", "imp-" + name, stdin=path, timeout=60)
        expect_refused(r, "import - < %s" % name, "-", (3,), ())
    after = X.fingerprint(st)
    for m in X.diff_fingerprint(before, after):
        T.check(False, "import %s: %s" % (name, m))
    r = st.check()
    T.check(r.rc == 0, "store check after import %s: %s" % (name, r.describe()))
    no_escape(name)


def good_case(st, name, data, a_expect, b_expect):
    """A legal variant: verify 0, import, the disks are a_expect/b_expect."""
    path = X.write(os.path.join(TMP, "ok-%s.xva" % name), data)
    r = run("verify", path)
    T.check(r.rc == 0, "verify %s (a legal XVA): %s" % (name, r.describe()))
    r = run("--json", "info", path)
    if T.check(r.rc == 0, "info %s: %s" % (name, r.describe())):
        j = json.loads(r.out)
        T.check([d["virtual_size"] for d in j["disks"]] == [A_SIZE, B_SIZE], "info %s: sizes %s" % (name, j))
    vm = "ok-" + name
    r = run("--store", st.dir, "import", path, "--name", vm, timeout=60)
    if T.check(r.rc == 0, "import %s (a legal XVA): %s" % (name, r.describe())):
        dig = st.disk_digests(vm, fatal=False) or {}
        T.check(dig.get("xvda") == S.sha(a_expect), "import %s: xvda content wrong" % name)
        T.check(dig.get("xvdb") == S.sha(b_expect), "import %s: xvdb content wrong" % name)
        r = st.check()
        T.check(r.rc == 0, "store check after import %s: %s" % (name, r.describe()))
        st.ok("vm", "destroy", vm)
    no_escape(name)


# ---------------------------------------------------------------- main

# Compressions libarchive leaves to a program of that name (no library):
# their magic bytes and then zeros.
OUTSIDE_FILTERS = {
    "lrzip": b"LRZI\x00\x06" + bytes(64),
    "lzop": b"\x89LZO\x00\r\n\x1a\n" + bytes(64),
    "grzip": b"GRZipII\x00\x02\x04:)" + bytes(64),
}


def no_outside_programs():
    """An archive in such a compression is refused without running anything:
    programs of those names first in PATH must not run (fuzzing found the
    reader exec'ing lrzip -d)."""
    bindir = os.path.join(TMP, "fakebin")
    os.makedirs(bindir)
    marker = os.path.join(TMP, "outside-program-ran")
    for prog in OUTSIDE_FILTERS:
        p = os.path.join(bindir, prog)
        with open(p, "w") as f:
            f.write("#!/bin/sh\necho %s >> %s\ncat >/dev/null\n" % (prog, marker))
        os.chmod(p, 0o755)
    for prog, data in OUTSIDE_FILTERS.items():
        path = os.path.join(TMP, prog + ".xva")
        with open(path, "wb") as f:
            f.write(data)
        r = run("verify", path, path_first=bindir)
        expect_refused(r, "verify of %s bytes" % prog, path, (1, 3), [])
        T.check(not os.path.exists(marker), "verify of %s bytes ran an outside program: %s" % (prog, r.describe()))


def main():
    global EXE, TMP, CWD
    EXE, TMP = T.setup()
    CWD = os.path.join(TMP, "cwd")
    os.makedirs(CWD)
    for p in EVIL_PATHS:
        if os.path.lexists(p):
            os.unlink(p)
    good, a, b = make_good()
    mems = X.xva_members(good["xxhash"])
    smems = X.xva_members(good["sha1"])
    xml = mems[0].data.decode()
    tar = X.tar_bytes

    st = S.Store(EXE, os.path.join(TMP, "st"), os.path.join(TMP, "flat"))
    st.ok("vm", "create", "--config", os.path.join(TMP, "src", "bad.cfg"))   # the store is not empty
    stok = S.Store(EXE, os.path.join(TMP, "st_ok"), os.path.join(TMP, "flat_ok"))

    # ---- the control and the legal variants
    good_case(stok, "control", tar(mems), a, b)
    good_case(stok, "control-sha1", tar(smems), a, b)
    a3 = a[:3 * M] + bytes(M) + a[4 * M:]
    good_case(stok, "block3-and-sum-absent", tar(without(mems, "Ref:00/00000003", "Ref:00/00000003.xxhash")), a3, b)
    # a zero-length keepalive block (XAPI sends them while skipping zeros):
    # the counter advances, the offset does not; later counters shift by one
    ka = list(mems)
    i = X.find(ka, "Ref:00/00000003")
    for c in (5, 3):
        ka = renamed(ka, "Ref:00/%08d" % c, "Ref:00/%08d" % (c + 1))
        ka = renamed(ka, "Ref:00/%08d.xxhash" % c, "Ref:00/%08d.xxhash" % (c + 1))
    ka.insert(i, X.Member("Ref:00/00000002", b""))
    ka.insert(i + 1, X.Member("Ref:00/00000002.xxhash", X.xxh64_hex(b"").encode()))
    good_case(stok, "keepalive", tar(ka), a, b)
    # the VDIs not in strcmp order of their ids: each is told by its folder
    good_case(stok, "swapped-vdis", tar([mems[0]] + [m for m in mems if m.name.startswith("Ref:01/")]
                                        + [m for m in mems if m.name.startswith("Ref:00/")]), a, b)

    # ---- block damage
    bad_case(st, "flip", tar(flipped(mems, "Ref:00/00000003")), ["Ref:00/00000003"], stdin=True)
    bad_case(st, "flip-sha1", tar(flipped(smems, "Ref:00/00000003")), ["Ref:00/00000003"])
    bad_case(st, "flip-first", tar(flipped(mems, "Ref:00/00000000", at=0)), ["Ref:00/00000000"])
    bad_case(st, "flip-last-vdi", tar(flipped(mems, "Ref:01/00000002", at=M - 1)), ["Ref:01/00000002"])
    sm = list(mems)
    i = X.find(sm, "Ref:00/00000003.xxhash")
    s = sm[i].data.decode()
    sm[i] = X.Member(sm[i].name, (("0" if s[0] != "0" else "1") + s[1:]).encode())
    bad_case(st, "changed-sum", tar(sm), ["Ref:00/00000003"])
    bad_case(st, "block-without-sum", tar(without(mems, "Ref:00/00000003.xxhash")), ["Ref:00/00000003"])
    bad_case(st, "sum-without-block", tar(without(mems, "Ref:00/00000003")), ["Ref:00/00000003"])
    bad_case(st, "last-block-missing", tar(without(mems, "Ref:00/00000005", "Ref:00/00000005.xxhash")),
             ["Ref:00"])
    bad_case(st, "last-block-of-last-vdi-missing",
             tar(without(mems, "Ref:01/00000002", "Ref:01/00000002.xxhash")), ["Ref:01"])
    bad_case(st, "only-first-vdi", tar([m for m in mems if not m.name.startswith("Ref:01/")]), ["Ref:01"])
    bad_case(st, "swapped-blocks", tar(swap_pairs(mems, "Ref:00/00000001", "Ref:00/00000003")), ["Ref:00/0000000"])
    dup = list(mems)
    i, j = pair(dup, "Ref:00/00000001")
    dup[j + 1:j + 1] = [dup[i], dup[j]]
    bad_case(st, "duplicated-block", tar(dup), ["Ref:00/00000001"])

    # ---- truncation
    plain = tar(mems)
    off = mems[X.find(mems, "Ref:00/00000003")].offset_data + 5000
    bad_case(st, "truncated-in-block", plain[:off], stdin=True)
    bad_case(st, "truncated-in-header", plain[:mems[X.find(mems, "Ref:01/00000000")].offset + 100])
    gz = gzip.compress(plain, mtime=0)
    bad_case(st, "gzip-truncated", gz[:len(gz) // 2])
    gzf = bytearray(gz)
    gzf[len(gz) // 2] ^= 0xff
    bad_case(st, "gzip-flipped", bytes(gzf))

    # ---- ova.xml
    bad_case(st, "xml-not-well-formed", tar(with_xml(mems, xml[:len(xml) // 2])), ["ova.xml"])
    bad_case(st, "xml-garbage", tar(with_xml(mems, "<value><struct><member>&bogus;</value>")), ["ova.xml"])
    bad_case(st, "xml-not-first", tar(mems[1:3] + [mems[0]] + mems[3:]), ["ova.xml"])
    bad_case(st, "xml-missing", tar(mems[1:]), ["ova.xml"])
    bad_case(st, "xml-twice", tar([mems[0]] + [mems[0]] + mems[1:]), ["ova.xml"])
    bad_case(st, "vdi-size-smaller", tar(with_xml(mems, X.set_vdi_size(xml, A_SIZE, 4 * M))), ["Ref:00"])
    bad_case(st, "vdi-size-smaller-last-vdi", tar(with_xml(mems, X.set_vdi_size(xml, B_SIZE, 2 * M))), ["Ref:01"])
    bad_case(st, "vdi-size-larger", tar(with_xml(mems, X.set_vdi_size(xml, A_SIZE, 8 * M))), ["Ref:00"])
    bad_case(st, "vdi-size-short-tail", tar(with_xml(mems, X.set_vdi_size(xml, A_SIZE, A_SIZE - 512))), ["Ref:00"])
    bad_case(st, "billion-laughs", tar(with_xml(mems, doctype_xml(xml, LAUGHS, "&lol9;"))), ["ova.xml"])
    bad_case(st, "xxe", tar(with_xml(mems, doctype_xml(xml, XXE, "&xxe;"))), ["ova.xml"])

    # ---- hostile member names and types
    deep = "../" * 30 + "tmp/" + EVIL
    bad_case(st, "dotdot-member", tar(insert_after(mems, "ova.xml", X.Member(deep, b"evil"))), stdin=True)
    bad_case(st, "absolute-member", tar(insert_after(mems, "ova.xml", X.Member("/tmp/" + EVIL + "_abs", b"evil"))))
    bad_case(st, "dotdot-in-vdi", tar(renamed(renamed(mems, "Ref:00/00000003", "Ref:00/../" + EVIL),
                                              "Ref:00/00000003.xxhash", "Ref:00/../" + EVIL + ".xxhash")))
    bad_case(st, "dir-entry", tar(insert_after(mems, "ova.xml", X.Member("Ref:00/", b"", tarfile.DIRTYPE,
                                                                          mode=0o755))))
    link = list(mems)
    i = X.find(link, "Ref:00/00000003")
    link[i] = X.Member("Ref:00/00000003", b"", tarfile.SYMTYPE, linkname="/etc/passwd")
    bad_case(st, "symlink-block", tar(link), ["Ref:00/00000003"])
    link[i] = X.Member("Ref:00/00000003", b"", tarfile.LNKTYPE, linkname="Ref:00/00000001")
    bad_case(st, "hardlink-block", tar(link), ["Ref:00/00000003"])
    bad_case(st, "symlink-member", tar(insert_after(mems, "ova.xml", X.Member(
        "Ref:00/00000000", b"", tarfile.SYMTYPE, linkname="/tmp/" + EVIL + "_link"))))
    bad_case(st, "member-after-last-vdi", tar(mems + [X.Member("../../tmp/" + EVIL + "_tail", b"evil")]))

    # ---- not an archive
    bad_case(st, "empty-file", b"", verify_rcs=(1, 3))
    bad_case(st, "random-bytes", RNG.randbytes(64 * K), verify_rcs=(1, 3))
    bad_case(st, "zeros", bytes(10240), verify_rcs=(1, 3))
    no_outside_programs()
    missing = os.path.join(TMP, "no-such.xva")
    r = run("verify", missing)
    expect_refused(r, "verify of a missing file", missing, (3,), [])
    before = X.fingerprint(st)
    r = run("--store", st.dir, "import", missing)
    expect_refused(r, "import of a missing file", missing, (3,), [])
    for m in X.diff_fingerprint(before, X.fingerprint(st)):
        T.check(False, "import of a missing file: %s" % m)

    no_escape("the end")
    T.finish("test_xva_bad")


if __name__ == "__main__":
    main()
