"""test_s3_harness: the S3 test harness (tests/tools/ceph_rgw.py) works.

Starts a single-node Ceph + radosgw, makes a bucket with s3cmd, puts an
object (single and multipart), gets it back byte-identical, checks no
multipart upload is left, stops the cluster and checks that every daemon is
gone and its directory removed. Prints the start and stop times. Skips
(exit 77) outside CI when the Ceph packages are missing.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import ceph_rgw  # noqa: E402
import sptest as T  # noqa: E402

M = 1024 * 1024


def put_get(s3, tmp, name, size):
    data = os.urandom(size)
    src, back = os.path.join(tmp, name), os.path.join(tmp, name + ".back")
    with open(src, "wb") as f:
        f.write(data)
    s3.s3cmd("put", "--multipart-chunk-size-mb=5", src, "s3://sp-smoke/" + name)
    s3.s3cmd("get", "s3://sp-smoke/" + name, back)
    with open(back, "rb") as f:
        T.check(f.read() == data, "%s: the object read back differs" % name)


def main():
    ceph_rgw.require()
    _, tmp = T.setup(need_binary=False)
    t0 = time.monotonic()
    with ceph_rgw.Cluster(tmp) as s3:
        T.check(s3.endpoint.startswith("http://127.0.0.1:"), "endpoint %r" % s3.endpoint)
        s3.s3cmd("mb", "s3://sp-smoke")
        put_get(s3, tmp, "small", 100 * 1024)
        put_get(s3, tmp, "multi", 11 * M)  # three parts of s3cmd's 5 MiB
        T.check(s3.multipart_uploads("sp-smoke") == [], "multipart uploads left")
        listing = s3.s3cmd("ls", "s3://sp-smoke")
        T.check("s3://sp-smoke/small" in listing and "s3://sp-smoke/multi" in listing, "ls: %r" % listing)
        procs, cdir = [p for _, p in s3.procs], s3.dir
    T.check(all(p.poll() is not None for p in procs), "a daemon is still running after stop")
    T.check(not os.path.exists(cdir), "%s is still there after stop" % cdir)
    print("test_s3_harness: start %.1f s, stop %.1f s, total %.1f s" % (
        s3.start_seconds, s3.stop_seconds, time.monotonic() - t0))
    T.finish("test_s3_harness")


if __name__ == "__main__":
    main()
