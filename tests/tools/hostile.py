"""hostile: building blocks for hostile archives and disks, independent of
snapport (tests/e2e/test_hostile.py, test_faults.py, test_ova_bad.py).

  - tar headers written byte by byte (any type, any size field: octal,
    12 octal digits without terminator, GNU base-256, or a pax 'x' record),
    so that a header can claim what python's tarfile refuses to write;
  - compression bombs: a gzip stream (full-flush deflate blocks repeated)
    and a zstd frame of RLE blocks, each a few KiB to a few MiB that expand
    to GiBs, made without ever holding the expansion;
  - a streamOptimized VMDK's layout (markers), to aim damage at a grain,
    grain table or directory;
  - running a command with its time and peak RSS (os.wait4).
"""

import os
import signal
import struct
import subprocess
import threading
import time
import zlib

import sptest as T

SECTOR = 512
BLOCK = 512

# ---------------------------------------------------------------- tar


def size_field(size, enc="octal"):
    """The 12-byte size field: 'octal' (11 digits + NUL), 'octal12' (12
    digits, no terminator, as GNU tar writes up to 64 GiB), 'b256' (GNU
    base-256: 0x80 then 11 big-endian bytes; a negative size as two's
    complement with 0xff first)."""
    if enc == "octal":
        s = b"%011o" % size
        if len(s) != 11:
            raise ValueError("size %d does not fit 11 octal digits" % size)
        return s + b"\0"
    if enc == "octal12":
        s = b"%012o" % size
        if len(s) != 12:
            raise ValueError("size %d does not fit 12 octal digits" % size)
        return s
    if enc == "b256":
        if size >= 0:
            return b"\x80" + size.to_bytes(11, "big")
        return (size & ((1 << 96) - 1)).to_bytes(12, "big")
    raise ValueError(enc)


def header(name, size=0, typ=b"0", linkname="", mode=0o644, enc="octal", devmajor=0, devminor=0, mtime=0):
    """One ustar header block (512 bytes) with a correct checksum."""
    h = bytearray(BLOCK)
    nb = name.encode() if isinstance(name, str) else name
    if len(nb) > 100:
        raise ValueError("name too long for a plain ustar header: %r" % name)
    h[0:len(nb)] = nb
    h[100:108] = b"%07o\0" % mode
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = size_field(size, enc) if isinstance(size, int) else size
    h[136:148] = b"%011o\0" % mtime
    h[148:156] = b" " * 8
    h[156:157] = typ
    lb = linkname.encode()
    h[157:157 + len(lb)] = lb
    h[257:263] = b"ustar\0"
    h[263:265] = b"00"
    h[329:337] = b"%07o\0" % devmajor
    h[337:345] = b"%07o\0" % devminor
    h[148:156] = b"%06o\0 " % (sum(h) & 0o777777)
    return bytes(h)


def padded(data):
    return data + b"\0" * (-len(data) % BLOCK)


def member(name, data, **kw):
    """A regular member: header and padded data."""
    return header(name, len(data), **kw) + padded(data)


def pax_member(name, records, data=b"", size_in_header=None):
    """A pax extended header ('x') with records {key: value} before a
    regular member name whose ustar size field says size_in_header (default:
    len(data)), then data."""
    body = b""
    for k, v in records.items():
        rec = b" %s=%s\n" % (k.encode(), str(v).encode())
        n = len(rec)
        while len(b"%d" % n) + len(rec) != n:
            n = len(b"%d" % n) + len(rec)
        body += b"%d" % n + rec
    out = header("PaxHeaders/" + name[-80:], len(body), typ=b"x") + padded(body)
    hsize = len(data) if size_in_header is None else size_in_header
    return out + header(name, hsize) + padded(data)


def tar_end():
    return b"\0" * (2 * BLOCK)


def split_tar(raw):
    """[(name, data)] of a plain tar (regular members only; test setup)."""
    out, off = [], 0
    while off + BLOCK <= len(raw):
        h = raw[off:off + BLOCK]
        if h == b"\0" * BLOCK:
            break
        name = h[0:100].split(b"\0")[0].decode()
        prefix = h[345:500].split(b"\0")[0].decode()
        if prefix:
            name = prefix + "/" + name
        sf = h[124:136]
        size = int.from_bytes(sf[1:], "big") if sf[0] & 0x80 else int(sf.split(b"\0")[0].strip() or b"0", 8)
        data = raw[off + BLOCK:off + BLOCK + size]
        out.append((name, data))
        off += BLOCK + size + (-size % BLOCK)
    return out


# ---------------------------------------------------------------- bombs

def gzip_zeros(prefix, zeros, suffix=b"", valid_trailer=False):
    """A gzip stream of prefix, then `zeros` zero bytes (a multiple of 1
    MiB), then suffix. The zeros are one full-flush deflate chunk of 1 MiB
    repeated: about 1 KiB per MiB, the most deflate can do. The trailer's
    CRC is right only with valid_trailer (it costs a pass over the zeros);
    a reader that stops early never sees it."""
    assert zeros % (1 << 20) == 0
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    chunk = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    tail = c.compress(suffix) + c.flush(zlib.Z_FINISH)
    n = zeros >> 20
    crc = 0
    if valid_trailer:
        crc = zlib.crc32(prefix)
        z = bytes(1 << 20)
        for _ in range(n):
            crc = zlib.crc32(z, crc)
        crc = zlib.crc32(suffix, crc)
    size = (len(prefix) + zeros + len(suffix)) & 0xFFFFFFFF
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + head + chunk * n + tail +
            struct.pack("<II", crc & 0xFFFFFFFF, size))


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZSTD_BLOCK_MAX = 128 * 1024


def _zstd_block(last, btype, size, payload):
    v = (1 if last else 0) | (btype << 1) | (size << 3)
    return v.to_bytes(3, "little") + payload


def zstd_frame(chunks):
    """A zstd frame (no content size, no checksum, single segment off,
    window 128 KiB) of chunks: ("raw", bytes) stored as raw blocks, or
    ("zeros", n) as RLE blocks of a zero byte (4 bytes per 128 KiB)."""
    blocks = []
    for kind, v in chunks:
        if kind == "raw":
            for i in range(0, len(v), ZSTD_BLOCK_MAX):
                part = v[i:i + ZSTD_BLOCK_MAX]
                blocks.append((0, len(part), part))
        else:
            n = v
            while n > 0:
                k = min(n, ZSTD_BLOCK_MAX)
                blocks.append((1, k, b"\0"))
                n -= k
    # frame header descriptor 0: no FCS, no single segment, no checksum, no
    # dictionary; window descriptor: exponent 7 -> 2^(10+7) = 128 KiB
    out = [ZSTD_MAGIC, b"\x00", bytes([7 << 3])]
    for i, (t, size, payload) in enumerate(blocks):
        out.append(_zstd_block(i == len(blocks) - 1, t, size, payload))
    return b"".join(out)


def zstd_check(data):
    """Decode with the zstd program (setup check that the frame is valid);
    returns the decoded length."""
    p = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, timeout=120)
    if p.returncode != 0:
        T.fatal("zstd -dc refused a hand-made frame (test setup): %s" % p.stderr.decode("utf-8", "replace"))
    return len(p.stdout)


# ---------------------------------------------------------------- VMDK stream parsing

def vmdk_layout(data):
    """Parse a streamOptimized VMDK: returns (header dict, [markers]) where a
    marker is (offset, kind, val, size) with kind 'grain' (val = lba, size =
    compressed bytes) or the metadata type 0 EOS, 1 GT, 2 GD, 3 footer
    (val = sectors of data after the marker sector)."""
    if data[:4] != b"KDMV":
        T.fatal("the exported disk is not a sparse VMDK (test setup)")
    ver, flags, cap, grain, doff, dsz, ngte, rgd, gd, over = struct.unpack_from("<IIQQQQIQQQ", data, 4)
    hdr = {"version": ver, "flags": flags, "capacity": cap, "grain": grain, "overhead": over, "gd": gd,
           "gtes": ngte}
    out = []
    off = over * SECTOR
    while off + 16 <= len(data):
        val, size = struct.unpack_from("<QI", data, off)
        if size:
            out.append((off, "grain", val, size))
            off += (12 + size + SECTOR - 1) // SECTOR * SECTOR
        else:
            (typ,) = struct.unpack_from("<I", data, off + 12)
            out.append((off, typ, val, 0))
            if typ == 0:
                break
            off += SECTOR + val * SECTOR
    if not out or out[-1][1] != 0:
        T.fatal("the exported VMDK has no end-of-stream marker (test setup): %s" % out[-3:])
    return hdr, out


# ---------------------------------------------------------------- nothing outside

def no_escape(what, abs_paths, evil, tmp, empty_dirs):
    """No file at abs_paths (removed if found), empty_dirs (the working
    folder, a spool folder) empty, nothing named after evil under tmp."""
    for p in abs_paths:
        if os.path.lexists(p):
            T.check(False, "%s: a file was written outside: %s" % (what, p))
            try:
                os.unlink(p)
            except OSError:
                pass
    for d in empty_dirs:
        T.check(os.listdir(d) == [], "%s: files appeared in %s: %s" % (what, d, os.listdir(d)))
    for root, dirs, files in os.walk(tmp):
        for n in files + dirs:
            if evil in n:
                T.check(False, "%s: a file named after a hostile member appeared: %s" % (what, os.path.join(root, n)))


# ---------------------------------------------------------------- running

class Run(T.Result):
    """A Result with the wall time (s) and the peak RSS (KiB) of the process."""

    def __init__(self, args, rc, out, err, timed_out, secs, rss_kib):
        super().__init__(args, rc, out, err, timed_out)
        self.secs, self.rss = secs, rss_kib

    def describe(self):
        return "%s (%.1f s, %d MiB peak RSS)" % (super().describe(), self.secs, self.rss // 1024)


def run_measured(argv, cwd=None, env=None, stdin_path=None, timeout=T.TIMEOUT):
    """Run argv; its exit status, output, wall time and peak RSS (GNU
    time's %M: wait4's figure for a process exec'd from the small `time`,
    not from this big interpreter, whose RSS Linux carries across exec).
    Killed (and timed_out) after timeout seconds."""
    argv = [str(a) for a in argv]
    rss_file = "%s/.rss-%d" % (os.environ.get("SP_TMP", "/tmp"), os.getpid())
    timed = ["/usr/bin/time", "-q", "-f", "%M", "-o", rss_file] + argv
    fin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    t0 = time.monotonic()
    p = subprocess.Popen(timed, stdin=fin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env,
                         start_new_session=True)
    killed = []

    def kill():
        """The whole group: `time` and the command under it."""
        killed.append(True)
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    timer = threading.Timer(timeout, kill)
    timer.start()
    outs = {}

    def drain(name, f):
        outs[name] = f.read()
    ts = [threading.Thread(target=drain, args=("out", p.stdout)), threading.Thread(target=drain, args=("err", p.stderr))]
    for t in ts:
        t.start()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    timer.cancel()
    for t in ts:
        t.join()
    if stdin_path:
        fin.close()
    secs = time.monotonic() - t0
    try:
        with open(rss_file) as f:
            rss = int(f.read().split()[-1])
        os.unlink(rss_file)
    except (OSError, ValueError, IndexError):
        rss = ru.ru_maxrss
    if p.returncode >= 128 and not killed:      # time passes a signal on as 128 + N
        p.returncode = -(p.returncode - 128)
    return Run(argv, p.returncode, outs["out"].decode("utf-8", "replace"), outs["err"].decode("utf-8", "replace"),
               bool(killed), secs, rss)
