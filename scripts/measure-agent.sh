#!/usr/bin/env bash
# The shipped agent, measured (README, "Shipped binary"): builds edge-agent with the `dist`
# profile in each feature configuration, then prints one table with, per configuration, the
# stripped size, the build time, the crates it links (`cargo tree -e normal`), and the agent's
# resident memory (VmRSS from /proc/PID/status) idle with the digits MLP loaded and after
# 10,000 `POST /v2/models/digits/infer` (plus the peak, VmHWM), on each engine it has.
#
#   scripts/measure-agent.sh                 # build every configuration, then measure
#   MEASURE_CONFIGS="full ort-only" scripts/measure-agent.sh
#   MEASURE_REQUESTS=2000 scripts/measure-agent.sh
#   MEASURE_SKIP_BUILD=1 scripts/measure-agent.sh   # reuse the binaries of an earlier run
#
# Builds go to $CARGO_TARGET_DIR (default target/); the binaries are copied to
# $CARGO_TARGET_DIR/measure-agent/edge-agent-<config>. The first configuration's build time is
# a clean build only when that target dir has no `dist` build yet. Requests come from one
# python3 client on one keep-alive connection (the agent logs at `warn`), after a 200-request
# warm-up that is not counted in "idle". ORT rows need ONNX Runtime: scripts/env.sh is
# sourced for ORT_DYLIB_PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
source scripts/env.sh >/dev/null

target="${CARGO_TARGET_DIR:-$root/target}"
out="$target/measure-agent"
mkdir -p "$out"
configs="${MEASURE_CONFIGS:-full tract-only ort-only no-functions ort-functions}"
requests="${MEASURE_REQUESTS:-10000}"
port="${MEASURE_PORT:-18181}"

features_of() {
    case "$1" in
        full) echo "" ;;
        tract-only) echo "--no-default-features --features tract" ;;
        ort-only) echo "--no-default-features --features ort" ;;
        no-functions) echo "--no-default-features --features tract,ort" ;;
        ort-functions) echo "--no-default-features --features ort,functions" ;;
        *) echo "unknown configuration $1 (full, tract-only, ort-only, no-functions, ort-functions)" >&2; exit 2 ;;
    esac
}
engines_of() {
    case "$1" in
        tract-only) echo "tract" ;;
        ort-only|ort-functions) echo "ort" ;;
        *) echo "tract ort" ;;
    esac
}

declare -A build_secs
if [ -z "${MEASURE_SKIP_BUILD:-}" ]; then
    for c in $configs; do
        echo "==> cargo build --profile dist -p edge-agent $(features_of "$c")" >&2
        start=$(date +%s)
        # shellcheck disable=SC2046
        cargo build --quiet --locked --profile dist -p edge-agent --bin edge-agent $(features_of "$c")
        build_secs[$c]=$(($(date +%s) - start))
        cp "$target/dist/edge-agent" "$out/edge-agent-$c"
    done
fi

work="$(mktemp -d)"
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

kib() { awk -v k="$1" '/^'"$1"':/ { print $2 }' "/proc/$2/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# Starts `$1` serving digits_mlp from a model dir on engine `$2`; prints "idle after peak".
measure_rss() {
    local bin="$1" engine="$2" dir="$work/$2"
    rm -rf "$dir" && mkdir -p "$dir/models/digits/1"
    cp models/digits_mlp.onnx "$dir/models/digits/1/model.onnx"
    printf 'backend = "%s"\n' "$engine" >"$dir/models/digits/config.toml"
    cat >"$dir/agent.toml" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$dir/data"
model_dir = "$dir/models"
[auth]
dev_open = true
TOML
    RUST_LOG=warn "$bin" serve --config "$dir/agent.toml" >"$dir/log" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do
        curl -sf "http://127.0.0.1:$port/v2/models/digits/ready" >/dev/null 2>&1 && break
        kill -0 "$pid" 2>/dev/null || { echo "the agent exited:" >&2; cat "$dir/log" >&2; exit 1; }
        sleep 0.1
    done
    "$root/.venv/bin/python" - "$port" 200 <<'PY' >/dev/null
import http.client, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
body = open("models/sample_request.json", "rb").read()
c = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    c.request("POST", "/v2/models/digits/infer", body, {"Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    assert r.status == 200, (r.status, r.read())
PY
    sleep 1
    local idle; idle=$(kib VmRSS "$pid")
    "$root/.venv/bin/python" - "$port" "$requests" <<'PY' >/dev/null
import http.client, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
body = open("models/sample_request.json", "rb").read()
c = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    c.request("POST", "/v2/models/digits/infer", body, {"Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
    sleep 1
    local after peak; after=$(kib VmRSS "$pid"); peak=$(kib VmHWM "$pid")
    kill "$pid" && wait "$pid" 2>/dev/null || true
    pid=""
    echo "$(mib "$idle") $(mib "$after") $(mib "$peak")"
}

echo "load average at start: $(cat /proc/loadavg)"
echo "ONNX Runtime: ${ORT_DYLIB_PATH:-none}"
printf '\n| configuration | features | stripped MB | build s | crates | engine | RSS idle MiB | RSS after %s MiB | peak MiB |\n' "$requests"
echo '|---|---|---|---|---|---|---|---|---|'
for c in $configs; do
    bin="$out/edge-agent-$c"
    [ -x "$bin" ] || { echo "no $bin: build it first (without MEASURE_SKIP_BUILD)" >&2; exit 1; }
    size=$(awk -v b="$(stat -c %s "$bin")" 'BEGIN { printf "%.1f", b / 1e6 }')
    # shellcheck disable=SC2046
    crates=$(cargo tree --offline -p edge-agent -e normal --prefix none $(features_of "$c") | sort -u | wc -l)
    feats="$(features_of "$c")"
    for e in $(engines_of "$c"); do
        if [ "$e" = ort ] && [ -z "${ORT_DYLIB_PATH:-}" ]; then
            rss="- - -"
        else
            rss=$(measure_rss "$bin" "$e")
        fi
        read -r idle after peak <<<"$rss"
        printf '| %s | `%s` | %s | %s | %s | %s | %s | %s | %s |\n' "$c" "${feats:-default}" "$size" \
            "${build_secs[$c]:--}" "$crates" "$e" "$idle" "$after" "$peak"
    done
done
echo
echo "load average at end: $(cat /proc/loadavg)"
