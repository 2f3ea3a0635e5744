#!/usr/bin/env bash
# Regenerates the seed corpora under tests/fuzz/corpus/ (committed; run by
# hand when a format gains a feature): small valid inputs of every kind,
# made by snapport itself and by qemu-img, so that the fuzzers start from
# bytes that get past the magic numbers.
# Usage: bash tests/fuzz/make_seeds.sh [path/to/snapport]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
sp="${1:-$root/build/snapport}"
c="$here/corpus"
w="$(mktemp -d)"
trap 'rm -rf "$w"' EXIT
mkdir -p "$c"/{disk,vhd_meta,vmdk_stream,ovf,xva_xml,manifest,xlcfg}

# a small raw with data, a zero run and a hole
python3 - "$w/src.raw" <<'PY'
import sys, random
r = random.Random(5)
d = bytearray(64 * 1024)
d[0:8192] = r.randbytes(8192)
d[30000:34096] = r.randbytes(4096)
d[50000:51000] = bytes([0x5a]) * 1000
open(sys.argv[1], "wb").write(d)
PY
"$sp" disk create "$w/dyn.vhd" --size 64K --block-size 16K >/dev/null
"$sp" disk write "$w/dyn.vhd" --offset 0 --from "$w/src.raw" --length 40000 >/dev/null
"$sp" disk create "$w/child.vhd" --parent "$w/dyn.vhd" >/dev/null
"$sp" disk write "$w/child.vhd" --offset 20000 --pattern 7 --length 1000 >/dev/null
"$sp" disk flatten "$w/dyn.vhd" -o "$w/stream.vmdk" >/dev/null
qemu-img convert -q -f raw -O vpc -o subformat=fixed "$w/src.raw" "$w/fixed.vhd"
qemu-img convert -q -f raw -O vmdk -o subformat=monolithicSparse "$w/src.raw" "$w/sparse.vmdk"
qemu-img convert -q -f raw -O qcow2 -o cluster_size=4096 "$w/src.raw" "$w/v3.qcow2"
qemu-img convert -q -f raw -O qcow2 -o cluster_size=4096,compat=0.10 "$w/src.raw" "$w/v2.qcow2"
qemu-img convert -q -c -f raw -O qcow2 -o cluster_size=4096 "$w/src.raw" "$w/zlib.qcow2"
qemu-img convert -q -c -f raw -O qcow2 -o cluster_size=4096,compression_type=zstd "$w/src.raw" "$w/zstd.qcow2"
for f in dyn.vhd child.vhd fixed.vhd stream.vmdk sparse.vmdk v3.qcow2 v2.qcow2 zlib.qcow2 zstd.qcow2; do
  cp "$w/$f" "$c/disk/$f"
done
head -c 1536 "$w/dyn.vhd" > "$c/vhd_meta/dyn-head"      # footer copy + dynamic header
tail -c 512 "$w/fixed.vhd" > "$c/vhd_meta/fixed-footer"
cp "$w/stream.vmdk" "$c/vmdk_stream/ours.vmdk"
qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized "$w/src.raw" "$c/vmdk_stream/qemu.vmdk"

# archives of a tiny VM: ova.xml, .ovf, .mf
cat > "$w/t.cfg" <<CFG
name = "seed"
builder = "hvm"
memory = 128
vcpus = 2
disk = [ 'format=vhd, vdev=xvda, access=rw, target=dyn.vhd', 'format=raw, vdev=hdc, devtype=cdrom, target=' ]
vif = [ 'mac=00:16:3e:00:00:01, bridge=xenbr0' ]
CFG
cp "$w/t.cfg" "$c/xlcfg/seed.cfg"
cp "$root/samples/web01.cfg" "$c/xlcfg/web01.cfg"
"$sp" --store "$w/st" vm create --config "$w/t.cfg" >/dev/null
"$sp" --store "$w/st" export seed -o "$w/seed.xva" >/dev/null
"$sp" --store "$w/st" export seed -o "$w/seed.ova" >/dev/null
tar -xOf "$w/seed.xva" ova.xml > "$c/xva_xml/seed.xml"
tar -xOf "$w/seed.ova" seed.ovf > "$c/ovf/seed.ovf"
tar -xOf "$w/seed.ova" seed.mf > "$c/manifest/seed.mf"
echo "seeds in $c"
