"""What a VM is beyond its disks survives both ways (issue 11): firmware,
MACs, CD drives, NIC models, network names, platform flags, templates.

Every foreign archive is built here from the public formats (ova.xml in
XML-RPC as XAPI writes it, OVF descriptors as VMware, VirtualBox and
XenCenter write them); what snapport writes is read back with Python's own
XML parser, not snapport's.

  uefi-roundtrip  an HVM VM with bios = 'ovmf', two VIFs on named networks:
                  its XVA says HVM_boot_params firmware=uefi (platform
                  secureboot=false) and names the networks; its OVF has
                  vmw:Config firmware=efi, NIC ResourceSubTypes (E1000, and
                  rtl8139 for xl's default), the network names as
                  Connection, an OS Description, XenCenter's xenovf fields;
                  both import back with bios = 'ovmf', the same MACs,
                  bridges, models and network names.
  xapi-foreign    an ova.xml as XAPI / Xen Orchestra write it: a template,
                  HVM_boot_params firmware=uefi, platform flags, a disk
                  and a CD on userdevice 0 and 3 without device names, an
                  all-zero and a blank MAC, a network with a name_label:
                  imports with bios = 'ovmf', the flags as xl keys, hda and
                  hdd, two new distinct 00:16:3e MACs that stay, the network
                  name kept; stderr says it was a template and that secure
                  boot is not carried. The PV form names the CD xvdd.
  ovf-vmware      vmw:Config firmware=efi, NICs E1000e, VmxNet3, PCNet32
                  (qemu has these: same device), VmxNet2 and Flexible (no
                  such qemu device: e1000 and pcnet, said on stderr), no
                  MACs (made once), network names kept.
  ovf-vbox        VirtualBox's vbox:Machine Hardware/Firmware type="EFI".
  ovf-xencenter   XenCenter's xenovf fields of a PV guest: imports as PV.
"""

import os
import re
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402
import xvatest as X  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_interop_xva as XI  # noqa: E402  (ova.xml in XML-RPC, block streams)
import test_ova  # noqa: E402  (a VMware-like descriptor)

M = S.M
EXE = TMP = None
MAC_RE = re.compile(r"^00:16:3e:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$")
OVF_NS = {"ovf": "http://schemas.dmtf.org/ovf/envelope/1",
          "rasd": "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData",
          "vmw": "http://www.vmware.com/schema/ovf",
          "xenovf": "http://schemas.citrix.com/ovf/envelope/1"}


def config(st, name):
    r = st.sp("vm", "config", name)
    T.check(r.rc == 0, "vm config %s: %s" % (name, r.describe()))
    return r.out


def vifs_of(text):
    """[(mac, bridge, model)] from an xl.cfg's vif list."""
    out = []
    for spec in re.findall(r"'([^']*)'", text.split("vif = [", 1)[1].split("]", 1)[0]) if "vif = [" in text else []:
        kv = dict(item.strip().split("=", 1) for item in spec.split(",") if "=" in item)
        out.append((kv.get("mac", ""), kv.get("bridge", ""), kv.get("model", "")))
    return out


def networks_of(text):
    m = re.search(r"^snapport_networks = \[(.*)\]$", text, re.M)
    return re.findall(r"'([^']*)'", m.group(1)) if m else []


def disk_specs(text):
    return re.findall(r"'(format=[^']*)'", text)


def import_as(st, path, name, what):
    r = st.sp("import", path, "--name", name, timeout=60)
    T.check(r.rc == 0, "%s: import: %s" % (what, r.describe()))
    return r


# ---------------------------------------------------------------- uefi-roundtrip

def make_uefi_vm(st):
    d = os.path.join(TMP, "src")
    os.makedirs(d)
    X.write(os.path.join(d, "a.raw"), XI.RNG.randbytes(2 * M))
    cfg = os.path.join(d, "u.cfg")
    with open(cfg, "w") as f:
        f.write("""name = 'uefi'
type = 'hvm'
memory = 512
vcpus = 2
bios = 'ovmf'
viridian = 1
disk = [ 'format=raw, vdev=xvda, access=rw, target=a.raw' ]
vif = [ 'mac=00:16:3e:11:00:01, bridge=xenbr0, model=e1000', 'mac=00:16:3e:11:00:02, bridge=xenbr2' ]
snapport_networks = [ 'LAN 1', 'Storage net' ]
""")
    st.ok("vm", "create", "--config", cfg, what="vm create uefi")
    text = config(st, "uefi")
    T.check(re.search(r"^bios = 'ovmf'$", text, re.M), "vm config keeps bios: %r" % text)
    T.check(networks_of(text) == ["LAN 1", "Storage net"], "vm config keeps network names: %r" % text)
    return text


def xva_objects(path):
    xml = X.members(X.decompress(path))[0].data
    root = ET.fromstring(xml)
    objs = {}
    for v in root.iter("struct"):
        members = {m.findtext("name"): m.find("value") for m in v.findall("member")}
        if "class" in members and "snapshot" in members:
            objs.setdefault(members["class"].findtext("."), []).append(members["snapshot"].find("struct"))
    return objs


def rpc_field(struct, name):
    for m in struct.findall("member"):
        if m.findtext("name") == name:
            return m.find("value")
    return None


def rpc_map(value):
    return {m.findtext("name"): "".join(m.find("value").itertext()) for m in value.find("struct").findall("member")}


def check_same_vm(st, name, orig, what):
    text = config(st, name)
    T.check(re.search(r"^bios = 'ovmf'$", text, re.M), "%s: bios lost: %r" % (what, text))
    T.check(vifs_of(text) == vifs_of(orig), "%s: vifs %r, want %r" % (what, vifs_of(text), vifs_of(orig)))
    T.check(networks_of(text) == ["LAN 1", "Storage net"], "%s: networks %r" % (what, networks_of(text)))
    T.check(re.search(r"^viridian = 1$", text, re.M), "%s: viridian lost: %r" % (what, text))


def case_uefi_roundtrip(st):
    orig = make_uefi_vm(st)
    xva = os.path.join(TMP, "u.xva")
    st.ok("export", "uefi", "-o", xva, what="export uefi xva")
    objs = xva_objects(xva)
    vm = objs["VM"][0]
    params = rpc_map(rpc_field(vm, "HVM_boot_params"))
    platform = rpc_map(rpc_field(vm, "platform"))
    T.check(params.get("firmware") == "uefi", "XVA: HVM_boot_params %r" % params)
    T.check(platform.get("secureboot") == "false" and platform.get("viridian") == "true",
            "XVA: platform %r" % platform)
    names = sorted(rpc_field(n, "name_label").findtext(".") for n in objs.get("network", []))
    T.check(names == ["LAN 1", "Storage net"], "XVA: network names %r" % names)
    import_as(st, xva, "u-xva", "uefi xva")
    check_same_vm(st, "u-xva", orig, "uefi -> XVA -> import")

    ova = os.path.join(TMP, "u.ova")
    st.ok("export", "uefi", "-o", ova, what="export uefi ova")
    ovf = X.members(open(ova, "rb").read())[0].data
    root = ET.fromstring(ovf)
    hw = root.find(".//ovf:VirtualHardwareSection", OVF_NS)
    cfgs = {c.get("{%s}key" % OVF_NS["vmw"]): c.get("{%s}value" % OVF_NS["vmw"])
            for c in hw.findall("vmw:Config", OVF_NS)}
    T.check(cfgs.get("firmware") == "efi", "OVF: vmw:Config %r" % cfgs)
    nics = [(i.findtext("rasd:ResourceSubType", None, OVF_NS), i.findtext("rasd:Connection", None, OVF_NS))
            for i in hw.findall("ovf:Item", OVF_NS) if i.findtext("rasd:ResourceType", None, OVF_NS) == "10"]
    T.check(nics == [("E1000", "LAN 1"), ("rtl8139", "Storage net")], "OVF: NICs %r" % nics)
    desc = root.findtext(".//ovf:OperatingSystemSection/ovf:Description", None, OVF_NS)
    T.check(desc == "Other 64-bit", "OVF: OS Description %r" % desc)
    xen = {e.get("Name"): e.findtext("xenovf:Value", None, OVF_NS)
           for e in hw.findall("xenovf:VirtualSystemOtherConfigurationData", OVF_NS)}
    T.check(xen.get("HVM_boot_policy") == "BIOS order" and "firmware=uefi" in (xen.get("HVM_boot_params") or "")
            and "viridian=true" in (xen.get("platform") or ""), "OVF: xenovf fields %r" % xen)
    import_as(st, ova, "u-ova", "uefi ova")
    check_same_vm(st, "u-ova", orig, "uefi -> OVA -> import")


# ---------------------------------------------------------------- xapi-foreign

def foreign_ova_xml(hvm):
    disk = XI.sparse_image(2 * M, [0])
    objs = [{"class": "VM", "id": "Ref:VM1", "snapshot": {
        "uuid": XI.uuid_of(1), "name_label": "tmpl", "name_description": "", "is_a_template": True,
        "power_state": "Halted", "memory_static_max": 512 * M, "memory_dynamic_max": 512 * M,
        "memory_dynamic_min": 512 * M, "memory_static_min": 512 * M, "VCPUs_max": 1, "VCPUs_at_startup": 1,
        "HVM_boot_policy": "BIOS order" if hvm else "", "HVM_boot_params":
            {"order": "dc", "firmware": "uefi"} if hvm else {},
        "PV_bootloader": "" if hvm else "pygrub", "PV_args": "",
        "platform": {"device-model": "qemu-upstream-compat", "acpi": "1", "apic": "true", "viridian": "true",
                     "nx": "false", "secureboot": "true", "cores-per-socket": "1"},
        "other_config": {}, "VBDs": ["Ref:VBD0", "Ref:VBD3"], "VIFs": ["Ref:VIF0", "Ref:VIF1"],
        "parent": "OpaqueRef:NULL"}}]
    objs.append({"class": "VBD", "id": "Ref:VBD0", "snapshot": {
        "uuid": XI.uuid_of(100), "VM": "Ref:VM1", "VDI": "Ref:VDI0", "userdevice": "0", "device": "",
        "bootable": True, "mode": "RW", "type": "Disk", "empty": False, "other_config": {}}})
    objs.append({"class": "VBD", "id": "Ref:VBD3", "snapshot": {
        "uuid": XI.uuid_of(103), "VM": "Ref:VM1", "VDI": "OpaqueRef:NULL", "userdevice": "3", "device": "",
        "bootable": False, "mode": "RO", "type": "CD", "empty": True, "other_config": {}}})
    objs.append({"class": "VDI", "id": "Ref:VDI0", "snapshot": {
        "uuid": XI.uuid_of(200), "name_label": "root", "name_description": "", "SR": "Ref:SR1",
        "virtual_size": len(disk), "physical_utilisation": len(disk), "type": "User", "sharable": False,
        "read_only": False, "other_config": {}, "VBDs": ["Ref:VBD0"]}})
    for i, mac in enumerate(("00:00:00:00:00:00", "")):
        objs.append({"class": "VIF", "id": "Ref:VIF%d" % i, "snapshot": {
            "uuid": XI.uuid_of(400 + i), "VM": "Ref:VM1", "network": "Ref:NET0", "device": str(i), "MAC": mac,
            "MTU": 1500, "other_config": {}}})
    objs.append({"class": "network", "id": "Ref:NET0", "snapshot": {
        "uuid": XI.uuid_of(500), "name_label": "Pool-wide network associated with eth0", "bridge": "xenbr0",
        "other_config": {}}})
    objs.append({"class": "SR", "id": "Ref:SR1", "snapshot": {
        "uuid": XI.uuid_of(300), "name_label": "Local storage", "content_type": "user", "type": "ext",
        "other_config": {}}})
    version = {"hostname": "xcp", "date": "2026-11-29", "product_version": "8.2.1", "product_brand": "XCP-ng",
               "build_number": "release", "xapi_major": 1, "xapi_minor": 20, "export_vsn": 2}
    xml = ('<?xml version="1.0" ?>' + XI.rpc({"version": version, "objects": objs})).encode()
    return xml, [XI.block_members("Ref:VDI0", disk)]


def case_xapi_foreign(st):
    for hvm in (True, False):
        kind = "hvm" if hvm else "pv"
        xml, streams = foreign_ova_xml(hvm)
        path = XI.xva(os.path.join(TMP, "foreign-%s.xva" % kind), xml, streams)
        name = "xf-" + kind
        r = import_as(st, path, name, "xapi %s" % kind)
        T.check("template" in r.err and "imported as a halted VM" in r.err,
                "xapi %s: no note about the template: %r" % (kind, r.err))
        T.check("secureboot" in r.err, "xapi %s: no note about secure boot: %r" % (kind, r.err))
        text = config(st, name)
        specs = disk_specs(text)
        want_disk, want_cd = ("hda", "hdd") if hvm else ("xvda", "xvdd")
        T.check(len(specs) == 2 and ("vdev=%s" % want_disk) in specs[0] and ("vdev=%s" % want_cd) in specs[1]
                and "devtype=cdrom" in specs[1], "xapi %s: disks %r" % (kind, specs))
        vifs = vifs_of(text)
        macs = [v[0] for v in vifs]
        T.check(len(macs) == 2 and all(MAC_RE.match(m) for m in macs) and macs[0] != macs[1],
                "xapi %s: MACs %r" % (kind, macs))
        T.check(all(v[1] == "xenbr0" for v in vifs), "xapi %s: bridges %r" % (kind, vifs))
        T.check(networks_of(text) == ["Pool-wide network associated with eth0"] * 2,
                "xapi %s: networks %r" % (kind, networks_of(text)))
        T.check(config(st, name) == text, "xapi %s: the config changed between two reads (MACs not kept)" % kind)
        if hvm:
            for line in ("bios = 'ovmf'", "boot = 'dc'", "acpi = 1", "apic = 1", "viridian = 1", "nx = 0"):
                T.check(re.search("^%s$" % re.escape(line), text, re.M), "xapi hvm: no `%s' in %r" % (line, text))
        else:
            T.check("type = 'pv'" in text and "bios" not in text and "viridian" not in text,
                    "xapi pv: %r" % text)


# ---------------------------------------------------------------- OVFs

NIC_ITEM = """      <Item>
        <rasd:AddressOnParent>%(n)d</rasd:AddressOnParent>
        <rasd:Connection>%(net)s</rasd:Connection>
        <rasd:ElementName>Network adapter %(n)d</rasd:ElementName>
        <rasd:InstanceID>%(iid)d</rasd:InstanceID>
        <rasd:ResourceSubType>%(model)s</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
"""


def foreign_ova(name, nics=(("VmxNet3", "VM Network"),), hw_extra="", vs_extra="", env_extra=""):
    raw = XI.RNG.randbytes(M)
    ovf = test_ova.peer_ovf(name, "disk.img", len(raw), len(raw), test_ova.RAW_URI).decode()
    start = ovf.index("      <Item>\n        <rasd:AddressOnParent>7</rasd:AddressOnParent>")
    end = ovf.index("    </VirtualHardwareSection>")
    items = "".join(NIC_ITEM % {"n": i + 1, "iid": 10 + i, "model": m, "net": net} for i, (m, net) in enumerate(nics))
    ovf = ovf[:start] + items + hw_extra + ovf[end:]
    ovf = ovf.replace("  </VirtualSystem>", vs_extra + "  </VirtualSystem>")
    ovf = ovf.replace('xmlns:xsi=', env_extra + 'xmlns:xsi=')
    path = os.path.join(TMP, name + ".ova")
    X.write(path, X.tar_bytes([X.Member(name + ".ovf", ovf.encode()), X.Member("disk.img", raw)]))
    return path


def case_ovf_vmware(st):
    nics = [("E1000e", "VM Network"), ("VmxNet3", "VM Network"), ("PCNet32", "Backup"), ("VmxNet2", "VM Network"),
            ("Flexible", "VM Network")]
    path = foreign_ova("vmw", nics, hw_extra='      <vmw:Config ovf:required="false" vmw:key="firmware" '
                                           'vmw:value="efi"/>\n')
    r = import_as(st, path, "vmw", "vmware ovf")
    T.check("VmxNet2" in r.err and "e1000" in r.err and "Flexible" in r.err,
            "vmware: no note for the models changed: %r" % r.err)
    T.check("E1000e" not in r.err and "VmxNet3" not in r.err and "PCNet32" not in r.err,
            "vmware: a note for a model qemu has: %r" % r.err)
    text = config(st, "vmw")
    T.check(re.search(r"^bios = 'ovmf'$", text, re.M), "vmware: firmware efi lost: %r" % text)
    vifs = vifs_of(text)
    T.check([v[2] for v in vifs] == ["e1000e", "vmxnet3", "pcnet", "e1000", "pcnet"], "vmware: models %r" % vifs)
    T.check(all(MAC_RE.match(v[0]) for v in vifs) and len({v[0] for v in vifs}) == 5, "vmware: MACs %r" % vifs)
    T.check(networks_of(text) == [n for _, n in nics], "vmware: networks %r" % networks_of(text))
    # and back out: the names and the models readers know
    ova = os.path.join(TMP, "vmw-back.ova")
    st.ok("export", "vmw", "-o", ova, what="export vmw")
    hw = ET.fromstring(X.members(open(ova, "rb").read())[0].data).find(".//ovf:VirtualHardwareSection", OVF_NS)
    got = [(i.findtext("rasd:ResourceSubType", None, OVF_NS), i.findtext("rasd:Connection", None, OVF_NS))
           for i in hw.findall("ovf:Item", OVF_NS) if i.findtext("rasd:ResourceType", None, OVF_NS) == "10"]
    T.check(got == [("E1000e", "VM Network"), ("VmxNet3", "VM Network"), ("PCNet32", "Backup"),
                    ("E1000", "VM Network"), ("PCNet32", "VM Network")], "vmware -> OVA: NICs %r" % got)


def case_ovf_vbox(st):
    machine = ('    <vbox:Machine ovf:required="false" version="1.16-linux" uuid="{0f0e0d0c-0b0a-0908-0706-050403020100}"'
               ' name="vb">\n      <ovf:Info>VirtualBox machine</ovf:Info>\n      <Hardware>\n'
               '        <Firmware type="EFI"/>\n      </Hardware>\n    </vbox:Machine>\n')
    path = foreign_ova("vb", vs_extra=machine, env_extra='xmlns:vbox="http://www.virtualbox.org/ovf/machine" ')
    import_as(st, path, "vb", "vbox ovf")
    text = config(st, "vb")
    T.check(re.search(r"^bios = 'ovmf'$", text, re.M), "vbox: Firmware EFI lost: %r" % text)
    plain = foreign_ova("plain")
    import_as(st, plain, "plain", "plain ovf")
    T.check("bios" not in config(st, "plain"), "an OVF without firmware imported as UEFI")


def case_ovf_xencenter(st):
    fields = ""
    for name, value in (("HVM_boot_policy", ""), ("PV_bootloader", "pygrub"), ("platform", "nx=true;acpi=1;")):
        fields += ('      <xenovf:VirtualSystemOtherConfigurationData ovf:required="false" Name="%s">'
                   '<xenovf:Value>%s</xenovf:Value></xenovf:VirtualSystemOtherConfigurationData>\n' % (name, value))
    path = foreign_ova("xc", hw_extra=fields, env_extra='xmlns:xenovf="%s" ' % OVF_NS["xenovf"])
    import_as(st, path, "xc", "xencenter ovf")
    text = config(st, "xc")
    T.check("type = 'pv'" in text and "boot =" not in text, "xencenter: not a PV guest: %r" % text)


def main():
    global EXE, TMP
    EXE, TMP = T.setup()
    XI.EXE, XI.TMP = EXE, TMP
    st = S.Store(EXE, os.path.join(TMP, "store"), TMP)
    case_uefi_roundtrip(st)
    case_xapi_foreign(st)
    case_ovf_vmware(st)
    case_ovf_vbox(st)
    case_ovf_xencenter(st)
    T.check(st.check().rc == 0, "store check")
    T.finish("test_interop_vm")


if __name__ == "__main__":
    main()
