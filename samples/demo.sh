#!/bin/bash
# The sample tour: build web01's disk as a VHD chain, then look at it with
# snapport and flatten it.
#
#   samples/demo.sh [OUTDIR]        (default ./sample-out)
#
# OUTDIR is removed and made again (only if it is empty or an earlier
# demo's folder). Each command is printed (`+ snapport ...`) before it
# runs; the script stops with a non-zero exit at the first failing step.
# The binary is $SNAPPORT, else build/snapport under the repository root.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
SNAPPORT=${SNAPPORT:-$ROOT/build/snapport}
export SNAPPORT
OUT=${1:-./sample-out}
MARK=.snapport-demo

fail() { echo "demo.sh: failed: $*" >&2; exit 1; }
[ -x "$SNAPPORT" ] || fail "$SNAPPORT: no snapport binary (build it first, or set SNAPPORT)"

# run CMD...: print it, run it (`snapport` stands for $SNAPPORT).
run() {
    printf '+ %s\n' "$*"
    local rc=0
    if [ "$1" = snapport ]; then
        shift
        "$SNAPPORT" "$@" || rc=$?
    else
        "$@" || rc=$?
    fi
    [ "$rc" = 0 ] || fail "$* (exit $rc)"
}

if [ -e "$OUT" ]; then
    if [ -e "$OUT/$MARK" ] || [ -z "$(ls -A "$OUT")" ]; then
        rm -rf "$OUT"
    else
        fail "$OUT: exists and is not a demo folder (no $MARK); pick another OUTDIR"
    fi
fi
mkdir -p "$OUT"
touch "$OUT/$MARK"

LEAF=$OUT/web01-disk0.vhd

run bash "$HERE/build-sample.sh" "$OUT"
echo
run snapport disk info "$LEAF"
echo
run snapport disk check "$LEAF"
echo
run snapport disk flatten "$LEAF" -o "$OUT/web01-disk0-flat.img"
run snapport disk flatten "$LEAF" -o "$OUT/web01-disk0-flat.vhd"
run ls -ls "$OUT"
echo
run snapport disk compare "$LEAF" "$OUT/web01-disk0-flat.img"
run snapport disk compare "$OUT/web01-disk0-flat.vhd" "$OUT/web01-disk0-flat.img"
echo
run e2fsck -fn "$OUT/web01-disk0-flat.img"
echo

# The store: the sample VM registered from its xl.cfg, snapshotted, changed,
# cloned from the snapshot, reverted, and its snapshot deleted and coalesced.
STORE=$OUT/store
sp() { run snapport --store "$STORE" "$@"; }
sp vm create --config "$OUT/web01.cfg"
sp vm list
sp snapshot create web01 --name before-upgrade
DISK=$("$SNAPPORT" --store "$STORE" --json vm show web01 | python3 -c 'import json,sys; print(json.load(sys.stdin)["vm"]["disks"][0]["file"])')
run snapport disk write "$DISK" --offset 16M --pattern 0x5a --length 1M
sp clone before-upgrade --name web01-test
sp snapshot list web01
sp vm show web01
printf '+ snapport disk compare %s %s   (expected to differ now)\n' "$DISK" "$OUT/web01-disk0-flat.img"
rc=0; "$SNAPPORT" disk compare "$DISK" "$OUT/web01-disk0-flat.img" || rc=$?
[ "$rc" = 1 ] || fail "disk compare after the write: exit $rc, expected 1"
sp snapshot revert web01 before-upgrade
DISK=$("$SNAPPORT" --store "$STORE" --json vm show web01 | python3 -c 'import json,sys; print(json.load(sys.stdin)["vm"]["disks"][0]["file"])')
run snapport disk compare "$DISK" "$OUT/web01-disk0-flat.img"
sp vm destroy web01-test
sp snapshot delete web01 before-upgrade
sp gc --dry-run
sp gc
sp store check
sp vm config web01
echo

# XVA: the VM snapshotted, exported, the archive verified, imported as a
# clone with new UUIDs, and the clone's disk compared with the snapshot's.
sp snapshot create web01 --name for-export
sp export web01 --snapshot for-export -o "$OUT/web01.xva"
run snapport info "$OUT/web01.xva"
run snapport verify "$OUT/web01.xva"
sp import "$OUT/web01.xva" --name web01-copy
disk_of() { "$SNAPPORT" --store "$STORE" --json vm show "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["vm"]["disks"][0]["file"])'; }
run snapport disk compare "$(disk_of for-export)" "$(disk_of web01-copy)"
echo

# OVA: the same snapshot as OVF + manifest + streamOptimized VMDK, verified,
# imported as another clone, its disk compared; qemu-img reads the VMDK too.
sp export web01 --snapshot for-export -o "$OUT/web01.ova"
run tar tvf "$OUT/web01.ova"
run snapport info "$OUT/web01.ova"
run snapport verify "$OUT/web01.ova"
sp import "$OUT/web01.ova" --name web01-ova
run snapport disk compare "$(disk_of for-export)" "$(disk_of web01-ova)"
tar -xf "$OUT/web01.ova" -C "$OUT" web01-disk1.vmdk
run qemu-img compare "$OUT/web01-disk1.vmdk" "$(disk_of web01-ova)"
# and the XVA converted to OVA without a store, its disks streaming across
run snapport convert "$OUT/web01.xva" "$OUT/web01-from-xva.ova"
run snapport verify "$OUT/web01-from-xva.ova"
sp vm list
sp store check
echo
echo "demo.sh: all steps passed; the VM definition is $OUT/web01.cfg, the store $STORE"
