#!/usr/bin/env python3
"""S3 figures (issue 13), side by side with Debian's s3cmd in one run,
against a single-node Ceph radosgw on 127.0.0.1 (tests/tools/ceph_rgw.py,
memstore OSD: objects live in RAM and are deleted after every round):

  a) `export VM -o s3://B/K` (default options) against `s3cmd put` of the
     finished archive alone: target at most 1.0x (the export costs nothing
     on top of the upload); also against a local `export VM -o F.xva`
     followed by that `s3cmd put` (what one would do without S3 support),
     and the same three with `--compress gzip`;
  b) peak RSS of an export to s3:// of a 16 GiB virtual disk (a few GiB of
     data spread over it), default --jobs/--part-size and --jobs 8
     --part-size 64M: target <= 64 MiB + part size x (jobs + 1); and of the
     import of that object;
  c) a batch of 8 VMs to s3:// with `export --all -o s3://B/P/ -j 2`
     against the 8 exports one after another: target faster. Skipped (with
     a message) when the binary has no batch form (`--parallel`).

Usage: python3 bench/bench_s3.py [--snapport EXE] [--rounds N] [--quick]
       [--dir DIR] [--keep] [--only a,b,c] [--data-mib N] [--big-gib N]
       [--big-data-mib N] [--vms N] [--vm-mib N] [--memstore-gib N]

Disks are bench_ova.py's kind of data (gen_data.py's generators): regions
of 8 MiB spread evenly over the virtual size, a third random, a third
log-like text, a third zeros written as data (left out of XVAs). Warm page
cache. s3cmd gets a generated config file for the endpoint (SigV4, no TLS)
and --multipart-chunk-size-mb=16, our default part size; it uploads parts
one at a time, ours --jobs (default 4) at once. Nothing is written locally
by an export to S3, so there is nothing to sync on either side; the local
export fsyncs its archive as always. Rounds alternate the order; ratios are
medians of the per-round ratios (the 2-core machine is shared and noisy);
the load average is printed with every round. Besides wall time the
tables give each command's CPU seconds (user + system) and the CPU seconds
the cluster's daemons (radosgw, OSD, mon) used meanwhile ("server s"):
the upload is bound by the server's CPU on the same 2 cores.
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
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
import bench_ova  # noqa: E402  (its disk maker)
import ceph_rgw  # noqa: E402

M = 1 << 20
G = 1 << 30
SHIFT_MAX = 6 * 64 * 1024  # bench_ova.make_disk shifts region r by (r % 7) x 64 KiB
BUCKET = "sp-bench"
RSS_BASE_MIB = 64          # the bound: 64 MiB + parts in flight
PART_DEFAULT_MIB = 16      # s3/s3_stream.h SP_S3_PART_FIRST
JOBS_DEFAULT = 4           # s3/s3_stream.h SP_S3_JOBS_DEFAULT
GET_CHUNK_MIB = 8          # s3/s3_stream.h SP_S3_GET_CHUNK (import's ranged GETs)


def die(msg):
    sys.exit("bench_s3: " + msg)


def loadavg():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(8 * M)
            if not b:
                return h.hexdigest()[:12]
            h.update(b)


def make_raw(path, virtual, data):
    """A sparse raw of `virtual` bytes with `data` bytes written in regions
    spread evenly over it (bench_ova.py's regions: random, text, zeros)."""
    regions = max(1, data // bench_ova.REGION)
    stride = virtual // regions
    if stride < bench_ova.REGION + SHIFT_MAX:
        die("%d MiB of data do not fit in %d MiB" % (data // M, virtual // M))
    bench_ova.make_disk(path, regions, virtual, stride)


class Bench:
    def __init__(self, a, s3):
        self.a, self.s3, self.dir = a, s3, a.dir
        self.exe = os.path.join(a.dir, "snapport")
        self.rss_file = os.path.join(a.dir, "rss")
        self.s3cfg = os.path.join(a.dir, "s3cfg")
        self.env = dict(os.environ)
        self.env.update(s3.aws_env())
        self.env["HOME"] = a.dir          # no ~/.aws or ~/.s3cfg of the machine's
        self.times, self.rss, self.cpu, self.server = {}, {}, {}, {}

    # ------------------------------------------------------------ tools
    def run(self, argv, ok=(0,), env=None):
        r = subprocess.run([str(x) for x in argv], capture_output=True, text=True, env=env or self.env)
        if r.returncode not in ok:
            die("%s failed (exit %d): %s" % (" ".join(map(str, argv[:4])), r.returncode,
                                             (r.stderr or r.stdout).strip()[-600:]))
        return r

    def sp(self, store, *args, ok=(0,)):
        return self.run([self.exe, "--store", store, "-q"] + list(args), ok=ok)

    def s3cmd(self, *args, ok=(0,)):
        return self.run(["s3cmd", "-c", self.s3cfg] + list(args), ok=ok)

    def timed(self, key, argv):
        """Seconds of argv; its peak RSS (KiB) and CPU seconds (user + system,
        its children included) are kept too."""
        c0 = self.server_cpu()
        t = time.perf_counter()
        self.run(["/usr/bin/time", "-f", "%M %U %S", "-o", self.rss_file] + list(argv))
        dt = time.perf_counter() - t
        self.server.setdefault(key, []).append(self.server_cpu() - c0)
        kib, user, system = open(self.rss_file).read().split()[-3:]
        self.times.setdefault(key, []).append(dt)
        self.cpu.setdefault(key, []).append(float(user) + float(system))
        self.rss[key] = max(self.rss.get(key, 0), int(kib))
        return dt

    def server_cpu(self):
        """CPU seconds used so far by the cluster's daemons (radosgw, OSD, mon)."""
        ticks = 0
        for _, p in self.s3.procs:
            try:
                f = open("/proc/%d/stat" % p.pid).read().rsplit(")", 1)[1].split()
                ticks += int(f[11]) + int(f[12])  # utime, stime
            except (OSError, IndexError, ValueError):
                pass
        return ticks / os.sysconf("SC_CLK_TCK")

    def write_s3cfg(self):
        """s3cmd's config for this endpoint (the secret stays in this file)."""
        host = self.s3.endpoint.split("://", 1)[1]
        fd = os.open(self.s3cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("[default]\naccess_key = %s\nsecret_key = %s\nhost_base = %s\nhost_bucket = %s\n"
                    "use_https = False\nsignature_v2 = False\nbucket_location = %s\n"
                    "multipart_chunk_size_mb = %d\nprogress_meter = False\n"
                    % (self.s3.access_key, self.s3.secret_key, host, host, self.s3.region, PART_DEFAULT_MIB))

    def clear(self, prefix=""):
        """Delete every object under s3://BUCKET/prefix and let rgw's gc give
        the memstore its RAM back (untimed)."""
        self.s3cmd("del", "--recursive", "--force", "s3://%s/%s" % (BUCKET, prefix))
        self.s3.run("radosgw-admin", "-c", self.s3.conf, "gc", "process", "--include-all", timeout=300)

    def object_size(self, key):
        out = self.s3cmd("ls", "s3://%s/%s" % (BUCKET, key)).stdout.split()
        return int(out[2]) if len(out) >= 4 else -1

    def make_vm(self, store, name, virtual, data):
        raw = os.path.join(self.dir, name + ".raw")
        make_raw(raw, virtual, data)
        cfg = os.path.join(self.dir, name + ".cfg")
        with open(cfg, "w") as f:
            f.write("name='%s'\nmemory=1024\nvcpus=2\ntype='hvm'\ndisk=['%s,raw,xvda,rw']\n" % (name, raw))
        self.sp(store, "vm", "create", "--config", cfg)
        os.unlink(raw)  # the store has its own copy

    # ------------------------------------------------------------ a) export vs s3cmd put
    def part_a(self):
        a = self.a
        store = os.path.join(self.dir, "store")
        t0 = time.perf_counter()
        self.make_vm(store, "web", 2 * G, a.data_mib * M)
        print("\na) VM 'web': 2048 MiB virtual, %d MiB written; set up in %.1f s"
              % (a.data_mib, time.perf_counter() - t0), flush=True)
        local = {"": os.path.join(self.dir, "local.xva"), "gz": os.path.join(self.dir, "local-gz.xva")}

        def steps(tag, extra):
            url, url2 = "s3://%s/web%s.xva" % (BUCKET, tag), "s3://%s/web%s-put.xva" % (BUCKET, tag)
            exp = ("s3" + tag, [self.exe, "--store", store, "-q", "export", "web", "-o", url] + extra)
            loc = ("local" + tag, [self.exe, "--store", store, "-q", "export", "web", "-o", local[tag], "--force"]
                   + extra)
            put = ("put" + tag, ["s3cmd", "-c", self.s3cfg, "--multipart-chunk-size-mb=%d" % PART_DEFAULT_MIB,
                                 "put", local[tag], url2])
            return exp, loc, put

        variants = [("", [])] + ([("gz", ["--compress", "gzip"])] if not a.no_gzip else [])
        # untimed: check the object is the archive: snapport verify passes, the
        # size is a local export's (to the byte uncompressed; compressed, the
        # temporary snapshot's names and times may shift it by a few bytes)
        for tag, extra in variants:
            (_, e), (_, l), _ = steps(tag, extra)
            self.run(e)
            self.run(l)
            url = e[e.index("-o") + 1]
            self.sp(store, "verify", url)
            got, want = self.object_size(url.split("/", 3)[3]), os.path.getsize(local[tag])
            if got != want if not tag else abs(got - want) > want // 1000:
                die("%s: %d bytes, a local export %d" % (url, got, want))
            print("  check%s: %s verifies, %d bytes (%.1f MiB), a local export %d" % (
                " (gzip)" if tag else "", url, got, got / M, want), flush=True)
        self.clear()
        rounds = []
        for r in range(a.rounds):
            line = []
            ratios = {}
            for tag, extra in variants:
                exp, loc, put = steps(tag, extra)
                seq = [exp, loc, put] if r % 2 == 0 else [loc, put, exp]
                T = {}
                for key, argv in seq:
                    T[key] = self.timed(key, argv)
                    if key.startswith("s3") or key.startswith("put"):
                        self.clear()
                e, lo, pu = T["s3" + tag], T["local" + tag], T["put" + tag]
                ratios[tag] = (e / pu, e / (lo + pu))
                line.append("%sexport->s3 %.2f s, local export %.2f s, s3cmd put %.2f s -> %.2fx put, %.2fx local+put"
                            % ("gzip: " if tag else "", e, lo, pu, ratios[tag][0], ratios[tag][1]))
            rounds.append(ratios)
            print("  round %d (%s first, load %s): %s" % (r + 1, "export->s3" if r % 2 == 0 else "local+put",
                                                        loadavg(), "; ".join(line)), flush=True)
        print()
        print("  %-46s %8s  %-13s %9s %8s %9s" % ("a) median of %d rounds" % a.rounds, "median s", "min-max s",
                                                  "peak RSS", "CPU s", "server s"))
        labels = {"s3": "export web -o s3://B/K", "local": "export web -o local.xva (fsync)",
                  "put": "s3cmd put local.xva s3://B/K2",
                  "s3gz": "export --compress gzip -o s3://B/K", "localgz": "export --compress gzip -o local",
                  "putgz": "s3cmd put local-gz.xva"}
        for tag, _ in variants:
            for k in ("s3" + tag, "local" + tag, "put" + tag):
                v = self.times[k]
                print("  %-46s %8.2f  %5.2f-%-7.2f %5.1f MiB %8.2f %9.2f" % (
                    labels[k], statistics.median(v), min(v), max(v), self.rss[k] / 1024,
                    statistics.median(self.cpu[k]), statistics.median(self.server[k])))
        for tag, _ in variants:
            r1 = statistics.median(x[tag][0] for x in rounds)
            r2 = statistics.median(x[tag][1] for x in rounds)
            name = "export --compress gzip" if tag else "export"
            print("  %s->s3 / s3cmd put alone: %.2fx (target <= 1.0: %s; rounds %s)"
                  % (name, r1, "ok" if r1 <= 1.0 else "MISSED",
                     ", ".join("%.2f" % x[tag][0] for x in rounds)))
            print("  %s->s3 / (local export + s3cmd put): %.2fx (rounds %s)"
                  % (name, r2, ", ".join("%.2f" % x[tag][1] for x in rounds)))
        for p in local.values():
            if os.path.exists(p):
                os.unlink(p)
        self.sp(store, "vm", "destroy", "web")

    # ------------------------------------------------------------ b) peak RSS, 16 GiB disk
    def part_b(self):
        a = self.a
        store = os.path.join(self.dir, "store")
        t0 = time.perf_counter()
        self.make_vm(store, "big", a.big_gib * G, a.big_data_mib * M)
        print("\nb) VM 'big': %d GiB virtual, %d MiB written; set up in %.1f s"
              % (a.big_gib, a.big_data_mib, time.perf_counter() - t0), flush=True)
        url = "s3://%s/big.xva" % BUCKET
        cases = [("default", [], PART_DEFAULT_MIB, JOBS_DEFAULT),
                 ("jobs 8, part 64M", ["--jobs", "8", "--part-size", "64M"], 64, 8)]
        results = []
        for i, (label, extra, part, jobs) in enumerate(cases):
            key = "big%d" % i
            dt = self.timed(key, [self.exe, "--store", store, "-q", "export", "big", "-o", url, "--force"] + extra)
            size = self.object_size("big.xva")
            bound = RSS_BASE_MIB + part * (jobs + 1)
            results.append((label, dt, size, self.rss[key] / 1024, bound))
            print("  export -o s3:// (%s): %.2f s (CPU %.1f s, server %.1f s), object %.1f MiB, %.1f MiB/s,"
                  " peak RSS %.1f MiB (bound %d = %d + %d x %d: %s); load %s"
                  % (label, dt, self.cpu[key][-1], self.server[key][-1], size / M, size / M / dt,
                     self.rss[key] / 1024, bound, RSS_BASE_MIB, part, jobs + 1,
                     "ok" if self.rss[key] / 1024 <= bound else "MISSED", loadavg()), flush=True)
            if i + 1 < len(cases):
                self.clear()
        if not a.no_import:
            dt = self.timed("bigimp", [self.exe, "--store", store, "-q", "import", url, "--name", "big-imp"])
            bound = RSS_BASE_MIB + GET_CHUNK_MIB * (JOBS_DEFAULT + 1)
            print("  import s3:// (default --jobs): %.2f s, peak RSS %.1f MiB (64 + %d MiB GETs x %d = %d: %s); load %s"
                  % (dt, self.rss["bigimp"] / 1024, GET_CHUNK_MIB, JOBS_DEFAULT + 1, bound,
                     "ok" if self.rss["bigimp"] / 1024 <= bound else "MISSED", loadavg()), flush=True)
            self.sp(store, "vm", "destroy", "big-imp")
        self.clear()
        self.sp(store, "vm", "destroy", "big")

    # ------------------------------------------------------------ c) batch of 8
    def has_batch(self):
        r = self.run([self.exe, "export", "--help"], ok=(0, 1, 2))
        return "--parallel" in r.stdout + r.stderr

    def part_c(self):
        a = self.a
        if not self.has_batch():
            print("\nc) SKIPPED: %s has no batch form (`export --help` lists no --parallel); run this part again"
                  " after the batch branch is merged" % a.snapport, flush=True)
            return
        store = os.path.join(self.dir, "batch-store")
        names = ["vm%d" % (i + 1) for i in range(a.vms)]
        t0 = time.perf_counter()
        for n in names:
            self.make_vm(store, n, 2 * a.vm_mib * M, a.vm_mib * M)
        print("\nc) %d VMs of %d MiB virtual, %d MiB written each (own store); set up in %.1f s"
              % (a.vms, 2 * a.vm_mib, a.vm_mib, time.perf_counter() - t0), flush=True)
        jobs = ["--jobs", str(a.s3_jobs)] if a.s3_jobs else []
        print("  each upload with %s" % ("--jobs %d" % a.s3_jobs if a.s3_jobs else "the default --jobs"), flush=True)
        seq = " && ".join("%s --store %s -q export %s -o s3://%s/seq/%s.xva %s"
                          % (self.exe, store, n, BUCKET, n, " ".join(jobs)) for n in names)
        batch = [self.exe, "--store", store, "-q", "export", "--all", "-o", "s3://%s/batch/" % BUCKET, "-j", "2"] + jobs
        r = self.run(batch, ok=(0, 2))
        if r.returncode == 2:
            print("  SKIPPED: the batch form was refused: %s" % r.stderr.strip().splitlines()[-1], flush=True)
            return
        listed = self.s3cmd("ls", "s3://%s/batch/" % BUCKET).stdout
        got = sorted(l.split("/")[-1] for l in listed.splitlines() if l.strip())
        if len(got) != a.vms or not all(g.endswith(".xva") for g in got):
            die("the batch wrote %s under s3://%s/batch/, expected %d .xva objects" % (got, BUCKET, a.vms))
        print("  check: the batch wrote %s" % ", ".join(got), flush=True)
        self.clear()
        ratios = []
        for rnd in range(a.rounds):
            steps = [("seq", ["bash", "-c", seq]), ("batch", batch)]
            if rnd % 2:
                steps.reverse()
            T = {}
            for key, argv in steps:
                T[key] = self.timed(key, argv)
                self.clear()
            ratios.append(T["batch"] / T["seq"])
            print("  round %d (load %s): %d exports one after another %.2f s, export --all -j 2 %.2f s -> %.2fx"
                  % (rnd + 1, loadavg(), a.vms, T["seq"], T["batch"], ratios[-1]), flush=True)
        m = statistics.median(ratios)
        print("  batch -j 2 / one after another: %.2fx (target < 1.0: %s); peak RSS batch %.1f MiB"
              % (m, "ok" if m < 1.0 else "MISSED", self.rss["batch"] / 1024), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--snapport", default=os.environ.get("SNAPPORT", os.path.join(ROOT, "build", "snapport")))
    ap.add_argument("--dir", default="/var/tmp/bench_s3")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="small sizes, 2 rounds (a smoke run)")
    ap.add_argument("--only", default="a,b,c", help="parts to run, e.g. a,b")
    ap.add_argument("--data-mib", type=int, default=1024, help="a) MiB written on the 2 GiB disk")
    ap.add_argument("--big-gib", type=int, default=16, help="b) virtual size")
    ap.add_argument("--big-data-mib", type=int, default=3072, help="b) MiB written on it")
    ap.add_argument("--vms", type=int, default=8)
    ap.add_argument("--vm-mib", type=int, default=256, help="c) MiB written per VM")
    ap.add_argument("--s3-jobs", type=int, default=0, help="c) each upload's --jobs (default: snapport's)")
    ap.add_argument("--memstore-gib", type=int, default=8, help="the OSD's RAM cap")
    ap.add_argument("--no-gzip", action="store_true", help="a) without the --compress gzip variant")
    ap.add_argument("--no-import", action="store_true", help="b) without the import")
    ap.add_argument("--keep", action="store_true", help="leave DIR in place")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.data_mib, a.big_data_mib, a.vm_mib = 2, 256, 512, 64
    parts = set(a.only.split(","))
    for tool in ("s3cmd", "/usr/bin/time"):
        if shutil.which(tool) is None:
            die("%s is missing (apt-get install s3cmd time)" % tool)
    if ceph_rgw.missing():
        die("not installed: %s (scripts/setup.sh installs the S3 group)" % ", ".join(ceph_rgw.missing()))
    ceph_rgw.MEMSTORE_BYTES = a.memstore_gib * G
    shutil.rmtree(a.dir, ignore_errors=True)
    os.makedirs(a.dir)
    try:
        shutil.copy2(a.snapport, os.path.join(a.dir, "snapport"))
        with ceph_rgw.Cluster(a.dir) as s3:
            b = Bench(a, s3)
            b.write_s3cfg()
            b.s3cmd("mb", "s3://" + BUCKET)
            print("snapport S3 bench, %s, %d cores, %.0f GiB RAM, load %s at start; %d rounds"
                  % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.cpu_count(),
                     os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / G, loadavg(), a.rounds))
            print("  snapport %s (sha256 %s...); %s; Ceph radosgw %s, memstore OSD (cap %d GiB), started in %.1f s"
                  % (a.snapport, sha(b.exe), b.run(["s3cmd", "--version"]).stdout.strip(),
                     b.run(["radosgw", "--version"]).stdout.split()[2], a.memstore_gib, s3.start_seconds),
                  flush=True)
            if "a" in parts:
                b.part_a()
            if "b" in parts:
                b.part_b()
            if "c" in parts:
                b.part_c()
            print("\nload %s at the end" % loadavg())
    finally:
        if not a.keep:
            shutil.rmtree(a.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
