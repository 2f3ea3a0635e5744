"""OVAs as real exporters make them import whole (issue 11). Each archive is
built here, member by member, the way that exporter writes it (from the
public formats and reference/ova.md); expectations are computed here.

Cases:
  xencenter   XenCenter's OVF library declares encoding="utf-16" over UTF-8
              bytes (no byte order mark): an OVA with such an .ovf (prefixed
              ovf: elements, a dynamic VHD disk, a "Storage Extent" item 19,
              a name with non-ASCII letters) verifies and imports: the name
              as written, the disk equal to its source; a fixed VHD under
              XenCenter's VHD format URI (vhdspec.mspx) too. The same .ovf really
              in UTF-16 (with its byte order mark) imports too; with a lone
              surrogate in it, refused in one line (libxml2 prints nothing).
              Labelled
              utf-16 without a byte order mark but not UTF-8 either: verify
              and import refuse it with one line naming the .ovf and UTF-8,
              the store unchanged. A DOCTYPE under the utf-16 label is still
              refused.
  chunks      VMware's ovf:chunkSize: the VMDK as members NAME.000000000,
              .000000001 ... (each with its own SHA256 line in the .mf,
              ovf:size the whole file's): verify and import (a tar, and an
              unpacked folder of the .ovf and the chunk files); the disk
              equals its source. Refused, one line naming the chunk, store
              unchanged: a chunk missing, two chunks swapped, an extra chunk
              beyond ovf:size, a chunk whose manifest digest is wrong, a
              chunk one byte short (ovf:size then disagrees), a folder with
              a chunk missing.
  vbox_iso    VirtualBox packs an attached ISO: a Disk of ovf:format Ecma-119
              whose File is the .iso member, and a CD item (ResourceType 15)
              whose HostResource names that disk (OVF 1.0, vbox namespace,
              SHA1 manifest last). The ISO's first bytes are a VMDK magic:
              it must be read as the bytes it is. After import: one hard
              disk equal to its source, and the CD drive (vm config:
              devtype=cdrom, access=ro) whose target holds exactly the ISO
              bytes (sha256 computed here). Exported to XVA and imported
              again: the same (the image is a streamed VDI marked
              snapport:cd-image). Exported to OVA: the ISO travels as an .iso
              member (in the manifest, Ecma-119 Disk, the CD item naming it)
              and imports back as the CD's image.
"""

import hashlib
import os
import random
import re
import shutil
import sys

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402
import xvatest as X  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_ova  # noqa: E402  (its peer_ovf: a VMware-like descriptor)

K, M = S.K, S.M
EXE = TMP = None
RNG = random.Random(1111)

STREAM_URI = test_ova.STREAM_URI
XEN_VHD_URI = "http://www.microsoft.com/technet/virtualserver/downloads/vhdspec.mspx"
ISO_URI = "http://www.ecma-international.org/publications/standards/Ecma-119.htm"


# ---------------------------------------------------------------- helpers

def sha256(data):
    return hashlib.sha256(data).hexdigest()


def tar_of(members):
    """A ustar OVA of [(name, bytes)] in this order."""
    return X.tar_bytes([X.Member(n, d, mode=0o644) for n, d in members])


def mf_of(pairs, algo="SHA256"):
    """A manifest of [(name, bytes)], open-vmdk's form: ALG(name)= hex."""
    h = {"SHA256": hashlib.sha256, "SHA1": hashlib.sha1}[algo]
    return "".join("%s(%s)= %s\n" % (algo, n, h(d).hexdigest()) for n, d in pairs).encode()


def source_disk(size):
    """Disk content: random runs between zeros, the last sector set."""
    b = bytearray(size)
    b[0:256 * K] = RNG.randbytes(256 * K)
    b[size // 2:size // 2 + 700 * K] = RNG.randbytes(700 * K)
    b[size - 512:] = b"\x5a" * 512
    return bytes(b)


def qemu_image(raw, name, fmt, opts):
    src = os.path.join(TMP, name + ".raw")
    out = os.path.join(TMP, name + "." + fmt)
    T.write_file(src, raw)
    r = T.run(["qemu-img", "convert", "-f", "raw", "-O", fmt, "-o", opts, src, out], timeout=60)
    if r.rc != 0:
        T.fatal("qemu-img convert (test setup): " + r.describe())
    return T.read_file(out)


def store(name):
    return S.Store(EXE, os.path.join(TMP, "st_" + name), os.path.join(TMP, "flat_" + name))


def snapshot(st):
    """What must not change when an import fails."""
    if not os.path.exists(st.dir):
        return None
    return (sorted(st.vms().items()), st.files(include_catalog=False), st.catalog_dump())


def import_ok(st, path, name, what):
    """Import; the vm show json, or None."""
    r = st.sp("import", path, "--name", name, timeout=60)
    if not T.check(r.rc == 0, "%s: import: %s" % (what, r.describe())):
        return None
    return st.show(name, fatal=False)


def refused(st, path, what, names):
    """verify exits non-zero and import exit 3, each one line naming one of
    names; the store as it was, no staging left."""
    r = T.sp(EXE, "verify", path, timeout=60)
    lines = S.error_lines(r)
    T.check(r.rc not in (0,) and not r.crashed() and len(lines) == 1 and any(n in lines[0] for n in names),
            "%s: verify should refuse in one line naming %s: %s" % (what, names, r.describe()))
    before = snapshot(st)
    r = st.sp("import", path, "--name", "never", timeout=60)
    lines = S.error_lines(r)
    T.check(r.rc == 3 and len(lines) == 1 and lines[0].startswith("snapport: ") and any(n in lines[0] for n in names),
            "%s: import should exit 3 in one line naming %s: %s" % (what, names, r.describe()))
    T.check(snapshot(st) == before, "%s: the store changed after a refused import" % what)
    staging = os.path.join(st.dir, "staging")
    T.check(not os.path.isdir(staging) or not os.listdir(staging), "%s: staging left: %s" % (
        what, os.listdir(staging) if os.path.isdir(staging) else None))
    return r


def flat_disks(st, j):
    """[(vdev, cdrom, bytes)] of the VM's disks with a VDI."""
    return [(d["vdev"], d["cdrom"], st.flatten(d["file"])) for d in j["disks"] if d["vdi"]]


# ---------------------------------------------------------------- 1. XenCenter

def xencenter_ovf(vm, href, size, capacity, decl="utf-16"):
    """As XenCenter's OVF library writes it: ovf:-prefixed elements, a
    declaration that says utf-16 (the text is UTF-8), a Storage Extent item."""
    return """<?xml version="1.0" encoding="%(decl)s"?>
<ovf:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" ovf:version="1.0.0" xml:lang="en-US" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xenovf="http://schemas.citrix.com/ovf/envelope/1">
  <ovf:References>
    <ovf:File ovf:id="f0c2b3a4-1111-2222-3333-444455556666" ovf:href="%(href)s" ovf:size="%(size)d" />
  </ovf:References>
  <ovf:DiskSection>
    <ovf:Info>Disk Section</ovf:Info>
    <ovf:Disk ovf:diskId="d6e5f4a3-aaaa-bbbb-cccc-ddddeeeeffff" ovf:fileRef="f0c2b3a4-1111-2222-3333-444455556666" ovf:capacity="%(cap)d" ovf:format="%(fmt)s" ovf:populatedSize="%(size)d" ovf:capacityAllocationUnits="byte" />
  </ovf:DiskSection>
  <ovf:NetworkSection>
    <ovf:Info>List of networks</ovf:Info>
    <ovf:Network ovf:name="Pool-wide network associated with eth0">
      <ovf:Description>Network</ovf:Description>
    </ovf:Network>
  </ovf:NetworkSection>
  <ovf:VirtualSystem ovf:id="%(vm)s">
    <ovf:Info>A virtual machine</ovf:Info>
    <ovf:Name>%(vm)s</ovf:Name>
    <ovf:OperatingSystemSection ovf:id="0">
      <ovf:Info>Guest Operating System</ovf:Info>
      <ovf:Description>Debian Bookworm 12</ovf:Description>
    </ovf:OperatingSystemSection>
    <ovf:VirtualHardwareSection>
      <ovf:Info>Virtual hardware requirements</ovf:Info>
      <ovf:System>
        <vssd:ElementName>Virtual System Type</vssd:ElementName>
        <vssd:InstanceID>1b2c3d4e</vssd:InstanceID>
        <vssd:VirtualSystemType>hvm-3.0-unknown</vssd:VirtualSystemType>
      </ovf:System>
      <ovf:Item>
        <rasd:AllocationUnits>count</rasd:AllocationUnits>
        <rasd:Caption>2 CPU</rasd:Caption>
        <rasd:Description>Number of virtual CPUs</rasd:Description>
        <rasd:ElementName>2 CPU</rasd:ElementName>
        <rasd:InstanceID>c1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>2</rasd:VirtualQuantity>
      </ovf:Item>
      <ovf:Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Caption>768 MB of memory</rasd:Caption>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>768 MB of memory</rasd:ElementName>
        <rasd:InstanceID>m1</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>768</rasd:VirtualQuantity>
      </ovf:Item>
      <ovf:Item>
        <rasd:Caption>Harddisk 0</rasd:Caption>
        <rasd:Description>Hard disk 0 (ü)</rasd:Description>
        <rasd:ElementName>Harddisk 0</rasd:ElementName>
        <rasd:InstanceID>d6e5f4a3-aaaa-bbbb-cccc-ddddeeeeffff</rasd:InstanceID>
        <rasd:ResourceType>19</rasd:ResourceType>
      </ovf:Item>
      <xenovf:VirtualSystemOtherConfigurationData Name="HVM_boot_params">
        <xenovf:Info>HVM boot parameters</xenovf:Info>
        <xenovf:Value>order=dc</xenovf:Value>
      </xenovf:VirtualSystemOtherConfigurationData>
    </ovf:VirtualHardwareSection>
  </ovf:VirtualSystem>
</ovf:Envelope>
""" % {"decl": decl, "href": href, "size": size, "cap": capacity, "fmt": XEN_VHD_URI, "vm": vm}


def case_xencenter():
    st = store("xc")
    vm = "Prüfstand-ß €"
    raw = source_disk(8 * M)
    vhd = qemu_image(raw, "xc", "vpc", "subformat=dynamic,force_size=on")
    text = xencenter_ovf(vm, "xc-disk.vhd", len(vhd), len(raw))
    good = text.encode("utf-8")
    T.check(good[:40].startswith(b'<?xml version="1.0" encoding="utf-16"?>'), "setup: the declaration")
    p = T.write_file(os.path.join(TMP, "xc.ova"), tar_of([("xc.ovf", good), ("xc-disk.vhd", vhd)]))
    r = T.sp(EXE, "verify", p, timeout=60)
    T.expect_ok(r, "xencenter: verify of an .ovf labelled utf-16 in UTF-8")
    j = import_ok(st, p, "xc", "xencenter utf-16 label")
    if j:
        T.check(j["vcpus"] == 2 and (j["memory"] / 2**20) == 768, "xencenter: vcpus/memory %r/%r" % (j["vcpus"], (j["memory"] / 2**20)))
        fl = flat_disks(st, j)
        T.check(len(fl) == 1 and fl[0][2] == raw, "xencenter: the disk differs from its source (%d disks)" % len(fl))
    # the name, as written (the OVF's own, no --name)
    r = st.sp("import", p, timeout=60)
    if T.check(r.rc == 0, "xencenter: import without --name: %s" % r.describe()):
        T.check(vm in st.vms(), "xencenter: no VM named %r: %s" % (vm, sorted(st.vms())))

    # XenCenter's VHD URI on a fixed VHD (its footer at the end, raw-looking bytes before)
    fixed = qemu_image(raw, "xcfixed", "vpc", "subformat=fixed,force_size=on")
    pf = T.write_file(os.path.join(TMP, "xcfixed.ova"), tar_of([
        ("xcfixed.ovf", xencenter_ovf(vm, "xc-disk.vhd", len(fixed), len(raw)).encode()), ("xc-disk.vhd", fixed)]))
    j = import_ok(st, pf, "xcfixed", "xencenter fixed VHD")
    if j:
        fl = flat_disks(st, j)
        T.check(len(fl) == 1 and fl[0][2] == raw, "xencenter fixed VHD: the disk differs from its source")

    # the same document really in UTF-16, byte order mark first
    utf16 = text.encode("utf-16")
    T.check(utf16[:2] in (b"\xff\xfe", b"\xfe\xff"), "setup: UTF-16 with a BOM")
    p16 = T.write_file(os.path.join(TMP, "xc16.ova"), tar_of([("xc16.ovf", utf16), ("xc-disk.vhd", vhd)]))
    j = import_ok(st, p16, "xc16", "xencenter real UTF-16 with BOM")
    if j:
        fl = flat_disks(st, j)
        T.check(len(fl) == 1 and fl[0][2] == raw, "xencenter utf-16: the disk differs from its source")

    # real UTF-16 with a broken code unit (a lone surrogate): one line, libxml2 prints nothing
    broken = utf16.replace(vm.encode("utf-16-le"), b"\x00\xd8", 1)
    T.check(broken != utf16, "setup: the lone surrogate")
    refused(st, T.write_file(os.path.join(TMP, "xc16bad.ova"), tar_of([("xc16bad.ovf", broken), ("xc-disk.vhd", vhd)])),
            "xencenter UTF-16 with a lone surrogate", ["xc16bad.ovf"])

    # labelled utf-16, no BOM, not UTF-8 either (a Latin-1 byte in the name)
    bad = text.replace(vm, "Pr\udcfcf").encode("utf-8", "surrogateescape")
    T.check(b"Pr\xfcf" in bad, "setup: the Latin-1 byte")
    pb = T.write_file(os.path.join(TMP, "xcbad.ova"), tar_of([("xcbad.ovf", bad), ("xc-disk.vhd", vhd)]))
    r = refused(st, pb, "xencenter label, bytes neither UTF-16 nor UTF-8", ["xcbad.ovf"])
    T.check("not UTF-8" in r.err, "xencenter bad bytes: the message should say not UTF-8: %r" % r.err)

    # a DOCTYPE is refused under that label too
    evil = text.replace('<ovf:Envelope', '<!DOCTYPE x [ <!ENTITY e "e"> ]>\n<ovf:Envelope', 1).encode()
    pe = T.write_file(os.path.join(TMP, "xcevil.ova"), tar_of([("xcevil.ovf", evil), ("xc-disk.vhd", vhd)]))
    r = refused(st, pe, "xencenter label with a DOCTYPE", ["xcevil.ovf"])
    T.check("DOCTYPE" in r.err, "xencenter DOCTYPE: the message should say DOCTYPE: %r" % r.err)


# ---------------------------------------------------------------- 2. VMware chunks

def vmware_chunked_ovf(vm, href, size, chunk, capacity):
    """test_ova's VMware-like OVF 1.0 (one streamOptimized disk), its File
    with ovf:chunkSize as vCenter writes it (govmomi's nostalgia-chunkdisk)."""
    ovf = test_ova.peer_ovf(vm, href, size, capacity, STREAM_URI)
    old = b'ovf:size="%d"' % size
    if ovf.count(old) != 1:
        T.fatal("setup: test_ova.peer_ovf's File line changed")
    return ovf.replace(old, old + b' ovf:chunkSize="%d"' % chunk)


CHUNK = 256 * K


def chunked_package(vmdk):
    """(ovf bytes, [(chunk name, bytes)]) of vmdk cut in CHUNK pieces."""
    href = "nostalgia-disk1.vmdk"
    chunks = [("%s.%09d" % (href, i), vmdk[o:o + CHUNK]) for i, o in enumerate(range(0, len(vmdk), CHUNK))]
    ovf = vmware_chunked_ovf("Nostalgia", href, len(vmdk), CHUNK, 24 * M)
    return ovf, chunks


def chunk_ova(path, ovf, chunks, mf_chunks=None):
    """.ovf, .mf (SHA256 of the .ovf and of mf_chunks, default chunks), chunks."""
    mf = mf_of([("Nostalgia.ovf", ovf)] + (chunks if mf_chunks is None else mf_chunks))
    return T.write_file(path, tar_of([("Nostalgia.ovf", ovf), ("Nostalgia.mf", mf)] + chunks))


def case_chunks():
    st = store("chunks")
    raw = source_disk(24 * M)
    vmdk = qemu_image(raw, "nostalgia", "vmdk", "subformat=streamOptimized")
    ovf, chunks = chunked_package(vmdk)
    if not T.check(len(chunks) >= 4, "setup: %d chunks of a %d-byte VMDK, want 4 or more" % (len(chunks), len(vmdk))):
        return
    p = chunk_ova(os.path.join(TMP, "chunks.ova"), ovf, chunks)
    T.expect_ok(T.sp(EXE, "verify", p, timeout=60), "chunks: verify")
    j = import_ok(st, p, "nost", "chunks")
    if j:
        fl = flat_disks(st, j)
        T.check(len(fl) == 1 and fl[0][2] == raw, "chunks: the disk differs from its source (%d disks)" % len(fl))

    # an unpacked folder: the .ovf, the .mf and the chunk files
    d = os.path.join(TMP, "chunkdir")
    os.makedirs(d)
    T.write_file(os.path.join(d, "Nostalgia.ovf"), ovf)
    T.write_file(os.path.join(d, "Nostalgia.mf"), mf_of([("Nostalgia.ovf", ovf)] + chunks))
    for n, data in chunks:
        T.write_file(os.path.join(d, n), data)
    j = import_ok(st, d, "nostdir", "chunks, unpacked folder")
    if j:
        fl = flat_disks(st, j)
        T.check(len(fl) == 1 and fl[0][2] == raw, "chunks folder: the disk differs from its source")
    os.unlink(os.path.join(d, chunks[2][0]))
    refused(st, d, "chunks folder, chunk 2 missing", [chunks[2][0]])

    n1, n2 = chunks[1][0], chunks[2][0]
    refused(st, chunk_ova(os.path.join(TMP, "c_missing.ova"), ovf, chunks[:2] + chunks[3:], chunks),
            "chunks: chunk 2 missing", [n2])
    refused(st, chunk_ova(os.path.join(TMP, "c_swapped.ova"), ovf, [chunks[0], chunks[2], chunks[1]] + chunks[3:]),
            "chunks: chunks 1 and 2 swapped", [n1, n2])
    extra = ("nostalgia-disk1.vmdk.%09d" % len(chunks), b"\0" * 512)
    refused(st, chunk_ova(os.path.join(TMP, "c_extra.ova"), ovf, chunks + [extra]),
            "chunks: a chunk beyond ovf:size", [extra[0]])
    wrong = list(chunks)
    wrong_mf = list(chunks)
    wrong_mf[2] = (n2, chunks[2][1] + b"x")   # its manifest line: the digest of other bytes
    refused(st, chunk_ova(os.path.join(TMP, "c_digest.ova"), ovf, wrong, wrong_mf),
            "chunks: a chunk's manifest digest wrong", [n2])
    short = list(chunks)
    short[1] = (n1, chunks[1][1][:-1])
    refused(st, chunk_ova(os.path.join(TMP, "c_short.ova"), ovf, short), "chunks: chunk 1 one byte short", [n1])
    T.check(st.check().rc == 0, "chunks: store check after the refusals")


# ---------------------------------------------------------------- 3. VirtualBox ISO

# VirtualBox's controllers: (Address, name, kind, InstanceID, subtype, ResourceType)
VBOX_CONTROLLERS = [(0, "ideController0", "IDE", 3, "PIIX4", 5), (1, "ideController1", "IDE", 4, "PIIX4", 5),
                    (0, "sataController0", "SATA", 5, "AHCI", 20)]


def vbox_controller(addr, name, kind, iid, sub, rtype):
    return """      <Item>
        <rasd:Address>%d</rasd:Address>
        <rasd:Caption>%s</rasd:Caption>
        <rasd:Description>%s Controller</rasd:Description>
        <rasd:ElementName>%s</rasd:ElementName>
        <rasd:InstanceID>%d</rasd:InstanceID>
        <rasd:ResourceSubType>%s</rasd:ResourceSubType>
        <rasd:ResourceType>%d</rasd:ResourceType>
      </Item>
""" % (addr, name, kind, name, iid, sub, rtype)


def vbox_ovf(vm, vmdk_href, vmdk_size, capacity, iso_href, iso_size):
    """As VirtualBox 6/7 writes an OVF 1.0 (ApplianceImplExport.cpp): vbox
    namespace, SATA disk, an ISO on the IDE CD drive."""
    return ("""<?xml version="1.0"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:vbox="http://www.virtualbox.org/ovf/machine">
  <References>
    <File ovf:id="file1" ovf:href="%(vh)s"/>
    <File ovf:id="file2" ovf:href="%(ih)s"/>
  </References>
  <DiskSection>
    <Info>List of the virtual disks used in the package</Info>
    <Disk ovf:capacity="%(cap)d" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="%(so)s" vbox:uuid="8b9f2f0e-6c5d-4b7e-9a43-1f0e2d3c4b5a"/>
    <Disk ovf:capacity="%(isz)d" ovf:diskId="vmdisk2" ovf:fileRef="file2" ovf:format="%(iso)s" vbox:uuid="0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e"/>
  </DiskSection>
  <NetworkSection>
    <Info>Logical networks used in the package</Info>
    <Network ovf:name="NAT">
      <Description>Logical network used by this appliance.</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="%(vm)s">
    <Info>A virtual machine</Info>
    <OperatingSystemSection ovf:id="96">
      <Info>The kind of installed guest operating system</Info>
      <Description>Debian_64</Description>
      <vbox:OSType ovf:required="false">Debian_64</vbox:OSType>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements for a virtual machine</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>%(vm)s</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:Caption>1 virtual CPU</rasd:Caption>
        <rasd:Description>Number of virtual CPUs</rasd:Description>
        <rasd:ElementName>1 virtual CPU</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>1</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits>
        <rasd:Caption>1024 MB of memory</rasd:Caption>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>1024 MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>1024</rasd:VirtualQuantity>
      </Item>
%(controllers)s      <Item>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Caption>Ethernet adapter on 'NAT'</rasd:Caption>
        <rasd:Connection>NAT</rasd:Connection>
        <rasd:ElementName>Ethernet adapter on 'NAT'</rasd:ElementName>
        <rasd:InstanceID>6</rasd:InstanceID>
        <rasd:ResourceSubType>E1000</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:Caption>disk1</rasd:Caption>
        <rasd:Description>Disk Image</rasd:Description>
        <rasd:ElementName>disk1</rasd:ElementName>
        <rasd:HostResource>/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>7</rasd:InstanceID>
        <rasd:Parent>5</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Caption>cdrom1</rasd:Caption>
        <rasd:Description>CD-ROM Drive</rasd:Description>
        <rasd:ElementName>cdrom1</rasd:ElementName>
        <rasd:HostResource>/disk/vmdisk2</rasd:HostResource>
        <rasd:InstanceID>8</rasd:InstanceID>
        <rasd:Parent>4</rasd:Parent>
        <rasd:ResourceType>15</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
""" % {"vh": vmdk_href, "ih": iso_href, "cap": capacity, "isz": iso_size, "so": STREAM_URI, "iso": ISO_URI,
       "controllers": "".join(vbox_controller(*c) for c in VBOX_CONTROLLERS),
       "vm": vm}).encode()


def fake_iso():
    """An ISO-looking image of known bytes (a multiple of 2048): a "KDMV"
    VMDK magic in its system area (any bytes may stand there), a primary
    volume descriptor at 32 KiB, random data after."""
    b = bytearray(384 * K)
    b[0:4] = b"KDMV"
    b[4:16] = bytes([3, 0, 0, 0, 1, 0, 3, 0, 0, 0, 0, 0])
    b[32 * K:32 * K + 6] = b"\x01CD001"
    b[40 * K:] = RNG.randbytes(len(b) - 40 * K)
    return bytes(b)


def config_lines(st, name):
    r = st.sp("vm", "config", name)
    if not T.check(r.rc == 0, "vm config %s: %s" % (name, r.describe())):
        return []
    return [ln for ln in r.out.splitlines() if "target=" in ln]


def check_vbox_vm(st, name, raw, iso, what):
    """One hard disk equal to raw; the CD drive: cdrom, ro, a target holding exactly iso."""
    j = st.show(name, fatal=False)
    if not T.check(j is not None, "%s: vm show %s" % (what, name)):
        return
    disks = j["disks"]
    hard = [d for d in disks if not d["cdrom"]]
    cds = [d for d in disks if d["cdrom"]]
    T.check(len(hard) == 1 and len(cds) == 1, "%s: %d hard disks and %d CD drives, expected 1 and 1: %s" % (
        what, len(hard), len(cds), disks))
    if hard and hard[0]["vdi"]:
        T.check(st.flatten(hard[0]["file"]) == raw, "%s: the hard disk differs from its source" % what)
    if not cds:
        return
    cd = cds[0]
    T.check(cd["vdi"] is not None, "%s: the CD drive has no image (vdi null)" % what)
    lines = [ln for ln in config_lines(st, name) if "devtype=cdrom" in ln]
    if not T.check(len(lines) == 1, "%s: vm config has %d cdrom lines" % (what, len(lines))):
        return
    ln = lines[0]
    T.check("access=ro" in ln, "%s: the CD is not access=ro: %s" % (what, ln))
    m = re.search(r"target=([^',]+)", ln)
    if not T.check(m is not None, "%s: no target in %s" % (what, ln)):
        return
    data = st.flatten(m.group(1))
    T.check(data is not None and len(data) == len(iso) and sha256(data) == sha256(iso),
            "%s: the CD's target holds %s bytes (sha256 %s), the ISO is %d bytes (sha256 %s)" % (
                what, None if data is None else len(data), data and sha256(data), len(iso), sha256(iso)))


def case_vbox_iso():
    st = store("vbox")
    raw = source_disk(16 * M)
    vmdk = qemu_image(raw, "vbox", "vmdk", "subformat=streamOptimized")
    iso = fake_iso()
    ovf = vbox_ovf("Debian VBox", "Debian VBox-disk001.vmdk", len(vmdk), len(raw), "Debian VBox-file1.iso", len(iso))
    mems = [("Debian VBox.ovf", ovf), ("Debian VBox-disk001.vmdk", vmdk), ("Debian VBox-file1.iso", iso)]
    p = T.write_file(os.path.join(TMP, "vbox.ova"), tar_of(mems + [("Debian VBox.mf", mf_of(mems, "SHA1"))]))
    T.expect_ok(T.sp(EXE, "verify", p, timeout=60), "vbox: verify")
    r = T.sp(EXE, "info", p)
    T.check(r.rc == 0 and re.search(r"vmdisk2\s+iso\b", r.out), "vbox: info should call the ISO iso: %s" % r.describe())
    if import_ok(st, p, "vb", "vbox ISO") is None:
        return
    check_vbox_vm(st, "vb", raw, iso, "vbox import")

    xva = os.path.join(TMP, "vb.xva")
    r = st.sp("export", "vb", "-o", xva, timeout=60)
    if T.check(r.rc == 0, "vbox: export to XVA: %s" % r.describe()):
        if import_ok(st, xva, "vb-xva", "vbox -> XVA") is not None:
            check_vbox_vm(st, "vb-xva", raw, iso, "vbox -> XVA -> import")

    ova = os.path.join(TMP, "vb.ova")
    r = st.sp("export", "vb", "-o", ova, timeout=60)
    if T.check(r.rc == 0, "vbox: export to OVA: %s" % r.describe()):
        mems = X.members(T.read_file(ova))
        isos = [m for m in mems if m.name.endswith(".iso")]
        T.check(len(isos) == 1 and isos[0].data == iso, "vbox -> OVA: the ISO member %s" % [m.name for m in mems])
        mf = [m for m in mems if m.name.endswith(".mf")]
        if isos and mf:
            T.check(("(%s)= %s" % (isos[0].name, sha256(iso))) in mf[0].data.decode(),
                    "vbox -> OVA: the ISO's SHA256 is not in the manifest")
        ovft = mems[0].data.decode()
        T.check(ISO_URI in ovft, "vbox -> OVA: no Ecma-119 Disk in the .ovf")
        if import_ok(st, ova, "vb-ova", "vbox -> OVA") is not None:
            check_vbox_vm(st, "vb-ova", raw, iso, "vbox -> OVA -> import")
    T.check(st.check().rc == 0, "vbox: store check")


def main():
    global EXE, TMP
    EXE, TMP = T.setup()
    if not shutil.which("qemu-img"):
        T.fatal("qemu-img is needed")
    case_xencenter()
    case_chunks()
    case_vbox_iso()
    T.finish("test_interop_ova")


if __name__ == "__main__":
    main()
