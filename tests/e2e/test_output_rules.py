"""Output rules (issue 12, part 7): what an output's name and --format
decide, what an export leaves out, and how a failed write is named.

Format vs extension, for export, convert (OUT) and disk flatten:
  - --format that contradicts OUT's extension: exit 2, one line
    `snapport: CMD: OUT: --format F does not match the extension .EXT ...`,
    nothing written;
  - extensions in any case (x.XVA, x.Ova, y.VHD, y.QCOW2) choose as the
    lower-case ones do; --format in any case too;
  - OUT with no extension, an extension no format has, or - (stdout):
    --format decides; without it export/convert exit 2;
  - disk flatten: no extension, .raw or .img is raw; an unknown extension
    without --format is exit 2 (a typo is not a wish for raw); .img with
    --format vhd is a VHD (.img names no format); .qcow2 and .vhdx are
    exit 2 naming the format (snapport does not write them), nothing left.
  What was written is told from its bytes here, not by snapport: an XVA's
  first tar member is ova.xml, an OVA's an .ovf; a VHD ends with its
  "conectix" footer, a streamOptimized VMDK starts with "KDMV"; a raw
  output is byte for byte the source written here.

What an export leaves out (stderr notes `snapport: VM: ...`, not with -q,
stdout untouched):
  - an OVA of a suspended VM, of a snapshot taken with --memory, and
    convert XVA -> OVA of a suspended VM: "memory image" is said;
  - a NIC model the OVF has no name for (ne2k_pci): said, with the NIC's
    number; snapport's own import of that OVA keeps the model;
  - an XVA of the same VM, and an OVA of a VM with a known model (rtl8139)
    and no memory image: no note at all.

A failed write to stdout (export/convert -o - into /dev/full), XVA and
OVA: exit 3, one line naming "stdout" and "No space left on device", no
tar member (.ovf, ova.xml, Ref:, .vmdk) named.
"""

import io
import json
import os
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402
import storetest as S  # noqa: E402

M = S.M
EXE = TMP = ST = None
DISK = 3 * M


def p(name):
    return os.path.join(TMP, name)


def make_vm(name, model, memory_image=False):
    d = p("src-" + name)
    os.makedirs(d)
    disk = bytearray(DISK)
    disk[4096:8192] = bytes(range(256)) * 16
    disk[-512:] = b"\x5a" * 512
    T.write_file(os.path.join(d, "d.raw"), bytes(disk))
    cfg = os.path.join(d, "vm.cfg")
    with open(cfg, "w") as f:
        f.write("name = '%s'\ntype = 'hvm'\nmemory = 256\nvcpus = 1\n"
                "disk = [ 'format=raw, vdev=xvda, access=rw, target=d.raw' ]\n"
                "vif = [ 'mac=00:16:3e:00:aa:01, bridge=xenbr0, model=%s' ]\n" % (name, model))
    ST.ok("vm", "create", "--config", cfg)
    if memory_image:
        mem = os.path.join(d, "mem.bin")
        T.write_file(mem, b"\x11" * (M + 512))
        ST.ok("vm", "suspend", name, "--image", mem)
    return os.path.join(d, "d.raw")


def archive_kind(path):
    """'xva' or 'ova' from the first tar member, None when no tar."""
    try:
        with tarfile.open(path, "r:*") as t:
            first = t.next()
    except (tarfile.TarError, OSError):
        return None
    if first is None:
        return None
    if first.name == "ova.xml":
        return "xva"
    return "ova" if first.name.lower().endswith(".ovf") else None


def disk_kind(path, source):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] == b"KDMV":
        return "vmdk"
    if data[-512:-504] == b"conectix":
        return "vhd"
    if data == source:
        return "raw"
    return None


def usage_refused(r, what, out, words, names_out=True):
    """Exit 2, one line naming out (unless not names_out) and every word;
    out not written."""
    T.check(r.rc == 2, "%s: exit %s, expected 2: %s" % (what, r.rc, r.describe()))
    lines = S.error_lines(r)
    if T.check(len(lines) == 1 and lines[0].startswith("snapport: "), "%s: stderr %r" % (what, r.err)):
        T.named_once(lines[0], what)
        for w in ([os.path.basename(out)] if names_out else []) + list(words):
            T.check(w in lines[0], "%s: the message does not say %r: %r" % (what, w, lines[0]))
    if out != "-":
        T.check(not os.path.exists(out), "%s: %s was written" % (what, out))


# ---------------------------------------------------------------- format vs extension

def case_archive_names(xva):
    for cmd in ("export", "convert"):
        def run(out, *extra):
            if cmd == "export":
                return ST.sp("export", "plain", "-o", out, *extra, timeout=60)
            return T.sp(EXE, "convert", xva, out, *extra, timeout=60)
        # contradictions
        for name, fmt, ext in (("x1.xva", "ova", "xva"), ("x2.ova", "xva", "ova"), ("x3.XVA", "ova", "XVA"),
                               ("x4.ova", "XVA", "ova")):
            out = p("%s-%s" % (cmd, name))
            usage_refused(run(out, "--format", fmt), "%s -o %s --format %s" % (cmd, name, fmt), out,
                          ["--format %s does not match the extension .%s" % (fmt, ext)])
        # extensions in any case, --format where the name does not tell
        wants = [("a.Ova", (), "ova"), ("b.OVA", (), "ova"), ("c.disk", ("--format", "ova"), "ova"),
                 ("d", ("--format", "OVA"), "ova"), ("e.ova", ("--format", "ova"), "ova")]
        if cmd == "export":
            wants += [("f.XVA", (), "xva"), ("g.Xva", ("--format", "xva"), "xva"), ("h", ("--format", "xva"), "xva")]
        for name, extra, kind in wants:
            out = p("%s-%s" % (cmd, name))
            r = run(out, *extra)
            if T.check(r.rc == 0, "%s -o %s %s: %s" % (cmd, name, " ".join(extra), r.describe())):
                T.check(archive_kind(out) == kind, "%s -o %s %s: wrote %s, expected %s" % (
                    cmd, name, " ".join(extra), archive_kind(out), kind))
        # names that do not tell, without --format
        for name, words in (("n1", ["say --format"]), ("n2.foo", ["extension .foo"])):
            out = p("%s-%s" % (cmd, name))
            usage_refused(run(out), "%s -o %s" % (cmd, name), out, words)
        r = run("-")
        usage_refused(r, "%s -o - without --format" % cmd, "-", ["say --format"])


def case_flatten_names(src, source):
    def run(out, *extra):
        return T.sp(EXE, "disk", "flatten", src, "-o", out, *extra, timeout=60)
    for name, extra, kind in (("r1", (), "raw"), ("r2.raw", (), "raw"), ("r3.IMG", (), "raw"), ("r4.Raw", (), "raw"),
                              ("v1.VHD", (), "vhd"), ("v2.Vpc", (), "vhd"), ("v3.img", ("--format", "vhd"), "vhd"),
                              ("v4.disk", ("--format", "VHD"), "vhd"), ("k1.VMDK", (), "vmdk"),
                              ("k2", ("--format", "vmdk"), "vmdk"), ("v5.vhd", ("--format", "vhd"), "vhd")):
        out = p("flat-" + name)
        r = run(out, *extra)
        if T.check(r.rc == 0, "flatten -o %s %s: %s" % (name, " ".join(extra), r.describe())):
            T.check(disk_kind(out, source) == kind, "flatten -o %s %s: wrote %s, expected %s" % (
                name, " ".join(extra), disk_kind(out, source), kind))
    for name, extra, words in (("b1.vhd", ("--format", "raw"), ["--format raw does not match the extension .vhd"]),
                               ("b2.vmdk", ("--format", "vhd"), ["--format vhd does not match the extension .vmdk"]),
                               ("b3.raw", ("--format", "vmdk"), ["--format vmdk does not match the extension .raw"]),
                               ("b4.qcow2", (), ["does not write qcow2"]), ("b5.QCOW2", (), ["does not write qcow2"]),
                               ("b6", ("--format", "qcow2"), ["does not write qcow2"]),
                               ("b7.vhdx", (), ["does not write vhdx"]),
                               ("b8.foo", (), ["extension .foo", "--format"]),
                               ("b9.vhd", ("--format", "nope"), ["unknown --format 'nope'"])):
        out = p("flat-" + name)
        usage_refused(run(out, *extra), "flatten -o %s %s" % (name, " ".join(extra)), out, words,
                      names_out=name != "b9.vhd")
    left = [f for f in os.listdir(TMP) if ".snapport-" in f]
    T.check(left == [], "temporary outputs left: %s" % left)


# ---------------------------------------------------------------- notes

def notes(r):
    return [l for l in S.error_lines(r)]


def case_notes():
    ova = p("sus.ova")
    r = ST.sp("export", "sus", "-o", ova, timeout=60)
    if T.check(r.rc == 0, "export of a suspended VM to OVA: %s" % r.describe()):
        n = notes(r)
        T.check(any(l.startswith("snapport: sus: ") and "memory image" in l for l in n),
                "OVA of a suspended VM: no note that the memory image is left out: %r" % r.err)
        T.check(any("NIC 1" in l and "ne2k_pci" in l for l in n),
                "OVA of a VM with an ne2k_pci NIC: no note: %r" % r.err)
        T.check(r.out.strip() == "sus: exported to %s" % ova, "notes went to stdout: %r" % r.out)
    r = ST.sp("-q", "export", "sus", "-o", p("sus-q.ova"), timeout=60)
    T.check(r.rc == 0 and r.err == "" and r.out == "", "export -q: printed %r %r" % (r.out, r.err))
    r = ST.sp("export", "sus", "-o", "-", "--format", "ova", timeout=60)
    T.check(r.rc == 0 and "memory image" in r.err, "export -o - of a suspended VM: no note on stderr: %r" % r.err)
    # snapshot with memory
    ST.ok("snapshot", "create", "sus", "--memory", "--name", "withmem")
    r = ST.sp("export", "sus", "--snapshot", "withmem", "-o", p("snap.ova"), timeout=60)
    T.check(r.rc == 0 and "memory image" in r.err, "OVA of a snapshot with memory: no note: %s" % r.describe())
    # XVA carries everything: no note
    xva = p("sus.xva")
    r = ST.sp("export", "sus", "-o", xva, timeout=60)
    T.check(r.rc == 0 and r.err == "", "XVA export of a suspended VM: stderr %r" % r.err)
    # convert XVA -> OVA of the suspended VM
    r = T.sp(EXE, "convert", xva, p("conv.ova"), timeout=60)
    T.check(r.rc == 0 and any(l.startswith("snapport: %s: " % xva) and "memory image" in l for l in notes(r)),
            "convert of a suspended VM's XVA to OVA: no memory note: %s" % r.describe())
    T.check(any("ne2k_pci" in l for l in notes(r)), "convert XVA -> OVA: no NIC model note: %r" % r.err)
    r = T.sp(EXE, "-q", "convert", xva, p("conv-q.ova"), timeout=60)
    T.check(r.rc == 0 and r.err == "", "convert -q: stderr %r" % r.err)
    # the OVF keeps the model for snapport itself
    r = ST.sp("import", ova, "--name", "sus-back", timeout=60)
    if T.check(r.rc == 0, "import of sus.ova: %s" % r.describe()):
        j = ST.show("sus-back", fatal=False) or {}
        T.check(j.get("power_state") == "halted", "import of the OVA: %r, expected halted" % j.get("power_state"))
        cfg = ST.sp("vm", "config", "sus-back").out
        vif = cfg[cfg.find("vif"):]
        vif = vif[:vif.find("]") + 1]
        T.check("model=ne2k_pci" in vif, "import of the OVA: the NIC model is lost: %r" % vif)
    # a VM the OVA carries whole (rtl8139, no memory image): no note
    r = ST.sp("export", "plain", "-o", p("plain.ova"), timeout=60)
    T.check(r.rc == 0 and r.err == "", "OVA of a halted VM with an rtl8139 NIC: stderr %r" % r.err)


# ---------------------------------------------------------------- stdout full

def to_full(args, what):
    with open("/dev/full", "wb") as full:
        p_ = subprocess.run(args, stdout=full, stderr=subprocess.PIPE, timeout=60)
    err = p_.stderr.decode("utf-8", "replace")
    r = T.Result(args, p_.returncode, "", err)
    S.expect_failure(r, what, 3, ["stdout"], ["No space left on device"])
    for member in (".ovf", "ova.xml", "Ref:", ".vmdk", ".mf"):
        T.check(member not in err, "%s: the message names a tar member (%s): %r" % (what, member, err))


def case_stdout_full(xva, ova):
    if not os.path.exists("/dev/full"):
        T.fatal("no /dev/full")
    for fmt in ("xva", "ova"):
        to_full([EXE, "--store", ST.dir, "export", "plain", "-o", "-", "--format", fmt],
                "export -o - --format %s > /dev/full" % fmt)
    to_full([EXE, "--store", ST.dir, "export", "plain", "-o", "-", "--format", "xva", "--compress", "zstd"],
            "export -o - --compress zstd > /dev/full")
    to_full([EXE, "convert", xva, "-", "--format", "ova"], "convert XVA - --format ova > /dev/full")
    to_full([EXE, "convert", ova, "-", "--format", "xva"], "convert OVA - --format xva > /dev/full")


def main():
    global EXE, TMP, ST
    EXE, TMP = T.setup()
    ST = S.Store(EXE, p("store"), p("scratch"))
    src = make_vm("plain", "rtl8139")   # a model whose xl and OVF names are the same: no note
    make_vm("sus", "ne2k_pci", memory_image=True)
    xva, ova = p("plain.xva"), p("plain-src.ova")
    ST.ok("export", "plain", "-o", xva, timeout=60)
    ST.ok("export", "plain", "-o", ova, timeout=60)
    case_archive_names(xva)
    case_flatten_names(src, T.read_file(src))
    case_notes()
    case_stdout_full(xva, ova)
    T.finish("test_output_rules")


if __name__ == "__main__":
    main()
