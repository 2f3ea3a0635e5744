#!/bin/bash
# Build the disk of the sample VM web01 as a VHD chain, with snapport only.
#
#   samples/build-sample.sh OUTDIR
#
# 1. gen-tree.py makes a small root filesystem tree (text, configs, logs,
#    pseudo-random "binaries"); mkfs.ext4 -d packs it into a 64 MiB ext4
#    image (raw, 4 KiB blocks). Fixed UUID, hash seed and time: the same
#    bytes on every run.
# 2. `snapport disk create` makes the base VHD; only the non-zero 4 KiB runs
#    of the ext4 image are written into it (`disk write`), so it stays sparse.
# 3. Three times: a copy of the ext4 image is changed with `debugfs -w`
#    (files written, replaced, removed, renamed; no mount), imgdiff.py finds
#    the 4 KiB runs that changed, and exactly those runs are written into a
#    new differencing VHD (`disk create --parent`).
# 4. Checks: every layer's chain equals its ext4 image (`disk compare`),
#    `disk check` of the leaf, flatten of the leaf equals the final image
#    byte for byte (cmp), `e2fsck -fn` of the flattened image is clean, the
#    files in it match the expected tree (debugfs rdump + diff -r), and,
#    where python3-libvhdi is installed, libvhdi reads the same chain.
#
# The filesystem bytes are the same on every run (sha256 printed at the
# end); the VHD files differ only in what snapport puts there itself
# (random UUIDs, timestamps).
#
# OUTDIR gets (created if missing; existing chain files are not replaced):
#   web01-disk0-base.vhd   dynamic VHD, the freshly installed filesystem
#   web01-disk0-snap1.vhd  differencing, "security update"
#   web01-disk0-snap2.vhd  differencing, "content deployment"
#   web01-disk0.vhd        differencing leaf, "log rotation" (the VM's disk)
#   web01.cfg              the xl.cfg, pointing at ./web01-disk0.vhd
#
# The binary is $SNAPPORT, else build/snapport under the repository root.
# Needs: python3, mkfs.ext4, debugfs, e2fsck (e2fsprogs), dd, cmp, diff.
# Set KEEP_WORK=1 to keep the scratch folder (OUTDIR/.build.*).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
SNAPPORT=${SNAPPORT:-$ROOT/build/snapport}

die() { echo "build-sample.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
OUT=$1
[ -x "$SNAPPORT" ] || die "$SNAPPORT: no snapport binary (build it, or set SNAPPORT)"
for tool in python3 mkfs.ext4 debugfs e2fsck dd cmp diff; do
    command -v "$tool" >/dev/null || die "$tool: not found (e2fsprogs, python3, coreutils, diffutils)"
done

BASE=web01-disk0-base.vhd
LAYERS=(web01-disk0-snap1.vhd web01-disk0-snap2.vhd web01-disk0.vhd)
LEAF=${LAYERS[-1]}
FS_SIZE=64M

mkdir -p "$OUT"
for f in "$BASE" "${LAYERS[@]}"; do
    [ ! -e "$OUT/$f" ] || die "$OUT/$f: exists (remove the old chain first)"
done

# Fixed identity and time, so that every run yields the same bytes.
FS_UUID=0f9d5a1e-7c4b-4e2a-9b8d-5e6f7a8b9c0d
HASH_SEED=3c1e9a7b-2d4f-4a6c-8e0b-1f2a3b4c5d6e
EPOCH=1709251200            # 2024-03-01 00:00:00 UTC: the "install" date
export E2FSPROGS_FAKE_TIME=$EPOCH SOURCE_DATE_EPOCH=$EPOCH TZ=UTC LC_ALL=C

WORK=$(mktemp -d "$OUT/.build.XXXXXX")
WORK=$(cd "$WORK" && pwd)     # absolute: some steps run inside OUTDIR
cleanup() {
    if [ "${KEEP_WORK:-0}" = 1 ]; then
        echo "build-sample.sh: scratch kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

sp() { "$SNAPPORT" -q "$@"; }

# write_runs VHD IMAGE RUNS: copy each `offset length` run of IMAGE into VHD.
write_runs() {
    local vhd=$1 img=$2 runs=$3 off len n=0 bytes=0
    while read -r off len; do
        dd if="$img" of="$WORK/slice" bs=1M iflag=skip_bytes,count_bytes \
            skip="$off" count="$len" status=none
        [ "$(stat -c %s "$WORK/slice")" = "$len" ] || die "$img: short slice at $off"
        sp disk write "$vhd" --offset "$off" --from "$WORK/slice"
        n=$((n + 1)); bytes=$((bytes + len))
    done < "$runs"
    rm -f "$WORK/slice"
    echo "  wrote $n runs, $((bytes / 1024)) KiB into $(basename "$vhd")"
}

# --- the filesystem changes of a layer: debugfs commands + an expected tree
# The expected tree ($WORK/expect) mirrors what the filesystem must hold.
CMDS=
fs_begin()   { CMDS=$WORK/debugfs.cmds; : > "$CMDS"; }
fs_stamp()   { # PATH: atime and ctime to the layer's time (debugfs copies them
    # from the local file, where they are "now"; mtime is already fixed)
    printf 'sif %s atime @%s\nsif %s ctime @%s\n' "$1" "$E2FSPROGS_FAKE_TIME" \
        "$1" "$E2FSPROGS_FAKE_TIME" >> "$CMDS"; }
fs_put()     { # LOCAL DEST: a new file
    printf 'cd %s\nwrite %s %s\n' "$(dirname "$2")" "$1" "$(basename "$2")" >> "$CMDS"
    fs_stamp "$2"
    cp -p "$1" "$WORK/expect$2"; }
fs_replace() { printf 'rm %s\n' "$2" >> "$CMDS"; fs_put "$1" "$2"; }
fs_rm()      { printf 'rm %s\n' "$1" >> "$CMDS"; rm -f "$WORK/expect$1"; }
fs_mkdir()   { printf 'mkdir %s\n' "$1" >> "$CMDS"; fs_stamp "$1"; mkdir "$WORK/expect$1"; }
fs_mv()      { # SRC DEST: a rename (ln + unlink leave the link count as is)
    printf 'ln %s %s\nunlink %s\n' "$1" "$2" "$1" >> "$CMDS"
    mv "$WORK/expect$1" "$WORK/expect$2"; }
fs_apply()   { # IMAGE: run the commands, fail on any debugfs error
    debugfs -w -f "$CMDS" "$1" > "$WORK/debugfs.out" 2> "$WORK/debugfs.err"
    if grep -v '^debugfs [0-9.]* (' "$WORK/debugfs.err" >&2; then
        die "$1: debugfs reported errors (commands in $CMDS)"
    fi
}
fs_verify()  { # IMAGE: fsck clean and the files equal the expected tree
    e2fsck -fn "$1" > "$WORK/fsck.out" 2>&1 || { cat "$WORK/fsck.out" >&2; die "$1: e2fsck found problems"; }
    rm -rf "$WORK/dump"; mkdir "$WORK/dump"
    debugfs -R "rdump / $WORK/dump" "$1" 2> /dev/null
    diff -r --no-dereference "$WORK/expect" "$WORK/dump" >&2 || die "$1: files differ from the expected tree"
}

echo "== filesystem tree"
python3 "$HERE/gen-tree.py" base "$WORK/tree"
find "$WORK/tree" -exec touch -h -d "@$EPOCH" {} +
cp -a "$WORK/tree" "$WORK/expect"
mkdir "$WORK/expect/lost+found"

echo "== ext4 image ($FS_SIZE)"
IMG=$WORK/fs0.img
truncate -s "$FS_SIZE" "$IMG"
mkfs.ext4 -q -F -t ext4 -b 4096 -I 256 -i 16384 -m 1 -L web01-root \
    -U "$FS_UUID" -E "hash_seed=$HASH_SEED,root_owner=0:0,nodiscard" \
    -d "$WORK/tree" "$IMG"
# mkfs -d copies atime and ctime from the tree, where they are "now": fix.
fs_begin
(cd "$WORK/tree" && find . -printf '%P\n') | while read -r p; do fs_stamp "/$p"; done
fs_apply "$IMG"
fs_verify "$IMG"

echo "== base: $BASE"
sp disk create "$OUT/$BASE" --size "$FS_SIZE"
python3 "$HERE/imgdiff.py" --nonzero "$IMG" > "$WORK/runs0"
write_runs "$OUT/$BASE" "$IMG" "$WORK/runs0"
sp disk compare "$OUT/$BASE" "$IMG" > /dev/null || die "$BASE: differs from $IMG"

# layer_changes N: the debugfs changes of layer N (payload in $WORK/l$N).
layer_changes() {
    local d=$WORK/l$1
    case $1 in
    1)  # security update: new webapp binary, nginx gzip, page bump, log growth
        fs_replace "$d/webapp" /usr/local/bin/webapp
        fs_put "$d/gzip.conf" /etc/nginx/conf.d/gzip.conf
        fs_replace "$d/index.html" /var/www/html/index.html
        fs_replace "$d/access.log" /var/log/nginx/access.log ;;
    2)  # content deployment: photos and a blog, two old blobs gone, one new
        fs_mkdir /var/www/html/blog
        for i in 00 01 02 03 04; do fs_put "$d/photo-$i.jpg" "/var/www/html/img/photo-$i.jpg"; done
        fs_put "$d/post-1.html" /var/www/html/blog/2024-03-snapshots.html
        fs_put "$d/post-2.html" /var/www/html/blog/2024-03-coalesce.html
        fs_rm /srv/data/blob-003.bin
        fs_rm /srv/data/blob-004.bin
        fs_put "$d/blob-008.bin" /srv/data/blob-008.bin ;;
    3)  # log rotation, a database appears, library patched, notes deleted
        fs_mv /var/log/nginx/access.log /var/log/nginx/access.log.1
        fs_put "$d/access.log" /var/log/nginx/access.log
        fs_replace "$d/syslog" /var/log/syslog
        fs_mkdir /srv/db
        fs_put "$d/app.db" /srv/db/app.db
        fs_replace "$d/libweb.so.1" /usr/local/lib/libweb.so.1
        fs_rm /home/admin/notes.txt ;;
    esac
}

PREV=$BASE
for n in 1 2 3; do
    layer=${LAYERS[$((n - 1))]}
    echo "== layer $n: $layer (parent $PREV)"
    python3 "$HERE/gen-tree.py" layer "$n" "$WORK/l$n"
    # Each layer happens one day later; files carry that date.
    find "$WORK/l$n" -exec touch -h -d "@$((EPOCH + n * 86400))" {} +
    export E2FSPROGS_FAKE_TIME=$((EPOCH + n * 86400))
    NEW=$WORK/fs$n.img
    cp --sparse=always "$IMG" "$NEW"
    fs_begin
    layer_changes "$n"
    fs_apply "$NEW"
    fs_verify "$NEW"
    python3 "$HERE/imgdiff.py" "$IMG" "$NEW" > "$WORK/runs$n"
    [ -s "$WORK/runs$n" ] || die "layer $n: debugfs changed nothing"
    # Relative parent: run from OUTDIR so the chain can be moved as a folder.
    (cd "$OUT" && sp disk create "$layer" --parent "$PREV")
    write_runs "$OUT/$layer" "$NEW" "$WORK/runs$n"
    sp disk compare "$OUT/$layer" "$NEW" > /dev/null || die "$layer: chain differs from $NEW"
    IMG=$NEW
    PREV=$layer
done

echo "== checks"
sp disk check "$OUT/$LEAF" > /dev/null || die "$LEAF: disk check failed"
sp disk compare "$OUT/$LEAF" "$IMG" > /dev/null || die "$LEAF: differs from the final ext4 image"
sp disk flatten "$OUT/$LEAF" -o "$WORK/flat.img"
cmp "$WORK/flat.img" "$IMG" || die "flattened $LEAF differs from the final ext4 image"
fs_verify "$WORK/flat.img"
# A second opinion where Debian's python3-libvhdi is installed: libvhdi
# reads the chain on its own. (Its known bug with partly set bitmap bytes
# cannot hit here: every run is 4 KiB = 8 sectors = whole bitmap bytes.)
if /usr/bin/python3 -c 'import pyvhdi' 2>/dev/null; then
    (cd "$OUT" && /usr/bin/python3 - "$IMG" "$LEAF" "${LAYERS[@]:0:${#LAYERS[@]}-1}" "$BASE" <<'PY'
import sys, pyvhdi
img, names = sys.argv[1], sys.argv[2:]
names = [names[0]] + names[1:-1][::-1] + [names[-1]]   # leaf .. base
files = []
for n in names:
    f = pyvhdi.file()
    f.open(n)
    files.append(f)
for child, parent in zip(files, files[1:]):
    child.set_parent(parent)
want = open(img, "rb").read()
got = files[0].read_buffer_at_offset(len(want), 0)
sys.exit(0 if got == want and files[0].get_media_size() == len(want) else 1)
PY
    ) || die "libvhdi reads $LEAF differently from the final ext4 image"
    echo "  libvhdi (pyvhdi) reads the chain as the final image"
fi
cp "$HERE/web01.cfg" "$OUT/web01.cfg"

echo "== done: $OUT/$LEAF (chain of $((${#LAYERS[@]} + 1)) VHDs), $OUT/web01.cfg"
echo "   final image sha256 $(sha256sum < "$IMG" | cut -d' ' -f1)"
