#!/usr/bin/env bash
# package.deb: the Debian package builds from a copy of the source tree
# (dpkg-buildpackage -us -uc -b), lintian finds no error in it, it installs
# (dpkg -i) with the program, its man page and its bash completion in
# place, and it purges without leaving them behind.
#
# It installs into this system, so it runs only when CI=true or
# SNAPPORT_PACKAGE_TEST=1 (else it skips, exit 77), never on the sanitizer
# build (SP_SANITIZE=ON), and refuses to start when a snapport package or
# /usr/bin/snapport is already there. Whatever fails, it purges the package
# it installed.
# Environment (tests/CMakeLists.txt): SP_SOURCE (the source tree),
# SP_SANITIZE (the build's SNAPPORT_SANITIZE), SP_TMP (a scratch folder).
set -uo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

: "${SP_SOURCE:?}" "${SP_TMP:?}"
if [ "${CI:-}" != "true" ] && [ "${SNAPPORT_PACKAGE_TEST:-}" != "1" ]; then
  skip "installs a package into this system: set SNAPPORT_PACKAGE_TEST=1 to run it"
fi
case "${SP_SANITIZE:-OFF}" in
  ON|1|TRUE|YES|on|true|yes) skip "not on the sanitizer build (the package builds its own, plain)" ;;
esac
[ "$(id -u)" = 0 ] || fail "dpkg -i and dpkg --purge need root"
for tool in dpkg-buildpackage:dpkg-dev dh:debhelper lintian:lintian man:man-db; do
  command -v "${tool%%:*}" >/dev/null 2>&1 ||
    fail "${tool%%:*} is not installed (apt-get install ${tool#*:}; scripts/setup.sh does unless SNAPPORT_SKIP_PACKAGING=1)"
done

# Slim images tell dpkg to drop man pages; then there is none to find.
if grep -rqs '^path-exclude[= ]*/usr/share/man' /etc/dpkg/dpkg.cfg /etc/dpkg/dpkg.cfg.d/; then
  fail "dpkg is set to leave out /usr/share/man (path-exclude in /etc/dpkg/dpkg.cfg.d/), so the man page cannot be checked"
fi
# Don't clobber an administrator's snapport.
status=$(dpkg-query -W -f='${db:Status-Status}' snapport 2>/dev/null)
if [ -n "$status" ] && [ "$status" != "not-installed" ]; then
  fail "a snapport package is already on this system (dpkg status '$status'); remove it first, this test installs and purges its own"
fi
for f in /usr/bin/snapport /usr/share/man/man1/snapport.1.gz /usr/share/bash-completion/completions/snapport; do
  [ -e "$f" ] && fail "$f exists and belongs to no package; this test would overwrite it"
done

version=$(sed -n 's/^project(snapport VERSION \([0-9][0-9.]*\).*/\1/p' "$SP_SOURCE/CMakeLists.txt")
[ -n "$version" ] || fail "no 'project(snapport VERSION x.y.z' line in $SP_SOURCE/CMakeLists.txt"
deb_version=$(dpkg-parsechangelog -l "$SP_SOURCE/debian/changelog" -S Version) ||
  fail "cannot read debian/changelog"
[ "$deb_version" = "$version" ] ||
  fail "debian/changelog is at $deb_version but CMakeLists.txt's project() at $version"

rm -rf "$SP_TMP" && mkdir -p "$SP_TMP/src" || fail "cannot make $SP_TMP"
src=$SP_TMP/src

# A copy of the sources: the tracked files of a git checkout, else the tree
# without build output.
top=$(git -C "$SP_SOURCE" rev-parse --show-toplevel 2>/dev/null)
if [ -n "$top" ] && [ "$(realpath "$top")" = "$(realpath "$SP_SOURCE")" ]; then
  (cd "$SP_SOURCE" && git ls-files -z | while IFS= read -r -d '' f; do
     [ -e "$f" ] && printf '%s\0' "$f"   # skip files deleted but not committed
   done | tar --null -T - -cf -) | tar -xf - -C "$src" || fail "cannot copy the tracked files of $SP_SOURCE"
else
  tar -C "$SP_SOURCE" --exclude='./build*' --exclude='./obj-*' --exclude=./.git \
    --exclude=./sample-out --exclude=./snapport-store --exclude=./tmp \
    --exclude=./debian/.debhelper --exclude=./debian/snapport --exclude=./debian/tmp \
    --exclude=./debian/files --exclude=./debian/debhelper-build-stamp \
    --exclude='./debian/*.substvars' --exclude='./debian/*.debhelper' --exclude='./debian/*.debhelper.log' \
    -cf - . | tar -xf - -C "$src" || fail "cannot copy $SP_SOURCE"
fi
[ -x "$src/debian/rules" ] || fail "the copy of $SP_SOURCE has no executable debian/rules"

echo "== dpkg-buildpackage -us -uc -b (in $src)"
start=$SECONDS
(cd "$src" && DEB_BUILD_OPTIONS=parallel=2 dpkg-buildpackage -us -uc -b) >"$SP_TMP/build.log" 2>&1 ||
  { tail -n 60 "$SP_TMP/build.log" >&2; fail "dpkg-buildpackage failed (log: $SP_TMP/build.log)"; }
echo "built in $((SECONDS - start)) s"

arch=$(dpkg --print-architecture)
deb=$SP_TMP/snapport_${version}_${arch}.deb
changes=$SP_TMP/snapport_${version}_${arch}.changes
[ -f "$deb" ] || fail "dpkg-buildpackage made no $deb: $(ls "$SP_TMP")"
[ -f "$changes" ] || fail "dpkg-buildpackage made no $changes"

echo "== lintian $changes"
lintian --fail-on error --display-info "$changes" >"$SP_TMP/lintian.txt" 2>&1
lrc=$?
sed 's/^/lintian: /' "$SP_TMP/lintian.txt"
[ $lrc = 0 ] || fail "lintian exited $lrc (errors above)"
grep -q '^W: ' "$SP_TMP/lintian.txt" && echo "note: lintian has warnings (above)"

# From here on the package may be on the system: purge it however we leave.
purge() {
  local s
  s=$(dpkg-query -W -f='${db:Status-Status}' snapport 2>/dev/null)
  if [ -n "$s" ] && [ "$s" != "not-installed" ]; then
    dpkg --purge snapport >"$SP_TMP/purge.log" 2>&1 || { cat "$SP_TMP/purge.log" >&2; echo "FAIL: dpkg --purge snapport failed" >&2; }
  fi
}
trap purge EXIT

echo "== dpkg -i $deb"
dpkg -i "$deb" >"$SP_TMP/install.log" 2>&1 || { cat "$SP_TMP/install.log" >&2; fail "dpkg -i $deb failed"; }

out=$(/usr/bin/snapport --version 2>&1) || fail "/usr/bin/snapport --version exited $?: $out"
[ "$out" = "snapport $version" ] || fail "/usr/bin/snapport --version printed '$out', expected 'snapport $version'"
page=$(man -w snapport 2>&1) || fail "man -w snapport finds no page: $page"
[ "$page" = /usr/share/man/man1/snapport.1.gz ] || fail "man -w snapport gives $page, not /usr/share/man/man1/snapport.1.gz"
manerr=$(LC_ALL=C.UTF-8 MANWIDTH=80 MANPAGER=cat PAGER=cat man --warnings snapport 2>&1 >/dev/null)
[ -z "$manerr" ] || fail "man --warnings snapport warns: $manerr"
comp=/usr/share/bash-completion/completions/snapport
[ -f "$comp" ] || fail "$comp is missing"
dpkg -L snapport | grep -qx "$comp" || fail "$comp does not belong to the package"

echo "== dpkg --purge snapport"
dpkg --purge snapport >"$SP_TMP/purge.log" 2>&1 || { cat "$SP_TMP/purge.log" >&2; fail "dpkg --purge snapport failed"; }
status=$(dpkg-query -W -f='${db:Status-Status}' snapport 2>/dev/null)
[ -z "$status" ] || [ "$status" = "not-installed" ] || fail "after dpkg --purge, snapport's dpkg status is '$status'"
for f in /usr/bin/snapport /usr/share/man/man1/snapport.1.gz "$comp" /usr/share/doc/snapport; do
  [ -e "$f" ] && fail "$f is still there after dpkg --purge snapport"
done
man -w snapport >/dev/null 2>&1 && fail "man -w snapport still finds a page after the purge"

echo "ok: snapport_${version}_${arch}.deb built, lintian clean of errors, installed, ran, purged"
