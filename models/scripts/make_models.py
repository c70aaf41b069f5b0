"""Writes the sample models and datasets in models/, reproducibly.

Run through `models/make.sh` (it creates the pinned venv in models/.venv). Every output is
deterministic for the pinned versions in requirements.txt; `MANIFEST.sha256`
lists each file's digest so that Rust tests can trust them without Python.

Outputs:
  digits.npz              scikit-learn digits, fixed split; x_* float32 in [0, 1], shape (n, 64); y_* int64
  digits_mlp.onnx         trained MLP 64-64-10, dynamic batch `N`, outputs `logits` and `probabilities`
  digits_cnn.onnx         small CNN (Conv, Relu, MaxPool stride 2, Flatten, Gemm), input (N, 1, 8, 8), random init
  digits_mlp_int8.onnx    onnxruntime dynamic quantization of the MLP (third-party fixture)
  digits_cnn_int8.onnx    onnxruntime static QDQ quantization of the CNN, calibrated on training digits
  reference/<model>.npz   python onnxruntime outputs on the first 32 test digits, for cross-checks
  sample_request.json     an OIP v2 infer request for the MLP with test digit 0, for the demo

Not made here, but listed in the manifest like every file in models/: digits_cnn_trained.onnx,
trained in Rust by `cargo run -p integration-tests --bin train-digits-cnn` (models/README.md).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

OPSET = 17
SEED = 20261126
OUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_BATCH = 32


def dataset() -> dict[str, np.ndarray]:
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y
    )
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def save_model(model: onnx.ModelProto, name: str) -> str:
    onnx.checker.check_model(model, full_check=True)
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return path


def mlp(data: dict[str, np.ndarray]) -> onnx.ModelProto:
    clf = MLPClassifier(
        hidden_layer_sizes=(64,),
        activation="relu",
        max_iter=400,
        random_state=0,
        alpha=1e-4,
    )
    clf.fit(data["x_train"], data["y_train"])
    acc = clf.score(data["x_test"], data["y_test"])
    print(f"digits MLP: scikit-learn test accuracy {acc:.4f}")
    if acc < 0.95:
        sys.exit(f"MLP accuracy {acc:.4f} is below 0.95")
    w1, w2 = (w.astype(np.float32) for w in clf.coefs_)
    b1, b2 = (b.astype(np.float32) for b in clf.intercepts_)
    inits = [
        numpy_helper.from_array(w1, "fc1.weight"),
        numpy_helper.from_array(b1, "fc1.bias"),
        numpy_helper.from_array(w2, "fc2.weight"),
        numpy_helper.from_array(b2, "fc2.bias"),
    ]
    nodes = [
        helper.make_node("Gemm", ["input", "fc1.weight", "fc1.bias"], ["fc1"], name="fc1"),
        helper.make_node("Relu", ["fc1"], ["relu1"], name="relu1"),
        helper.make_node("Gemm", ["relu1", "fc2.weight", "fc2.bias"], ["logits"], name="fc2"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "digits_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 64])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10]),
        ],
        inits,
    )
    return finish(graph, "digits MLP 64-64-10 trained with scikit-learn")


def cnn() -> onnx.ModelProto:
    rng = np.random.default_rng(SEED)

    def he(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    inits = [
        numpy_helper.from_array(he((8, 1, 3, 3), 9), "conv1.weight"),
        numpy_helper.from_array(np.zeros(8, np.float32), "conv1.bias"),
        numpy_helper.from_array(he((10, 128), 128), "fc.weight"),
        numpy_helper.from_array(np.zeros(10, np.float32), "fc.bias"),
    ]
    nodes = [
        helper.make_node(
            "Conv", ["input", "conv1.weight", "conv1.bias"], ["conv1"], name="conv1",
            kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1],
        ),
        helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"),
        helper.make_node(
            "MaxPool", ["relu1"], ["pool1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]
        ),
        helper.make_node("Flatten", ["pool1"], ["flat"], name="flatten", axis=1),
        helper.make_node(
            "Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "digits_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    return finish(graph, "digits CNN, random init")


def finish(graph: onnx.GraphProto, doc: str) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="edge-ml-models",
        producer_version="1",
        doc_string=doc,
    )
    model.ir_version = 8
    return model


class DigitsReader(CalibrationDataReader):
    """Feeds 256 training digits, one batch of 16 at a time, to the calibrator."""

    def __init__(self, x: np.ndarray, input_name: str, shape: tuple[int, ...]):
        batches = [x[i : i + 16] for i in range(0, 256, 16)]
        self.items = iter({input_name: b.reshape((-1, *shape))} for b in batches)

    def get_next(self):
        return next(self.items, None)


def quantize(data: dict[str, np.ndarray]) -> None:
    # The quantizer wants shape-inferred models; write them to a temp dir first.
    with tempfile.TemporaryDirectory() as tmp:
        mlp_in = os.path.join(OUT, "digits_mlp.onnx")
        quantize_dynamic(
            mlp_in, os.path.join(tmp, "mlp_int8.onnx"), weight_type=QuantType.QInt8
        )
        cnn_in = os.path.join(OUT, "digits_cnn.onnx")
        quantize_static(
            cnn_in,
            os.path.join(tmp, "cnn_int8.onnx"),
            DigitsReader(data["x_train"], "input", (1, 8, 8)),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=False,
        )
        for src, dst in [("mlp_int8.onnx", "digits_mlp_int8.onnx"), ("cnn_int8.onnx", "digits_cnn_int8.onnx")]:
            save_model(onnx.load(os.path.join(tmp, src)), dst)


def references(data: dict[str, np.ndarray]) -> None:
    os.makedirs(os.path.join(OUT, "reference"), exist_ok=True)
    flat = data["x_test"][:REFERENCE_BATCH]
    for name, x in [
        ("digits_mlp", flat),
        ("digits_mlp_int8", flat),
        ("digits_cnn", flat.reshape(-1, 1, 8, 8)),
        ("digits_cnn_int8", flat.reshape(-1, 1, 8, 8)),
    ]:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(
            os.path.join(OUT, f"{name}.onnx"), opts, providers=["CPUExecutionProvider"]
        )
        names = [o.name for o in sess.get_outputs()]
        outs = sess.run(names, {"input": x})
        arrays = {"input": x}
        arrays.update({f"output.{n}": o for n, o in zip(names, outs)})
        np.savez(os.path.join(OUT, "reference", f"{name}.npz"), **arrays)
        if "logits" in names:
            pred = outs[names.index("logits")].argmax(axis=1)
            acc = (pred == data["y_test"][:REFERENCE_BATCH]).mean()
            print(f"{name}: onnxruntime accuracy on the {REFERENCE_BATCH} reference digits {acc:.3f}")


def sample_request(data: dict[str, np.ndarray]) -> None:
    import json

    label = int(data["y_test"][0])
    request = {
        "id": f"test digit 0, labelled {label}",
        "inputs": [
            {
                "name": "input",
                "shape": [1, 64],
                "datatype": "FP32",
                "data": [round(float(v), 4) for v in data["x_test"][0]],
            }
        ],
        "outputs": [{"name": "probabilities"}],
    }
    with open(os.path.join(OUT, "sample_request.json"), "w") as f:
        json.dump(request, f)
        f.write("\n")


def manifest() -> None:
    files = []
    for root, _, names in os.walk(OUT):
        for n in names:
            if n.endswith((".onnx", ".npz", ".json")):
                files.append(os.path.relpath(os.path.join(root, n), OUT))
    lines = []
    for rel in sorted(files):
        with open(os.path.join(OUT, rel), "rb") as f:
            blob = f.read()
        if len(blob) > 1 << 20:
            sys.exit(f"{rel} is {len(blob)} bytes, over the 1 MiB limit for committed fixtures")
        lines.append(f"{hashlib.sha256(blob).hexdigest()}  {rel}\n")
    with open(os.path.join(OUT, "MANIFEST.sha256"), "w") as f:
        f.writelines(lines)
    print(f"wrote MANIFEST.sha256 with {len(lines)} files")


def main() -> None:
    np.random.seed(SEED)
    data = dataset()
    np.savez(os.path.join(OUT, "digits.npz"), **data)
    save_model(mlp(data), "digits_mlp.onnx")
    save_model(cnn(), "digits_cnn.onnx")
    quantize(data)
    references(data)
    sample_request(data)
    manifest()


if __name__ == "__main__":
    main()
