"""Reference calibration ranges from onnxruntime.quantization, for model-tools' tests.

Builds deterministic activation arrays (seeded numpy: normal, relu-like, heavy-tailed with
outliers, batches whose ranges grow, shrink, start at zero or stay negative), runs
onnxruntime's calibrators on them and writes, next to this script (or into --out DIR):

- activations.npz: the float32 arrays, one per batch, named `<dataset>_<batch>`;
- reference.json: for each case, onnxruntime's range and a fingerprint of its histogram.

Cases, each on every dataset:

- `MinMaxCalibrater` on an Identity model, fed one batch per `get_next` (symmetric or not);
- `HistogramCollector.collect` called once per batch (so histograms widen and merge as
  batches arrive), for percentile (symmetric or not) and entropy with several settings;
- `create_calibrator` with its defaults on an Identity model, fed all batches at once (as
  `quantize_static` feeds them), for percentile and entropy.

Run from the repository root with the tests' venv (numpy, onnx, onnxruntime pinned):

    .venv/bin/python model-tools/tests/calibration/make_reference.py
"""

import argparse
import contextlib
import io
import json
import pathlib
import tempfile

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper
from onnxruntime.quantization.calibrate import (
    CalibrationDataReader,
    CalibrationMethod,
    HistogramCollector,
    MinMaxCalibrater,
    create_calibrator,
)

HERE = pathlib.Path(__file__).resolve().parent


def datasets():
    """Batches of float32 activations, by dataset name."""
    rng = np.random.default_rng(14)
    sets = {}
    # Normal, each batch shifted and wider than the last.
    sets["normal"] = [rng.normal(0.3 * k, 1.0 + 0.5 * k, 1000) for k in range(4)]
    # Relu-like: skewed, about a third exactly zero.
    sets["relu"] = [np.maximum(rng.normal(0.5, 1.5 + k, 1000), 0.0) for k in range(4)]
    # Heavy-tailed (Student t, 2 degrees of freedom) with two far outliers.
    heavy = [rng.standard_t(2, 1000) for _ in range(4)]
    heavy[1][17] = 80.0
    heavy[3][500] = -150.0
    sets["heavy_tailed"] = heavy
    # Each batch twice as wide as the last: the histograms keep widening.
    sets["growing"] = [rng.uniform(-1.0, 3.0, 500) * 2.0**k for k in range(5)]
    # Each batch half as wide: later batches fall into the first batch's bins.
    sets["shrinking"] = [rng.normal(0.0, 4.0 / 2.0**k, 600) for k in range(4)]
    # An all-zero first batch (a histogram of threshold 0), then real values.
    sets["zeros_first"] = [np.zeros(300), rng.normal(0.0, 1.0, 700), rng.exponential(2.0, 700)]
    # Only negative values.
    sets["negative"] = [-rng.exponential(1.0 + k, 800) for k in range(3)]
    return {name: [b.astype(np.float32) for b in batches] for name, batches in sets.items()}


def identity_model(path):
    """y = Identity(x) over float32[N], saved to `path`."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "calibration_reference",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


class Batches(CalibrationDataReader):
    def __init__(self, batches):
        self.items = iter([{"x": b} for b in batches])

    def get_next(self):
        return next(self.items, None)


def fingerprint(hist, edges):
    """Bins, edges and moments of the counts: any difference in binning changes them."""
    counts = [int(c) for c in hist]
    return {
        "bins": len(counts),
        "first_edge": float(edges[0]),
        "last_edge": float(edges[-1]),
        "bin_width": float(edges[1] - edges[0]),
        "count_total": sum(counts),
        "count_moment1": sum(i * c for i, c in enumerate(counts)),
        "count_moment2": sum(i * i * c for i, c in enumerate(counts)),
    }


def quiet(f, *args, **kwargs):
    """Runs f without onnxruntime's progress prints."""
    with contextlib.redirect_stdout(io.StringIO()):
        return f(*args, **kwargs)


def streamed(batches, method, symmetric, num_bins, num_quantized_bins=128, percentile=99.999):
    collector = HistogramCollector(
        method=method,
        symmetric=symmetric,
        num_bins=num_bins,
        num_quantized_bins=num_quantized_bins,
        percentile=percentile,
        scenario="same",
    )
    for b in batches:
        quiet(collector.collect, {"x": b})
    result = quiet(collector.compute_collection_result)["x"]
    hist = collector.histogram_dict["x"]
    return (float(result[0]), float(result[1])), fingerprint(hist[0], hist[1])


def min_max(batches, symmetric, model_path, tmp):
    calibrator = MinMaxCalibrater(
        model_path, augmented_model_path=str(tmp / "minmax.onnx"), symmetric=symmetric
    )
    calibrator.augment_graph()
    calibrator.create_inference_session()
    calibrator.collect_data(Batches(batches))
    lo, hi = calibrator.compute_data()["x"].range_value
    return (float(np.asarray(lo).reshape(-1)[0]), float(np.asarray(hi).reshape(-1)[0]))


def one_shot(batches, method, model_path, tmp, extra):
    calibrator = create_calibrator(
        model_path,
        augmented_model_path=str(tmp / f"{method.name}.onnx"),
        calibrate_method=method,
        extra_options=extra,
    )
    quiet(calibrator.collect_data, Batches([np.concatenate(batches)]))
    lo, hi = quiet(calibrator.compute_data)["x"].range_value
    hist = calibrator.collector.histogram_dict["x"]
    return (float(lo), float(hi)), fingerprint(hist[0], hist[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    data = datasets()
    arrays = {f"{name}_{k}": b for name, batches in data.items() for k, b in enumerate(batches)}
    np.savez(args.out / "activations.npz", **arrays)

    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        model_path = str(tmp / "identity.onnx")
        identity_model(model_path)
        for name, batches in data.items():
            def case(feed, via, config, rng, histogram=None):
                cases.append(
                    {
                        "dataset": name,
                        "feed": feed,
                        "via": via,
                        "config": config,
                        "min": rng[0],
                        "max": rng[1],
                        "histogram": histogram,
                    }
                )

            for symmetric in (False, True):
                rng = min_max(batches, symmetric, model_path, tmp)
                case("batches", "MinMaxCalibrater", {"method": "minmax", "symmetric": symmetric}, rng)

            for symmetric, num_bins, percentile in [
                (True, 2048, 99.999),
                (True, 2048, 99.9),
                (False, 2048, 99.999),
                (False, 512, 99.0),
            ]:
                rng, hist = streamed(batches, "percentile", symmetric, num_bins, percentile=percentile)
                config = {
                    "method": "percentile",
                    "percentile": percentile,
                    "symmetric": symmetric,
                    "num_bins": num_bins,
                }
                case("batches", "HistogramCollector", config, rng, hist)

            # The growing batches widen a 1024-bin histogram to ~16k bins, which onnxruntime's
            # python entropy search takes minutes over; 256 bins make the same point there.
            wide = 256 if name == "growing" else 1024
            for num_bins, num_quantized_bins in [(128, 128), (wide, 128), (512, 255)]:
                rng, hist = streamed(batches, "entropy", False, num_bins, num_quantized_bins)
                config = {
                    "method": "entropy",
                    "num_bins": num_bins,
                    "num_quantized_bins": num_quantized_bins,
                }
                case("batches", "HistogramCollector", config, rng, hist)

            for method, config in [
                (
                    CalibrationMethod.Percentile,
                    {"method": "percentile", "percentile": 99.999, "symmetric": True, "num_bins": 2048},
                ),
                (
                    CalibrationMethod.Entropy,
                    {"method": "entropy", "num_bins": 128, "num_quantized_bins": 128},
                ),
            ]:
                rng, hist = one_shot(batches, method, model_path, tmp, {})
                case("concatenated", "create_calibrator", config, rng, hist)

    reference = {
        "generated_by": "model-tools/tests/calibration/make_reference.py",
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "arrays": "activations.npz",
        "datasets": {name: [f"{name}_{k}" for k in range(len(b))] for name, b in data.items()},
        "cases": cases,
    }
    (args.out / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    print(f"{len(cases)} cases, {sum(a.size for a in arrays.values())} values -> {args.out}")


if __name__ == "__main__":
    main()
