"""What independent OVF readers see in the OVAs snapport writes (issue 11).

Four VMs are made in a store from xl.cfg files and exported with
`snapport export VM -o X.ova`:
  uefi   hvm, bios='ovmf', 3 vcpus, 768 MiB, two disks (9 MiB, 5 MiB + 512),
         NICs model e1000 / e1000e / vmxnet3 on xenbr0 / xenbr1 / none
  bios   hvm, 2 vcpus, 512 MiB, one disk, NICs pcnet, rtl8139, no model,
         network names (snapport_networks) 'LAN 1', none, 'Storage net'
  pv     pv, bootloader='pygrub', 1 vcpu, 256 MiB, one disk, two NICs
         without a model (one without a bridge)
  pvh    pvh, 2 vcpus, 384 MiB, one disk, one NIC without a model
Each disk starts with its own random bytes, so disk order is checked by
content.

What the VM says and what the readers must see (the OVF writer's contract,
issue 11): NIC ResourceSubType from the xl model (e1000 E1000, e1000e
E1000e, vmxnet3 VmxNet3, pcnet PCNet32, rtl8139 rtl8139; no model: rtl8139
for HVM, E1000 for PV/PVH); Connection = the VIF's network name, else
its bridge, else "default"; OperatingSystemSection Description "Other
64-bit" (HVM) / "Linux 64-bit" (PV, PVH); vmw:Config firmware = efi for
bios='ovmf', else bios.

Readers:
  virt-v2v 2.2  `virt-v2v -v -x -i ova X.ova --print-source` (parses the OVA
                and stops; needs neither KVM nor a guest): source name,
                memory, vCPUs, firmware, disk count, NICs (bridge, MAC,
                model). Disks: the OVA byte range virt-v2v hands qemu-nbd for
                disk N (from its -v log), read by `qemu-img info` (virtual
                size) and `qemu-img compare` (same bytes as the VM's disk N).
                Manifest: virt-v2v digests every member of a SHA256 or SHA1
                manifest without a warning, and refuses an OVA whose .mf has
                one digit changed. Known limits, asserted so that a change is
                noticed: SHA512 lines are skipped with "unable to parse line"
                warnings; an OVF 2.0 descriptor yields nothing (name from the
                file name, no disks, no NICs).
  govmomi       tests/interop/ovfread (Go, VMware's govmomi ovf.Unmarshal,
                Debian's golang-github-vmware-govmomi-dev, built offline in
                GOPATH mode into the build folder): name, system identifier,
                OS id / osType / Description, CPU, memory, disk items ->
                DiskSection capacity, NIC items (ResourceSubType, Connection,
                Address), NetworkSection names, vmw:Config firmware. The OVF
                2.0 export is read the same way (govmomi ignores namespaces).
  XenCenter     not runnable here (Windows, .NET): the xenovf
                VirtualSystemOtherConfigurationData entries (Name attribute,
                Value child, namespace http://schemas.citrix.com/ovf/envelope/1,
                in VirtualHardwareSection) that XenCenter's importer reads
                (xenserver/xenadmin, XenAdmin/Actions/OvfActions/Import.cs)
                are checked with ElementTree: HVM_boot_policy, HVM_boot_params
                order= and firmware=uefi for OVMF, platform, PV_bootloader.

A missing peer (virt-v2v, go, govmomi's source) skips (exit 77) with a
message naming the package; with CI=true it fails instead (setup.sh
installs them there).
"""

import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402

K, M = S.K, S.M
EXE = TMP = STORE = None
RNG = random.Random(20261205)
GOVMOMI_SRC = "/usr/share/gocode/src/github.com/vmware/govmomi/ovf/ovf.go"
SKIPPED = []

NIC_SUBTYPE = {"e1000": "E1000", "e1000e": "E1000e", "vmxnet3": "VmxNet3", "pcnet": "PCNet32",
               "rtl8139": "rtl8139"}
XENOVF = "http://schemas.citrix.com/ovf/envelope/1"

VMS = [
    {"name": "rd-uefi", "type": "hvm", "memory": 768, "vcpus": 3, "extra": "bios = 'ovmf'\n",
     "disks": [9 * M, 5 * M + 512],
     "vifs": [("00:16:3e:11:00:01", "xenbr0", "e1000"), ("00:16:3e:11:00:02", "xenbr1", "e1000e"),
              ("00:16:3e:11:00:03", None, "vmxnet3")]},
    {"name": "rd-bios", "type": "hvm", "memory": 512, "vcpus": 2, "extra": "",
     "disks": [4 * M], "networks": ["LAN 1", "", "Storage net"],
     "vifs": [("00:16:3e:11:01:01", "xenbr0", "pcnet"), ("00:16:3e:11:01:02", "xenbr0", "rtl8139"),
              ("00:16:3e:11:01:03", "xenbr2", None)]},
    {"name": "rd-pv", "type": "pv", "memory": 256, "vcpus": 1, "extra": "bootloader = 'pygrub'\n",
     "disks": [3 * M],
     "vifs": [("00:16:3e:11:02:01", "xenbr0", None), ("00:16:3e:11:02:02", None, None)]},
    {"name": "rd-pvh", "type": "pvh", "memory": 384, "vcpus": 2, "extra": "",
     "disks": [2 * M],
     "vifs": [("00:16:3e:11:03:01", "xenbr1", None)]},
]


# ---------------------------------------------------------------- peers

def peer_missing(what, package):
    """Outside CI: note the skip and return True. In CI: a failure."""
    msg = "%s is not installed (Debian package %s; scripts/setup.sh installs it)" % (what, package)
    if os.environ.get("CI") == "true":
        T.check(False, "CI: " + msg)
    else:
        print("SKIP: " + msg)
        SKIPPED.append(what)
    return True


def have_virt_v2v():
    return shutil.which("virt-v2v") is not None or not peer_missing("virt-v2v", "virt-v2v")


def have_go():
    if shutil.which("go") is None:
        return not peer_missing("go", "golang-go")
    if not os.path.exists(GOVMOMI_SRC):
        return not peer_missing("govmomi's ovf package", "golang-github-vmware-govmomi-dev")
    return True


# ---------------------------------------------------------------- VMs and exports

def expected_nics(vm):
    """[(mac, connection, ResourceSubType)] the OVF must carry for vm."""
    out = []
    nets = vm.get("networks", [""] * len(vm["vifs"]))
    for (mac, bridge, model), net in zip(vm["vifs"], nets):
        sub = NIC_SUBTYPE[model] if model else ("rtl8139" if vm["type"] == "hvm" else "E1000")
        out.append((mac, net or bridge or "default", sub))
    return out


def os_description(vm):
    return "Other 64-bit" if vm["type"] == "hvm" else "Linux 64-bit"


def firmware(vm):
    return "efi" if "ovmf" in vm["extra"] else "bios"


def make_vm(vm):
    d = os.path.join(TMP, vm["name"])
    os.makedirs(d)
    specs, vm["files"] = [], []
    for i, size in enumerate(vm["disks"]):
        f = os.path.join(d, "d%d.raw" % i)
        with open(f, "wb") as fh:
            fh.write(RNG.randbytes(64 * K))
            fh.truncate(size)
        vm["files"].append(f)
        specs.append("'format=raw, vdev=xvd%s, access=rw, target=%s'" % ("abcd"[i], f))
    vifs = []
    for mac, bridge, model in vm["vifs"]:
        vifs.append("'" + ",".join(["mac=" + mac] + (["bridge=" + bridge] if bridge else []) +
                                   (["model=" + model] if model else [])) + "'")
    if "networks" in vm:        # snapport's key for the VIFs' network names (xl ignores it)
        vm["extra"] += "snapport_networks = [ %s ]\n" % ", ".join("'%s'" % n for n in vm["networks"])
    cfg = os.path.join(d, "vm.cfg")
    with open(cfg, "w") as f:
        f.write('name = "%s"\ntype = "%s"\nmemory = %d\nvcpus = %d\n%sdisk = [ %s ]\nvif = [ %s ]\n' % (
            vm["name"], vm["type"], vm["memory"], vm["vcpus"], vm["extra"], ", ".join(specs), ", ".join(vifs)))
    STORE.ok("vm", "create", "--config", cfg)


def export(vm, tag, *opts):
    out = os.path.join(TMP, "%s%s.ova" % (vm["name"], tag))
    STORE.ok("export", vm["name"], "-o", out, *opts, timeout=60)
    return out


def members(ova):
    with tarfile.open(ova, mode="r:") as t:
        return [(ti.name, t.extractfile(ti).read()) for ti in t if ti.isreg()]


def ovf_text(ova):
    return next(data for name, data in members(ova) if name.endswith(".ovf"))


# ---------------------------------------------------------------- virt-v2v

def v2v(ova):
    """virt-v2v -v -x --print-source: (Result, parsed source dict)."""
    r = T.run(["virt-v2v", "-v", "-x", "-i", "ova", ova, "--print-source"], timeout=120)
    return r, parse_print_source(r.out)


def parse_print_source(text):
    src = {"disks": [], "nics": []}
    section = None
    start = text.find("Source guest information")
    for line in text[start:].splitlines()[1:] if start >= 0 else []:
        m = re.match(r"^\s*(source name|memory|nr vCPUs|firmware): ?(.*)$", line)
        if m and section is None:
            src[m.group(1)] = m.group(2).strip()
        elif line.rstrip() in ("disks:", "removable media:", "NICs:"):
            section = line.strip()[:-1]
        elif section == "disks" and line.startswith("\t"):
            src["disks"].append(line.strip())
        elif section == "NICs" and line.startswith("\t"):
            m = re.match(r'^\t(Bridge|Network) "(.*?)"(?: mac: (\S+))?(?: \[(.*)\])?\s*$', line)
            src["nics"].append(m.groups() if m else ("?", line.strip(), None, None))
    return src


def v2v_disk_sources(log):
    """{N: the json file object qemu-nbd gets for virt-v2v's disk N}, from the -v log."""
    out = {}
    for m in re.finditer(r"'--socket' '[^']*/in(\d+)' .*?'json:(\{.*?\})'\s*$", log, re.M):
        out[int(m.group(1))] = json.loads(m.group(2))["file"]
    return out


def check_v2v_disks(vm, r, what):
    srcs = v2v_disk_sources(r.err + r.out)
    T.check(sorted(srcs) == list(range(len(vm["disks"]))),
            "%s: virt-v2v opened disks %s, expected %d" % (what, sorted(srcs), len(vm["disks"])))
    for n, f in sorted(srcs.items()):
        if n >= len(vm["files"]):
            continue
        spec = "json:" + json.dumps({"driver": "vmdk", "file": f})
        info = T.run(["qemu-img", "info", "--output=json", spec], timeout=60)
        size = json.loads(info.out).get("virtual-size") if info.rc == 0 else None
        T.check(size == vm["disks"][n], "%s: disk %d virtual size %r, expected %d (%s)" % (
            what, n, size, vm["disks"][n], info.describe()))
        cmp = T.run(["qemu-img", "compare", "-F", "raw", spec, vm["files"][n]], timeout=60)
        T.check(cmp.rc == 0, "%s: disk %d is not the VM's disk %d: %s" % (what, n, n, cmp.describe()))


def check_v2v_nics(vm, src, what):
    got = [(mac, bridge, model) for _, bridge, mac, model in src["nics"]]
    want = [(mac, conn, "e1000" if sub == "E1000" else sub.lower()) for mac, conn, sub in expected_nics(vm)]
    T.check(got == want, "%s: virt-v2v NICs (mac, bridge, model) %s, expected %s" % (what, got, want))


def check_v2v_vm(vm, ova):
    what = "virt-v2v %s" % vm["name"]
    r, src = v2v(ova)
    if not T.check(r.rc == 0, "%s: %s" % (what, r.describe())):
        return
    print("%s: %s" % (what, {k: src.get(k) for k in ("source name", "memory", "nr vCPUs", "firmware")}))
    T.check(src.get("source name") == vm["name"], "%s: source name %r" % (what, src.get("source name")))
    T.check(src.get("memory") == "%d (bytes)" % (vm["memory"] * M), "%s: memory %r" % (what, src.get("memory")))
    T.check(src.get("nr vCPUs") == str(vm["vcpus"]), "%s: vCPUs %r" % (what, src.get("nr vCPUs")))
    want_fw = "uefi" if firmware(vm) == "efi" else "bios"
    T.check(src.get("firmware") == want_fw, "%s: firmware %r, expected %r" % (what, src.get("firmware"), want_fw))
    T.check(len(src["disks"]) == len(vm["disks"]), "%s: disks %s" % (what, src["disks"]))
    T.check(all("[" in d for d in src["disks"]), "%s: a disk without controller: %s" % (what, src["disks"]))
    check_v2v_nics(vm, src, what)
    check_v2v_disks(vm, r, what)
    check_v2v_manifest(ova, r, "sha256sum", what)


def check_v2v_manifest(ova, r, tool, what):
    """virt-v2v digested every member but the .mf with tool, and warned of nothing."""
    names = [n for n, _ in members(ova) if not n.endswith(".mf")]
    log = r.err + r.out
    for n in names:
        T.check("'%s' | %s" % (n, tool) in log, "%s: virt-v2v did not check %s with %s" % (what, n, tool))
    warns = [l for l in log.splitlines() if "warning" in l.lower()]
    T.check(not warns, "%s: virt-v2v warned: %s" % (what, warns))


def check_v2v_digests(vm):
    ova = export(vm, "-sha1", "--digest", "sha1")
    r, src = v2v(ova)
    if T.check(r.rc == 0, "virt-v2v sha1 manifest: %s" % r.describe()):
        check_v2v_manifest(ova, r, "sha1sum", "virt-v2v sha1 manifest")
    ova = export(vm, "-sha512", "--digest", "sha512")
    r, src = v2v(ova)
    what = "virt-v2v sha512 manifest (known: skipped)"
    if not T.check(r.rc == 0, "%s: %s" % (what, r.describe())):
        return
    mf = next(d for n, d in members(ova) if n.endswith(".mf")).decode()
    log = r.out + r.err
    skipped = re.findall(r'unable to parse line from manifest file: "SHA512\(', log)
    print("%s: %d of %d lines skipped" % (what, len(skipped), len(mf.splitlines())))
    T.check(len(skipped) == len(mf.splitlines()) and "sha512sum" not in log,
            "%s: virt-v2v now reads SHA512 lines? update docs/compatibility.md: %s" % (what, log[-600:]))
    T.check(src.get("source name") == vm["name"], "%s: source name %r" % (what, src.get("source name")))


def check_v2v_corrupt(vm, ova):
    """A manifest with one digit of a disk's digest changed: virt-v2v refuses the OVA."""
    bad = os.path.join(TMP, vm["name"] + "-badmf.ova")
    with tarfile.open(bad, "w", format=tarfile.GNU_FORMAT) as out:
        for name, data in members(ova):
            if name.endswith(".mf"):
                flip = lambda m: m.group(1) + (b"0" if m.group(2) != b"0" else b"1")  # noqa: E731
                data = re.sub(rb"(\.vmdk\)= )([0-9a-f])", flip, data, count=1)
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            out.addfile(ti, io.BytesIO(data))
    r, _ = v2v(bad)
    T.check(r.rc != 0 and "does not match" in r.out + r.err,
            "virt-v2v accepted an OVA whose manifest has a wrong disk digest: %s" % r.describe())


def check_v2v_ovf2(vm):
    """Known: virt-v2v 2.2 registers only the OVF 1 namespace and reads nothing from 2.0."""
    ova = export(vm, "-ovf2", "--ovf-version", "2.0")
    r, src = v2v(ova)
    what = "virt-v2v OVF 2.0 (known: reads nothing)"
    base = os.path.basename(ova)[:-4]
    print("%s: source name %r, memory %r, disks %d, NICs %d" % (
        what, src.get("source name"), src.get("memory"), len(src["disks"]), len(src["nics"])))
    T.check(r.rc == 0 and src.get("source name") == base and not src["disks"] and not src["nics"],
            "%s: virt-v2v's result changed; update docs/compatibility.md: %s" % (what, r.describe()))


def run_virt_v2v():
    for vm in VMS:
        check_v2v_vm(vm, vm["ova"])
    check_v2v_digests(VMS[0])
    check_v2v_corrupt(VMS[0], VMS[0]["ova"])
    check_v2v_ovf2(VMS[0])


# ---------------------------------------------------------------- govmomi

def build_ovfread():
    """Build tests/interop/ovfread once per build folder (GOPATH mode, offline)."""
    src = os.path.join(os.environ["SP_TESTS"], "interop", "ovfread")
    outdir = os.path.join(os.path.dirname(EXE), "interop-go")
    exe = os.path.join(outdir, "ovfread")
    newest = max(os.path.getmtime(os.path.join(src, f)) for f in os.listdir(src))
    if os.path.exists(exe) and os.path.getmtime(exe) >= newest:
        return exe
    os.makedirs(outdir, exist_ok=True)
    env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode", GOFLAGS="", GOPROXY="off",
               CGO_ENABLED="0", GOCACHE=os.path.join(outdir, "cache"))
    p = subprocess.run(["go", "build", "-o", exe + ".tmp", "."], cwd=src, env=env, capture_output=True,
                       timeout=300)
    if not T.check(p.returncode == 0, "go build ovfread: %s" % p.stderr.decode()[-1500:]):
        return None
    os.replace(exe + ".tmp", exe)
    return exe


def govmomi(exe, ova):
    p = subprocess.run([exe], input=ovf_text(ova), capture_output=True, timeout=60)
    if not T.check(p.returncode == 0, "govmomi ovfread %s: %s" % (ova, p.stderr.decode())):
        return None
    return json.loads(p.stdout)


def units_bytes(units, default):
    """Bytes per unit of an OVF AllocationUnits / capacityAllocationUnits string."""
    if units is None:
        return default
    m = re.fullmatch(r"\s*byte\s*(?:\*\s*2\^(\d+))?\s*", units)
    if m:
        return 1 << int(m.group(1) or 0)
    return {"MegaBytes": M, "MB": M, "GigaBytes": 1 << 30, "GB": 1 << 30}.get(units.strip())


def items(g, rtype):
    return [i for i in g["items"] if i["resource_type"] == rtype]


def check_gov_system(vm, g, what):
    T.check(g["name"] == vm["name"] and g["system_identifier"] == vm["name"],
            "%s: name %r, system identifier %r" % (what, g["name"], g["system_identifier"]))
    oss = g["os"]
    if T.check(len(oss) == 1, "%s: %d OperatingSystemSections" % (what, len(oss))):
        T.check(oss[0]["description"] == os_description(vm) and oss[0]["os_type"],
                "%s: OS %s, expected Description %r" % (what, oss[0], os_description(vm)))
    cpu, mem = items(g, 3), items(g, 4)
    T.check(len(cpu) == 1 and cpu[0]["virtual_quantity"] == vm["vcpus"], "%s: CPU items %s" % (what, cpu))
    if T.check(len(mem) == 1, "%s: memory items %s" % (what, mem)):
        b = units_bytes(mem[0]["allocation_units"], None)
        T.check(b is not None and mem[0]["virtual_quantity"] * b == vm["memory"] * M, "%s: memory %s" % (what, mem))
    fw = [c["value"] for c in g["config"] if c["key"] == "firmware"]
    T.check(fw == [firmware(vm)], "%s: vmw:Config firmware %s, expected [%r] (read by %s)" % (
        what, fw, firmware(vm), g["config_from"]))


def check_gov_disks(vm, g, ova, what):
    disks = {d["disk_id"]: d for d in g["disks"]}
    files = {f["id"]: f["href"] for f in g["files"]}
    names = [n for n, _ in members(ova)]
    got = []
    for it in items(g, 17):
        hr = (it["host_resource"] or [""])[0]
        d = disks.get(re.sub(r"^(ovf:)?/+disk/", "", hr))
        if not T.check(d is not None, "%s: disk item HostResource %r names no Disk" % (what, hr)):
            continue
        got.append(int(d["capacity"]) * (units_bytes(d["capacity_units"], 1) or 0))
        T.check(files.get(d["file_ref"]) in names, "%s: Disk %s fileRef %r is no member" % (
            what, d["disk_id"], d["file_ref"]))
    T.check(got == vm["disks"], "%s: disk capacities %s, expected %s" % (what, got, vm["disks"]))


def check_gov_nics(vm, g, what):
    got = [((i["address"] or "").lower(), i["connection"], i["resource_sub_type"]) for i in items(g, 10)]
    want = [(mac, [conn], sub) for mac, conn, sub in expected_nics(vm)]
    T.check(got == want, "%s: NICs (Address, Connection, ResourceSubType) %s, expected %s" % (what, got, want))
    conns = {c for _, cs, _ in got for c in (cs or [])}
    T.check(conns <= set(g["networks"]), "%s: Connections %s not all in NetworkSection %s" % (
        what, sorted(conns), g["networks"]))


def check_govmomi_vm(exe, vm, ova, what):
    g = govmomi(exe, ova)
    if g is None:
        return
    nics = [(i["resource_sub_type"], i["connection"]) for i in items(g, 10)]
    print("%s: name %r os %s fw %s nics %s networks %s" % (what, g["name"], g["os"], g["config"], nics,
                                                           g["networks"]))
    check_gov_system(vm, g, what)
    check_gov_disks(vm, g, ova, what)
    check_gov_nics(vm, g, what)


def run_govmomi():
    exe = build_ovfread()
    if exe is None:
        return
    for vm in VMS:
        check_govmomi_vm(exe, vm, vm["ova"], "govmomi %s" % vm["name"])
    ova2 = export(VMS[0], "-ovf2g", "--ovf-version", "2.0")
    check_govmomi_vm(exe, VMS[0], ova2, "govmomi %s OVF 2.0" % VMS[0]["name"])


# ---------------------------------------------------------------- XenCenter's entries

def xen_entries(ova):
    """{Name: Value} of xenovf:VirtualSystemOtherConfigurationData in the VirtualHardwareSection."""
    root = ET.fromstring(ovf_text(ova))
    out = {}
    for vhs in root.iter():
        if not vhs.tag.endswith("}VirtualHardwareSection"):
            continue
        for e in vhs.findall("{%s}VirtualSystemOtherConfigurationData" % XENOVF):
            val = [c for c in e if c.tag.split("}")[-1] == "Value"]
            out[e.get("Name")] = (val[0].text or "") if val else None
    return out


def check_xencenter(vm):
    what = "XenCenter entries %s" % vm["name"]
    x = xen_entries(vm["ova"])
    print("%s: %s" % (what, x))
    if vm["type"] == "pv":
        T.check(x.get("PV_bootloader") == "pygrub", "%s: PV_bootloader %r" % (what, x.get("PV_bootloader")))
        T.check(not x.get("HVM_boot_policy"), "%s: a PV guest with HVM_boot_policy %r" % (
            what, x.get("HVM_boot_policy")))
        return
    if vm["type"] != "hvm":
        return
    T.check(x.get("HVM_boot_policy") == "BIOS order", "%s: HVM_boot_policy %r" % (what, x.get("HVM_boot_policy")))
    params = dict(p.split("=", 1) for p in (x.get("HVM_boot_params") or "").split(";") if "=" in p)
    T.check("order" in params, "%s: HVM_boot_params %r has no order=" % (what, x.get("HVM_boot_params")))
    T.check(params.get("firmware", "bios") == ("uefi" if firmware(vm) == "efi" else "bios"),
            "%s: HVM_boot_params firmware %r" % (what, params.get("firmware")))
    T.check(x.get("platform") is not None, "%s: no platform entry" % what)


# ---------------------------------------------------------------- main

def main():
    global EXE, TMP, STORE
    EXE, TMP = T.setup()
    STORE = S.Store(EXE, os.path.join(TMP, "store"), os.path.join(TMP, "scratch"))
    for vm in VMS:
        make_vm(vm)
        vm["ova"] = export(vm, "")
    if have_virt_v2v():
        run_virt_v2v()
    if have_go():
        run_govmomi()
    for vm in VMS:
        check_xencenter(vm)
    if SKIPPED and not T.FAILURES:
        print("test_ovf_readers: skipped (missing %s); the other readers passed" % ", ".join(SKIPPED))
        sys.exit(77)
    T.finish("test_ovf_readers")


if __name__ == "__main__":
    main()
