"""sptest: small helpers shared by the e2e and interop Python tests.

Environment (set by tests/CMakeLists.txt): SNAPPORT (binary), SP_TESTS (tests
folder), SP_TMP (scratch folder; recreated empty by setup()).
"""

import json
import os
import shutil
import subprocess
import sys
import time

TIMEOUT = 20  # seconds per snapport call
FAILURES = []


def setup(need_binary=True):
    """Return (snapport, tmpdir) after recreating SP_TMP empty."""
    exe = os.environ.get("SNAPPORT", "")
    tmp = os.environ.get("SP_TMP")
    if not tmp or (need_binary and not exe):
        fatal("SNAPPORT and SP_TMP must be set (run through ctest)")
    if need_binary and not os.path.exists(exe):
        fatal("SNAPPORT binary %s does not exist" % exe)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    return (os.path.abspath(exe) if exe else None), os.path.abspath(tmp)


def fatal(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    """Record a failure but continue with the other cases."""
    if not cond:
        FAILURES.append(msg)
        print("FAIL: " + msg, file=sys.stderr)
    return cond


def finish(name):
    if FAILURES:
        print("%s: %d failure(s)" % (name, len(FAILURES)), file=sys.stderr)
        for f in FAILURES:
            print("  - " + f, file=sys.stderr)
        sys.exit(1)
    print("%s: all cases passed" % name)
    sys.exit(0)


class Result:
    def __init__(self, args, rc, out, err, timed_out=False):
        self.args, self.rc, self.out, self.err, self.timed_out = args, rc, out, err, timed_out

    def describe(self):
        return "`%s` -> rc=%s stdout=%r stderr=%r" % (
            " ".join(self.args), "TIMEOUT" if self.timed_out else self.rc,
            self.out[-400:], self.err[-400:])

    def crashed(self):
        return self.timed_out or self.rc < 0 or self.rc >= 128


def run(args, timeout=TIMEOUT, cwd=None):
    """Run a command, capture text output; never raises on failure/timeout."""
    try:
        p = subprocess.run(args, capture_output=True, timeout=timeout, cwd=cwd)
        return Result(args, p.returncode, p.stdout.decode("utf-8", "replace"),
                      p.stderr.decode("utf-8", "replace"))
    except OSError as e:
        return Result(args, 127, "", "cannot run: %s" % e)
    except subprocess.TimeoutExpired as e:
        return Result(args, -1, (e.stdout or b"").decode("utf-8", "replace"),
                      (e.stderr or b"").decode("utf-8", "replace"), timed_out=True)


def sp(exe, *args, **kw):
    return run([exe] + [str(a) for a in args], **kw)


def sp_ok(exe, *args, **kw):
    """Run snapport and abort the test if it does not exit 0."""
    r = sp(exe, *args, **kw)
    if r.rc != 0:
        fatal("snapport failed: " + r.describe())
    return r


def info_json(exe, path, fatal_errors=True):
    """disk info --json as a dict; on failure abort, or record it and return {}."""
    r = sp(exe, "--json", "disk", "info", path)
    try:
        if r.rc != 0:
            raise ValueError("exit %d" % r.rc)
        return json.loads(r.out)
    except ValueError as e:
        msg = "disk info --json failed (%s): %s" % (e, r.describe())
        if fatal_errors:
            fatal(msg)
        check(False, msg)
        return {}


def expect_ok(r, what):
    """check() that a finished command exited 0."""
    return check(r.rc == 0, "%s: %s" % (what, r.describe()))


def named_twice(line):
    """The first thing an error line names twice as a "X: " part (the file,
    the member: "a.ova: d.vmdk: a.ova: d.vmdk: cut"), else None."""
    msg = line[len("snapport: "):] if line.startswith("snapport: ") else line
    seen = set()
    for part in msg.split(": ")[:-1]:
        if part in seen:
            return part
        seen.add(part)
    return None


def named_once(line, what):
    """check() that an error line names each thing once."""
    twice = named_twice(line)
    return check(twice is None, "%s: the message names %r twice: %r" % (what, twice, line))


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def billion_laughs_prolog(root):
    """An XML declaration and DOCTYPE whose &lol9; expands to 10^9 "lol"s:
    a parser that expands entities runs out of memory."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<!DOCTYPE %s [" % root, ' <!ENTITY lol "lol">']
    for i in range(1, 10):
        lines.append(' <!ENTITY lol%d "%s">' % (i, ("&lol%s;" % (i - 1 if i > 1 else "")) * 10))
    return "\n".join(lines) + "\n]>\n"


def xxe_prolog(root, path):
    """A DOCTYPE whose &xxe; is the file at path: a parser that fetches
    external entities reads outside the archive."""
    return '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE %s [ <!ENTITY xxe SYSTEM "file://%s"> ]>\n' % (root, path)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def first_diff(a, b):
    """Offset of the first differing byte (or of the shorter end), None if equal."""
    if a == b:
        return None
    n = min(len(a), len(b))
    # compare in chunks for speed
    step = 65536
    for o in range(0, n, step):
        if a[o:o + step] != b[o:o + step]:
            for i in range(o, min(o + step, n)):
                if a[i] != b[i]:
                    return i
    return n


def same_bytes(actual, expected, what):
    """check() that two byte strings are equal, with a precise message."""
    d = first_diff(actual, expected)
    if d is None:
        return True
    if len(actual) != len(expected) and d == min(len(actual), len(expected)):
        return check(False, "%s: size %d, expected %d" % (what, len(actual), len(expected)))
    return check(False, "%s: first difference at byte %d (sector %d): got %s expected %s" % (
        what, d, d // 512, actual[d:d + 8].hex(), expected[d:d + 8].hex()))


def rand_bytes(rng, n):
    return bytes(rng.getrandbits(8) for _ in range(n)) if n < 4096 else rng.randbytes(n)


def signal_when_ready(p, ready, sig, what, timeout=30, settle=0.2):
    """Sends sig to the running process p once ready() holds (or after
    timeout) and settle seconds more; False (a failed check) when p had
    ended before, too fast to be caught."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and p.poll() is None and not ready():
        time.sleep(0.02)
    time.sleep(settle)
    if not check(p.poll() is None, "%s ended before the signal (rc %s): too fast to test" % (what, p.returncode)):
        return False
    p.send_signal(sig)
    return True


def need_tool(name):
    """A peer tool that must exist: fail (not skip) if missing."""
    p = shutil.which(name)
    if not p:
        fatal("required peer tool %r not found in PATH (install qemu-utils / libvhdi-utils)" % name)
    return p


def qemu_to_raw(vhd, out, fmt="vpc"):
    need_tool("qemu-img")
    r = run(["qemu-img", "convert", "-f", fmt, "-O", "raw", vhd, out], timeout=60)
    if r.rc != 0:
        check(False, "qemu-img convert of %s failed: %s" % (vhd, r.describe()))
        return None
    return read_file(out)


PYVHDI_READER = r"""
import sys, pyvhdi
paths = sys.argv[2:]            # leaf first, base last
files = []
for p in paths:
    f = pyvhdi.file()
    f.open(p)
    files.append(f)
for child, parent in zip(files, files[1:]):
    child.set_parent(parent)
leaf = files[0]
size = leaf.get_media_size()
out = open(sys.argv[1], 'wb')
off = 0
# sector by sector: libvhdi 20210425 mis-reads multi-sector reads that cross
# bitmap runs (zeros instead of data); single-sector reads are right
while off < size:
    n = min(512, size - off)
    out.write(leaf.read_buffer_at_offset(n, off))
    off += n
out.close()
"""


def pyvhdi_python():
    """An interpreter that can import pyvhdi (python3-libvhdi is built for the system python)."""
    cands = [sys.executable, "/usr/bin/python3", shutil.which("python3") or ""]
    for c in cands:
        if c and os.path.exists(c):
            r = run([c, "-c", "import pyvhdi"])
            if r.rc == 0:
                return c
    fatal("no python3 with pyvhdi (package python3-libvhdi) found; tried %s" % cands)


def pyvhdi_read(out, *paths):
    """Read a chain (leaf first) with pyvhdi into file out and return the bytes."""
    r = run([pyvhdi_python(), "-c", PYVHDI_READER, out] + list(paths), timeout=60)
    if r.rc != 0:
        check(False, "pyvhdi could not read %s: %s" % (paths, r.describe()))
        return None
    return read_file(out)


def json_schema_check(doc, what):
    """Checks doc (a --json document) against docs/json-schema.json; in CI
    python3-jsonschema must be there, elsewhere its absence skips this."""
    try:
        import jsonschema
    except ImportError:
        if os.environ.get("CI") == "true":
            fatal("CI: python3-jsonschema is not installed")
        return True
    if not hasattr(json_schema_check, "validator"):
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "json-schema.json")
        with open(path) as f:
            json_schema_check.validator = jsonschema.Draft202012Validator(json.load(f))
    errs = [e.message for e in json_schema_check.validator.iter_errors(doc)]
    return check(not errs, "%s: not as docs/json-schema.json says: %s" % (what, "; ".join(errs[:3])))
