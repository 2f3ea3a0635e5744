"""xvatest: helpers for the XVA tests (tests/e2e/test_xva_*.py,
tests/interop/test_xva_*.py).

Independent of snapport: a pure-Python XXH64 (to check .xxhash members),
reading an XVA's members (plain, gzip, zstd through the zstd program) and
writing tar archives member by member (to build damaged copies), a store
"fingerprint" (VMs, files under vdis/, store check) to show that a failed
import added nothing.
"""

import gzip
import hashlib
import io
import os
import re
import shutil
import struct
import subprocess
import tarfile

import sptest as T
import storetest as S

M = 1024 * 1024

# ---------------------------------------------------------------- XXH64

_P1 = 11400714785074694791
_P2 = 14029467366897019727
_P3 = 1609587929392839161
_P4 = 9650029242287828579
_P5 = 2870177450012600261
_MASK = (1 << 64) - 1


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & _MASK


def _round(acc, lane):
    acc = (acc + lane * _P2) & _MASK
    acc = _rotl(acc, 31)
    return (acc * _P1) & _MASK


def _merge(acc, val):
    acc ^= _round(0, val)
    return (acc * _P1 + _P4) & _MASK


def xxh64(data, seed=0):
    """XXH64 of bytes (the xxHash specification, seed 0 by default)."""
    n = len(data)
    p = 0
    if n >= 32:
        v1 = (seed + _P1 + _P2) & _MASK
        v2 = (seed + _P2) & _MASK
        v3 = seed & _MASK
        v4 = (seed - _P1) & _MASK
        nstripes = n // 32
        lanes = struct.unpack_from("<%dQ" % (nstripes * 4), data, 0)
        r, P1, P2, M64 = _rotl, _P1, _P2, _MASK
        for i in range(0, nstripes * 4, 4):
            v1 = (r((v1 + lanes[i] * P2) & M64, 31) * P1) & M64
            v2 = (r((v2 + lanes[i + 1] * P2) & M64, 31) * P1) & M64
            v3 = (r((v3 + lanes[i + 2] * P2) & M64, 31) * P1) & M64
            v4 = (r((v4 + lanes[i + 3] * P2) & M64, 31) * P1) & M64
        p = nstripes * 32
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _MASK
        h = _merge(h, v1)
        h = _merge(h, v2)
        h = _merge(h, v3)
        h = _merge(h, v4)
    else:
        h = (seed + _P5) & _MASK
    h = (h + n) & _MASK
    while p + 8 <= n:
        (lane,) = struct.unpack_from("<Q", data, p)
        h ^= _round(0, lane)
        h = (_rotl(h, 27) * _P1 + _P4) & _MASK
        p += 8
    if p + 4 <= n:
        (lane,) = struct.unpack_from("<I", data, p)
        h ^= (lane * _P1) & _MASK
        h = (_rotl(h, 23) * _P2 + _P3) & _MASK
        p += 4
    while p < n:
        h ^= (data[p] * _P5) & _MASK
        h = (_rotl(h, 11) * _P1) & _MASK
        p += 1
    h ^= h >> 33
    h = (h * _P2) & _MASK
    h ^= h >> 29
    h = (h * _P3) & _MASK
    h ^= h >> 32
    return h


def xxh64_hex(data):
    """As XAPI writes it: 16 uppercase hex digits."""
    return "%016X" % xxh64(data)


def xxh64_selftest():
    """The test vectors of the brief (reference/xva.md); abort if wrong."""
    if xxh64_hex(b"") != "EF46DB3751D8E999":
        T.fatal("pure-Python XXH64 of b'' is %s, expected EF46DB3751D8E999 (test tool bug)" % xxh64_hex(b""))
    z = xxh64_hex(bytes(M))
    if z != "87D2A1B6E1163EF1":
        T.fatal("pure-Python XXH64 of 1 MiB zeros is %s, expected 87D2A1B6E1163EF1 (test tool bug)" % z)


def sha1_hex(data):
    return hashlib.sha1(data).hexdigest()


# ---------------------------------------------------------------- reading

def decompress(path):
    """The tar bytes of an XVA file: plain, gzip or zstd (via the zstd program)."""
    raw = T.read_file(path)
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    if raw[:4] == b"\x28\xb5\x2f\xfd":
        if not shutil.which("zstd"):
            T.fatal("the zstd program is needed to read %s" % path)
        p = subprocess.run(["zstd", "-dc", path], capture_output=True, timeout=60)
        if p.returncode != 0:
            T.fatal("zstd -dc %s failed: %s" % (path, p.stderr.decode("utf-8", "replace")))
        return p.stdout
    return raw


class Member:
    """One tar member: name, data, tar type, header offset and data offset."""

    def __init__(self, name, data, type=tarfile.REGTYPE, mode=0o400, mtime=0, offset=0, offset_data=0,
                 linkname=""):
        self.name, self.data, self.type, self.mode, self.mtime = name, data, type, mode, mtime
        self.offset, self.offset_data, self.linkname = offset, offset_data, linkname

    def __repr__(self):
        return "Member(%r, %d bytes)" % (self.name, len(self.data))


def members(tar_bytes):
    """Every member of an (uncompressed) tar, in order."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as t:
        for ti in t:
            data = t.extractfile(ti).read() if ti.isreg() else b""
            out.append(Member(ti.name, data, ti.type, ti.mode, ti.mtime, ti.offset, ti.offset_data, ti.linkname))
    return out


def xva_members(path):
    return members(decompress(path))


# ---------------------------------------------------------------- writing

def tar_bytes(mems, end=True):
    """A ustar archive of mems (Member objects, in this order); end: the two
    zero blocks. Names are written as given (no normalisation)."""
    buf = io.BytesIO()
    t = tarfile.open(fileobj=buf, mode="w:", format=tarfile.USTAR_FORMAT)
    for m in mems:
        ti = tarfile.TarInfo(m.name)
        ti.type = m.type
        ti.mode = m.mode
        ti.mtime = m.mtime
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        ti.linkname = m.linkname
        if m.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
            ti.size = len(m.data)
            t.addfile(ti, io.BytesIO(m.data))
        else:
            ti.size = 0
            t.addfile(ti)
    # close() writes the end blocks and pads to a record; keep exactly two
    # zero blocks (as XAPI and xva-img do), or none when end is False
    data_end = t.offset
    t.close()
    raw = buf.getvalue()
    return raw[:data_end] + (b"\0" * 1024 if end else b"")


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def find(mems, name):
    for i, m in enumerate(mems):
        if m.name == name:
            return i
    raise KeyError(name)


# ---------------------------------------------------------------- ova.xml

def set_vdi_size(xml, old, new):
    """Replace a VDI virtual_size value (exactly one occurrence)."""
    pat = "<name>virtual_size</name><value>%d</value>" % old
    if xml.count(pat) != 1:
        T.fatal("ova.xml: expected one VDI with virtual_size %d, found %d" % (old, xml.count(pat)))
    return xml.replace(pat, "<name>virtual_size</name><value>%d</value>" % new)


# ---------------------------------------------------------------- store state

def fingerprint(st):
    """What a failed import must leave unchanged: the VMs, the files under
    vdis/ (names and contents), the names of the other store files, every
    catalog row."""
    vms = st.vms()
    vdir = os.path.join(st.dir, "vdis")
    files = {}
    for n in sorted(os.listdir(vdir)):
        files[n] = S.file_sha(os.path.join(vdir, n))
    others = sorted(k for k in st.files(include_catalog=False) if not k.startswith("vdis/"))
    return {"vms": vms, "vdis": files, "others": others, "catalog": st.catalog_dump()}


def diff_fingerprint(before, after):
    msgs = []
    if before["vms"] != after["vms"]:
        msgs.append("vm list changed: %s -> %s" % (sorted(before["vms"]), sorted(after["vms"])))
    added = sorted(set(after["vdis"]) - set(before["vdis"]))
    gone = sorted(set(before["vdis"]) - set(after["vdis"]))
    changed = sorted(k for k in before["vdis"] if k in after["vdis"] and before["vdis"][k] != after["vdis"][k])
    if before["others"] != after["others"]:
        msgs.append("store files outside vdis/ changed: %s -> %s" % (before["others"], after["others"]))
    if before["catalog"] != after["catalog"]:
        b, a = set(before["catalog"]), set(after["catalog"])
        msgs.append("catalog rows changed: removed %s, added %s" % (sorted(b - a)[:5], sorted(a - b)[:5]))
    if added:
        msgs.append("files added under vdis/: %s" % added)
    if gone:
        msgs.append("files removed from vdis/: %s" % gone)
    if changed:
        msgs.append("files changed under vdis/: %s" % changed)
    return msgs


NAME_RE = re.compile(r"^(Ref:\d+)/(\d{8})(\.xxhash|\.checksum)?$")
