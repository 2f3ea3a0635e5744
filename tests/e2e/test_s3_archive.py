"""test_s3_archive: export to and import from S3 (issue 13) against a real
radosgw (tests/tools/ceph_rgw.py, one cluster for the whole file).

- XVA and OVA: export -o s3://BUCKET/KEY in several parts (--part-size 5M,
  --jobs 2), then info, verify and import s3://...: the imported disks are
  byte-identical to the VM's (disk flatten + sha256).
- An existing object is refused without --force.
- Wrong secret, unknown key id, a missing bucket, a missing object, a
  truncated object: exit 3, one line 'snapport: ...' naming s3://BUCKET/KEY
  and saying why; nothing imported.
- Retries: an export through a proxy that drops connections and answers
  503 completes.
- TLS: rgw's self-signed certificate is refused, accepted with --ca-bundle
  or AWS_CA_BUNDLE.
- An export stopped by SIGINT mid-upload: exit 130, no object.
- --resume-file: an export of a snapshot SIGKILLed mid-upload is resumed by
  the same command (only the missing parts are sent) and imports
  byte-identical.
- After every case no multipart upload is left (s3cmd multipart).
Skips (77) outside CI when the Ceph packages are missing.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import ceph_rgw  # noqa: E402
import sptest as T  # noqa: E402
import s3proxy  # noqa: E402
import s3test  # noqa: E402
import storetest as ST  # noqa: E402
from s3test import make_vm  # noqa: E402

M = s3test.M
BUCKET = "sp-archives"


def round_trip(ctx, fmt, want):
    url = "s3://%s/vms/web.%s" % (BUCKET, fmt)
    t0 = time.monotonic()
    r = ctx.sp("export", "web", "-o", url, "--part-size", "5M", "--jobs", "2")
    if not T.check(r.rc == 0, "export %s: %s" % (fmt, r.describe())):
        return
    t_export = time.monotonic() - t0
    T.check(url in ctx.objects(), "%s: no object after the export" % url)
    ctx.no_uploads_left("export " + fmt)
    r = ctx.sp("--json", "info", url)
    T.check(r.rc == 0 and '"disks"' in r.out, "info %s: %s" % (url, r.describe()))
    r = ctx.sp("verify", url, "--jobs", "3")
    T.check(r.rc == 0, "verify %s: %s" % (url, r.describe()))
    name = "web-" + fmt
    t0 = time.monotonic()
    r = ctx.sp("import", url, "--name", name)
    if not T.check(r.rc == 0, "import %s: %s" % (url, r.describe())):
        return
    print("%s: export %.1f s, import %.1f s" % (fmt, t_export, time.monotonic() - t0))
    got = ctx.store.disk_digests(name)
    T.check(got == want, "%s: imported disks differ: %r != %r" % (fmt, got, want))
    # the object exists now: a second export needs --force
    r = ctx.sp("export", "web", "-o", url)
    ST.expect_failure(r, "export over an existing object", 3, [url], ["exists"])
    ctx.no_uploads_left("refused export " + fmt)


def failures(ctx):
    url = "s3://%s/vms/fail.xva" % BUCKET
    before = ctx.store.vms()
    r = ctx.sp("export", "web", "-o", url, env={"AWS_SECRET_ACCESS_KEY": "Xq9NotTheSecret"})
    ST.expect_failure(r, "wrong secret", 3, [url], ["signature"])
    T.check("Xq9NotTheSecret" not in r.err, "a secret in the message: %r" % r.err)
    r = ctx.sp("export", "web", "-o", url, env={"AWS_ACCESS_KEY_ID": "NOSUCHKEY"})
    ST.expect_failure(r, "unknown key id", 3, [url], ["access key"])
    r = ctx.sp("export", "web", "-o", "s3://sp-no-such-bucket/x.xva")
    ST.expect_failure(r, "missing bucket", 3, ["s3://sp-no-such-bucket/x.xva"], ["no such bucket"])
    T.check(url not in ctx.objects(), "an object after failed exports")
    ctx.no_uploads_left("failed exports")
    r = ctx.sp("import", url)
    ST.expect_failure(r, "import of a missing object", 3, [url], ["no such object"])
    r = ctx.sp("verify", "s3://%s/vms/web.xva" % BUCKET, env={"AWS_SECRET_ACCESS_KEY": "wrong"})
    ST.expect_failure(r, "verify with a wrong secret", 3, ["s3://%s/vms/web.xva" % BUCKET], ["signature"])
    r = ctx.sp("info", "s3://sp-no-such-bucket/web.xva")
    ST.expect_failure(r, "info in a missing bucket", 3, ["s3://sp-no-such-bucket/web.xva"], ["no such bucket"])
    # a truncated archive: the first 3 MiB of the good one
    whole = os.path.join(ctx.tmp, "whole.xva")
    cut = os.path.join(ctx.tmp, "cut.xva")
    ctx.s3.s3cmd("get", "--force", "s3://%s/vms/web.xva" % BUCKET, whole)
    with open(whole, "rb") as f, open(cut, "wb") as g:
        g.write(f.read(3 * M))
    cut_url = "s3://%s/vms/cut.xva" % BUCKET
    ctx.s3.s3cmd("put", cut, cut_url)
    r = ctx.sp("import", cut_url)
    ST.expect_failure(r, "import of a truncated object", 3, [cut_url], [])
    T.check(ctx.store.vms() == before, "a failed import registered a VM")
    ctx.no_uploads_left("failed imports")


def retries(ctx):
    """A dropped connection and a 503 are retried: the export through a
    flaky proxy completes and imports byte-identical."""
    host, port = ctx.s3.endpoint.split("://", 1)[1].split(":")
    proxy = s3proxy.FaultProxy((host, int(port)), drop=[1, 4], busy=[2, 5])
    url = "s3://%s/vms/retried.xva" % BUCKET
    r = ctx.sp("export", "web", "-o", url, "--part-size", "5M", "--jobs", "2", "--endpoint", proxy.endpoint)
    proxy.close()
    if T.check(r.rc == 0, "export through a flaky proxy: %s" % r.describe()):
        T.check(proxy.connections > 5, "the proxy saw only %d connections" % proxy.connections)
        r = ctx.sp("import", url, "--name", "web-retried")
        T.check(r.rc == 0 and ctx.store.disk_digests("web-retried") == ctx.store.disk_digests("web"),
                "the export through a flaky proxy imports other disks: %s" % r.describe())
    ctx.no_uploads_left("export through a flaky proxy")


def tls(ctx):
    """TLS is verified: rgw's self-signed certificate is refused unless
    --ca-bundle (or AWS_CA_BUNDLE) names it."""
    url = "s3://%s/vms/web.xva" % BUCKET
    https = {"AWS_ENDPOINT_URL": ctx.s3.tls_endpoint}
    r = ctx.sp("info", url, env=https)
    ST.expect_failure(r, "TLS without the CA", 3, [url], ["certificate"])
    r = ctx.sp("info", url, "--ca-bundle", ctx.s3.ca_file, env=https)
    T.check(r.rc == 0, "info over TLS with --ca-bundle: %s" % r.describe())
    r = ctx.sp("verify", url, "--endpoint", ctx.s3.tls_endpoint, env={"AWS_CA_BUNDLE": ctx.s3.ca_file})
    T.check(r.rc == 0, "verify over TLS with AWS_CA_BUNDLE: %s" % r.describe())


def interrupted(ctx):
    """SIGINT while parts go up: exit 130, the upload aborted, no object."""
    make_vm(ctx.store, ctx.tmp, "big", [96])
    url = "s3://%s/vms/big.xva" % BUCKET
    p = ctx.popen("export", "big", "-o", url, "--part-size", "5M", "--jobs", "1")
    # once the upload has begun (an open multipart upload)
    if not T.signal_when_ready(p, lambda: ctx.s3.multipart_uploads(BUCKET), signal.SIGINT, "the export", settle=0.3):
        return
    out, err = p.communicate(timeout=60)
    print("interrupted: exit %s, %r" % (p.returncode, err.decode("utf-8", "replace").strip()))
    T.check(p.returncode == 130, "export after SIGINT: exit %s, stderr %r" % (p.returncode, err))
    T.check(url not in ctx.objects(), "an object after an interrupted export")
    ctx.no_uploads_left("interrupted export")


def resumed(ctx):
    """--resume-file: an export SIGKILLed mid-upload leaves the upload and
    the file; the same command again sends only the missing parts and the
    archive imports byte-identical."""
    ctx.store.ok("snapshot", "create", "big", "--name", "big-snap", "-q")
    url = "s3://%s/vms/big-resume.xva" % BUCKET
    rf = os.path.join(ctx.tmp, "big.resume")
    args = ["export", "big", "--snapshot", "big-snap", "-o", url, "--part-size", "5M", "--jobs", "1",
            "--resume-file", rf]
    p = ctx.popen(*args)
    # the resume file appears when the upload is created; then let it run in
    # short steps (stopped while s3cmd looks) until a few parts are up
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and p.poll() is None and not os.path.exists(rf):
        time.sleep(0.005)
    p.send_signal(signal.SIGSTOP)
    upload_id = s3test.upload_id(rf)
    while time.monotonic() < deadline and p.poll() is None and ctx.parts(url, upload_id) < 3:
        p.send_signal(signal.SIGCONT)
        time.sleep(0.1)
        p.send_signal(signal.SIGSTOP)
    if not T.check(p.poll() is None, "the export ended before SIGKILL (rc %s): too fast to test" % p.returncode):
        return
    p.kill()
    p.communicate(timeout=30)
    had = ctx.parts(url, upload_id)
    T.check(os.path.exists(rf), "no resume file after SIGKILL")
    T.check(len(ctx.s3.multipart_uploads(BUCKET)) == 1, "SIGKILL: expected the upload to stay open")
    T.check(url not in ctx.objects(), "an object after SIGKILL")
    t0 = time.monotonic()
    r = ctx.sp(*args)
    print("resume: %d parts were up; %s (%.1f s)" % (had, r.out.strip(), time.monotonic() - t0))
    if not T.check(r.rc == 0, "resumed export: %s" % r.describe()):
        return
    T.check("resumed: %d parts" % had in r.out, "resumed export: expected %d parts reused: %r" % (had, r.out))
    T.check(not os.path.exists(rf), "the resume file is still there after the upload completed")
    ctx.no_uploads_left("resumed export")
    r = ctx.sp("import", url, "--name", "big-back")
    if T.check(r.rc == 0, "import of the resumed export: %s" % r.describe()):
        T.check(ctx.store.disk_digests("big-back") == ctx.store.disk_digests("big-snap"),
                "the resumed export imports other disks")


def main():
    ceph_rgw.require()
    exe, tmp = T.setup()
    t0 = time.monotonic()
    with ceph_rgw.Cluster(tmp) as s3:
        ctx = s3test.start(s3, exe, tmp, BUCKET)
        make_vm(ctx.store, tmp, "web", [4, 3])
        want = ctx.store.disk_digests("web")
        for fmt in ("xva", "ova"):
            round_trip(ctx, fmt, want)
        failures(ctx)
        tls(ctx)
        retries(ctx)
        interrupted(ctx)
        resumed(ctx)
    print("test_s3_archive: cluster start %.1f s, stop %.1f s, total %.1f s" % (
        s3.start_seconds, s3.stop_seconds, time.monotonic() - t0))
    T.finish("test_s3_archive")


if __name__ == "__main__":
    main()
