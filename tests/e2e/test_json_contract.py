"""--json: one document on stdout for every command, success and failure
(docs/json.md, docs/json-schema.json).

Every command of the command table is run at least once to success and
once to failure (a usage error, a missing file or VM, damage), and each
run's stdout must be exactly one JSON document that validates against the
schema, with ok == (exit == 0), exit equal to the process's status, and
error equal to the one line on stderr. Values are checked against what
the test itself knows: memory in bytes from the cfg's MiB, the UUIDs made
appear in vm list, sizes of the disks the test wrote, the problems of a
damaged VHD and XVA listed. The test also checks that every command of
`snapport --help` was run both ways, so a new command cannot slip past.
"""

import json
import os
import random
import re
import sys

sys.path.insert(0, os.path.join(os.environ.get("SP_TESTS", os.path.dirname(__file__) + "/.."), "tools"))
import sptest as T  # noqa: E402

try:
    import jsonschema
except ImportError:
    print("SKIP: python3-jsonschema is not installed (scripts/setup.sh installs it)", file=sys.stderr)
    sys.exit(1 if os.environ.get("CI") == "true" else 77)

M = 1 << 20
EXE = TMP = STORE = VALIDATOR = None
RNG = random.Random(20261206)
SEEN = {}  # command -> set of outcomes seen ("ok", "fail")


def run(*args, store=True):
    pre = [EXE, "--json"] + (["--store", STORE] if store else [])
    return T.run(pre + [str(a) for a in args], timeout=60)


def doc(r, what, command, rc=None):
    """The one document of a run, checked against the contract; None if broken."""
    lines = r.out.splitlines()
    if not T.check(len(lines) == 1, "%s: stdout is not one line: %s" % (what, r.describe())):
        return None
    try:
        j = json.loads(lines[0])
    except ValueError as e:
        T.check(False, "%s: stdout is not JSON (%s): %s" % (what, e, r.describe()))
        return None
    errors = sorted(VALIDATOR.iter_errors(j), key=lambda e: list(e.path))
    for e in errors[:3]:
        T.check(False, "%s: schema: %s at %s" % (what, e.message, "/".join(map(str, e.path))))
    T.check(j.get("command") == command, "%s: command %r, expected %r" % (what, j.get("command"), command))
    T.check(j.get("exit") == r.rc, "%s: exit %r in the document, %r from the process" % (what, j.get("exit"), r.rc))
    T.check(j.get("ok") == (r.rc == 0), "%s: ok %r with exit %r" % (what, j.get("ok"), r.rc))
    if rc is not None:
        T.check(r.rc == rc, "%s: expected exit %d: %s" % (what, rc, r.describe()))
    if r.rc != 0:
        err = [l for l in r.err.splitlines() if l.startswith("snapport: ")]
        T.check(err and j.get("error") and ("snapport: " + j["error"]) in err,
                "%s: error %r is not the stderr line %r" % (what, j.get("error"), err))
    if command:
        SEEN.setdefault(command, set()).add("ok" if r.rc == 0 else "fail")
    return j


def ok(command, *args, store=True):
    r = run(*command.split(), *args, store=store)
    j = doc(r, "%s %s" % (command, " ".join(map(str, args))), command, 0)
    if j is None or r.rc != 0:
        T.fatal("cannot go on after %s" % r.describe())
    return j


def fail(command, rc, *args, store=True):
    r = run(*command.split(), *args, store=store)
    return doc(r, "%s %s (failing)" % (command, " ".join(map(str, args))), command, rc) or {}


def path(*p):
    return os.path.join(TMP, *p)


def make_vm():
    raw = RNG.randbytes(3 * M)
    with open(path("sys.raw"), "wb") as f:
        f.write(raw)
    with open(path("web.cfg"), "w") as f:
        f.write('name = "web"\ntype = "hvm"\nmemory = 384\nvcpus = 2\n'
                "disk = [ 'format=raw, vdev=xvda, access=rw, target=sys.raw' ]\n"
                "vif = [ 'mac=00:16:3e:12:34:56, bridge=xenbr0' ]\n")
    return ok("vm create", "--config", path("web.cfg"))["uuid"]


def case_disk():
    vhd = path("d.vhd")
    j = ok("disk create", vhd, "--size", "4M")
    T.check(j["virtual_size"] == 4 * M and j["output"] == vhd and j["parent"] is None, "disk create: %r" % j)
    fail("disk create", 3, vhd, "--size", "4M")  # exists
    fail("disk create", 2, vhd, "--size", "4Q")
    j = ok("disk write", vhd, "--offset", "1M", "--pattern", "0x5a", "--length", "65536")
    T.check(j["offset"] == M and j["length"] == 65536, "disk write: %r" % j)
    fail("disk write", 3, path("none.vhd"), "--offset", "0", "--pattern", "1", "--length", "1")
    j = ok("disk info", vhd)
    T.check(j["virtual_size"] == 4 * M and j["depth"] == 1 and j["chain"][0]["path"].endswith("d.vhd")
            and j["allocated"] >= 65536, "disk info: %r" % j)
    fail("disk info", 3, path("none.vhd"))
    j = ok("disk check", vhd)
    T.check(j["problems"] == [], "disk check of a sound VHD lists problems: %r" % j)
    bad = path("bad.vhd")
    data = bytearray(open(vhd, "rb").read())
    data[512 + 16:512 + 24] = b"\xff" * 8  # the dynamic header's table offset
    open(bad, "wb").write(bytes(data))
    j = fail("disk check", 1, bad)
    T.check(len(j.get("problems", [])) >= 1, "disk check of a damaged VHD: no problems listed: %r" % j)
    raw = path("d.raw")
    j = ok("disk flatten", vhd, "-o", raw)
    T.check(j["output"] == raw and j["format"] == "raw" and os.path.getsize(raw) == 4 * M, "disk flatten: %r" % j)
    fail("disk flatten", 2, vhd)
    j = ok("disk compare", vhd, raw)
    T.check(j["identical"] and j["first_difference"] is None and j["size_a"] == j["size_b"] == 4 * M,
            "disk compare: %r" % j)
    other = bytearray(open(raw, "rb").read())
    other[M + 100] ^= 1
    open(path("o.raw"), "wb").write(bytes(other))
    j = fail("disk compare", 1, vhd, path("o.raw"))
    T.check(j.get("identical") is False and j.get("first_difference") == M + 100, "disk compare differ: %r" % j)


def case_store(vm):
    j = ok("vm list")
    T.check([v["uuid"] for v in j["vms"]] == [vm], "vm list: %r" % j)
    T.check(j["vms"][0]["memory"] == 384 * M, "vm list: memory %r, the cfg says 384 MiB" % j["vms"][0]["memory"])
    j = ok("vm list", "--names")
    j = ok("vm show", "web")
    T.check(j["vm"]["uuid"] == vm and j["vm"]["vcpus"] == 2 and j["vm"]["vifs"] == ["00:16:3e:12:34:56"],
            "vm show: %r" % j)
    fail("vm show", 3, "nosuch")
    j = ok("vm config", "web")
    T.check(re.search(r"^name = ['\"]web['\"]$", j.get("config") or "", re.M) and j["output"] is None,
            "vm config: %r" % j)
    j = ok("vm config", "web", "-o", path("out.cfg"))
    T.check(j["output"] == path("out.cfg") and os.path.exists(path("out.cfg")), "vm config -o: %r" % j)
    fail("vm config", 2)
    j = ok("snapshot create", "web", "--name", "s1")
    s1 = j["uuid"]
    fail("snapshot create", 3, "nosuch")
    j = ok("snapshot list", "web")
    T.check([s["uuid"] for s in j["snapshots"]] == [s1] and j["vm"] == vm, "snapshot list: %r" % j)
    fail("snapshot list", 3, "nosuch")
    j = ok("clone", "web", "--name", "web2")
    T.check(j["uuid"] in [v["uuid"] for v in ok("vm list")["vms"]], "clone: its UUID is not in vm list")
    fail("clone", 2, "web")
    image = path("mem.img")
    open(image, "wb").write(RNG.randbytes(4096))
    ok("vm suspend", "web2", "--image", image)
    fail("vm suspend", 3, "nosuch", "--image", image)
    ok("vm halt", "web2")
    fail("vm halt", 3, "nosuch")
    j = ok("snapshot revert", "web", "s1")
    T.check(j["vm"] == vm and j["snapshot"] == s1, "snapshot revert: %r" % j)
    fail("snapshot revert", 3, "web", "nosuch")
    ok("snapshot create", "web", "--name", "s2")
    ok("snapshot delete", "web", "s2")
    fail("snapshot delete", 3, "web", "nosuch")
    j = ok("gc", "--dry-run")
    T.check(j["dry_run"] is True, "gc --dry-run: %r" % j)
    ok("gc")
    fail("gc", 2, "extra")
    j = ok("store check")
    T.check(j["problems"] == [] and j["store"] == STORE, "store check: %r" % j)
    ok("vm destroy", "web2")
    fail("vm destroy", 3, "web2")
    stray = os.path.join(STORE, "vdis", "00000000-0000-4000-8000-000000000000.vhd")
    open(stray, "wb").write(b"\0" * 512)
    j = fail("store check", 1)
    T.check(len(j.get("problems", [])) == 1 and "00000000-0000-4000-8000-000000000000" in j["problems"][0],
            "store check with a stray file: %r" % j)
    os.remove(stray)


def case_archives(vm):
    xva, ova = path("web.xva"), path("web.ova")
    j = ok("export", "web", "-o", xva)
    T.check(j["output"] == xva and j["format"] == "xva" and j["snapshot"] is None, "export: %r" % j)
    fail("export", 2, "web", "-o", "-")  # --json and an archive on stdout
    fail("export", 3, "nosuch", "-o", path("x.xva"))
    T.check(not os.path.exists(path("x.xva")), "a failed export left its output")
    j = ok("info", xva, store=False)
    T.check(j["format"] == "xva" and j["vm"] == "web" and j["memory"] == 384 * M and len(j["disks"]) == 1
            and j["disks"][0]["virtual_size"] == 3 * M, "info: %r" % j)
    j = fail("info", 3, path("web.cfg"), store=False)
    T.check("vm" not in j and "format" not in j, "info of a text file claims contents: %r" % j)
    j = ok("verify", xva, store=False)
    T.check(j["problems"] == [], "verify ok: %r" % j)
    data = bytearray(open(xva, "rb").read())
    data[len(data) // 2] ^= 0xff  # inside the disk's blocks: a checksum fails
    open(path("bad.xva"), "wb").write(bytes(data))
    j = fail("verify", 1, path("bad.xva"), store=False)
    T.check(len(j.get("problems", [])) == 1, "verify of a damaged XVA: %r" % j)
    fail("verify", 3, path("none.xva"), store=False)
    j = ok("import", xva, "--name", "back")
    T.check(j["uuid"] in [v["uuid"] for v in ok("vm list")["vms"]] and j["archive"] == xva, "import: %r" % j)
    fail("import", 3, path("bad.xva"))
    case_batch()
    j = ok("convert", xva, ova, store=False)
    T.check(j["output"] == ova and j["format"] == "ova" and os.path.exists(ova), "convert: %r" % j)
    fail("convert", 2, xva, "-", store=False)
    fail("convert", 3, path("none.xva"), path("n.ova"), store=False)
    # the S3 options need an s3:// OUT (--part-size) or IN or OUT (--endpoint); an upload's
    # resumed_parts is checked against the schema by tests/e2e/test_s3_convert.py (it needs Ceph)
    j = fail("convert", 2, xva, path("p.ova"), "--part-size", "5M", store=False)
    T.check("--part-size" in j.get("error", "") and "resumed_parts" not in j, "convert --part-size: %r" % j)
    fail("convert", 2, xva, path("p.ova"), "--endpoint", "http://127.0.0.1:9", store=False)
    T.check(not os.path.exists(path("p.ova")), "a refused convert left its output")


def case_batch():
    """export --all -o DIR/: the batch shape, all ok, then all failing (their outputs exist)."""
    os.mkdir(path("batch"))
    names = sorted(v["name"] for v in ok("vm list")["vms"])
    j = ok("export", "--all", "-o", path("batch") + "/", "-j", "2")
    got = sorted(e["vm"] for e in j.get("exports", []))
    T.check(got == names and j["failed"] == 0 and j["format"] == "xva", "export --all: %r" % j)
    for e in j.get("exports", []):
        T.check(e["ok"] and e["bytes"] == os.path.getsize(e["output"]), "export --all: %r" % e)
    j = fail("export", 1, "--all", "-o", path("batch"))  # a folder without '/': still a batch; all exist
    T.check(j.get("failed") == len(names) and all("exists" in e["error"] for e in j.get("exports", [])),
            "export --all over existing archives: %r" % j)
    fail("export", 2, "--all", "-o", "-")
    fail("export", 3, "--all", "-o", path("nodir") + "/")


def case_help():
    j = ok("help", store=False)
    listing = j["text"].split("Commands:\n", 1)[-1].split("\n\n", 1)[0]
    commands = re.findall(r"^  ((?:disk|vm|snapshot|store) \w+|\w+)\b", listing, re.M)
    for c in commands:
        ok("help", *c.split(), store=False)
    fail("help", 2, "nosuch", store=False)
    r = run("export", "--help", store=False)
    j = doc(r, "export --help", "help", 0)
    T.check(j and "--compress" in j["text"], "export --help as JSON: %r" % j)
    r = run("--version", store=False)
    j = doc(r, "--version", "version", 0)
    T.check(j and j["version"] == version(), "--version: %r, CMakeLists.txt says %s" % (j, version()))
    for args, what in ((["nosuch"], "unknown command"), ([], "no command"), (["vm"], "a group alone")):
        r = run(*args, store=False)
        doc(r, what, None, 2)
    r = run("vm", "list", "--bogus")
    doc(r, "unknown option", "vm list", 2)
    return commands


def version():
    text = open(os.path.join(os.environ["SP_TESTS"], "..", "CMakeLists.txt")).read()
    return re.search(r"project\(snapport VERSION ([0-9.]+)", text).group(1)


def main():
    global EXE, TMP, STORE, VALIDATOR
    EXE, TMP = T.setup()
    STORE = path("store")
    schema = json.load(open(os.path.join(os.environ["SP_TESTS"], "..", "docs", "json-schema.json")))
    jsonschema.Draft202012Validator.check_schema(schema)
    VALIDATOR = jsonschema.Draft202012Validator(schema)
    commands = case_help()
    os.chdir(TMP)
    case_disk()
    vm = make_vm()
    fail("vm create", 3, "--config", path("none.cfg"))
    case_store(vm)
    case_archives(vm)
    T.check(len(commands) >= 20, "help lists only %d commands" % len(commands))
    for c in commands:
        T.check(SEEN.get(c, set()) == {"ok", "fail"}, "%s: not run both to success and to failure (%s)"
                % (c, sorted(SEEN.get(c, set()))))
    T.finish("json_contract")


if __name__ == "__main__":
    main()
