"""Kill every store operation at every crash point; the store must recover.

For each operation (snapshot create, snapshot revert, clone from a VM and
from a snapshot, clone --full, vm destroy, snapshot delete; with memory
images: snapshot create --memory, revert to a memory snapshot, clone of a
suspended VM, vm halt (digests then include the memory image); and gc
coalescing with a leaf coalesce among them): a prepared store, the digest of every VM's
and every snapshot's disks (by name), the number of crash points the
operation passes (SNAPPORT_CRASH_LOG on a copy), then for every N from 1 to
that count, on a fresh copy of the prepared store:

  1. the operation with SNAPPORT_CRASH_AFTER=N must die by SIGKILL (-9);
  2. `store check` (any exit, but no crash);
  3. `gc` must exit 0;  4. `store check` must exit 0 (this also proves that
     no file in store/vdis lacks a catalog row and no job is left);
  5. every VM and snapshot that existed before has exactly its digest, with
     what the operation may change: the snapshot being deleted may be gone
     (or intact), the snapshot or clone being created may be absent (or
     present with the source's content), the VM being destroyed may be gone
     with all its snapshots (or intact), the VM being reverted has either
     its old content or the snapshot's; nothing else appears or vanishes.

gc is also killed twice in a row: at N, then the gc that recovers is itself
killed at its first and at its second crash point (inside the recovery of
the interrupted coalesce), then gc runs to the end; after gc gamma's
chain is 2 files (g2's layer and the leaf).
"""

import os
import random
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402

K, M = S.K, S.M
EXE = TMP = None
RNG = random.Random(77)
WORKERS = max(2, min(4, os.cpu_count() or 2))


def write_disk(st, name, vdev, offset, byte, length):
    j = st.show(name)
    f = [d["file"] for d in j["disks"] if d["vdev"] == vdev][0]
    r = S.run_env([EXE, "disk", "write", f, "--offset", offset, "--pattern", byte, "--length", length])
    if r.rc != 0:
        T.fatal("disk write into %s of %s failed: %s" % (vdev, name, r.describe()))


def make_vm(st, name, ndisks):
    d = os.path.join(TMP, "src")
    os.makedirs(d, exist_ok=True)
    disks = []
    for i in range(ndisks):
        raw = os.path.join(d, "%s%d.raw" % (name, i))
        with open(raw, "wb") as f:
            f.write(RNG.randbytes(2 * M))
            f.write(b"\0" * M)
        disks.append("'format=raw, vdev=xvd%s, target=%s'" % ("abcd"[i], raw))
    cfg = os.path.join(d, name + ".cfg")
    with open(cfg, "w") as f:
        f.write("name = '%s'\nmemory = 256\nvcpus = 1\ndisk = [ %s ]\nvif = [ 'bridge=xenbr0' ]\n"
                % (name, ", ".join(disks)))
    st.ok("vm", "create", "--config", cfg)


def prepare_base():
    """alpha: 2 disks, snapshots a1, a2 with different content; beta: 1 disk,
    snapshot b1."""
    st = S.Store(EXE, os.path.join(TMP, "base"), os.path.join(TMP, "flat"))
    make_vm(st, "alpha", 2)
    write_disk(st, "alpha", "xvda", 512, "0xa1", 5000)
    st.ok("snapshot", "create", "alpha", "--name", "a1")
    write_disk(st, "alpha", "xvdb", 2 * M + 4096, "0xa2", M // 2)
    st.ok("snapshot", "create", "alpha", "--name", "a2")
    write_disk(st, "alpha", "xvda", 2 * M + 512, "0xa3", 4096)
    make_vm(st, "beta", 1)
    st.ok("snapshot", "create", "beta", "--name", "b1")
    write_disk(st, "beta", "xvda", 0, "0xb1", 2 * M + 512)
    return st


def prepare_gc():
    """gamma with g1, g2, g3 (different content), g1 and g3 deleted: gc must
    coalesce g2's layer into the base and the VM's leaf into g3's layer (a
    leaf coalesce), each copying 2 blocks."""
    st = S.Store(EXE, os.path.join(TMP, "gcprep"), os.path.join(TMP, "flat"))
    make_vm(st, "beta", 1)
    st.ok("snapshot", "create", "beta", "--name", "b1")
    write_disk(st, "beta", "xvda", 4096, "0xb2", 5000)
    make_vm(st, "gamma", 1)
    for i, (off, n) in enumerate(((M, 2 * M), (0, 3 * M), (2 * M - 4096, 600000))):
        write_disk(st, "gamma", "xvda", off, "0x%x" % (0xc1 + i), n)
        write_disk(st, "gamma", "xvda", 512 * (i + 1), "0x%x" % (0xd1 + i), 7000)
        st.ok("snapshot", "create", "gamma", "--name", "g%d" % (i + 1))
    write_disk(st, "gamma", "xvda", 2 * M - 4096, "0xe1", M + 4096)
    st.ok("snapshot", "delete", "gamma", "g1")
    st.ok("snapshot", "delete", "gamma", "g3")
    r = st.sp("gc", "--dry-run")
    n = len([l for l in r.out.splitlines() if l.startswith("coalesce ")])
    if r.rc != 0 or n < 2:
        T.fatal("prepared gc store: gc --dry-run should list 2 coalesces: %s" % r.describe())
    return st


# ---------------------------------------------------------------- the loop

def count_points(prep, args, label):
    work = S.Store(EXE, os.path.join(TMP, "count"), os.path.join(TMP, "flat"))
    shutil.rmtree(work.dir, ignore_errors=True)
    shutil.copytree(prep.dir, work.dir)
    log = os.path.join(TMP, "crash.log")
    if os.path.exists(log):
        os.unlink(log)
    r = work.sp(*args, env={"SNAPPORT_CRASH_LOG": log})
    if r.rc != 0:
        T.fatal("%s: the operation fails without a crash: %s" % (label, r.describe()))
    names = []
    if os.path.exists(log):
        names = [l.split(None, 1)[1] for l in open(log).read().splitlines() if l.strip()]
    if not names:
        T.fatal("%s: the operation reaches no crash point (SNAPPORT_CRASH_LOG empty)" % label)
    return names


def verify(label, pre, post, spec):
    """post digests against pre and what the operation may change."""
    vanish = spec.get("may_vanish", set())
    appear = spec.get("may_appear", {})
    change = spec.get("may_change", {})
    groups = spec.get("together", [])
    ok = True
    for key, want in pre.items():
        got = post.get(key)
        if key not in post:
            ok &= T.check(key in vanish, "%s: %s vanished" % (label, key))
        elif key in change:
            ok &= T.check(got in change[key], "%s: %s has content %s, expected one of %s"
                          % (label, key, got, change[key]))
        else:
            ok &= T.check(got == want, "%s: %s changed: %s, was %s" % (label, key, got, want))
    for key, got in post.items():
        if key in pre:
            continue
        if not T.check(key in appear, "%s: unexpected %s appeared" % (label, key)):
            ok = False
            continue
        ok &= T.check(got == appear[key], "%s: new %s has content %s, expected %s" % (label, key, got, appear[key]))
    for g in groups:
        present = [k in post for k in g]
        ok &= T.check(all(present) or not any(present),
                      "%s: of %s only %s survived (all or nothing)" % (label, g, [k for k in g if k in post]))
    return ok


def recover_and_verify(label, work, pre, spec):
    r = work.check()
    T.check(not r.crashed() and r.rc in (0, 1), "%s: first store check: %s" % (label, r.describe()))
    r = work.sp("gc")
    if not T.check(r.rc == 0, "%s: gc after the crash: %s" % (label, r.describe())):
        return False
    r = work.check()
    if not T.check(r.rc == 0, "%s: store check after gc: %s" % (label, r.describe())):
        return False
    ok = verify(label, pre, work.digests(memory=spec.get("memory", False)), spec)
    for vm, want in spec.get("depths", {}).items():
        got = work.chain_depths(vm)
        ok &= T.check(got == want, "%s: chain depths of %s after gc: %s, expected %s" % (label, vm, got, want))
    return ok


def one_kill(name, prep, args, spec, pre, n, points, m=None):
    """Copy, kill at n (and the recovering gc at m), recover, verify."""
    label = "%s: killed at crash point %d/%d (%s)" % (name, n, len(points), points[n - 1])
    if m is not None:
        label += ", then the recovering gc killed at its point %d" % m
    tag = "%s.%d.%s" % (name.split()[0], n, m)
    work = S.Store(EXE, os.path.join(TMP, "work", tag), os.path.join(TMP, "flat", tag))
    shutil.rmtree(work.dir, ignore_errors=True)
    shutil.copytree(prep.dir, work.dir)
    finished = False
    try:
        r = work.sp(*args, env={"SNAPPORT_CRASH_AFTER": n})
        if not T.check(r.rc == -9, "%s: expected death by SIGKILL (-9): %s" % (label, r.describe())):
            return True
        if m is not None:
            r = work.sp("gc", env={"SNAPPORT_CRASH_AFTER": m})
            if not T.check(r.rc in (-9, 0), "%s: the second gc: %s" % (label, r.describe())):
                return True
            finished = r.rc == 0
        recover_and_verify(label, work, pre, spec)
    finally:
        shutil.rmtree(work.dir, ignore_errors=True)
    return finished


def kill_loop(name, prep, args, spec, twice=0):
    """twice: also kill the gc that recovers, at its points 1..twice."""
    t0 = time.time()
    pre = prep.digests(memory=spec.get("memory", False))
    points = count_points(prep, args, name)
    fails = len(T.FAILURES)
    jobs = [(n, None) for n in range(1, len(points) + 1)]
    jobs += [(n, m) for n in range(1, len(points) + 1) for m in range(1, twice + 1)]
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(lambda j: one_kill(name, prep, args, spec, pre, j[0], points, j[1]), jobs))
    print("%s: %d crash points (%s), %d kill runs, %s, %.1f s" % (
        name, len(points), " ".join(sorted(set(points))), len(jobs),
        "ok" if len(T.FAILURES) == fails else "%d failure(s)" % (len(T.FAILURES) - fails), time.time() - t0))
    sys.stdout.flush()


def prepare_memory():
    """mu: one disk; suspended with image A, memory snapshot m1, halted,
    more writes, suspended again with image B (so: a suspended VM with a
    memory snapshot of other disk and memory content)."""
    st = S.Store(EXE, os.path.join(TMP, "memprep"), os.path.join(TMP, "flat"))
    make_vm(st, "mu", 1)
    for tag, byte in (("A", 0x1a), ("B", 0x1b)):
        img = os.path.join(TMP, "mem%s.bin" % tag)
        with open(img, "wb") as f:
            f.write(RNG.randbytes(200 * K + byte))
        write_disk(st, "mu", "xvda", byte * 4096, "0x%x" % byte, 9000)
        st.ok("vm", "suspend", "mu", "--image", img)
        if tag == "A":
            st.ok("snapshot", "create", "mu", "--memory", "--name", "m1")
            st.ok("vm", "halt", "mu")
    r = st.check()
    if r.rc != 0:
        T.fatal("prepared memory store does not check clean: %s" % r.describe())
    return st


def main():
    global EXE, TMP
    EXE, TMP = T.setup()
    t0 = time.time()
    base = prepare_base()
    d = base.digests()
    A, A1, A2 = ("vm", "alpha"), ("snap", "alpha", "a1"), ("snap", "alpha", "a2")
    B, B1 = ("vm", "beta"), ("snap", "beta", "b1")
    if len({str(d[A]), str(d[A1]), str(d[A2])}) != 3:
        T.fatal("prepared store: alpha, a1, a2 should differ in content")

    kill_loop("snapshot create", base, ["snapshot", "create", "alpha", "--name", "new"],
              {"may_appear": {("snap", "alpha", "new"): d[A]}})
    kill_loop("snapshot revert", base, ["snapshot", "revert", "alpha", "a1"],
              {"may_change": {A: [d[A], d[A1]]}})
    kill_loop("clone (fast) of a VM", base, ["clone", "alpha", "--name", "c1"],
              {"may_appear": {("vm", "c1"): d[A]}})
    kill_loop("clone (fast) of a snapshot", base, ["clone", "a1", "--name", "c2"],
              {"may_appear": {("vm", "c2"): d[A1]}})
    kill_loop("clone --full", base, ["clone", "alpha", "--name", "c3", "--full"],
              {"may_appear": {("vm", "c3"): d[A]}})
    kill_loop("vm destroy", base, ["vm", "destroy", "beta"],
              {"may_vanish": {B, B1}, "together": [(B, B1)]})
    kill_loop("snapshot delete", base, ["snapshot", "delete", "alpha", "a2"],
              {"may_vanish": {A2}})

    mp = prepare_memory()
    dm = mp.digests(memory=True)
    MU, M1 = ("vm", "mu"), ("snap", "mu", "m1")
    if dm[MU] == dm[M1] or not dm[MU]["memory"] or not dm[M1]["memory"]:
        T.fatal("prepared memory store: mu and m1 should both have (different) memory and disks: %s" % dm)
    halted = dict(dm[MU], memory=None)
    kill_loop("snapshot create --memory", mp, ["snapshot", "create", "mu", "--memory", "--name", "m2"],
              {"memory": True, "may_appear": {("snap", "mu", "m2"): dm[MU]}})
    kill_loop("snapshot revert to a memory snapshot", mp, ["snapshot", "revert", "mu", "m1"],
              {"memory": True, "may_change": {MU: [dm[MU], dm[M1]]}})
    kill_loop("clone of a suspended VM", mp, ["clone", "mu", "--name", "mc"],
              {"memory": True, "may_appear": {("vm", "mc"): dm[MU]}})
    kill_loop("vm halt", mp, ["vm", "halt", "mu"],
              {"memory": True, "may_change": {MU: [dm[MU], halted]}})

    gcp = prepare_gc()
    kill_loop("gc (coalesce, leaf coalesce)", gcp, ["gc"], {"depths": {"gamma": {"xvda": 2}}}, twice=2)
    print("total %.1f s" % (time.time() - t0))
    T.finish("test_store_crash")


if __name__ == "__main__":
    main()
