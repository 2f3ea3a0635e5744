#!/usr/bin/env python3
"""Store figures (issue 3), measured side by side in one run:

  a) `snapshot create` on a VM with a 1 TiB virtual disk against one with a
     1 GiB disk: each under 50 ms, and about the same;
  b) coalesce (gc) time follows the data in the child, not the virtual size:
     a child holding 64 MiB and 256 MiB, on a 1 GiB and on a 512 GiB disk;
  c) flatten of a VM with 30 snapshots (its data written across the 31
     layers) against the same content in one layer: ratio at most 1.3.

Usage: python3 bench/bench_store.py   (SNAPPORT=binary, BENCH_DIR=scratch)
"""
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXE = os.environ.get("SNAPPORT", os.path.join(ROOT, "build", "snapport"))
BENCH = os.environ.get("BENCH_DIR", "/var/tmp/snapport-bench-store")
M, G = 1 << 20, 1 << 30


def sp(store, *args):
    r = subprocess.run([EXE, "--store", store, "-q"] + list(args), capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("bench: snapport %s failed: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


def timed(store, *args):
    t = time.perf_counter()
    sp(store, *args)
    return time.perf_counter() - t


def drop_caches():
    subprocess.run(["sync"])
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


def vm_with_disk(store, name, size, writes=()):
    """A VM whose disk is an empty VHD of size, then writes into its leaf."""
    os.makedirs(store, exist_ok=True)
    disk = os.path.join(BENCH, name + "-src.vhd")
    if os.path.exists(disk):
        os.unlink(disk)
    subprocess.run([EXE, "-q", "disk", "create", disk, "--size", str(size)], check=True)
    cfg = os.path.join(BENCH, name + ".cfg")
    with open(cfg, "w") as f:
        f.write("name = '%s'\nmemory = 512\nvcpus = 1\ntype = 'hvm'\n"
                "disk = [ 'format=vhd, vdev=xvda, access=rw, target=%s' ]\n" % (name, disk))
    sp(store, "vm", "create", "--config", cfg)
    os.unlink(disk)
    for off, length, byte in writes:
        leaf(store, name, lambda p: subprocess.run(
            [EXE, "-q", "disk", "write", p, "--offset", str(off), "--pattern", str(byte), "--length", str(length)],
            check=True))


def leaf(store, name, fn):
    import json
    out = subprocess.run([EXE, "--store", store, "--json", "vm", "show", name], capture_output=True, text=True,
                         check=True).stdout
    return fn(json.loads(out)["disks"][0]["file"])


def write_random(path, off, length):
    data = os.urandom(length)
    tmp = os.path.join(BENCH, "chunk.bin")
    with open(tmp, "wb") as f:
        f.write(data)
    subprocess.run([EXE, "-q", "disk", "write", path, "--offset", str(off), "--from", tmp], check=True)


def bench_snapshot():
    rows = []
    for label, size in (("1 GiB", G), ("1 TiB", 1 << 40)):
        store = os.path.join(BENCH, "snap-" + label.replace(" ", ""))
        vm_with_disk(store, "vm", size, [(0, M, 1)])
        times = [timed(store, "snapshot", "create", "vm") for _ in range(9)]
        rows.append((label, statistics.median(times)))
    print("a) snapshot create, median of 9 (each adds a layer):")
    for label, t in rows:
        print("   %-6s virtual disk: %6.1f ms" % (label, t * 1000))
    print("   ratio 1 TiB / 1 GiB: %.2f   (target: each < 50 ms, about equal)" % (rows[1][1] / rows[0][1]))


def bench_coalesce():
    print("b) coalesce (gc) of a child into its parent, data spread over the disk:")
    rows = []
    for vlabel, vsize in (("1 GiB", G), ("512 GiB", 512 * G)):
        for data in (64 * M, 256 * M):
            store = os.path.join(BENCH, "gc-%s-%d" % (vlabel.replace(" ", ""), data // M))
            vm_with_disk(store, "vm", vsize)
            leaf(store, "vm", lambda p: write_random(p, 0, 16 * M))
            sp(store, "snapshot", "create", "vm", "--name", "s1")
            step = (vsize - 4 * M) // (data // (4 * M))
            path = leaf(store, "vm", lambda p: p)
            for i in range(data // (4 * M)):
                write_random(path, i * step // (2 * M) * (2 * M), 4 * M)
            sp(store, "snapshot", "create", "vm", "--name", "s2")
            sp(store, "snapshot", "delete", "vm", "s2")   # s2's node now has one child: the VM's leaf
            drop_caches()
            t = timed(store, "gc")
            rows.append((vlabel, data, t))
            print("   %-8s disk, child holds %4d MiB: %6.2f s  (%5.0f MiB/s)" % (vlabel, data // M, t,
                                                                              data / M / t))
            shutil.rmtree(store)
    small = {d: t for v, d, t in rows if v == "1 GiB"}
    big = {d: t for v, d, t in rows if v != "1 GiB"}
    print("   512 GiB / 1 GiB at the same data: %.2f (64 MiB), %.2f (256 MiB); 256/64 MiB on 512 GiB: %.2f"
          % (big[64 * M] / small[64 * M], big[256 * M] / small[256 * M], big[256 * M] / big[64 * M]))


def bench_flatten_snapshots():
    print("c) flatten of a 4 GiB VM disk holding 960 MiB, 30 snapshots against none:")
    size, chunk = 4 * G, 32 * M
    plan = [(i * 128 * M + (i % 3) * M, chunk) for i in range(30)]
    deep = os.path.join(BENCH, "flat-deep")
    flat = os.path.join(BENCH, "flat-one")
    vm_with_disk(deep, "vm", size)
    vm_with_disk(flat, "vm", size)
    for i, (off, length) in enumerate(plan):
        data = os.urandom(length)
        tmp = os.path.join(BENCH, "chunk.bin")
        with open(tmp, "wb") as f:
            f.write(data)
        for store in (deep, flat):
            p = leaf(store, "vm", lambda x: x)
            subprocess.run([EXE, "-q", "disk", "write", p, "--offset", str(off), "--from", tmp], check=True)
        sp(deep, "snapshot", "create", "vm")
    pd, pf = leaf(deep, "vm", lambda x: x), leaf(flat, "vm", lambda x: x)
    r = subprocess.run([EXE, "disk", "compare", pd, pf], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("bench: the two VMs differ: " + r.stdout + r.stderr)
    times = {"deep": [], "one": []}
    for _ in range(3):
        for key, p in (("deep", pd), ("one", pf)):
            out = os.path.join(BENCH, "flat.raw")
            if os.path.exists(out):
                os.unlink(out)
            drop_caches()
            t = time.perf_counter()
            subprocess.run([EXE, "-q", "disk", "flatten", p, "-o", out], check=True)
            times[key].append(time.perf_counter() - t)
            os.unlink(out)
    d, o = statistics.median(times["deep"]), statistics.median(times["one"])
    print("   31 layers: %.2f s, 1 layer: %.2f s, ratio %.2f (target <= 1.3), cold cache, median of 3" % (d, o, d / o))


def main():
    if os.path.exists(BENCH):
        shutil.rmtree(BENCH)
    os.makedirs(BENCH)
    try:
        print("snapport store bench, %s, %d cores" % (time.strftime("%Y-%m-%d"), os.cpu_count()))
        bench_snapshot()
        bench_coalesce()
        bench_flatten_snapshots()
    finally:
        shutil.rmtree(BENCH, ignore_errors=True)


if __name__ == "__main__":
    main()
