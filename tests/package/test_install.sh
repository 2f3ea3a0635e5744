#!/usr/bin/env bash
# package.install: `cmake --install` of the build under test into a
# scratch prefix puts exactly the program, its man page and its bash
# completion where they belong, and each of them works from there.
# Environment (tests/CMakeLists.txt): SP_SOURCE (the source tree),
# SP_BUILD (the build directory), SP_TMP (a scratch folder of its own).
set -uo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }
# A tool missing outside CI is a skip (77), in CI a failure.
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  [ "${CI:-}" = "true" ] && fail "$1 is not installed (scripts/setup.sh installs $2)"
  echo "SKIP: $1 is not installed (apt-get install $2)"; exit 77
}
need man man-db
if [ ! -r /usr/share/bash-completion/bash_completion ]; then
  [ "${CI:-}" = "true" ] && fail "bash-completion is not installed (scripts/setup.sh installs it)"
  echo "SKIP: bash-completion is not installed (apt-get install bash-completion)"; exit 77
fi

: "${SP_SOURCE:?}" "${SP_BUILD:?}" "${SP_TMP:?}"
rm -rf "$SP_TMP" && mkdir -p "$SP_TMP" || fail "cannot make $SP_TMP"
prefix=$SP_TMP/prefix

# The version the program must report, read from project() on its own.
version=$(sed -n 's/^project(snapport VERSION \([0-9][0-9.]*\).*/\1/p' "$SP_SOURCE/CMakeLists.txt")
[ -n "$version" ] || fail "no 'project(snapport VERSION x.y.z' line in $SP_SOURCE/CMakeLists.txt"

cmake --install "$SP_BUILD" --prefix "$prefix" >"$SP_TMP/install.log" 2>&1 ||
  { cat "$SP_TMP/install.log" >&2; fail "cmake --install $SP_BUILD --prefix $prefix failed"; }

bin=$prefix/bin/snapport
man=$prefix/share/man/man1/snapport.1
comp=$prefix/share/bash-completion/completions/snapport

# Exactly these three files: no snapport-gendoc, no test program.
expected=$(printf '%s\n' bin/snapport share/bash-completion/completions/snapport share/man/man1/snapport.1)
got=$(cd "$prefix" && find . -type f -o -type l | sed 's|^\./||' | LC_ALL=C sort)
[ "$got" = "$expected" ] || fail "installed files differ from the expected three:
--- expected
$expected
--- installed
$got"
[ -x "$bin" ] || fail "$bin is not executable"

out=$("$bin" --version 2>&1) || fail "$bin --version exited $?: $out"
[ "$out" = "snapport $version" ] ||
  fail "$bin --version printed '$out', expected 'snapport $version' (CMakeLists.txt project())"

manerr=$(LC_ALL=C.UTF-8 MANWIDTH=80 MANPAGER=cat PAGER=cat man --warnings -l "$man" 2>&1 >"$SP_TMP/man.txt") ||
  fail "man -l $man failed: $manerr"
[ -z "$manerr" ] || fail "man --warnings -l $man warns:
$manerr"
grep -q '^NAME' "$SP_TMP/man.txt" || fail "man -l $man rendered no NAME section"

bash -n "$comp" 2>"$SP_TMP/bash-n.txt" || fail "bash -n $comp: $(cat "$SP_TMP/bash-n.txt")"

# Sourced after bash-completion, the file registers a function for
# snapport; bash-completion's own loader finds it by the command's name in
# a completions directory; and it completes a command name.
out=$(bash --norc --noprofile -c '
  source /usr/share/bash-completion/bash_completion || exit 10
  source "$1" || exit 11
  spec=$(complete -p snapport) || exit 12
  echo "spec: $spec"
  fn=$(sed -n "s/.* -F \([^ ]*\) .*/\1/p" <<<"$spec")
  [ -n "$fn" ] && declare -F "$fn" >/dev/null || exit 13
  complete -r snapport; unset -f "$fn"
  BASH_COMPLETION_USER_DIR=$2 __load_completion snapport || exit 14
  complete -p snapport >/dev/null || exit 15
  COMP_WORDS=(snapport di); COMP_CWORD=1; COMP_LINE="snapport di"; COMP_POINT=${#COMP_LINE}
  "$fn" snapport di snapport
  echo "reply: ${COMPREPLY[*]}"
' bash "$comp" "$prefix/share/bash-completion" 2>&1)
rc=$?
case $rc in
  0) ;;
  10) fail "cannot source /usr/share/bash-completion/bash_completion: $out" ;;
  11) fail "sourcing $comp under bash-completion failed: $out" ;;
  12) fail "after sourcing $comp, 'complete -p snapport' names nothing: $out" ;;
  13) fail "'complete -p snapport' names no defined function: $out" ;;
  14|15) fail "bash-completion's loader did not load $comp for 'snapport': $out" ;;
  *) fail "bash exited $rc checking $comp: $out" ;;
esac
grep -q '^spec: complete -F _snapport snapport$' <<<"$out" ||
  fail "'complete -p snapport' is not 'complete -F _snapport snapport': $out"
grep -q '^reply: disk$' <<<"$out" || fail "'snapport di<TAB>' did not complete to 'disk': $out"

echo "ok: $bin ($version), $man, $comp"
