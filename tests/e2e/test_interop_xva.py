"""XVAs as other exporters write them (issue 11): verify, info and import
must take them whole, and still refuse what could leave the store.

Every archive is built here from the public format (reference/xva.md), not
by snapport: an ova.xml in XML-RPC (VM, VBDs, VDIs, SR), then per VDI its
1 MiB blocks "<id>/<counter>" each followed by "<counter>.xxhash" (XXH64,
16 uppercase hex digits, computed by xvatest's pure-Python XXH64) or
".checksum" (SHA-1, 40 lowercase hex digits); all-zero blocks left out
except each VDI's first and last.

  opaque-ids      ids as cloud-image builders write them (Ref:VM-1,
                  Ref:VBD-1-root, Ref:VDI-1-root, Ref:VDI-2-data): XAPI only
                  uses a VDI's id as the tar folder of its blocks;
  opaque-reverse  the same, the VDIs not in strcmp order of their ids
                  (data before root), SHA-1 members;
  plain-names     ids without "Ref:" (disk-root, disk.data);
  wide-counters   20-digit counters (Ref:1/00000000000000000000), with
                  gaps, as some third-party tools write them; also 9 and
                  12 digits mixed in one VDI (a number that increases);
  last-short      the last block shorter than 1 MiB (virtual size not a
                  MiB multiple).
Each must: verify exit 0; info --json list the disks with their ids and
sizes and the checksum kind written; import without options give a VM
whose disks are byte for byte the images the archive was made from.

Refused (verify exit 1, import exit 3, one "snapport: ..." line naming the
archive, the store unchanged, nothing written outside it): VDI ids with
"..", a "/", a blank, an id longer than 63 bytes; counters of 21 digits or
past 64 bits; counters that do not increase once widths differ
(0000000002 then 00000001).

info of what cannot be read (random bytes, an empty file, a tar whose
first member is not ova.xml, ova.xml that is not XML) prints nothing on
stdout (--json: only "archive" and "ok": false), exit 3. info of a damaged
SHA-1 XVA (ova.xml, Ref:1/00000000, Ref:1/00000000.checksum, a byte of the
block flipped) names checksums sha1 (not xxhash), the VM as written; one
that ends before any checksum member names no checksum kind.
"""

import json
import os
import random
import sys

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402
import xvatest as X  # noqa: E402
import hostile as H  # noqa: E402

M = X.M
EXE = TMP = None
RNG = random.Random(1111)
EVIL = "sp_evil_interop_%d" % os.getpid()


# ---------------------------------------------------------------- ova.xml (XML-RPC)

def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def rpc(v):
    """One XML-RPC <value> as XAPI writes it (ints bare, booleans tagged)."""
    if isinstance(v, bool):
        return "<value><boolean>%d</boolean></value>" % int(v)
    if isinstance(v, int):
        return "<value>%d</value>" % v
    if isinstance(v, str):
        return "<value>%s</value>" % esc(v)
    if isinstance(v, dict):
        return "<value><struct>%s</struct></value>" % "".join(
            "<member><name>%s</name>%s</member>" % (esc(k), rpc(x)) for k, x in v.items())
    if isinstance(v, list):
        return "<value><array><data>%s</data></array></value>" % "".join(rpc(x) for x in v)
    raise TypeError(v)


def uuid_of(n):
    return "5b1c%04x-0d0e-4f00-8a00-%012x" % (n, n)


def ova_xml(vm_id, disks, sr_id="Ref:SR-1"):
    """disks: [(vbd_id, vdi_id, device, size)]. A VM of 512 MiB, 2 vCPUs, HVM."""
    objs = [{"class": "VM", "id": vm_id, "snapshot": {
        "uuid": uuid_of(1), "name_label": "builder-vm", "name_description": "", "is_a_template": False,
        "power_state": "Halted", "memory_static_max": 512 * M, "memory_dynamic_max": 512 * M,
        "memory_dynamic_min": 512 * M, "memory_static_min": 512 * M, "VCPUs_max": 2, "VCPUs_at_startup": 2,
        "HVM_boot_policy": "BIOS order", "HVM_boot_params": {"order": "cd"}, "PV_bootloader": "",
        "PV_args": "", "platform": {"device-model": "qemu-upstream-compat"}, "other_config": {},
        "VBDs": [d[0] for d in disks], "VIFs": [], "parent": "OpaqueRef:NULL"}}]
    for i, (vbd, vdi, dev, size) in enumerate(disks):
        objs.append({"class": "VBD", "id": vbd, "snapshot": {
            "uuid": uuid_of(100 + i), "VM": vm_id, "VDI": vdi, "userdevice": str(i), "device": dev,
            "bootable": i == 0, "mode": "RW", "type": "Disk", "empty": False, "other_config": {}}})
        objs.append({"class": "VDI", "id": vdi, "snapshot": {
            "uuid": uuid_of(200 + i), "name_label": "disk %s" % dev, "name_description": "", "SR": sr_id,
            "virtual_size": size, "physical_utilisation": size, "type": "User", "sharable": False,
            "read_only": False, "other_config": {}, "VBDs": [vbd]}})
    objs.append({"class": "SR", "id": sr_id, "snapshot": {
        "uuid": uuid_of(300), "name_label": "Local storage", "content_type": "user", "type": "ext",
        "other_config": {}}})
    version = {"hostname": "builder", "date": "2026-11-29", "product_version": "8.2.1",
               "product_brand": "XCP-ng", "build_number": "release", "xapi_major": 1, "xapi_minor": 20,
               "export_vsn": 2}
    return ('<?xml version="1.0" ?>' + rpc({"version": version, "objects": objs})).encode()


# ---------------------------------------------------------------- blocks

def block_members(vdi_id, image, digest="xxhash", counter=lambda n: "%08d" % n):
    """The block stream of one VDI, as XAPI's sender lays it out."""
    out = []
    nblocks = (len(image) + M - 1) // M
    for n in range(nblocks):
        blk = image[n * M:(n + 1) * M]
        if n not in (0, nblocks - 1) and not any(blk):
            continue
        name = "%s/%s" % (vdi_id, counter(n))
        out.append(X.Member(name, blk, mtime=0))
        if digest == "xxhash":
            out.append(X.Member(name + ".xxhash", X.xxh64_hex(blk).encode()))
        else:
            out.append(X.Member(name + ".checksum", X.sha1_hex(blk).encode()))
    return out


def sparse_image(size, data_blocks):
    img = bytearray(size)
    for b in data_blocks:
        end = min(size, (b + 1) * M)
        img[b * M:end] = RNG.randbytes(end - b * M)
    return bytes(img)


def xva(path, xml, streams):
    mems = [X.Member("ova.xml", xml, mtime=1764300000)]
    for s in streams:
        mems += s
    return X.write(path, X.tar_bytes(mems))


# ---------------------------------------------------------------- runners

def info_json(path):
    r = T.sp(EXE, "--json", "info", path)
    try:
        return r, json.loads(r.out) if r.out.strip() else None
    except ValueError:
        T.check(False, "info --json %s: not JSON: %r" % (path, r.out[:300]))
        return r, None


def good(st, name, path, images, ids, digest):
    """images: {device: bytes}; ids: the VDI ids in ova.xml's (strcmp) order."""
    r = T.sp(EXE, "verify", path)
    T.check(r.rc == 0 and r.out.strip().endswith(": ok"), "%s: verify: %s" % (name, r.describe()))
    r, j = info_json(path)
    if T.check(r.rc == 0 and j is not None, "%s: info --json: %s" % (name, r.describe())):
        T.check([d["id"] for d in j["disks"]] == ids, "%s: info ids %s, expected %s" % (
            name, [d["id"] for d in j["disks"]], ids))
        T.check(j.get("checksum") == digest, "%s: info checksum %r, expected %r" % (name, j.get("checksum"), digest))
        T.check(j.get("vm") == "builder-vm" and j.get("vcpus") == 2 and j.get("memory") == 512 * M,
                "%s: info vm %r" % (name, j))
    r = T.sp(EXE, "info", path)
    T.check(r.rc == 0 and ("checksums %s," % digest) in r.out and "Ref:" not in r.err,
            "%s: info text: %s" % (name, r.describe()))
    vm = "imp-" + name
    r = st.sp("import", path, "--name", vm, timeout=60)
    if not T.check(r.rc == 0, "%s: import: %s" % (name, r.describe())):
        return
    dig = st.disk_digests(vm, fatal=False) or {}
    # a store disk is whole 512-byte sectors: a short tail reads as zeros up to the next one
    want = {dev: S.sha(img + bytes(-len(img) % 512)) for dev, img in images.items()}
    T.check(dig == want, "%s: imported disks %s, expected %s" % (name, sorted(dig), sorted(want)))
    T.check(st.check().rc == 0, "%s: store check after import" % name)
    st.ok("vm", "destroy", vm)


def refused(st, name, path, words):
    before = X.fingerprint(st)
    r = T.sp(EXE, "verify", path)
    S.expect_failure(r, "%s: verify" % name, 1, [os.path.basename(path)], words)
    r = st.sp("import", path, "--name", "bad-" + name, timeout=60)
    S.expect_failure(r, "%s: import" % name, 3, [os.path.basename(path)], words)
    for m in X.diff_fingerprint(before, X.fingerprint(st)):
        T.check(False, "%s: import changed the store: %s" % (name, m))
    H.no_escape(name, ["/tmp/" + EVIL], EVIL, TMP, [])


# ---------------------------------------------------------------- cases

def accepted(st):
    root, data = sparse_image(4 * M, [0, 2]), sparse_image(3 * M, [1])
    images = {"xvda": root, "xvdb": data}
    disks = [("Ref:VBD-1-root", "Ref:VDI-1-root", "xvda", len(root)),
             ("Ref:VBD-2-data", "Ref:VDI-2-data", "xvdb", len(data))]
    ids = ["Ref:VDI-1-root", "Ref:VDI-2-data"]
    xml = ova_xml("Ref:VM-1", disks)
    p = xva(os.path.join(TMP, "opaque.xva"), xml,
            [block_members("Ref:VDI-1-root", root), block_members("Ref:VDI-2-data", data)])
    good(st, "opaque-ids", p, images, ids, "xxhash")
    p = xva(os.path.join(TMP, "opaque-rev.xva"), xml,
            [block_members("Ref:VDI-2-data", data, "sha1"), block_members("Ref:VDI-1-root", root, "sha1")])
    good(st, "opaque-reverse", p, images, ids, "sha1")

    disks = [("vbd-root", "disk-root", "xvda", len(root)), ("vbd.data", "disk.data", "xvdb", len(data))]
    p = xva(os.path.join(TMP, "plain.xva"), ova_xml("vm-1", disks, "sr-1"),
            [block_members("disk-root", root), block_members("disk.data", data)])
    good(st, "plain-names", p, images, ["disk-root", "disk.data"], "xxhash")

    big = sparse_image(6 * M, [1, 4])
    disks = [("Ref:2", "Ref:3", "xvda", len(big))]
    p = xva(os.path.join(TMP, "wide.xva"), ova_xml("Ref:1", disks),
            [block_members("Ref:3", big, counter=lambda n: "%020d" % n)])
    good(st, "wide-counters", p, {"xvda": big}, ["Ref:3"], "xxhash")
    mixed = block_members("Ref:3", big, counter=lambda n: "%09d" % n if n < 4 else "%012d" % n)
    p = xva(os.path.join(TMP, "mixed-width.xva"), ova_xml("Ref:1", disks), [mixed])
    good(st, "mixed-widths", p, {"xvda": big}, ["Ref:3"], "xxhash")

    short = sparse_image(2 * M + 1000, [2])
    disks = [("Ref:VBD-1-root", "Ref:VDI-1-root", "xvda", len(short))]
    p = xva(os.path.join(TMP, "short.xva"), ova_xml("Ref:VM-1", disks),
            [block_members("Ref:VDI-1-root", short, "sha1")])
    good(st, "last-short", p, {"xvda": short}, ["Ref:VDI-1-root"], "sha1")


def refusals(st):
    img = sparse_image(2 * M, [0])
    evil_ids = {"dotdot": "../../../../../../tmp/" + EVIL, "slash": "Ref:a/b", "blank": "Ref:VDI 1",
                "long": "Ref:" + "x" * 60, "dots": "Ref:..", "dot": "."}
    for name, vid in evil_ids.items():
        disks = [("Ref:VBD-1", vid, "xvda", len(img))]
        p = xva(os.path.join(TMP, "evil-%s.xva" % name), ova_xml("Ref:VM-1", disks),
                [block_members(vid, img)])
        refused(st, "id-" + name, p, [])
    disks = [("Ref:2", "Ref:3", "xvda", len(img))]
    xml = ova_xml("Ref:1", disks)
    for name, fmt, words in (("21-digits", "%021d", ["unexpected member"]),
                             ("past-64-bits", None, ["unexpected member"])):
        if fmt:
            mems = block_members("Ref:3", img, counter=lambda n, f=fmt: f % n)
        else:
            mems = block_members("Ref:3", img, counter=lambda n: "%d" % (2 ** 64 + n))
        refused(st, "counter-" + name, xva(os.path.join(TMP, "c-%s.xva" % name), xml, [mems]), words)
    down = block_members("Ref:3", sparse_image(4 * M, [0, 1, 2, 3]),
                         counter=lambda n: {0: "0000000000", 1: "0000000002", 2: "00000001", 3: "00000003"}[n])
    disks3 = [("Ref:2", "Ref:3", "xvda", 4 * M)]
    refused(st, "counter-down", xva(os.path.join(TMP, "c-down.xva"), ova_xml("Ref:1", disks3), [down]),
            ["Ref:3/00000001", "does not increase"])


def info_honest():
    """info prints only what it read."""
    cases = {"random": RNG.randbytes(4096), "empty": b"",
             "not-ova-xml": X.tar_bytes([X.Member("README", b"hello")]),
             "bad-xml": X.tar_bytes([X.Member("ova.xml", b"<value><struct>")])}
    for name, data in cases.items():
        p = X.write(os.path.join(TMP, "unread-%s.xva" % name), data)
        r = T.sp(EXE, "info", p)
        T.check(r.rc == 3 and r.out == "", "info %s: expected exit 3 and nothing on stdout: %s" % (name, r.describe()))
        S.one_error_line(r, "info %s" % name)
        r, j = info_json(p)
        envelope = {"command", "ok", "exit", "error", "notes"}
        T.check(r.rc == 3 and j is not None and set(j) == envelope | {"archive"} and j["ok"] is False,
                "info --json %s: expected only archive besides the envelope, ok false: %s" % (name, r.describe()))

    img = sparse_image(M, [0])
    disks = [("Ref:2", "Ref:1", "xvda", len(img))]
    mems = [X.Member("ova.xml", ova_xml("Ref:0", disks))] + block_members("Ref:1", img, "sha1")
    T.check([m.name for m in mems[1:]] == ["Ref:1/00000000", "Ref:1/00000000.checksum"], "sha1 fixture")
    flipped = bytearray(mems[1].data)
    flipped[77] ^= 0x10
    mems[1] = X.Member(mems[1].name, bytes(flipped))
    p = X.write(os.path.join(TMP, "damaged-sha1.xva"), X.tar_bytes(mems))
    r = T.sp(EXE, "info", p)
    T.check(r.rc != 0 and "checksums sha1" in r.out and "xxhash" not in r.out and "builder-vm (hvm, 512.0 MiB"
            in r.out, "info of a damaged SHA-1 XVA: %s" % r.describe())
    T.check("sha1 mismatch" in r.err and "Ref:1/00000000" in r.err, "info damaged sha1: error %s" % r.err)
    r, j = info_json(p)
    T.check(j is not None and j.get("checksum") == "sha1" and j.get("ok") is False,
            "info --json of a damaged SHA-1 XVA: %s" % r.describe())

    cut = X.write(os.path.join(TMP, "no-sum.xva"), X.tar_bytes(mems[:2]))
    r = T.sp(EXE, "info", cut)
    T.check(r.rc != 0 and "checksums" not in r.out and "(xva, compression none)" in r.out,
            "info of an XVA that ends before its first checksum: %s" % r.describe())
    r, j = info_json(cut)
    T.check(j is not None and "checksum" in j and j["checksum"] is None,
            "info --json, no checksum seen: checksum should be null: %s" % r.describe())


def main():
    global EXE, TMP
    EXE, TMP = T.setup()
    X.xxh64_selftest()
    st = S.Store(EXE, os.path.join(TMP, "st"), os.path.join(TMP, "flat"))
    d = os.path.join(TMP, "seed")
    os.makedirs(d)
    X.write(os.path.join(d, "s.raw"), bytes(M))
    X.write(os.path.join(d, "s.cfg"), b"name = 'seed'\nmemory = 64\nvcpus = 1\ndisk = [ 'format=raw, vdev=xvda, target=s.raw' ]\n")
    st.ok("vm", "create", "--config", os.path.join(d, "s.cfg"))   # a store that is not empty
    accepted(st)
    refusals(st)
    info_honest()
    T.finish("test_interop_xva")


if __name__ == "__main__":
    main()
