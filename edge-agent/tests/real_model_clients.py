"""Drives a running edge agent that serves the real-model test set (third-party models from
PyPI wheels, see tests/real_models/generate.py) with both official Python v2 clients, unchanged:
Triton's tritonclient.http and KServe's InferenceRESTClient. For every model and every data set
each client sends the inputs and asks for the outputs as binary data and as JSON data (and the
two mixes, where the tensors are small) and compares every output with python onnxruntime's reference
(`output_<j>.pb`) within the model's rtol/atol. `GET /v1/models/<name>` must say the model is
ready and which engine serves it.

Usage: python real_model_clients.py HOST:PORT TOKEN CASES_DIR [MODEL...]
Prints one line per model, then "ok" and exits 0 when every check passes; exits 1 after the
per-model lines when any check fails.
"""

import asyncio
import glob
import json
import os
import sys
import traceback
import urllib.request

import numpy as np
import tritonclient.http as httpclient
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from onnx import load_tensor, numpy_helper

# Up to this many elements in a data set's inputs and reference outputs, every mix of binary
# and JSON data (inputs x outputs) is sent; above it (the detection and recognition models move
# megabytes of floats) only all-binary and all-JSON, to keep the test quick.
MIXED_MAX_ELEMENTS = 50_000

V2_DATATYPES = {
    np.dtype(np.bool_): "BOOL",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.uint16): "UINT16",
    np.dtype(np.uint32): "UINT32",
    np.dtype(np.uint64): "UINT64",
    np.dtype(np.int8): "INT8",
    np.dtype(np.int16): "INT16",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
    np.dtype(np.float16): "FP16",
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
}


def v2_datatype(array: np.ndarray) -> str:
    try:
        return V2_DATATYPES[array.dtype]
    except KeyError:
        raise AssertionError(f"no v2 datatype for numpy {array.dtype}") from None


def read_tensor(path: str) -> np.ndarray:
    return numpy_helper.to_array(load_tensor(path))


def data_sets(cases: str, model: dict) -> list:
    """(name, {input: array}, {output: array}) of each test_data_set_<i> of a model."""
    sets = []
    folders = sorted(glob.glob(os.path.join(cases, model["dir"], "test_data_set_*")))
    assert folders, f"{model['name']}: no test_data_set_* under {model['dir']}"
    for folder in folders:
        inputs = {n: read_tensor(os.path.join(folder, f"input_{j}.pb")) for j, n in enumerate(model["inputs"])}
        outputs = {n: read_tensor(os.path.join(folder, f"output_{j}.pb")) for j, n in enumerate(model["outputs"])}
        sets.append((os.path.basename(folder), inputs, outputs))
    return sets


def compare(what: str, got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> float:
    """The max abs error of `got` against `want`; raises unless they match within tolerance."""
    assert got is not None, f"{what}: missing from the response"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, expected {want.dtype}"
    if want.size == 0:
        return 0.0
    err = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
    assert np.allclose(got, want, rtol=rtol, atol=atol), f"{what}: max abs error {err:.3g} beyond rtol {rtol}, atol {atol}"
    return err


def mode_name(binary_in: bool, binary_out: bool) -> str:
    """`bin>json`: binary inputs, JSON outputs."""
    return f"{'bin' if binary_in else 'json'}>{'bin' if binary_out else 'json'}"


def modes(inputs: dict, outputs: dict) -> list:
    """The (binary in, binary out) pairs a data set is sent with."""
    elements = sum(a.size for a in inputs.values()) + sum(a.size for a in outputs.values())
    if elements <= MIXED_MAX_ELEMENTS:
        return [(True, True), (False, False), (True, False), (False, True)]
    return [(True, True), (False, False)]


def model_info(url: str, token: str, name: str) -> str:
    """The engine serving `name`, from GET /v1/models/<name>; raises unless it is ready."""
    request = urllib.request.Request(f"http://{url}/v1/models/{name}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as r:
        summary = json.load(r)
    active = summary["active_version"]
    version = next(v for v in summary["versions"] if v["version"] == active)
    assert version["ready"], f"{name}: not ready: {summary}"
    engine = version["backend"]
    assert engine in ("tract", "ort"), f"{name}: backend {engine!r}: {summary}"
    if version.get("fallback"):
        engine += f" (fallback from {version['fallback']['from']})"
    return engine


def make_inputs(input_class, inputs: dict, binary: bool) -> list:
    """The inputs as `input_class` objects (both clients' `InferInput` take the same calls)."""
    made = []
    for n, array in inputs.items():
        inp = input_class(n, list(array.shape), v2_datatype(array))
        inp.set_data_from_numpy(array, binary_data=binary)
        made.append(inp)
    return made


def check_triton(client, token: str, model: dict, sets: list) -> tuple:
    """Infers every data set with tritonclient.http; returns (max error, modes used)."""
    name = model["name"]
    assert client.is_model_ready(name, headers={"Authorization": f"Bearer {token}"}), f"{name}: not ready"
    worst, used = 0.0, set()
    for set_name, inputs, outputs in sets:
        for binary_in, binary_out in modes(inputs, outputs):
            used.add(mode_name(binary_in, binary_out))
            infer_inputs = make_inputs(httpclient.InferInput, inputs, binary_in)
            requested = [httpclient.InferRequestedOutput(n, binary_data=binary_out) for n in outputs]
            # tritonclient writes Inference-Header-Content-Length into the dict it is given.
            result = client.infer(name, infer_inputs, outputs=requested, headers={"Authorization": f"Bearer {token}"})
            for n, want in outputs.items():
                what = f"triton {set_name} {mode_name(binary_in, binary_out)} `{n}`"
                worst = max(worst, compare(what, result.as_numpy(n), want, model["rtol"], model["atol"]))
    return worst, used


async def check_kserve(client, base: str, token: str, model: dict, sets: list) -> tuple:
    """Infers every data set with KServe's InferenceRESTClient; returns (max error, modes used)."""
    name = model["name"]
    auth = {"Authorization": f"Bearer {token}"}
    assert await client.is_model_ready(base, name, headers=dict(auth)), f"{name}: not ready"
    worst, used = 0.0, set()
    for set_name, inputs, outputs in sets:
        for binary_in, binary_out in modes(inputs, outputs):
            used.add(mode_name(binary_in, binary_out))
            infer_inputs = make_inputs(InferInput, inputs, binary_in)
            requested = [RequestedOutput(n, {"binary_data": binary_out}) for n in outputs]
            request = InferRequest(name, infer_inputs, request_id=f"{name}-{set_name}", request_outputs=requested)
            result = await client.infer(base, request, model_name=name, headers=dict(auth))
            assert result.model_name == name, result.model_name
            got = {o.name: o.as_numpy() for o in result.outputs}
            for n, want in outputs.items():
                what = f"kserve {set_name} {mode_name(binary_in, binary_out)} `{n}`"
                worst = max(worst, compare(what, got.get(n), want, model["rtol"], model["atol"]))
    return worst, used


async def run(url: str, token: str, cases: str, only: list) -> bool:
    with open(os.path.join(cases, "index.json")) as f:
        models = json.load(f)["models"]
    if only:
        models = [m for m in models if m["name"] in only]
        assert len(models) == len(only), f"unknown models in {only}"
    triton = httpclient.InferenceServerClient(url=url, connection_timeout=120, network_timeout=120)
    kserve = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=120))
    base = f"http://{url}"
    all_ok = True
    try:
        for model in models:
            name = model["name"]
            parts = []
            try:
                sets = data_sets(cases, model)
                engine = model_info(url, token, name)
                parts.append(f"served by {engine}")
            except Exception as e:  # noqa: BLE001 - reported per model
                print(f"{name}: FAILED before inference: {e}", flush=True)
                all_ok = False
                continue
            for label in ("triton", "kserve"):
                try:
                    if label == "triton":
                        err, used = check_triton(triton, token, model, sets)
                    else:
                        err, used = await check_kserve(kserve, base, token, model, sets)
                    parts.append(f"{label} ok (max err {err:.2g}; {' '.join(sorted(used))})")
                except Exception as e:  # noqa: BLE001 - reported per model
                    all_ok = False
                    text = str(e).strip()
                    detail = text.splitlines()[0][:400] if text else repr(e)
                    parts.append(f"{label} FAILED ({type(e).__name__}: {detail})")
                    traceback.print_exc(file=sys.stderr)
            print(f"{name}: " + ", ".join(parts), flush=True)
    finally:
        triton.close()
        await kserve.close()
    return all_ok


def main() -> None:
    url, token, cases = sys.argv[1:4]
    if not asyncio.run(run(url, token, cases, sys.argv[4:])):
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
