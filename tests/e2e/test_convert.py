"""snapport convert IN OUT: XVA -> OVA and OVA -> XVA without a store, the
disks streamed from one archive into the other (CLI.md "Archives").

Cases:
  xva_to_ova  a VM from an xl.cfg (hvm, memory 640, vcpus 2, xvda a raw disk
              of 9 MiB + 512 with random runs and a random last sector, xvdb
              4 MiB with a random MiB and a patterned last grain, two vifs):
              export -o vm.xva, convert vm.xva c.ova: verify c.ova exits 0;
              import --name: each disk flattened equals its source, vdevs,
              vcpus, memory, MACs; qemu-img compare of each VMDK member
              against its source (when qemu-img is installed); convert to
              stdout (- --format ova) gives an OVA that verifies; from a pipe
              (cat vm.xva | convert - p.ova: the disks stream in the VM's
              order, one reading) too.
  ova_to_xva  export -o vm.ova, convert vm.ova c.xva: verify, import, equal;
              the same from a pipe (cat vm.ova | convert - p.xva) and to a
              pipe (convert vm.ova - --format xva | import -).
  refusals    IN already of OUT's format: exit 3; OUT that
              exists: exit 3 and untouched, --force replaces it; OUT "-"
              without --format: exit 2.
  damaged     a byte flipped inside a VMDK grain, a manifest digest changed,
              an XVA block changed, an XVA cut short: exit 3, one error line,
              no output file and nothing else left in its folder.
  order       an XVA whose VBDs point at the VDIs in the other order than
              the stream's (disk 0 is the second VDI): convert to OVA takes
              the disks in the stream's order (each waits in its spool);
              verify, import: each vdev holds the right bytes. The same XVA
              from a pipe converts too, and verifies and imports the same.
  suspended   a suspended VM's XVA: convert says on stderr that the memory
              image is not carried; the OVA verifies and imports halted with
              its disk equal.
  peers       (qemu-img) OVAs with a qemu-img streamOptimized VMDK and a
              monolithicSparse VMDK and a minimal VMware-like OVF: convert to
              XVA, verify, import: the disk equals the source.
  memory      a 256 MiB disk of random bytes: convert both ways under
              /usr/bin/time -f %M: peak RSS below 128 MiB (not checked in a
              sanitizer build), outputs verify.
"""

import io
import os
import random
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402
import xvatest as X  # noqa: E402

K, M = S.K, S.M
EXE = TMP = None
RNG = random.Random(20250301)
VM = "conv src"
MACS = ["00:16:3e:5c:00:01", "00:16:3e:5c:00:02"]
A_SIZE = 9 * M + 512
B_SIZE = 4 * M
RSS_MAX_KIB = 128 * 1024


# ---------------------------------------------------------------- helpers

expect_ok = T.expect_ok
write = T.write_file
def env_clean():
    e = dict(os.environ)
    for k in ("SNAPPORT_STORE", "SNAPPORT_CRASH_AFTER", "SNAPPORT_CRASH_LOG", "SNAPPORT_LOCK_TIMEOUT"):
        e.pop(k, None)
    return e


def shell(cmd, timeout=120):
    """A shell pipeline -> (rc, stdout bytes, stderr text); never hangs."""
    try:
        p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, timeout=timeout,
                           env=env_clean())
        return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        return "TIMEOUT", b"", "timed out: %s" % cmd


def q(path):
    return "'" + str(path).replace("'", "'\\''") + "'"


def convert(*args, timeout=120):
    return T.sp(EXE, "convert", *args, timeout=timeout)


def tar_members(path):
    out = []
    with tarfile.open(path, mode="r:") as t:
        for ti in t:
            out.append((ti.name, t.extractfile(ti).read() if ti.isreg() else b""))
    return out


def ova_bytes(mems):
    """A GNU tar of [(name, bytes)], as OVAs are."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:", format=tarfile.GNU_FORMAT) as t:
        for name, data in mems:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def import_check(st, path, name, want, what, macs=None, halted=False):
    """import path --name name; want: {vdev: bytes}."""
    r = st.sp("import", path, "--name", name, timeout=120)
    if not expect_ok(r, "%s: import" % what):
        return
    j = st.show(name, fatal=False)
    if not T.check(j is not None, "%s: vm show %s" % (what, name)):
        return
    disks = [d for d in j["disks"] if not d["cdrom"] and d["vdi"]]
    T.check(sorted(d["vdev"] for d in disks) == sorted(want),
            "%s: vdevs %s, expected %s" % (what, [d["vdev"] for d in disks], sorted(want)))
    for d in disks:
        if d["vdev"] in want:
            data = st.flatten(d["file"])
            if data is not None:
                T.same_bytes(data, want[d["vdev"]], "%s: disk %s flattened" % (what, d["vdev"]))
    if macs is not None:
        T.check(j["vifs"] == macs, "%s: MACs %s, expected %s" % (what, j["vifs"], macs))
    if halted:
        T.check(j.get("power_state") == "halted", "%s: imported VM is %r, expected halted" % (
            what, j.get("power_state")))
    return j


def expect_refused(r, out, what, rc=3):
    T.check(r.rc == rc, "%s: exit %s, expected %d: %s" % (what, r.rc, rc, r.describe()))
    if rc == 3:
        S.one_error_line(r, what)
    T.check(not os.path.exists(out), "%s: %s was left behind" % (what, out))


# ---------------------------------------------------------------- sources

def make_vm(st):
    d = os.path.join(TMP, "src")
    os.makedirs(d)
    a = bytearray(A_SIZE)
    a[0:M] = RNG.randbytes(M)
    a[5 * M + 4096 + 7:5 * M + 4096 + 7 + 300 * K] = RNG.randbytes(300 * K)
    a[8 * M + 100:8 * M + 200] = b"\xa5" * 100
    a[A_SIZE - 512:] = RNG.randbytes(512)
    b = bytearray(B_SIZE)
    b[M:2 * M] = RNG.randbytes(M)
    b[B_SIZE - 64 * K:] = b"\x5a" * (64 * K)
    write(os.path.join(d, "a.raw"), a)
    write(os.path.join(d, "b.raw"), b)
    cfg = os.path.join(d, "vm.cfg")
    with open(cfg, "w") as f:
        f.write("""name = "%s"
type = "hvm"
memory = 640
vcpus = 2
disk = [ 'format=raw, vdev=xvda, access=rw, target=a.raw',
         'format=raw, vdev=xvdb, access=rw, target=b.raw' ]
vif = [ 'mac=%s, bridge=xenbr0', 'mac=%s, bridge=xenbr1' ]
""" % (VM, MACS[0], MACS[1]))
    st.ok("vm", "create", "--config", cfg, what="vm create")
    return {"xvda": bytes(a), "xvdb": bytes(b)}, {"xvda": os.path.join(d, "a.raw"), "xvdb": os.path.join(d, "b.raw")}


# ---------------------------------------------------------------- 1. XVA -> OVA

def case_xva_to_ova(st, srcs, paths, xva):
    out = os.path.join(TMP, "c.ova")
    r = convert(xva, out)
    if not expect_ok(r, "convert vm.xva c.ova") or not T.check(os.path.isfile(out), "convert: no c.ova"):
        return
    expect_ok(T.sp(EXE, "verify", out), "verify c.ova")
    j = import_check(st, out, "from-ova", srcs, "convert XVA -> OVA", macs=MACS)
    if j:
        T.check(j["vcpus"] == 2 and (j["memory"] / 2**20) == 640, "convert XVA -> OVA: vcpus %r memory %r" % (
            j["vcpus"], (j["memory"] / 2**20)))
        T.check([d["vdev"] for d in j["disks"]] == ["xvda", "xvdb"], "convert XVA -> OVA: disk order %s" % (
            [d["vdev"] for d in j["disks"]]))
    if T.run(["which", "qemu-img"]).rc == 0:
        ex = os.path.join(TMP, "c.ova.d")
        os.makedirs(ex)
        vmdks = []
        for n, data in tar_members(out):
            if n.endswith(".vmdk"):
                write(os.path.join(ex, n), data)
                vmdks.append(n)
        T.check(len(vmdks) == 2, "c.ova holds %d VMDKs, expected 2" % len(vmdks))
        for n, vdev in zip(sorted(vmdks), ("xvda", "xvdb")):
            r = T.run(["qemu-img", "compare", "-f", "vmdk", "-F", "raw", os.path.join(ex, n), paths[vdev]],
                      timeout=60)
            T.check(r.rc == 0, "qemu-img compare %s with the %s source: %s" % (n, vdev, r.describe()))
    # from a pipe
    po = os.path.join(TMP, "pipe.ova")
    rc, _, err = shell("cat %s | %s convert - %s" % (q(xva), q(EXE), q(po)))
    if T.check(rc == 0, "cat vm.xva | convert - pipe.ova: exit %s: %s" % (rc, err)):
        expect_ok(T.sp(EXE, "verify", po), "verify of the OVA converted from a pipe")
    # to stdout
    so = os.path.join(TMP, "stdout.ova")
    rc, _, err = shell("%s convert %s - --format ova > %s" % (q(EXE), q(xva), q(so)))
    if T.check(rc == 0, "convert vm.xva - --format ova: exit %s: %s" % (rc, err)):
        expect_ok(T.sp(EXE, "verify", so), "verify of the OVA written to stdout")


# ---------------------------------------------------------------- 2. OVA -> XVA

def case_ova_to_xva(st, srcs, ova):
    out = os.path.join(TMP, "c.xva")
    r = convert(ova, out)
    if not expect_ok(r, "convert vm.ova c.xva") or not T.check(os.path.isfile(out), "convert: no c.xva"):
        return
    expect_ok(T.sp(EXE, "verify", out), "verify c.xva")
    j = import_check(st, out, "from-xva", srcs, "convert OVA -> XVA", macs=MACS)
    if j:
        T.check(j["vcpus"] == 2 and (j["memory"] / 2**20) == 640, "convert OVA -> XVA: vcpus %r memory %r" % (
            j["vcpus"], (j["memory"] / 2**20)))
    # from a pipe: an OVA is read once
    px = os.path.join(TMP, "pipe.xva")
    rc, _, err = shell("cat %s | %s convert - %s" % (q(ova), q(EXE), q(px)))
    if T.check(rc == 0, "cat vm.ova | convert - pipe.xva: exit %s: %s" % (rc, err)):
        expect_ok(T.sp(EXE, "verify", px), "verify of the XVA converted from a pipe")
    # to a pipe, into import
    rc, _, err = shell("%s convert %s - --format xva | %s --store %s import - --name piped" % (
        q(EXE), q(ova), q(EXE), q(st.dir)))
    if T.check(rc == 0, "convert vm.ova - --format xva | import -: exit %s: %s" % (rc, err)):
        j = st.show("piped", fatal=False)
        if T.check(j is not None, "convert | import -: no VM 'piped'"):
            for d in j["disks"]:
                if d["vdev"] in srcs:
                    data = st.flatten(d["file"])
                    if data is not None:
                        T.same_bytes(data, srcs[d["vdev"]], "convert | import -: disk %s" % d["vdev"])


# ---------------------------------------------------------------- 3. refusals

def case_refusals(xva, ova):
    d = os.path.join(TMP, "refuse")
    os.makedirs(d)
    expect_refused(convert(xva, os.path.join(d, "same.xva")), os.path.join(d, "same.xva"), "convert XVA -> XVA")
    expect_refused(convert(ova, os.path.join(d, "same.ova")), os.path.join(d, "same.ova"), "convert OVA -> OVA")
    r = convert(xva, "-")
    T.check(r.rc == 2, "convert IN - without --format: exit %s, expected 2: %s" % (r.rc, r.describe()))
    there = write(os.path.join(d, "there.ova"), b"keep me")
    r = convert(xva, there)
    T.check(r.rc == 3, "convert onto an existing file: exit %s, expected 3: %s" % (r.rc, r.describe()))
    T.check(T.read_file(there) == b"keep me", "convert without --force changed the existing output")
    r = convert(xva, there, "--force")
    if expect_ok(r, "convert --force onto an existing file"):
        expect_ok(T.sp(EXE, "verify", there), "verify of the --force output")
    T.check(sorted(os.listdir(d)) == ["there.ova"], "refusals left files behind: %s" % sorted(os.listdir(d)))


# ---------------------------------------------------------------- 4. damaged inputs

def case_damaged(xva, ova):
    d = os.path.join(TMP, "bad")
    os.makedirs(d)
    mems = tar_members(ova)
    vmdk = [n for n, _ in mems if n.endswith(".vmdk")][0]

    def flip_grain(name, data):
        if name != vmdk:
            return data
        i = 64 * K + len(data) // 4    # past the header and descriptor: inside a grain
        return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]

    def bad_mf(name, data):
        if not name.endswith(".mf"):
            return data
        lines = data.decode().splitlines()
        last = lines[-1]
        lines[-1] = last[:-1] + ("0" if last[-1] != "0" else "1")
        return ("\n".join(lines) + "\n").encode()

    bad = {
        "grain.ova": ova_bytes([(n, flip_grain(n, data)) for n, data in mems]),
        "manifest.ova": ova_bytes([(n, bad_mf(n, data)) for n, data in mems]),
    }
    xm = X.xva_members(xva)
    blocks = [m for m in xm if m.name.startswith("Ref:01/") and not m.name.endswith((".xxhash", ".checksum"))]
    m = blocks[len(blocks) // 2]
    m.data = bytes([m.data[0] ^ 1]) + m.data[1:]
    bad["block.xva"] = X.tar_bytes(xm)
    raw = T.read_file(xva)
    bad["cut.xva"] = raw[:len(raw) * 2 // 3]
    for name, data in sorted(bad.items()):
        src = write(os.path.join(d, name), data)
        out = os.path.join(d, "out-" + name + (".xva" if name.endswith(".ova") else ".ova"))
        r = convert(src, out)
        expect_refused(r, out, "convert of a damaged input (%s)" % name)
    left = sorted(n for n in os.listdir(d) if n not in bad)
    T.check(left == [], "damaged inputs: files left behind: %s" % left)


# ---------------------------------------------------------------- 5. VDI order

def case_order(st, srcs, xva):
    xm = X.xva_members(xva)
    xml = xm[0].data.decode()
    a, b = "<name>VDI</name><value>Ref:00</value>", "<name>VDI</name><value>Ref:01</value>"
    if not T.check(xml.count(a) == 1 and xml.count(b) == 1, "order: the VBDs' VDI fields (test setup)"):
        return
    xml = xml.replace(a, "@A@").replace(b, a).replace("@A@", b)
    xm[0].data = xml.encode()
    src = write(os.path.join(TMP, "swapped.xva"), X.tar_bytes(xm))
    expect_ok(T.sp(EXE, "verify", src), "verify of the swapped XVA (test setup)")
    out = os.path.join(TMP, "swapped.ova")
    if not expect_ok(convert(src, out), "convert of an XVA whose disk 0 is its second VDI"):
        return
    expect_ok(T.sp(EXE, "verify", out), "verify of the OVA from the swapped XVA")
    import_check(st, out, "swapped", {"xvda": srcs["xvdb"], "xvdb": srcs["xvda"]}, "swapped XVA -> OVA")
    # from a pipe too: the OVA writer takes the disks in the stream's order
    # (each waits in its spool), so nothing is read twice
    d = os.path.join(TMP, "swapped-pipe")
    os.makedirs(d)
    out = os.path.join(d, "p.ova")
    rc, _, err = shell("cat %s | %s convert - %s" % (q(src), q(EXE), q(out)))
    if not T.check(rc == 0, "swapped XVA -> OVA from a pipe: exit %s: %s" % (rc, err)):
        return
    expect_ok(T.sp(EXE, "verify", out), "verify of the OVA from the swapped XVA read from a pipe")
    import_check(st, out, "swapped-pipe", {"xvda": srcs["xvdb"], "xvdb": srcs["xvda"]}, "swapped XVA -> OVA (pipe)")


# ---------------------------------------------------------------- 6. suspended

def case_suspended():
    st = S.Store(EXE, os.path.join(TMP, "st_susp"), os.path.join(TMP, "flat_susp"))
    d = os.path.join(TMP, "susp")
    os.makedirs(d)
    disk = bytearray(2 * M)
    disk[M + 100:M + 5000] = RNG.randbytes(4900)
    write(os.path.join(d, "s.raw"), disk)
    mpath = write(os.path.join(d, "mem.bin"), RNG.randbytes(M + 512))
    cfg = os.path.join(d, "s.cfg")
    with open(cfg, "w") as f:
        f.write("name = 'sus'\ntype = 'hvm'\nmemory = 512\nvcpus = 1\n"
                "disk = [ 'format=raw, vdev=xvda, access=rw, target=s.raw' ]\nvif = [ 'mac=00:16:3e:00:bb:01' ]\n")
    st.ok("vm", "create", "--config", cfg)
    st.ok("vm", "suspend", "sus", "--image", mpath)
    xva = os.path.join(TMP, "sus.xva")
    if not expect_ok(st.sp("export", "sus", "-o", xva, timeout=60), "export of a suspended VM"):
        return
    out = os.path.join(TMP, "sus.ova")
    r = convert(xva, out)
    if not expect_ok(r, "convert of a suspended VM's XVA"):
        return
    T.check("memory" in r.err, "convert of a suspended VM's XVA does not say the memory image is left out: %r" % r.err)
    expect_ok(T.sp(EXE, "verify", out), "verify of the suspended VM's OVA")
    import_check(st, out, "sus-copy", {"xvda": bytes(disk)}, "suspended XVA -> OVA", halted=True)


# ---------------------------------------------------------------- 7. qemu-img peers

PEER_OVF = """<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References><File ovf:href="%(href)s" ovf:id="file1" ovf:size="%(size)d"/></References>
  <DiskSection><Info>Disks</Info>
    <Disk ovf:capacity="%(cap)d" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1"
      ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#%(fmt)s"/>
  </DiskSection>
  <NetworkSection><Info>Networks</Info><Network ovf:name="VM Network"><Description>net</Description></Network>
  </NetworkSection>
  <VirtualSystem ovf:id="%(vm)s"><Info>A VM</Info><Name>%(vm)s</Name>
    <VirtualHardwareSection><Info>Hardware</Info>
      <Item><rasd:ElementName>1 CPU</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>256MB</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>256</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>SCSI 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>Disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""


def case_peers():
    if T.run(["which", "qemu-img"]).rc != 0:
        print("peers: qemu-img not installed, skipped")
        return
    st = S.Store(EXE, os.path.join(TMP, "st_peer"), os.path.join(TMP, "flat_peer"))
    d = os.path.join(TMP, "peer")
    os.makedirs(d)
    size = 6 * M + 1536
    src = bytearray(size)
    src[100 * K:100 * K + 700 * K] = RNG.randbytes(700 * K)
    src[size - 1536:] = RNG.randbytes(1536)
    raw = write(os.path.join(d, "p.raw"), src)
    for fmt, subformat in (("streamOptimized", "streamOptimized"), ("sparse", "monolithicSparse")):
        vmdk = os.path.join(d, "p-%s.vmdk" % fmt)
        r = T.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=" + subformat, raw, vmdk],
                  timeout=60)
        if not T.check(r.rc == 0, "qemu-img convert to %s: %s" % (subformat, r.describe())):
            continue
        data = T.read_file(vmdk)
        name = "peer-%s" % fmt
        ovf = PEER_OVF % {"href": "disk1.vmdk", "size": len(data), "cap": size, "fmt": fmt, "vm": name}
        mems = [(name + ".ovf", ovf.encode()), ("disk1.vmdk", data)]
        ova = write(os.path.join(d, name + ".ova"), ova_bytes(mems))
        out = os.path.join(d, name + ".xva")
        if not expect_ok(convert(ova, out), "convert of a qemu-img %s OVA" % subformat):
            continue
        expect_ok(T.sp(EXE, "verify", out), "verify of the XVA from a qemu-img %s OVA" % subformat)
        r = st.sp("import", out, "--name", name, timeout=60)
        if not expect_ok(r, "import of the XVA from a qemu-img %s OVA" % subformat):
            continue
        j = st.show(name, fatal=False) or {"disks": []}
        disks = [x for x in j["disks"] if x["vdi"] and not x["cdrom"]]
        if T.check(len(disks) == 1, "%s: %d disks, expected 1" % (name, len(disks))):
            data = st.flatten(disks[0]["file"])
            if data is not None:
                T.same_bytes(data, bytes(src), "%s: the disk after OVA -> XVA -> import" % name)


# ---------------------------------------------------------------- 8. memory

def peak_rss(args, what):
    """Runs snapport args under /usr/bin/time; returns the peak RSS in KiB or None."""
    rep = os.path.join(TMP, "time.txt")
    r = T.run(["/usr/bin/time", "-o", rep, "-f", "%M", EXE] + [str(a) for a in args], timeout=300)
    if not expect_ok(r, what):
        return None
    try:
        return int(T.read_file(rep).decode().split()[-1])
    except (ValueError, IndexError):
        T.check(False, "%s: /usr/bin/time wrote %r" % (what, T.read_file(rep)))
        return None


def sanitized():
    """A sanitizer build (SNAPPORT_SANITIZE) holds freed memory in quarantine:
    its RSS says nothing about ours."""
    r = T.run(["ldd", EXE])
    return r.rc == 0 and ("libasan" in r.out or "libtsan" in r.out)


def case_memory():
    if not os.path.exists("/usr/bin/time"):
        T.check(False, "memory: /usr/bin/time is not installed")
        return
    bound = not sanitized()
    if not bound:
        print("memory: a sanitizer build, the RSS bound is not checked")
    st = S.Store(EXE, os.path.join(TMP, "st_big"), os.path.join(TMP, "flat_big"))
    d = os.path.join(TMP, "big")
    os.makedirs(d)
    big = os.path.join(d, "big.raw")
    with open(big, "wb") as f:
        for _ in range(256):
            f.write(os.urandom(M))
    cfg = os.path.join(d, "big.cfg")
    with open(cfg, "w") as f:
        f.write("name = 'big'\ntype = 'hvm'\nmemory = 256\nvcpus = 1\n"
                "disk = [ 'format=raw, vdev=xvda, access=rw, target=big.raw' ]\n")
    st.ok("vm", "create", "--config", cfg, timeout=120)
    os.unlink(big)
    xva, ova = os.path.join(d, "big.xva"), os.path.join(d, "big.ova")
    st.ok("export", "big", "-o", xva, timeout=300)
    st.ok("export", "big", "-o", ova, timeout=300)
    for src, out, what in ((xva, os.path.join(d, "c.ova"), "XVA -> OVA"),
                           (ova, os.path.join(d, "c.xva"), "OVA -> XVA")):
        rss = peak_rss(["-q", "convert", src, out], "convert %s of a 256 MiB disk" % what)
        if rss is not None and bound:
            T.check(rss < RSS_MAX_KIB, "convert %s of a 256 MiB disk: peak RSS %d KiB, expected < %d" % (
                what, rss, RSS_MAX_KIB))
            print("memory: convert %s peak RSS %d KiB" % (what, rss))
        expect_ok(T.sp(EXE, "verify", out, timeout=300), "verify of the 256 MiB %s output" % what)
        os.unlink(out)


def main():
    global EXE, TMP
    EXE, TMP = T.setup()
    st = S.Store(EXE, os.path.join(TMP, "st"), os.path.join(TMP, "flat"))
    srcs, paths = make_vm(st)
    xva, ova = os.path.join(TMP, "vm.xva"), os.path.join(TMP, "vm.ova")
    st.ok("export", VM, "-o", xva, timeout=60, what="export xva")
    st.ok("export", VM, "-o", ova, timeout=60, what="export ova")
    case_xva_to_ova(st, srcs, paths, xva)
    case_ova_to_xva(st, srcs, ova)
    case_refusals(xva, ova)
    case_damaged(xva, ova)
    case_order(st, srcs, xva)
    case_suspended()
    case_peers()
    case_memory()
    expect_ok(st.check(), "store check at the end")
    T.finish("test_convert")


if __name__ == "__main__":
    main()
