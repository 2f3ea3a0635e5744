"""Snapshotting and exporting one store at once (issue 3): two processes,
one taking snapshots in a loop, one exporting the VM (with its temporary
system snapshot) in a loop. Every command succeeds or waits; afterwards the
store checks clean, the snapshot count equals the successful creates (no
temporary snapshot left behind), and every archive verifies and imports
to the VM's content."""
import hashlib
import json
import os
import shutil
import subprocess
import sys

EXE = os.environ["SNAPPORT"]
TMP = os.environ["SP_TMP"]
M = 1 << 20
ENV = dict(os.environ, SNAPPORT_LOCK_TIMEOUT="60")
ENV.pop("SNAPPORT_STORE", None)


def sp(*args, check=True):
    r = subprocess.run([EXE] + list(args), capture_output=True, text=True, timeout=300, env=ENV)
    if check and r.returncode != 0:
        sys.exit("FAIL: snapport %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r


def disk_sha(store, name):
    info = json.loads(sp("--store", store, "--json", "vm", "show", name).stdout)["vm"]
    out = os.path.join(TMP, "flat-%s.raw" % name)
    sp("disk", "flatten", info["disks"][0]["file"], "-o", out, "--force", "--no-sync", "-q")
    with open(out, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    os.unlink(out)
    return digest


def main():
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    store = os.path.join(TMP, "store")
    raw = os.path.join(TMP, "d.raw")
    with open(raw, "wb") as f:
        f.truncate(8 * M)
        f.seek(M)
        f.write(os.urandom(3 * M))
    cfg = os.path.join(TMP, "vm.cfg")
    with open(cfg, "w") as f:
        f.write("name='vm'\nmemory=256\nvcpus=1\ndisk=['%s,raw,xvda,rw']\n" % raw)
    sp("--store", store, "vm", "create", "--config", cfg, "-q")
    want = disk_sha(store, "vm")
    rounds = 6
    snapper = subprocess.Popen(["bash", "-c", "ok=0; for i in $(seq %d); do %s --store %s -q snapshot create vm "
                                "--name s$i && ok=$((ok+1)); done; echo $ok" % (rounds, EXE, store)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    exporter = subprocess.Popen(["bash", "-c", "for i in $(seq %d); do %s --store %s -q export vm -o %s/e$i.xva "
                                 "|| echo FAILED $i; done" % (rounds, EXE, store, TMP)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    s_out, s_err = snapper.communicate(timeout=600)
    e_out, e_err = exporter.communicate(timeout=600)
    created = int(s_out.strip() or "0")
    if created != rounds or s_err.strip():
        sys.exit("FAIL: snapshot loop: %d of %d made; stderr %r" % (created, rounds, s_err))
    if "FAILED" in e_out or e_err.strip():
        sys.exit("FAIL: export loop: %r %r" % (e_out, e_err))
    snaps = json.loads(sp("--store", store, "--json", "snapshot", "list", "vm").stdout)["snapshots"]
    if len(snaps) != rounds or any(s["system"] for s in snaps):
        sys.exit("FAIL: %d snapshots (expected %d, no system ones left): %r" % (len(snaps), rounds, snaps))
    # each export merged its temporary snapshot back: one layer per snapshot over the base
    show = sp("--store", store, "vm", "show", "vm").stdout
    depth = int(show.split("chain of ")[1].split()[0])
    if depth != rounds + 1:
        sys.exit("FAIL: the VM's chain is %d files after %d snapshots and %d exports, expected %d"
                 % (depth, rounds, rounds, rounds + 1))
    r = sp("--store", store, "store", "check", check=False)
    if r.returncode != 0:
        sys.exit("FAIL: store check after the race: %s%s" % (r.stdout, r.stderr))
    for i in range(1, rounds + 1):
        x = os.path.join(TMP, "e%d.xva" % i)
        sp("verify", x, "-q")
        sp("--store", store, "import", x, "--name", "imp%d" % i, "-q")
        if disk_sha(store, "imp%d" % i) != want:
            sys.exit("FAIL: archive %d imports to other content" % i)
    print("ok: %d snapshots and %d exports raced; all made, all verify, store clean" % (rounds, rounds))


main()
