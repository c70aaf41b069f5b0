#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, clippy, and every test, with ONNX Runtime and
# the ONNX conformance cases set up first (see scripts/env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked
