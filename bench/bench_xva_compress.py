#!/usr/bin/env python3
"""Compressed XVA export (issue 13 item 5), side by side in one run, on a
2 GiB virtual disk holding 768 MiB of mixed data (bench_ova.py's disk: 96
regions of 8 MiB, a third random, a third log-like text, a third zeros
written as data, which the XVA leaves out):

  a) `export --compress gzip` against the single-core export it replaces
     (a snapport built before the change, --old): target at least 3x faster;
  b) its size against `gzip -6` of the uncompressed XVA: within 3 %;
  for reference: `gzip -6`, `pigz -6` and `pigz -1` of the uncompressed
  XVA, `export --compress zstd` against `zstd -T0` of it, the export
  without compression, and --level 1 of our gzip.

Usage: python3 bench/bench_xva_compress.py --old OLD_SNAPPORT [--dir DIR]
       [--rounds N] [--snapport EXE] [--keep]

Warm page cache; a global `sync` before every timed command. snapport
fsyncs its output, so every peer's command is `TOOL -c plain.xva > OUT &&
sync OUT`. The peers start from the finished uncompressed XVA (they do not
pay for reading the disk, the checksums and the tar); ours export from the
store. Rounds alternate the order. The binaries are copied into DIR first.
Before the rounds one untimed pass checks `gzip -t` / `zstd -t` and that
both compressed exports decompress to the uncompressed export.
"""
import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_ova  # noqa: E402  (the same disk as the OVA bench)

M = 1 << 20


def die(msg):
    sys.exit("bench_xva_compress: " + msg)


def run(argv):
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        die("%s failed (exit %d): %s" % (" ".join(argv), r.returncode, (r.stderr or r.stdout).strip()))
    return r


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()[:12]


class Bench:
    def __init__(self, a):
        self.dir = a.dir
        self.new = os.path.join(a.dir, "snapport")
        self.old = os.path.join(a.dir, "snapport-old")
        self.store = os.path.join(a.dir, "store")
        self.plain = os.path.join(a.dir, "plain.xva")
        self.rss_file = os.path.join(a.dir, "rss")
        self.times, self.rss, self.sizes = {}, {}, {}

    def out(self, key):
        return os.path.join(self.dir, key + ".xva")  # ours need the extension

    def export_cmd(self, exe, key, *extra):
        return "%s --store %s -q export bench --snapshot s -o %s --force %s" % (exe, self.store, self.out(key),
                                                                                  " ".join(extra))

    def peer_cmd(self, key, tool):
        return "%s -c %s > %s && sync %s" % (tool, self.plain, self.out(key), self.out(key))

    def timed(self, key, cmd):
        if os.path.exists(self.out(key)):
            os.unlink(self.out(key))
        subprocess.run(["sync"])
        t = time.perf_counter()
        run(["/usr/bin/time", "-f", "%M", "-o", self.rss_file, "bash", "-c", cmd])
        dt = time.perf_counter() - t
        self.times.setdefault(key, []).append(dt)
        self.rss[key] = max(self.rss.get(key, 0), int(open(self.rss_file).read().split()[-1]))
        self.sizes[key] = os.path.getsize(self.out(key))
        return dt

    def commands(self):
        return [
            ("old_gzip", self.export_cmd(self.old, "old_gzip", "--compress gzip")),
            ("gzip", self.export_cmd(self.new, "gzip", "--compress gzip")),
            ("gzip_l1", self.export_cmd(self.new, "gzip_l1", "--compress gzip --level 1")),
            ("plain", self.export_cmd(self.new, "plain")),
            ("gzip6", self.peer_cmd("gzip6", "gzip -6")),
            ("pigz6", self.peer_cmd("pigz6", "pigz -6")),
            ("pigz1", self.peer_cmd("pigz1", "pigz -1")),
            ("zstd", self.export_cmd(self.new, "zstd", "--compress zstd")),
            ("zstd_t0", self.peer_cmd("zstd_t0", "zstd -q -T0")),
        ]

    def check(self):
        """Untimed: the uncompressed XVA (the peers' input), and that both
        compressed exports are good and hold exactly it."""
        run(["bash", "-c", "%s --store %s -q export bench --snapshot s -o %s" % (self.new, self.store, self.plain)])
        want = sha(self.plain)
        for key, extra, test, dec in (("gzip", "--compress gzip", "gzip -t", "gzip -dc"),
                                      ("zstd", "--compress zstd", "zstd -q -t", "zstd -q -dc"),
                                      ("old_gzip", "--compress gzip", "gzip -t", "gzip -dc")):
            exe = self.old if key == "old_gzip" else self.new
            run(["bash", "-c", self.export_cmd(exe, key, extra)])
            run(["bash", "-c", "%s %s" % (test, self.out(key))])
            got = run(["bash", "-c", "%s %s | sha256sum" % (dec, self.out(key))]).stdout[:12]
            if got != want:
                die("%s does not decompress to the uncompressed export" % key)
        print("check: gzip -t, zstd -t pass; our gzip and zstd exports (and the old gzip export) decompress"
              " to the uncompressed export (sha256 %s...)" % want, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="/tmp/bench_xva_compress")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--snapport", default=os.environ.get("SNAPPORT", os.path.join(ROOT, "build", "snapport")))
    ap.add_argument("--old", required=True, help="snapport built before the change (libarchive's gzip filter)")
    ap.add_argument("--keep", action="store_true", help="leave DIR in place")
    a = ap.parse_args()
    for tool in ("gzip", "pigz", "zstd", "/usr/bin/time"):
        if shutil.which(tool) is None:
            die("%s is missing (apt-get install gzip pigz zstd time)" % tool)
    shutil.rmtree(a.dir, ignore_errors=True)
    os.makedirs(a.dir)
    b = Bench(a)
    try:
        shutil.copy2(a.snapport, b.new)
        shutil.copy2(a.old, b.old)
        src = os.path.join(a.dir, "src.raw")
        bench_ova.make_disk(src, 96)
        cfg = os.path.join(a.dir, "vm.cfg")
        with open(cfg, "w") as f:
            f.write("name = 'bench'\ntype = 'hvm'\nmemory = 1024\nvcpus = 2\ndisk = [ '%s,raw,xvda,rw' ]\n" % src)
        run([b.new, "--store", b.store, "-q", "vm", "create", "--config", cfg])
        run([b.new, "--store", b.store, "-q", "snapshot", "create", "bench", "--name", "s"])
        print("snapport compressed XVA bench, %s, %d cores, warm cache, %d rounds"
              % (time.strftime("%Y-%m-%d %H:%M"), os.cpu_count(), a.rounds))
        print("  snapport %s (sha256 %s...), old %s (sha256 %s...)" % (a.snapport, sha(b.new), a.old, sha(b.old)))
        print("  %s; %s; %s" % (run(["gzip", "--version"]).stdout.splitlines()[0],
                                run(["pigz", "--version"]).stdout.strip() or run(["pigz", "--version"]).stderr.strip(),
                                run(["zstd", "--version"]).stdout.strip()), flush=True)
        b.check()
        print("  uncompressed XVA: %.1f MiB" % (os.path.getsize(b.plain) / M), flush=True)
        with open(src, "rb") as f:  # warm the page cache
            while f.read(8 * M):
                pass
        cmds = b.commands()
        rounds = []
        for r in range(a.rounds):
            seq = cmds if r % 2 == 0 else list(reversed(cmds))
            for key, cmd in seq:
                b.timed(key, cmd)
            T = {k: v[-1] for k, v in b.times.items()}
            rounds.append((T["old_gzip"] / T["gzip"], T["pigz6"] / T["gzip"], T["zstd_t0"] / T["zstd"]))
            print("round %d: old gzip %.2f s, new gzip %.2f s -> %.2fx; gzip -6 %.2f, pigz -6 %.2f, pigz -1 %.2f;"
                  " zstd %.2f s, zstd -T0 %.2f s" % (r + 1, T["old_gzip"], T["gzip"], rounds[-1][0], T["gzip6"],
                                                     T["pigz6"], T["pigz1"], T["zstd"], T["zstd_t0"]), flush=True)
        med = {k: statistics.median(v) for k, v in b.times.items()}
        mr = [statistics.median(x[i] for x in rounds) for i in range(3)]
        labels = {"old_gzip": "old export --compress gzip (libarchive, 1 core)", "gzip": "export --compress gzip",
                  "gzip_l1": "export --compress gzip --level 1", "plain": "export (no compression)",
                  "gzip6": "gzip -6 plain.xva + sync", "pigz6": "pigz -6 plain.xva + sync",
                  "pigz1": "pigz -1 plain.xva + sync", "zstd": "export --compress zstd",
                  "zstd_t0": "zstd -T0 plain.xva + sync"}
        print()
        print("  %-48s %8s  %-12s %9s %10s %8s" % ("median of %d warm rounds" % a.rounds, "median s", "min-max s",
                                                  "peak RSS", "size MiB", "vs gz -6"))
        for key, _ in cmds:
            v = b.times[key]
            print("  %-48s %8.2f  %5.2f-%-6.2f %5.1f MiB %10.1f %+7.1f%%"
                  % (labels[key], med[key], min(v), max(v), b.rss[key] / 1024, b.sizes[key] / M,
                     100.0 * (b.sizes[key] / b.sizes["gzip6"] - 1)))
        ok = lambda c: "ok" if c else "MISSED"  # noqa: E731
        size = b.sizes["gzip"] / b.sizes["gzip6"] - 1
        print()
        print("  a) old gzip export / new gzip export, median ratio   %.2fx (target >= 3x: %s)" % (mr[0], ok(mr[0] >= 3)))
        print("  b) new gzip export size vs gzip -6                   %+.1f %% (target within 3 %%: %s)"
              % (100 * size, ok(abs(size) <= 0.03)))
        print("     pigz -6 (+sync) / new gzip export                 %.2fx" % mr[1])
        print("     zstd -T0 (+sync) / export --compress zstd         %.2fx" % mr[2])
    finally:
        if not a.keep:
            shutil.rmtree(a.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
