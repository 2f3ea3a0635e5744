#!/usr/bin/env bash
# Installs what snapport needs from Debian's packages (non-interactively,
# skipping what is already there) and builds it into build/.
# Usage: bash scripts/setup.sh [--sanitize]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  # toolchain
  gcc make cmake pkg-config
  # libraries snapport links or will link (see ../shared/reference/libraries.md)
  libarchive-dev libxml2-dev libssl-dev zlib1g-dev libdeflate-dev libxen-dev
  libsqlite3-dev libxxhash-dev libzstd-dev
  libcurl4-openssl-dev  # the S3 client (s3/): HTTP, TLS and SigV4
  # the tests' peers and tools
  python3 qemu-utils libvhdi-utils python3-libvhdi e2fsprogs time
  xva-img libvmdk-utils libxml2-utils zstd gzip tar
  # the --json schema test; the man page and completion tests (built and installed)
  python3-jsonschema man-db bash-completion
)

# The independent OVF readers of tests/interop/test_ovf_readers.py, a
# separate group because they are large: virt-v2v brings qemu, libguestfs
# and systemd (145 packages, about 60 s to install on a 2-core machine),
# go and govmomi's source about 15 s. SNAPPORT_SKIP_READERS=1 leaves them
# out (that test then skips); CI always installs them.
READERS=(virt-v2v golang-go golang-github-vmware-govmomi-dev)

# The Debian packaging tools for tests/package/test_deb.sh (debian/: build
# with dpkg-buildpackage, check with lintian), a group of their own because
# lintian is large. SNAPPORT_SKIP_PACKAGING=1 leaves them out; CI always
# installs them. build-essential: dpkg-buildpackage requires it by name.
PACKAGING=(build-essential dpkg-dev debhelper lintian)

# The S3 tests' endpoint (tests/tools/ceph_rgw.py: a single-node Ceph +
# radosgw on 127.0.0.1, openssl for its test certificate) and s3cmd as a
# peer client. About 55 packages, 245 MB on disk. SNAPPORT_SKIP_S3=1 leaves
# them out (the S3 tests then skip); CI always installs them.
S3=(ceph-mon ceph-osd radosgw ceph-common s3cmd openssl)

# install_missing NAME...: apt-get install those not installed yet.
install_missing() {
  local missing=() p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

install_missing "${PACKAGES[@]}"
if [ "${CI:-}" = "true" ] || [ "${SNAPPORT_SKIP_READERS:-}" != "1" ]; then
  install_missing "${READERS[@]}"
fi
if [ "${CI:-}" = "true" ] || [ "${SNAPPORT_SKIP_PACKAGING:-}" != "1" ]; then
  install_missing "${PACKAGING[@]}"
fi
if [ "${CI:-}" = "true" ] || [ "${SNAPPORT_SKIP_S3:-}" != "1" ]; then
  install_missing "${S3[@]}"
fi

build_dir=build
flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ "${CI:-}" = "true" ]; then
  flags+=(-DSNAPPORT_WERROR=ON)
fi
if [ "${1:-}" = "--sanitize" ]; then
  build_dir=build-asan
  flags+=(-DSNAPPORT_SANITIZE=ON -DSNAPPORT_WERROR=ON)
fi
cmake -S . -B "$build_dir" "${flags[@]}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)" >/dev/null
echo "setup: built $build_dir/snapport"
