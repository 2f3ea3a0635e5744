"""ceph_rgw: a throwaway single-node Ceph + radosgw on 127.0.0.1 for the S3 tests.

    with ceph_rgw.Cluster(tmpdir) as s3:      # starts mon, a memstore OSD, rgw
        s3.endpoint, s3.access_key, s3.secret_key, s3.region
        s3.tls_endpoint, s3.ca_file               # the same rgw over TLS (a self-signed
                                                  # certificate for 127.0.0.1)
        s3.s3cmd("mb", "s3://b")               # s3cmd against it
        s3.stop_rgw(); s3.start_rgw_again()       # radosgw alone, same ports

Everything lives under one fresh directory (config, keyrings, mon store, OSD,
logs, sockets); ports are picked here (mon, rgw) and checked free before use:
radosgw does not exit when its port is taken, so the readiness check also
lists buckets with this run's own random keys (a stranger on the port cannot
answer that). No mgr (not needed for S3 I/O). Stop: SIGTERM to rgw, OSD, mon,
SIGKILL after STOP_TIMEOUT, then the directory goes. stop() runs from the with
block, from atexit and on SIGTERM/SIGINT of the test, so a failing test
leaves no daemon behind.

Run as a program it starts a cluster, prints the endpoint and keys as shell
assignments and waits for a signal (for trying things by hand):
    python3 tests/tools/ceph_rgw.py [DIR]
See ../shared/reference/ceph-s3.md for the facts behind the settings.
"""

import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

PACKAGES = ("ceph-mon", "ceph-osd", "radosgw", "ceph-common", "s3cmd", "openssl")
PROGRAMS = ("ceph-mon", "ceph-osd", "radosgw", "ceph", "ceph-authtool", "monmaptool", "radosgw-admin", "s3cmd", "openssl")
RGW_POOLS = (".rgw.root", "default.rgw.log", "default.rgw.control", "default.rgw.meta",
             "default.rgw.buckets.index", "default.rgw.buckets.non-ec", "default.rgw.buckets.data")
START_TIMEOUT = 90   # seconds for each daemon to become ready (2 slow cores)
STOP_TIMEOUT = 20    # SIGTERM -> SIGKILL (rgw can take 8 s to exit)
MEMSTORE_BYTES = 1 << 30  # the OSD's RAM cap; the tests write a few MiB
REGION = "us-east-1"


def missing():
    """Names of the programs this needs that are not installed."""
    return [p for p in PROGRAMS if shutil.which(p) is None]


def require():
    """For a test: if something is missing, exit 77 (skip) outside CI and
    fail in CI (scripts/setup.sh installs the S3 group there)."""
    absent = missing()
    if not absent:
        return
    msg = "not installed: %s (Debian packages %s; scripts/setup.sh installs them)" % (
        ", ".join(absent), " ".join(PACKAGES))
    if os.environ.get("CI") == "true":
        print("FAIL: CI: " + msg, file=sys.stderr)
        sys.exit(1)
    print("SKIP: " + msg)
    sys.exit(77)


def free_port():
    """A port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port, reuse=False):
    """Nobody listens on port (reuse: connections of a stopped listener
    still in TIME_WAIT do not count, as for radosgw's SO_REUSEADDR bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        if reuse:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class ClusterError(Exception):
    pass


class Cluster:
    def __init__(self, parent=None):
        self.dir = tempfile.mkdtemp(prefix="ceph-rgw-", dir=parent)
        self.conf = os.path.join(self.dir, "ceph.conf")
        self.procs = []  # (name, Popen), started order
        self.access_key = "SP" + secrets.token_hex(9).upper()
        self.secret_key = secrets.token_hex(20)
        self.region = REGION
        self.endpoint = self.tls_endpoint = None
        self.ca_file = None
        self.start_seconds = self.stop_seconds = None
        self._stopped = False

    # ------------------------------------------------------------ helpers
    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def env(self):
        e = dict(os.environ)
        e["CEPH_CONF"] = self.conf
        return e

    def run(self, *args, timeout=60, check=True):
        p = subprocess.run([str(a) for a in args], capture_output=True, timeout=timeout, env=self.env())
        if check and p.returncode != 0:
            raise ClusterError("%s: exit %d: %s" % (" ".join(map(str, args)), p.returncode,
                                                    p.stderr.decode("utf-8", "replace")[-600:]))
        return p.stdout.decode("utf-8", "replace")

    def ceph(self, *args, timeout=60):
        return self.run("ceph", "-c", self.conf, "--connect-timeout", "30", *args, timeout=timeout)

    def spawn(self, name, *args):
        log = open(self.path(name + ".out"), "wb")
        p = subprocess.Popen([str(a) for a in args], stdout=log, stderr=subprocess.STDOUT, env=self.env(),
                             start_new_session=True)
        log.close()
        self.procs.append((name, p))
        return p

    def wait(self, what, probe, proc=None):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise ClusterError("%s exited with %s while starting; see %s" % (what, proc.returncode, self.dir))
            try:
                if probe():
                    return
            except (OSError, subprocess.SubprocessError, ClusterError, ValueError):
                pass
            time.sleep(0.2)
        raise ClusterError("%s not ready after %d s; see %s" % (what, START_TIMEOUT, self.dir))

    # ------------------------------------------------------------ start
    def make_cert(self):
        """A self-signed certificate for 127.0.0.1 (rgw's TLS endpoint)."""
        self.ca_file = self.path("rgw-cert.pem")
        self.run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                 "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", self.path("rgw-key.pem"),
                 "-out", self.ca_file)

    def write_conf(self, mon_port, rgw_port, tls_port):
        d = self.dir
        self.fsid = str(uuid.uuid4())
        with open(self.conf, "w") as f:
            f.write("""[global]
fsid = %(fsid)s
mon host = v2:127.0.0.1:%(mon)d
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = %(d)s/$name.keyring
run dir = %(d)s/run
admin socket = %(d)s/run/$name.asok
log file = %(d)s/log/$name.log
crash dir = %(d)s/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
paxos propose interval = 0.05
mon data = %(d)s/mon/$name
osd data = %(d)s/osd/$name
osd objectstore = memstore
memstore device bytes = %(mem)d
rgw data = %(d)s/rgw/$name
rgw frontends = beast endpoint=127.0.0.1:%(rgw)d ssl_endpoint=127.0.0.1:%(tls)d ssl_certificate=%(d)s/rgw-cert.pem ssl_private_key=%(d)s/rgw-key.pem
rgw gc obj min wait = 30
rgw gc processor period = 30
""" % {"fsid": self.fsid, "mon": mon_port, "rgw": rgw_port, "tls": tls_port, "d": d, "mem": MEMSTORE_BYTES})
        for sub in ("run", "log", "crash", "mon", "osd/osd.0", "rgw/client.rgw.a"):
            os.makedirs(self.path(sub), exist_ok=True)

    def start_mon(self, mon_port):
        mk = self.path("mon.keyring")
        admin = self.path("client.admin.keyring")
        self.run("ceph-authtool", "--create-keyring", mk, "--gen-key", "-n", "mon.", "--cap", "mon", "allow *")
        self.run("ceph-authtool", "--create-keyring", admin, "--gen-key", "-n", "client.admin",
                 "--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mds", "allow *",
                 "--cap", "mgr", "allow *")
        self.run("ceph-authtool", mk, "--import-keyring", admin)
        monmap = self.path("monmap")
        self.run("monmaptool", "--create", "--fsid", self.fsid, "--addv", "a",
                 "[v2:127.0.0.1:%d]" % mon_port, monmap)
        self.run("ceph-mon", "-c", self.conf, "--mkfs", "-i", "a", "--monmap", monmap, "--keyring", mk)
        p = self.spawn("mon", "ceph-mon", "-c", self.conf, "-i", "a", "-f")
        self.wait("ceph-mon", lambda: self.ceph("mon", "stat", timeout=10) is not None, p)

    def create_pools(self):
        """radosgw's pools up front: lazily each costs ~2 s at first start and
        first write. One ceph process reads all commands from stdin (a
        process per command costs ~1 s of CPU each)."""
        cmds = "".join("osd pool create %s 8 8\nosd pool application enable %s rgw\n" % (p, p) for p in RGW_POOLS)
        p = subprocess.run(["ceph", "-c", self.conf], input=cmds.encode(), capture_output=True, timeout=120,
                           env=self.env())
        out = self.ceph("osd", "pool", "ls")
        absent = [x for x in RGW_POOLS if x not in out.split()]
        if p.returncode != 0 or absent:
            raise ClusterError("creating pools (%s absent): %s" % (", ".join(absent) or "none",
                                                                  p.stderr.decode("utf-8", "replace")[-400:]))

    def start_osd(self):
        osd_uuid = str(uuid.uuid4())
        key = self.run("ceph-authtool", "--gen-print-key").strip()
        secret = self.path("osd-secret.json")
        with open(secret, "w") as f:
            json.dump({"cephx_secret": key}, f)
        osd_id = self.ceph("osd", "new", osd_uuid, "-i", secret).strip()
        if osd_id != "0":
            raise ClusterError("ceph osd new returned id %r, expected 0" % osd_id)
        self.run("ceph-authtool", "--create-keyring", self.path("osd.0.keyring"), "--name", "osd.0",
                 "--add-key", key)
        self.run("ceph-osd", "-c", self.conf, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid)
        p = self.spawn("osd", "ceph-osd", "-c", self.conf, "-i", "0", "-f")

        def up():
            st = json.loads(self.ceph("osd", "stat", "--format", "json", timeout=10))
            return st.get("num_up_osds") == 1 and st.get("num_in_osds") == 1
        self.wait("ceph-osd", up, p)

    def start_rgw(self, rgw_port):
        self.run("ceph", "-c", self.conf, "auth", "get-or-create", "client.rgw.a", "mon", "allow rw",
                 "osd", "allow rwx", "-o", self.path("client.rgw.a.keyring"))
        self.endpoint = "http://127.0.0.1:%d" % rgw_port
        self.spawn_rgw()

    def spawn_rgw(self):
        p = self.spawn("rgw", "radosgw", "-c", self.conf, "-n", "client.rgw.a", "-f")

        def anonymous_list():
            with urllib.request.urlopen(self.endpoint + "/", timeout=5) as r:
                return b"ListAllMyBucketsResult" in r.read()
        self.wait("radosgw", anonymous_list, p)

    def rgw_ports(self):
        return [int(e.rsplit(":", 1)[1]) for e in (self.endpoint, self.tls_endpoint) if e]

    def stop_rgw(self, kill=False):
        """Stops radosgw alone (mon and the OSD stay, and the data with
        them): SIGTERM (SIGKILL after STOP_TIMEOUT), or SIGKILL at once with
        kill (a crash). Returns the seconds it took."""
        t0 = time.monotonic()
        rgw = [p for name, p in self.procs if name == "rgw" and p.poll() is None]
        for p in rgw:
            os.killpg(p.pid, signal.SIGKILL if kill else signal.SIGTERM)
        for p in rgw:
            try:
                p.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs = [(name, p) for name, p in self.procs if not (name == "rgw" and p in rgw)]
        return time.monotonic() - t0

    def start_rgw_again(self):
        """radosgw again after stop_rgw(), on the same ports (checked free:
        a stranger there would answer in its place). Returns the seconds
        until it answers."""
        t0 = time.monotonic()
        deadline = t0 + STOP_TIMEOUT
        while not all(port_is_free(p, reuse=True) for p in self.rgw_ports()):
            if time.monotonic() > deadline:
                raise ClusterError("radosgw's ports %s are still taken" % self.rgw_ports())
            time.sleep(0.1)
        self.spawn_rgw()
        return time.monotonic() - t0

    def create_user(self):
        self.run("radosgw-admin", "-c", self.conf, "user", "create", "--uid=test", "--display-name=test",
                 "--access-key=" + self.access_key, "--secret-key=" + self.secret_key, timeout=60)
        # Only our rgw knows this run's random keys: a stranger on the port fails here.
        out = self.s3cmd("ls")
        if out.strip():
            raise ClusterError("a fresh user already has buckets: %r (a stranger on %s?)" % (out, self.endpoint))

    def start(self):
        """Bring the cluster up; on any failure everything started is stopped."""
        t0 = time.monotonic()
        if missing():
            raise ClusterError("not installed: %s" % ", ".join(missing()))
        try:
            ports = set()
            while len(ports) < 3:
                ports.add(free_port())
            mon_port, rgw_port, tls_port = sorted(ports)
            self.make_cert()
            self.write_conf(mon_port, rgw_port, tls_port)
            self.start_mon(mon_port)
            self.create_pools()
            self.start_osd()
            for port in (rgw_port, tls_port):
                if not port_is_free(port):
                    raise ClusterError("port %d was taken before radosgw started" % port)
            self.start_rgw(rgw_port)
            self.tls_endpoint = "https://127.0.0.1:%d" % tls_port
            self.create_user()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    # ------------------------------------------------------------ use
    def s3cmd_args(self):
        host = self.endpoint.split("://", 1)[1]
        return ["s3cmd", "--no-ssl", "--host=" + host, "--host-bucket=" + host,
                "--access_key=" + self.access_key, "--secret_key=" + self.secret_key,
                "--region=" + self.region, "--config=/dev/null", "--no-check-certificate"]

    def s3cmd(self, *args, check=True, timeout=60):
        p = subprocess.run(self.s3cmd_args() + [str(a) for a in args], capture_output=True, timeout=timeout)
        if check and p.returncode != 0:
            raise ClusterError("s3cmd %s: exit %d: %s" % (" ".join(map(str, args)), p.returncode,
                                                          p.stderr.decode("utf-8", "replace")[-600:]))
        return p.stdout.decode("utf-8", "replace")

    def aws_env(self):
        """Environment for a client that takes credentials as S3 tools do."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_REGION": self.region, "AWS_ENDPOINT_URL": self.endpoint}

    def multipart_uploads(self, bucket):
        """The multipart uploads still open in bucket (lines of s3cmd multipart)."""
        lines = self.s3cmd("multipart", "s3://" + bucket).splitlines()
        # "s3://bucket/", "Initiated<TAB>Path<TAB>Id", then one line per upload
        head = [i for i, l in enumerate(lines) if l.startswith("Initiated")]
        if not head:
            raise ClusterError("s3cmd multipart: unexpected output %r" % lines)
        return [l for l in lines[head[0] + 1:] if l.strip()]

    # ------------------------------------------------------------ stop
    def stop(self):
        if self._stopped:
            return
        self._stopped = True
        t0 = time.monotonic()
        for _, p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + STOP_TIMEOUT
        for _, p in reversed(self.procs):
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        if os.environ.get("SP_KEEP_CEPH") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        self.stop_seconds = time.monotonic() - t0

    def __enter__(self):
        atexit.register(self.stop)
        _stop_on_signals()
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)


def _stop_on_signals():
    """SIGTERM (ctest's timeout) and SIGINT unwind the test, so finally and
    __exit__ stop the daemons."""
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _raise_exit)


def main():
    with Cluster(sys.argv[1] if len(sys.argv) > 1 else None) as s3:
        for k, v in s3.aws_env().items():
            print("%s=%s" % (k, v))
        print("# started in %.1f s; dir %s; Ctrl-C stops" % (s3.start_seconds, s3.dir), flush=True)
        try:
            signal.pause()
        except SystemExit:
            pass
    print("# stopped in %.1f s" % s3.stop_seconds)


if __name__ == "__main__":
    main()
