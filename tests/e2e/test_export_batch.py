"""test_export_batch: many VMs per `snapport export` run (issue 13 item 4),
to a local folder (the S3 prefix form is test_export_batch_s3.py).

- export --all -o DIR/ -j 2: one archive per VM named NAME-UUID.xva (the
  UUIDs from `vm list --json`); each imported into a second store has the
  VM's disks (disk flatten + sha256, computed here); the summary table
  names every VM; the JSON document lists every export with its size
  (the file's) and failed 0.
- --name-template '{name}-{date}.{ext}' --format ova: the names use
  today's UTC date; VM names '../x', 'a/b' and '.hidden' stay inside DIR
  ('_' for '/' and a leading '.'); the archives are OVAs.
- One VM's disk file removed and another's output there already: exit 1,
  one line naming the failed VMs, the others complete, the failed VM with
  the vanished disk has no output; the JSON says which failed and why.
- Usage errors (exit 2, nothing written): -o - with --all, --resume-file,
  --snapshot with two VMs, an S3 key that is no prefix, a template with
  '/' or an unknown field, two VMs mapped to one name, VM... with --all;
  a missing folder: exit 3. A VM named twice is exported once.
- SIGINT during a -j 2 batch of OVAs: exit 130, nothing in DIR (no
  partial or temporary file), no snapshot left, store check ok.
- The batch's parent killed outright (SIGKILL) while two children write:
  each child gets SIGTERM (its parent-death signal) and cleans up as for
  a stop: both end within 30 s, nothing in DIR or TMPDIR, the snapshots
  as before, store check ok.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import sptest as T  # noqa: E402
import storetest as ST  # noqa: E402

M = 1024 * 1024


def make_vm(store, tmp, name, mb, tag):
    raw = os.path.join(tmp, "disk-%s.raw" % tag)
    with open(raw, "wb") as f:
        f.truncate(mb * M)
        f.seek(M // 2)
        f.write(os.urandom((mb - 1) * M))  # data and holes
    cfg = os.path.join(tmp, "vm-%s.cfg" % tag)
    with open(cfg, "w") as f:
        f.write("name=%s\nmemory=128\nvcpus=1\ndisk=['%s,raw,xvda,rw']\n" % (json.dumps(name), raw))
    store.ok("vm", "create", "--config", cfg, "-q")


def safe(name):
    """A VM's name as the outputs use it: '/', control characters and a
    leading '.' as '_'."""
    s = "".join("_" if c == "/" or ord(c) < 0x20 or ord(c) == 0x7f else c for c in name)
    return "_" + s[1:] if s.startswith(".") else s


def listing(d):
    return sorted(os.listdir(d))


def snapshots_of(store):
    return {n: store.snapshots(n) for n in store.vms()}


def imported_digests(back, archive, name):
    r = back.sp("import", archive, "--name", name)
    if not T.check(r.rc == 0, "import %s: %s" % (archive, r.describe())):
        return None
    return back.disk_digests(name)


def case_all(store, back, tmp, want):
    out = os.path.join(tmp, "all")
    os.mkdir(out)
    r = store.sp("export", "--all", "-o", out + "/", "-j", "2")
    if not T.check(r.rc == 0, "export --all -j 2: %s" % r.describe()):
        return
    vms = store.vms()
    expect = sorted("%s-%s.xva" % (safe(n), u) for n, u in vms.items())
    T.check(listing(out) == expect, "export --all: files %r, expected %r" % (listing(out), expect))
    for n, u in vms.items():
        T.check(re.search(r"^%s\s.*/%s-%s\.xva.*\sok$" % (re.escape(n), re.escape(safe(n)), u), r.out, re.M),
                "summary: no ok line for %s: %r" % (n, r.out))
        got = imported_digests(back, os.path.join(out, "%s-%s.xva" % (safe(n), u)), "back-" + u[:8])
        T.check(got == want[n], "%s: the archive's disks differ from the VM's: %r != %r" % (n, got, want[n]))
    # the same again as JSON, with --force: sizes are the files'
    r = store.sp("export", "--all", "-o", out, "-j", "2", "--force", json_out=True)
    j = json.loads(r.out) if r.out.strip() else {}
    T.check(r.rc == 0 and j.get("failed") == 0 and len(j.get("exports", [])) == len(vms),
            "export --all --json: %s" % r.describe())
    for e in j.get("exports", []):
        T.check(e["ok"] and e["uuid"] == vms[e["vm"]] and e["bytes"] == os.path.getsize(e["output"]),
                "export --all --json: %r" % e)


def case_template(store, tmp):
    out = os.path.join(tmp, "tmpl")
    os.mkdir(out)
    r = store.sp("export", "../x", "a/b", ".hidden", "-o", out, "--name-template", "{name}-{date}.{ext}",
                 "--format", "ova", "-j", "3")
    T.check(r.rc == 0, "export with a template: %s" % r.describe())
    day = time.strftime("%Y%m%d", time.gmtime())
    expect = sorted(["_._x-%s.ova" % day, "a_b-%s.ova" % day, "_hidden-%s.ova" % day])
    T.check(listing(out) == expect, "template: files %r, expected %r" % (listing(out), expect))
    T.check(not os.path.exists(os.path.join(tmp, "x-%s.ova" % day)), "an output outside the folder")
    for f in listing(out):
        r = T.run([store.exe, "--json", "info", os.path.join(out, f)])
        T.check(r.rc == 0 and json.loads(r.out).get("format") == "ova", "%s is no OVA: %s" % (f, r.describe()))


def case_failures(store, tmp):
    out = os.path.join(tmp, "fail")
    os.mkdir(out)
    vms = store.vms()
    # b's disk vanishes for the run; c's output is there already
    disk = store.show("b")["disks"][0]["file"]
    os.rename(disk, disk + ".away")
    taken = os.path.join(out, "c-%s.xva" % vms["c"])
    with open(taken, "wb") as f:
        f.write(b"not mine")
    try:
        r = store.sp("export", "a", "b", "c", "-o", out + "/", "-j", "2", json_out=True)
    finally:
        os.rename(disk + ".away", disk)
    T.check(r.rc == 1, "a batch with failures: exit %s: %s" % (r.rc, r.describe()))
    ST.one_error_line(r, "a batch with failures")
    T.check("2 of 3" in r.err and "b" in r.err and "c" in r.err, "the error line: %r" % r.err)
    j = json.loads(r.out) if r.out.strip() else {}
    by = {e["vm"]: e for e in j.get("exports", [])}
    T.check(j.get("failed") == 2 and sorted(by) == ["a", "b", "c"], "JSON of a batch with failures: %r" % j)
    if sorted(by) == ["a", "b", "c"]:
        T.check(by["a"]["ok"] and by["a"]["bytes"] == os.path.getsize(by["a"]["output"]), "a: %r" % by["a"])
        T.check(not by["b"]["ok"] and by["b"]["exit"] == 3 and by["b"]["error"], "b: %r" % by["b"])
        T.check(not by["c"]["ok"] and "exists" in by["c"]["error"], "c: %r" % by["c"])
    T.check(listing(out) == sorted(["a-%s.xva" % vms["a"], "c-%s.xva" % vms["c"]]),
            "after failures: %r" % listing(out))
    T.check(open(taken, "rb").read() == b"not mine", "an existing output was replaced without --force")
    T.check(store.check().rc == 0, "store check after a batch with failures")


def case_usage(store, tmp):
    out = os.path.join(tmp, "usage")
    os.mkdir(out)
    cases = [
        (["--all", "-o", "-"], 2, "-o -"),
        (["--all", "-o", out + "/", "--resume-file", os.path.join(tmp, "r")], 2, "--resume-file"),
        (["a", "b", "-o", out + "/", "--snapshot", "s"], 2, "--snapshot"),
        (["--all", "-o", "s3://bucket/key.xva"], 2, "prefix"),
        (["--all", "-o", out + "/", "--name-template", "x/{name}.xva"], 2, "'/'"),
        (["--all", "-o", out + "/", "--name-template", "{nme}.xva"], 2, "unknown field"),
        (["a/b", "a_b", "-o", out + "/", "--name-template", "{name}.{ext}"], 2, "both"),
        (["a", "--all", "-o", out + "/"], 2, "--all"),
        (["--all", "-o", out + "/", "-j", "0"], 2, "--parallel"),
        (["--all", "-o", out + "/", "--name-template", "{name}"], 2, "--format"),
        (["--all", "-o", os.path.join(tmp, "nodir") + "/"], 3, "no such folder"),
        (["a", "nosuch", "-o", out + "/"], 3, "nosuch"),
    ]
    for args, rc, word in cases:
        r = store.sp("export", *args)
        what = "export " + " ".join(args)
        T.check(r.rc == rc, "%s: exit %s, expected %d: %s" % (what, r.rc, rc, r.describe()))
        ST.one_error_line(r, what)
        T.check(word in r.err, "%s: the message does not say %r: %r" % (what, word, r.err))
        T.check(listing(out) == [], "%s wrote %r" % (what, listing(out)))
    # a VM named twice (by name and by UUID) is exported once
    r = store.sp("export", "a", store.vms()["a"], "-o", out + "/", json_out=True)
    j = json.loads(r.out) if r.out.strip() else {}
    T.check(r.rc == 0 and len(j.get("exports", [])) == 1 and len(listing(out)) == 1,
            "a VM named twice: %s" % r.describe())


def case_sigint(store, tmp):
    out = os.path.join(tmp, "sig")
    os.mkdir(out)
    before = snapshots_of(store)
    spool = os.path.join(tmp, "spool")
    os.mkdir(spool)
    env = dict(os.environ, TMPDIR=spool)
    env.pop("SNAPPORT_STORE", None)
    # OVAs at deflate level 12 of random data: slow enough to be caught
    p = subprocess.Popen([store.exe, "--store", store.dir, "export", "big1", "big2", "big3", "-o", out + "/",
                          "-j", "2", "--format", "ova", "--level", "12"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    # both children write (their temporary files are there)
    if not T.signal_when_ready(p, lambda: len(os.listdir(out)) >= 2, signal.SIGINT, "the batch"):
        return
    o, e = p.communicate(timeout=60)
    e = e.decode("utf-8", "replace")
    print("sigint: exit %s, %r" % (p.returncode, e.strip()))
    T.check(p.returncode == 130, "a batch after SIGINT: exit %s, stderr %r" % (p.returncode, e))
    T.check("interrupted by SIGINT" in e, "a batch after SIGINT: %r" % e)
    T.check(listing(out) == [], "a batch after SIGINT left %r" % listing(out))
    T.check(listing(spool) == [], "a batch after SIGINT left %r in TMPDIR" % listing(spool))
    T.check(snapshots_of(store) == before, "a batch after SIGINT changed the snapshots")
    r = store.check()
    T.check(r.rc == 0, "store check after SIGINT: %s" % r.describe())


def children_of(pid):
    """The running children of pid (from /proc), before pid goes."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def alive(pid):
    """Running (a zombie, reparented to whoever reaps it, is not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def case_parent_killed(store, tmp):
    out = os.path.join(tmp, "orphans")
    spool = os.path.join(tmp, "spool-orphans")
    os.mkdir(out)
    os.mkdir(spool)
    before = snapshots_of(store)
    env = dict(os.environ, TMPDIR=spool)
    env.pop("SNAPPORT_STORE", None)
    p = subprocess.Popen([store.exe, "--store", store.dir, "export", "big1", "big2", "big3", "-o", out + "/",
                          "-j", "2", "--format", "ova", "--level", "12"], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    kids = []
    deadline = time.monotonic() + 30
    while p.poll() is None and time.monotonic() < deadline and (len(kids) < 2 or len(os.listdir(out)) < 2):
        kids = children_of(p.pid)
        time.sleep(0.02)
    if not T.check(p.poll() is None and len(kids) == 2, "the batch before SIGKILL: children %r, rc %s"
                   % (kids, p.returncode)):
        return
    p.kill()
    p.wait()
    deadline = time.monotonic() + 30
    while any(alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [k for k in kids if alive(k)]
    T.check(not left, "children still running 30 s after their parent was killed: %r" % left)
    for k in left:
        os.kill(k, signal.SIGKILL)
    print("parent killed: children %r ended" % kids)
    T.check(listing(out) == [], "a batch whose parent was killed left %r" % listing(out))
    T.check(listing(spool) == [], "a batch whose parent was killed left %r in TMPDIR" % listing(spool))
    T.check(snapshots_of(store) == before, "a batch whose parent was killed changed the snapshots")
    r = store.check()
    T.check(r.rc == 0, "store check after the parent was killed: %s" % r.describe())


def main():
    exe, tmp = T.setup()
    store = ST.Store(exe, os.path.join(tmp, "store"), os.path.join(tmp, "scratch"))
    back = ST.Store(exe, os.path.join(tmp, "back"), os.path.join(tmp, "scratch"))
    for i, n in enumerate(("a", "b", "c", "../x", "a/b", "a_b", ".hidden")):
        make_vm(store, tmp, n, 2 + i % 2, "v%d" % i)
    want = {n: store.disk_digests(n) for n in store.vms()}
    case_all(store, back, tmp, want)
    case_template(store, tmp)
    case_usage(store, tmp)
    case_failures(store, tmp)
    for i in range(3):
        make_vm(store, tmp, "big%d" % (i + 1), 24, "big%d" % i)
    case_sigint(store, tmp)
    case_parent_killed(store, tmp)
    T.finish("test_export_batch")


if __name__ == "__main__":
    main()
