"""storetest: helpers for the store e2e tests (tests/e2e/test_store_*.py).

Builds on sptest (Result, check/fatal/finish).  A Store object runs snapport
against one store directory (always with --store, absolute), with optional
extra environment (crash hooks, lock timeout), and computes content digests
of VMs and snapshots independently of the store's own checks: every disk of
`vm show --json` is flattened with `disk flatten` and hashed with sha256.
"""

import hashlib
import json
import os
import subprocess

import sptest as T

K, M = 1024, 1024 * 1024


def run_env(args, env=None, timeout=T.TIMEOUT, cwd=None):
    """sptest.run with extra environment variables (None values remove one)."""
    e = dict(os.environ)
    # a store chosen by the environment must never leak into a test
    e.pop("SNAPPORT_STORE", None)
    for k in ("SNAPPORT_CRASH_AFTER", "SNAPPORT_CRASH_LOG", "SNAPPORT_LOCK_TIMEOUT"):
        e.pop(k, None)
    for k, v in (env or {}).items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = str(v)
    try:
        p = subprocess.run([str(a) for a in args], capture_output=True, timeout=timeout, cwd=cwd, env=e)
        return T.Result([str(a) for a in args], p.returncode, p.stdout.decode("utf-8", "replace"),
                        p.stderr.decode("utf-8", "replace"))
    except OSError as ex:
        return T.Result([str(a) for a in args], 127, "", "cannot run: %s" % ex)
    except subprocess.TimeoutExpired as ex:
        return T.Result([str(a) for a in args], -1, (ex.stdout or b"").decode("utf-8", "replace"),
                        (ex.stderr or b"").decode("utf-8", "replace"), timed_out=True)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def file_sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def error_lines(r):
    return [l for l in r.err.splitlines() if l.strip()]


def one_error_line(r, what):
    """A failure prints exactly one line 'snapport: ...' on stderr."""
    lines = error_lines(r)
    return T.check(len(lines) == 1 and lines[0].startswith("snapport: "),
                   "%s: expected one 'snapport: ...' line on stderr, got %r" % (what, r.err)) and \
        T.named_once(lines[0], what)


def expect_failure(r, what, rc, names, words=()):
    """A failed command: exit rc, no crash, exactly one stderr line
    'snapport: ...' that names one of names and says every one of words
    (case-insensitive). Returns whether all held."""
    if r.crashed():
        return T.check(False, "%s: crashed or hung: %s" % (what, r.describe()))
    ok = T.check(r.rc == rc, "%s: exit %s, expected %s: %s" % (what, r.rc, rc, r.describe()))
    lines = error_lines(r)
    if not T.check(len(lines) == 1 and lines[0].startswith("snapport: "),
                   "%s: expected one 'snapport: ...' line on stderr, got %r" % (what, r.err)):
        return False
    ok &= T.named_once(lines[0], what)
    ok &= T.check(any(n in lines[0] for n in names), "%s: the message names none of %s: %r" % (what, list(names),
                                                                                             lines[0]))
    for w in words:
        ok &= T.check(w.lower() in lines[0].lower(), "%s: the message does not say %r: %r" % (what, w, lines[0]))
    return ok


def mount_tmpfs(path, size):
    """A tmpfs of size (e.g. "48m") at path (needs root; fails the test, no skip)."""
    os.makedirs(path, exist_ok=True)
    r = T.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", path])
    if r.rc != 0:
        T.fatal("cannot mount a tmpfs at %s (this test needs root and mount permission): %s" % (path, r.describe()))


def umount(path):
    r = T.run(["umount", path])
    if r.rc != 0:
        T.run(["umount", "-l", path])


def fill(path, leave):
    """A file at path that fills its file system up to `leave` bytes free."""
    with open(path, "wb") as f:
        sv = os.statvfs(os.path.dirname(path))
        n = max(0, sv.f_bavail * sv.f_frsize - leave)
        chunk = b"\xff" * M
        try:
            while n > 0:
                f.write(chunk[:min(n, M)])
                n -= min(n, M)
            f.flush()
        except OSError:
            pass        # full already


class Store:
    def __init__(self, exe, path, scratch):
        self.exe = exe
        self.dir = os.path.abspath(path)
        self.scratch = scratch      # where flattened images go (removed after hashing)
        os.makedirs(scratch, exist_ok=True)
        self._n = 0

    def sp(self, *args, env=None, timeout=T.TIMEOUT, json_out=False):
        pre = [self.exe, "--store", self.dir] + (["--json"] if json_out else [])
        return run_env(pre + [str(a) for a in args], env=env, timeout=timeout)

    def ok(self, *args, env=None, timeout=T.TIMEOUT, what=None):
        """Run; abort the whole test on failure (for setup steps)."""
        r = self.sp(*args, env=env, timeout=timeout)
        if r.rc != 0:
            T.fatal("%ssnapport failed: %s" % ((what + ": ") if what else "", r.describe()))
        return r

    def json(self, *args, fatal=True):
        r = self.sp(*args, json_out=True)
        try:
            if r.rc != 0:
                raise ValueError("exit %s" % r.rc)
            return json.loads(r.out)
        except ValueError as e:
            msg = "--json %s failed (%s): %s" % (" ".join(map(str, args)), e, r.describe())
            if fatal:
                T.fatal(msg)
            T.check(False, msg)
            return None

    # ---- catalog views --------------------------------------------------

    def vms(self):
        """name -> uuid of every VM (not snapshots)."""
        return {v["name"]: v["uuid"] for v in self.json("vm", "list")["vms"]}

    def show(self, name, fatal=True):
        j = self.json("vm", "show", name, fatal=fatal)
        return j["vm"] if j else j

    def snapshots(self, vm):
        return self.json("snapshot", "list", vm)["snapshots"]

    def check(self):
        return self.sp("store", "check")

    def vdi_file(self, vdi_uuid):
        return os.path.join(self.dir, "vdis", vdi_uuid + ".vhd")

    def memory_file(self, show_json):
        """The file of a VM's or snapshot's memory image (vm show --json
        suspend_file; older builds: vdis/<suspend_vdi>.vhd)."""
        if show_json.get("suspend_file"):
            return show_json["suspend_file"]
        return self.vdi_file(show_json["suspend_vdi"]) if show_json.get("suspend_vdi") else None

    # ---- content ---------------------------------------------------------

    def flatten(self, vhd):
        """Raw content of a VHD chain as bytes (via disk flatten), or None."""
        self._n += 1
        out = os.path.join(self.scratch, "flat%d.raw" % self._n)
        r = run_env([self.exe, "disk", "flatten", vhd, "-o", out, "--force"], timeout=60)
        if r.rc != 0 or not os.path.exists(out):
            T.check(False, "disk flatten %s failed: %s" % (vhd, r.describe()))
            if os.path.exists(out):
                os.unlink(out)
            return None
        data = T.read_file(out)
        os.unlink(out)
        return data

    def disk_digests(self, name, fatal=True, memory=False):
        """{vdev: sha256 of the flattened disk} of a VM or snapshot (store
        disks only); memory: also "memory": sha256 of the memory image (the
        bytes as stored, trailing zero padding removed) or None when halted."""
        j = self.show(name, fatal=fatal)
        if j is None:
            return None
        out = {}
        for d in j["disks"]:
            if d.get("cdrom") or not d.get("vdi"):
                continue
            data = self.flatten(d["file"])
            out[d["vdev"]] = sha(data) if data is not None else None
        if memory:
            f = self.memory_file(j)
            data = self.flatten(f) if f else None
            out["memory"] = sha(data.rstrip(b"\0")) if data is not None else None
        return out

    def digests(self, memory=False):
        """The whole store: {("vm", name): digests, ("snap", vmname, snapname): digests}."""
        res = {}
        for name, uuid in self.vms().items():
            res[("vm", name)] = self.disk_digests(uuid, memory=memory)
            for s in self.snapshots(uuid):
                res[("snap", name, s["name"])] = self.disk_digests(s["uuid"], memory=memory)
        return res

    def chain_depths(self, name):
        """{vdev: chain depth} from the text of `vm show`."""
        r = self.ok("vm", "show", name)
        depths = {}
        for line in r.out.splitlines():
            parts = line.split()
            # disk xvda    <vdi uuid>  chain of 2  <file>
            if len(parts) >= 6 and parts[0] == "disk" and parts[3:5] == ["chain", "of"]:
                depths[parts[1]] = int(parts[5])
        return depths

    def files(self, include_catalog=True):
        """{relative path: sha256} of every file of the store but the lock and SQLite's WAL/SHM."""
        res = {}
        for root, _, names in os.walk(self.dir):
            for n in names:
                rel = os.path.relpath(os.path.join(root, n), self.dir)
                if rel == "lock" or rel.endswith("-wal") or rel.endswith("-shm"):
                    continue
                if rel == "catalog.db" and not include_catalog:
                    continue
                res[rel] = file_sha(os.path.join(root, n))
        return res

    def catalog_dump(self):
        """Every row of the catalog (read-only, WAL included), as text lines."""
        import sqlite3
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.dir, "catalog.db"), uri=True)
        try:
            return list(db.iterdump())
        finally:
            db.close()

    def vdi_files(self):
        return sorted(os.listdir(os.path.join(self.dir, "vdis")))
