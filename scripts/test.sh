#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, clippy, and every test, with ONNX Runtime and
# the ONNX conformance cases set up first (see scripts/env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

# The edge-function tests build the guests in functions/ for wasm32-wasip1; in CI they fail
# (rather than skip) without the target, so install it here.
if ! rustup target list --installed | grep -qx wasm32-wasip1; then
  echo "==> rustup target add wasm32-wasip1"
  rustup target add wasm32-wasip1
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo fmt --check (functions/)"
cargo fmt --manifest-path functions/Cargo.toml --all -- --check
echo "==> cargo clippy (functions/, wasm32-wasip1)"
cargo clippy --manifest-path functions/Cargo.toml --target wasm32-wasip1 --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked
