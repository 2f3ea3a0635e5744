#!/usr/bin/env bash
# Regenerates the seed corpora under tests/fuzz/corpus/ (committed; run by
# hand when a format gains a feature): small valid inputs of every kind,
# made by snapport itself and by qemu-img, so that the fuzzers start from
# bytes that get past the magic numbers.
# Usage: bash tests/fuzz/make_seeds.sh [path/to/snapport]
# (SEED_DIR=DIR writes them there instead, to pick some by hand.)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
sp="${1:-$root/build/snapport}"
c="${SEED_DIR:-$here/corpus}"
w="$(mktemp -d)"
trap 'rm -rf "$w"' EXIT
mkdir -p "$c"/{disk,vhd_meta,vmdk_stream,ovf,xva_xml,manifest,xlcfg,archive}

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

# whole archives (the archive target), small: the 64 KiB disk above plain
# (XVA xxhash and sha1, OVA signed with a sha1 manifest), and a 3 MiB disk
# of two short runs (blocks 0 and 2 stored, 1 absent) gzip'd and zstd'd
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$w/key.pem" -out "$w/cert.pem" \
  -subj /CN=snapport-seed -days 3650 2>/dev/null
"$sp" --store "$w/st" export seed -o "$w/seed-sha1.xva" --digest sha1 >/dev/null
"$sp" --store "$w/st" export seed -o "$w/signed.ova" --digest sha1 --sign "$w/key.pem" --cert "$w/cert.pem" >/dev/null
tar -xOf "$w/signed.ova" seed.cert > "$c/manifest/seed.cert"
cp "$w/seed.xva" "$w/seed-sha1.xva" "$w/seed.ova" "$w/signed.ova" "$c/archive/"
"$sp" disk create "$w/gap.vhd" --size 3M >/dev/null
"$sp" disk write "$w/gap.vhd" --offset 4096 --pattern 65 --length 5000 >/dev/null
"$sp" disk write "$w/gap.vhd" --offset 2200000 --pattern 66 --length 3000 >/dev/null
printf 'name = "gap"\nmemory = 64\ndisk = [ "format=vhd, vdev=xvda, target=%s" ]\n' "$w/gap.vhd" > "$w/gap.cfg"
"$sp" --store "$w/st" vm create --config "$w/gap.cfg" >/dev/null
"$sp" --store "$w/st" export gap -o "$w/gap-gzip.xva" --compress gzip >/dev/null
"$sp" --store "$w/st" export gap -o "$w/gap-zstd.xva" --compress zstd >/dev/null
cp "$w/gap-gzip.xva" "$w/gap-zstd.xva" "$c/archive/"
# OVAs whose disk is not a streamOptimized VMDK (spooled, or gunzip'd
# first): the OVF of seed.ova with its one file swapped, manifest redone
python3 - "$w/seed.ova" "$w/dyn.vhd" "$w/src.raw" "$c/archive" <<'PY'
import gzip, hashlib, io, re, sys, tarfile
src, vhd, raw, out = sys.argv[1:]
with tarfile.open(src) as t:
    ovf = t.extractfile("seed.ovf").read().decode()
def ova(name, disk, fmt, gz):
    data = open(disk, "rb").read()
    if gz:
        data = gzip.compress(data, mtime=0)
    x = re.sub(r'<File [^>]*>', '<File ovf:href="%s" ovf:id="file1" ovf:size="%d"%s>'
               % (name, len(data), ' ovf:compression="gzip"' if gz else ''), ovf, count=1)
    x = re.sub(r'ovf:format="[^"]*"', 'ovf:format="%s"' % fmt, x, count=1).encode()
    mf = "".join("SHA256(%s)= %s\n" % (n, hashlib.sha256(d).hexdigest())
                 for n, d in (("seed.ovf", x), (name, data))).encode()
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for n, d in (("seed.ovf", x), ("seed.mf", mf), (name, data)):
            i = tarfile.TarInfo(n)
            i.size = len(d)
            t.addfile(i, io.BytesIO(d))
    return b.getvalue()
vhd_uri = "http://technet.microsoft.com/en-us/library/bb676673.aspx"
open(out + "/vhd.ova", "wb").write(ova("seed-disk1.vhd", vhd, vhd_uri, False))
open(out + "/raw-gzip.ova", "wb").write(ova("seed-disk1.img", raw, "http://www.gnome.org/~markmc/qcow-image-format.html#raw", True))
PY
echo "seeds in $c"
