#!/usr/bin/env bash
# The README's second command: installs, builds and runs the whole test
# suite (CTest). Exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ctest --test-dir build --output-on-failure -j"$(nproc)"
