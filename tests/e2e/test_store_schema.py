"""The store's catalog version and its existence (issue 9 item 4).

- A folder without a store: every command but `vm create` and `import`
  fails with exit 3 and "no store at DIR (create one with vm create or
  import)", and creates nothing (a mistyped --store never becomes a store).
- A store of another catalog version is refused with a clear message,
  never misread; the refusal changes nothing.
- A store of schema 1 (before export jobs had owners and pins) is upgraded
  in place to schema 3 (through 2) by the first command, its VMs intact.
"""
import os
import shutil
import sqlite3
import subprocess
import sys

EXE = os.environ["SNAPPORT"]
TMP = os.environ["SP_TMP"]
ENV = dict(os.environ)
ENV.pop("SNAPPORT_STORE", None)


def sp(*args):
    return subprocess.run([EXE] + list(args), capture_output=True, text=True, timeout=60, env=ENV)


def fail(msg):
    sys.exit("FAIL: " + msg)


def tree(path):
    out = []
    for root, dirs, files in os.walk(path):
        out += [os.path.join(root, n) for n in dirs + files]
    return sorted(out)


def no_store_cases():
    for where in ("typo", "empty"):
        store = os.path.join(TMP, where)
        if where == "empty":
            os.makedirs(store)
        before = tree(TMP)
        for args in (["vm", "list"], ["vm", "show", "x"], ["vm", "config", "x"], ["snapshot", "list", "x"],
                     ["store", "check"], ["gc"], ["gc", "--dry-run"], ["snapshot", "create", "x"],
                     ["export", "x", "-o", os.path.join(TMP, "x.xva")], ["clone", "x", "--name", "y"],
                     ["vm", "destroy", "x"]):
            r = sp("--store", store, *args)
            lines = r.stderr.splitlines()
            want = "snapport: no store at %s (create one with vm create or import)" % store
            if r.returncode != 3 or lines != [want]:
                fail("%s on %s folder: exit %d, stderr %r (want %r)" % (args, where, r.returncode, r.stderr, want))
            if tree(TMP) != before:
                fail("%s on %s folder created %s" % (args, where, sorted(set(tree(TMP)) - set(before))))
    print("ok: commands other than vm create and import never create a store")


def make_vm(store):
    raw = os.path.join(TMP, "d.raw")
    with open(raw, "wb") as f:
        f.truncate(4 << 20)
        f.seek(1 << 20)
        f.write(b"schema" * 1000)
    cfg = os.path.join(TMP, "vm.cfg")
    with open(cfg, "w") as f:
        f.write("name='vm'\nmemory=256\nvcpus=1\ndisk=['%s,raw,xvda,rw']\n" % raw)
    r = sp("--store", store, "vm", "create", "--config", cfg, "-q")
    if r.returncode != 0:
        fail("vm create: %s" % r.stderr)


def downgrade_to_1(db):
    """What schema 1 was: jobs without owners, no pins (and, as in 2, no
    firmware or network names)."""
    con = sqlite3.connect(db)
    con.executescript(
        "ALTER TABLE vms DROP COLUMN bios; ALTER TABLE vifs DROP COLUMN network;"
        # a UEFI guest of then: bios= was kept verbatim with the other statements
        "UPDATE vms SET type = 'hvm', extra = extra || 'bios = ''ovmf''' || char(10);"
        "DROP TABLE pins;"
        "CREATE TABLE jobs1 (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL, node TEXT, child TEXT,"
        " new_files TEXT NOT NULL DEFAULT '', old_files TEXT NOT NULL DEFAULT '');"
        "DROP TABLE jobs; ALTER TABLE jobs1 RENAME TO jobs;"
        "UPDATE meta SET value = '1' WHERE key = 'schema';")
    con.commit()
    con.close()


def upgrade_case(store):
    db = os.path.join(store, "catalog.db")
    downgrade_to_1(db)
    r = sp("--store", store, "vm", "list")
    if r.returncode != 0 or "vm" not in r.stdout:
        fail("vm list on a schema 1 store: exit %d %r %r" % (r.returncode, r.stdout, r.stderr))
    con = sqlite3.connect(db)
    version = con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]
    cols = [row[1] for row in con.execute("PRAGMA table_info(jobs)")]
    pins = con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'pins'").fetchone()[0]
    vm_cols = [row[1] for row in con.execute("PRAGMA table_info(vms)")]
    vif_cols = [row[1] for row in con.execute("PRAGMA table_info(vifs)")]
    con.close()
    if version != "3" or "owner_pid" not in cols or pins != 1 or "bios" not in vm_cols or "network" not in vif_cols:
        fail("schema 1 not upgraded: version %s, jobs %s, pins table %d, vms %s, vifs %s"
             % (version, cols, pins, vm_cols, vif_cols))
    for args in (["export", "vm", "-o", os.path.join(TMP, "up.xva"), "-q"], ["store", "check"]):
        r = sp("--store", store, *args)
        if r.returncode != 0:
            fail("%s after the upgrade: %s" % (args, r.stderr))
    r = sp("--store", store, "vm", "config", "vm")
    if r.returncode != 0 or "bios = 'ovmf'" not in r.stdout:
        fail("the UEFI guest's bios after the upgrade: %r %r" % (r.stdout, r.stderr))
    xml = open(os.path.join(TMP, "up.xva"), "rb").read(1 << 20)
    if b"<name>firmware</name><value>uefi</value>" not in xml:
        fail("the UEFI guest exported after the upgrade has no HVM_boot_params firmware=uefi")
    print("ok: a schema 1 store is upgraded to 3 and works, its UEFI guest still UEFI")


def main():
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    no_store_cases()
    store = os.path.join(TMP, "store")
    make_vm(store)
    db = os.path.join(store, "catalog.db")
    upgrade_case(store)
    for version, word in (("4", "newer"), ("0", None)):
        con = sqlite3.connect(db)
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (version,))
        con.commit()
        con.close()
        before = open(db, "rb").read()
        for args in (["vm", "list"], ["gc"], ["store", "check"], ["snapshot", "create", "x"]):
            r = sp("--store", store, *args)
            lines = r.stderr.splitlines()
            if r.returncode != 3 or len(lines) != 1 or "schema version " + version not in lines[0]:
                fail("%s on a schema %s store: exit %d, stderr %r" % (args, version, r.returncode, r.stderr))
            if word and word not in lines[0]:
                fail("the message does not say the store is %s: %r" % (word, lines[0]))
        if open(db, "rb").read() != before:
            fail("refusing a schema %s store changed its catalog" % version)
    print("ok: stores of other catalog versions are refused, unchanged")


main()
