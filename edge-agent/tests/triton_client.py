"""Drives a running edge agent with Triton's own Python HTTP client (tritonclient.http),
unchanged: health, metadata, JSON and binary inference, BYTES tensors.

Usage: python triton_client.py HOST:PORT TOKEN MODEL STRING_MODEL
Prints "ok" and exits 0 when every check passes.
"""

import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def main() -> None:
    url, token, model, string_model = sys.argv[1:5]
    auth = {"Authorization": f"Bearer {token}"}
    # tritonclient writes Inference-Header-Content-Length into the dict it is given, so each
    # call gets a fresh one.
    headers = dict(auth)
    client = httpclient.InferenceServerClient(url=url)

    assert client.is_server_live(headers=headers)
    assert client.is_server_ready(headers=headers)
    assert client.is_model_ready(model, headers=headers)
    meta = client.get_server_metadata(headers=headers)
    assert meta["name"] == "edge-agent", meta
    model_meta = client.get_model_metadata(model, headers=headers)
    assert model_meta["inputs"][0]["shape"] == [-1, 64], model_meta

    rng = np.random.default_rng(0)
    x = rng.random((4, 64), dtype=np.float32)
    results = {}
    for binary_in in (False, True):
        for binary_out in (False, True):
            inp = httpclient.InferInput("input", list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=binary_in)
            out = httpclient.InferRequestedOutput("probabilities", binary_data=binary_out)
            result = client.infer(model, [inp], outputs=[out], headers=dict(auth), request_id="triton-1")
            probs = result.as_numpy("probabilities")
            assert probs.shape == (4, 10), probs.shape
            assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4), probs.sum(axis=1)
            assert result.get_response()["id"] == "triton-1"
            results[(binary_in, binary_out)] = probs
    first = results[(False, False)]
    for key, probs in results.items():
        assert np.allclose(probs, first, atol=1e-6), key

    words = np.array([["héllo", "", "edge"], ["a", "b", "c"]], dtype=np.object_)
    for binary in (False, True):
        inp = httpclient.InferInput("x", [2, 3], "BYTES")
        inp.set_data_from_numpy(words, binary_data=binary)
        out = httpclient.InferRequestedOutput("y", binary_data=binary)
        result = client.infer(string_model, [inp], outputs=[out], headers=dict(auth))
        got = result.as_numpy("y")
        decoded = [[v.decode() if isinstance(v, bytes) else v for v in row] for row in got]
        assert decoded == words.tolist(), decoded

    try:
        client.infer("no-such-model", [inp], headers=dict(auth))
        raise AssertionError("an unknown model must fail")
    except InferenceServerException as e:
        assert "not found" in str(e), e
    print("ok")


if __name__ == "__main__":
    main()
