"""Writes the ONNX backend node test cases to disk, in the layout of onnx's
`backend-test-tools generate-data`:

    <out>/<case>/model.onnx
    <out>/<case>/test_data_set_<i>/input_<j>.pb
    <out>/<case>/test_data_set_<i>/output_<j>.pb

plus <out>/index.json, listing each case with its tolerances, and marking cases whose inputs or
outputs are sequences, maps or optionals (the platform serves tensors only).

Recent onnx wheels ship the case definitions but not the generated data; this recreates it.
Usage: python generate.py OUT_DIR   (skips work if OUT_DIR/index.json matches this onnx version)
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from onnx.backend.test.case.node import collect_testcases


def is_tensor(vi: onnx.ValueInfoProto) -> bool:
    return vi.type.HasField("tensor_type")


def write_tensor(path: str, value, name: str) -> None:
    proto = value if isinstance(value, TensorProto) else numpy_helper.from_array(np.asarray(value), name)
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())


def main() -> None:
    out = sys.argv[1]
    index_path = os.path.join(out, "index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            if json.load(f).get("onnx_version") == onnx.__version__:
                print(f"conformance cases for onnx {onnx.__version__} already in {out}")
                return
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    cases = []
    for case in collect_testcases():
        entry = {"name": case.name, "rtol": case.rtol, "atol": case.atol}
        graph = case.model.graph
        if not all(is_tensor(v) for v in list(graph.input) + list(graph.output)):
            entry["skip"] = "sequence, map or optional input or output"
            cases.append(entry)
            continue
        case_dir = os.path.join(out, case.name)
        os.makedirs(case_dir)
        with open(os.path.join(case_dir, "model.onnx"), "wb") as f:
            f.write(case.model.SerializeToString())
        for i, (inputs, outputs) in enumerate(case.data_sets):
            data_dir = os.path.join(case_dir, f"test_data_set_{i}")
            os.makedirs(data_dir)
            for j, value in enumerate(inputs):
                write_tensor(os.path.join(data_dir, f"input_{j}.pb"), value, graph.input[j].name)
            for j, value in enumerate(outputs):
                write_tensor(os.path.join(data_dir, f"output_{j}.pb"), value, graph.output[j].name)
        cases.append(entry)
    with open(index_path, "w") as f:
        json.dump({"onnx_version": onnx.__version__, "cases": cases}, f, indent=1)
    print(f"wrote {len(cases)} conformance cases for onnx {onnx.__version__} to {out}")


if __name__ == "__main__":
    main()
