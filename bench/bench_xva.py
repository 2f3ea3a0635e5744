#!/usr/bin/env python3
"""XVA figures (issue 4), side by side with the peers in one run, on a
2 GiB virtual disk holding 768 MiB of mixed data (random, text, zeros):

  a) export (xxhash) against `xva-img disk-import` of the same raw disk
     followed by `tar` of its output: target at least 5x faster;
  b) import against `xva-img disk-export`: target at least 5x faster;
  c) export --digest sha1 against `sha1sum` over the same data: at most
     1.5x; the default xxhash export against the same;
  d) peak RSS of export and import: at most 64 MiB.

Usage: python3 bench/bench_xva.py   (SNAPPORT=binary, BENCH_DIR=scratch, REPS=3)
Exports use --snapshot (no temporary snapshot) and go to files with fsync,
as snapport always does; the peers' outputs are synced too ("sync FILE")
so that both sides leave durable files.
"""
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXE = os.environ.get("SNAPPORT", os.path.join(ROOT, "build", "snapport"))
BENCH = os.environ.get("BENCH_DIR", "/var/tmp/snapport-bench-xva")
REPS = int(os.environ.get("REPS", "3"))
M = 1 << 20


def run(cmd, **kw):
    r = subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit("bench: %s failed: %s" % (cmd, r.stderr.strip()))
    return r.stdout


def timed(cmd):
    """Seconds and peak RSS (KiB) of one command, page cache dropped first."""
    subprocess.run(["sync"])
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass
    rss_file = os.path.join(BENCH, "rss")
    t = time.perf_counter()
    run(["/usr/bin/time", "-f", "%M", "-o", rss_file, "bash", "-c", cmd])
    dt = time.perf_counter() - t
    return dt, int(open(rss_file).read().split()[-1])


def make_disk(path, data_path):
    """2 GiB raw: 96 regions of 8 MiB (random, text, zeros-written) spread
    out; data_path gets the same 768 MiB packed together (sha1sum's input)."""
    rnd = random.Random(42)
    pool = rnd.randbytes(32 * M)
    words = [b"GET", b"/index.html", b"200", b"snapport", b"xen", b"log", b"error", b"disk", b"-", b"ok"]
    text = b" ".join(rnd.choice(words) for _ in range(3 * M))[: 8 * M]
    with open(path, "wb") as f, open(data_path, "wb") as d:
        f.truncate(2048 * M)
        for r in range(96):
            f.seek(r * 21 * M + (r % 7) * 64 * 1024)
            kind = r % 3
            if kind == 0:
                off = (r * 5 * M) % (24 * M)
                chunk = pool[off:off + 8 * M]
            elif kind == 1:
                chunk = text
            else:
                chunk = bytes(8 * M)  # zeros written: data to a naive reader, omitted from XVAs
            f.write(chunk)
            d.write(chunk)


def main():
    if shutil.which("xva-img") is None:
        sys.exit("bench: xva-img is missing (apt-get install xva-img)")
    shutil.rmtree(BENCH, ignore_errors=True)
    os.makedirs(BENCH)
    try:
        raw = os.path.join(BENCH, "disk.raw")
        packed = os.path.join(BENCH, "data.bin")
        make_disk(raw, packed)
        store = os.path.join(BENCH, "store")
        cfg = os.path.join(BENCH, "vm.cfg")
        with open(cfg, "w") as f:
            f.write("name='bench'\nmemory=1024\nvcpus=2\ntype='hvm'\ndisk=['%s,raw,xvda,rw']\n" % raw)
        run([EXE, "--store", store, "-q", "vm", "create", "--config", cfg])
        run([EXE, "--store", store, "-q", "snapshot", "create", "bench", "--name", "s"])
        x = os.path.join(BENCH, "out.xva")
        cmds = {
            "export": "rm -f %s; %s --store %s -q export bench --snapshot s -o %s" % (x, EXE, store, x),
            "export_sha1": "rm -f %s; %s --store %s -q export bench --snapshot s -o %s --digest sha1" % (x, EXE, store, x),
            "xvaimg_export": "rm -rf {d}; mkdir -p {d}/Ref:00 && cp {c} {d}/ova.xml && xva-img disk-import {d}/Ref:00 {r}"
                             " && cd {d} && tar --format=v7 -cf {o} ova.xml Ref:00 && sync {o}".format(
                                 d=os.path.join(BENCH, "xi"), c=os.path.join(BENCH, "ova.xml"), r=raw,
                                 o=os.path.join(BENCH, "peer.xva")),
            "sha1sum": "sha1sum %s > /dev/null" % packed,
            "import": "%s --store %s -q vm destroy imp 2>/dev/null; %s --store %s -q import %s --name imp"
                      % (EXE, store, EXE, store, os.path.join(BENCH, "sha1.xva")),
            "xvaimg_import": "rm -f {o}; xva-img disk-export {d}/Ref:00 {o} && sync {o}".format(
                d=os.path.join(BENCH, "xs"), o=os.path.join(BENCH, "peer.raw")),
        }
        # the ova.xml for the peer's archive, and an extracted sha1 XVA for xva-img disk-export
        run(cmds["export_sha1"])
        shutil.copy(x, os.path.join(BENCH, "sha1.xva"))
        run("mkdir -p {d} && cd {d} && tar -xf {x} && cp ova.xml {c}".format(
            d=os.path.join(BENCH, "xs"), x=x, c=os.path.join(BENCH, "ova.xml")))
        times = {k: [] for k in cmds}
        rss = {k: 0 for k in cmds}
        for _ in range(REPS):
            for k, c in cmds.items():
                t, m = timed(c)
                times[k].append(t)
                rss[k] = max(rss[k], m)
        med = {k: statistics.median(v) for k, v in times.items()}
        info = json.loads(run([EXE, "--json", "info", os.path.join(BENCH, "sha1.xva")]))
        print("snapport XVA bench, %s, %d cores, median of %d, cold cache" % (time.strftime("%Y-%m-%d"),
                                                                             os.cpu_count(), REPS))
        print("  disk: 2048 MiB virtual, 768 MiB written (1/3 random, 1/3 text, 1/3 zeros); XVA stores %d MiB"
              % (info["disks"][0]["stored"] // M))
        for k in cmds:
            print("  %-14s %7.2f s   peak RSS %6.1f MiB" % (k, med[k], rss[k] / 1024))
        print("a) xva-img disk-import + tar / snapport export (xxhash): %.1fx   (target >= 5)"
              % (med["xvaimg_export"] / med["export"]))
        print("b) xva-img disk-export / snapport import:               %.1fx   (target >= 5)"
              % (med["xvaimg_import"] / med["import"]))
        print("c) snapport export --digest sha1 / sha1sum:             %.2f    (target <= 1.5)"
              % (med["export_sha1"] / med["sha1sum"]))
        print("   snapport export (xxhash) / sha1sum:                  %.2f" % (med["export"] / med["sha1sum"]))
        print("d) peak RSS export %.1f MiB, import %.1f MiB            (target <= 64)"
              % (rss["export"] / 1024, rss["import"] / 1024))
    finally:
        shutil.rmtree(BENCH, ignore_errors=True)


if __name__ == "__main__":
    main()
