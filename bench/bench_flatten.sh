#!/bin/bash
# Flatten benchmark: snapport against itself (deep vs shallow chain, huge vs
# small virtual size), against cat/dd and against qemu-img, plus peak RSS.
#
#   bash bench/bench_flatten.sh
#
# a) 4 GiB disk, 1 GiB data (random + compressible text + zero-written
#    regions spread over the disk): flatten of a 30-deep chain (base + 29
#    differencing disks, data spread over the layers with unaligned,
#    overlapping rewrites) vs a 1-deep disk with the same final content
#    (checked with `disk compare`). Target 30-deep/1-deep <= 1.3.
# b) 256 MiB data on a 64 GiB disk flattened to sparse raw, vs the same data
#    on a 256 MiB disk, vs cat and dd of a 256 MiB file; allocated vs
#    apparent size of the output.
# c) the 1-deep disk of a) (a dynamic VHD qemu reads) flattened by snapport
#    vs `qemu-img convert -f vpc -O raw`; outputs compared with cmp.
#    Target snapport/qemu <= 1.0.
# d) peak RSS of every run, and a flatten of a 2040 GiB disk holding
#    64 MiB (to raw and to VHD). Target <= 64 MiB.
#
# Every chain is made with the snapport CLI (disk create / disk write).
# Each measurement runs $REPS times (default 5), the median is reported;
# before every timed run the page cache is dropped (sync; echo 3 >
# /proc/sys/vm/drop_caches) when that is permitted, else each command runs
# once untimed first so all start equally warm. BENCH_CACHE=warm forces the
# latter. Output files go to BENCH_DIR (or BENCH_OUT) and are deleted
# between runs (outside the timing); the timing ends when the command exits.
# snapport flatten fsyncs its output before it exits (sync_file_range
# while writing, fsync at the end); qemu-img convert, cat and dd do not,
# so each also runs with an fsync of its output (`sync FILE`, dd
# conv=fsync) for a like-for-like figure.
#
# Environment: SNAPPORT (default build/snapport), BENCH_DIR (scratch,
# default /var/tmp/snapport-bench; needs about 12 GiB free; removed at the
# end unless BENCH_KEEP=1), REPS (5), BENCH_CACHE (cold|warm, default
# cold when permitted), BENCH_OUT (a folder for the timed commands' output
# files, default inside BENCH_DIR; e.g. /dev/shm takes the output disk's
# write-back out of the figures: fsync on tmpfs returns at once).
# Needs python3, qemu-img (qemu-utils), /usr/bin/time (package time).
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
SNAPPORT=${SNAPPORT:-$ROOT/build/snapport}
BENCH_DIR=${BENCH_DIR:-/var/tmp/snapport-bench}
REPS=${REPS:-5}
GIB=$((1024 * 1024 * 1024))
MIB=$((1024 * 1024))

die() { echo "bench_flatten.sh: $*" >&2; exit 1; }
[ -x "$SNAPPORT" ] || die "$SNAPPORT: no snapport binary (build it, or set SNAPPORT)"
[ -x /usr/bin/time ] || die "/usr/bin/time: missing (apt-get install time)"
command -v qemu-img >/dev/null || die "qemu-img: missing (apt-get install qemu-utils)"
command -v python3 >/dev/null || die "python3: missing"

made_bench_dir=0
[ -d "$BENCH_DIR" ] || made_bench_dir=1
mkdir -p "$BENCH_DIR"
W=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
made_out_dir=0
if [ -n "${BENCH_OUT:-}" ]; then
    [ -d "$BENCH_OUT" ] || made_out_dir=1
    mkdir -p "$BENCH_OUT"
    O=$(mktemp -d "$BENCH_OUT/out.XXXXXX")
else
    O=$W/out
fi
cleanup() {
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench_flatten.sh: scratch kept in $W (outputs $O)" >&2; return; fi
    rm -rf "$W" "$O"
    [ "$made_bench_dir" = 0 ] || rmdir "$BENCH_DIR" 2>/dev/null || true
    [ "$made_out_dir" = 0 ] || rmdir "$BENCH_OUT" 2>/dev/null || true
}
trap cleanup EXIT
avail=$(df -B1 --output=avail "$W" | tail -1)
[ "$avail" -ge $((12 * GIB)) ] || die "$BENCH_DIR: needs about 12 GiB free, has $((avail / GIB)) GiB"

CACHE=${BENCH_CACHE:-}
if [ -z "$CACHE" ]; then
    if (sync && echo 3 > /proc/sys/vm/drop_caches) 2>/dev/null; then CACHE=cold; else CACHE=warm; fi
fi

sp() { "$SNAPPORT" -q "$@"; }
now() { date +%s%N; }
T0=$(now)
log() { printf '[%6.1fs] %s\n' "$(awk -v a="$(now)" -v b="$T0" 'BEGIN {print (a - b) / 1e9}')" "$*" >&2; }

# ---------------------------------------------------------------- data
log "generating data (python3 bench/gen_data.py)"
D=$W/data
python3 "$HERE/gen_data.py" "$D"
mkdir -p "$W/img" "$O"
I=$W/img

# write_op VHD OFFSET SRC: SRC is a file or zero:LENGTH
write_op() {
    case $3 in
    zero:*) sp disk write "$1" --offset "$2" --pattern 0 --length "${3#zero:}" ;;
    *)      sp disk write "$1" --offset "$2" --from "$3" ;;
    esac
}

# ---------------------------------------------------------------- chains
log "a) 1-deep: 4 GiB dynamic VHD, final content only"
sp disk create "$I/a1.vhd" --size 4G
while read -r kind layer off src; do
    [ "$kind" = F ] && write_op "$I/a1.vhd" "$off" "$src"
done < "$D/plan_a.txt"

log "a) 30-deep: base + 29 differencing layers, with overwritten data"
sp disk create "$I/a30-00.vhd" --size 4G
cur=0
while read -r kind layer off src; do
    while [ "$cur" -lt "$layer" ]; do
        cur=$((cur + 1))
        (cd "$I" && sp disk create "$(printf 'a30-%02d.vhd' $cur)" --parent "$(printf 'a30-%02d.vhd' $((cur - 1)))")
    done
    write_op "$I/$(printf 'a30-%02d.vhd' "$cur")" "$off" "$src"
done < "$D/plan_a.txt"
while [ "$cur" -lt 29 ]; do
    cur=$((cur + 1))
    (cd "$I" && sp disk create "$(printf 'a30-%02d.vhd' $cur)" --parent "$(printf 'a30-%02d.vhd' $((cur - 1)))")
done
A30=$I/a30-29.vhd
depth=$("$SNAPPORT" --json disk info "$A30" | python3 -c 'import json,sys; print(json.load(sys.stdin)["depth"])')
[ "$depth" = 30 ] || die "$A30: depth $depth, expected 30"
log "a) disk compare 30-deep vs 1-deep"
sp disk compare "$A30" "$I/a1.vhd" > /dev/null || die "30-deep and 1-deep chains differ: $("$SNAPPORT" disk compare "$A30" "$I/a1.vhd")"

log "b) 64 GiB and 256 MiB disks with the same 256 MiB"
sp disk create "$I/b64g.vhd" --size 64G
sp disk create "$I/b256m.vhd" --size 256M
: > "$I/b_src.raw"
while read -r big small src; do
    sp disk write "$I/b64g.vhd" --offset "$big" --from "$src"
    sp disk write "$I/b256m.vhd" --offset "$small" --from "$src"
    cat "$src" >> "$I/b_src.raw"
done < "$D/plan_b.txt"
sp disk compare "$I/b256m.vhd" "$I/b_src.raw" > /dev/null || die "b256m.vhd differs from b_src.raw"

log "d) 2040 GiB disk with 64 MiB"
sp disk create "$I/d2040g.vhd" --size 2040G
while read -r off src; do
    sp disk write "$I/d2040g.vhd" --offset "$off" --from "$src"
done < "$D/plan_d.txt"

rm -rf "$D"      # the chains hold the data now

# ---------------------------------------------------------------- timing
declare -A MED MIN MAX RSS
# The timed commands, run by `bash -c` (which execs the single command, so
# /usr/bin/time sees the tool itself). Each writes $O/<name>.* only.
export SNAPPORT A30 I O
declare -A CMD=(
    [a30]='"$SNAPPORT" -q disk flatten "$A30" -o "$O/a30.raw"'
    [a1]='"$SNAPPORT" -q disk flatten "$I/a1.vhd" -o "$O/a1.raw"'
    [a1ns]='"$SNAPPORT" -q disk flatten --no-sync "$I/a1.vhd" -o "$O/a1ns.raw"'
    [qemu]='qemu-img convert -f vpc -O raw "$I/a1.vhd" "$O/qemu.raw"'
    [qemu_sync]='qemu-img convert -f vpc -O raw "$I/a1.vhd" "$O/qemu_sync.raw" && sync "$O/qemu_sync.raw"'
    [b64g]='"$SNAPPORT" -q disk flatten "$I/b64g.vhd" -o "$O/b64g.raw"'
    [b256m]='"$SNAPPORT" -q disk flatten "$I/b256m.vhd" -o "$O/b256m.raw"'
    [cat]='cat "$I/b_src.raw" > "$O/cat.raw"'
    [dd]='dd if="$I/b_src.raw" of="$O/dd.raw" bs=1M status=none'
    [dd_sync]='dd if="$I/b_src.raw" of="$O/dd_sync.raw" bs=1M conv=fsync status=none'
    [d_raw]='"$SNAPPORT" -q disk flatten "$I/d2040g.vhd" -o "$O/d_raw.raw"'
    [d_vhd]='"$SNAPPORT" -q disk flatten "$I/d2040g.vhd" -o "$O/d_vhd.vhd"'
)

# measure MODE NAME...: REPS rounds; in each round every NAME runs once, in
# turn (interleaved, so drift hits all alike). MODE cold: sync and drop the
# page cache before each run; warm: one untimed run of each first, then
# only sync. Results under key NAME (MODE = $CACHE) or NAME+w (extra warm
# pass): median/min/max seconds, peak RSS KiB.
measure() {
    local mode=$1 name key rep t0 t1 rss
    shift
    declare -A times=()
    if [ "$mode" = warm ]; then
        for name in "$@"; do rm -f "$O/$name".*; bash -c "${CMD[$name]}" > /dev/null; done
    fi
    for rep in $(seq "$REPS"); do
        for name in "$@"; do
            rm -f "$O/$name".*
            sync
            [ "$mode" = warm ] || echo 3 > /proc/sys/vm/drop_caches
            t0=$(now)
            /usr/bin/time -f %M -o "$W/rss" bash -c "${CMD[$name]}" > /dev/null 2> "$W/err" ||
                { cat "$W/err" >&2; die "$name: failed: ${CMD[$name]}"; }
            t1=$(now)
            rss=$(tail -1 "$W/rss")
            key=$name; [ "$mode" = "$CACHE" ] || key=$name+w
            times[$key]+="$(( (t1 - t0) / 1000 )) "
            [ "${RSS[$key]:-0}" -ge "$rss" ] || RSS[$key]=$rss
        done
    done
    for name in "$@"; do
        key=$name; [ "$mode" = "$CACHE" ] || key=$name+w
        read -r MED[$key] MIN[$key] MAX[$key] <<< "$(echo "${times[$key]}" | tr ' ' '\n' | sed '/^$/d' | sort -n |
            awk '{v[NR]=$1} END {printf "%.3f %.3f %.3f\n", v[int((NR+1)/2)]/1e6, v[1]/1e6, v[NR]/1e6}')"
        log "  $key ($mode): median ${MED[$key]} s (min ${MIN[$key]}, max ${MAX[$key]}), peak RSS ${RSS[$key]} KiB"
    done
}

log "timing (cache: $CACHE, $REPS runs each)"
log "a) + c) flatten 30-deep, 1-deep, qemu-img convert of the 1-deep"
measure "$CACHE" a30 a1 a1ns qemu qemu_sync
if [ "$CACHE" = cold ]; then
    log "a) + c) again with a warm page cache (inputs in memory)"
    measure warm a30 a1 a1ns qemu qemu_sync
fi
log "a) checks"
sp disk compare "$O/a30.raw" "$O/a1.raw" > /dev/null || die "flatten outputs of 30-deep and 1-deep differ"
sp disk compare "$O/a1.raw" "$I/a1.vhd" > /dev/null || die "a1.raw differs from a1.vhd"
cmp "$O/a1.raw" "$O/qemu.raw" || die "snapport and qemu-img outputs differ"
cmp "$O/a1ns.raw" "$O/qemu.raw" || die "snapport --no-sync and qemu-img outputs differ"
[ "$(stat -c %s "$O/qemu.raw")" = $((4 * GIB)) ] || die "qemu-img output is not 4 GiB"
A_ALLOC=$(du -B1 "$O/a1.raw" | cut -f1)
Q_ALLOC=$(du -B1 "$O/qemu.raw" | cut -f1)
rm -f "$O/a30.raw" "$O/a1ns.raw" "$O/qemu.raw" "$O/qemu_sync.raw"

log "b) 64 GiB vs 256 MiB virtual, cat, dd"
measure "$CACHE" b64g b256m cat dd dd_sync
cmp "$O/b256m.raw" "$I/b_src.raw" || die "b256m.raw differs from the source"
sp disk compare "$O/b64g.raw" "$I/b64g.vhd" > /dev/null || die "b64g.raw differs from b64g.vhd"
B_APP=$(stat -c %s "$O/b64g.raw")
B_ALLOC=$(du -B1 "$O/b64g.raw" | cut -f1)

log "d) 2040 GiB virtual, 64 MiB data"
measure "$CACHE" d_raw d_vhd
sp disk compare "$O/d_raw.raw" "$I/d2040g.vhd" > /dev/null || die "d_raw.raw differs from d2040g.vhd"
sp disk compare "$O/d_vhd.vhd" "$I/d2040g.vhd" > /dev/null || die "d_vhd.vhd differs from d2040g.vhd"
D_APP=$(stat -c %s "$O/d_raw.raw")
D_ALLOC=$(du -B1 "$O/d_raw.raw" | cut -f1)
D_VHD=$(stat -c %s "$O/d_vhd.vhd")

# ---------------------------------------------------------------- report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
verdict() { # VALUE LIMIT: ok when VALUE <= LIMIT
    awk -v v="$1" -v l="$2" 'BEGIN {print (v <= l) ? "ok" : "MISSED"}'; }
R_A=$(ratio "${MED[a30]}" "${MED[a1]}")
R_B=$(ratio "${MED[b64g]}" "${MED[b256m]}")
R_BC=$(ratio "${MED[b64g]}" "${MED[cat]}")
R_BD=$(ratio "${MED[b64g]}" "${MED[dd]}")
R_BDS=$(ratio "${MED[b64g]}" "${MED[dd_sync]}")
R_C=$(ratio "${MED[a1]}" "${MED[qemu]}")
R_CS=$(ratio "${MED[a1]}" "${MED[qemu_sync]}")
R_CN=$(ratio "${MED[a1ns]}" "${MED[qemu]}")
MAXRSS=0
for n in a30 a1 b64g b256m d_raw d_vhd; do [ "${RSS[$n]}" -le "$MAXRSS" ] || MAXRSS=${RSS[$n]}; done
WARM=0
[ -z "${MED[a30+w]:-}" ] || WARM=1

cat <<EOF

snapport flatten benchmark
  snapport: $SNAPPORT
  machine:  $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(free -h | awk '/^Mem:/ {print $2}') RAM, Linux $(uname -r)
  cache:    $CACHE; $REPS runs each, median (min-max) seconds; RSS = peak over runs
  files:    inputs in $W ($(df --output=fstype "$W" | tail -1)), outputs in $O ($(df --output=fstype "$O" | tail -1))
  snapport flatten fsyncs its output; qemu-img, cat and dd do not unless "+ sync"/conv=fsync

Ratios (page cache: $CACHE)
  a) 30-deep / 1-deep chain, 4 GiB disk, 1 GiB data     $R_A   (target <= 1.3: $(verdict "$R_A" 1.3))
  b) 64 GiB / 256 MiB virtual, same 256 MiB data        $R_B   (should be close to 1)
     64 GiB flatten / cat of 256 MiB                    $R_BC
     64 GiB flatten / dd bs=1M of 256 MiB               $R_BD
     64 GiB flatten / dd bs=1M conv=fsync of 256 MiB    $R_BDS
  c) snapport / qemu-img convert, same dynamic VHD      $R_C   (target <= 1.0: $(verdict "$R_C" 1.0); aim 0.5)
     snapport / (qemu-img convert + sync of output)     $R_CS   (both outputs on disk when timing stops)
     snapport --no-sync / qemu-img convert              $R_CN   (neither syncs: like for like)
  d) largest snapport peak RSS                          $(mib $MAXRSS) MiB (target <= 64 MiB: $(verdict "$MAXRSS" 65536))
EOF
if [ "$WARM" = 1 ]; then
    R_AW=$(ratio "${MED[a30+w]}" "${MED[a1+w]}")
    R_CW=$(ratio "${MED[a1+w]}" "${MED[qemu+w]}")
    R_CSW=$(ratio "${MED[a1+w]}" "${MED[qemu_sync+w]}")
    R_CNW=$(ratio "${MED[a1ns+w]}" "${MED[qemu+w]}")
    cat <<EOF
Ratios (page cache: warm, inputs in memory)
  a) 30-deep / 1-deep chain                             $R_AW   (target <= 1.3: $(verdict "$R_AW" 1.3))
  c) snapport / qemu-img convert                        $R_CW   (target <= 1.0: $(verdict "$R_CW" 1.0))
     snapport / (qemu-img convert + sync of output)     $R_CSW
     snapport --no-sync / qemu-img convert              $R_CNW
EOF
fi
echo
printf '%-50s %9s   %-15s %9s\n' "Runs" "median s" "min-max s" "peak RSS"
row() { # LABEL KEY
    [ -n "${MED[$2]:-}" ] || return 0
    printf '  %-48s %9s   %-15s %5s MiB\n' "$1" "${MED[$2]}" "${MIN[$2]}-${MAX[$2]}" "$(mib "${RSS[$2]}")"; }
row "a) flatten 30-deep chain -> raw" a30
row "a) flatten 1-deep (dynamic VHD) -> raw" a1
row "c) flatten 1-deep --no-sync -> raw" a1ns
row "c) qemu-img convert -f vpc -O raw (1-deep)" qemu
row "c) the same + sync OUT (fsync)" qemu_sync
row "a) warm: flatten 30-deep chain -> raw" a30+w
row "a) warm: flatten 1-deep -> raw" a1+w
row "c) warm: flatten 1-deep --no-sync" a1ns+w
row "c) warm: qemu-img convert" qemu+w
row "c) warm: qemu-img convert + sync OUT" qemu_sync+w
row "b) flatten 64 GiB disk, 256 MiB data -> raw" b64g
row "b) flatten 256 MiB disk, 256 MiB data -> raw" b256m
row "b) cat 256 MiB file > file" cat
row "b) dd bs=1M 256 MiB file" dd
row "b) dd bs=1M conv=fsync 256 MiB file" dd_sync
row "d) flatten 2040 GiB disk, 64 MiB data -> raw" d_raw
row "d) flatten 2040 GiB disk, 64 MiB data -> vhd" d_vhd
cat <<EOF

Output sizes (apparent / allocated by du)
  a) 1-deep flatten raw:   $((4 * GIB / MIB)) MiB / $((A_ALLOC / MIB)) MiB   (qemu-img output: $((Q_ALLOC / MIB)) MiB allocated; outputs identical)
  b) 64 GiB flatten raw:   $((B_APP / MIB)) MiB / $((B_ALLOC / MIB)) MiB
  d) 2040 GiB flatten raw: $((D_APP / MIB)) MiB / $((D_ALLOC / MIB)) MiB;  as VHD: $((D_VHD / MIB)) MiB file
EOF
log "done"
