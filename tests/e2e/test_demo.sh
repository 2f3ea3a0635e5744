#!/usr/bin/env bash
# The README's first command runs samples/demo.sh: run it here too, so a
# change that breaks the tour (a JSON field it reads, a message it shows)
# fails the suite instead of the first user.
set -euo pipefail
rm -rf "$SP_TMP"
mkdir -p "$SP_TMP"
out=$(bash "$SP_TESTS/../samples/demo.sh" "$SP_TMP/sample-out" 2>&1) || {
    echo "$out" | tail -20
    echo "FAIL: samples/demo.sh failed" >&2
    exit 1
}
echo "$out" | tail -1 | grep -q "demo.sh: all steps passed" || { echo "FAIL: demo.sh did not finish: $(echo "$out" | tail -3)" >&2; exit 1; }
echo "test_demo: the tour passed"
