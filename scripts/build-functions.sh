#!/usr/bin/env bash
# Builds the guest SDK and the example functions in functions/ for wasm32-wasip1 and lists the
# modules (functions/target/wasm32-wasip1/release/*.wasm), ready for
#   curl -X PUT -F wasm=@functions/target/wasm32-wasip1/release/hello.wasm \
#        -F manifest='{"timeout_ms": 1000}' -H "Authorization: Bearer $TOKEN" \
#        http://127.0.0.1:8080/v1/functions/hello
# Extra arguments go to cargo (e.g. `-p hello`).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup target list --installed | grep -qx wasm32-wasip1; then
  rustup target add wasm32-wasip1
fi
# Always into functions/target, whatever CARGO_TARGET_DIR says: the benches and the commands
# above read the modules from there.
cargo build --manifest-path functions/Cargo.toml --release --target wasm32-wasip1 --locked \
  --target-dir functions/target "$@"
ls -l functions/target/wasm32-wasip1/release/*.wasm
