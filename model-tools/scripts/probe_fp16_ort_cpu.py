"""Which ONNX operators ONNX Runtime's CPU execution provider runs in float16.

For every one-node case of the ONNX backend node tests (written by tests/conformance/generate.py,
`source scripts/env.sh` puts them in $ONNX_NODE_TESTS) that reads or writes float32, this makes the
float16 twin of the model (float32 inputs, outputs, initializers and tensor attributes become
float16), opens it in onnxruntime with only the CPU provider, runs it on the case's inputs, and
reads back the graph onnxruntime executes (optimized_model_filepath, optimizations off): when
onnxruntime had to insert Casts around the node, the CPU provider has no float16 kernel for it.

Each operator is then one of:
  native    some case ran on a float16 kernel;
  casted    every case ran, but only through Casts onnxruntime inserted (no float16 kernel);
  casted-or-fails  some cases ran that way, the others failed;
  fails     no case ran (session creation or the run failed).

Usage: .venv/bin/python model-tools/scripts/probe_fp16_ort_cpu.py "$ONNX_NODE_TESTS" [--json OUT]
"""

from __future__ import annotations

import collections
import glob
import json
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, numpy_helper


def to_fp16_tensor(t: TensorProto) -> None:
    if t.data_type == TensorProto.FLOAT:
        a = numpy_helper.to_array(t).astype(np.float16)
        t.CopyFrom(numpy_helper.from_array(a, t.name))


def fp16_twin(model: onnx.ModelProto) -> bool:
    """Converts in place; False when nothing is float32."""
    g = model.graph
    touched = False
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        tt = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and tt.elem_type == TensorProto.FLOAT:
            tt.elem_type = TensorProto.FLOAT16
            touched = True
    for t in g.initializer:
        if t.data_type == TensorProto.FLOAT:
            to_fp16_tensor(t)
            touched = True
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                to_fp16_tensor(a.t)
            if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.FLOAT16
    return touched


def load_inputs(case_dir: str, model: onnx.ModelProto) -> dict:
    feeds = {}
    names = [i.name for i in model.graph.input]
    for path in sorted(glob.glob(os.path.join(case_dir, "test_data_set_0", "input_*.pb"))):
        idx = int(os.path.basename(path)[len("input_") : -len(".pb")])
        t = TensorProto()
        with open(path, "rb") as f:
            t.ParseFromString(f.read())
        a = numpy_helper.to_array(t)
        if a.dtype == np.float32:
            a = a.astype(np.float16)
        feeds[names[idx]] = a
    return feeds


def probe(case_dir: str, op: str) -> tuple[str, str]:
    model = onnx.load(os.path.join(case_dir, "model.onnx"))
    if not fp16_twin(model):
        return "skip", "no float32"
    casts_before = sum(n.op_type == "Cast" for n in model.graph.node)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "m.onnx")
        opt = os.path.join(tmp, "opt.onnx")
        onnx.save(model, src)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.optimized_model_filepath = opt
        so.log_severity_level = 4
        try:
            sess = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001
            return "fails", "session: " + str(e).splitlines()[0][:160]
        try:
            sess.run(None, load_inputs(case_dir, model))
        except Exception as e:  # noqa: BLE001
            return "fails", "run: " + str(e).splitlines()[0][:160]
        executed = onnx.load(opt)
        casts_after = sum(n.op_type == "Cast" for n in executed.graph.node)
        if casts_after > casts_before:
            return "casted", f"{casts_after - casts_before} Casts inserted"
        return "native", ""


def main() -> None:
    cases_dir = sys.argv[1]
    out_json = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    per_op: dict[str, list] = collections.defaultdict(list)
    for model_path in sorted(glob.glob(os.path.join(cases_dir, "test_*", "model.onnx"))):
        case_dir = os.path.dirname(model_path)
        name = os.path.basename(case_dir)
        if "expanded" in name:
            continue
        model = onnx.load(model_path, load_external_data=False)
        nodes = model.graph.node
        if len(nodes) != 1 or nodes[0].domain not in ("", "ai.onnx"):
            continue
        op = nodes[0].op_type
        try:
            outcome, why = probe(case_dir, op)
        except Exception as e:  # noqa: BLE001
            outcome, why = "fails", "probe: " + str(e).splitlines()[0][:160]
        if outcome != "skip":
            per_op[op].append((name, outcome, why))
    summary = {}
    for op, results in sorted(per_op.items()):
        outcomes = {o for _, o, _ in results}
        if "native" in outcomes:
            verdict = "native"
        elif outcomes == {"casted"}:
            verdict = "casted"
        elif "casted" in outcomes:
            verdict = "casted-or-fails"
        else:
            verdict = "fails"
        summary[op] = {"verdict": verdict, "cases": results}
    by_verdict = collections.defaultdict(list)
    for op, s in summary.items():
        by_verdict[s["verdict"]].append(op)
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}")
    for verdict in ("native", "casted", "casted-or-fails", "fails"):
        print(f"{verdict} ({len(by_verdict[verdict])}): {', '.join(by_verdict[verdict])}")
    for op in by_verdict["fails"] + by_verdict["casted-or-fails"]:
        for name, outcome, why in summary[op]["cases"]:
            if outcome == "fails":
                print(f"  {op}: {name}: {why}")
                break
    if out_json:
        with open(out_json, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
