"""Drives a running edge agent with KServe's own Python v2 REST client
(kserve.InferenceRESTClient), unchanged: health, model readiness, JSON and binary inference,
BYTES tensors. KServe's InferRequest puts `model_name` in the infer body; the agent accepts it
when it matches the path, refuses it (400) when it contradicts the path, and serves a body with
an unknown top-level field. InferenceRESTClient has no model metadata call.

Usage: python kserve_client.py HOST:PORT TOKEN MODEL STRING_MODEL
Prints "ok" and exits 0 when every check passes.
"""

import asyncio
import sys

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput


def expect_status(error: httpx.HTTPStatusError, status: int, text: str) -> None:
    assert error.response.status_code == status, (error.response.status_code, str(error))
    assert text in str(error), str(error)


async def check(url: str, token: str, model: str, string_model: str) -> None:
    base = f"http://{url}"
    auth = {"Authorization": f"Bearer {token}"}
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=60))
    try:
        assert await client.is_server_live(base, headers=auth)
        assert await client.is_server_ready(base, headers=auth)
        assert await client.is_model_ready(base, model, headers=auth)
        assert await client.is_model_ready(base, string_model, headers=auth)
        assert not await client.is_model_ready(base, "no-such-model", headers=auth)

        rng = np.random.default_rng(0)
        x = rng.random((4, 64), dtype=np.float32)
        results = {}
        for binary_in in (False, True):
            for binary_out in (False, True):
                inp = InferInput("input", list(x.shape), "FP32")
                inp.set_data_from_numpy(x, binary_data=binary_in)
                out = RequestedOutput("probabilities", {"binary_data": binary_out})
                request = InferRequest(model, [inp], request_id="kserve-1", request_outputs=[out])
                result = await client.infer(base, request, model_name=model, headers=dict(auth))
                assert result.model_name == model, result.model_name
                assert result.id == "kserve-1", result.id
                probs = result.outputs[0].as_numpy()
                assert result.outputs[0].name == "probabilities"
                assert probs.shape == (4, 10), probs.shape
                assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4), probs.sum(axis=1)
                results[(binary_in, binary_out)] = probs
        first = results[(False, False)]
        for key, probs in results.items():
            assert np.allclose(probs, first, atol=1e-6), key

        words = np.array([["héllo", "", "edge"], ["a", "b", "c"]], dtype=np.object_)
        for binary in (False, True):
            inp = InferInput("x", [2, 3], "BYTES")
            inp.set_data_from_numpy(words, binary_data=binary)
            out = RequestedOutput("y", {"binary_data": binary})
            request = InferRequest(string_model, [inp], request_outputs=[out])
            result = await client.infer(base, request, model_name=string_model, headers=dict(auth))
            got = result.outputs[0].as_numpy()
            decoded = [[v.decode() if isinstance(v, bytes) else v for v in row] for row in got]
            assert decoded == words.tolist(), decoded

        # The body's model_name contradicts the path: 400, naming both.
        inp = InferInput("input", [1, 64], "FP32", data=x[:1].flatten().tolist())
        try:
            await client.infer(base, InferRequest(string_model, [inp]), model_name=model, headers=dict(auth))
            raise AssertionError("a body naming another model must fail")
        except httpx.HTTPStatusError as e:
            expect_status(e, 400, f"model_name `{string_model}` contradicts the model in the path, `{model}`")

        # A plain dict body (the client sends it as JSON) with a field the agent does not know,
        # and a model_version that matches the served one.
        body = {
            "model_name": model,
            "model_version": "1",
            "x-trace": {"span": "abc"},
            "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": x[:1].tolist()}],
        }
        result = await client.infer(base, body, model_name=model, headers=dict(auth))
        probs = next(o for o in result.outputs if o.name == "probabilities").as_numpy()
        assert np.allclose(probs, first[:1], atol=1e-6), (probs, first[:1])

        try:
            await client.infer(base, InferRequest("no-such-model", [inp]), model_name="no-such-model", headers=dict(auth))
            raise AssertionError("an unknown model must fail")
        except httpx.HTTPStatusError as e:
            expect_status(e, 404, "not found")
    finally:
        await client.close()


def main() -> None:
    url, token, model, string_model = sys.argv[1:5]
    asyncio.run(check(url, token, model, string_model))
    print("ok")


if __name__ == "__main__":
    main()
