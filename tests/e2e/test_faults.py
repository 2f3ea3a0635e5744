"""Faults (issue 9, item 7): the output's file system fills up, and a source
disk is truncated under the reader. Needs root: small tmpfs are mounted for
the test (if mounting is not permitted the test fails, it does not skip).

What test_store_diskfull.py covers already is not repeated here: the
store's disk full during `vm create` and `snapshot create` (at 1 MiB down to
0 free), and `gc` refusing a coalesce that needs more than is free.

Output disk full (a tmpfs of 8 MiB; the VM's disk holds 16 MiB of random
bytes, so no output fits):
  export XVA and OVA, of a named snapshot and of the VM itself (a
      temporary snapshot): exit 3, one line naming the output file and
      "No space left on device"; nothing left in the output folder (no
      temporary file, no OVA spool); the store checks clean, the VMs,
      snapshots and every disk's content digest unchanged (and with
      --snapshot the store's files and catalog rows unchanged).
  disk flatten to raw, vhd, vmdk: the same line, nothing left, the
      source unchanged.
  convert XVA -> OVA, OVA -> XVA, a raw disk -> XVA: the same line naming
      the output, nothing left (no OVA spool either).
  import XVA and OVA into a store on a tmpfs with 8 MiB free: exit 3, one
      line naming the archive and "No space left on device"; the store
      unchanged (files, catalog rows), staging/ empty, store check 0; once
      the space is back the same import succeeds with the exact content.
Source truncated under the reader (the command is stopped with SIGSTOP
once it has read 16 MiB of a 128 MiB source, the source is cut to 64 MiB,
the command continues): disk flatten of a raw and of a VHD source, vm
create from a raw source, export of a VM whose VDI is cut: exit 3, one
line naming the source and saying it was truncated, no output file, no
crash (no reader maps files: no SIGBUS), vm create leaves the store
unchanged. Also a VHD cut before the command (its BAT points past the end)
given to vm create: exit 3, store unchanged.
"""

import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402
import xvatest as X  # noqa: E402

K, M = S.K, S.M
EXE = TMP = None
RNG = random.Random(9007)
NOSPACE = "No space left on device"


def one_line(r, what, names, words):
    S.expect_failure(r, what, 3, names, words)


def store_state(st):
    return {"vms": sorted(st.vms()), "snaps": [s["name"] for s in st.snapshots("vm1")], "digests": st.digests()}


# ---------------------------------------------------------------- output disk full

def case_output_full(st, out):
    state = store_state(st)
    for kind in ("xva", "ova"):
        for snap in (["--snapshot", "s1"], []):
            what = "export %s%s onto a full disk" % (kind, " --snapshot" if snap else "")
            # (an export without --snapshot gives the VM a new, empty leaf)
            exact = X.fingerprint(st)
            dst = os.path.join(out, "vm1.%s" % kind)
            r = st.sp("export", "vm1", *snap, "-o", dst, timeout=60)
            one_line(r, what, ["vm1.%s" % kind], [NOSPACE])
            T.check(os.listdir(out) == [], "%s: left %s in the output folder" % (what, os.listdir(out)))
            r = st.check()
            T.check(r.rc == 0, "store check after %s: %s" % (what, r.describe()))
            T.check(store_state(st) == state, "%s: the store's VMs, snapshots or content changed" % what)
            if snap:
                for m in X.diff_fingerprint(exact, X.fingerprint(st)):
                    T.check(False, "%s: %s" % (what, m))
    vdi = st.show("vm1")["disks"][0]["file"]
    digest = S.file_sha(vdi)
    for ext in ("raw", "vhd", "vmdk"):
        what = "disk flatten to %s onto a full disk" % ext
        dst = os.path.join(out, "flat.%s" % ext)
        r = S.run_env([EXE, "disk", "flatten", vdi, "-o", dst], timeout=60)
        one_line(r, what, ["flat.%s" % ext], [NOSPACE])
        T.check(os.listdir(out) == [], "%s: left %s in the output folder" % (what, os.listdir(out)))
        T.check(S.file_sha(vdi) == digest, "%s: the source changed" % what)


def case_convert_full(archives, raw, out):
    for src, dst in ((archives["xva"], "x.ova"), (archives["ova"], "x.xva"), (raw, "y.xva")):
        what = "convert %s to %s onto a full disk" % (os.path.basename(src), dst)
        r = S.run_env([EXE, "convert", src, os.path.join(out, dst)], timeout=60)
        one_line(r, what, [dst], [NOSPACE])
        T.check(os.listdir(out) == [], "%s: left %s in the output folder" % (what, os.listdir(out)))


def case_import_full(archives, mnt, expect):
    st = S.Store(EXE, os.path.join(mnt, "store"), os.path.join(TMP, "flat_imp"))
    small = os.path.join(TMP, "small.raw")
    with open(small, "wb") as f:
        f.write(RNG.randbytes(M))
    cfg = os.path.join(TMP, "small.cfg")
    with open(cfg, "w") as f:
        f.write("name = 'small'\nmemory = 128\nvcpus = 1\ndisk = [ 'format=raw, vdev=xvda, target=%s' ]\n" % small)
    st.ok("vm", "create", "--config", cfg)           # the store is not empty
    filler = os.path.join(mnt, "filler")
    for kind, p in archives.items():
        what = "import %s into a full store" % kind
        S.fill(filler, 8 * M)
        before = X.fingerprint(st)
        r = st.sp("import", p, "--name", "imp-" + kind, timeout=60)
        one_line(r, what, [os.path.basename(p)], [NOSPACE])
        for m in X.diff_fingerprint(before, X.fingerprint(st)):
            T.check(False, "%s: %s" % (what, m))
        sd = os.path.join(st.dir, "staging")
        T.check(not os.path.isdir(sd) or os.listdir(sd) == [], "%s: left staging/%s" % (what, os.listdir(sd)))
        r = st.check()
        T.check(r.rc == 0, "store check after %s: %s" % (what, r.describe()))
        os.unlink(filler)
        r = st.sp("import", p, "--name", "imp-" + kind, timeout=60)
        if T.check(r.rc == 0, "%s: with the space back, the import fails: %s" % (what, r.describe())):
            T.check(st.disk_digests("imp-" + kind) == expect, "%s: the import with space has other content" % what)
            st.ok("vm", "destroy", "imp-" + kind)


# ---------------------------------------------------------------- truncated under the reader

def proc_rchar(pid):
    try:
        with open("/proc/%d/io" % pid) as f:
            for line in f:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0


def run_and_cut(argv, victim, cut_to, what, after=16 * M):
    """Run argv; once it has read `after` bytes, stop it, cut victim to
    cut_to bytes, let it go on. Returns the Result, or None when the
    command ended before it could be stopped (recorded as a failure)."""
    e = dict(os.environ)
    e.pop("SNAPPORT_STORE", None)
    p = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
    caught = False
    t0 = time.monotonic()
    while time.monotonic() - t0 < 20:
        n = proc_rchar(p.pid)
        if n is None or p.poll() is not None:
            break
        if n >= after:
            os.kill(p.pid, signal.SIGSTOP)
            if p.poll() is None:
                os.truncate(victim, cut_to)
                caught = True
            os.kill(p.pid, signal.SIGCONT)
            break
        time.sleep(0.0005)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return T.Result([str(a) for a in argv], -1, "", err.decode("utf-8", "replace"), timed_out=True)
    r = T.Result([str(a) for a in argv], p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
    if not T.check(caught, "%s: the command ended before the source could be cut (a larger source is needed): %s"
                   % (what, r.describe())):
        return None
    return r


def big_raw(path, size=128 * M, hole=None):
    """size bytes of random data; hole (start, end): a hole there instead."""
    with open(path, "wb") as f:
        for off in range(0, size, 8 * M):
            if hole and hole[0] <= off < hole[1]:
                f.seek(off + 8 * M)
                continue
            f.write(RNG.randbytes(8 * M))
        f.truncate(size)
    return path


def case_truncated(st):
    d = os.path.join(TMP, "cut")
    os.makedirs(d)
    # disk flatten: raw and VHD sources
    raw = big_raw(os.path.join(d, "src.raw"))
    vhd = os.path.join(d, "src.vhd")
    S.run_env([EXE, "disk", "flatten", raw, "-o", vhd, "--no-sync"], timeout=60)
    # data, a hole from 32 to 96 MiB, data: cut at 32 MiB while the first
    # run is read, what follows must not read as the hole it was
    holey = big_raw(os.path.join(d, "src-holey.raw"), hole=(32 * M, 96 * M))
    srcs = sorted(os.listdir(d))
    for src, cut in ((raw, 64 * M), (vhd, 64 * M), (holey, 32 * M)):
        out = os.path.join(d, "out.raw")
        what = "disk flatten of %s cut while read" % os.path.basename(src)
        r = run_and_cut([EXE, "disk", "flatten", src, "-o", out, "--no-sync"], src, cut, what)
        if r:
            one_line(r, what, [os.path.basename(src)], ["truncated"])
        T.check(sorted(os.listdir(d)) == srcs, "%s: left %s" % (what, sorted(set(os.listdir(d)) - set(srcs))))
    # vm create from a raw source
    raw = big_raw(os.path.join(d, "vm.raw"))
    cfg = os.path.join(d, "cut.cfg")
    with open(cfg, "w") as f:
        f.write("name = 'cut'\nmemory = 128\nvcpus = 1\ndisk = [ 'format=raw, vdev=xvda, target=%s' ]\n" % raw)
    before = X.fingerprint(st)
    what = "vm create from a raw disk cut while read"
    r = run_and_cut([EXE, "--store", st.dir, "vm", "create", "--config", cfg], raw, 64 * M, what)
    if r:
        one_line(r, what, ["vm.raw"], ["truncated"])
    for m in X.diff_fingerprint(before, X.fingerprint(st)):
        T.check(False, "%s: %s" % (what, m))
    T.check(st.check().rc == 0, "store check after %s" % what)
    # a VHD cut before: its BAT points past the end
    cut = os.path.join(d, "bat.vhd")
    S.run_env([EXE, "disk", "flatten", os.path.join(d, "src.raw") if os.path.exists(os.path.join(d, "src.raw"))
               else raw, "-o", cut, "--no-sync"], timeout=60)
    os.truncate(cut, os.path.getsize(cut) // 2)
    with open(cfg, "w") as f:
        f.write("name = 'cut'\nmemory = 128\nvcpus = 1\ndisk = [ 'format=vhd, vdev=xvda, target=%s' ]\n" % cut)
    before = X.fingerprint(st)
    r = st.sp("vm", "create", "--config", cfg, timeout=60)
    one_line(r, "vm create from a VHD cut before", ["bat.vhd"], [])
    for m in X.diff_fingerprint(before, X.fingerprint(st)):
        T.check(False, "vm create from a VHD cut before: %s" % m)
    # export of a VM whose VDI is cut under it (a throwaway store)
    ts = S.Store(EXE, os.path.join(TMP, "st_cut"), os.path.join(TMP, "flat_cut"))
    raw = big_raw(os.path.join(d, "exp.raw"))
    with open(cfg, "w") as f:
        f.write("name = 'exp'\nmemory = 128\nvcpus = 1\ndisk = [ 'format=raw, vdev=xvda, target=%s' ]\n" % raw)
    ts.ok("vm", "create", "--config", cfg, timeout=60)
    ts.ok("snapshot", "create", "exp", "--name", "s")
    vdi = ts.show("s")["disks"][0]["file"]
    out = os.path.join(d, "exp.xva")
    what = "export of a VM whose VDI is cut while read"
    r = run_and_cut([EXE, "--store", ts.dir, "export", "exp", "--snapshot", "s", "-o", out], vdi,
                    os.path.getsize(vdi) // 2, what)
    if r:
        one_line(r, what, [os.path.basename(vdi)], ["truncated"])
    T.check(not os.path.exists(out), "%s: left %s" % (what, out))


def main():
    global EXE, TMP
    tmp = os.environ.get("SP_TMP")
    for m in ("out", "imp"):
        if tmp and os.path.ismount(os.path.join(tmp, m)):   # left by an interrupted run
            S.umount(os.path.join(tmp, m))
    EXE, TMP = T.setup()
    if os.geteuid() != 0:
        T.fatal("test_faults needs root to mount a tmpfs (running as uid %d)" % os.geteuid())
    src = os.path.join(TMP, "a.raw")
    with open(src, "wb") as f:
        f.write(RNG.randbytes(16 * M))
    cfg = os.path.join(TMP, "vm1.cfg")
    with open(cfg, "w") as f:
        f.write("name = 'vm1'\nmemory = 256\nvcpus = 1\ndisk = [ 'format=raw, vdev=xvda, target=%s' ]\n" % src)
    st = S.Store(EXE, os.path.join(TMP, "st"), os.path.join(TMP, "flat"))
    st.ok("vm", "create", "--config", cfg, timeout=60)
    st.ok("snapshot", "create", "vm1", "--name", "s1")
    expect = st.disk_digests("s1")
    archives = {}
    for kind in ("xva", "ova"):
        archives[kind] = os.path.join(TMP, "vm1.%s" % kind)
        st.ok("export", "vm1", "--snapshot", "s1", "-o", archives[kind], timeout=60)
    out, imp = os.path.join(TMP, "out"), os.path.join(TMP, "imp")
    S.mount_tmpfs(out, "8m")
    try:
        print("output disk full")
        case_output_full(st, out)
        case_convert_full(archives, src, out)
    finally:
        S.umount(out)
    S.mount_tmpfs(imp, "40m")
    try:
        print("store disk full during import")
        case_import_full(archives, imp, expect)
    finally:
        S.umount(imp)
    print("source truncated under the reader")
    case_truncated(st)
    T.finish("test_faults")


if __name__ == "__main__":
    main()
