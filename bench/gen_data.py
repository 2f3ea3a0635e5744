#!/usr/bin/env python3
"""Data and write plans for bench/bench_flatten.sh (standard library only).

    gen_data.py DIR

Writes into DIR:
  pieces/p_RR_P.bin   4 MiB pieces of the disk content: random (regions with
                      r % 5 in 0,1) or compressible log-like text (2,3);
                      regions with r % 5 == 4 are zeros, written as a pattern
  garbage/g_N.bin     data that the deep chain writes and later overwrites
  plan_a.txt          KIND LAYER OFFSET SRC   (a: 4 GiB disk, 1 GiB data)
                      KIND F = part of the final content, G = overwritten
                      later; SRC = a file, or zero:LENGTH
  plan_b.txt          OFFSET_IN_64G OFFSET_IN_256M FILE   (b: 256 MiB data)
  plan_d.txt          OFFSET FILE             (d: a 2040 GiB disk, 64 MiB)

Fixed seeds: the same bytes on every run. Random pieces are windows of one
32 MiB pseudo-random pool (locally incompressible, none equal to another);
generating 400 MiB with random.randbytes directly would take minutes.
"""
import os
import random
import sys

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30

LAYERS = 30                 # the deep chain: base + 29 differencing disks
REGIONS = 64                # 64 regions x 16 MiB = 1 GiB of content
REGION = 16 * MIB
PIECE = 4 * MIB             # a region is written as 4 pieces
PIECES = REGION // PIECE
A_SIZE = 4 * GIB
POOL = 32 * MIB
TEXT = 16 * MIB


def region_offset(r):
    # Spread over the whole disk; not aligned to 2 MiB VHD blocks, so
    # blocks are shared between regions and partly written.
    return r * 64 * MIB + (r % 5) * 3 * MIB + (r % 3) * 7 * 4 * KIB


def kind(r):
    return ("random", "random", "text", "text", "zero")[r % 5]


def make_pool():
    rnd = random.Random("snapport-bench-pool")
    return b"".join(rnd.randbytes(MIB) for _ in range(POOL // MIB))


def window(buf, start, n):
    """n bytes of buf from start, wrapping around."""
    if start + n <= len(buf):
        return buf[start:start + n]
    return b"".join((buf[start:], buf[:n - (len(buf) - start)]))


def random_piece(pool, i, n):
    return window(pool, (i * 1048583 + 4099) % POOL, n)   # odd strides: distinct


def make_text():
    """A 16 MiB log-like corpus (gzip shrinks it about 7x)."""
    rnd = random.Random("snapport-bench-text")
    words = ["GET", "POST", "/api/v1/items", "/index.html", "200", "304", "404",
             "nginx", "upstream", "cache", "hit", "miss", "client", "10.0.0.7"]
    phrases = [" ".join(rnd.choice(words) for _ in range(8)) for _ in range(509)]
    lines = ("%08d %s\n" % (k, phrases[(k * 7 + k // 509) % 509]) for k in range(300000))
    text = "".join(lines).encode()
    return (text * (TEXT // len(text) + 1))[:TEXT]


def text_piece(text, i, n):
    start = (i * 2097169 + 977) % TEXT
    head = b"piece %d\n" % i
    return head + window(text, start, n - len(head))


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def main(argv):
    if len(argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    out = argv[1]
    os.makedirs(os.path.join(out, "pieces"), exist_ok=True)
    os.makedirs(os.path.join(out, "garbage"), exist_ok=True)
    pool = memoryview(make_pool())
    text = memoryview(make_text())

    # The content pieces.
    pieces = {}          # (r, p) -> file path, or None for zeros
    n = 0
    for r in range(REGIONS):
        for p in range(PIECES):
            if kind(r) == "zero":
                pieces[r, p] = None
                continue
            path = os.path.join(out, "pieces", "p_%02d_%d.bin" % (r, p))
            data = random_piece(pool, n, PIECE) if kind(r) == "random" else text_piece(text, n, PIECE)
            write(path, data)
            pieces[r, p] = path
            n += 1
    content = [pieces[k] for k in sorted(pieces) if pieces[k]]

    # a) Final layer of each piece, spread over all 30 layers; before it,
    # an unaligned partial garbage write and sometimes a whole-piece
    # rewrite with other data, in earlier layers.
    plan = []
    g = 0
    for r in range(REGIONS):
        for p in range(PIECES):
            off = region_offset(r) + p * PIECE
            src = pieces[r, p] or "zero:%d" % PIECE
            final = (r * 7 + p * 11 + 3) % LAYERS
            if final >= 1:
                layer = (r * 3 + p) % final
                length = MIB + ((r * 31 + p * 17) % 64) * 4 * KIB + 1536
                if (r + p) % 3 == 0:
                    length += 100            # not a sector multiple
                start = off + (r * 7919 + p * 104729) % (PIECE - length)
                path = os.path.join(out, "garbage", "g_%03d.bin" % g)
                write(path, random_piece(pool, 7777 + g, length))
                g += 1
                plan.append(("G", layer, start, path))
                if final - layer >= 2 and (r + p) % 2 == 0:
                    mid = layer + 1 + (r + p) % (final - layer - 1)
                    plan.append(("G", mid, off, content[(r * 5 + p) % len(content)]))
            plan.append(("F", final, off, src))
    plan.sort(key=lambda op: op[1])      # stable: by layer, then as made
    with open(os.path.join(out, "plan_a.txt"), "w") as f:
        for op in plan:
            f.write("%s %d %d %s\n" % op)

    # b) 256 MiB of content: 1 GiB apart on a 64 GiB disk, packed on 256 MiB.
    with open(os.path.join(out, "plan_b.txt"), "w") as f:
        for i, path in enumerate(content[:64]):
            f.write("%d %d %s\n" % (i * GIB + (i % 8) * 5 * MIB + i * 4 * KIB, i * PIECE, path))

    # d) 16 pieces (64 MiB) spread over a 2040 GiB disk.
    big = 2040 * GIB
    with open(os.path.join(out, "plan_d.txt"), "w") as f:
        for i in range(16):
            f.write("%d %s\n" % (min(i * (big // 16) + i * MIB, big - PIECE), content[i * 7]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
