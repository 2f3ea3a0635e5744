"""The store end to end, as a user drives it (store/store.h, CLI.md).

Cases:
  create      vm create from a realistic xl.cfg (raw disk with pseudo-random
              content, VHD made with `disk create` + writes, a cdrom, a vif
              with a MAC, uninterpreted keys); relative disk paths resolve
              from the cfg's folder; the store's disks equal the sources
              (digests computed from the source file / the bytes written).
  config      `vm config` text parsed back by `vm create --config` (renamed,
              uuid line dropped): same memory, vcpus, disk order, MACs,
              content, uninterpreted keys kept; also with the store given
              as a relative path (the default ./snapport-store), the cfg
              saved in another folder.
  revert      write, snapshot s1, write more, revert to s1: s1-time content.
  gc          snapshot delete + gc: VM and remaining snapshots unchanged,
              chain depth decreases; gc --dry-run changes nothing (every file
              and every catalog row identical) and lists the coalesces.
  clone       fast and --full, from a VM and from a snapshot: new UUID, new
              00:16:3e MACs, same content; a write into a clone changes
              neither its source nor the other clones.
  memory      vm suspend --image, snapshot --memory, vm halt, revert: the VM
              is suspended again with exactly the image (or it padded to
              512 bytes), and so is the snapshot m1;
              --memory on a halted VM: exit 3, "no memory".
  limits      30 snapshots (a tree, chains short) then the 31st refused
              naming 30 and how to free one; delete one and it works again.
              30 snapshots in a straight line (31 files) work too, the 31st
              is refused; delete (+ gc, whose need the message names) frees
              one.
  errors      xl.cfg syntax error: exit 3, file:line named; a missing disk:
              exit 3, the disk named, nothing added (vm list empty, store
              check ok, store/vdis empty).
  check       store check exit 0 at the end; exit 1 after a VDI file is
              removed by hand or a stray file added; gc removes the stray.
"""

import os
import random
import shutil
import sys

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402

K, M = S.K, S.M
EXE = TMP = None
RNG = random.Random(20240531)
MAC = "00:16:3e:5a:01:02"


def write_vm_disk(st, vm, vdev, offset, byte, length):
    """disk write into the current leaf of a VM's disk."""
    j = st.show(vm)
    f = [d["file"] for d in j["disks"] if d["vdev"] == vdev][0]
    r = S.run_env([EXE, "disk", "write", f, "--offset", offset, "--pattern", byte, "--length", length])
    if r.rc != 0:
        T.fatal("disk write into %s of %s failed: %s" % (vdev, vm, r.describe()))


def vdevs(j):
    return [d["vdev"] for d in j["disks"]]


def expect_fail(r, what, words, rc=3):
    """Exit rc with one 'snapport: ...' line containing every word."""
    if not T.check(r.rc == rc, "%s: expected exit %d, got %s" % (what, rc, r.describe())):
        return False
    S.one_error_line(r, what)
    for w in words:
        T.check(w in r.err, "%s: the message does not mention %r: %r" % (what, w, r.err.strip()))
    return True


# ---------------------------------------------------------------- sources

def make_sources():
    """A cfg folder with disks/ beside it; returns (cfg path, digests by vdev, sizes)."""
    d = os.path.join(TMP, "cfgdir")
    os.makedirs(os.path.join(d, "disks"))
    raw = RNG.randbytes(6 * M)
    with open(os.path.join(d, "disks", "sys.raw"), "wb") as f:
        f.write(raw)
    vhd = os.path.join(d, "disks", "data.vhd")
    T.sp_ok(EXE, "disk", "create", vhd, "--size", "8M")
    model = bytearray(8 * M)
    for off, byte, n in ((0, 0x11, 4096), (3 * M - 512, 0x5a, 70000), (8 * M - 1024, 0xee, 1024)):
        T.sp_ok(EXE, "disk", "write", vhd, "--offset", off, "--pattern", "0x%02x" % byte, "--length", n)
        model[off:off + n] = bytes([byte]) * n
    blob = RNG.randbytes(300000)
    bpath = os.path.join(TMP, "blob.bin")
    with open(bpath, "wb") as f:
        f.write(blob)
    T.sp_ok(EXE, "disk", "write", vhd, "--offset", 5 * M + 512, "--from", bpath)
    model[5 * M + 512:5 * M + 512 + len(blob)] = blob
    with open(os.path.join(d, "install.iso"), "wb") as f:
        f.write(b"\0" * 65536)
    cfg = os.path.join(d, "web01.cfg")
    with open(cfg, "w") as f:
        f.write("""# a guest as xl knows it
name = "web01"
type = "hvm"
memory = 768
vcpus = 2
disk = [ 'format=raw, vdev=xvda, access=rw, target=disks/sys.raw',
         'format=vhd, vdev=xvdb, access=rw, target=disks/data.vhd',
         'format=raw, vdev=hdc, access=ro, devtype=cdrom, target=install.iso' ]
vif = [ 'mac=%s, bridge=xenbr0' ]
serial = 'pty'
viridian = 1
on_crash = 'restart'
""" % MAC)
    return cfg, {"xvda": S.sha(raw), "xvdb": S.sha(bytes(model))}


# ---------------------------------------------------------------- cases

def case_errors():
    """Bad configs on a fresh store: nothing may be added."""
    st = S.Store(EXE, os.path.join(TMP, "st_err"), os.path.join(TMP, "flat"))
    d = os.path.join(TMP, "badcfg")
    os.makedirs(d)
    with open(os.path.join(d, "present.raw"), "wb") as f:
        f.write(RNG.randbytes(2 * M))
    syntax = os.path.join(d, "syntax.cfg")
    with open(syntax, "w") as f:
        f.write('name = "bad"\nmemory = 256\nvcpus = 1\nviridian = = 1\n'
                "disk = [ 'format=raw, vdev=xvda, target=present.raw' ]\n")
    r = st.sp("vm", "create", "--config", syntax)
    expect_fail(r, "vm create with a syntax error", ["syntax.cfg", "syntax.cfg:4"])

    missing = os.path.join(d, "missing.cfg")
    with open(missing, "w") as f:
        f.write('name = "gone"\nmemory = 256\nvcpus = 1\n'
                "disk = [ 'format=raw, vdev=xvda, target=present.raw', "
                "'format=raw, vdev=xvdb, target=not-there.raw' ]\n")
    r = st.sp("vm", "create", "--config", missing)
    expect_fail(r, "vm create with a missing disk", ["not-there.raw"])

    T.check(st.vms() == {}, "failed vm creates left VMs: %s" % st.vms())
    r = st.check()
    T.check(r.rc == 0, "store check after failed creates: %s" % r.describe())
    vd = os.path.join(st.dir, "vdis")
    T.check(not os.path.isdir(vd) or os.listdir(vd) == [],
            "failed vm creates left files in store/vdis: %s" % (os.listdir(vd) if os.path.isdir(vd) else None))


def case_create(st, cfg, want):
    # run from elsewhere: relative disk paths are the cfg's folder's
    r = S.run_env([EXE, "--store", st.dir, "vm", "create", "--config", os.path.relpath(cfg, TMP)], cwd=TMP)
    if r.rc != 0:
        T.fatal("vm create --config %s: %s" % (cfg, r.describe()))
    j = st.show("web01")
    T.check(j["name"] == "web01" and (j["memory"] / 2**20) == 768 and j["vcpus"] == 2 and j["type"] == "hvm",
            "vm show after create: name/memory/vcpus/type wrong: %s" % j)
    T.check(vdevs(j) == ["xvda", "xvdb", "hdc"], "disk order after create: %s" % vdevs(j))
    T.check([d["cdrom"] for d in j["disks"]] == [False, False, True], "cdrom flags: %s" % j["disks"])
    T.check(j["vifs"] == [MAC], "MACs after create: %s, expected [%s]" % (j["vifs"], MAC))
    T.check(j["power_state"] == "halted", "new VM not halted: %s" % j["power_state"])
    for d in j["disks"][:2]:
        T.check(d["file"].startswith(os.path.join(st.dir, "vdis") + "/"),
                "disk %s is not in the store: %s" % (d["vdev"], d["file"]))
    got = st.disk_digests("web01")
    T.check(got == want, "store content differs from the source disks: %s, expected %s" % (got, want))
    sizes = {d["vdev"]: len(st.flatten(d["file"]) or b"") for d in j["disks"][:2]}
    T.check(sizes == {"xvda": 6 * M, "xvdb": 8 * M}, "virtual sizes in the store: %s" % sizes)
    text = st.ok("vm", "config", "web01").out
    for key in ("serial = 'pty'", "viridian = 1"):
        T.check(key in text, "vm config lost %r:\n%s" % (key, text))


def case_config_roundtrip(st, want):
    text = st.ok("vm", "config", "web01").out
    lines = []
    for l in text.splitlines():
        if l.replace(" ", "").startswith("name="):
            l = "name = 'web01-copy'"
        elif l.replace(" ", "").startswith("uuid="):
            continue
        lines.append(l)
    d = os.path.join(TMP, "roundtrip")
    os.makedirs(d)
    cfg = os.path.join(d, "copy.cfg")
    with open(cfg, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = st.sp("vm", "create", "--config", cfg)
    if not T.check(r.rc == 0, "vm create from the output of vm config: %s\n%s" % (r.describe(), text)):
        return
    a, b = st.show("web01"), st.show("web01-copy")
    T.check(b["uuid"] != a["uuid"], "round trip kept the uuid")
    for k in ("memory", "vcpus", "type", "vifs"):
        T.check(a[k] == b[k], "round trip changed %s: %s -> %s" % (k, a[k], b[k]))
    T.check(vdevs(a) == vdevs(b), "round trip changed the disk order: %s -> %s" % (vdevs(a), vdevs(b)))
    T.check([d["cdrom"] for d in b["disks"]] == [False, False, True], "round trip cdrom flags: %s" % b["disks"])
    T.check(st.disk_digests("web01-copy") == want, "round trip changed the disk content")
    text2 = st.ok("vm", "config", "web01-copy").out
    for key in ("serial = 'pty'", "viridian = 1"):
        T.check(key in text2, "round trip lost %r:\n%s" % (key, text2))
    st.ok("vm", "destroy", "web01-copy")


def case_config_relative_store():
    """The default store is ./snapport-store, a relative path: `vm config`
    must still name disks that resolve wherever the cfg is saved (xl takes
    relative targets from its cwd, vm create from the cfg's folder)."""
    d = os.path.join(TMP, "relstore")
    os.makedirs(os.path.join(d, "elsewhere"))
    with open(os.path.join(d, "r.raw"), "wb") as f:
        f.write(RNG.randbytes(M))
    with open(os.path.join(d, "r1.cfg"), "w") as f:
        f.write("name = 'r1'\nmemory = 128\nvcpus = 1\ndisk = [ 'format=raw, vdev=xvda, target=r.raw' ]\n")
    base = [EXE, "--store", "snapport-store"]
    r = S.run_env(base + ["vm", "create", "--config", "r1.cfg"], cwd=d)
    if not T.check(r.rc == 0, "vm create with a relative store path: %s" % r.describe()):
        return
    r = S.run_env(base + ["vm", "config", "r1"], cwd=d)
    text = r.out
    targets = [l for l in text.splitlines() if "target=" in l]
    T.check(all("target=/" in l for l in targets),
            "vm config (store given as a relative path) names relative disk paths: %s" % targets)
    lines = [l for l in text.splitlines() if not l.replace(" ", "").startswith("uuid=")]
    lines = ["name = 'r2'" if l.replace(" ", "").startswith("name=") else l for l in lines]
    with open(os.path.join(d, "elsewhere", "r2.cfg"), "w") as f:
        f.write("\n".join(lines) + "\n")
    r = S.run_env(base + ["vm", "create", "--config", "elsewhere/r2.cfg"], cwd=d)
    T.check(r.rc == 0, "vm create from vm config saved in another folder (relative store): %s" % r.describe())


def case_revert(st):
    write_vm_disk(st, "web01", "xvda", 1 * M, "0x21", 3 * 4096)
    write_vm_disk(st, "web01", "xvdb", 7 * M, "0x22", 5000)
    d1 = st.disk_digests("web01")
    st.ok("snapshot", "create", "web01", "--name", "s1")
    T.check(st.disk_digests("s1") == d1, "snapshot s1 content differs from the VM's at snapshot time")
    write_vm_disk(st, "web01", "xvda", 2 * M + 512, "0x23", 9000)
    write_vm_disk(st, "web01", "xvdb", 0, "0x24", 2 * M + 4096)
    d2 = st.disk_digests("web01")
    T.check(d2["xvda"] != d1["xvda"] and d2["xvdb"] != d1["xvdb"], "writes after the snapshot changed nothing")
    T.check(st.disk_digests("s1") == d1, "writes into the VM changed snapshot s1")
    r = st.sp("snapshot", "revert", "web01", "s1")
    T.check(r.rc == 0, "snapshot revert: %s" % r.describe())
    T.check(st.disk_digests("web01") == d1, "after revert to s1 the VM's content is not s1's")
    T.check(st.disk_digests("s1") == d1, "revert changed snapshot s1")
    cur = [s for s in st.snapshots("web01") if s["current"]]
    T.check([s["name"] for s in cur] == ["s1"], "after revert the current snapshot is %s" % cur)
    return d1


def case_gc(st, d1):
    """s1 (from case_revert), s2, s3 in a line; delete s1 and s2; gc."""
    write_vm_disk(st, "web01", "xvda", 4 * M, "0x31", 70000)
    st.ok("snapshot", "create", "web01", "--name", "s2")
    write_vm_disk(st, "web01", "xvdb", 6 * M, "0x32", 3 * M // 2)
    st.ok("snapshot", "create", "web01", "--name", "s3")
    write_vm_disk(st, "web01", "xvda", 5 * M, "0x33", 512)
    write_vm_disk(st, "web01", "xvdb", 4 * M - 512, "0x34", 1024)
    before = {n: st.disk_digests(n) for n in ("web01", "s1", "s2", "s3")}
    T.check(before["s1"] == d1, "s1 changed by later snapshots")
    depth0 = st.chain_depths("web01")
    T.check(depth0 == {"xvda": 4, "xvdb": 4}, "chain depths before delete: %s, expected 4 (s1, s2, s3, leaf)" % depth0)
    st.ok("snapshot", "delete", "web01", "s1")
    st.ok("snapshot", "delete", "web01", "s2")
    T.check([s["name"] for s in st.snapshots("web01")] == ["s3"],
            "snapshots after deleting s1, s2: %s" % [s["name"] for s in st.snapshots("web01")])
    r = st.sp("vm", "show", "s1")
    T.check(r.rc == 3, "vm show of the deleted snapshot s1: %s" % r.describe())
    T.check(st.disk_digests("web01") == before["web01"] and st.disk_digests("s3") == before["s3"],
            "snapshot delete changed the content of web01 or s3")

    # dry run: nothing changes, the coalesces are listed
    files0, rows0 = st.files(), st.catalog_dump()
    r = st.sp("gc", "--dry-run")
    T.check(r.rc == 0, "gc --dry-run: %s" % r.describe())
    lines = [l for l in r.out.splitlines() if l.startswith("coalesce ")]
    T.check(len(lines) >= 4, "gc --dry-run should list the 4 coalesces (2 deleted snapshots x 2 disks): %r" % r.out)
    jr = st.json("gc", "--dry-run")
    T.check(jr is not None and jr.get("dry_run") is True
            and len([a for a in jr["actions"] if a["action"].startswith("coalesce ")]) >= 4,
            "gc --dry-run --json: %s" % jr)
    T.check(st.files() == files0, "gc --dry-run changed files of the store")
    T.check(st.catalog_dump() == rows0, "gc --dry-run changed the catalog")
    T.check(st.chain_depths("web01") == depth0, "gc --dry-run changed the chain depth")

    r = st.sp("gc")
    T.check(r.rc == 0, "gc: %s" % r.describe())
    depth1 = st.chain_depths("web01")
    T.check(all(depth1[k] < depth0[k] for k in depth0), "gc did not shorten the chains: %s -> %s" % (depth0, depth1))
    T.check(depth1 == {"xvda": 2, "xvdb": 2}, "chain depths after gc: %s, expected 2 (s3, leaf)" % depth1)
    T.check(st.disk_digests("web01") == before["web01"], "gc changed the VM's content")
    T.check(st.disk_digests("s3") == before["s3"], "gc changed snapshot s3's content")
    r = st.sp("gc", "--dry-run")
    T.check(r.rc == 0 and "coalesce " not in r.out, "gc left coalesces to do: %s" % r.describe())
    r = st.check()
    T.check(r.rc == 0, "store check after gc: %s" % r.describe())
    return before["s3"]


def case_clones(st, d_s3):
    src = st.show("web01")
    d_vm = st.disk_digests("web01")
    made = {}
    for name, source, full, want in (("cf", "web01", False, d_vm), ("cF", "web01", True, d_vm),
                                     ("sf", "s3", False, d_s3), ("sF", "s3", True, d_s3)):
        args = ["clone", source, "--name", name] + (["--full"] if full else [])
        r = st.sp(*args)
        what = "clone %s%s -> %s" % (source, " --full" if full else "", name)
        if not T.check(r.rc == 0, "%s: %s" % (what, r.describe())):
            continue
        j = st.show(name)
        made[name] = j
        T.check(j["uuid"] != src["uuid"] and j["snapshot_of"] is None, "%s: uuid/snapshot_of wrong: %s" % (what, j))
        T.check(len(j["vifs"]) == 1, "%s: vifs %s" % (what, j["vifs"]))
        for mac in j["vifs"]:
            T.check(mac.lower().startswith("00:16:3e:") and len(mac) == 17 and mac.lower() != MAC,
                    "%s: MAC %s is not a new 00:16:3e address" % (what, mac))
        T.check(vdevs(j) == vdevs(src) and j["memory"] == src["memory"] and j["vcpus"] == src["vcpus"],
                "%s: config differs from the source: %s" % (what, j))
        T.check(st.disk_digests(name) == want, "%s: content differs from the source" % what)
        if full:
            for d in j["disks"][:2]:
                T.check(st.chain_depths(name)[d["vdev"]] == 1, "%s: a full clone's disk is not one file" % what)
    uuids = [j["uuid"] for j in made.values()] + [src["uuid"]]
    T.check(len(set(uuids)) == len(uuids), "clones share UUIDs: %s" % uuids)
    macs = [m for j in made.values() for m in j["vifs"]] + [MAC]
    T.check(len(set(macs)) == len(macs), "clones share MACs: %s" % macs)
    T.check(st.disk_digests("web01") == d_vm, "cloning changed the source VM")
    T.check(st.disk_digests("s3") == d_s3, "cloning changed snapshot s3")
    # clones are independent: a write into one changes nothing else
    for name in made:
        write_vm_disk(st, name, "xvda", 0, "0x7%d" % list(made).index(name), 4096)
    T.check(st.disk_digests("web01") == d_vm, "a write into a clone changed the source VM")
    T.check(st.disk_digests("s3") == d_s3, "a write into a clone changed snapshot s3")
    digs = [st.disk_digests(n)["xvda"] for n in made]
    T.check(len(set(digs)) == len(digs), "clones share written content")
    r = st.check()
    T.check(r.rc == 0, "store check after clones: %s" % r.describe())
    for name in made:
        st.ok("vm", "destroy", name)


def same_memory(st, j, mem, what):
    """The flattened memory image is mem.bin, exactly or padded to 512 bytes."""
    got = st.flatten(st.memory_file(j)) or b""
    padded = mem + b"\0" * (-len(mem) % 512)
    if got != mem:
        T.same_bytes(got, padded, what + " (mem.bin, or mem.bin padded to 512)")


def case_memory(st):
    mem = RNG.randbytes(300 * K + 77)   # not a multiple of 512
    mpath = os.path.join(TMP, "mem.bin")
    with open(mpath, "wb") as f:
        f.write(mem)
    d_vm = st.disk_digests("web01")
    nsnap = len(st.snapshots("web01"))

    r = st.sp("snapshot", "create", "web01", "--memory", "--name", "nomem")
    expect_fail(r, "snapshot --memory of a halted VM", ["web01", "no memory"])
    T.check(len(st.snapshots("web01")) == nsnap, "a refused --memory snapshot was added")

    r = st.sp("vm", "suspend", "web01", "--image", mpath)
    if not T.check(r.rc == 0, "vm suspend --image: %s" % r.describe()):
        return
    j = st.show("web01")
    T.check(j["power_state"] == "suspended" and j["suspend_vdi"], "after vm suspend: %s" % j)
    if j["suspend_vdi"]:
        same_memory(st, j, mem, "memory image after vm suspend")
    r = st.sp("snapshot", "create", "web01", "--memory", "--name", "m1")
    T.check(r.rc == 0, "snapshot create --memory: %s" % r.describe())
    m1 = [s for s in st.snapshots("web01") if s["name"] == "m1"]
    T.check(len(m1) == 1 and m1[0]["memory"] is True, "snapshot list: m1 not a memory snapshot: %s" % m1)
    r = st.check()
    T.check(r.rc == 0, "store check after a memory snapshot: %s" % r.describe())
    r = st.sp("vm", "halt", "web01")
    T.check(r.rc == 0, "vm halt: %s" % r.describe())
    j = st.show("web01")
    T.check(j["power_state"] == "halted" and not j["suspend_vdi"], "after vm halt: %s" % j)
    write_vm_disk(st, "web01", "xvdb", 1 * M, "0x44", 4096)
    r = st.sp("snapshot", "revert", "web01", "m1")
    T.check(r.rc == 0, "snapshot revert to the memory snapshot: %s" % r.describe())
    j = st.show("web01")
    T.check(j["power_state"] == "suspended" and j["suspend_vdi"], "after revert to m1 the VM is not suspended: %s" % j)
    if j["suspend_vdi"]:
        same_memory(st, j, mem, "memory image after revert to m1")
    js = st.show("m1")
    T.check(js["power_state"] == "suspended" and js["suspend_vdi"], "vm show m1: no memory image: %s" % js)
    if js["suspend_vdi"]:
        same_memory(st, js, mem, "memory image of snapshot m1")
    T.check(st.disk_digests("web01") == d_vm, "revert to m1: disk content is not m1's")
    r = st.check()
    T.check(r.rc == 0, "store check after revert to a memory snapshot: %s" % r.describe())
    st.ok("vm", "halt", "web01")
    st.ok("snapshot", "delete", "web01", "m1")


def small_vm(st, name):
    d = os.path.join(TMP, "small")
    os.makedirs(d, exist_ok=True)
    raw = os.path.join(d, name + ".raw")
    with open(raw, "wb") as f:
        f.write(RNG.randbytes(1 * M))
    cfg = os.path.join(d, name + ".cfg")
    with open(cfg, "w") as f:
        f.write("name = '%s'\nmemory = 128\nvcpus = 1\ndisk = [ 'format=raw, vdev=xvda, target=%s' ]\n"
                "vif = [ 'bridge=xenbr0' ]\n" % (name, raw))
    st.ok("vm", "create", "--config", cfg)


def case_snapshot_limit(st):
    """30 snapshots in a tree (every one taken after a revert to the first,
    so the chains stay 3 files long), then the 31st is refused."""
    small_vm(st, "many")
    st.ok("snapshot", "create", "many", "--name", "t0")
    for i in range(1, 30):
        r = st.sp("snapshot", "revert", "many", "t0")
        if r.rc == 0:
            r = st.sp("snapshot", "create", "many", "--name", "t%d" % i)
        if not T.check(r.rc == 0, "snapshot %d of 30 (revert + create) failed: %s" % (i + 1, r.describe())):
            return
    T.check(len(st.snapshots("many")) == 30, "snapshot list: %d snapshots, expected 30" % len(st.snapshots("many")))
    d = st.chain_depths("many")
    T.check(d["xvda"] <= 3, "tree of snapshots: chain depth %s" % d)
    r = st.sp("snapshot", "create", "many", "--name", "t30")
    expect_fail(r, "the 31st snapshot", ["many", "30", "snapshot delete"])
    T.check(len(st.snapshots("many")) == 30, "the refused 31st snapshot was added")
    st.ok("snapshot", "delete", "many", "t7")
    r = st.sp("snapshot", "create", "many", "--name", "t30")
    T.check(r.rc == 0, "after deleting one of 30 snapshots, a new one is still refused: %s" % r.describe())
    r = st.sp("snapshot", "create", "many", "--name", "t31")
    expect_fail(r, "the 31st snapshot (again)", ["30"])
    st.ok("vm", "destroy", "many")


def case_chain_limit(st):
    """30 snapshots in a straight line (a chain of 30 layers and the leaf, 31
    files) all work; the 31st is refused naming the limit 30 and how to free
    one.  After deleting one, a snapshot works again once gc has coalesced
    the deleted layer (delete defers the coalesce; if the create is refused
    before gc its message must say to run gc)."""
    small_vm(st, "line")
    for i in range(1, 31):
        r = st.sp("snapshot", "create", "line", "--name", "l%d" % i)
        if not T.check(r.rc == 0, "snapshot %d of 30 in a line refused: %s" % (i, r.describe())):
            return
    T.check(st.chain_depths("line")["xvda"] == 31, "chain after 30 snapshots: %s" % st.chain_depths("line"))
    r = st.sp("snapshot", "create", "line", "--name", "l31")
    expect_fail(r, "the 31st snapshot in a line", ["line", "30", "snapshot delete"])
    T.check(len(st.snapshots("line")) == 30, "the refused 31st snapshot was added")
    st.ok("snapshot", "delete", "line", "l5")
    r = st.sp("snapshot", "create", "line", "--name", "again")
    if r.rc != 0:
        print("NOTE: after deleting one of 30 snapshots in a line, snapshot create before gc: %s" % r.err.strip())
        expect_fail(r, "snapshot after delete, before gc", ["gc"])
        st.ok("gc")
        T.check(st.chain_depths("line")["xvda"] == 30, "gc after deleting l5: depth %s" % st.chain_depths("line"))
        r = st.sp("snapshot", "create", "line", "--name", "again")
    T.check(r.rc == 0, "after delete (+ gc) a snapshot is still refused: %s" % r.describe())
    r = st.sp("snapshot", "create", "line", "--name", "over")
    expect_fail(r, "the 31st snapshot in a line (again)", ["30"])
    r = st.check()
    T.check(r.rc == 0, "store check with 30 snapshots in a line: %s" % r.describe())
    st.ok("vm", "destroy", "line")


def case_check(st):
    r = st.check()
    T.check(r.rc == 0 and not r.err, "store check at the end: %s" % r.describe())
    # a VDI file removed by hand
    dmg = S.Store(EXE, os.path.join(TMP, "st_missing"), os.path.join(TMP, "flat"))
    shutil.copytree(st.dir, dmg.dir)
    j = dmg.show("web01")
    victim = j["disks"][1]["file"]
    T.check(victim.startswith(dmg.dir + "/"), "vm show of the copied store names %s" % victim)
    os.unlink(victim)
    r = dmg.check()
    if T.check(r.rc == 1, "store check with a VDI file removed: expected exit 1, got %s" % r.describe()):
        S.one_error_line(r, "store check with a VDI file removed")
        T.check(os.path.basename(victim) in r.out and "missing" in r.out,
                "store check does not name the missing file %s: %r" % (os.path.basename(victim), r.out))
    # a stray file in vdis/
    stray = S.Store(EXE, os.path.join(TMP, "st_stray"), os.path.join(TMP, "flat"))
    shutil.copytree(st.dir, stray.dir)
    digs = stray.digests()
    sp = os.path.join(stray.dir, "vdis", "stray.vhd")
    with open(sp, "wb") as f:
        f.write(b"junk" * 1000)
    r = stray.check()
    if T.check(r.rc == 1, "store check with a stray file: expected exit 1, got %s" % r.describe()):
        S.one_error_line(r, "store check with a stray file")
        T.check("stray.vhd" in r.out, "store check does not name stray.vhd: %r" % r.out)
    r = stray.sp("gc")
    T.check(r.rc == 0 and "stray.vhd" in r.out, "gc with a stray file: %s" % r.describe())
    T.check(not os.path.exists(sp), "gc left the stray file")
    r = stray.check()
    T.check(r.rc == 0, "store check after gc removed the stray file: %s" % r.describe())
    T.check(stray.digests() == digs, "gc of a stray file changed content")


def main():
    global EXE, TMP
    EXE, TMP = T.setup()
    case_errors()
    cfg, want = make_sources()
    st = S.Store(EXE, os.path.join(TMP, "store"), os.path.join(TMP, "flat"))
    case_create(st, cfg, want)
    case_config_roundtrip(st, want)
    case_config_relative_store()
    d1 = case_revert(st)
    d_s3 = case_gc(st, d1)
    case_clones(st, d_s3)
    case_memory(st)
    case_snapshot_limit(st)
    case_chain_limit(st)
    case_check(st)
    T.finish("test_store_basic")


if __name__ == "__main__":
    main()
