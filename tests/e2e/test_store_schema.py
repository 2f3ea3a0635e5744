"""A store made by another catalog version is refused with a clear message,
never misread; the refusal changes nothing."""
import os
import shutil
import sqlite3
import subprocess
import sys

EXE = os.environ["SNAPPORT"]
TMP = os.environ["SP_TMP"]


def sp(*args):
    return subprocess.run([EXE] + list(args), capture_output=True, text=True, timeout=60)


def fail(msg):
    sys.exit("FAIL: " + msg)


def main():
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    store = os.path.join(TMP, "store")
    r = sp("--store", store, "vm", "list")
    if r.returncode != 0:
        fail("vm list on a new store: %r" % (r.stderr,))
    db = os.path.join(store, "catalog.db")
    if not os.path.exists(db):
        fail("the first use did not create %s" % db)
    for version, word in (("2", "newer"), ("0", None)):
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
