#!/usr/bin/env bash
# The README's first command: installs and builds, then runs the main job on
# the sample VM: its disk chain built from samples/, inspected, checked and
# flattened.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export SNAPPORT="$PWD/build/snapport"
bash samples/demo.sh "$@"
