"""A store on a small file system that runs out of space (needs root: the
store lives on a tmpfs of 48 MiB mounted for the test; if mounting is not
permitted the test fails, it does not skip).

Cases:
  gc-space   a VM disk (40 MiB virtual) with 12 MiB of data, snapshot s1,
             20 MiB of new data in the VM's leaf, snapshot s2, delete s1:
             the coalesce of s2's 20 MiB layer into s1's base needs more than
             is free.  gc must exit 3 with one line saying how much it needs
             and how much is available (the numbers must be right: needs
             > available, available close to what statvfs says), the store
             checks clean, every digest and the chain depth are unchanged.
             Then the tmpfs grows (remount) and gc coalesces: digests still
             unchanged, the chain shorter.
  full       a dummy file fills the tmpfs to leave 1 MiB, 256 KiB, 64 KiB,
             32 KiB, 16 KiB, 8 KiB, 0 free; at each level `vm create` (12 MiB
             to copy) and `snapshot create` run: each either succeeds or
             fails with exit 3 and one line that says the space ran out
             ("No space left on device" / "disk is full" / "space"); no
             temporary or half-made file stays in store/vdis; store check
             never reports damage (exit 1), and after the dummy file is
             removed: store check exit 0, vm list and the snapshots are
             exactly the successful operations', every digest unchanged.
"""

import os
import random
import re
import sys

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402

K, M = S.K, S.M
EXE = TMP = MNT = None
RNG = random.Random(4242)
SPACE_WORDS = ("no space", "disk is full", "space")


mount_tmpfs, umount = S.mount_tmpfs, S.umount


def avail():
    sv = os.statvfs(MNT)
    return sv.f_bavail * sv.f_frsize


def write_disk(st, name, offset, byte, length):
    j = st.show(name)
    r = S.run_env([EXE, "disk", "write", j["disks"][0]["file"], "--offset", offset, "--pattern", byte,
                   "--length", length], timeout=60)
    if r.rc != 0:
        T.fatal("disk write into %s failed: %s" % (name, r.describe()))


def source_disk(name, data_mb):
    """A sparse 40 MiB raw file (outside the tmpfs) with data_mb MiB of random data."""
    raw = os.path.join(TMP, name + ".raw")
    with open(raw, "wb") as f:
        f.write(RNG.randbytes(data_mb * M))
        f.truncate(40 * M)
    cfg = os.path.join(TMP, name + ".cfg")
    with open(cfg, "w") as f:
        f.write("name = '%s'\nmemory = 256\nvcpus = 1\ndisk = [ 'format=raw, vdev=xvda, target=%s' ]\n" % (name, raw))
    return cfg


def parse_size(text):
    """'24.0 MiB' -> bytes."""
    num, unit = text.split()
    mult = {"B": 1, "KiB": K, "MiB": M, "GiB": 1024 * M}[unit]
    return float(num) * mult


def case_gc_space(st):
    st.ok("vm", "create", "--config", source_disk("vm1", 12), timeout=60)
    st.ok("snapshot", "create", "vm1", "--name", "s1")
    write_disk(st, "vm1", 16 * M, "0x77", 20 * M)          # beside the 12 MiB: the coalesce adds 20 MiB
    st.ok("snapshot", "create", "vm1", "--name", "s2")
    write_disk(st, "vm1", 100 * K, "0x78", 8 * K)
    st.ok("snapshot", "delete", "vm1", "s1")
    digs, depth = st.digests(), st.chain_depths("vm1")
    files = st.files(include_catalog=False)
    free = avail()
    print("gc-space: %.1f MiB free before gc, chain %s" % (free / M, depth))
    if free > 20 * M:
        T.fatal("gc-space: setup left %.1f MiB free; the coalesce must need more" % (free / M))
    r = st.sp("gc", timeout=60)
    if T.check(r.rc == 3, "gc without the space to coalesce: expected exit 3, got %s" % r.describe()):
        S.one_error_line(r, "gc without space")
        msg = r.err.strip()
        T.check("needs" in msg and "available" in msg, "gc: the message does not say needs/available: %r" % msg)
        m = re.search(r"needs ([0-9.]+ [KMG]?i?B) free, ([0-9.]+ [KMG]?i?B) available", msg)
        if T.check(m is not None, "gc: no 'needs X free, Y available' in %r" % msg):
            needs, has = parse_size(m.group(1)), parse_size(m.group(2))
            T.check(needs >= 20 * M, "gc: says it needs %s, the layer holds 20 MiB" % m.group(1))
            T.check(needs > has, "gc: refused although it needs %s and %s is available" % (m.group(1), m.group(2)))
            T.check(abs(has - free) < 2 * M, "gc: says %s available, statvfs says %.1f MiB" % (m.group(2), free / M))
    r = st.check()
    T.check(r.rc == 0, "store check after the refused gc: %s" % r.describe())
    T.check(st.digests() == digs, "the refused gc changed content")
    T.check(st.chain_depths("vm1") == depth, "the refused gc changed the chain: %s" % st.chain_depths("vm1"))
    T.check(st.files(include_catalog=False) == files, "the refused gc changed files of the store")
    T.check(abs(avail() - free) < M, "the refused gc left %.1f MiB used" % ((free - avail()) / M))
    # with room, the same gc goes through
    r = T.run(["mount", "-o", "remount,size=96m", MNT])
    if not T.check(r.rc == 0, "remount with more space: %s" % r.describe()):
        return
    r = st.sp("gc", timeout=60)
    T.check(r.rc == 0, "gc with enough space: %s" % r.describe())
    T.check(st.check().rc == 0, "store check after gc")
    T.check(st.digests() == digs, "gc changed content")
    T.check(st.chain_depths("vm1")["xvda"] < depth["xvda"], "gc did not shorten the chain: %s" % st.chain_depths("vm1"))
    T.run(["mount", "-o", "remount,size=48m", MNT])


def says_space(r):
    low = r.err.lower()
    return any(w in low for w in SPACE_WORDS)


def case_full(st):
    cfg = source_disk("newvm", 12)
    digs = st.digests()
    vms = sorted(st.vms())
    snaps = [s["name"] for s in st.snapshots("vm1")]
    filler = os.path.join(MNT, "filler")
    made_vms = []
    for level in (M, 256 * K, 64 * K, 32 * K, 16 * K, 8 * K, 0):
        before = st.vdi_files()
        if os.path.exists(filler):
            os.unlink(filler)
        S.fill(filler, level)
        tag = "%d KiB free" % (avail() // K)
        for args in (["vm", "create", "--config", cfg], ["snapshot", "create", "vm1", "--name", "x%d" % level]):
            what = "%s (%s)" % (" ".join(args[:2]), tag)
            r = st.sp(*args, timeout=60)
            if r.rc == 0:
                if args[0] == "vm":
                    # it fit: keep the store as it was for the next level
                    st.ok("vm", "destroy", "newvm")
                    made_vms.append(level)
                else:
                    snaps.append(args[-1])
                continue
            if not T.check(r.rc == 3 and not r.crashed(), "%s: expected success or exit 3: %s" % (what, r.describe())):
                continue
            print("  %s: %s" % (what, r.err.strip()))
            S.one_error_line(r, what)
            T.check(says_space(r), "%s: the message does not say that space ran out: %r" % (what, r.err.strip()))
            after = st.vdi_files()
            T.check(after == before, "%s: left files in store/vdis: %s" % (what, sorted(set(after) - set(before))))
        r = st.check()
        T.check(r.rc != 1 and not r.crashed(), "store check (%s) reports damage: %s" % (tag, r.describe()))
        os.unlink(filler)
        r = st.check()
        T.check(r.rc == 0, "store check after freeing the space (%s): %s" % (tag, r.describe()))
        T.check(sorted(st.vms()) == vms, "vm list after the full disk (%s): %s, expected %s" % (tag, sorted(st.vms()), vms))
        got = [s["name"] for s in st.snapshots("vm1")]
        T.check(got == snaps, "snapshots after the full disk (%s): %s, expected %s" % (tag, got, snaps))
        for k, v in st.digests().items():
            if k in digs:
                T.check(v == digs[k], "%s changed after the full disk (%s)" % (k, tag))
            elif k[0] == "snap":
                T.check(v == digs[("vm", "vm1")], "new snapshot %s does not have the VM's content" % (k,))
    print("full: vm create fit at %s, snapshots made: %s" % (made_vms, snaps))


def main():
    global EXE, TMP, MNT
    tmp = os.environ.get("SP_TMP")
    if tmp and os.path.ismount(os.path.join(tmp, "mnt")):   # left by an interrupted run
        umount(os.path.join(tmp, "mnt"))
    EXE, TMP = T.setup()
    if os.geteuid() != 0:
        T.fatal("test_store_diskfull needs root to mount a tmpfs (running as uid %d)" % os.geteuid())
    MNT = os.path.join(TMP, "mnt")
    mount_tmpfs(MNT, "48m")
    try:
        st = S.Store(EXE, os.path.join(MNT, "store"), os.path.join(TMP, "flat"))
        case_gc_space(st)
        case_full(st)
    finally:
        umount(MNT)
    T.finish("test_store_diskfull")


if __name__ == "__main__":
    main()
