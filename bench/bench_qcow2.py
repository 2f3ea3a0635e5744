#!/usr/bin/env python3
"""qcow2 read figures, side by side with qemu-img in one run, on a 2 GiB
virtual disk holding 768 MiB of data (96 regions of 8 MiB, alternately
random and log-like text, from bench/gen_data.py's generators), made into a
qcow2 by `qemu-img convert -O qcow2` (64 KiB uncompressed clusters):

  a) `snapport disk flatten img.qcow2 -o out.raw` (fsyncs its output)
     against `qemu-img convert -O raw img.qcow2 q.raw` followed by
     `sync q.raw` (like for like): target snapport within 1.2x of qemu-img;
     also `--no-sync` against qemu-img alone;
  b) peak RSS of the flatten (/usr/bin/time -v): at most 64 MiB;
  c) for information: the same image compressed (`qemu-img convert -c`),
     snapport flatten --no-sync against qemu-img convert without sync.

Usage: python3 bench/bench_qcow2.py [--dir DIR] [--rounds N] [--snapport EXE]
       [--regions N] [--keep]

Warm page cache (the images are read once before the rounds; caches are not
dropped). Every timed command starts after a global `sync`, so none pays
for the previous one's writeback. Rounds alternate the order (odd rounds
snapport first, even rounds qemu-img first); each round's ratios are
printed, then the medians. Before the rounds, one untimed pass checks that
both images flatten to src.raw (`snapport disk compare`, `qemu-img
compare`). The snapport binary is copied into DIR first, so a rebuild during
the run changes nothing. DIR is deleted at the end (not with --keep).
"""
import argparse
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import gen_data  # noqa: E402  (the pool and text generators of bench_flatten)

M = 1 << 20
REGION = 8 * M
DISK = 2048 * M
RSS_RE = re.compile(r"Maximum resident set size \(kbytes\):\s*(\d+)")


def die(msg):
    sys.exit("bench_qcow2: " + msg)


def run(argv, ok=(0,)):
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode not in ok:
        die("%s failed (exit %d): %s" % (" ".join(argv), r.returncode, (r.stderr or r.stdout).strip()))
    return r


def make_disk(path, regions):
    """DISK bytes of raw, REGION-sized regions spread over it: even ones
    random (windows of gen_data's 32 MiB pool), odd ones log-like text."""
    pool = memoryview(gen_data.make_pool())
    text = memoryview(gen_data.make_text())
    with open(path, "wb") as f:
        f.truncate(DISK)
        for r in range(regions):
            f.seek(r * 21 * M + (r % 7) * 64 * 1024)
            f.write(gen_data.random_piece(pool, r, REGION) if r % 2 == 0 else gen_data.text_piece(text, r, REGION))
        f.flush()
        os.fsync(f.fileno())


class Bench:
    def __init__(self, a):
        self.dir = a.dir
        self.exe = os.path.join(a.dir, "snapport")
        self.src = os.path.join(a.dir, "src.raw")
        self.img = os.path.join(a.dir, "img.qcow2")
        self.cimg = os.path.join(a.dir, "img_c.qcow2")
        self.out = os.path.join(a.dir, "out.raw")
        self.qout = os.path.join(a.dir, "q.raw")
        self.rss_file = os.path.join(a.dir, "rss")
        self.times = {}
        self.rss = {}

    def rm(self, *paths):
        for p in paths:
            if os.path.exists(p):
                os.unlink(p)

    def timed(self, key, argv, output):
        """Seconds and peak RSS of argv, output removed before (untimed)."""
        self.rm(output)
        subprocess.run(["sync"])
        t = time.perf_counter()
        run(["/usr/bin/time", "-v", "-o", self.rss_file] + argv)
        dt = time.perf_counter() - t
        m = RSS_RE.search(open(self.rss_file).read())
        if not m:
            die("no peak RSS in /usr/bin/time -v output")
        self.times.setdefault(key, []).append(dt)
        self.rss[key] = max(self.rss.get(key, 0), int(m.group(1)))
        return dt

    def sync_file(self, key, path):
        t = time.perf_counter()
        run(["sync", path])
        self.times.setdefault(key, []).append(time.perf_counter() - t)

    # the commands -----------------------------------------------------------
    def ours(self):
        self.timed("ours", [self.exe, "-q", "disk", "flatten", self.img, "-o", self.out], self.out)

    def ours_nosync(self):
        self.timed("ours_nosync", [self.exe, "-q", "disk", "flatten", "--no-sync", self.img, "-o", self.out],
                   self.out)

    def qemu(self):
        self.timed("qemu", ["qemu-img", "convert", "-O", "raw", self.img, self.qout], self.qout)
        self.sync_file("qemu_sync", self.qout)

    def ours_c(self):
        self.timed("ours_c", [self.exe, "-q", "disk", "flatten", "--no-sync", self.cimg, "-o", self.out], self.out)

    def qemu_c(self):
        self.timed("qemu_c", ["qemu-img", "convert", "-O", "raw", self.cimg, self.qout], self.qout)

    def check(self):
        """Untimed: both images read back as src.raw in snapport and qemu-img."""
        for img in (self.img, self.cimg):
            run([self.exe, "-q", "disk", "compare", img, self.src])
            run(["qemu-img", "compare", "-f", "qcow2", "-F", "raw", img, self.src])
        run([self.exe, "-q", "disk", "flatten", "--no-sync", self.img, "-o", self.out])
        run(["qemu-img", "compare", "-f", "raw", "-F", "raw", self.out, self.src])
        self.rm(self.out)
        print("check: img.qcow2 and img_c.qcow2 == src.raw (snapport disk compare, qemu-img compare),"
              " snapport's flatten == src.raw", flush=True)


def rounds_loop(b, n):
    ratios = []
    for r in range(n):
        first = "snapport" if r % 2 == 0 else "qemu-img"
        seq = [b.ours, b.qemu, b.ours_nosync, b.ours_c, b.qemu_c]
        if r % 2:
            seq = [b.qemu, b.ours, b.qemu_c, b.ours_c, b.ours_nosync]
        for fn in seq:
            fn()
        t = {k: v[-1] for k, v in b.times.items()}
        like = t["ours"] / (t["qemu"] + t["qemu_sync"])
        nosync = t["ours_nosync"] / t["qemu"]
        comp = t["ours_c"] / t["qemu_c"]
        ratios.append((like, nosync, comp))
        print("round %d (%s first): flatten %.2f s vs qemu-img %.2f s + sync %.2f s -> %.2fx;"
              " --no-sync %.2f s vs %.2f s -> %.2fx; compressed %.2f s vs %.2f s -> %.2fx"
              % (r + 1, first, t["ours"], t["qemu"], t["qemu_sync"], like, t["ours_nosync"], t["qemu"], nosync,
                 t["ours_c"], t["qemu_c"], comp), flush=True)
    return ratios


def report(b, ratios, n):
    med = {k: statistics.median(v) for k, v in b.times.items()}

    def row(label, key):
        v = b.times[key]
        rss = "%6.1f MiB" % (b.rss[key] / 1024) if key in b.rss else "         -"
        print("  %-48s %7.2f   %5.2f-%-6.2f %s" % (label, med[key], min(v), max(v), rss))

    print()
    print("  %-48s %8s  %-12s %9s" % ("Summary, median of %d warm rounds" % n, "median s", "min-max s", "peak RSS"))
    row("snapport disk flatten img.qcow2 -o out.raw", "ours")
    row("snapport disk flatten --no-sync", "ours_nosync")
    row("qemu-img convert -O raw img.qcow2 q.raw", "qemu")
    row("  sync q.raw after it", "qemu_sync")
    row("snapport flatten --no-sync, compressed image", "ours_c")
    row("qemu-img convert -O raw, compressed image", "qemu_c")
    mr = [statistics.median(x[i] for x in ratios) for i in range(3)]
    ok = lambda c: "ok" if c else "MISSED"  # noqa: E731
    rss = b.rss["ours"] / 1024
    print()
    print("  %-58s %-10s %s" % ("", "target", "measured"))
    print("  %-58s %-10s %.2fx (%s)" % ("a) snapport / (qemu-img + sync), median of ratios", "<= 1.2x", mr[0],
                                        ok(mr[0] <= 1.2)))
    print("  %-58s %-10s %.2fx" % ("   snapport --no-sync / qemu-img alone", "", mr[1]))
    print("  %-58s %-10s %.1f MiB (%s)" % ("b) peak RSS of snapport flatten", "<= 64 MiB", rss, ok(rss <= 64)))
    print("  %-58s %-10s %.2fx" % ("c) compressed: snapport --no-sync / qemu-img", "info", mr[2]))
    print("     qemu-img peak RSS: %.1f MiB (uncompressed), %.1f MiB (compressed); snapport compressed %.1f MiB"
          % (b.rss["qemu"] / 1024, b.rss["qemu_c"] / 1024, b.rss["ours_c"] / 1024))
    print("     sizes: img.qcow2 %.1f MiB, img_c.qcow2 %.1f MiB" % (os.path.getsize(b.img) / M,
                                                                   os.path.getsize(b.cimg) / M))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="/tmp/bench_qcow2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--snapport", default=os.environ.get("SNAPPORT", os.path.join(ROOT, "build", "snapport")))
    ap.add_argument("--regions", type=int, default=96, help="8 MiB regions (96 = 768 MiB)")
    ap.add_argument("--keep", action="store_true", help="leave DIR in place")
    a = ap.parse_args()
    if a.regions < 1 or a.regions > 96:
        die("--regions is 1..96")
    for tool in ("qemu-img", "/usr/bin/time"):
        if shutil.which(tool) is None:
            die("%s is missing (apt-get install qemu-utils time)" % tool)
    shutil.rmtree(a.dir, ignore_errors=True)
    os.makedirs(a.dir)
    b = Bench(a)
    try:
        shutil.copy2(a.snapport, b.exe)
        sha = hashlib.sha256(open(b.exe, "rb").read()).hexdigest()
        qv = run(["qemu-img", "--version"]).stdout.splitlines()[0]
        t0 = time.perf_counter()
        make_disk(b.src, a.regions)
        run(["qemu-img", "convert", "-O", "qcow2", b.src, b.img])
        run(["qemu-img", "convert", "-c", "-O", "qcow2", b.src, b.cimg])
        print("snapport qcow2 bench, %s, %d cores, warm cache, %d rounds" % (time.strftime("%Y-%m-%d %H:%M"),
                                                                             os.cpu_count(), a.rounds))
        print("  snapport %s (sha256 %s...), %s" % (a.snapport, sha[:12], qv))
        print("  disk: %d MiB virtual, %d MiB of data in %d regions of 8 MiB (1/2 random, 1/2 text);"
              " set up in %.1f s" % (DISK // M, a.regions * REGION // M, a.regions, time.perf_counter() - t0),
              flush=True)
        b.check()
        for img in (b.img, b.cimg):   # warm the inputs
            with open(img, "rb") as f:
                while f.read(8 * M):
                    pass
        ratios = rounds_loop(b, a.rounds)
        report(b, ratios, a.rounds)
    finally:
        if not a.keep:
            shutil.rmtree(a.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
