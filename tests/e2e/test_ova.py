"""OVA export -> verify -> info -> import, end to end, and OVAs made by peers
(issue 5; CLI.md "Archives").

Cases:
  roundtrip   a VM from an xl.cfg: hvm, vcpus 3, memory 768, xvda a raw disk
              of 33 MiB + 512 bytes (not a multiple of the 64 KiB grain;
              random data at the start, an unaligned run in the middle, the
              very last sector), xvdb a raw 16 MiB disk with other contents,
              a cdrom, two vifs (the second model=e1000). export -o X.ova ->
              verify -> import --name: each disk flattened equals its source
              (expected bytes are the ones written here), vcpus, memory,
              disk order (vdevs), cdrom flag, MACs (and the e1000 model) as
              the original, new VM and VDI uuids. Also
              export -o - --format ova | import - --name x2 (same store).
  peers       the OVA's tar: members NAME.ovf, NAME.mf, then the disks;
              qemu-img compare of every .vmdk member against its source raw
              says identical; vmdkinfo exits 0; the .mf lines have the exact
              form SHA256(name)= <64 hex>, list the .ovf and every disk, and
              equal sha256sum of the members; xmllint --noout accepts the
              .ovf; --digest sha1 / sha512 give SHA1(..)= / SHA512(..)= lines
              that match sha1sum / sha512sum (and verify).
  qemu        OVAs built here with python tarfile and a VMware-like .ovf
              written here: a qemu-img streamOptimized VMDK with and without
              a .mf, an unpacked folder (the folder and its .ovf), a
              monolithicSparse VMDK, a dynamic VHD (qemu pads the size to a
              CHS geometry: the source bytes, then zeros), a raw disk file
              and a gzip-compressed VMDK (ovf:compression="gzip"): each
              imports and the flattened disk equals the source.
  determinism two exports of the same --snapshot are byte-identical.
  signing     export --sign k.pem --cert c.pem (a self-signed cert made with
              openssl): NAME.cert after NAME.mf, first line
              SHA256(NAME.mf)= <hex>; openssl dgst -verify with the cert's
              public key accepts that signature over the extracted NAME.mf;
              snapport verify exits 0 and says the signer is not trusted; a
              .cert whose signature has one hex digit changed -> verify 1.
  info        --json info of an OVA: format "ova", the VM name, vcpus,
              memory, the disks with their virtual sizes.
"""

import gzip
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402
import xvatest as X  # noqa: E402

K, M = S.K, S.M
EXE = TMP = None
RNG = random.Random(20250105)
VM = "ova src"                      # a space: NAME in the OVA must replace it
MACS = ["00:16:3e:5a:0a:01", "00:16:3e:5a:0a:02"]
A_SIZE = 33 * M + 512
B_SIZE = 16 * M
P_SIZE = 16 * M + 1536              # the peer (qemu) source
SAFE_RE = re.compile(r"^[A-Za-z0-9._-]+$")


# ---------------------------------------------------------------- helpers

expect_ok = T.expect_ok
write = T.write_file
def pipe(cmd1, cmd2, timeout=60):
    """cmd1 | cmd2 -> (rc1, rc2, out2, err1, err2); never hangs."""
    e = dict(os.environ)
    for k in ("SNAPPORT_STORE", "SNAPPORT_CRASH_AFTER", "SNAPPORT_CRASH_LOG", "SNAPPORT_LOCK_TIMEOUT"):
        e.pop(k, None)
    p1 = subprocess.Popen([str(a) for a in cmd1], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
    p2 = subprocess.Popen([str(a) for a in cmd2], stdin=p1.stdout, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=e)
    p1.stdout.close()
    try:
        out2, err2 = p2.communicate(timeout=timeout)
        err1 = p1.stderr.read()
        p1.wait(timeout=10)
        return p1.returncode, p2.returncode, out2.decode(), err1.decode(), err2.decode()
    except subprocess.TimeoutExpired:
        for p in (p1, p2):
            p.kill()
            p.wait()
        return "TIMEOUT", "TIMEOUT", "", "", ""


def ova_members(path):
    """[(name, bytes)] of an OVA (a plain tar), in order."""
    out = []
    with tarfile.open(path, mode="r:") as t:
        for ti in t:
            T.check(ti.isreg(), "%s: member %r is not a regular file" % (path, ti.name))
            out.append((ti.name, t.extractfile(ti).read() if ti.isreg() else b""))
    return out


def extract(path, where):
    """Extract an OVA's members (plain names only) into where; returns [(name, file path)]."""
    os.makedirs(where, exist_ok=True)
    res = []
    for name, data in ova_members(path):
        if not T.check("/" not in name and name not in (".", ".."), "%s: member name %r is not plain" % (path, name)):
            continue
        res.append((name, write(os.path.join(where, name), data)))
    return res


def parse_mf(text, algo, hexlen):
    """{name: hex} of a manifest; every line must be ALGO(name)= hex."""
    rx = re.compile(r"^%s\(([^)]+)\)= ([0-9a-f]{%d})$" % (algo, hexlen))
    res = {}
    for line in text.splitlines():
        m = rx.match(line)
        if not T.check(m is not None, "manifest line %r does not match %s" % (line, rx.pattern)):
            continue
        T.check(m.group(1) not in res, "manifest lists %s twice" % m.group(1))
        res[m.group(1)] = m.group(2)
    return res


def tool_digest(tool, path):
    r = T.run([tool, path], timeout=60)
    if not T.check(r.rc == 0, "%s: %s" % (tool, r.describe())):
        return None
    return r.out.split()[0]


def import_flat(st, path, name, what, extra=()):
    """import path --name name; returns (vm show json, [flattened bytes of the non-cdrom disks])."""
    r = st.sp("import", path, "--name", name, *extra, timeout=60)
    if not expect_ok(r, "%s: import" % what):
        return None, []
    j = st.show(name, fatal=False)
    if not T.check(j is not None, "%s: vm show %s after import" % (what, name)):
        return None, []
    flats = [st.flatten(d["file"]) for d in j["disks"] if not d["cdrom"] and d["vdi"]]
    return j, flats


# ---------------------------------------------------------------- sources

def make_sources():
    d = os.path.join(TMP, "src")
    os.makedirs(d)
    a = bytearray(A_SIZE)
    a[0:M] = RNG.randbytes(M)
    a[10 * M + 4096 + 7:10 * M + 4096 + 7 + 700 * K] = RNG.randbytes(700 * K)
    a[20 * M + 100:20 * M + 200] = b"\xa5" * 100
    a[A_SIZE - 512:] = RNG.randbytes(512)            # the very last sector
    b = bytearray(B_SIZE)
    b[3 * M:3 * M + 1536 * K] = RNG.randbytes(1536 * K)
    b[B_SIZE - 64 * K:] = b"\x5a" * (64 * K)          # the last grain
    write(os.path.join(d, "a.raw"), a)
    write(os.path.join(d, "b.raw"), b)
    write(os.path.join(d, "install.iso"), b"CD001" * 1000)
    cfg = os.path.join(d, "ova.cfg")
    with open(cfg, "w") as f:
        f.write("""name = "%s"
type = "hvm"
memory = 768
vcpus = 3
disk = [ 'format=raw, vdev=xvda, access=rw, target=a.raw',
         'format=raw, vdev=xvdb, access=rw, target=b.raw',
         'format=raw, vdev=hdc, access=ro, devtype=cdrom, target=install.iso' ]
vif = [ 'mac=%s, bridge=xenbr0', 'mac=%s, bridge=xenbr1, model=e1000' ]
""" % (VM, MACS[0], MACS[1]))
    return cfg, {"xvda": bytes(a), "xvdb": bytes(b)}, {"xvda": os.path.join(d, "a.raw"),
                                                       "xvdb": os.path.join(d, "b.raw")}


# ---------------------------------------------------------------- 1. round trip

def check_copy(st, name, orig, sources, what):
    j = st.show(name, fatal=False)
    if not T.check(j is not None, "%s: vm show %s failed" % (what, name)):
        return
    T.check(j["uuid"] != orig["uuid"], "%s: the imported VM kept the uuid" % what)
    T.check(j["vcpus"] == 3 and (j["memory"] / 2**20) == 768, "%s: vcpus %r memory %r, expected 3 / 768" % (
        what, j["vcpus"], (j["memory"] / 2**20)))
    T.check([d["vdev"] for d in j["disks"]] == [d["vdev"] for d in orig["disks"]],
            "%s: vdevs %s, expected %s" % (what, [d["vdev"] for d in j["disks"]], [d["vdev"] for d in orig["disks"]]))
    T.check([bool(d["cdrom"]) for d in j["disks"]] == [bool(d["cdrom"]) for d in orig["disks"]],
            "%s: cdrom flags %s" % (what, [d["cdrom"] for d in j["disks"]]))
    T.check(j["vifs"] == MACS, "%s: MACs %s, expected %s" % (what, j["vifs"], MACS))
    old = {d["vdi"] for d in orig["disks"] if d["vdi"]}
    for d in j["disks"]:
        if d["cdrom"] or not d["vdi"]:
            continue
        T.check(d["vdi"] not in old, "%s: VDI uuid %s reused from the original" % (what, d["vdi"]))
        if d["vdev"] in sources:
            data = st.flatten(d["file"])
            if data is not None:
                T.same_bytes(data, sources[d["vdev"]], "%s: disk %s flattened" % (what, d["vdev"]))
    r = st.sp("vm", "config", name)
    if expect_ok(r, "%s: vm config" % what):
        T.check(re.search(r"mac=%s[^'\"]*model=e1000" % re.escape(MACS[1]), r.out) is not None,
                "%s: the second vif lost model=e1000: %r" % (what, r.out))


def case_roundtrip(st, orig, sources):
    out = os.path.join(TMP, "vm.ova")
    r = st.sp("export", VM, "-o", out, timeout=60)
    if not expect_ok(r, "export -o vm.ova") or not T.check(os.path.isfile(out), "export: no vm.ova"):
        return None
    expect_ok(T.sp(EXE, "verify", out), "verify vm.ova")
    r = st.sp("import", out, "--name", "copy1", timeout=60)
    if expect_ok(r, "import vm.ova --name copy1"):
        check_copy(st, "copy1", orig, sources, "round trip")
    rc1, rc2, o2, e1, e2 = pipe([EXE, "--store", st.dir, "export", VM, "-o", "-", "--format", "ova"],
                                [EXE, "--store", st.dir, "import", "-", "--name", "x2"])
    if T.check(rc1 == 0 and rc2 == 0, "export -o - --format ova | import - --name x2: rc %s/%s, stderr %r / %r" % (
            rc1, rc2, e1, e2)):
        check_copy(st, "x2", orig, sources, "pipe")
    expect_ok(st.check(), "store check after the round trip")
    return out


# ---------------------------------------------------------------- 2. peers

def check_tar_layout(path, what, ndisks, cert=False):
    """Names in order: NAME.ovf, NAME.mf, [NAME.cert], NAME-disk1.vmdk ...; returns NAME."""
    names = [n for n, _ in ova_members(path)]
    if not T.check(names and names[0].endswith(".ovf"), "%s: first member %r is not the .ovf" % (what, names[:1])):
        return None
    name = names[0][:-4]
    T.check(SAFE_RE.match(name) is not None and " " not in name,
            "%s: NAME %r keeps odd characters of the VM name %r" % (what, name, VM))
    want = [name + ".ovf", name + ".mf"] + ([name + ".cert"] if cert else []) + \
        ["%s-disk%d.vmdk" % (name, i + 1) for i in range(ndisks)]
    T.check(names == want, "%s: members %s, expected %s" % (what, names, want))
    return name


def case_peers(st, ova, srcpaths):
    what = "peers"
    name = check_tar_layout(ova, what, 2)
    if name is None:
        return
    files = dict(extract(ova, os.path.join(TMP, "peers")))
    for i, vdev in enumerate(("xvda", "xvdb")):
        vm = files.get("%s-disk%d.vmdk" % (name, i + 1))
        if not T.check(vm is not None, "%s: disk %d missing" % (what, i + 1)):
            continue
        r = T.run(["qemu-img", "compare", "-f", "vmdk", "-F", "raw", vm, srcpaths[vdev]], timeout=60)
        T.check(r.rc == 0 and "identical" in r.out, "%s: qemu-img compare %s %s: %s" % (
            what, os.path.basename(vm), vdev, r.describe()))
        r = T.run(["vmdkinfo", vm], timeout=60)
        T.check(r.rc == 0, "%s: vmdkinfo %s: %s" % (what, os.path.basename(vm), r.describe()))
    r = T.run(["xmllint", "--noout", files[name + ".ovf"]])
    T.check(r.rc == 0, "%s: xmllint --noout %s.ovf: %s" % (what, name, r.describe()))
    mf = parse_mf(T.read_file(files[name + ".mf"]).decode("utf-8", "replace"), "SHA256", 64)
    want = {n for n in files if n.endswith(".ovf") or n.endswith(".vmdk")}
    T.check(set(mf) == want, "%s: manifest lists %s, expected %s" % (what, sorted(mf), sorted(want)))
    for n, hexd in mf.items():
        if n in files:
            T.check(tool_digest("sha256sum", files[n]) == hexd, "%s: sha256sum of %s differs from the manifest" % (
                what, n))
    for algo, tool, hexlen in (("sha1", "sha1sum", 40), ("sha512", "sha512sum", 128)):
        out = os.path.join(TMP, "vm-%s.ova" % algo)
        r = st.sp("export", VM, "-o", out, "--digest", algo, timeout=60)
        if not expect_ok(r, "export --digest %s" % algo):
            continue
        expect_ok(T.sp(EXE, "verify", out), "verify of an export --digest %s" % algo)
        nm = check_tar_layout(out, "export --digest %s" % algo, 2)
        fl = dict(extract(out, os.path.join(TMP, "peers-" + algo)))
        if nm is None or nm + ".mf" not in fl:
            continue
        m = parse_mf(T.read_file(fl[nm + ".mf"]).decode("utf-8", "replace"), algo.upper(), hexlen)
        T.check(set(m) == want, "--digest %s: manifest lists %s, expected %s" % (algo, sorted(m), sorted(want)))
        for n, hexd in m.items():
            if n in fl:
                T.check(tool_digest(tool, fl[n]) == hexd, "--digest %s: %s of %s differs from the manifest" % (
                    algo, tool, n))


# ---------------------------------------------------------------- 3. qemu / peer-made OVAs

STREAM_URI = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
SPARSE_URI = "http://www.vmware.com/interfaces/specifications/vmdk.html#sparse"
VHD_URI = "http://technet.microsoft.com/en-us/library/bb676673.aspx"
RAW_URI = "http://en.wikipedia.org/wiki/Byte"


def peer_ovf(vmname, href, size, capacity, fmt, compression=None):
    """A minimal VMware-like OVF 1.0 descriptor with one disk (2 vcpus, 512 MB, one NIC)."""
    comp = ' ovf:compression="%s"' % compression if compression else ""
    return ("""<?xml version="1.0" encoding="UTF-8"?>
<Envelope vmw:buildId="build-1" xmlns="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common"
  xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vmw="http://www.vmware.com/schema/ovf"
  xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="%(href)s" ovf:id="file1" ovf:size="%(size)d"%(comp)s/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="%(cap)d" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="%(fmt)s"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network">
      <Description>The VM Network network</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="%(vm)s">
    <Info>A virtual machine</Info>
    <Name>%(vm)s</Name>
    <OperatingSystemSection ovf:id="101" vmw:osType="otherLinux64Guest">
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>%(vm)s</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of Virtual CPUs</rasd:Description>
        <rasd:ElementName>2 virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>2</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>512MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>512</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SCSI Controller</rasd:Description>
        <rasd:ElementName>SCSI Controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard Disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>7</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>VM Network</rasd:Connection>
        <rasd:Description>VmxNet3 ethernet adapter on "VM Network"</rasd:Description>
        <rasd:ElementName>Network adapter 1</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
""" % {"href": href, "size": size, "comp": comp, "cap": capacity, "fmt": fmt, "vm": vmname}).encode()


def tar_of(members):
    """A ustar OVA of [(name, bytes)] in this order."""
    return X.tar_bytes([X.Member(n, d, mode=0o644) for n, d in members])


def qemu_convert(src, out, fmt, opts=()):
    r = T.run(["qemu-img", "convert", "-f", "raw", "-O", fmt] + list(opts) + [src, out], timeout=60)
    if not T.check(r.rc == 0, "qemu-img convert -O %s %s: %s" % (fmt, " ".join(opts), r.describe())):
        return None
    return T.read_file(out)


def qemu_virtual_size(path, fmt):
    r = T.run(["qemu-img", "info", "--output=json", "-f", fmt, path], timeout=60)
    if not T.check(r.rc == 0, "qemu-img info %s: %s" % (path, r.describe())):
        return None
    return json.loads(r.out)["virtual-size"]


def check_peer_import(st, path, name, src, what, padded=False):
    j, flats = import_flat(st, path, name, what)
    if j is None:
        return
    T.check(j["vcpus"] == 2 and (j["memory"] / 2**20) == 512, "%s: vcpus %r memory %r, expected 2 / 512" % (
        what, j["vcpus"], (j["memory"] / 2**20)))
    if not T.check(len(flats) == 1 and flats[0] is not None, "%s: %d disks imported, expected 1" % (what, len(flats))):
        return
    got = flats[0]
    if padded:
        T.same_bytes(got[:len(src)], src, "%s: the first %d bytes of the disk" % (what, len(src)))
        T.check(len(got) >= len(src) and not any(got[len(src):]),
                "%s: %d bytes after the source's end are not all zeros (disk %d bytes)" % (
                    what, len(got) - len(src), len(got)))
    else:
        T.same_bytes(got, src, "%s: the disk" % what)


def case_qemu(st):
    d = os.path.join(TMP, "qemu")
    os.makedirs(d)
    src = bytearray(P_SIZE)
    src[0:M] = RNG.randbytes(M)
    src[7 * M + 333:7 * M + 333 + 300 * K] = RNG.randbytes(300 * K)
    src[P_SIZE - 1536:] = RNG.randbytes(1536)
    src = bytes(src)
    srcp = write(os.path.join(d, "src.raw"), src)
    so = qemu_convert(srcp, os.path.join(d, "so.vmdk"), "vmdk", ["-o", "subformat=streamOptimized"])
    if so is not None:
        ovf = peer_ovf("qemu-so", "d.vmdk", len(so), P_SIZE, STREAM_URI)
        mf = ("SHA256(q.ovf)= %s\nSHA256(d.vmdk)= %s\n" % (hashlib.sha256(ovf).hexdigest(),
                                                          hashlib.sha256(so).hexdigest())).encode()
        p = write(os.path.join(d, "so-mf.ova"), tar_of([("q.ovf", ovf), ("q.mf", mf), ("d.vmdk", so)]))
        expect_ok(T.sp(EXE, "verify", p), "verify of a qemu streamOptimized OVA with a .mf")
        check_peer_import(st, p, "q-so-mf", src, "qemu streamOptimized OVA with a .mf")
        p = write(os.path.join(d, "so-nomf.ova"), tar_of([("q.ovf", ovf), ("d.vmdk", so)]))
        check_peer_import(st, p, "q-so-nomf", src, "qemu streamOptimized OVA without a .mf")
        fold = os.path.join(d, "folder")
        os.makedirs(fold)
        write(os.path.join(fold, "q.ovf"), ovf)
        write(os.path.join(fold, "d.vmdk"), so)
        check_peer_import(st, fold, "q-folder", src, "unpacked folder (import DIR)")
        check_peer_import(st, os.path.join(fold, "q.ovf"), "q-folder-ovf", src, "unpacked folder (import X.ovf)")
        gz = gzip.compress(so, mtime=0)
        ovf = peer_ovf("qemu-gz", "d.vmdk.gz", len(gz), P_SIZE, STREAM_URI, compression="gzip")
        p = write(os.path.join(d, "gz.ova"), tar_of([("q.ovf", ovf), ("d.vmdk.gz", gz)]))
        check_peer_import(st, p, "q-gzip", src, "gzip-compressed streamOptimized VMDK")
    sp = qemu_convert(srcp, os.path.join(d, "sparse.vmdk"), "vmdk")
    if sp is not None:
        ovf = peer_ovf("qemu-sparse", "d.vmdk", len(sp), P_SIZE, SPARSE_URI)
        p = write(os.path.join(d, "sparse.ova"), tar_of([("q.ovf", ovf), ("d.vmdk", sp)]))
        check_peer_import(st, p, "q-sparse", src, "qemu monolithicSparse VMDK")
    vhdp = os.path.join(d, "d.vhd")
    vhd = qemu_convert(srcp, vhdp, "vpc", ["-o", "subformat=dynamic"])
    if vhd is not None:
        cap = qemu_virtual_size(vhdp, "vpc") or P_SIZE
        ovf = peer_ovf("qemu-vhd", "d.vhd", len(vhd), cap, VHD_URI)
        p = write(os.path.join(d, "vhd.ova"), tar_of([("q.ovf", ovf), ("d.vhd", vhd)]))
        check_peer_import(st, p, "q-vhd", src, "qemu dynamic VHD", padded=True)
    ovf = peer_ovf("raw", "d.img", len(src), P_SIZE, RAW_URI)
    p = write(os.path.join(d, "raw.ova"), tar_of([("q.ovf", ovf), ("d.img", src)]))
    check_peer_import(st, p, "q-raw", src, "raw disk file")
    # gzip'd raw whose size is no multiple of the reads (the last member
    # ends inside a read), and the same as two concatenated gzip members
    for name, gz in (("raw-gz", gzip.compress(src, mtime=0)),
                     ("raw-gz2", gzip.compress(src[:5 * M + 7], mtime=0) + gzip.compress(src[5 * M + 7:], mtime=0))):
        ovf = peer_ovf(name, "d.img.gz", len(gz), P_SIZE, RAW_URI, compression="gzip")
        p = write(os.path.join(d, name + ".ova"), tar_of([("q.ovf", ovf), ("d.img.gz", gz)]))
        check_peer_import(st, p, "q-" + name, src, "gzip'd raw disk file (%s)" % name)
    # a gzip member cut short is damage, not a short disk
    gz = gzip.compress(src, mtime=0)[:-20]
    ovf = peer_ovf("raw-gzcut", "d.img.gz", len(gz), P_SIZE, RAW_URI, compression="gzip")
    p = write(os.path.join(d, "raw-gzcut.ova"), tar_of([("q.ovf", ovf), ("d.img.gz", gz)]))
    r = T.sp(EXE, "verify", p)
    T.check(r.rc == 1 and "gzip" in r.err, "a cut gzip member: verify exit 1 naming gzip: " + r.describe())
    expect_ok(st.check(), "store check after the peer imports")


# ---------------------------------------------------------------- 4. determinism

def case_determinism(st):
    if not expect_ok(st.sp("snapshot", "create", VM, "--name", "s1"), "snapshot create s1"):
        return
    outs = []
    for i in (1, 2):
        out = os.path.join(TMP, "det%d.ova" % i)
        if expect_ok(st.sp("export", VM, "--snapshot", "s1", "-o", out, timeout=60), "export --snapshot s1 #%d" % i):
            outs.append(out)
    if len(outs) == 2:
        r = T.run(["cmp", outs[0], outs[1]])
        T.check(r.rc == 0, "two exports of the same --snapshot differ: %s" % r.describe())


# ---------------------------------------------------------------- 5. signing

def case_signing(st):
    d = os.path.join(TMP, "sign")
    os.makedirs(d)
    key, cert, pub = (os.path.join(d, n) for n in ("k.pem", "c.pem", "pub.pem"))
    r = T.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
               "-days", "2", "-subj", "/CN=test"], timeout=60)
    if not T.check(r.rc == 0, "openssl req: %s" % r.describe()):
        return
    r = T.run(["openssl", "x509", "-pubkey", "-noout", "-in", cert])
    if not T.check(r.rc == 0, "openssl x509 -pubkey: %s" % r.describe()):
        return
    with open(pub, "w") as f:
        f.write(r.out)
    out = os.path.join(d, "signed.ova")
    r = st.sp("export", VM, "-o", out, "--sign", key, "--cert", cert, timeout=60)
    if not expect_ok(r, "export --sign --cert"):
        return
    name = check_tar_layout(out, "signed export", 2, cert=True)
    files = dict(extract(out, os.path.join(d, "x")))
    if name is None or name + ".cert" not in files:
        return
    text = T.read_file(files[name + ".cert"]).decode("ascii", "replace")
    first = text.splitlines()[0] if text else ""
    m = re.match(r"^SHA256\(%s\.mf\)= ([0-9a-f]+)$" % re.escape(name), first)
    if not T.check(m is not None and len(m.group(1)) == 512,
                   "%s.cert first line %r is not SHA256(%s.mf)= <512 hex (RSA-2048)>" % (name, first[:120], name)):
        return
    T.check("-----BEGIN CERTIFICATE-----" in text, "%s.cert does not carry the certificate" % name)
    sig = write(os.path.join(d, "sig.bin"), bytes.fromhex(m.group(1)))
    r = T.run(["openssl", "dgst", "-sha256", "-verify", pub, "-signature", sig, files[name + ".mf"]])
    T.check(r.rc == 0 and "Verified OK" in r.out, "openssl dgst -verify of %s.mf: %s" % (name, r.describe()))
    r = T.sp(EXE, "verify", out)
    expect_ok(r, "verify of a signed OVA")
    T.check("trust" in (r.out + r.err).lower(), "verify of a self-signed OVA does not say the signer is not "
            "trusted: %s" % r.describe())
    # one hex digit of the signature changed
    h = m.group(1)
    i = len(h) // 2
    bad_h = h[:i] + ("0" if h[i] != "0" else "1") + h[i + 1:]
    bad_cert = text.replace(first, "SHA256(%s.mf)= %s" % (name, bad_h), 1).encode()
    mems = [(n, (bad_cert if n == name + ".cert" else data)) for n, data in ova_members(out)]
    bad = write(os.path.join(d, "badsig.ova"), tar_of(mems))
    r = T.sp(EXE, "verify", bad)
    T.check(r.rc == 1, "verify of an OVA whose signature has a changed hex digit: exit %s, expected 1: %s" % (
        r.rc, r.describe()))
    # control: the same rewrite with the good .cert verifies
    good = write(os.path.join(d, "rewritten.ova"), tar_of(ova_members(out)))
    expect_ok(T.sp(EXE, "verify", good), "verify of the signed OVA rewritten by python tarfile (control)")


# ---------------------------------------------------------------- 6. info

def case_info(ova):
    r = T.sp(EXE, "--json", "info", ova)
    if not expect_ok(r, "info --json"):
        return
    try:
        j = json.loads(r.out)
    except ValueError as e:
        T.check(False, "info --json is not JSON (%s): %r" % (e, r.out[:300]))
        return
    T.check(j.get("format") == "ova", "info: format %r, expected ova" % j.get("format"))
    T.check(j.get("vm") == VM, "info: vm %r, expected %r" % (j.get("vm"), VM))
    T.check(j.get("vcpus") == 3, "info: vcpus %r, expected 3" % j.get("vcpus"))
    T.check(j.get("memory") in (768 * M, 768), "info: memory %r, expected 768 MiB" % j.get("memory"))
    disks = j.get("disks") or []
    T.check([x.get("virtual_size") for x in disks] == [A_SIZE, B_SIZE],
            "info: disk virtual sizes %s, expected %s" % ([x.get("virtual_size") for x in disks], [A_SIZE, B_SIZE]))


# ---------------------------------------------------------------- 7. past 8 GiB

def case_big_disk():
    """A 10 GiB disk (sparse: cost follows its data) goes out and back."""
    st = S.Store(EXE, os.path.join(TMP, "st_big"), os.path.join(TMP, "flat_big"))
    d = os.path.join(TMP, "big")
    os.makedirs(d)
    raw = os.path.join(d, "big.raw")
    size = 10 * 1024 * M
    with open(raw, "wb") as f:
        f.truncate(size)
        f.seek(9 * 1024 * M + 5 * M)
        f.write(RNG.randbytes(M))
        f.seek(size - 4096)
        f.write(RNG.randbytes(4096))
    cfg = os.path.join(d, "big.cfg")
    with open(cfg, "w") as f:
        f.write('name = "bigvm"\ntype = "hvm"\nmemory = 256\ndisk = [ "format=raw, vdev=xvda, target=big.raw" ]\n')
    st.ok("vm", "create", "--config", cfg, what="vm create (10 GiB disk)")
    ova = os.path.join(d, "big.ova")
    if not expect_ok(st.sp("export", "bigvm", "-o", ova, timeout=120), "10 GiB disk: export"):
        return
    r = T.sp(EXE, "--json", "info", ova)
    if expect_ok(r, "10 GiB disk: info"):
        T.check(json.loads(r.out)["disks"][0]["virtual_size"] == size, "10 GiB disk: capacity in the OVF")
    if not expect_ok(st.sp("import", ova, "--name", "bigvm2", timeout=120), "10 GiB disk: import"):
        return
    disk = st.show("bigvm2")["disks"][0]["file"]
    r = T.sp(EXE, "disk", "compare", disk, raw, timeout=120)
    T.check(r.rc == 0 and "identical" in r.out, "10 GiB disk: imported disk equals the source: " + r.describe())


def main():
    global EXE, TMP
    EXE, TMP = T.setup()
    for tool in ("qemu-img", "vmdkinfo", "xmllint", "openssl", "sha256sum", "sha1sum", "sha512sum", "cmp"):
        T.need_tool(tool)
    cfg, sources, srcpaths = make_sources()
    st = S.Store(EXE, os.path.join(TMP, "st"), os.path.join(TMP, "flat"))
    st.ok("vm", "create", "--config", cfg, what="vm create")
    orig = st.show(VM)
    for d in orig["disks"]:
        if d["vdev"] in sources and st.flatten(d["file"]) != sources[d["vdev"]]:
            T.fatal("the store's copy of %s differs from the source before any export (test setup)" % d["vdev"])
    ova = case_roundtrip(st, orig, sources)
    if ova:
        case_peers(st, ova, srcpaths)
        case_info(ova)
    case_qemu(S.Store(EXE, os.path.join(TMP, "st_peer"), os.path.join(TMP, "flat_peer")))
    case_determinism(st)
    case_signing(st)
    case_big_disk()
    expect_ok(st.check(), "store check at the end")
    T.finish("test_ova")


if __name__ == "__main__":
    main()
