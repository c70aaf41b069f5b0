"""Writes quantize_params.json: scales and zero points computed by onnxruntime's quantizer.

The Rust tests (model-tools/src/quantize/params.rs, weights.rs) check that
`model_tools::quantize` computes the very same values. Floats are stored as their bit
patterns (float32 as uint32, float16 as uint16) so that the comparison is exact.

    .venv/bin/python model-tools/tests/reference/quantize_params.py
"""

import json
import os

import numpy as np
import onnxruntime
from onnx import TensorProto
from onnxruntime.quantization.quant_utils import (
    compute_scale_zp,
    get_qmin_qmax_for_qType,
    quantize_data,
)

QTYPES = {"u8": TensorProto.UINT8, "s8": TensorProto.INT8}
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quantize_params.json")


def f32_bits(x) -> int:
    return int(np.asarray(x, dtype=np.float32).reshape(()).view(np.uint32))


def f16_bits(x) -> int:
    return int(np.asarray(x, dtype=np.float16).reshape(()).view(np.uint16))


def ranges(rng: np.random.Generator, dtype) -> list[tuple]:
    fixed = [
        (0.0, 0.0),
        (-1.0, 1.0),
        (-1.0, 3.0),
        (0.5, 2.0),
        (-7.0, -1.0),
        (-0.001, 1000.0),
        (-1e-30, 1e-30),
        (-1e-40, 0.0),
        (0.0, 6.0),
        (-128.0, 127.0),
        (-3.4e38, 3.4e38),
        (-1e-6, 2e-6),
    ]
    if dtype == np.float16:
        fixed = [(a, b) for a, b in fixed if abs(a) < 6e4 and abs(b) < 6e4]
        fixed += [(-1e-5, 1e-5), (0.0, 6e-8), (-3e-7, 2e-7)]
    random = []
    for _ in range(20):
        scale = 10.0 ** rng.uniform(-4, 3)
        a, b = sorted(rng.normal(0.3, 1.0, 2) * scale)
        random.append((a, b))
    return fixed + random


def scale_zp_cases(rng, dtype, bits) -> list[dict]:
    cases = []
    for i, (rmin, rmax) in enumerate(ranges(rng, dtype)):
        widths = (None, 0.0001) if i < 8 else (None,)
        for qname, qtype in QTYPES.items():
            for symmetric in (False, True):
                for reduce_range in (False, True):
                    for min_real_range in widths:
                        qmin, qmax = get_qmin_qmax_for_qType(qtype, reduce_range, symmetric)
                        lo = np.array(rmin, dtype=dtype)
                        hi = np.array(rmax, dtype=dtype)
                        zp, scale = compute_scale_zp(lo, hi, qmin, qmax, symmetric, min_real_range)
                        cases.append(
                            {
                                "rmin_bits": bits(lo),
                                "rmax_bits": bits(hi),
                                "qtype": qname,
                                "symmetric": symmetric,
                                "reduce_range": reduce_range,
                                "qmin": int(qmin),
                                "qmax": int(qmax),
                                "min_real_range_bits": None if min_real_range is None else bits(min_real_range),
                                "scale_bits": bits(scale),
                                "zero_point": int(zp),
                            }
                        )
    return cases


def quantize_data_cases(rng) -> list[dict]:
    cases = []
    for n in range(6):
        data = (rng.normal(0.2 * (n % 3), 1.0, 16) * 10.0 ** rng.uniform(-3, 2)).astype(np.float32)
        if n == 0:
            data[:] = 0.0
        for qname, qtype in QTYPES.items():
            for symmetric in (False, True):
                for reduce_range in (False, True):
                    zp, scale, q = quantize_data(data, qtype, symmetric, reduce_range)
                    cases.append(
                        {
                            "data_bits": [f32_bits(x) for x in data],
                            "qtype": qname,
                            "symmetric": symmetric,
                            "reduce_range": reduce_range,
                            "scale_bits": f32_bits(scale),
                            "zero_point": int(zp),
                            "quantized": [int(v) for v in q],
                        }
                    )
    return cases


def main() -> None:
    rng = np.random.default_rng(14)
    doc = {
        "generator": "model-tools/tests/reference/quantize_params.py",
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "scale_zp_f32": scale_zp_cases(rng, np.float32, f32_bits),
        "scale_zp_f16": scale_zp_cases(rng, np.float16, f16_bits),
        "quantize_data": quantize_data_cases(rng),
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(
        f"wrote {OUT}: {len(doc['scale_zp_f32'])} float32 and {len(doc['scale_zp_f16'])} float16 "
        f"ranges, {len(doc['quantize_data'])} arrays"
    )


if __name__ == "__main__":
    main()
