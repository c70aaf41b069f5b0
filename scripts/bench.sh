#!/usr/bin/env bash
# Runs the benchmarks with ONNX Runtime set up (see scripts/env.sh).
#   scripts/bench.sh                  every criterion bench
#   scripts/bench.sh inference [ARGS] one criterion bench target, ARGS to criterion
#   scripts/bench.sh functions [ARGS] edge functions (builds functions/ first)
#   scripts/bench.sh --load [ARGS]    the OIP v2 load generator (benches/src/bin/oip-load.rs)
#   scripts/bench.sh --fn-load [ARGS] functions vs their /v2 twin (benches/src/bin/fn-load.rs)
# The load generators take --server-cpus LIST --client-cpus LIST --log --warm-up S and print
# their conditions (build, cores, logging, warm-up, load average) with the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# The functions bench calls the guests of functions/.
if [ $# -eq 0 ] || [ "${1:-}" = "functions" ] || [ "${1:-}" = "--fn-load" ]; then
    scripts/build-functions.sh >/dev/null
fi
if [ "${1:-}" = "--load" ]; then
    cargo run --release --locked -p platform-benches --bin oip-load -- "${@:2}"
elif [ "${1:-}" = "--fn-load" ]; then
    cargo run --release --locked -p platform-benches --bin fn-load -- "${@:2}"
elif [ $# -gt 0 ]; then
    cargo bench --locked -p platform-benches --bench "$1" -- "${@:2}"
else
    cargo bench --locked -p platform-benches
fi
