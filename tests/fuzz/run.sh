#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each under libFuzzer
# with ASan+UBSan, from a copy of its seed corpus. Inputs that crash land in
# tests/data/bad/ as TARGET-crash-<sha1> (the replay in CTest then runs them
# for ever after); the figures of each run are printed at the end, for
# FUZZING.md.
# Usage: bash tests/fuzz/run.sh SECONDS [TARGET ...]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
secs="${1:?usage: run.sh SECONDS [TARGET ...]}"
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(disk vhd_meta vmdk_stream ovf xva_xml manifest xlcfg archive s3_xml)
fi
build="$root/build-fuzz"
# Two run.sh may share the machine (half the targets each): the build tree
# is one, so its configure and build run under a lock, one at a time.
mkdir -p "$build"
(
  flock 9
  CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSNAPPORT_FUZZ=ON -DSNAPPORT_SANITIZE=ON >/dev/null
  cmake --build "$build" -j"$(nproc)" --target "${targets[@]/#/fuzz_}" >/dev/null
) 9>"$build/.build.lock"
mkdir -p "$root/tests/data/bad"
summary=()
for t in "${targets[@]}"; do
  work="$build/corpus-$t"
  mkdir -p "$work"
  cp -n "$root/tests/fuzz/corpus/$t/"* "$work/" 2>/dev/null || true
  log="$build/fuzz-$t.log"
  echo "fuzz: $t for ${secs}s (log $log)"
  set +e
  ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS="suppressions=$root/tests/fuzz/lsan.supp" UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$build/tests/fuzz/fuzz_$t" "$work" -max_total_time="$secs" -timeout=20 -rss_limit_mb=1024 \
    -artifact_prefix="$root/tests/data/bad/$t-" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  files=$(ls "$work" | wc -l)
  status=$([ $rc -eq 0 ] && echo "no crash" || echo "FOUND (exit $rc, see $log)")
  summary+=("$t: ${secs}s, $execs executions, corpus $files files, $status")
done
printf '%s\n' "${summary[@]}"
