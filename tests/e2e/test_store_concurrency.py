"""Two snapport processes on one store at once, and the store lock.

Cases:
  race     two worker processes (subprocess.Popen) on one store, at once:
           A runs `snapshot create VM` 10 times; B runs `clone --full VM
           --name cN`, `vm list`, `snapshot list VM` 10 times; with
           SNAPPORT_LOCK_TIMEOUT=30 every command waits and succeeds (a
           failure may only be one clear 'snapport: ... busy ... lock' line).
           Afterwards: store check clean, the number of snapshots equals the
           successful creates, every clone has the VM's content, every
           `vm list`/`snapshot list` output was a whole JSON document.
  held     the test holds STORE/lock itself with fcntl.flock:
           LOCK_EX: a writer (snapshot create) and a reader (vm list) with
             SNAPPORT_LOCK_TIMEOUT=1 fail with exit 3 and one 'busy' line
             naming the lock within a few seconds (and naming as holder no
             process that has exited); nothing changed; the wait lasts the
             whole timeout (1 s, 2 s), also when it starts mid-second;
           LOCK_SH (a reader): vm list works, a writer fails 'busy';
           LOCK_EX released after 1.5 s: a writer with timeout 30 waits and
             then succeeds.
"""

import fcntl
import json
import os
import random
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402

K, M = S.K, S.M
EXE = TMP = None
ROUNDS = 10


# ---------------------------------------------------------------- workers

def worker(kind, exe, store, out_path, go_path):
    """Runs in a child process: one command stream; each result as a JSON line."""
    while not os.path.exists(go_path):      # both start together
        time.sleep(0.005)
    env = {"SNAPPORT_LOCK_TIMEOUT": 30}
    with open(out_path, "w") as out:
        for i in range(ROUNDS):
            if kind == "snap":
                cmds = [["snapshot", "create", "vm1", "--name", "snap%d" % i]]
            else:
                cmds = [["clone", "vm1", "--name", "c%d" % i, "--full"],
                        ["--json", "vm", "list"], ["--json", "snapshot", "list", "vm1"]]
            for c in cmds:
                t0 = time.time()
                r = S.run_env([exe, "--store", store] + c, env=env, timeout=120)
                out.write(json.dumps({"cmd": c, "rc": r.rc, "out": r.out, "err": r.err,
                                      "t": round(time.time() - t0, 3)}) + "\n")
                out.flush()


def busy_ok(res):
    """A refusal must be one clear line naming the lock."""
    lines = [l for l in res["err"].splitlines() if l.strip()]
    return (res["rc"] == 3 and len(lines) == 1 and lines[0].startswith("snapport: ")
            and "busy" in lines[0] and "lock" in lines[0])


def make_vm(st, name, size):
    src = os.path.join(TMP, name + ".raw")
    with open(src, "wb") as f:
        f.write(random.Random(5).randbytes(size))
    cfg = os.path.join(TMP, name + ".cfg")
    with open(cfg, "w") as f:
        f.write("name = '%s'\nmemory = 512\nvcpus = 2\ndisk = [ 'format=raw, vdev=xvda, target=%s' ]\n"
                "vif = [ 'bridge=xenbr0' ]\n" % (name, src))
    st.ok("vm", "create", "--config", cfg)


def case_race(st):
    make_vm(st, "vm1", 12 * M)
    d_vm = st.disk_digests("vm1")
    go = os.path.join(TMP, "go")
    outs = {k: os.path.join(TMP, "worker-%s.jsonl" % k) for k in ("snap", "clone")}
    procs = {k: subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", k, EXE, st.dir,
                                  outs[k], go]) for k in outs}
    time.sleep(0.3)
    open(go, "w").close()
    for k, p in procs.items():
        try:
            rc = p.wait(timeout=240)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = "TIMEOUT"
        T.check(rc == 0, "worker %s exited %s" % (k, rc))
    results = {}
    for k, path in outs.items():
        results[k] = [json.loads(l) for l in open(path).read().splitlines() if l.strip()] if os.path.exists(path) else []
    T.check(len(results["snap"]) == ROUNDS and len(results["clone"]) == 3 * ROUNDS,
            "workers ran %d and %d commands, expected %d and %d"
            % (len(results["snap"]), len(results["clone"]), ROUNDS, 3 * ROUNDS))

    made_snaps, made_clones, refused = [], [], 0
    for k in results:
        for res in results[k]:
            what = "`snapport %s` (concurrent)" % " ".join(res["cmd"])
            if res["rc"] == 0:
                if res["cmd"][0] == "snapshot":
                    made_snaps.append(res["cmd"][-1])
                elif res["cmd"][0] == "clone":
                    made_clones.append(res["cmd"][3])
                else:
                    try:
                        json.loads(res["out"])
                    except ValueError:
                        T.check(False, "%s: stdout is not one JSON document: %r" % (what, res["out"][:300]))
            else:
                refused += 1
                T.check(busy_ok(res), "%s: exit %s, neither success nor one clear 'busy ... lock' line: %r"
                        % (what, res["rc"], res["err"]))
    # with a 30 s wait no command should have given up
    T.check(refused == 0, "%d commands gave up although SNAPPORT_LOCK_TIMEOUT=30" % refused)
    slow = max([res["t"] for k in results for res in results[k]] or [0])
    print("race: %d snapshots, %d clones, %d refused, slowest command %.2f s"
          % (len(made_snaps), len(made_clones), refused, slow))

    r = st.check()
    T.check(r.rc == 0, "store check after the concurrent run: %s" % r.describe())
    snaps = st.snapshots("vm1")
    T.check(sorted(s["name"] for s in snaps) == sorted(made_snaps),
            "snapshot list %s, but the successful creates were %s" % ([s["name"] for s in snaps], made_snaps))
    vms = st.vms()
    T.check(sorted(vms) == sorted(["vm1"] + made_clones), "vm list %s, expected vm1 and %s" % (sorted(vms), made_clones))
    for c in made_clones:
        T.check(st.disk_digests(c) == d_vm, "clone %s does not have vm1's content" % c)
    T.check(st.disk_digests("vm1") == d_vm, "vm1's content changed")
    for s in snaps:
        T.check(st.disk_digests(s["uuid"]) == d_vm, "snapshot %s does not have vm1's content" % s["name"])


class Held:
    """flock on STORE/lock held by this test."""

    def __init__(self, store, mode):
        self.fd = os.open(os.path.join(store, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, mode)
        if mode == fcntl.LOCK_EX:
            # as a snapport writer does (store/lock.c): who holds it
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, b"pid %d: test-holder\n" % os.getpid(), 0)

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def timed(st, *args, timeout_env=1):
    t0 = time.time()
    r = st.sp(*args, env={"SNAPPORT_LOCK_TIMEOUT": timeout_env}, timeout=60)
    return r, time.time() - t0


def expect_busy(r, dt, what, holder=None):
    if not T.check(r.rc == 3, "%s while the lock is held: expected exit 3, got %s" % (what, r.describe())):
        return
    S.one_error_line(r, what)
    T.check("busy" in r.err and "lock" in r.err, "%s: the message does not say busy/lock: %r" % (what, r.err))
    T.check(dt < 6, "%s: took %.1f s to give up with SNAPPORT_LOCK_TIMEOUT=1" % (what, dt))
    if holder:
        T.check(holder in r.err, "%s: the message does not name the holder %r: %r" % (what, holder, r.err.strip()))
    # the holder it names must exist: a pid that has exited is stale news
    m = re.search(r"pid (\d+)", r.err)
    if m:
        T.check(os.path.exists("/proc/%s" % m.group(1)),
                "%s: the message names pid %s as the holder, which is not running: %r"
                % (what, m.group(1), r.err.strip()))


def case_timeout_honoured(st):
    """SNAPPORT_LOCK_TIMEOUT=N waits N seconds.  The call starts half-way
    through a CLOCK_MONOTONIC second (time.monotonic is that clock), so a
    wait that counts whole-second ticks instead of elapsed time shows."""
    h = Held(st.dir, fcntl.LOCK_EX)
    try:
        for limit in (1, 2):
            now = time.monotonic()
            time.sleep((0.5 - (now % 1.0)) % 1.0)
            t0 = time.monotonic()
            r = st.sp("snapshot", "create", "vm2", "--name", "blocked", env={"SNAPPORT_LOCK_TIMEOUT": limit},
                      timeout=60)
            dt = time.monotonic() - t0
            T.check(r.rc == 3 and "busy" in r.err, "held lock, timeout %d: %s" % (limit, r.describe()))
            T.check(dt >= limit - 0.1, "SNAPPORT_LOCK_TIMEOUT=%d: gave up after %.2f s (started at %.2f of a "
                    "monotonic second): %r" % (limit, dt, t0 % 1.0, r.err.strip()))
            T.check(dt < limit + 3, "SNAPPORT_LOCK_TIMEOUT=%d: waited %.2f s" % (limit, dt))
    finally:
        h.release()


def case_held(st):
    make_vm(st, "vm2", 2 * M)
    nsnap = len(st.snapshots("vm2"))
    files = st.files()

    h = Held(st.dir, fcntl.LOCK_EX)
    try:
        r, dt = timed(st, "snapshot", "create", "vm2", "--name", "blocked")
        expect_busy(r, dt, "snapshot create (writer)", holder="pid %d: test-holder" % os.getpid())
        r, dt = timed(st, "vm", "list")
        expect_busy(r, dt, "vm list (reader)", holder="pid %d: test-holder" % os.getpid())
        r, dt = timed(st, "store", "check")
        expect_busy(r, dt, "store check (reader)", holder="pid %d: test-holder" % os.getpid())
    finally:
        h.release()
    case_timeout_honoured(st)
    T.check(len(st.snapshots("vm2")) == nsnap, "a snapshot was made while the lock was held")
    T.check(st.files() == files, "store files changed while the lock was held")

    # a writer that has finished (it wrote its pid into the lock file), then
    # a reader holds the lock: the busy message must not blame the writer
    st.ok("gc")
    h = Held(st.dir, fcntl.LOCK_SH)
    try:
        r, dt = timed(st, "vm", "list")
        T.check(r.rc == 0, "vm list while another reader holds the lock: %s" % r.describe())
        r, dt = timed(st, "snapshot", "create", "vm2", "--name", "blocked")
        expect_busy(r, dt, "snapshot create while a reader holds the lock")
    finally:
        h.release()

    # a writer waits for the lock and then does its work
    h = Held(st.dir, fcntl.LOCK_EX)
    t0 = time.time()
    p = subprocess.Popen([EXE, "--store", st.dir, "snapshot", "create", "vm2", "--name", "waited"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, SNAPPORT_LOCK_TIMEOUT="30"))
    time.sleep(1.5)
    T.check(p.poll() is None, "snapshot create did not wait for the held lock (exit %s)" % p.poll())
    h.release()
    try:
        out, err = p.communicate(timeout=30)
        T.check(p.returncode == 0, "snapshot create after the lock was released: exit %s %r" % (p.returncode, err))
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        T.check(False, "snapshot create did not finish after the lock was released")
    dt = time.time() - t0
    T.check(dt >= 1.4, "snapshot create finished in %.2f s although the lock was held 1.5 s" % dt)
    T.check([s["name"] for s in st.snapshots("vm2")] == ["waited"],
            "snapshots after waiting: %s" % [s["name"] for s in st.snapshots("vm2")])
    r = st.check()
    T.check(r.rc == 0, "store check at the end: %s" % r.describe())


def main():
    global EXE, TMP
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:7])
        return
    EXE, TMP = T.setup()
    st = S.Store(EXE, os.path.join(TMP, "store"), os.path.join(TMP, "flat"))
    case_race(st)
    case_held(S.Store(EXE, os.path.join(TMP, "store2"), os.path.join(TMP, "flat")))
    T.finish("test_store_concurrency")


if __name__ == "__main__":
    main()
