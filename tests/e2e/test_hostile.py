"""Hostile archives and disks (issue 9, item 6): what test_xva_bad.py and
test_ova_bad.py do not already cover, for both archive kinds where a case
applies to both. Every hostile byte is built here (tests/tools/hostile.py:
tar headers byte by byte, compression bombs, VHD and VMDK metadata), never
by snapport.

Archives (a good XVA and a good OVA exported from a VM with one 4 MiB disk,
then rebuilt member by member; the unchanged rebuild is the control):
  verify   exit 1 (damage; the contract's "verify: exit 1 on any damage"),
           one line "snapport: ..." naming the archive, never "ok";
  import   exit 3, one line naming the archive; the store unchanged (vm
           list, vdis/ by name and content, the other files, every catalog
           row), staging/ empty, store check exit 0;
  escape   nothing at the absolute targets of the hostile names
           (/tmp/sp_evil_*, /etc/sp_evil_*), in the working folder (empty),
           under the scratch folder or the spool folder (TMPDIR);
  bounds   every run under 20 s and, for the bombs and huge claims, under
           a few seconds and 200 MiB of peak RSS (wait4 of the child).
Cases, XVA and OVA alike: members ../x (deep), /etc/x, Ref:00/../../x (XVA)
in place of a block or a disk; a symlink, a hard link, a character device,
a block device and a FIFO, in place of a block/disk and as an extra member;
duplicate members (the checksum member twice; the disk, the .ovf, the .mf
twice); a member whose header claims more bytes than the archive holds (in
the descriptor and in a block/disk); sizes near 2^63 in the header of a
block/disk (GNU base-256 2^63-1 and 2^64-1 clamped, a negative base-256, 12
octal digits = 64 GiB-1, a pax size=2^63-1 and size=2^64 overflow, a pax
size=-1); a gzip bomb and a zstd bomb (a block/disk member whose header
claims 8 GiB of zeros, 8 MiB gzip / a few hundred KiB of zstd RLE blocks);
ova.xml and .ovf claiming a 2 PiB disk; the OVF's gzip disk that inflates
to 8 GiB of zeros (raw: past its capacity; a VHD header then zeros: the
spool must not fill the disk).
Legal but heavy, exact outcome asserted:
  xva-sparse-10TiB   ova.xml says 10 TiB, blocks 0 and the last one present:
                     verify exit 0 (a sparse XVA is legal, XAPI skips zero
                     blocks); import exit 3 before anything is allocated,
                     naming the store's 2040 GiB VHD limit.
  xva-zero-bomb      zstd: a valid 2 GiB VDI stored as 2048 blocks of 1 MiB
                     zeros, each with its xxhash (~1 MiB compressed): verify
                     exit 0; import exit 0 with a VHD that holds no data
                     blocks (file under 1 MiB), in bounded time and memory.
  ova-2PiB           the .ovf claims 2 PiB for a VMDK holding 4 MiB: verify
                     exit 0 (the VMDK's data fit), import exit 3 naming the
                     2040 GiB limit, nothing allocated.
Disks:
  vhd-bat-millions   a dynamic VHD whose header claims 3,000,000 BAT entries
                     (size to match: 183 GiB of 64 KiB blocks) in a 2.5 KiB
                     file: disk info 3, check 1, flatten (raw, vhd) 3 with
                     no output, vm create 3 with the store unchanged; as an
                     OVA disk (VHD format URI): verify 1, import 3.
  vmdk stream        in the OVA (.mf rebuilt so the VMDK check is reached):
                     a grain whose lba goes backwards, a grain table entry
                     pointing back at the previous grain, a grain directory
                     entry pointing at the directory itself (a loop).
  vmdk sparse        a monolithicSparse VMDK built here (the unchanged one
                     is the control: flatten gives its exact content, check
                     0): a grain table entry pointing back into the
                     metadata (the directory), a directory entry pointing
                     at the directory (loop), two directory entries sharing
                     a table: disk check exit 1 naming the file; disk info
                     and flatten (raw, vhd, vmdk) exit 3 without output (as
                     for a VHD whose BAT points into its headers or
                     overlaps); vm create 3, store unchanged. Two table
                     entries sharing a grain: disk check exit 1; info and
                     flatten exit 0 with the content the tables give (the
                     grain at both places: every reader agrees, nothing
                     outside the file is read).
SP_DEBUG=1 in the environment prints every run's time and peak RSS.
"""

import gzip
import hashlib
import io
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402
import xvatest as X  # noqa: E402
import vhdgen as G  # noqa: E402
import hostile as H  # noqa: E402

K, M, G_ = S.K, S.M, 1 << 30
EXE = TMP = CWD = SPOOL = None
RNG = random.Random(9006)
A_SIZE = 4 * M
EVIL = "sp_evil_h%d" % os.getpid()
EVIL_ABS = ["/tmp/" + EVIL, "/etc/" + EVIL, "/" + EVIL]
BOUND_SECS, BOUND_RSS_KIB = 10, 200 * 1024
TIB = 1 << 40


def env():
    e = dict(os.environ)
    for k in ("SNAPPORT_STORE", "SNAPPORT_CRASH_AFTER", "SNAPPORT_CRASH_LOG", "SNAPPORT_LOCK_TIMEOUT"):
        e.pop(k, None)
    e["TMPDIR"] = SPOOL
    return e


def run(*args, stdin=None, timeout=T.TIMEOUT):
    """snapport in the empty working folder CWD, spooling into SPOOL."""
    r = H.run_measured([EXE] + list(args), cwd=CWD, env=env(), stdin_path=stdin, timeout=timeout)
    if os.environ.get("SP_DEBUG"):
        print("  %.2fs %dM rc=%s %s\n      %s" % (r.secs, r.rss // 1024, r.rc, " ".join(map(str, args))[:150], r.err.strip()[:300]))
    return r


# ---------------------------------------------------------------- checks

def no_escape(what):
    H.no_escape(what, EVIL_ABS, EVIL, TMP, [CWD, SPOOL])


def expect_refused(r, what, path, rc, words=(), bound=False):
    label = os.path.basename(path)
    if S.expect_failure(r, what, rc, [label], words):
        line = S.error_lines(r)[0]
        T.check(line.count(label) == 1, "%s: the message names %s more than once: %r" % (what, label, line))
        T.check("/proc/" not in line, "%s: the message names a /proc path: %r" % (what, line))
    T.check("ok" not in r.out.split(), "%s: printed ok: %r" % (what, r.out))
    if bound and not r.crashed():
        within(r, what)


def within(r, what, secs=BOUND_SECS, rss=BOUND_RSS_KIB):
    T.check(r.secs < secs, "%s: took %.1f s (bound %d s)" % (what, r.secs, secs))
    T.check(r.rss < rss, "%s: peak RSS %d MiB (bound %d MiB)" % (what, r.rss // 1024, rss // 1024))


def staging_clean(st, what):
    sd = os.path.join(st.dir, "staging")
    if os.path.isdir(sd):
        T.check(os.listdir(sd) == [], "%s: files left in staging/: %s" % (what, os.listdir(sd)))


def store_unchanged(st, before, what):
    for m in X.diff_fingerprint(before, X.fingerprint(st)):
        T.check(False, "%s: %s" % (what, m))
    staging_clean(st, what)
    r = st.check()
    T.check(r.rc == 0, "store check after %s: %s" % (what, r.describe()))


def bad_archive(st, kind, name, data, words=(), verify_rc=1, bound=False, fmt=None):
    """verify exit verify_rc, import exit 3, nothing changed or escaped."""
    path = X.write(os.path.join(TMP, "bad-%s.%s" % (name, kind)), data)
    extra = ["--format", fmt] if fmt else []
    before = X.fingerprint(st)
    r = run("verify", path, *extra)
    expect_refused(r, "verify %s" % name, path, verify_rc, words, bound)
    r = run("--store", st.dir, "import", path, "--name", "imp-" + name, *extra, timeout=60)
    expect_refused(r, "import %s" % name, path, 3, words, bound)
    store_unchanged(st, before, "import %s" % name)
    no_escape(name)
    os.unlink(path)


def good_archive(st, kind, name, data, expect):
    """A legal archive: verify 0; import 0 with the disk's exact content."""
    path = X.write(os.path.join(TMP, "ok-%s.%s" % (name, kind)), data)
    r = run("verify", path)
    T.check(r.rc == 0, "verify %s (legal): %s" % (name, r.describe()))
    vm = "ok-" + name
    r = run("--store", st.dir, "import", path, "--name", vm, timeout=60)
    if T.check(r.rc == 0, "import %s (legal): %s" % (name, r.describe())):
        T.check(st.disk_digests(vm, fatal=False) == {"xvda": S.sha(expect)}, "import %s: content differs" % name)
        st.ok("vm", "destroy", vm)
    no_escape(name)


def too_big_for_store(st, name, path):
    """A legal archive whose disk is larger than a store VDI: verify exit 0;
    import exit 3 naming the archive and the 2040 GiB limit, at once,
    nothing made."""
    r = run("verify", path)
    T.check(r.rc == 0, "verify %s (legal): %s" % (name, r.describe()))
    within(r, "verify " + name)
    before = X.fingerprint(st)
    r = run("--store", st.dir, "import", path, "--name", "imp-" + name)
    expect_refused(r, "import " + name, path, 3, ["2040 GiB"], bound=True)
    store_unchanged(st, before, "import " + name)
    no_escape(name)


# ---------------------------------------------------------------- the good archives

def make_good():
    d = os.path.join(TMP, "src")
    os.makedirs(d)
    a = bytearray(A_SIZE)
    a[0:M] = RNG.randbytes(M)                 # XVA blocks 0 and 3 hold data, 1 and 2 are zeros
    a[3 * M + 4096:3 * M + 8192] = RNG.randbytes(4096)
    with open(os.path.join(d, "a.raw"), "wb") as f:
        f.write(a)
    cfg = os.path.join(d, "h.cfg")
    with open(cfg, "w") as f:
        f.write("name = 'src'\ntype = 'hvm'\nmemory = 256\nvcpus = 1\n"
                "disk = [ 'format=raw, vdev=xvda, target=a.raw' ]\n")
    st = S.Store(EXE, os.path.join(TMP, "st_src"), os.path.join(TMP, "flat_src"))
    st.ok("vm", "create", "--config", cfg)
    xva, ova = os.path.join(TMP, "good.xva"), os.path.join(TMP, "good.ova")
    st.ok("export", "src", "-o", xva, timeout=60)
    st.ok("export", "src", "-o", ova, timeout=60)
    xm = [(m.name, m.data) for m in X.xva_members(xva)]
    want = ["ova.xml"] + ["Ref:00/%08d%s" % (b, s) for b in (0, 3) for s in ("", ".xxhash")]
    if [n for n, _ in xm] != want:
        T.fatal("the good XVA has members %s, expected %s (test setup)" % ([n for n, _ in xm], want))
    om = [(m.name, m.data) for m in X.members(T.read_file(ova))]
    if [n for n, _ in om] != ["src.ovf", "src.mf", "src-disk1.vmdk"]:
        T.fatal("the good OVA has members %s (test setup)" % [n for n, _ in om])
    return xm, om, bytes(a), cfg


def tar(mems):
    """A tar of [(name, data)] or raw header bytes (a bytes item goes in as it is)."""
    out = b""
    for m in mems:
        out += m if isinstance(m, bytes) else H.member(m[0], m[1])
    return out + H.tar_end()


def replace(mems, name, *new):
    i = [m[0] if isinstance(m, tuple) else None for m in mems].index(name)
    return mems[:i] + list(new) + mems[i + 1:]


def insert_after(mems, name, *new):
    i = [m[0] if isinstance(m, tuple) else None for m in mems].index(name)
    return mems[:i + 1] + list(new) + mems[i + 1:]


def mf_of(mems):
    """The SHA256 manifest of every member but the .mf, as the OVA orders them."""
    return "".join("SHA256(%s)= %s\n" % (n, hashlib.sha256(d).hexdigest())
                   for n, d in mems if isinstance(n, str) and not n.endswith(".mf")).encode()


def ova_rebuilt(om, changes=None, ovf=None):
    """The OVA with members changed ({name: bytes}), the .ovf text replaced,
    and the .mf rebuilt to match (so that a check after the manifest is
    reached)."""
    changes = dict(changes or {})
    text = ovf if ovf is not None else dict(om)["src.ovf"].decode()
    for n, d in changes.items():      # a File's ovf:size follows its member
        m = re.search(r'<File [^>]*ovf:href="%s"[^>]*ovf:size="\d+"' % re.escape(n), text)
        if m:
            text = set_ovf_file(text, n, size=str(len(d)))
    changes["src.ovf"] = text.encode()
    mems = [(n, changes.get(n, d)) for n, d in om]
    mems = [(n, mf_of(mems) if n == "src.mf" else d) for n, d in mems]
    return mems


def set_ovf_file(ovf, href, **attrs):
    """Set attributes of the File element for href (setup-checked)."""
    m = re.search(r'<File [^>]*ovf:href="%s"[^>]*>' % re.escape(href), ovf)
    if not m:
        T.fatal("no File %s in the .ovf (test setup)" % href)
    el = m.group(0)
    for k, v in attrs.items():
        if re.search(r'ovf:%s="[^"]*"' % k, el):
            el = re.sub(r'ovf:%s="[^"]*"' % k, 'ovf:%s="%s"' % (k, v), el)
        else:
            el = el.replace("<File ", '<File ovf:%s="%s" ' % (k, v), 1)
    return ovf[:m.start()] + el + ovf[m.end():]


def set_ovf_disk(ovf, **attrs):
    m = re.search(r'<Disk [^>]*>', ovf)
    if not m:
        T.fatal("no Disk in the .ovf (test setup)")
    el = m.group(0)
    for k, v in attrs.items():
        if not re.search(r'ovf:%s="[^"]*"' % k, el):
            T.fatal("Disk has no ovf:%s (test setup): %s" % (k, el))
        el = re.sub(r'ovf:%s="[^"]*"' % k, 'ovf:%s="%s"' % (k, v), el)
    return ovf[:m.start()] + el + ovf[m.end():]


# ---------------------------------------------------------------- tar-level cases, both kinds

def tar_cases(st, kind, mems, target, after):
    """target: the member a hostile one replaces (an XVA block, the OVA's
    disk); after: where an extra member goes (after the descriptor)."""
    B = lambda name, data=b"", **kw: H.member(name, data, **kw)
    cases = []
    # -- names
    deep = "../" * 12 + "tmp/" + EVIL
    cases.append(("dotdot-as-target", replace(mems, target, (deep, dict(mems)[target]))))
    cases.append(("abs-etc-extra", insert_after(mems, after, ("/etc/" + EVIL, b"evil"))))
    cases.append(("abs-etc-as-target", replace(mems, target, ("/etc/" + EVIL, dict(mems)[target]))))
    if kind == "xva":
        cases.append(("ref-dotdot", replace(mems, target, ("Ref:00/../../tmp/" + EVIL, dict(mems)[target]))))
    # -- types: symlink, hard link, devices, fifo
    for label, typ, link, dev in (("symlink", b"2", "/tmp/" + EVIL, (0, 0)), ("hardlink", b"1", after, (0, 0)),
                                  ("chardev", b"3", "", (1, 3)), ("blockdev", b"4", "", (7, 0)),
                                  ("fifo", b"6", "", (0, 0))):
        hb = H.header(target, 0, typ=typ, linkname=link, devmajor=dev[0], devminor=dev[1])
        cases.append((label + "-as-target", replace(mems, target, hb)))
        he = H.header(EVIL, 0, typ=typ, linkname=link, devmajor=dev[0], devminor=dev[1])
        cases.append((label + "-extra", insert_after(mems, after, he)))
    # -- duplicates
    if kind == "xva":
        cases.append(("dup-checksum", insert_after(mems, "Ref:00/00000000.xxhash",
                                                   ("Ref:00/00000000.xxhash", dict(mems)["Ref:00/00000000.xxhash"]))))
        cases.append(("dup-last-block", mems + [("Ref:00/00000003", dict(mems)["Ref:00/00000003"]),
                                                ("Ref:00/00000003.xxhash", dict(mems)["Ref:00/00000003.xxhash"])]))
    else:
        cases.append(("dup-disk", mems + [(target, dict(mems)[target])]))
        cases.append(("dup-ovf", insert_after(mems, "src.ovf", ("src.ovf", dict(mems)["src.ovf"]))))
        cases.append(("dup-mf", insert_after(mems, "src.mf", ("src.mf", dict(mems)["src.mf"]))))
    return cases


def oversize_cases(mems, desc, target):
    """Headers that claim more than the archive holds, or sizes near 2^63:
    (label, bytes, words the message must hold). Each is the archive up to
    the hostile header, its (short) data, and no end: the reader must stop
    at the header or at the end of the input."""
    out = []
    data = dict(mems)[target]
    i = [m[0] for m in mems].index(target)
    head = tar(mems[:i])[:-2 * H.BLOCK]
    before = mems[i - 1][0]
    # the descriptor's header claims 1 MiB, 3 KiB follow
    dd = dict(mems)[desc]
    out.append(("desc-larger-than-archive", H.header(desc, M) + H.padded(dd[:3 * K]), ["truncated"]))
    # the target claims more than follows (an XVA block: its 1 MiB; an OVA
    # disk: 12 MiB), 100 KiB follow
    claim = M if desc == "ova.xml" else 12 * M
    out.append(("target-larger-than-archive", head + H.header(target, claim) + data[:100 * K], ["truncated"]))
    # sizes no reader may take: named as the header after the last member
    for label, size, enc in (("b256-2^63-1", (1 << 63) - 1, "b256"), ("b256-2^64-1", (1 << 64) - 1, "b256"),
                             ("b256-negative", -512, "b256")):
        out.append(("size-" + label, head + H.header(target, size, enc=enc) + H.padded(data[:64 * K]),
                    ["after " + before]))
    for label, val in (("pax-2^63-1", (1 << 63) - 1), ("pax-2^64", 1 << 64), ("pax-negative", -1)):
        out.append(("size-" + label, head + H.pax_member(target, {"size": val}, data[:64 * K],
                                                         size_in_header=len(data[:64 * K])), ["after " + before]))
    # 64 GiB - 1 in 12 octal digits: a size tar allows, more than follows
    # (XVA: more than a block may be)
    out.append(("size-octal12-64GiB", head + H.header(target, (1 << 36) - 1, enc="octal12") +
                H.padded(data[:64 * K]), [target]))
    return out


# ---------------------------------------------------------------- bombs

def bomb_cases(kind, mems, target):
    """A member claiming 8 GiB of zeros (octal: 0o100000000000), as gzip
    (8 MiB) and as zstd (RLE blocks, ~256 KiB); the streams carry the
    zeros in full. The reader must stop at the header (XVA: a block is at
    most 16 MiB) or at the disk's capacity (OVA), quickly."""
    i = [m[0] for m in mems].index(target)
    head = tar(mems[:i])[:-2 * H.BLOCK] + H.header(target, 8 * G_, enc="octal12")
    gz = H.gzip_zeros(head, 8 * G_)
    zs = H.zstd_frame([("raw", head), ("zeros", 8 * G_), ("raw", H.tar_end())])
    return [("gzip-bomb", gz), ("zstd-bomb", zs)]


def xva_zero_bomb(xml):
    """A legal XVA of one 2 GiB VDI stored as 2048 blocks of 1 MiB zeros,
    each with its xxhash: a zstd frame with the headers as raw blocks and
    the zeros as RLE blocks."""
    size = 2 * G_
    xml = X.set_vdi_size(xml, A_SIZE, size)
    zsum = X.xxh64_hex(bytes(M)).encode()
    chunks = [("raw", H.member("ova.xml", xml.encode()))]
    for b in range(size // M):
        chunks.append(("raw", H.header("Ref:00/%08d" % b, M)))
        chunks.append(("zeros", M))
        chunks.append(("raw", H.member("Ref:00/%08d.xxhash" % b, zsum)))
    chunks.append(("raw", H.tar_end()))
    return H.zstd_frame(chunks), size


# ---------------------------------------------------------------- VHD with millions of BAT entries

def vhd_bat_millions(path):
    entries, bs = 3000000, 64 * K
    size = entries * bs
    footer = G.pack_footer(size, G.TYPE_DYNAMIC, b"\x42" * 16, 512)
    hdr = G.pack_header(entries, bs, 1536)
    data = footer + hdr + b"\xff" * 512 + footer
    with open(path, "wb") as f:
        f.write(data)
    return path, size


def disk_refused(st, name, path, check_words=()):
    """disk info 3, check 1, flatten (raw, vhd, vmdk) 3 without output,
    vm create 3 with the store unchanged; all bounded."""
    r = run("disk", "info", path)
    expect_refused(r, "%s: disk info" % name, path, 3, bound=True)
    r = run("disk", "check", path)
    if not r.crashed():
        T.check(r.rc == 1, "%s: disk check: exit %s, expected 1: %s" % (name, r.rc, r.describe()))
        T.check(any(os.path.basename(path) in l for l in r.out.splitlines()),
                "%s: disk check printed no line naming the file: %r" % (name, r.out))
        for w in check_words:
            T.check(w in r.out, "%s: disk check does not say %r: %r" % (name, w, r.out))
        within(r, "%s: disk check" % name)
    else:
        T.check(False, "%s: disk check crashed: %s" % (name, r.describe()))
    for ext in ("raw", "vhd", "vmdk"):
        out = os.path.join(TMP, "%s.out.%s" % (name, ext))
        r = run("disk", "flatten", path, "-o", out)
        expect_refused(r, "%s: flatten to %s" % (name, ext), path, 3, bound=True)
        T.check(not os.path.exists(out), "%s: flatten to %s left %s" % (name, ext, out))
        if os.path.exists(out):
            os.unlink(out)
    cfg = os.path.join(TMP, name + ".cfg")
    fmt = "vhd" if path.endswith(".vhd") else "raw"
    with open(cfg, "w") as f:
        f.write("name = 'h-%s'\nmemory = 256\nvcpus = 1\ndisk = [ 'format=%s, vdev=xvda, target=%s' ]\n"
                % (name, fmt, path))
    before = X.fingerprint(st)
    r = run("--store", st.dir, "vm", "create", "--config", cfg)
    expect_refused(r, "%s: vm create" % name, path, 3, bound=True)
    store_unchanged(st, before, "%s: vm create" % name)
    no_escape(name)


# ---------------------------------------------------------------- VMDK: stream (in the OVA) and monolithicSparse

def vmdk_stream_cases(vmdk):
    """(label, damaged bytes): grains backwards, a GT entry pointing back at
    the previous grain, a GD entry pointing at the GD itself."""
    hdr, marks = H.vmdk_layout(vmdk)
    grains = [m for m in marks if m[1] == "grain"]
    gts = [m for m in marks if m[1] == 1]
    gds = [m for m in marks if m[1] == 2]
    if len(grains) < 3 or not gts or not gds:
        T.fatal("the exported VMDK has %d grains, %d GTs, %d GDs (test setup)" % (len(grains), len(gts), len(gds)))
    out = []
    b = bytearray(vmdk)
    struct.pack_into("<Q", b, grains[2][0], grains[0][2])          # lba of grain 2 := lba of grain 0
    out.append(("vmdk-grain-lba-backwards", bytes(b)))
    b = bytearray(vmdk)
    base = gts[0][0] + H.SECTOR
    ents = list(struct.unpack_from("<%dI" % hdr["gtes"], b, base))
    used = [i for i, e in enumerate(ents) if e]
    if len(used) < 2:
        T.fatal("the first grain table has fewer than 2 grains (test setup)")
    struct.pack_into("<I", b, base + 4 * used[1], ents[used[0]])     # entry 2 -> grain 1's marker
    out.append(("vmdk-gt-entry-backwards", bytes(b)))
    b = bytearray(vmdk)
    gd_sector = gds[0][0] // H.SECTOR + 1
    struct.pack_into("<I", b, gds[0][0] + H.SECTOR, gd_sector)        # GD entry 0 -> the GD itself
    out.append(("vmdk-gd-loop", bytes(b)))
    return out


class SparseVmdk:
    """A monolithicSparse VMDK (uncompressed grains) built here: header at
    sector 0, embedded descriptor at 1..20, GD at 21, GTs after it, grains
    from `overhead` on. grains: {grain index: bytes}."""

    GRAIN = 128          # sectors (64 KiB)
    GTES = 512

    def __init__(self, capacity_bytes, grains):
        self.capacity = capacity_bytes // H.SECTOR
        self.ngrains = -(-self.capacity // self.GRAIN)
        self.ngt = -(-self.ngrains // self.GTES)
        self.gd_sector = 21
        gd_sectors = -(-self.ngt * 4 // H.SECTOR)
        self.gt_sector0 = self.gd_sector + gd_sectors
        gt_sectors = self.GTES * 4 // H.SECTOR
        self.overhead = -(-(self.gt_sector0 + self.ngt * gt_sectors) // self.GRAIN) * self.GRAIN
        self.gd = [self.gt_sector0 + t * gt_sectors for t in range(self.ngt)]
        self.gt = [[0] * self.GTES for _ in range(self.ngt)]
        self.data = {}
        sec = self.overhead
        for g in sorted(grains):
            self.gt[g // self.GTES][g % self.GTES] = sec
            self.data[sec] = grains[g]
            sec += self.GRAIN
        self.end = sec

    def bytes(self):
        buf = bytearray(self.end * H.SECTOR)
        h = bytearray(H.SECTOR)
        struct.pack_into("<IIIQQQQIQQQ", h, 0, 0x564D444B, 1, 3, self.capacity, self.GRAIN, 1, 20, self.GTES,
                         0, self.gd_sector, self.overhead)
        h[73:77] = b"\n \r\n"
        buf[0:H.SECTOR] = h
        desc = ('# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicSparse"\n'
                'RW %d SPARSE "x.vmdk"\n' % self.capacity).encode()
        buf[H.SECTOR:H.SECTOR + len(desc)] = desc
        for t in range(self.ngt):
            struct.pack_into("<%dI" % self.GTES, buf, self.gd[t] * H.SECTOR, *self.gt[t])
        # the directory last: where a damaged entry names it as a table, the
        # directory's bytes are what a reader finds there
        struct.pack_into("<%dI" % self.ngt, buf, self.gd_sector * H.SECTOR, *self.gd)
        for sec, d in self.data.items():
            buf[sec * H.SECTOR:sec * H.SECTOR + len(d)] = d
        return bytes(buf)

    def model(self):
        out = bytearray(self.capacity * H.SECTOR)
        gb = self.GRAIN * H.SECTOR
        for t in range(self.ngt):
            for i, sec in enumerate(self.gt[t]):
                if sec:
                    g = t * self.GTES + i
                    out[g * gb:(g + 1) * gb] = self.data[sec]
        return bytes(out)


def vmdk_sparse_cases(st):
    gb = SparseVmdk.GRAIN * H.SECTOR
    # 64 MiB: 1024 grains, two grain tables; grains 0, 1, 600 hold data
    grains = {0: RNG.randbytes(gb), 1: RNG.randbytes(gb), 600: RNG.randbytes(gb)}
    d = os.path.join(TMP, "vmdk")
    os.makedirs(d)

    good = SparseVmdk(64 * M, grains)
    p = X.write(os.path.join(d, "good.vmdk"), good.bytes())
    out = os.path.join(d, "good.raw")
    r = run("disk", "flatten", p, "-o", out)
    if T.check(r.rc == 0, "vmdk sparse control: flatten: %s" % r.describe()):
        T.same_bytes(T.read_file(out), good.model(), "vmdk sparse control: content")
        os.unlink(out)
    r = run("disk", "check", p)
    T.check(r.rc == 0, "vmdk sparse control: disk check: %s" % r.describe())

    v = SparseVmdk(64 * M, grains)
    v.gt[0][1] = v.gd_sector                       # a grain inside the metadata (the GD)
    disk_refused(st, "vmdk-gt-into-metadata", X.write(os.path.join(d, "gt-meta.vmdk"), v.bytes()))
    v = SparseVmdk(64 * M, grains)
    v.gd[1] = v.gd_sector                          # GT 1 is the directory itself: a loop
    disk_refused(st, "vmdk-gd-loop", X.write(os.path.join(d, "gd-loop.vmdk"), v.bytes()))
    v = SparseVmdk(64 * M, grains)
    v.gd[1] = v.gd[0]                              # two tables in one place
    disk_refused(st, "vmdk-gd-shared-table", X.write(os.path.join(d, "gd-shared.vmdk"), v.bytes()))
    # two places of the disk in one grain: every reader agrees on the bytes
    # (grain 0's at both), nothing outside the file is read; disk check
    # reports it, info and flatten give that content
    v = SparseVmdk(64 * M, grains)
    v.gt[0][5] = v.gt[0][0]
    p = X.write(os.path.join(d, "gt-shared.vmdk"), v.bytes())
    r = run("disk", "check", p)
    T.check(r.rc == 1 and "another entry" in r.out and "gt-shared.vmdk" in r.out,
            "vmdk-gt-shared-grain: disk check: expected exit 1 naming the shared grain: %s" % r.describe())
    r = run("disk", "info", p)
    T.check(r.rc == 0, "vmdk-gt-shared-grain: disk info: %s" % r.describe())
    out = os.path.join(d, "gt-shared.raw")
    r = run("disk", "flatten", p, "-o", out)
    if T.check(r.rc == 0, "vmdk-gt-shared-grain: flatten: %s" % r.describe()):
        T.same_bytes(T.read_file(out), v.model(), "vmdk-gt-shared-grain: flatten content")
        os.unlink(out)


# ---------------------------------------------------------------- main

def main():
    global EXE, TMP, CWD, SPOOL
    EXE, TMP = T.setup()
    CWD = os.path.join(TMP, "cwd")
    SPOOL = os.path.join(TMP, "spool")
    os.makedirs(CWD)
    os.makedirs(SPOOL)
    for p in EVIL_ABS:
        if os.path.lexists(p):
            os.unlink(p)
    xm, om, a, cfg = make_good()
    st = S.Store(EXE, os.path.join(TMP, "st"), os.path.join(TMP, "flat"))
    st.ok("vm", "create", "--config", cfg)            # the store is not empty
    stok = S.Store(EXE, os.path.join(TMP, "st_ok"), os.path.join(TMP, "flat_ok"))
    xml = xm[0][1].decode()
    ovf = dict(om)["src.ovf"].decode()

    # ---- controls: the byte-by-byte rebuild imports
    good_archive(stok, "xva", "control", tar(xm), a)
    good_archive(stok, "ova", "control", tar(om), a)
    good_archive(stok, "ova", "control-mf-rebuilt", tar(ova_rebuilt(om)), a)

    # ---- tar level, both kinds
    for kind, mems, target, after, desc in (("xva", xm, "Ref:00/00000003", "ova.xml", "ova.xml"),
                                            ("ova", om, "src-disk1.vmdk", "src.mf", "src.ovf")):
        print("%s: names, types, duplicates" % kind)
        for label, ms in tar_cases(st, kind, mems, target, after):
            bad_archive(st, kind, label, tar(ms))
        print("%s: sizes" % kind)
        for label, data, words in oversize_cases(mems, desc, target):
            bad_archive(st, kind, label, data, words, bound=True)
        print("%s: bombs" % kind)
        for label, data in bomb_cases(kind, mems, target):
            # a compressed OVA is not told from its bytes (only XVAs are
            # sniffed through a filter): --format ova
            bad_archive(st, kind, label, data, bound=True, fmt="ova" if kind == "ova" else None)

    # ---- huge claims
    print("huge claims")
    bad_archive(st, "xva", "xva-2PiB", tar([("ova.xml", X.set_vdi_size(xml, A_SIZE, 1 << 51).encode())] + xm[1:]),
                ["ova.xml"], bound=True)
    # 10 TiB, blocks 0 and the last: a legal sparse XVA the store cannot hold
    big = 10 * TIB
    last = big // M - 1
    sparse = [("ova.xml", X.set_vdi_size(xml, A_SIZE, big).encode()), xm[1], xm[2],
              ("Ref:00/%08d" % last, dict(xm)["Ref:00/00000003"]),
              ("Ref:00/%08d.xxhash" % last, dict(xm)["Ref:00/00000003.xxhash"])]
    too_big_for_store(st, "sparse-10TiB", X.write(os.path.join(TMP, "sparse-10TiB.xva"), tar(sparse)))
    # the .ovf claims 2 PiB for a VMDK of 4 MiB: its data fit, the store cannot
    o2 = set_ovf_disk(ovf, capacity=str(1 << 51), capacityAllocationUnits="byte")
    too_big_for_store(st, "ova-2PiB", X.write(os.path.join(TMP, "ova-2PiB.ova"), tar(ova_rebuilt(om, ovf=o2))))

    # ---- a legal zero bomb: bounded, sparse
    print("xva zero bomb")
    zb, zsize = xva_zero_bomb(xml)
    p = X.write(os.path.join(TMP, "zero-bomb.xva"), zb)
    r = run("verify", p, timeout=60)
    T.check(r.rc == 0, "verify zero-bomb (legal): %s" % r.describe())
    within(r, "verify zero-bomb", secs=30)
    r = run("--store", st.dir, "import", p, "--name", "zero-bomb", timeout=60)
    if T.check(r.rc == 0, "import zero-bomb (legal): %s" % r.describe()):
        within(r, "import zero-bomb", secs=30)
        j = st.show("zero-bomb")
        f = j["disks"][0]["file"]
        T.check(os.path.getsize(f) < M, "import zero-bomb: the VHD is %d bytes, expected no data blocks"
                % os.path.getsize(f))
        info = T.info_json(EXE, f, fatal_errors=False)
        T.check(info.get("virtual_size") == zsize and info.get("allocated") == 0,
                "import zero-bomb: disk info %s" % info)
        st.ok("vm", "destroy", "zero-bomb")
    no_escape("zero-bomb")

    # ---- OVA gzip'd disks that inflate far past their capacity
    print("ova gzip disks")
    o3 = set_ovf_file(ovf, "src-disk1.vmdk", compression="gzip")
    raw_bomb = H.gzip_zeros(b"", 8 * G_)
    bad_archive(st, "ova", "gzip-disk-raw-bomb", tar(ova_rebuilt(om, {"src-disk1.vmdk": raw_bomb}, ovf=o3)),
                ["capacity"], bound=True)
    # a VHD's first sector (a footer copy, so the bytes name VHD) then 8 GiB of zeros
    vhd_head = G.pack_footer(A_SIZE, G.TYPE_DYNAMIC, b"\x43" * 16, 512)
    vhd_bomb = H.gzip_zeros(vhd_head, 8 * G_)
    bad_archive(st, "ova", "gzip-disk-vhd-bomb", tar(ova_rebuilt(om, {"src-disk1.vmdk": vhd_bomb}, ovf=o3)),
                bound=True)

    # ---- VHD whose BAT claims millions of blocks
    print("vhd bat millions")
    vp, vsize = vhd_bat_millions(os.path.join(TMP, "bat-millions.vhd"))
    disk_refused(st, "vhd-bat-millions", vp)
    o4 = set_ovf_disk(ovf, capacity=str(vsize), capacityAllocationUnits="byte", format=
                      "http://technet.microsoft.com/en-us/virtualserver/bb676673.aspx")
    bad_archive(st, "ova", "ova-vhd-bat-millions", tar(ova_rebuilt(om, {"src-disk1.vmdk": T.read_file(vp)},
                                                                   ovf=o4)), ["src-disk1.vmdk", "BAT"], bound=True)

    # ---- VMDK
    print("vmdk stream in the OVA")
    for label, data in vmdk_stream_cases(dict(om)["src-disk1.vmdk"]):
        bad_archive(st, "ova", label, tar(ova_rebuilt(om, {"src-disk1.vmdk": data})), ["src-disk1.vmdk"])
    print("vmdk monolithicSparse")
    vmdk_sparse_cases(st)

    no_escape("the end")
    T.finish("test_hostile")


if __name__ == "__main__":
    main()
