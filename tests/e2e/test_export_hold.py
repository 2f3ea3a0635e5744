"""An export holds no lock while it streams (issue 9 item 3).

VM a's export to a pipe nobody reads blocks on its first full pipe buffer,
mid-stream. Meanwhile, with SNAPPORT_LOCK_TIMEOUT=0 (a writer that finds
the lock taken fails at once): a snapshot of VM b, an import (its commit),
a snapshot of a itself and gc all succeed. Then the pipe is read: the
archive imports to a's content at the export's start, a keeps the
snapshots it had plus the new one (the temporary one is gone), and the
store checks clean."""
import hashlib
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402

EXE, TMP = T.setup()
M = 1 << 20
STORE = os.path.join(TMP, "store")
ENV = dict(os.environ, SNAPPORT_LOCK_TIMEOUT="0")
ENV.pop("SNAPPORT_STORE", None)


def sp(*args, check=True):
    r = subprocess.run([EXE, "--store", STORE] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=120, env=ENV)
    if check and r.returncode != 0:
        T.fatal("snapport %s: exit %d: %s" % (" ".join(map(str, args)), r.returncode, r.stderr.strip()))
    return r


def digest(vm):
    leaf = json.loads(sp("--json", "vm", "show", vm).stdout)["vm"]["disks"][0]["file"]
    out = os.path.join(TMP, "flat.raw")
    sp("disk", "flatten", leaf, "-o", out, "--force", "--no-sync", "-q")
    with open(out, "rb") as f:
        h = hashlib.sha256(f.read()).hexdigest()
    os.unlink(out)
    return h


def make_vm(name, mb):
    raw = os.path.join(TMP, name + ".raw")
    with open(raw, "wb") as f:
        f.truncate(mb * M)
        f.seek(M)
        f.write(os.urandom((mb - 2) * M))
    cfg = os.path.join(TMP, name + ".cfg")
    with open(cfg, "w") as f:
        f.write("name='%s'\nmemory=256\nvcpus=1\ndisk=['%s,raw,xvda,rw']\n" % (name, raw))
    sp("vm", "create", "--config", cfg, "-q")


def flatten_guard():
    """disk flatten refuses to write over its input or a file its chain reads (item 4)."""
    parent, child = os.path.join(TMP, "p.vhd"), os.path.join(TMP, "c.vhd")
    sp("disk", "create", parent, "--size", "4M", "-q")
    sp("disk", "write", parent, "--offset", "0", "--pattern", "7", "--length", str(M))
    sp("disk", "create", child, "--size", "4M", "--parent", parent, "-q")
    before = {p: open(p, "rb").read() for p in (parent, child)}
    for out in (parent, child, os.path.join(TMP, ".", "p.vhd")):
        r = sp("disk", "flatten", child, "-o", out, "--force", "--format", "vhd", check=False)
        lines = r.stderr.splitlines()
        T.check(r.returncode == 3 and len(lines) == 1 and "chain" in lines[0],
                "flatten %s -o %s --force: exit %d %r" % (child, out, r.returncode, r.stderr))
    T.check(all(open(p, "rb").read() == b for p, b in before.items()), "a refused flatten changed its chain")
    T.check(sorted(n for n in os.listdir(TMP) if ".snapport-" in n) == [], "a refused flatten left a temporary")


def main():
    make_vm("a", 16)
    make_vm("b", 4)
    sp("snapshot", "create", "a", "--name", "s1")
    sp("export", "b", "-o", os.path.join(TMP, "b.xva"), "-q")
    want = digest("a")
    exp = subprocess.Popen([EXE, "--store", STORE, "export", "a", "-o", "-", "--format", "xva"], env=ENV,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = exp.stdout.read(4096)  # the stream has begun: the hold is taken
    T.check(len(first) == 4096, "the export did not start streaming")
    for args in (["snapshot", "create", "b", "--name", "during"], ["import", os.path.join(TMP, "b.xva"), "--name", "imp"],
                 ["snapshot", "create", "a", "--name", "s2"], ["gc"]):
        r = sp(*args, check=False)
        T.check(r.returncode == 0, "%s during a's export: exit %d %s" % (args, r.returncode, r.stderr.strip()))
    arch = os.path.join(TMP, "a.xva")
    with open(arch, "wb") as f:
        f.write(first)
        for chunk in iter(lambda: exp.stdout.read(M), b""):
            f.write(chunk)
    exp.wait()
    err = exp.stderr.read().decode()
    T.check(exp.returncode == 0, "the export: exit %d %s" % (exp.returncode, err))
    sp("import", arch, "--name", "a2", "-q")
    T.check(digest("a2") == want, "the export does not hold a's content at its start")
    T.check(digest("a") == want, "a's content changed")
    snaps = [s["name"] for s in json.loads(sp("--json", "snapshot", "list", "a").stdout)["snapshots"]]
    T.check(snaps == ["s1", "s2"], "a's snapshots after the export: %s" % snaps)
    names = sorted(v["name"] for v in json.loads(sp("--json", "vm", "list").stdout)["vms"])
    T.check(names == ["a", "a2", "b", "imp"], "VMs: %s" % names)
    r = sp("store", "check", check=False)
    T.check(r.returncode == 0, "store check: %s %s" % (r.stdout, r.stderr))
    flatten_guard()
    T.finish("test_export_hold")


main()
