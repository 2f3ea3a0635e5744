"""Names with control bytes reach the terminal escaped, never raw.

A VM's name comes from someone else's archive (an XVA's name_label may
hold a newline or a tab as XML character references) or from --name (any
byte but NUL, ESC too). Text output shows every control byte as \\n, \\r,
\\t or \\xNN (the rule is written out here, in shown(), not taken from
snapport), so a listing keeps one line per VM and an ESC cannot drive the
terminal; --json keeps the name exactly.

- An XVA whose ova.xml names the VM "two&#10;lines&#9;tab" imports; --json
  gives the name with its newline and tab; `vm list` has one line per VM
  and shows `two\\nlines\\ttab`; `vm list --names`, `vm show` and `info`
  of the archive show it so too.
- Imported again with --name "esc<ESC>[2Jx" and a snapshot named
  "snap<ESC>]0;t<BEL>": vm list, vm show, snapshot list show `\\x1b`,
  `\\x07`.
- The first archive imported again (its name is taken): exit 3, one line on
  stderr naming `two\\nlines\\ttab`; a VM asked for by an ESC'd name that
  does not exist: one line with `\\x1b`.
- A batch export of every VM: the summary shows the names escaped.
- Nowhere in stdout or stderr a byte below 0x20 but the line ends, nor 0x7f.
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import sptest as T  # noqa: E402
import storetest as ST  # noqa: E402
import xvatest as X  # noqa: E402

M = 1024 * 1024
ARCHIVE_NAME = "two\nlines\ttab"
ESC_NAME = "esc\x1b[2Jx"
SNAP_NAME = "snap\x1b]0;t\x07"


def shown(s):
    out = []
    for ch in s:
        o = ord(ch)
        if ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif o < 0x20 or o == 0x7f:
            out.append("\\x%02x" % o)
        else:
            out.append(ch)
    return "".join(out)


def clean(text, what):
    """No control byte but the line ends in text."""
    bad = sorted(set(re.findall(r"[\x00-\x09\x0b-\x1f\x7f]", text)))
    T.check(not bad, "%s: raw control bytes %r in %r" % (what, bad, text))


def out_of(r, what):
    clean(r.out, what + " (stdout)")
    clean(r.err, what + " (stderr)")
    return r.out


def archive_with_name(store, tmp):
    raw = os.path.join(tmp, "plain.raw")
    with open(raw, "wb") as f:
        f.truncate(4 * M)
        f.seek(M)
        f.write(os.urandom(M))
    cfg = os.path.join(tmp, "plain.cfg")
    with open(cfg, "w") as f:
        f.write("name='plain'\nmemory=128\nvcpus=1\ndisk=['%s,raw,xvda,rw']\n" % raw)
    store.ok("vm", "create", "--config", cfg, "-q")
    src = os.path.join(tmp, "plain.xva")
    store.ok("export", "plain", "-o", src)
    mems = X.xva_members(src)
    i = X.find(mems, "ova.xml")
    xml = mems[i].data.decode()
    label = "<name>name_label</name><value>plain</value>"
    T.check(xml.count(label) == 1, "ova.xml has one name_label 'plain'")
    mems[i].data = xml.replace(label, "<name>name_label</name><value>two&#10;lines&#9;tab</value>").encode()
    store.ok("vm", "destroy", "plain")
    return X.write(os.path.join(tmp, "named.xva"), X.tar_bytes(mems))


def main():
    exe, tmp = T.setup()
    store = ST.Store(exe, os.path.join(tmp, "store"), os.path.join(tmp, "scratch"))
    xva = archive_with_name(store, tmp)

    r = store.sp("import", xva, json_out=True)
    T.check(r.rc == 0, "import of the renamed XVA: %s" % r.describe())
    vms = {v["name"]: v["uuid"] for v in json.loads(store.sp("vm", "list", json_out=True).out)["vms"]}
    T.check(ARCHIVE_NAME in vms, "the name as the archive has it, in --json: %r" % list(vms))

    r = store.sp("import", xva, "--name", ESC_NAME)
    T.check(r.rc == 0, "import --name with ESC: %s" % r.describe())
    out_of(r, "import --name")
    r = store.sp("snapshot", "create", ESC_NAME, "--name", SNAP_NAME)
    T.check(r.rc == 0, "snapshot create --name with ESC: %s" % r.describe())

    text = out_of(store.sp("vm", "list"), "vm list")
    lines = text.splitlines()
    T.check(len(lines) == 3, "vm list: a header and one line per VM, got %r" % lines)
    for name in (ARCHIVE_NAME, ESC_NAME):
        T.check(any(shown(name) in l for l in lines), "vm list shows %r as %r: %r" % (name, shown(name), lines))
    names = out_of(store.sp("vm", "list", "--names"), "vm list --names").splitlines()
    T.check(sorted(names) == sorted([shown(ARCHIVE_NAME), shown(ESC_NAME)]), "vm list --names: %r" % names)

    for name in (ARCHIVE_NAME, ESC_NAME):
        show = out_of(store.sp("vm", "show", name), "vm show")
        T.check("name:        %s\n" % shown(name) in show, "vm show %r: %r" % (name, show))
    snaps = out_of(store.sp("snapshot", "list", ESC_NAME), "snapshot list")
    T.check(shown(SNAP_NAME) in snaps, "snapshot list shows %r: %r" % (shown(SNAP_NAME), snaps))
    info = out_of(store.sp("info", xva), "info")
    T.check("vm:          %s (" % shown(ARCHIVE_NAME) in info, "info: %r" % info)

    r = store.sp("import", xva)
    out_of(r, "import of a taken name")
    T.check(r.rc == 3 and r.err.count("\n") == 1 and shown(ARCHIVE_NAME) in r.err,
            "import of a taken name: one line naming it escaped: %s" % r.describe())
    r = store.sp("vm", "show", "nosuch\x1b[31m")
    out_of(r, "vm show of a missing ESC'd name")
    T.check(r.rc != 0 and r.err.count("\n") == 1 and "nosuch\\x1b[31m" in r.err,
            "vm show of a missing ESC'd name: %s" % r.describe())

    outdir = os.path.join(tmp, "batch") + "/"
    os.mkdir(outdir)
    r = store.sp("export", "--all", "-o", outdir)
    summary = out_of(r, "batch export")
    T.check(r.rc == 0, "batch export: %s" % r.describe())
    for name in (ARCHIVE_NAME, ESC_NAME):
        T.check(any(l.startswith(shown(name) + " ") for l in summary.splitlines()),
                "batch summary shows %r: %r" % (shown(name), summary))
    T.finish("test_names_shown")


if __name__ == "__main__":
    main()
