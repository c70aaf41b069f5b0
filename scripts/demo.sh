#!/usr/bin/env bash
# The main job on the embedded default (tract, no Python, no services): classify the digits test
# set with the committed MLP and print accuracy and latency.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/debian-deps.sh
cargo run --quiet --locked -p model-tools -- eval models/digits_mlp.onnx --data models/digits.npz "$@"
