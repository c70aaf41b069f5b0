//! Calibrating the committed digits models on `models/digits.npz`, on ONNX Runtime and tract,
//! and the errors that bad data or models give.

use std::path::{Path, PathBuf};

use inference::ndarray::{ArrayD, IxDyn};
use inference::test_support::{model, model_bytes, models_dir, node, ort_library, value_info};
use inference::{BackendKind, ElementType, LoadOptions};
use model_tools::calibrate::{
    calibrate_npz, CalibrationMethod, CalibratorConfig, CollectError, CollectOptions,
};
use ndarray_npy::{NpzReader, NpzWriter};

fn digits() -> PathBuf {
    models_dir().join("digits.npz")
}

/// The min and max of the first `n` rows of `x_train`.
fn train_min_max(n: usize) -> (f32, f32) {
    let mut npz = NpzReader::new(std::fs::File::open(digits()).unwrap()).unwrap();
    let x: ArrayD<f32> = npz.by_name("x_train").unwrap();
    x.outer_iter()
        .take(n)
        .flat_map(|r| r.iter().copied().collect::<Vec<_>>())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}

fn options(backend: BackendKind, method: CalibrationMethod) -> CollectOptions {
    CollectOptions {
        calibrator: method.into(),
        input_key: Some("x_train".into()),
        max_samples: Some(200),
        batch_size: 48,
        // ONNX Runtime's library comes from ORT_DYLIB_PATH.
        load: LoadOptions::new(backend),
        progress: false,
        ..CollectOptions::default()
    }
}

fn error_text(err: &CollectError) -> String {
    inference::error_chain(err)
}

#[test]
fn the_mlp_input_range_is_the_datas_and_relu_is_non_negative_on_ort() {
    if ort_library("the_mlp_input_range_is_the_datas_and_relu_is_non_negative_on_ort").is_none() {
        return;
    }
    let options = options(BackendKind::Ort, CalibrationMethod::MinMax);
    let c = calibrate_npz(&model_bytes("digits_mlp.onnx"), digits(), &options).unwrap();
    let (lo, hi) = train_min_max(200);
    assert_eq!((c.ranges["input"].min, c.ranges["input"].max), (lo, hi));
    assert!(c.ranges["relu1"].min >= 0.0, "{}", c.ranges["relu1"]);
    assert!(c.ranges["fc1"].min < 0.0, "{}", c.ranges["fc1"]);
    let p = c.ranges["probabilities"];
    assert!(p.min >= 0.0 && p.max <= 1.0, "{p}");
    let names: Vec<&str> = c.ranges.keys().map(String::as_str).collect();
    assert_eq!(names, ["fc1", "input", "logits", "probabilities", "relu1"]);
    let s = &c.summary;
    assert_eq!(
        (s.backend, s.samples, s.batch_size, s.batches),
        (BackendKind::Ort, 200, 48, 5)
    );
    assert_eq!(s.observed, 5);
    assert!(s.skipped.is_empty() && s.non_finite.is_empty(), "{s:?}");
}

#[test]
fn the_cnn_calibrates_alike_on_ort_and_tract() {
    if ort_library("the_cnn_calibrates_alike_on_ort_and_tract").is_none() {
        return;
    }
    let bytes = model_bytes("digits_cnn.onnx");
    let ort = calibrate_npz(
        &bytes,
        digits(),
        &options(BackendKind::Ort, CalibrationMethod::MinMax),
    )
    .unwrap();
    let tract = calibrate_npz(
        &bytes,
        digits(),
        &options(BackendKind::Tract, CalibrationMethod::MinMax),
    )
    .unwrap();
    assert_eq!(tract.summary.backend, BackendKind::Tract);
    let names: Vec<&String> = ort.ranges.keys().collect();
    assert_eq!(names, tract.ranges.keys().collect::<Vec<_>>());
    assert_eq!(
        names,
        ["conv1", "flat", "input", "logits", "pool1", "relu1"]
    );
    for (name, a) in &ort.ranges {
        let b = tract.ranges[name];
        for (x, y) in [(a.min, b.min), (a.max, b.max)] {
            let scale = x.abs().max(y.abs()).max(1e-6);
            assert!(
                (x - y).abs() / scale <= 1e-5,
                "{name}: ORT {a} vs tract {b}"
            );
        }
    }
    let (lo, hi) = train_min_max(200);
    assert_eq!((ort.ranges["input"].min, ort.ranges["input"].max), (lo, hi));
    assert!(ort.ranges["relu1"].min >= 0.0);
    assert!(ort.ranges["pool1"].min >= 0.0);
}

#[test]
fn every_method_gives_ranges_inside_the_min_max_range_on_tract() {
    let bytes = model_bytes("digits_cnn.onnx");
    let minmax = calibrate_npz(
        &bytes,
        digits(),
        &options(BackendKind::Tract, CalibrationMethod::MinMax),
    )
    .unwrap()
    .ranges;
    for method in [
        CalibrationMethod::Percentile,
        CalibrationMethod::Entropy,
        CalibrationMethod::Mse,
    ] {
        let ranges = calibrate_npz(&bytes, digits(), &options(BackendKind::Tract, method))
            .unwrap()
            .ranges;
        assert_eq!(ranges.len(), minmax.len(), "{method}");
        for (name, r) in &ranges {
            let m = minmax[name];
            assert!(
                r.min >= m.min && r.max <= m.max && r.min <= r.max,
                "{method} {name}: {r} outside {m}"
            );
        }
        assert!(ranges["relu1"].min >= 0.0, "{method}");
    }
    // A finer entropy search (TensorRT's bin count) clips the widest activation.
    let mut fine = options(BackendKind::Tract, CalibrationMethod::Entropy);
    fine.calibrator = CalibratorConfig::Entropy {
        num_bins: 2048,
        num_quantized_bins: 128,
    };
    let ranges = calibrate_npz(&bytes, digits(), &fine).unwrap().ranges;
    assert!(
        ranges.iter().any(|(n, r)| r.max < minmax[n].max),
        "{ranges:?}"
    );
}

#[test]
fn only_the_tensors_asked_for_are_observed() {
    let mut options = options(BackendKind::Tract, CalibrationMethod::MinMax);
    options.tensors = Some(vec!["relu1".into()]);
    let c = calibrate_npz(&model_bytes("digits_mlp.onnx"), digits(), &options).unwrap();
    assert_eq!(c.ranges.keys().collect::<Vec<_>>(), ["relu1"]);
    options.tensors = Some(vec!["relu9".into()]);
    let err = calibrate_npz(&model_bytes("digits_mlp.onnx"), digits(), &options).unwrap_err();
    assert!(error_text(&err).contains("`relu9`"), "{}", error_text(&err));
}

/// Writes an `.npz` with the given float arrays (and one float64 array if `f64_name`).
fn npz(dir: &Path, arrays: &[(&str, Vec<usize>)], f64_name: Option<&str>) -> PathBuf {
    let path = dir.join("data.npz");
    let mut w = NpzWriter::new(std::fs::File::create(&path).unwrap());
    for (name, shape) in arrays {
        let n = shape.iter().product();
        let a = ArrayD::from_shape_vec(IxDyn(shape), vec![0.25f32; n]).unwrap();
        w.add_array(*name, &a).unwrap();
    }
    if let Some(name) = f64_name {
        w.add_array(name, &ArrayD::<f64>::zeros(IxDyn(&[4, 64])))
            .unwrap();
    }
    w.finish().unwrap();
    path
}

fn tract_minmax() -> CollectOptions {
    CollectOptions {
        load: LoadOptions::new(BackendKind::Tract),
        progress: false,
        ..CollectOptions::default()
    }
}

#[test]
fn a_missing_input_array_names_the_input_and_what_the_file_has() {
    let dir = tempfile::tempdir().unwrap();
    let path = npz(dir.path(), &[("pixels", vec![4, 64])], None);
    let err = calibrate_npz(&model_bytes("digits_mlp.onnx"), &path, &tract_minmax()).unwrap_err();
    let text = error_text(&err);
    assert!(matches!(err, CollectError::MissingArray { .. }), "{text}");
    assert!(
        text.contains("`input`") && text.contains("pixels") && text.contains("input_key"),
        "{text}"
    );
    let mut keyed = tract_minmax();
    keyed.input_key = Some("x_val".into());
    let text =
        error_text(&calibrate_npz(&model_bytes("digits_mlp.onnx"), &path, &keyed).unwrap_err());
    assert!(text.contains("`x_val`"), "{text}");
}

#[test]
fn a_wrong_dtype_names_both_types() {
    let dir = tempfile::tempdir().unwrap();
    let path = npz(dir.path(), &[], Some("input"));
    let err = calibrate_npz(&model_bytes("digits_mlp.onnx"), &path, &tract_minmax()).unwrap_err();
    let text = error_text(&err);
    assert!(
        text.contains("float64") && text.contains("float32") && text.contains("`input`"),
        "{text}"
    );
}

#[test]
fn a_wrong_shape_names_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let path = npz(dir.path(), &[("input", vec![4, 63])], None);
    let err = calibrate_npz(&model_bytes("digits_mlp.onnx"), &path, &tract_minmax()).unwrap_err();
    let text = error_text(&err);
    assert!(
        text.contains("[4, 63]") && text.contains("[samples, 64]"),
        "{text}"
    );
}

#[test]
fn inputs_with_different_sample_counts_are_refused() {
    let two = model(
        vec![node("Add", &["a", "b"], &["y"])],
        vec![
            value_info("a", ElementType::F32, &[None, Some(2)]),
            value_info("b", ElementType::F32, &[None, Some(2)]),
        ],
        vec![value_info("y", ElementType::F32, &[None, Some(2)])],
        vec![],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = npz(dir.path(), &[("a", vec![3, 2]), ("b", vec![5, 2])], None);
    let text = error_text(&calibrate_npz(&two, &path, &tract_minmax()).unwrap_err());
    assert!(text.contains("`a` 3, `b` 5"), "{text}");
    let mut keyed = tract_minmax();
    keyed.input_key = Some("a".into());
    let text = error_text(&calibrate_npz(&two, &path, &keyed).unwrap_err());
    assert!(
        text.contains("one input") && text.contains("a, b"),
        "{text}"
    );
    // With agreeing data, both inputs and the output get ranges.
    let path = npz(dir.path(), &[("a", vec![3, 2]), ("b", vec![3, 2])], None);
    let c = calibrate_npz(&two, &path, &tract_minmax()).unwrap();
    assert_eq!(c.ranges["y"].max, 0.5);
}

#[test]
fn a_model_that_does_not_load_says_so() {
    let garbage = b"not a model at all";
    let text = error_text(&calibrate_npz(garbage, digits(), &tract_minmax()).unwrap_err());
    assert!(text.contains("not a valid ONNX model"), "{text}");
    // An operator tract does not have: the model parses but does not load.
    let unknown = model(
        vec![inference::onnx::make_node("NoSuchOp", "n", &["x"], &["y"])],
        vec![value_info("x", ElementType::F32, &[None, Some(64)])],
        vec![value_info("y", ElementType::F32, &[None, Some(64)])],
        vec![],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = npz(dir.path(), &[("x", vec![2, 64])], None);
    let err = calibrate_npz(&unknown, &path, &tract_minmax()).unwrap_err();
    let text = error_text(&err);
    assert!(matches!(err, CollectError::Load { .. }), "{text}");
    assert!(
        text.contains("could not be loaded on tract") && text.contains("NoSuchOp"),
        "{text}"
    );
}

#[test]
fn a_bad_percentile_is_refused_before_running() {
    let mut options = tract_minmax();
    options.calibrator = CalibratorConfig::percentile(120.0);
    let text = error_text(
        &calibrate_npz(&model_bytes("digits_mlp.onnx"), digits(), &options).unwrap_err(),
    );
    assert!(text.contains("percentile 120"), "{text}");
}
