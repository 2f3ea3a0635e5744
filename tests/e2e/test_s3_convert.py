"""test_s3_convert: convert between files, stdin/stdout and s3:// (issue 13)
against a real radosgw (tests/tools/ceph_rgw.py, one cluster for the file).

- Round trip: an XVA file -> s3 OVA (--part-size 5M --jobs 2) -> s3 XVA
  (S3 to S3, --json) -> an OVA file; imported, each disk's flattened
  content has the sha256 of the raw bytes this test wrote. The OVA's
  spooled disks go to $TMPDIR, nothing lands in the working folder (no
  spool dir named after the URL), and $TMPDIR is empty again afterwards.
- stdin and stdout: `convert - s3://...` from a pipe, `convert s3://... -`
  into a pipe; the result imports with the same digests.
- --json: every document validates against docs/json-schema.json; an
  upload to S3 (convert and export) says "resumed_parts": 0.
- --resume-file: a convert to S3 SIGKILLed mid-upload is resumed by the
  same command; its resumed_parts is the number of parts the server had
  whose MD5 (ETag) matches the final object's bytes at that place, counted
  here from the server's part list and the downloaded object.
- Failures, each one line naming the URL, exit 3 (2 for usage), with no
  object, no multipart upload and no local output left: a missing object,
  a wrong secret (never printed), an existing OUT object without --force
  (unchanged; --force replaces it), a disk image (VHD) in S3 (refused: a
  disk image is read by seeking), a truncated S3 input, an OVA cut at 3/4
  converted to S3 (it fails about 12 MiB into a 5 MiB-part upload),
  --part-size with a file OUT.
Skips (77) outside CI when the Ceph packages are missing.
"""

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import ceph_rgw  # noqa: E402
import sptest as T  # noqa: E402
import storetest as ST  # noqa: E402

M = 1024 * 1024
PART = 5 * M
BUCKET = "sp-convert"
SECRET_WRONG = "Zq7NotTheSecretAtAll"

try:
    import jsonschema
except ImportError:
    jsonschema = None


def b3(path):
    return "s3://%s/%s" % (BUCKET, path)


class Ctx:
    def __init__(self, exe, s3, store, tmp):
        self.exe, self.s3, self.store, self.tmp = exe, s3, store, tmp
        self.env = s3.aws_env()
        self.env["HOME"] = tmp  # no ~/.aws of the machine's
        self.spool = os.path.join(tmp, "spool")   # $TMPDIR of every run
        self.work = os.path.join(tmp, "work")     # the working folder of every run
        os.makedirs(self.spool)
        os.makedirs(self.work)
        self.env["TMPDIR"] = self.spool
        schema = json.load(open(os.path.join(os.environ["SP_TESTS"], "..", "docs", "json-schema.json")))
        self.validator = jsonschema.Draft202012Validator(schema) if jsonschema else None

    def sp(self, *args, env=None, timeout=60):
        e = dict(self.env)
        e.update(env or {})
        return ST.run_env([self.exe] + [str(a) for a in args], env=e, timeout=timeout, cwd=self.work)

    def json(self, *args, env=None):
        """A --json run's document, checked against the schema; None when not one."""
        r = self.sp("--json", *args, env=env)
        try:
            j = json.loads(r.out)
        except ValueError:
            T.check(False, "--json %s: stdout is not JSON: %s" % (" ".join(map(str, args)), r.describe()))
            return r, None
        if self.validator:
            for e in list(self.validator.iter_errors(j))[:3]:
                T.check(False, "--json %s: schema: %s" % (" ".join(map(str, args)), e.message))
        return r, j

    def objects(self):
        """{url: ETag} of every object in the bucket."""
        out = self.s3.s3cmd("ls", "--recursive", "--list-md5", "s3://%s/" % BUCKET)
        return {l.split()[-1]: l.split()[-2] for l in out.splitlines() if l.strip()}

    def nothing_left(self, what, urls=(), local=(), s3=True):
        """No local output, nothing in the working folder or $TMPDIR; with
        s3, no multipart upload and no object at any of urls."""
        for p in local:
            T.check(not os.path.exists(p), "%s: %s left behind" % (what, p))
        for d in (self.work, self.spool):
            T.check(os.listdir(d) == [], "%s: left in %s: %r" % (what, d, os.listdir(d)))
        if not s3:
            return
        left = self.s3.multipart_uploads(BUCKET)
        T.check(left == [], "%s: multipart uploads left: %r" % (what, left))
        there = self.objects()
        for url in urls:
            T.check(url not in there, "%s: an object %s after the failure" % (what, url))

    def digests(self, archive, name):
        """Import archive as name; the flattened disks' sha256 by vdev."""
        r = self.store.sp("import", archive, "--name", name, "-q", env=self.env)
        if not T.check(r.rc == 0, "import %s: %s" % (archive, r.describe())):
            return None
        return self.store.disk_digests(name)


def make_source(ctx, sizes):
    """A VM of raw disks (random data with a hole at the start) exported as
    an XVA file; returns the XVA and {vdev: sha256 of the raw bytes}."""
    want, disks = {}, []
    for i, mb in enumerate(sizes):
        raw = os.path.join(ctx.tmp, "web-%d.raw" % i)
        data = bytes(M // 2) + os.urandom(mb * M - M // 2)
        with open(raw, "wb") as f:
            f.write(data)
        vdev = "xvd" + "abcd"[i]
        want[vdev] = ST.sha(data)
        disks.append("'%s,raw,%s,rw'" % (raw, vdev))
    cfg = os.path.join(ctx.tmp, "web.cfg")
    with open(cfg, "w") as f:
        f.write("name='web'\nmemory=256\nvcpus=1\ndisk=[%s]\n" % ",".join(disks))
    ctx.store.ok("vm", "create", "--config", cfg, "-q")
    xva = os.path.join(ctx.tmp, "web.xva")
    ctx.store.ok("export", "web", "-o", xva, "-q")
    ctx.ova = os.path.join(ctx.tmp, "web.ova")
    r = ctx.sp("convert", xva, ctx.ova, "-q")
    if r.rc != 0:
        T.fatal("convert web.xva web.ova: %s" % r.describe())
    return xva, want


def round_trip(ctx, xva, want):
    ova_url, xva_url = b3("rt/web.ova"), b3("rt/web.xva")
    t0 = time.monotonic()
    r, j = ctx.json("convert", xva, ova_url, "--part-size", "5M", "--jobs", "2")
    if not T.check(r.rc == 0 and j, "convert file -> s3 ova: %s" % r.describe()):
        return
    T.check(j["output"] == ova_url and j["format"] == "ova" and j["resumed_parts"] == 0,
            "convert -> s3: JSON %r" % j)
    ctx.nothing_left("convert file -> s3 ova", s3=False)  # the spool is gone, no s3: folder here
    r, j = ctx.json("convert", ova_url, xva_url, "--part-size", "5M", "--jobs", "3")
    if not T.check(r.rc == 0 and j, "convert s3 ova -> s3 xva: %s" % r.describe()):
        return
    T.check(j["input"] == ova_url and j["resumed_parts"] == 0, "convert s3 -> s3: JSON %r" % j)
    back = os.path.join(ctx.tmp, "back.ova")
    r = ctx.sp("convert", xva_url, back)
    if not T.check(r.rc == 0, "convert s3 xva -> file: %s" % r.describe()):
        return
    T.check(r.out.strip() == "%s: converted to %s" % (xva_url, back), "convert s3 -> file said %r" % r.out)
    print("round trip: %.1f s" % (time.monotonic() - t0))
    got = ctx.digests(back, "rt")
    T.check(got == want, "file -> s3 ova -> s3 xva -> file: disks differ: %r != %r" % (got, want))
    os.unlink(back)
    ctx.nothing_left("round trip", s3=False)


def pipes(ctx, xva, want):
    url = b3("pipe/web.ova")
    with open(xva, "rb") as f:
        p = subprocess.run([ctx.exe, "convert", "-", url], stdin=f, capture_output=True, cwd=ctx.work,
                           env=dict(os.environ, **ctx.env), timeout=60)
    T.check(p.returncode == 0, "convert - s3://: exit %d %r" % (p.returncode, p.stderr))
    out = os.path.join(ctx.tmp, "piped.xva")
    with open(out, "wb") as f:
        p = subprocess.run([ctx.exe, "convert", url, "-", "--format", "xva"], stdout=f, stderr=subprocess.PIPE,
                           cwd=ctx.work, env=dict(os.environ, **ctx.env), timeout=60)
    if T.check(p.returncode == 0, "convert s3:// -: exit %d %r" % (p.returncode, p.stderr)):
        got = ctx.digests(out, "piped")
        T.check(got == want, "stdin -> s3 -> stdout: disks differ: %r != %r" % (got, want))
    os.unlink(out)
    ctx.nothing_left("pipes")


def export_json(ctx, _xva=None, _want=None):
    """export's JSON to S3 has resumed_parts too (cli_s3.c, shared)."""
    url = b3("exp/web.xva")
    r, j = ctx.json("--store", ctx.store.dir, "export", "web", "-o", url)
    T.check(r.rc == 0 and j and j.get("resumed_parts") == 0, "export --json to s3: %s" % r.describe())
    r, j = ctx.json("--store", ctx.store.dir, "export", "web", "-o", os.path.join(ctx.tmp, "exp.xva"))
    T.check(r.rc == 0 and j and "resumed_parts" not in j, "export --json to a file: %s" % r.describe())
    os.unlink(os.path.join(ctx.tmp, "exp.xva"))


def list_parts(ctx, url, upload_id):
    """The parts the server has of the upload, [(number, etag, size)], by a
    ListParts request signed here (SigV4, stdlib only): s3cmd takes a third
    of a second to start, too slow to watch an upload part by part."""
    s3 = ctx.s3
    path = "/" + url[len("s3://"):]
    query = "uploadId=" + urllib.parse.quote(upload_id, safe="-_.~")
    host = s3.endpoint.split("://", 1)[1]
    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    empty = hashlib.sha256(b"").hexdigest()
    headers = {"host": host, "x-amz-content-sha256": empty, "x-amz-date": now}
    names = ";".join(sorted(headers))
    canonical = "\n".join(["GET", urllib.parse.quote(path, safe="/-_.~"), query,
                           "".join("%s:%s\n" % (k, headers[k]) for k in sorted(headers)), names, empty])
    scope = "%s/%s/s3/aws4_request" % (now[:8], s3.region)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", now, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + s3.secret_key).encode()
    for part in (now[:8], s3.region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    req = urllib.request.Request(s3.endpoint + path + "?" + query, headers={
        "x-amz-content-sha256": empty, "x-amz-date": now,
        "Authorization": "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
            s3.access_key, scope, names, sig)})
    with urllib.request.urlopen(req, timeout=10) as resp:
        root = ET.fromstring(resp.read())
    parts = []
    for el in root.iter():
        if el.tag.endswith("}Part") or el.tag == "Part":
            f = {c.tag.split("}")[-1]: c.text for c in el}
            parts.append((int(f["PartNumber"]), f["ETag"].strip('"'), int(f["Size"])))
    return parts


def resumed(ctx, _xva, want):
    """OVA -> XVA: the XVA streams out as the OVA is read (an OVA output
    would wait for its spool); its ova.xml has new UUIDs each run, so the
    first part is sent again and the later ones are not."""
    url = b3("res/web.xva")
    rf = os.path.join(ctx.tmp, "conv.resume")
    args = ["convert", ctx.ova, url, "--part-size", "5M", "--jobs", "1", "--resume-file", rf]
    p = subprocess.Popen([ctx.exe] + args, env=dict(os.environ, **ctx.env), cwd=ctx.work,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started = time.monotonic()
    deadline = started + 30
    while time.monotonic() < deadline and p.poll() is None and not os.path.exists(rf):
        time.sleep(0.005)
    p.send_signal(signal.SIGSTOP)
    upload_id = None
    if os.path.exists(rf):
        with open(rf) as f:
            upload_id = [l.split(" ", 1)[1].strip() for l in f if l.startswith("upload-id ")][0]
    # let it run in short steps (stopped while s3cmd looks) until 2 parts are up
    while upload_id and time.monotonic() < deadline and p.poll() is None and len(list_parts(ctx, url, upload_id)) < 2:
        p.send_signal(signal.SIGCONT)
        time.sleep(0.01)
        p.send_signal(signal.SIGSTOP)
    if not T.check(p.poll() is None and upload_id, "convert ended before SIGKILL (rc %s): too fast" % p.returncode):
        p.kill()
        p.communicate()
        return
    p.kill()
    p.communicate(timeout=30)
    print("resume: killed after %.1f s" % (time.monotonic() - started))
    had = list_parts(ctx, url, upload_id)
    T.check(url not in ctx.objects(), "an object after SIGKILL")
    t1 = time.monotonic()
    r, j = ctx.json(*args)
    print("resume: the second run %.1f s" % (time.monotonic() - t1))
    if not T.check(r.rc == 0 and j, "resumed convert: %s" % r.describe()):
        return
    # which of the parts the server had are the final object's bytes there
    final = os.path.join(ctx.tmp, "res.xva")
    ctx.s3.s3cmd("get", "--force", url, final)
    data = T.read_file(final)
    same = [n for n, etag, size in had
            if size == len(data[(n - 1) * PART:(n - 1) * PART + size])
            and hashlib.md5(data[(n - 1) * PART:(n - 1) * PART + size]).hexdigest() == etag]
    print("resume: server had parts %s, %d of them the final bytes; resumed_parts %s" % (
        [n for n, _, _ in had], len(same), j.get("resumed_parts")))
    T.check(len(same) >= 1, "resume: no part the server had is in the final object: nothing was tested")
    T.check(j.get("resumed_parts") == len(same), "resumed_parts %r, expected %d" % (j.get("resumed_parts"), len(same)))
    T.check(not os.path.exists(rf), "the resume file is still there after the upload completed")
    got = ctx.digests(final, "resumed")
    T.check(got == want, "the resumed convert imports other disks: %r != %r" % (got, want))
    os.unlink(final)
    ctx.nothing_left("resumed convert")


def failures(ctx, xva, _want=None):
    out = os.path.join(ctx.work, "out.ova")
    missing = b3("none/web.xva")
    r = ctx.sp("convert", missing, out)
    ST.expect_failure(r, "convert of a missing object", 3, [missing], ["no such object"])
    r = ctx.sp("convert", missing, b3("f/missing.ova"))
    ST.expect_failure(r, "convert of a missing object to s3", 3, [missing], ["no such object"])
    ctx.nothing_left("missing object", local=[out], s3=False)

    url = b3("f/cred.ova")
    r = ctx.sp("convert", xva, url, env={"AWS_SECRET_ACCESS_KEY": SECRET_WRONG})
    ST.expect_failure(r, "convert to s3 with a wrong secret", 3, [url], ["signature"])
    T.check(SECRET_WRONG not in r.err + r.out, "a secret in the output: %r" % r.err)
    src = b3("rt/web.ova")
    r = ctx.sp("convert", src, out, env={"AWS_SECRET_ACCESS_KEY": SECRET_WRONG})
    ST.expect_failure(r, "convert from s3 with a wrong secret", 3, [src], ["signature"])
    ctx.nothing_left("wrong secret", local=[out], s3=False)

    before = ctx.objects()
    r = ctx.sp("convert", b3("rt/web.xva"), src)
    ST.expect_failure(r, "convert over an existing object", 3, [src], ["exists"])
    r = ctx.sp("convert", xva, out, "--part-size", "5M")
    T.check(r.rc == 2 and "s3://" in r.err, "--part-size with a file OUT: %s" % r.describe())
    ctx.nothing_left("refusals", [b3("f/missing.ova"), url], [out])
    T.check(ctx.objects() == before, "a refused convert changed the objects: %r -> %r" % (before, ctx.objects()))
    r = ctx.sp("convert", b3("rt/web.xva"), src, "--force")
    T.check(r.rc == 0, "convert --force over an existing object: %s" % r.describe())


def disk_image(ctx, _xva=None, _want=None):
    """A VHD in S3: refused, one line naming the URL and why."""
    raw = os.path.join(ctx.tmp, "disk.raw")
    with open(raw, "wb") as f:
        f.write(os.urandom(2 * M))
    vhd = os.path.join(ctx.tmp, "disk.vhd")
    r = ctx.sp("disk", "flatten", raw, "-o", vhd)
    T.check(r.rc == 0, "disk flatten -o disk.vhd: %s" % r.describe())
    url = b3("img/disk.vhd")
    ctx.s3.s3cmd("put", vhd, url)
    out = os.path.join(ctx.work, "disk.xva")
    for dst in (out, b3("img/disk.xva")):
        r = ctx.sp("convert", url, dst)
        ST.expect_failure(r, "convert of a VHD in S3 to %s" % dst, 3, [url], ["disk image", "file only"])
    ctx.nothing_left("a disk image in S3", [b3("img/disk.xva")], [out])
    # the same file converts (the path the refusal points to)
    r = ctx.sp("convert", vhd, out)
    T.check(r.rc == 0, "convert of the same VHD as a file: %s" % r.describe())
    if os.path.exists(out):
        os.unlink(out)


def damaged(ctx, xva, _want=None):
    """Input that fails after parts went up, and an S3 input cut short:
    the upload is aborted, nothing is left."""
    data = T.read_file(ctx.ova)
    cut = os.path.join(ctx.tmp, "cut.ova")
    with open(cut, "wb") as f:
        f.write(data[:len(data) * 3 // 4])
    url = b3("f/cut.xva")
    r = ctx.sp("convert", cut, url, "--part-size", "5M")
    ST.expect_failure(r, "convert of a cut OVA to s3", 3, [cut], [])
    ctx.nothing_left("a cut OVA to s3", [url], s3=False)
    cut_url = b3("f/cut.ova")
    ctx.s3.s3cmd("put", cut, cut_url)
    out = os.path.join(ctx.work, "cut.xva")
    r = ctx.sp("convert", cut_url, out)
    ST.expect_failure(r, "convert of a cut OVA from s3", 3, [cut_url], [])
    ctx.nothing_left("a cut OVA from s3", [url], [out])


def main():
    ceph_rgw.require()
    exe, tmp = T.setup()
    if jsonschema is None and os.environ.get("CI") == "true":
        T.fatal("CI: python3-jsonschema is not installed")
    t0 = time.monotonic()
    with ceph_rgw.Cluster(tmp) as s3:
        t_cluster = time.monotonic() - t0
        s3.s3cmd("mb", "s3://" + BUCKET)
        store = ST.Store(exe, os.path.join(tmp, "store"), os.path.join(tmp, "scratch"))
        ctx = Ctx(exe, s3, store, tmp)
        xva, want = make_source(ctx, [14, 3])
        for case in (round_trip, pipes, export_json, failures, disk_image, damaged, resumed):
            t1 = time.monotonic()
            case(ctx, xva, want)
            print("%s: %.1f s" % (case.__name__, time.monotonic() - t1))
    print("test_s3_convert: cluster start %.1f s, stop %.1f s, total %.1f s" % (
        t_cluster, s3.stop_seconds, time.monotonic() - t0))
    T.finish("test_s3_convert")


if __name__ == "__main__":
    main()
