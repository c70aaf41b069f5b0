#!/usr/bin/env bash
# Runs the criterion benches with ONNX Runtime set up (see scripts/env.sh).
#   scripts/bench.sh              every bench
#   scripts/bench.sh inference    one bench target
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
if [ $# -gt 0 ]; then
    cargo bench -p platform-benches --bench "$1" -- "${@:2}"
else
    cargo bench -p platform-benches
fi
