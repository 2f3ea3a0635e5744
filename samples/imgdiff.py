#!/usr/bin/env python3
"""Print the runs of an image that differ from another image, or that hold data.

    imgdiff.py [--block N] OLD NEW      runs where NEW differs from OLD
    imgdiff.py [--block N] --nonzero IMG
                                        runs of IMG that are not all zero

One run per line, `offset length` in decimal bytes, ascending, adjacent
blocks merged. Compared in blocks of N bytes (default 4096); the last block
may be shorter. OLD and NEW must have the same size. Holes (SEEK_HOLE) are
skipped without reading. Exit 0 (also when nothing differs), 2 on misuse.
Standard library only.
"""
import os
import sys

CHUNK = 4 * 1024 * 1024  # bytes read per call; a multiple of any sane block


def data_extents(fd, size):
    """(start, end) ranges of fd that may hold data, from SEEK_DATA/SEEK_HOLE."""
    off = 0
    while off < size:
        try:
            start = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole follows
            return
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, min(end, size)
        off = end


def merged(ranges):
    """Merge touching/overlapping (start, end) ranges, input in ascending order."""
    cur = None
    for s, e in ranges:
        if cur and s <= cur[1]:
            cur[1] = max(cur[1], e)
        else:
            if cur:
                yield cur
            cur = [s, e]
    if cur:
        yield cur


def aligned(ranges, block, size):
    """Widen ranges to block boundaries (clamped to size) and merge."""
    return merged((s - s % block, min(size, -(-e // block) * block)) for s, e in ranges)


def read_at(fd, off, n):
    buf = os.pread(fd, n, off)
    if len(buf) != n:
        raise SystemExit("imgdiff.py: short read at %d" % off)
    return buf


class Runs:
    """Collects block indexes into merged (offset, length) runs and prints them."""

    def __init__(self, size):
        self.size = size
        self.start = None
        self.end = None
        self.out = sys.stdout

    def add(self, s, e):
        if self.start is not None and s == self.end:
            self.end = e
            return
        self.flush()
        self.start, self.end = s, e

    def flush(self):
        if self.start is not None:
            self.out.write("%d %d\n" % (self.start, self.end - self.start))
        self.start = None


def scan(fds, size, block, test):
    """Call test(bufs...) per block over the data extents of all fds."""
    ranges = sorted(r for fd in fds for r in data_extents(fd, size))
    runs = Runs(size)
    step = CHUNK - CHUNK % block
    for s, e in aligned(ranges, block, size):
        off = s
        while off < e:
            n = min(step, e - off)
            bufs = [read_at(fd, off, n) for fd in fds]
            for b in range(0, n, block):
                if test(*(buf[b:b + block] for buf in bufs)):
                    runs.add(off + b, min(off + b + block, size))
            off += n
    runs.flush()


def main(argv):
    args = argv[1:]
    block = 4096
    if len(args) >= 2 and args[0] == "--block":
        block = int(args[1])
        args = args[2:]
        if block <= 0 or CHUNK % block:
            sys.stderr.write("imgdiff.py: block must divide %d\n" % CHUNK)
            return 2
    if len(args) == 2 and args[0] == "--nonzero":
        fd = os.open(args[1], os.O_RDONLY)
        size = os.fstat(fd).st_size
        zero = bytes(block)
        scan([fd], size, block, lambda a: a != zero[:len(a)])
        return 0
    if len(args) == 2 and not args[0].startswith("--"):
        fa = os.open(args[0], os.O_RDONLY)
        fb = os.open(args[1], os.O_RDONLY)
        sa, sb = os.fstat(fa).st_size, os.fstat(fb).st_size
        if sa != sb:
            sys.stderr.write("imgdiff.py: sizes differ: %d vs %d\n" % (sa, sb))
            return 2
        scan([fa, fb], sa, block, lambda a, b: a != b)
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
