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

# fmt and clippy come with rustup's default profile; a minimal toolchain lacks them.
for component in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^$component"; then
    echo "==> rustup component add $component"
    rustup component add "$component"
  fi
done

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo fmt --check (functions/)"
cargo fmt --manifest-path functions/Cargo.toml --all -- --check
echo "==> cargo clippy (functions/, wasm32-wasip1)"
cargo clippy --manifest-path functions/Cargo.toml --target wasm32-wasip1 --all-targets --locked -- -D warnings
# Clippy, without a second build: `cargo clippy` is a `cargo check` whose workspace crates go
# through clippy-driver (RUSTC_WORKSPACE_WRAPPER). Wrapping the test build the same way lints
# the same code (every target, -D warnings) while the dependencies are compiled once, not once
# checked and once built.
clippy_driver="$(rustc --print sysroot)/bin/clippy-driver"
[ -x "$clippy_driver" ] || { echo "clippy-driver is not at $clippy_driver; is the clippy component installed (rustup component add clippy)?" >&2; exit 1; }
export RUSTC_WORKSPACE_WRAPPER="$clippy_driver"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
echo "==> cargo clippy + test build: cargo test --workspace --all-targets --no-run (clippy -D warnings)"
cargo test --workspace --all-targets --locked --no-run
echo "==> cargo test"
cargo test --workspace --locked
# The agent without edge functions (README, "Shipped binary"): its function routes answer 501.
echo "==> cargo test -p edge-agent --no-default-features --features ort --test without_functions"
cargo test -p edge-agent --no-default-features --features ort --locked --test without_functions
