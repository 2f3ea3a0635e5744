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
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import ceph_rgw  # noqa: E402
import sptest as T  # noqa: E402
import storetest as ST  # noqa: E402

M = 1024 * 1024
BUCKET = "sp-archives"


def make_vm(store, tmp, name, sizes):
    disks = []
    for i, mb in enumerate(sizes):
        raw = os.path.join(tmp, "%s-%d.raw" % (name, i))
        with open(raw, "wb") as f:
            f.truncate(mb * M)
            f.seek(M // 2)
            f.write(os.urandom((mb - 1) * M))  # data and holes
        disks.append("'%s,raw,xvd%s,rw'" % (raw, "abcd"[i]))
    cfg = os.path.join(tmp, name + ".cfg")
    with open(cfg, "w") as f:
        f.write("name='%s'\nmemory=256\nvcpus=1\ndisk=[%s]\n" % (name, ",".join(disks)))
    store.ok("vm", "create", "--config", cfg, "-q")


class Ctx:
    def __init__(self, s3, store, tmp):
        self.s3, self.store, self.tmp = s3, store, tmp
        self.env = s3.aws_env()
        self.env["HOME"] = tmp  # no ~/.aws of the machine's

    def sp(self, *args, env=None, timeout=60):
        e = dict(self.env)
        e.update(env or {})
        return self.store.sp(*args, env=e, timeout=timeout)

    def no_uploads_left(self, what):
        left = self.s3.multipart_uploads(BUCKET)
        T.check(left == [], "%s: multipart uploads left: %r" % (what, left))

    def objects(self):
        return self.s3.s3cmd("ls", "--recursive", "s3://%s/" % BUCKET)


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


class FlakyProxy:
    """A TCP proxy to rgw whose first connections fail: those in `drop` are
    closed at once (curl: empty reply), those in `busy` answer 503. The
    rest are passed through byte for byte (SigV4 signs the Host header the
    client sent, which rgw gets unchanged)."""

    def __init__(self, target, drop, busy):
        self.target, self.drop, self.busy = target, set(drop), set(busy)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.endpoint = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.count = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            threading.Thread(target=self.one, args=(c, self.count), daemon=True).start()

    def one(self, c, n):
        if n in self.drop:
            c.close()
            return
        if n in self.busy:
            c.recv(65536)
            c.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            c.close()
            return
        u = socket.create_connection(self.target)
        for a, b in ((c, u), (u, c)):
            threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    @staticmethod
    def pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.sock.close()


def retries(ctx):
    """A dropped connection and a 503 are retried: the export through a
    flaky proxy completes and imports byte-identical."""
    host, port = ctx.s3.endpoint.split("://", 1)[1].split(":")
    proxy = FlakyProxy((host, int(port)), drop=[1, 4], busy=[2, 5])
    url = "s3://%s/vms/retried.xva" % BUCKET
    r = ctx.sp("export", "web", "-o", url, "--part-size", "5M", "--jobs", "2", "--endpoint", proxy.endpoint)
    proxy.close()
    if T.check(r.rc == 0, "export through a flaky proxy: %s" % r.describe()):
        T.check(proxy.count > 5, "the proxy saw only %d connections" % proxy.count)
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
    e = dict(os.environ, **ctx.env)
    e.pop("SNAPPORT_STORE", None)
    p = subprocess.Popen([ctx.store.exe, "--store", ctx.store.dir, "export", "big", "-o", url, "--part-size",
                          "5M", "--jobs", "1"], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # once the upload has begun (an open multipart upload)
    if not T.signal_when_ready(p, lambda: ctx.s3.multipart_uploads(BUCKET), signal.SIGINT, "the export", settle=0.3):
        return
    out, err = p.communicate(timeout=60)
    print("interrupted: exit %s, %r" % (p.returncode, err.decode("utf-8", "replace").strip()))
    T.check(p.returncode == 130, "export after SIGINT: exit %s, stderr %r" % (p.returncode, err))
    T.check(url not in ctx.objects(), "an object after an interrupted export")
    ctx.no_uploads_left("interrupted export")


def listmp_parts(ctx, url, upload_id):
    """How many parts the server has of the upload."""
    out = ctx.s3.s3cmd("listmp", url, upload_id, check=False)
    # "LastModified PartNumber ETag Size", then one line per part
    return len([l for l in out.splitlines()[1:] if len(l.split("\t")) >= 4])


def resumed(ctx):
    """--resume-file: an export SIGKILLed mid-upload leaves the upload and
    the file; the same command again sends only the missing parts and the
    archive imports byte-identical."""
    ctx.store.ok("snapshot", "create", "big", "--name", "big-snap", "-q")
    url = "s3://%s/vms/big-resume.xva" % BUCKET
    rf = os.path.join(ctx.tmp, "big.resume")
    args = [ctx.store.exe, "--store", ctx.store.dir, "export", "big", "--snapshot", "big-snap", "-o", url,
            "--part-size", "5M", "--jobs", "1", "--resume-file", rf]
    e = dict(os.environ, **ctx.env)
    e.pop("SNAPPORT_STORE", None)
    p = subprocess.Popen(args, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # the resume file appears when the upload is created; then let it run in
    # short steps (stopped while s3cmd looks) until a few parts are up
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and p.poll() is None and not os.path.exists(rf):
        time.sleep(0.005)
    p.send_signal(signal.SIGSTOP)
    with open(rf) as f:
        upload_id = [l.split(" ", 1)[1].strip() for l in f if l.startswith("upload-id ")][0]
    while time.monotonic() < deadline and p.poll() is None and listmp_parts(ctx, url, upload_id) < 3:
        p.send_signal(signal.SIGCONT)
        time.sleep(0.1)
        p.send_signal(signal.SIGSTOP)
    if not T.check(p.poll() is None, "the export ended before SIGKILL (rc %s): too fast to test" % p.returncode):
        return
    p.kill()
    p.communicate(timeout=30)
    had = listmp_parts(ctx, url, upload_id)
    T.check(os.path.exists(rf), "no resume file after SIGKILL")
    T.check(len(ctx.s3.multipart_uploads(BUCKET)) == 1, "SIGKILL: expected the upload to stay open")
    T.check(url not in ctx.objects(), "an object after SIGKILL")
    t0 = time.monotonic()
    r = ctx.sp(*args[3:])
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
        s3.s3cmd("mb", "s3://" + BUCKET)
        store = ST.Store(exe, os.path.join(tmp, "store"), os.path.join(tmp, "scratch"))
        make_vm(store, tmp, "web", [4, 3])
        want = store.disk_digests("web")
        ctx = Ctx(s3, store, tmp)
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
