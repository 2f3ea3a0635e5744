"""test_export_batch_s3: a batch export to an S3 prefix (issue 13 item 4)
against a real radosgw (tests/tools/ceph_rgw.py).

- 8 small VMs exported one after another (export VM -o s3://B/serial/K),
  then as one batch, export --all -o s3://B/batch/ -j 2: both times are
  printed (the batch's uploads overlap; the issue wants it faster); the
  bucket then lists exactly batch/NAME-UUID.xva for every VM (UUIDs from
  `vm list --json`); one of them imports back byte-identical (disk flatten
  + sha256 of both); the JSON lists every export ok, bytes null (S3), and
  both batches' documents are as docs/json-schema.json says.
- The same batch again with one object deleted: exit 1, 7 VMs fail with
  "exists" and the deleted one is uploaded again (it lists again).
- A -j 2 batch through tests/tools/s3proxy at 1 MiB/s (so that the uploads
  last), each upload with --jobs 1: two parts go up at once; SIGINT then: exit 130, one line "interrupted
  by SIGINT", no object under the batch's prefix, the snapshots as before,
  store check clean.
- After each run no multipart upload is left.
Skips (77) outside CI when the Ceph packages are missing.
"""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import ceph_rgw  # noqa: E402
import s3proxy  # noqa: E402
import sptest as T  # noqa: E402
import storetest as ST  # noqa: E402

M = 1024 * 1024
BUCKET = "sp-batch"
NVMS = 8


def make_vm(store, tmp, name):
    raw = os.path.join(tmp, name + ".raw")
    with open(raw, "wb") as f:
        f.truncate(6 * M)
        f.seek(M)
        f.write(os.urandom(4 * M))
    cfg = os.path.join(tmp, name + ".cfg")
    with open(cfg, "w") as f:
        f.write("name='%s'\nmemory=128\nvcpus=1\ndisk=['%s,raw,xvda,rw']\n" % (name, raw))
    store.ok("vm", "create", "--config", cfg, "-q")


def keys(s3, prefix):
    """The object keys under s3://BUCKET/prefix."""
    out = s3.s3cmd("ls", "--recursive", "s3://%s/%s" % (BUCKET, prefix))
    return sorted(l.split("s3://%s/" % BUCKET, 1)[1] for l in out.splitlines() if "s3://" in l)


def no_uploads_left(s3, what):
    left = s3.multipart_uploads(BUCKET)
    T.check(left == [], "%s: multipart uploads left: %r" % (what, left))


def snapshots_of(store):
    return {n: store.snapshots(n) for n in store.vms()}


def case_sigint(store, s3, env, vms):
    host, port = s3.endpoint.split("://", 1)[1].split(":")
    p = s3proxy.FaultProxy((host, int(port)), rate=1 << 20)
    try:
        before = snapshots_of(store)
        proc = subprocess.Popen([store.exe, "--store", store.dir, "export", *sorted(vms)[:4], "-o",
                                 "s3://%s/sig/" % BUCKET, "-j", "2", "--jobs", "1", "--endpoint", p.endpoint],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # both children upload at once (--jobs 1: one part each in flight):
        # an export that kept the store locked while its last parts went up
        # made the other wait, one upload at a time
        deadline = time.monotonic() + 60
        while p.peak["part"] < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        T.check(p.peak["part"] >= 2, "a -j 2 batch to S3 never sent two parts at once (at most %d)" % p.peak["part"])
        if not T.check(proc.poll() is None, "the S3 batch ended before the signal (rc %s)" % proc.returncode):
            return
        proc.send_signal(signal.SIGINT)
        o, e = proc.communicate(timeout=120)
    finally:
        p.close()
    e = e.decode("utf-8", "replace")
    print("sigint: exit %s, %r" % (proc.returncode, e.strip()))
    T.check(proc.returncode == 130, "an S3 batch after SIGINT: exit %s, stderr %r" % (proc.returncode, e))
    T.check("interrupted by SIGINT" in e, "an S3 batch after SIGINT: %r" % e)
    T.check(keys(s3, "sig/") == [], "an S3 batch after SIGINT left objects %r" % keys(s3, "sig/"))
    no_uploads_left(s3, "S3 batch after SIGINT")
    T.check(snapshots_of(store) == before, "an S3 batch after SIGINT changed the snapshots")
    r = store.check()
    T.check(r.rc == 0, "store check after SIGINT: %s" % r.describe())


def main():
    ceph_rgw.require()
    exe, tmp = T.setup()
    with ceph_rgw.Cluster(tmp) as s3:
        s3.s3cmd("mb", "s3://" + BUCKET)
        store = ST.Store(exe, os.path.join(tmp, "store"), os.path.join(tmp, "scratch"))
        for i in range(NVMS):
            make_vm(store, tmp, "vm%d" % i)
        vms = store.vms()
        env = dict(s3.aws_env(), HOME=tmp)

        t0 = time.monotonic()
        for n in sorted(vms):
            r = store.sp("export", n, "-o", "s3://%s/serial/%s.xva" % (BUCKET, n), env=env, timeout=120)
            T.check(r.rc == 0, "export %s: %s" % (n, r.describe()))
        serial = time.monotonic() - t0

        t0 = time.monotonic()
        r = store.sp("export", "--all", "-o", "s3://%s/batch/" % BUCKET, "-j", "2", env=env, timeout=300,
                     json_out=True)
        batch = time.monotonic() - t0
        print("8 VMs to S3: one after another %.2f s, export --all -j 2 %.2f s" % (serial, batch))
        j = json.loads(r.out) if r.out.strip() else {}
        T.check(r.rc == 0 and j.get("failed") == 0, "export --all to S3: %s" % r.describe())
        T.json_schema_check(j, "export --all to S3 --json")
        for e in j.get("exports", []):
            T.check(e["ok"] and e["bytes"] is None and e["output"] == "s3://%s/batch/%s-%s.xva"
                    % (BUCKET, e["vm"], vms[e["vm"]]), "export --all to S3: %r" % e)
        want = sorted("batch/%s-%s.xva" % (n, u) for n, u in vms.items())
        T.check(keys(s3, "batch/") == want, "objects: %r, expected %r" % (keys(s3, "batch/"), want))
        no_uploads_left(s3, "batch")

        url = "s3://%s/batch/vm3-%s.xva" % (BUCKET, vms["vm3"])
        r = store.sp("import", url, "--name", "vm3-back", env=env, timeout=120)
        if T.check(r.rc == 0, "import %s: %s" % (url, r.describe())):
            T.check(store.disk_digests("vm3-back") == store.disk_digests("vm3"), "vm3 imported back differs")

        s3.s3cmd("del", "s3://%s/batch/vm5-%s.xva" % (BUCKET, vms["vm5"]))
        r = store.sp("export", *sorted(vms), "-o", "s3://%s/batch/" % BUCKET, "-j", "2", env=env, timeout=300,
                     json_out=True)
        j = json.loads(r.out) if r.out.strip() else {}
        by = {e["vm"]: e for e in j.get("exports", [])}
        T.json_schema_check(j, "a batch over existing objects --json")
        T.check(r.rc == 1 and j.get("failed") == NVMS - 1 and by.get("vm5", {}).get("ok"),
                "a batch over existing objects: %s" % r.describe())
        T.check(all("exists" in e["error"] for n, e in by.items() if n != "vm5"), "failed for why? %r" % by)
        T.check(keys(s3, "batch/") == want, "objects after the second batch: %r" % keys(s3, "batch/"))
        no_uploads_left(s3, "second batch")
        case_sigint(store, s3, env, vms)
    T.finish("test_export_batch_s3")


if __name__ == "__main__":
    main()
