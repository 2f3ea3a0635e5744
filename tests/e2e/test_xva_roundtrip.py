"""XVA export -> verify -> info -> import, end to end (CLI.md "Archives",
reference/xva.md).

Cases:
  source      a VM made from an xl.cfg: HVM, memory 768, vcpus 3, a raw disk
              of 5 MiB + 512 bytes (pseudo-random data, a whole zero MiB, a
              zero hole inside a block, a zero 512-byte tail) and a VHD of
              7 MiB (small writes, an allocated block of written zeros, a
              zero last block), a cdrom, two vifs with MACs, uninterpreted
              keys (serial, viridian). Expected contents are computed here
              from the bytes written, not by snapport.
  exports     default (xxhash, temporary snapshot, none left behind),
              --digest sha1, --compress gzip, --compress zstd --digest sha1:
              verify exit 0; info --json (vm, boot, memory, vcpus, checksum
              kind, compression, exact virtual sizes, stored <= virtual and
              = the bytes of the blocks present); import --name: disks equal
              the sources byte for byte (sha256 of the flattened disks),
              memory/vcpus/hvm/disk order/cdrom/MACs as the original, extra
              keys in `vm config`, new VM and VDI uuids; store check clean.
  pipe        export -o - --format xva | import - into another store;
              export -o - | verify -; export | import - into the same store
              (must not deadlock on the store lock).
  listing     python tarfile over our XVAs: ova.xml first, then only
              Ref:<n>/%08d + .xxhash/.checksum, ids in strcmp order, no
              directories, regular files, names < 100 bytes, every checksum
              member right after its block, counters increasing, first and
              last block of each disk present, every other present block
              non-zero and every non-zero block present, block bytes equal
              the source, .checksum = hashlib.sha1, .xxhash = XXH64 (pure
              Python, checked against the published vectors); archive size
              = members + exactly 1024 end bytes; gzip/zstd decompress to the
              plain archive of the same snapshot.
  determinism the same named snapshot exported twice: identical bytes
              (plain, gzip, zstd); an existing output needs --force.
  suspended   vm suspend --image mem.bin (a size with an odd tail), export:
              info shows a disk of type suspend of the image's size; the
              block checksums cover the odd tail; import: the VM is
              suspended and its memory image is mem.bin (exact, or padded
              with zeros to 512 bytes), its disk equals the source.
"""

import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402
import xvatest as X  # noqa: E402

K, M = S.K, S.M
EXE = TMP = None
RNG = random.Random(20241129)
MACS = ["00:16:3e:5a:01:02", "00:16:3e:5a:01:03"]
RAW_SIZE = 5 * M + 512
VHD_SIZE = 7 * M


# ---------------------------------------------------------------- helpers

def env_clean(extra=None):
    e = dict(os.environ)
    for k in ("SNAPPORT_STORE", "SNAPPORT_CRASH_AFTER", "SNAPPORT_CRASH_LOG", "SNAPPORT_LOCK_TIMEOUT"):
        e.pop(k, None)
    e.update({k: str(v) for k, v in (extra or {}).items()})
    return e


def pipeline(cmd1, cmd2, env=None, timeout=60, reader_first=0.0, writer_first=0.0):
    """cmd1 | cmd2; returns (rc1, rc2, out2, err1, err2); never hangs.
    reader_first / writer_first: start cmd2 / cmd1 that many seconds before
    the other (both orders happen in a shell: the two sides of a pipe start
    in no fixed order)."""
    env = env_clean(env)
    e1 = tempfile.TemporaryFile()
    e2 = tempfile.TemporaryFile()
    rfd, wfd = os.pipe()
    procs = []

    def start_reader():
        procs.append(subprocess.Popen([str(a) for a in cmd2], stdin=rfd, stdout=subprocess.PIPE, stderr=e2, env=env))

    def start_writer():
        procs.append(subprocess.Popen([str(a) for a in cmd1], stdout=wfd, stderr=e1, env=env))

    if reader_first:
        start_reader()
        time.sleep(reader_first)
        start_writer()
    else:
        start_writer()
        if writer_first:
            time.sleep(writer_first)
        start_reader()
    os.close(rfd)
    os.close(wfd)
    p2 = procs[0] if reader_first else procs[1]
    p1 = procs[1] if reader_first else procs[0]
    timed_out = False
    try:
        out2, _ = p2.communicate(timeout=timeout)
        p1.wait(timeout=10)
    except subprocess.TimeoutExpired:
        timed_out = True
        for p in (p1, p2):
            if p.poll() is None:
                p.kill()
        out2 = b""
        p2.wait()
        p1.wait()
    errs = []
    for f in (e1, e2):
        f.seek(0)
        errs.append(f.read().decode("utf-8", "replace"))
        f.close()
    rc1 = "TIMEOUT" if timed_out else p1.returncode
    rc2 = "TIMEOUT" if timed_out else p2.returncode
    return rc1, rc2, out2.decode("utf-8", "replace"), errs[0], errs[1]


expect_ok = T.expect_ok


def nonzero_blocks(data):
    return {b for b in range((len(data) + M - 1) // M) if any(data[b * M:(b + 1) * M])}


# ---------------------------------------------------------------- sources

def make_sources():
    d = os.path.join(TMP, "src")
    os.makedirs(d)
    raw = bytearray(RNG.randbytes(RAW_SIZE))
    raw[1 * M:2 * M] = bytes(M)                     # a whole zero block
    raw[3 * M + 4096:3 * M + 8192] = bytes(4096)    # a hole inside a block
    raw[5 * M:] = bytes(512)                        # the short last block: zero
    with open(os.path.join(d, "sys.raw"), "wb") as f:
        f.write(raw)
    vhd = os.path.join(d, "data.vhd")
    T.sp_ok(EXE, "disk", "create", vhd, "--size", "7M")
    model = bytearray(VHD_SIZE)
    T.sp_ok(EXE, "disk", "write", vhd, "--offset", 0, "--pattern", "0x11", "--length", 4096)
    model[0:4096] = b"\x11" * 4096
    # an allocated block holding only zeros: must not be exported
    T.sp_ok(EXE, "disk", "write", vhd, "--offset", 2 * M, "--pattern", "0x00", "--length", M)
    blob = RNG.randbytes(300000)
    bpath = os.path.join(TMP, "blob.bin")
    with open(bpath, "wb") as f:
        f.write(blob)
    T.sp_ok(EXE, "disk", "write", vhd, "--offset", 4 * M + 512, "--from", bpath)
    model[4 * M + 512:4 * M + 512 + len(blob)] = blob
    with open(os.path.join(d, "install.iso"), "wb") as f:
        f.write(b"CD001" * 1000)
    cfg = os.path.join(d, "vm1.cfg")
    with open(cfg, "w") as f:
        f.write("""name = "vm1"
type = "hvm"
memory = 768
vcpus = 3
disk = [ 'format=raw, vdev=xvda, access=rw, target=sys.raw',
         'format=vhd, vdev=xvdb, access=rw, target=data.vhd',
         'format=raw, vdev=hdc, access=ro, devtype=cdrom, target=install.iso' ]
vif = [ 'mac=%s, bridge=xenbr0', 'mac=%s, bridge=xenbr1' ]
serial = 'pty'
viridian = 1
""" % (MACS[0], MACS[1]))
    return cfg, {"xvda": bytes(raw), "xvdb": bytes(model)}


# ---------------------------------------------------------------- checks

def check_info(path, what, checksum, compression, sizes, listing=None):
    """info --json of an archive; sizes: list of expected virtual sizes (disks, in order)."""
    r = T.sp(EXE, "--json", "info", path)
    if not expect_ok(r, "%s: info --json" % what):
        return None
    try:
        j = json.loads(r.out)
    except ValueError as e:
        T.check(False, "%s: info --json is not JSON (%s): %r" % (what, e, r.out[:300]))
        return None
    T.check(j.get("vm") == "vm1", "%s: info vm %r, expected vm1" % (what, j.get("vm")))
    T.check(j.get("boot") == "hvm", "%s: info boot %r, expected hvm" % (what, j.get("boot")))
    T.check(j.get("memory") in (768 * M, 768), "%s: info memory %r, expected 768 MiB" % (what, j.get("memory")))
    T.check(j.get("vcpus") == 3, "%s: info vcpus %r, expected 3" % (what, j.get("vcpus")))
    T.check(j.get("checksum") == checksum, "%s: info checksum %r, expected %r" % (what, j.get("checksum"), checksum))
    T.check(j.get("compression") == compression,
            "%s: info compression %r, expected %r" % (what, j.get("compression"), compression))
    disks = j.get("disks") or []
    T.check([d.get("virtual_size") for d in disks] == sizes,
            "%s: info virtual sizes %s, expected %s" % (what, [d.get("virtual_size") for d in disks], sizes))
    for d in disks:
        T.check(isinstance(d.get("stored"), int) and 0 < d["stored"] <= d.get("virtual_size", 0),
                "%s: disk %s stored %r not in (0, virtual_size %r]" % (what, d.get("id"), d.get("stored"),
                                                                      d.get("virtual_size")))
        if listing is not None and d.get("id") in listing:
            want = sum(len(b) for b in listing[d["id"]].values())
            T.check(d.get("stored") == want, "%s: disk %s stored %r, but its blocks hold %d bytes" % (
                what, d.get("id"), d.get("stored"), want))
    return j


def check_listing(path, what, digest, sources):
    """The tar structure of an XVA (see the docstring). sources: list of the
    expected content of each streamed VDI, in stream order. Returns
    {id: {counter: block bytes}}."""
    tarb = X.decompress(path)
    mems = X.members(tarb)
    if not T.check(mems and mems[0].name == "ova.xml", "%s: first member is %r, not ova.xml" % (
            what, mems[0].name if mems else None)):
        return {}
    ext = ".xxhash" if digest == "xxhash" else ".checksum"
    blocks = {}
    ids = []
    pending = None   # (id, counter, data) of a block awaiting its checksum member
    total = 0
    for m in mems:
        total += 512 + (len(m.data) + 511) // 512 * 512
        if not T.check(m.type in (b"0", b"\0"), "%s: member %r is not a regular file (type %r)" % (what, m.name, m.type)):
            continue
        T.check(len(m.name.encode()) < 100, "%s: member name %r is 100 bytes or longer" % (what, m.name))
        if m is mems[0]:
            continue
        mt = X.NAME_RE.match(m.name)
        if not T.check(mt is not None, "%s: unexpected member %r" % (what, m.name)):
            continue
        vid, counter, sfx = mt.group(1), int(mt.group(2)), mt.group(3)
        if sfx is None:
            if pending is not None:
                T.check(False, "%s: block %r follows block %s/%08d without its checksum member" % (
                    what, m.name, pending[0], pending[1]))
            if vid not in blocks:
                T.check(not ids or ids[-1] < vid, "%s: VDI %s after %s (not in strcmp order or interleaved)" % (
                    what, vid, ids[-1] if ids else None))
                ids.append(vid)
                blocks[vid] = {}
            else:
                T.check(ids[-1] == vid, "%s: block %r after the blocks of another VDI" % (what, m.name))
                T.check(counter > max(blocks[vid]), "%s: counter of %r does not increase" % (what, m.name))
            blocks[vid][counter] = m.data
            pending = (vid, counter, m.data)
        else:
            if not T.check(pending is not None and pending[:2] == (vid, counter),
                           "%s: checksum member %r does not follow its block" % (what, m.name)):
                pending = None
                continue
            T.check(sfx == ext, "%s: %r: expected %s members" % (what, m.name, ext))
            want = X.xxh64_hex(pending[2]) if sfx == ".xxhash" else X.sha1_hex(pending[2])
            T.check(m.data.decode("ascii", "replace") == want, "%s: %r holds %r, independent %s gives %s" % (
                what, m.name, m.data[:64], sfx[1:], want))
            pending = None
    T.check(pending is None, "%s: the last block has no checksum member" % what)
    T.check(len(tarb) == total + 1024, "%s: tar stream is %d bytes, members take %d: expected exactly 1024 end "
            "bytes (no record padding)" % (what, len(tarb), total))
    T.check(tarb[total:] == bytes(len(tarb) - total), "%s: the end of the archive is not zeros" % what)
    T.check(len(ids) == len(sources), "%s: %d VDIs streamed, expected %d (%s)" % (what, len(ids), len(sources), ids))
    for vid, src in zip(ids, sources):
        nb = (len(src) + M - 1) // M
        want = nonzero_blocks(src) | {0, nb - 1}
        got = set(blocks[vid])
        T.check(got == want, "%s: VDI %s carries blocks %s, expected %s (first, last and the non-zero ones)" % (
            what, vid, sorted(got), sorted(want)))
        for c, data in sorted(blocks[vid].items()):
            exp = src[c * M:(c + 1) * M]
            if data != exp:
                T.check(False, "%s: block %s/%08d (%d bytes) differs from the source (%d bytes)" % (
                    what, vid, c, len(data), len(exp)))
    return blocks


def check_import(st, name, orig, sources, what, imported_vdis):
    """The imported VM against the original (vm show json) and the sources."""
    j = st.show(name, fatal=False)
    if not T.check(j is not None, "%s: vm show %s failed after import" % (what, name)):
        return
    T.check(j["uuid"] != orig["uuid"], "%s: the imported VM kept the uuid %s" % (what, orig["uuid"]))
    T.check(j["type"] == "hvm", "%s: type %r, expected hvm" % (what, j["type"]))
    T.check((j["memory"] / 2**20) == 768 and j["vcpus"] == 3, "%s: memory %r vcpus %r, expected 768/3" % (
        what, (j["memory"] / 2**20), j["vcpus"]))
    T.check([d["vdev"] for d in j["disks"]] == [d["vdev"] for d in orig["disks"]],
            "%s: disk order %s, expected %s" % (what, [d["vdev"] for d in j["disks"]],
                                                [d["vdev"] for d in orig["disks"]]))
    T.check([bool(d["cdrom"]) for d in j["disks"]] == [bool(d["cdrom"]) for d in orig["disks"]],
            "%s: cdrom flags %s differ from the original" % (what, [d["cdrom"] for d in j["disks"]]))
    T.check(j["vifs"] == MACS, "%s: vifs %s, expected %s" % (what, j["vifs"], MACS))
    T.check(j["power_state"] == "halted", "%s: power_state %r, expected halted" % (what, j["power_state"]))
    old = {d["vdi"] for d in orig["disks"] if d["vdi"]}
    for d in j["disks"]:
        if not d["vdi"]:
            continue
        T.check(d["vdi"] not in old, "%s: VDI uuid %s reused from the original" % (what, d["vdi"]))
        T.check(d["vdi"] not in imported_vdis, "%s: VDI uuid %s used by an earlier import" % (what, d["vdi"]))
        imported_vdis.add(d["vdi"])
    dig = st.disk_digests(name, fatal=False) or {}
    for vdev, src in sources.items():
        T.check(dig.get(vdev) == S.sha(src), "%s: disk %s content differs from the source (sha256 %s, expected %s)"
                % (what, vdev, dig.get(vdev), S.sha(src)))
    r = st.sp("vm", "config", name)
    if expect_ok(r, "%s: vm config" % what):
        T.check(re.search(r"^serial\s*=\s*['\"]pty['\"]\s*$", r.out, re.M) is not None,
                "%s: vm config lost serial = 'pty': %r" % (what, r.out))
        T.check(re.search(r"^viridian\s*=\s*1\s*$", r.out, re.M) is not None,
                "%s: vm config lost viridian = 1: %r" % (what, r.out))
        for mac in MACS:
            T.check(mac in r.out, "%s: vm config lacks the MAC %s" % (what, mac))
    expect_ok(st.check(), "%s: store check after import" % what)


# ---------------------------------------------------------------- cases

def case_exports(st, orig, sources):
    src_list = [sources["xvda"], sources["xvdb"]]
    sizes = [RAW_SIZE, VHD_SIZE]
    snaps_before = st.snapshots("vm1")
    imported = set()
    variants = [
        ("plain", [], "xxhash", "none"),
        ("sha1", ["--digest", "sha1"], "sha1", "none"),
        ("gzip", ["--compress", "gzip"], "xxhash", "gzip"),
        ("zstd", ["--compress", "zstd", "--digest", "sha1"], "sha1", "zstd"),
    ]
    for label, args, checksum, comp in variants:
        what = "export %s" % label
        out = os.path.join(TMP, "vm1-%s.xva" % label)
        r = st.sp("export", "vm1", "-o", out, *args, timeout=60)
        if not expect_ok(r, what) or not T.check(os.path.isfile(out), "%s: no file %s" % (what, out)):
            continue
        expect_ok(T.sp(EXE, "verify", out), "%s: verify" % what)
        listing = check_listing(out, what, checksum, src_list)
        check_info(out, what, checksum, comp, sizes, listing)
        r = st.sp("import", out, "--name", "copy-" + label, timeout=60)
        if expect_ok(r, "%s: import" % what):
            check_import(st, "copy-" + label, orig, sources, what, imported)
    T.check(st.snapshots("vm1") == snaps_before, "export without --snapshot left snapshots behind: %s -> %s" % (
        snaps_before, st.snapshots("vm1")))
    T.check(st.vms().keys() == {"vm1"} | {"copy-" + v[0] for v in variants},
            "VMs after the imports: %s" % sorted(st.vms()))


def case_pipe(st, orig, sources):
    st2 = S.Store(EXE, os.path.join(TMP, "st2"), os.path.join(TMP, "flat2"))
    rc1, rc2, out, e1, e2 = pipeline([EXE, "--store", st.dir, "export", "vm1", "-o", "-", "--format", "xva"],
                                     [EXE, "--store", st2.dir, "import", "-", "--name", "piped"])
    if T.check(rc1 == 0 and rc2 == 0, "export -o - | import - (other store): rc %s/%s, stderr %r / %r" % (
            rc1, rc2, e1, e2)):
        check_import(st2, "piped", orig, sources, "pipe into another store", set())
    # verify and info from stdin
    for cmd in ("verify", "info"):
        rc1, rc2, out, e1, e2 = pipeline([EXE, "--store", st.dir, "export", "vm1", "-o", "-", "--format", "xva",
                                          "--compress", "zstd"], [EXE, cmd, "-"])
        T.check(rc1 == 0 and rc2 == 0, "export -o - | %s -: rc %s/%s, stderr %r / %r" % (cmd, rc1, rc2, e1, e2))
    rc1, rc2, out, e1, e2 = pipeline([EXE, "--store", st.dir, "export", "vm1", "-o", "-", "--format", "xva",
                                      "--digest", "sha1"], [EXE, "--json", "info", "-"])
    try:
        j = json.loads(out)
        T.check(j.get("checksum") == "sha1" and [d["virtual_size"] for d in j["disks"]] == [RAW_SIZE, VHD_SIZE],
                "info - of a piped sha1 export: %s" % j)
    except (ValueError, KeyError, TypeError) as e:
        T.check(False, "info --json - of a piped export: %s (%r, rc %s/%s, %r)" % (e, out[:200], rc1, rc2, e2))
    # the same store on both ends (a copy of a VM through a pipe), the
    # import started first or the export started first, with a temporary
    # snapshot (write lock for a moment) and with a named snapshot: no
    # deadlock on the store lock, whatever the start order
    st.ok("snapshot", "create", "vm1", "--name", "pipe-snap")
    for n, (snap, first) in enumerate(((None, "export"), (None, "import"), ("pipe-snap", "export"),
                                       ("pipe-snap", "import"))):
        what = "export %s-o - | import - into the same store (%s started 1 s first, SNAPPORT_LOCK_TIMEOUT=5)" % (
            "--snapshot %s " % snap if snap else "", first)
        before = st.vms()
        name = "piped-same%d" % n
        rc1, rc2, out, e1, e2 = pipeline([EXE, "--store", st.dir, "export", "vm1", "-o", "-", "--format", "xva"]
                                         + (["--snapshot", snap] if snap else []),
                                         [EXE, "--store", st.dir, "import", "-", "--name", name],
                                         env={"SNAPPORT_LOCK_TIMEOUT": 5}, timeout=60,
                                         reader_first=1.0 if first == "import" else 0.0,
                                         writer_first=1.0 if first == "export" else 0.0)
        if T.check(rc1 == 0 and rc2 == 0, "%s: rc %s/%s, stderr %r / %r" % (what, rc1, rc2, e1.strip(), e2.strip())):
            check_import(st, name, orig, sources, what, set())
            st.ok("vm", "destroy", name)
        else:
            T.check(st.vms() == before, "%s: a failed import changed the VM list: %s" % (what, sorted(st.vms())))
            expect_ok(st.check(), "store check after: %s" % what)
    st.ok("snapshot", "delete", "vm1", "pipe-snap")


def case_determinism(st, sources):
    r = st.sp("snapshot", "create", "vm1", "--name", "s1")
    if not expect_ok(r, "snapshot create s1"):
        return
    plain = None
    for comp in ("none", "gzip", "zstd"):
        for dig in ("xxhash", "sha1"):
            digests = []
            for i in (1, 2):
                out = os.path.join(TMP, "s1-%s-%s-%d.xva" % (comp, dig, i))
                r = st.sp("export", "vm1", "--snapshot", "s1", "-o", out, "--compress", comp, "--digest", dig,
                          timeout=60)
                if expect_ok(r, "export --snapshot s1 --compress %s --digest %s (#%d)" % (comp, dig, i)):
                    digests.append(S.file_sha(out))
                if i == 1 and len(digests) == 1 and comp == "none" and dig == "xxhash":
                    plain = T.read_file(out)
                elif i == 1 and len(digests) == 1 and comp != "none" and dig == "xxhash" and plain is not None:
                    T.check(X.decompress(out) == plain, "export --snapshot s1 --compress %s does not decompress "
                            "to the plain export of the same snapshot" % comp)
            T.check(len(digests) == 2 and digests[0] == digests[1],
                    "the same snapshot exported twice (--compress %s --digest %s) differs: %s" % (comp, dig, digests))
    out = os.path.join(TMP, "s1-none-xxhash-1.xva")
    if os.path.exists(out):
        before = S.file_sha(out)
        r = st.sp("export", "vm1", "--snapshot", "s1", "-o", out, "--digest", "sha1")
        T.check(r.rc == 3 and "force" in r.err, "export over an existing file without --force: %s" % r.describe())
        T.check(S.file_sha(out) == before, "a refused export changed the existing file")
        r = st.sp("export", "vm1", "--snapshot", "s1", "-o", out, "--digest", "sha1", "--force")
        if expect_ok(r, "export --force over an existing file"):
            expect_ok(T.sp(EXE, "verify", out), "verify after export --force")
            check_info(out, "export --force", "sha1", "none", [RAW_SIZE, VHD_SIZE])


def case_suspended():
    st = S.Store(EXE, os.path.join(TMP, "st_susp"), os.path.join(TMP, "flat3"))
    d = os.path.join(TMP, "susp")
    os.makedirs(d)
    disk = bytearray(2 * M)
    disk[M + 100:M + 5000] = RNG.randbytes(4900)
    with open(os.path.join(d, "s.raw"), "wb") as f:
        f.write(disk)
    mem = RNG.randbytes(2 * M + 1000 + 15)   # an odd tail: XXH64 of a short block's last bytes
    mpath = os.path.join(d, "mem.bin")
    with open(mpath, "wb") as f:
        f.write(mem)
    cfg = os.path.join(d, "s.cfg")
    with open(cfg, "w") as f:
        f.write("name = 'sus'\ntype = 'hvm'\nmemory = 512\nvcpus = 2\n"
                "disk = [ 'format=raw, vdev=xvda, access=rw, target=s.raw' ]\nvif = [ 'mac=00:16:3e:00:aa:01' ]\n")
    st.ok("vm", "create", "--config", cfg)
    st.ok("vm", "suspend", "sus", "--image", mpath)
    out = os.path.join(TMP, "sus.xva")
    r = st.sp("export", "sus", "-o", out, timeout=60)
    if not expect_ok(r, "export of a suspended VM"):
        return
    expect_ok(T.sp(EXE, "verify", out), "verify of a suspended VM's export")
    r = T.sp(EXE, "--json", "info", out)
    if expect_ok(r, "info of a suspended VM's export"):
        j = json.loads(r.out)
        sus = [x for x in j.get("disks", []) if x.get("type") == "suspend"]
        if T.check(len(sus) == 1, "info of a suspended VM's export: no (single) disk of type suspend: %s" % j):
            T.check(sus[0]["virtual_size"] in (len(mem), (len(mem) + 511) // 512 * 512),
                    "suspend VDI virtual_size %r, memory image is %d bytes" % (sus[0]["virtual_size"], len(mem)))
            memsrc = mem + bytes(sus[0]["virtual_size"] - len(mem))
            srcs = [bytes(disk), memsrc] if [x["type"] for x in j["disks"]] == ["user", "suspend"] else None
            if T.check(srcs is not None, "suspended export: disk order %s" % [x["type"] for x in j["disks"]]):
                check_listing(out, "suspended export", "xxhash", srcs)
    r = st.sp("import", out, "--name", "sus-copy", timeout=60)
    if not expect_ok(r, "import of a suspended VM"):
        return
    j = st.show("sus-copy", fatal=False) or {}
    T.check(j.get("power_state") == "suspended", "imported suspended VM is %r" % j.get("power_state"))
    f = j.get("suspend_file")
    if T.check(f and os.path.isfile(f), "imported suspended VM has no memory image file: %s" % j):
        # the memory image is a plain file (.mem); older builds: a VHD
        got = (st.flatten(f) or b"") if f.endswith(".vhd") else T.read_file(f)
        T.check(got == mem or (got[:len(mem)] == mem and not any(got[len(mem):]) and len(got) % 512 == 0
                               and len(got) - len(mem) < 512),
                "imported memory image (%d bytes) is not mem.bin (%d bytes)" % (len(got), len(mem)))
    dig = st.disk_digests("sus-copy", fatal=False) or {}
    T.check(dig.get("xvda") == S.sha(bytes(disk)), "imported suspended VM: disk content differs")
    orig = st.show("sus")
    T.check(j.get("suspend_vdi") != orig.get("suspend_vdi"), "the imported memory VDI kept its uuid")
    expect_ok(st.check(), "store check after the suspended import")


def main():
    global EXE, TMP
    EXE, TMP = T.setup()
    X.xxh64_selftest()
    cfg, sources = make_sources()
    st = S.Store(EXE, os.path.join(TMP, "st"), os.path.join(TMP, "flat"))
    st.ok("vm", "create", "--config", cfg, what="vm create")
    orig = st.show("vm1")
    dig = st.disk_digests("vm1")
    for vdev, src in sources.items():
        if dig.get(vdev) != S.sha(src):
            T.fatal("the store's copy of %s differs from the source before any export (test setup)" % vdev)
    case_exports(st, orig, sources)
    case_pipe(st, orig, sources)
    case_determinism(st, sources)
    case_suspended()
    expect_ok(st.check(), "store check at the end")
    T.finish("test_xva_roundtrip")


if __name__ == "__main__":
    main()
