"""test_s3_faults: the S3 client against a failing network and server (issue
13), a real radosgw (tests/tools/ceph_rgw.py) behind a fault-injecting proxy
(tests/tools/s3proxy.py) that counts what it saw, so every case proves the
retries happened.

- 429 SlowDown twice and a stalled UploadPart (no answer; SNAPPORT_S3_TIMEOUT
  makes the wait 1 s): retried, the export completes, imports byte-identical.
- A stall on every attempt: one line naming the URL, exit 3, upload aborted.
- A part corrupted in flight (one byte of the body flipped, Content-Length
  kept): rgw refuses it (400, the SHA-256 sent with it does not match), the
  client sends it again from its buffer, the object imports byte-identical.
- A ranged GET's body corrupted in flight: import and verify fail (the
  archive's own checksums), one line naming the URL, nothing imported.
- The object replaced (s3cmd put) while verify reads it slowly: the ranged
  GETs ask for the HEAD's ETag (If-Match), rgw answers 412, and verify
  fails with one line naming the URL, never reading a mix of two objects.
- radosgw restarted (SIGTERM, start again on the same port) during a slow
  export: the retries ride it out, the object imports byte-identical.
- radosgw down longer than the retry budget (SNAPPORT_S3_ATTEMPTS=2): the
  export fails with one line naming the URL; the abort, retried longer,
  reaches the restarted rgw, so no upload is left.
- A server that takes requests and never answers (the proxy falls silent
  after the first part): whether the parts fail or SIGINT stops the export,
  the abort gives up within its budget (not 12 low-speed timeouts), the
  line says which upload stays on the server; it is there, and s3cmd
  aborts it.
- An abort carried out whose answer is lost (SIGINT, the proxy closes the
  connection instead of passing rgw's 204): the retry's 404 NoSuchUpload
  means the upload is gone; the line is the stop's alone, nothing is left.
- --resume-file: SIGKILL at random moments (seed printed; SP_SEED=N repeats
  a run), each followed by the same command, the last one completing: the
  object imports byte-identical, one upload all along, none left.
After every case no multipart upload is left (s3cmd multipart).
Skips (77) outside CI when the Ceph packages are missing.
"""

import os
import random
import re
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import ceph_rgw  # noqa: E402
import s3proxy  # noqa: E402
import s3test  # noqa: E402
import sptest as T  # noqa: E402
import storetest as ST  # noqa: E402

BUCKET = "sp-faults"
PARTS = ("--part-size", "5M")
SLOW = 6 << 20  # bytes/s per connection through the throttling proxy: ~3 s for "mid"
# a request rgw took and will never answer (it was stopping) waits this
# long, not 60 s, before it is sent again
RESTART_ENV = {"SNAPPORT_S3_TIMEOUT": "5"}
# a silent server: each attempt waits 2 s, a part has 2 attempts
SILENT_ENV = {"SNAPPORT_S3_TIMEOUT": "2", "SNAPPORT_S3_ATTEMPTS": "2"}
# the abort's budget is 30 s at least (SP_S3_ABORT_BUDGET_MIN_S); without
# it 12 attempts of 2 s and the waits between them take about 49 s
ABORT_BOUND = 36


def proxy(ctx, **faults):
    host, port = ctx.s3.endpoint.split("://", 1)[1].split(":")
    return s3proxy.FaultProxy((host, int(port)), **faults)


def export_through(ctx, p, name, url, *extra, env=None):
    r = ctx.sp("export", name, "-o", url, *PARTS, "--endpoint", p.endpoint, *extra, env=env)
    print("%s: exit %d, proxy saw %s, did %s" % (url, r.rc, dict(p.seen), dict(p.counts)))
    return r


def slowdown_and_stall(ctx, want):
    """Two 429s and a stalled part are retried; the export completes."""
    url = "s3://%s/slow.xva" % BUCKET
    p = proxy(ctx, slowdown=2, stall=1)
    t0 = time.monotonic()
    r = export_through(ctx, p, "mid", url, "--jobs", "2", env={"SNAPPORT_S3_TIMEOUT": "1"})
    took = time.monotonic() - t0
    print("export through 429s and a stall: %.1f s" % took)
    p.close()
    if T.check(r.rc == 0, "export through 429s and a stall: %s" % r.describe()):
        T.check(p.counts["slowdown"] == 2 and p.counts["stall"] == 1, "faults not used: %r" % p.counts)
        # every part went up once, plus the three refused attempts
        T.check(p.seen["part"] == p.counts["part 200"] + 3, "parts seen %d, answered %d: not 3 retries" % (
            p.seen["part"], p.counts["part 200"]))
        T.check(took >= 1, "the stall did not wait for the timeout")
        ctx.imports_as(url, "mid-slow", want, "export through 429s and a stall")
    ctx.no_uploads_left("export through 429s and a stall")


def stall_always(ctx):
    """Every UploadPart stalls: the export gives up after its attempts."""
    url = "s3://%s/stalled.xva" % BUCKET
    p = proxy(ctx, stall=1000)
    r = export_through(ctx, p, "mid", url, "--jobs", "1", env={"SNAPPORT_S3_TIMEOUT": "1", "SNAPPORT_S3_ATTEMPTS": "2"})
    p.close()
    ST.expect_failure(r, "export whose parts all stall", 3, [url], ["upload part", "too slow"])
    T.check(p.counts["stall"] == 2, "expected 2 stalled attempts, the proxy saw %d" % p.counts["stall"])
    T.check(url not in ctx.objects(), "an object after a stalled export")
    ctx.no_uploads_left("stalled export")


def corrupt_part(ctx, want):
    """A part changed on the way is refused by rgw and sent again."""
    url = "s3://%s/corrupt-part.xva" % BUCKET
    p = proxy(ctx, corrupt_parts=1)
    r = export_through(ctx, p, "mid", url, "--jobs", "2")
    p.close()
    T.check(p.counts["corrupted part"] == 1, "no part corrupted: %r" % p.counts)
    T.check(p.counts["part 400"] == 1, "rgw did not refuse the corrupted part: %r" % p.counts)
    if T.check(r.rc == 0, "export with a corrupted part: %s" % r.describe()):
        T.check(p.seen["part"] == p.counts["part 200"] + 1, "the corrupted part was not sent again")
        ctx.imports_as(url, "mid-corrupt", want, "export with a part corrupted in flight")
    ctx.no_uploads_left("export with a corrupted part")


def corrupt_get(ctx):
    """A ranged GET changed on the way: the archive's checksums catch it."""
    url = "s3://%s/corrupt-part.xva" % BUCKET
    before = ctx.store.vms()
    # verify's exit for an archive that does not check out is 1
    for cmd, rc in ((["import", url, "--name", "mid-bad"], 3), (["verify", url], 1)):
        p = proxy(ctx, corrupt_gets=1)
        r = ctx.sp(cmd[0], "--endpoint", p.endpoint, *cmd[1:])
        p.close()
        T.check(p.counts["corrupted get"] == 1, "%s: no answer corrupted: %r" % (cmd[0], p.counts))
        print("corrupted GET, %s: %s" % (cmd[0], r.err.strip()))
        ST.expect_failure(r, "%s of an object corrupted in flight" % cmd[0], rc, [url], ["mismatch"])
    T.check(ctx.store.vms() == before, "an import of a corrupted object registered a VM")


def replaced_while_read(ctx):
    """The object is replaced between two ranged GETs of one verify."""
    url = "s3://%s/replaced.xva" % BUCKET
    r = ctx.sp("export", "mid", "-o", url, *PARTS)
    if not T.check(r.rc == 0, "export for the replace case: %s" % r.describe()):
        return
    other = os.path.join(ctx.tmp, "other.bin")
    with open(other, "wb") as f:
        f.write(os.urandom(1 << 20))
    p = proxy(ctx, get_rate=4 << 20)  # 17 MiB in 8 MiB ranges: about 2 s each
    proc = ctx.popen("verify", url, "--endpoint", p.endpoint, "--jobs", "1")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None and p.seen["get"] < 1:
        time.sleep(0.02)
    ctx.s3.s3cmd("put", other, url)  # while the first range is still coming
    out, err = proc.communicate(timeout=120)
    p.close()
    r = T.Result(["verify", url], proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
    print("replaced while read: GETs %d, %s" % (p.seen["get"], r.err.strip()))
    T.check(p.seen["get"] >= 2, "verify made %d ranged GETs: the replacement fell after the last" % p.seen["get"])
    ST.expect_failure(r, "verify of an object replaced while read", 3, [url], ["replaced while it was being read"])


def wait_parts(p, n, proc, timeout=30):
    """Until the proxy has seen n UploadParts (or proc ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and p.seen["part"] < n:
        time.sleep(0.02)
    return proc.poll() is None


def rgw_restart(ctx, want):
    """radosgw stops and starts again during the export: it completes."""
    url = "s3://%s/restart.xva" % BUCKET
    p = proxy(ctx, rate=SLOW)
    proc = ctx.popen("export", "mid", "-o", url, *PARTS, "--jobs", "1", "--endpoint", p.endpoint, env=RESTART_ENV)
    if not T.check(wait_parts(p, 2, proc), "the export ended before rgw stopped: too fast to test"):
        proc.kill()
        return
    stop = ctx.s3.stop_rgw()
    time.sleep(1)
    start = ctx.s3.start_rgw_again()
    out, err = proc.communicate(timeout=60)
    p.close()
    print("rgw restart: stop %.1f s, down 1 s, start %.1f s; export exit %d, proxy saw %s, %s" % (
        stop, start, proc.returncode, dict(p.seen), dict(p.counts)))
    # a part cut off or a connection refused: something was sent again
    T.check(p.seen["part"] > p.counts["part 200"] or p.counts["rgw down"] > 0,
            "the restart did not hit the export: %r %r" % (p.seen, p.counts))
    if T.check(proc.returncode == 0, "export during an rgw restart: exit %d: %r" % (proc.returncode, err)):
        ctx.imports_as(url, "mid-restart", want, "export during an rgw restart")
    ctx.no_uploads_left("export during an rgw restart")


def rgw_down(ctx):
    """radosgw down longer than the parts' retries: the export fails, the
    abort (retried for longer) reaches the restarted rgw."""
    url = "s3://%s/down.xva" % BUCKET
    p = proxy(ctx, rate=SLOW)
    proc = ctx.popen("export", "mid", "-o", url, *PARTS, "--jobs", "1", "--endpoint", p.endpoint,
                     env=dict(RESTART_ENV, SNAPPORT_S3_ATTEMPTS="2"))
    if not T.check(wait_parts(p, 2, proc), "the export ended before rgw stopped: too fast to test"):
        proc.kill()
        return
    ctx.s3.stop_rgw(kill=True)
    # the part's 2 attempts (at most 2 refused connections) are over and the
    # abort is retrying: a third refused. No fixed wait: the export may wait
    # on its own writer first (slow under ASan), sending nothing meanwhile
    deadline = time.monotonic() + 60
    while p.counts["rgw down"] < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    T.check(p.counts["rgw down"] >= 3, "the export did not try rgw while it was down: %r" % dict(p.counts))
    still = proc.poll() is None
    ctx.s3.start_rgw_again()
    out, err = proc.communicate(timeout=60)
    p.close()
    r = T.Result(["export"], proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
    print("rgw down: %s" % r.err.strip())
    T.check(still, "the export ended while rgw was down: the abort was not retried")
    ST.expect_failure(r, "export while rgw is down", 3, [url])
    T.check(url not in ctx.objects(), "an object after a failed export")
    ctx.no_uploads_left("export while rgw was down")


def silent_server(ctx):
    """The server falls silent mid-export: the abort gives up in time and
    the one line names the upload that stays."""
    for how, rc in (("parts fail", 3), ("SIGINT", 130)):
        url = "s3://%s/silent-%s.xva" % (BUCKET, how.split(" ")[0].lower())
        p = proxy(ctx, rate=SLOW)
        t0 = time.monotonic()
        proc = ctx.popen("export", "mid", "-o", url, *PARTS, "--jobs", "1", "--endpoint", p.endpoint, env=SILENT_ENV)
        if not T.check(wait_parts(p, 1, proc), "%s: the export ended before the server fell silent" % how):
            proc.kill()
            p.close()
            return
        p.silent = True
        if how == "SIGINT":
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        end = time.monotonic()
        p.close()
        r = T.Result(["export"], proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
        abort = end - p.first.get("silenced DELETE", t0)
        print("silent server, %s: %.1f s in all, the abort %.1f s, proxy did %s: %s" % (
            how, end - t0, abort, dict(p.counts), r.err.strip()))
        what = "export to a silent server (%s)" % how
        words = ["not aborted: upload ", " stays on the server"]
        if how == "SIGINT":  # exit 128+2 is the stop's, not a crash's
            T.check(r.rc == rc and not r.timed_out, "%s: exit %s, expected %d" % (what, r.rc, rc))
            T.check(ST.error_lines(r) == [r.err.strip()] and r.err.startswith("snapport: interrupted by SIGINT; ")
                    and all(w in r.err for w in words), "%s: not the one line expected: %r" % (what, r.err))
        else:
            ST.expect_failure(r, what, rc, [url], words)
        T.check(p.counts["silenced DELETE"] >= 1, "%s: the abort never came: %r" % (how, p.counts))
        T.check(abort < ABORT_BOUND, "%s: the abort took %.1f s to give up (bound %d s)" % (how, abort, ABORT_BOUND))
        m = re.search(r"not aborted: upload (\S+) stays", r.err)
        left = ctx.s3.multipart_uploads(BUCKET)
        if T.check(m and any(m.group(1) in l for l in left), "%s: the upload named is not open: %r" % (how, left)):
            ctx.s3.s3cmd("abortmp", url, m.group(1))
        T.check(url not in ctx.objects(), "%s: an object after a failed export" % how)
        ctx.no_uploads_left("after aborting by hand what an export to a silent server left")


def abort_answer_lost(ctx):
    """The abort went through, its answer did not: gone all the same."""
    url = "s3://%s/lost-abort.xva" % BUCKET
    p = proxy(ctx, rate=SLOW, lose_deletes=1)
    proc = ctx.popen("export", "mid", "-o", url, *PARTS, "--jobs", "1", "--endpoint", p.endpoint)
    if not T.check(wait_parts(p, 1, proc), "the export ended before SIGINT: too fast to test"):
        proc.kill()
        p.close()
        return
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    p.close()
    err = err.decode("utf-8", "replace")
    print("abort answer lost: exit %d, proxy did %s: %s" % (proc.returncode, dict(p.counts), err.strip()))
    T.check(p.counts["lost DELETE answer"] == 1, "no abort answer lost: %r" % p.counts)
    T.check(proc.returncode == 130 and err == "snapport: interrupted by SIGINT\n",
            "an abort whose answer was lost: exit %d, %r" % (proc.returncode, err))
    T.check(url not in ctx.objects(), "an object after an interrupted export")
    ctx.no_uploads_left("an abort whose answer was lost")


def kills(ctx, want):
    """SIGKILL at random moments, each run resumed by the next."""
    seed = int(os.environ.get("SP_SEED", random.randrange(1 << 30)))
    print("kills: seed %d (SP_SEED=%d repeats it)" % (seed, seed))
    rng = random.Random(seed)
    url = "s3://%s/killed.xva" % BUCKET
    rf = os.path.join(ctx.tmp, "killed.resume")
    args = ["export", "mid", "--snapshot", "mid-snap", "-o", url, *PARTS, "--jobs", "1", "--resume-file", rf]
    ids, done, had = set(), None, 0
    for i in range(4):
        if ids:
            had = ctx.parts(url, next(iter(ids)))
        p = proxy(ctx, rate=SLOW)
        proc = ctx.popen(*args, "--endpoint", p.endpoint)
        # a random moment after this run's first part began (the parts the
        # server has are not sent again): 0.3-2 s is up to 2 parts
        if i < 3 and wait_parts(p, 1, proc):
            time.sleep(rng.uniform(0.3, 2.0))
            proc.kill()
        out, err = proc.communicate(timeout=60)
        p.close()
        print("run %d: exit %s, %d parts were up, %d sent, %s" % (i + 1, proc.returncode, had, p.seen["part"],
                                                                 out.decode().strip()))
        if proc.returncode == 0:
            done = out.decode()
            if had:
                T.check("resumed: %d parts" % had in done, "run %d: %d parts were up: %r" % (i + 1, had, done))
            break
        T.check(proc.returncode == -9, "run %d: exit %s: %r" % (i + 1, proc.returncode, err))
        ids.add(s3test.upload_id(rf))
        left = ctx.s3.multipart_uploads(BUCKET)
        T.check(len(left) == 1, "after kill %d: expected the one upload open, got %r" % (i + 1, left))
    T.check(done is not None, "the last run did not complete")
    T.check(len(ids) == 1, "the runs made %d uploads, not one: %r" % (len(ids), ids))
    T.check(not os.path.exists(rf), "the resume file is still there after the upload completed")
    ctx.no_uploads_left("export killed and resumed")
    ctx.imports_as(url, "mid-killed", want, "export killed and resumed")


def main():
    ceph_rgw.require()
    exe, tmp = T.setup()
    t0 = time.monotonic()
    only = os.environ.get("SP_CASES", "").split()  # by hand: some cases only
    with ceph_rgw.Cluster(tmp) as s3:
        ctx = s3test.start(s3, exe, tmp, BUCKET)
        s3test.make_vm(ctx.store, tmp, "mid", [17])  # 4 parts of 5 MiB
        ctx.store.ok("snapshot", "create", "mid", "--name", "mid-snap", "-q")
        want = ctx.store.disk_digests("mid")
        for case in (slowdown_and_stall, stall_always, corrupt_part, corrupt_get, replaced_while_read, rgw_restart,
                     rgw_down, silent_server, abort_answer_lost, kills):
            if only and case.__name__ not in only:
                continue
            t1 = time.monotonic()
            if case in (stall_always, corrupt_get, replaced_while_read, rgw_down, silent_server, abort_answer_lost):
                case(ctx)
            else:
                case(ctx, want)
            print("%s: %.1f s" % (case.__name__, time.monotonic() - t1))
    print("test_s3_faults: cluster start %.1f s, stop %.1f s, total %.1f s" % (
        s3.start_seconds, s3.stop_seconds, time.monotonic() - t0))
    T.finish("test_s3_faults")


if __name__ == "__main__":
    main()
