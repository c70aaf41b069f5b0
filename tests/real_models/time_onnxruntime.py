"""Times python onnxruntime's `InferenceSession.run` for `ort-overhead` (tests/src/bin/ort-overhead.rs).

A coprocess: each line on stdin is a JSON request, each answer one JSON line on stdout.

    {"dir": CASE_DIR, "inputs": [NAME, ...], "threads": N, "calls": K}
        -> {"seconds_per_call": S}     (K calls of session.run on test_data_set_0's inputs)

A session is created once per (dir, threads), with intra_op_num_threads = N,
inter_op_num_threads = 1 and every other option at onnxruntime's default (graph optimization
ORT_ENABLE_ALL, CPU arena and memory pattern on, spinning on), and warmed with 10 calls.
"""

import json
import os
import sys
import time

import onnx
import onnx.numpy_helper
import onnxruntime as ort

sessions = {}


def session_for(case_dir, names, threads):
    key = (case_dir, threads)
    if key not in sessions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            os.path.join(case_dir, "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        feeds = {}
        for j, name in enumerate(names):
            proto = onnx.TensorProto()
            with open(os.path.join(case_dir, "test_data_set_0", f"input_{j}.pb"), "rb") as f:
                proto.ParseFromString(f.read())
            feeds[name] = onnx.numpy_helper.to_array(proto)
        for _ in range(10):
            session.run(None, feeds)
        sessions[key] = (session, feeds)
    return sessions[key]


def main():
    for line in sys.stdin:
        request = json.loads(line)
        session, feeds = session_for(request["dir"], request["inputs"], request["threads"])
        calls = request["calls"]
        start = time.perf_counter()
        for _ in range(calls):
            session.run(None, feeds)
        elapsed = time.perf_counter() - start
        print(json.dumps({"seconds_per_call": elapsed / calls}), flush=True)


if __name__ == "__main__":
    main()
