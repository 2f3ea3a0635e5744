"""make_s3_seeds: the seed corpus of the s3_xml fuzz target
(tests/fuzz/corpus/s3_xml/), real answers of a radosgw: InitiateMultipartUpload,
ListParts (a whole listing and a truncated page), ListMultipartUploads (a
whole listing and a truncated page with its markers), CompleteMultipartUpload
and error bodies (NoSuchBucket, NoSuchUpload, SignatureDoesNotMatch,
XAmzContentSHA256Mismatch). The truncated pages are also the canned pages of
tests/unit/test_s3.c's pagination cases.

Run by hand when the client asks rgw something new (needs the Ceph packages
and curl): python3 tests/fuzz/make_s3_seeds.py [OUTDIR]
With AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY set it uses
that server, else it starts a cluster (tests/tools/ceph_rgw.py).
"""

import hashlib
import os
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tools"))
import ceph_rgw  # noqa: E402

BUCKET = "seeds"
PART = 5 * 1024 * 1024


class Rgw:
    def __init__(self, endpoint, key, secret, region):
        self.endpoint, self.key, self.secret, self.region = endpoint, key, secret, region

    def curl(self, method, path, body=b"", secret=None):
        """One signed request (curl --aws-sigv4 plus the payload hash it
        leaves out); the answer's body."""
        with tempfile.NamedTemporaryFile() as f:
            f.write(body)
            f.flush()
            args = ["curl", "-s", "-X", method, "--aws-sigv4", "aws:amz:%s:s3" % self.region,
                    "--user", "%s:%s" % (self.key, secret or self.secret),
                    "-H", "x-amz-content-sha256: " + hashlib.sha256(body).hexdigest(),
                    "-H", "Content-Type: application/octet-stream"]
            if body:
                args += ["--data-binary", "@" + f.name]
            return subprocess.run(args + [self.endpoint + path], capture_output=True, check=True).stdout

    def upload_id(self, key):
        xml = self.curl("POST", "/%s/%s?uploads=" % (BUCKET, key)).decode()
        return xml, xml.split("<UploadId>")[1].split("</UploadId>")[0]


def seeds(s3, out):
    def save(name, data):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)

    s3.curl("PUT", "/" + BUCKET)
    xml, uid = s3.upload_id("a%26b%3Cc%3E.xva")  # as3.upload_id("a&b<c>.xva")  # a key XML must escapeb<c>.xva: a key XML must escape
    save("initiate.xml", xml.encode())
    _, uid2 = s3.upload_id("z.xva")
    part = os.urandom(PART)
    for n in (1, 2, 3):
        s3.curl("PUT", "/%s/a%%26b%%3Cc%%3E.xva?partNumber=%d&uploadId=%s" % (BUCKET, n, uid), part if n < 3 else b"x")
    save("list-parts.xml", s3.curl("GET", "/%s/a%%26b%%3Cc%%3E.xva?uploadId=%s" % (BUCKET, uid)))
    save("list-parts-truncated.xml", s3.curl("GET", "/%s/a%%26b%%3Cc%%3E.xva?max-parts=2&uploadId=%s" % (BUCKET, uid)))
    save("list-uploads.xml", s3.curl("GET", "/%s?uploads=" % BUCKET))
    save("list-uploads-truncated.xml", s3.curl("GET", "/%s?max-uploads=1&uploads=" % BUCKET))
    # a body that is not what its hash says
    save("error-sha256.xml", subprocess.run(
        ["curl", "-s", "-X", "PUT", "--aws-sigv4", "aws:amz:%s:s3" % s3.region, "--user", "%s:%s" % (s3.key, s3.secret),
         "-H", "x-amz-content-sha256: " + hashlib.sha256(b"other").hexdigest(), "--data-binary", "body",
         s3.endpoint + "/%s/z.xva?partNumber=1&uploadId=%s" % (BUCKET, uid2)], capture_output=True, check=True).stdout)
    etags = []
    for n in (1, 2, 3):
        etags.append('"%s"' % hashlib.md5(part if n < 3 else b"x").hexdigest())
    body = "<CompleteMultipartUpload>%s</CompleteMultipartUpload>" % "".join(
        "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>" % (i + 1, e) for i, e in enumerate(etags))
    save("complete.xml", s3.curl("POST", "/%s/a%%26b%%3Cc%%3E.xva?uploadId=%s" % (BUCKET, uid), body.encode()))
    save("error-no-upload.xml", s3.curl("DELETE", "/%s/z.xva?uploadId=nosuchupload" % BUCKET))
    save("error-no-bucket.xml", s3.curl("POST", "/no-such-bucket/k?uploads="))
    save("error-signature.xml", s3.curl("GET", "/%s?uploads=" % BUCKET, secret="wrong"))
    s3.curl("DELETE", "/%s/z.xva?uploadId=%s" % (BUCKET, uid2))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "s3_xml")
    os.makedirs(out, exist_ok=True)
    e = os.environ
    if e.get("AWS_ENDPOINT_URL"):
        seeds(Rgw(e["AWS_ENDPOINT_URL"], e["AWS_ACCESS_KEY_ID"], e["AWS_SECRET_ACCESS_KEY"],
                  e.get("AWS_REGION", "us-east-1")), out)
    else:
        with ceph_rgw.Cluster() as c:
            seeds(Rgw(c.endpoint, c.access_key, c.secret_key, c.region), out)
    print("seeds in %s" % out)


if __name__ == "__main__":
    main()
