"""Errors name each thing once (issue 12, part 7d): across many bad inputs
and every command that reads them, no error line names the same file or
member twice as a "X: " part (not "t.ova: d.vmdk: t.ova: d.vmdk: cut",
not "bad.vhd: damaged: bad.vhd: ...").

Inputs (all made here): an OVA, a plain, a gzip and a zstd XVA exported
from a VM of two disks, each cut at a dozen points (inside the first
header, the descriptor, a disk, its padding, the end blocks); damaged VHDs
(footer checksum, dynamic header cookie, a BAT entry past the end, a
missing parent, a parent with another UUID); a qcow2 whose backing file
loops to itself and one read alone under format=raw; a streamOptimized
VMDK cut in its grains.
Commands: verify, info, import, convert (file and stdin for archives);
disk info, check, flatten, compare; vm create from an xl.cfg naming the
image. Each failure: one "snapport: " line on stderr (disk check: one, its
findings on stdout, each also named once), exit 1, 2 or 3, no crash.
Archives cut short of their end blocks must fail; what a reader tolerates
(a cut inside the end blocks, a VHD footer with a good copy at offset 0)
may succeed, the test is about how refusals are worded.
"""

import gzip
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402

M = S.M
EXE = TMP = ST = None
CHECKED = [0]


def p(name):
    return os.path.join(TMP, name)


def run(args, stdin=None):
    f = open(stdin, "rb") if stdin else subprocess.DEVNULL
    try:
        r = S.run_env([EXE, "--store", ST.dir] + [str(a) for a in args], timeout=60) if not stdin else None
        if stdin:
            e = dict(os.environ)
            e.pop("SNAPPORT_STORE", None)
            pr = subprocess.run([EXE, "--store", ST.dir] + [str(a) for a in args], stdin=f, capture_output=True,
                                timeout=60, env=e)
            r = T.Result(args, pr.returncode, pr.stdout.decode("utf-8", "replace"),
                         pr.stderr.decode("utf-8", "replace"))
        return r
    finally:
        if stdin:
            f.close()


def expect(args, what, stdin=None, may_pass=False):
    """may_pass: an input a reader may tolerate (exit 0); compare's exit 1
    without a message is its verdict, not an error."""
    r = run(args, stdin)
    CHECKED[0] += 1
    if not T.check(not r.crashed(), "%s: crashed or hung: %s" % (what, r.describe())):
        return
    if r.rc == 0:
        T.check(may_pass, "%s: exit 0: %s" % (what, r.describe()))
        return
    if args[:2] == ["disk", "compare"] and r.rc == 1 and not r.err:
        return
    T.check(r.rc in (1, 2, 3), "%s: exit %s: %s" % (what, r.rc, r.describe()))
    lines = S.error_lines(r)
    if T.check(len(lines) == 1 and lines[0].startswith("snapport: "),
               "%s: expected one 'snapport: ' line, got %r" % (what, r.err)):
        T.named_once(lines[0], what)
    if args[:2] == ["disk", "check"]:
        for line in r.out.splitlines():
            T.named_once(line, what + " (finding)")


# ---------------------------------------------------------------- archives

def make_archives():
    d = p("src")
    os.makedirs(d)
    a = bytearray(4 * M)
    a[:M] = os.urandom(M)
    b = bytearray(2 * M)
    b[M:M + 4096] = b"\xa5" * 4096
    T.write_file(os.path.join(d, "a.raw"), bytes(a))
    T.write_file(os.path.join(d, "b.raw"), bytes(b))
    with open(os.path.join(d, "vm.cfg"), "w") as f:
        f.write("name = 'web01'\ntype = 'hvm'\nmemory = 256\nvcpus = 1\n"
                "disk = [ 'format=raw, vdev=xvda, target=a.raw', 'format=raw, vdev=xvdb, target=b.raw' ]\n")
    ST.ok("vm", "create", "--config", os.path.join(d, "vm.cfg"))
    out = {}
    for name, extra in (("w.ova", ()), ("w.xva", ()), ("wg.xva", ("--compress", "gzip")),
                        ("wz.xva", ("--compress", "zstd"))):
        ST.ok("export", "web01", "-o", p(name), *extra, timeout=60)
        out[name] = T.read_file(p(name))
    return out


def cut_points(size):
    pts = {100, 511, 512, 700, 1024, 3000, 6000, 20000, size // 3, size // 2, size - 3000, size - 1024, size - 600,
           size - 1}
    return sorted(x for x in pts if 0 < x < size)


def case_archives(archives):
    n = 0
    for name, data in archives.items():
        ext = name.rsplit(".", 1)[1]
        for cut in cut_points(len(data)):
            path = p("cut-%d-%s" % (cut, name))
            T.write_file(path, data[:cut])
            label = "%s cut at %d" % (name, cut)
            # cut in the two zero blocks of the end: a tar reader may accept it
            # (GNU tar does); what matters here is how a refusal is worded
            end = ext == "ova" or name == "w.xva"
            mp = end and cut >= len(data) - 1024
            expect(["verify", path], "verify " + label, may_pass=mp)
            expect(["info", path], "info " + label, may_pass=mp)
            n += 1
            expect(["import", path, "--name", "imp%d" % n], "import " + label, may_pass=mp)
            other = "ova" if ext == "xva" else "xva"
            expect(["convert", path, p("conv.%s" % other), "--force"], "convert " + label, may_pass=mp)
            expect(["verify", "-"], "verify - < " + label, stdin=path, may_pass=mp)
            expect(["import", "-", "--name", "imps%d" % n], "import - < " + label, stdin=path, may_pass=mp)
            os.unlink(path)


# ---------------------------------------------------------------- disk images

def vhd_checksum(buf):
    return (~sum(buf) & 0xffffffff)


def fix_footer(f):
    f = bytearray(f)
    f[64:68] = b"\0\0\0\0"
    f[64:68] = struct.pack(">I", vhd_checksum(f))
    return bytes(f)


def patch(src, dst, fn):
    data = bytearray(T.read_file(src))
    fn(data)
    T.write_file(dst, bytes(data))
    return dst


def make_vhd(name, size="4M"):
    path = p(name)
    ST.ok("disk", "create", path, "--size", size)
    T.sp_ok(EXE, "disk", "write", path, "--offset", "0", "--pattern", "0x42", "--length", str(3 * M))
    return path


def bad_disks():
    good = make_vhd("good.vhd")
    data = T.read_file(good)
    bat_off = struct.unpack(">Q", data[512 + 16:512 + 24])[0]
    out = []
    out.append(patch(good, p("ftr_sum.vhd"), lambda d: d.__setitem__(slice(len(d) - 512 + 64, len(d) - 512 + 68),
                                                                         b"\x12\x34\x56\x78")))
    out.append(patch(good, p("hdr_cookie.vhd"), lambda d: d.__setitem__(slice(512, 520), b"xxxxxxxx")))

    def bat_eof(d):
        d[bat_off + 4:bat_off + 8] = struct.pack(">I", (len(d) // 512) + 1000)
    out.append(patch(good, p("bat_eof.vhd"), bat_eof))
    base = make_vhd("base.vhd")
    child = p("child.vhd")
    ST.ok("disk", "create", child, "--parent", base)
    os.rename(base, p("base-moved.vhd"))
    out.append(child)
    base2 = make_vhd("base2.vhd")
    child2 = p("child2.vhd")
    ST.ok("disk", "create", child2, "--parent", base2)
    os.unlink(base2)
    make_vhd("base2.vhd")                         # same name, another UUID
    out.append(child2)
    # qcow2: a backing loop, and a backing file under format=raw
    if T.run(["which", "qemu-img"]).rc == 0:
        loop = p("loop.qcow2")
        T.run(["qemu-img", "create", "-q", "-f", "qcow2", loop, "4M"])
        T.run(["qemu-img", "rebase", "-q", "-u", "-f", "qcow2", "-F", "qcow2", "-b", loop, loop])
        out.append(loop)
        qb = p("qbase.qcow2")
        T.run(["qemu-img", "create", "-q", "-f", "qcow2", qb, "4M"])
        qtop = p("qtop.qcow2")
        T.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", qb, qtop])
        out.append(qtop)
        stream = p("s.vmdk")
        src = p("s.raw")
        T.write_file(src, os.urandom(2 * M))
        T.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", src, stream])
        sd = T.read_file(stream)
        out.append(T.write_file(p("s-cut.vmdk"), sd[:len(sd) // 2]))
    return out


def case_disks():
    ref = p("ref.raw")
    T.write_file(ref, b"\0" * (4 * M))
    for img in bad_disks():
        n = os.path.basename(img)
        for args in (["disk", "info", img], ["disk", "check", img], ["disk", "flatten", img, "-o", p("o.raw")],
                     ["disk", "flatten", img, "-o", p("o.vhd")], ["disk", "compare", img, ref],
                     ["disk", "compare", ref, img], ["convert", img, p("o.xva"), "--force"]):
            # some damage a reader tolerates (a footer with a good copy at
            # offset 0): exit 0 is fine, a refusal must name each thing once
            expect(args, "%s %s" % (" ".join(args[:2]), n), may_pass=True)
        for fmt in ("raw", "vhd", "qcow2"):
            cfg = p("vm-%s-%s.cfg" % (n, fmt))
            with open(cfg, "w") as f:
                f.write("name = 'bad-%s-%s'\ntype = 'hvm'\nmemory = 256\nvcpus = 1\n"
                        "disk = [ 'format=%s, vdev=xvda, target=%s' ]\n" % (n, fmt, fmt, img))
            expect(["vm", "create", "--config", cfg], "vm create %s format=%s" % (n, fmt), may_pass=True)


def main():
    global EXE, TMP, ST
    EXE, TMP = T.setup()
    ST = S.Store(EXE, p("store"), p("scratch"))
    case_archives(make_archives())
    case_disks()
    T.check(CHECKED[0] > 300, "only %d commands ran" % CHECKED[0])
    T.finish("test_error_names")


if __name__ == "__main__":
    main()
