#!/usr/bin/env bash
# The main job on the embedded default (tract, SQLite, no Python, no external services):
# start the edge agent with the digits model, classify a test digit over HTTP with curl
# (KServe Open Inference Protocol v2), print the answer, and stop the agent.
#   EDGE_AGENT_DEMO_PORT   port to listen on (default 18080)
set -euo pipefail
cd "$(dirname "$0")/.."
NEED_CURL=1 source scripts/debian-deps.sh

port="${EDGE_AGENT_DEMO_PORT:-18080}"
url="http://127.0.0.1:$port"
# The `quick` profile (Cargo.toml): unoptimised, no debug info; it builds in a fraction of the
# time of the test build. For real traffic: cargo build --release -p edge-agent.
echo "==> building edge-agent (cargo build --profile quick -p edge-agent)"
cargo build --quiet --locked --profile quick -p edge-agent
agent="${CARGO_TARGET_DIR:-target}/quick/edge-agent"

work="$(mktemp -d)"
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# A Triton-style model repository with the digits MLP as version 1, and an admin token.
mkdir -p "$work/models/digits/1"
cp models/digits_mlp.onnx "$work/models/digits/1/model.onnx"
token="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
cat > "$work/agent.toml" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$work/data"
model_dir = "$work/models"
[[auth.tokens]]
name = "demo"
role = "admin"
sha256 = "$("$agent" hash-token "$token")"
TOML

echo "==> starting: edge-agent serve --config agent.toml (model dir: digits/1/model.onnx)"
RUST_LOG=warn "$agent" serve --config "$work/agent.toml" &
pid=$!
for _ in $(seq 1 100); do
    curl -sf "$url/v2/health/ready" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { echo "edge-agent exited; is port $port free? set EDGE_AGENT_DEMO_PORT" >&2; exit 1; }
    sleep 0.1
done

echo "==> GET /v2/models/digits"
curl -sf -H "Authorization: Bearer $token" "$url/v2/models/digits"
echo
echo "==> POST /v2/models/digits/infer with models/sample_request.json (a test digit)"
response="$(curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    --data @models/sample_request.json "$url/v2/models/digits/infer")"
echo "$response"
# The predicted class is the index of the largest probability.
echo "$response" | sed -E 's/.*"data":\[([^]]*)\].*/\1/' | tr ',' '\n' | awk '
    { if (NR == 1 || $1 > best) { best = $1; cls = NR - 1 } }
    END { printf "==> predicted digit %d with probability %.4f\n", cls, best }'
echo "==> expected: $(sed -E 's/.*"id": "([^"]*)".*/\1/' models/sample_request.json)"
