"""disk compare and disk compare --lenient against qemu-img compare's verdict
on the same pairs: qemu-img compare -s is strict (images of different sizes
differ), without -s it is lenient (the larger image's bytes past the
smaller's end must be zeros). snapport is strict by default.

Pairs (raw files written here, others made from them by qemu-img convert,
so the expected content never comes from snapport; qemu-img compare -s
also fails on a different allocation of the same bytes, which snapport's
content comparison does not look at, so -s decides only pairs of different
sizes):
  same        equal content, equal size
  zero_tail   B = A + 4 MiB of holes (sparse raw; a qcow2 and a VHD of it)
  zero_data   B = A + 4 MiB of zeros written as data (allocated)
  dirty_tail  B = A + a tail with one non-zero byte 3 MiB past A's end
  dirty_last  B's very last byte non-zero
  differ      equal size, one byte differs in the middle
  differ_big  A differs in the common part and B is larger
each in both orders (A B and B A). Expected exit and first offset: the
verdict of qemu-img compare (0 identical, 1 different), the offset the
byte-level comparison of the two raw contents written here gives.

Cost: a 64 GiB sparse raw and a 64 GiB dynamic VHD against a 1 MiB image,
--lenient, in well under the time reading 64 GiB takes (the extra part is
read through its extents: holes and unallocated blocks are not read).
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402

M = 1024 * 1024
EXE = TMP = None
BASE = 8 * M
TAIL = 4 * M
BOUND_SECS = 20      # 64 GiB read at 1 GiB/s would take a minute


def p(name):
    return os.path.join(TMP, name)


def raw(name, size, patches=()):
    """A sparse raw file of size with (offset, bytes) patches; returns its content model as patches."""
    path = p(name)
    with open(path, "wb") as f:
        f.truncate(size)
        for off, data in patches:
            f.seek(off)
            f.write(data)
    return path


def qemu(*args):
    r = T.run(["qemu-img"] + [str(a) for a in args], timeout=120)
    if r.rc != 0:
        T.fatal("qemu-img failed: " + r.describe())
    return r


def as_format(src, fmt, ext):
    out = src + "." + ext
    qemu("convert", "-f", "raw", "-O", fmt, src, out)
    return out


def qemu_verdict(a, b, strict):
    """qemu-img compare's exit: 0 identical, 1 different."""
    r = T.run(["qemu-img", "compare"] + (["-s"] if strict else []) + [a, b], timeout=120)
    if r.rc not in (0, 1):
        T.fatal("qemu-img compare failed: " + r.describe())
    return r.rc


def content(path, size):
    with open(path, "rb") as f:
        data = f.read()
    return data + b"\0" * (size - len(data))


def expected_offset(a, b, sa, sb, lenient):
    """The first differing byte: in the common part, else (lenient) the
    first non-zero byte of the larger one's tail, else the smaller size."""
    n = min(sa, sb)
    if not lenient and sa != sb:
        return n
    ca, cb = content(a, sa), content(b, sb)
    d = T.first_diff(ca[:n], cb[:n])
    if d is not None:
        return d
    if not lenient:
        return n
    tail = (ca if sa > sb else cb)[n:]
    return n + len(tail) - len(tail.lstrip(b"\0"))


def compare(a, b, lenient):
    args = ["--json", "disk", "compare", a, b] + (["--lenient"] if lenient else [])
    r = T.sp(EXE, *args, timeout=120)
    return r


def check_pair(name, a, b, ra, rb, sa, sb):
    """a, b: the images; ra, rb: their raw contents (written here)."""
    import json
    for lenient in (False, True):
        # qemu-img compare -s also fails on a different allocation (a qcow2
        # and a raw file of the same bytes): its verdict is the strict one
        # only where the sizes differ; else the content decides, as without -s
        want = qemu_verdict(a, b, strict=not lenient and sa != sb)
        what = "%s: compare%s %s %s" % (name, " --lenient" if lenient else "", os.path.basename(a),
                                        os.path.basename(b))
        r = compare(a, b, lenient)
        if not T.check(r.rc == want, "%s: exit %s, qemu-img compare%s says %d: %s" % (
                what, r.rc, "" if lenient else " -s", want, r.describe())):
            continue
        try:
            j = json.loads(r.out)
        except ValueError:
            T.check(False, "%s: not JSON: %r" % (what, r.out))
            continue
        T.check(j.get("size_a") == sa and j.get("size_b") == sb, "%s: sizes %s" % (what, j))
        if want == 0:
            T.check(j.get("identical") is True and j.get("first_difference") is None, "%s: %s" % (what, j))
        else:
            off = expected_offset(ra, rb, sa, sb, lenient)
            T.check(j.get("identical") is False and j.get("first_difference") == off,
                    "%s: first_difference %s, expected %d" % (what, j.get("first_difference"), off))
        r = T.sp(EXE, "disk", "compare", a, b, *(["--lenient"] if lenient else []), timeout=120)
        if want == 0 and sa != sb:
            T.check(r.out.startswith("identical (sizes differ"), "%s: text: %r" % (what, r.out))


def pairs():
    marker = [(123 * 4096 + 7, b"snapport"), (BASE - 5, b"end!!")]
    a = raw("a.raw", BASE, marker)
    yield "same", a, raw("same.raw", BASE, marker)
    yield "zero_tail", a, raw("zero_tail.raw", BASE + TAIL, marker)
    zt = p("zero_data.raw")
    with open(zt, "wb") as f:
        f.write(content(a, BASE) + b"\0" * TAIL)
    yield "zero_data", a, zt
    yield "dirty_tail", a, raw("dirty_tail.raw", BASE + TAIL, marker + [(BASE + 3 * M + 11, b"\x01")])
    yield "dirty_last", a, raw("dirty_last.raw", BASE + TAIL, marker + [(BASE + TAIL - 1, b"\x80")])
    yield "differ", a, raw("differ.raw", BASE, marker + [(BASE // 2, b"\xff")])
    yield "differ_big", a, raw("differ_big.raw", BASE + TAIL, marker + [(BASE // 3, b"\xff")])


def case_pairs():
    for name, a, b in pairs():
        sa, sb = os.path.getsize(a), os.path.getsize(b)
        check_pair(name, a, b, a, b, sa, sb)
        check_pair(name + " reversed", b, a, b, a, sb, sa)
        # the larger image in another format, read through its allocation
        for fmt, ext in (("qcow2", "qcow2"), ("vpc", "vhd")):
            bf = as_format(b, fmt, ext)
            sbf = T.info_json(EXE, bf)["virtual_size"]
            if sbf != sb:
                # a VHD's size is rounded to its geometry: the raw model grows with zeros
                with open(b, "r+b") as f:
                    f.truncate(sbf)
                sb2 = sbf
            else:
                sb2 = sb
            check_pair("%s as %s" % (name, fmt), a, bf, a, b, sa, sb2)
            check_pair("%s as %s reversed" % (name, fmt), bf, a, b, a, sb2, sa)


def case_cost():
    marker = [(4096, b"data")]
    small = raw("small.raw", 1 * M, marker)
    big = raw("big.raw", 64 * 1024 * M, marker)
    last = raw("big_last.raw", 64 * 1024 * M, marker + [(64 * 1024 * M - 1, b"\x01")])
    vhd = p("big.vhd")
    qemu("create", "-q", "-f", "vpc", "-o", "subformat=dynamic", vhd, "64G")
    r = T.run(["qemu-io", "-f", "vpc", "-c", "write -P 0 0 1M", "-c", "write -P 0x64 4096 1", vhd], timeout=60)
    if r.rc != 0:
        T.fatal("qemu-io failed: " + r.describe())
    with open(small, "r+b") as f:
        f.seek(4096)
        f.write(b"d\0\0\0")   # the VHD's content: 0x64 at 4096, zeros around it
    for img, what in ((big, "64 GiB sparse raw"), (last, "64 GiB sparse raw, last byte set"),
                      (vhd, "64 GiB dynamic VHD")):
        if img != vhd:
            with open(img, "r+b") as f:
                f.seek(4096)
                f.write(b"d\0\0\0")
        t = time.monotonic()
        r = T.sp(EXE, "disk", "compare", "--lenient", small, img, timeout=120)
        secs = time.monotonic() - t
        want = qemu_verdict(small, img, strict=False)
        T.check(r.rc == want, "%s: exit %s, qemu-img compare says %d: %s" % (what, r.rc, want, r.describe()))
        T.check(secs < BOUND_SECS, "%s: --lenient took %.1f s (bound %d s): the zero tail was read" % (
            what, secs, BOUND_SECS))
        if img == last:
            T.check(r.out.strip() == "differ at offset %d" % (64 * 1024 * M - 1), "%s: %r" % (what, r.out))
        else:
            T.check(r.out.startswith("identical (sizes differ"), "%s: %r" % (what, r.out))


def main():
    global EXE, TMP
    EXE, TMP = T.setup()
    T.need_tool("qemu-img")
    case_pairs()
    case_cost()
    T.finish("test_compare_lenient")


if __name__ == "__main__":
    main()
