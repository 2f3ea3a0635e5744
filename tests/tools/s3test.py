"""s3test: what the S3 end-to-end tests (tests/e2e/test_s3_*.py) share: a
VM with random disks, a context that runs snapport with the cluster's keys,
and what the server holds (objects, open multipart uploads, their parts)."""

import os
import subprocess

import sptest as T
import storetest as ST

M = 1024 * 1024


def make_vm(store, tmp, name, sizes):
    """A VM of disks of sizes MiB: a hole, then random bytes."""
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


def start(s3, exe, tmp, bucket):
    """The context of a test: the bucket made in the cluster s3, an empty
    store under tmp."""
    s3.s3cmd("mb", "s3://" + bucket)
    store = ST.Store(exe, os.path.join(tmp, "store"), os.path.join(tmp, "scratch"))
    return Ctx(s3, store, tmp, bucket)


class Ctx:
    def __init__(self, s3, store, tmp, bucket):
        self.s3, self.store, self.tmp, self.bucket = s3, store, tmp, bucket
        self.env = s3.aws_env()
        self.env["HOME"] = tmp  # no ~/.aws of the machine's

    def sp(self, *args, env=None, timeout=60):
        e = dict(self.env)
        e.update(env or {})
        return self.store.sp(*args, env=e, timeout=timeout)

    def popen(self, *args, env=None):
        """snapport running in the background (stdout and stderr piped)."""
        e = dict(os.environ, **self.env)
        e.update(env or {})
        e.pop("SNAPPORT_STORE", None)
        return subprocess.Popen([self.store.exe, "--store", self.store.dir] + list(args), env=e,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def no_uploads_left(self, what):
        left = self.s3.multipart_uploads(self.bucket)
        T.check(left == [], "%s: multipart uploads left: %r" % (what, left))

    def objects(self):
        return self.s3.s3cmd("ls", "--recursive", "s3://%s/" % self.bucket)

    def parts(self, url, upload_id):
        """How many parts the server has of the upload."""
        out = self.s3.s3cmd("listmp", url, upload_id, check=False)
        # "LastModified PartNumber ETag Size", then one line per part
        return len([l for l in out.splitlines()[1:] if len(l.split("\t")) >= 4])

    def imports_as(self, url, name, want, what):
        """import url as name gives disks of digests want."""
        r = self.sp("import", url, "--name", name)
        if T.check(r.rc == 0, "%s: import: %s" % (what, r.describe())):
            T.check(self.store.disk_digests(name) == want, "%s: the import has other disks" % what)


def upload_id(resume_file):
    with open(resume_file) as f:
        return [l.split(" ", 1)[1].strip() for l in f if l.startswith("upload-id ")][0]
