//! `quantize static` (QDQ): calibrated models pass the full ONNX checker, run in python
//! onnxruntime, in ONNX Runtime through `inference` and in tract, keep the digits accuracy, and
//! report what stays float; pre-processing (BatchNormalization folding) keeps the outputs.

use std::collections::BTreeMap;

use inference::onnx::{self, proto as pb};
use inference::test_support::{self, model_bytes, models_dir};
use inference::{BackendKind, ElementType, LoadOptions, Model, Tensor};
use model_tools::calibrate::{calibrate_npz, CollectOptions, TensorRange, TensorRanges};
use model_tools::quantize::{
    preprocess, quantize_static, KeepReason, QuantType, QuantizeError, StaticOptions,
};
use model_tools::{evaluate, Dataset};

use crate::python::{python_check, python_check_runs};

fn tract() -> LoadOptions {
    LoadOptions::new(BackendKind::Tract)
}

/// MinMax ranges of `model` on the first 256 training digits, on tract.
fn ranges(model: &[u8]) -> TensorRanges {
    let options = CollectOptions {
        input_key: Some("x_train".into()),
        max_samples: Some(256),
        load: tract(),
        progress: false,
        ..CollectOptions::default()
    };
    calibrate_npz(model, models_dir().join("digits.npz"), &options)
        .unwrap()
        .ranges
}

fn accuracy(bytes: &[u8], options: &LoadOptions) -> f64 {
    let model = Model::load(bytes.to_vec(), options).unwrap();
    let data = Dataset::load(models_dir().join("digits.npz"), "test").unwrap();
    evaluate(&model, &data, 64, |_| {}).unwrap().accuracy
}

fn ops(bytes: &[u8]) -> Vec<String> {
    let model = onnx::decode_model(bytes).unwrap();
    onnx::graph(&model)
        .unwrap()
        .node
        .iter()
        .map(|n| n.op_type.clone())
        .collect()
}

fn count(ops: &[String], op: &str) -> usize {
    ops.iter().filter(|o| *o == op).count()
}

#[test]
fn the_mlp_quantizes_in_qdq_checks_and_keeps_its_accuracy_everywhere() {
    let test = "the_mlp_quantizes_in_qdq_checks_and_keeps_its_accuracy_everywhere";
    let fp32 = model_bytes("digits_mlp.onnx");
    let (int8, report) = quantize_static(&fp32, &ranges(&fp32), &StaticOptions::default()).unwrap();
    let ops = ops(&int8);
    // Gemm, Relu (folded), Gemm quantized; Softmax stays float.
    assert!(count(&ops, "QuantizeLinear") >= 3, "{ops:?}");
    assert!(
        !ops.contains(&"Relu".to_owned()),
        "Relu folded into the Gemm's range: {ops:?}"
    );
    assert!(ops.contains(&"Softmax".to_owned()), "{ops:?}");
    assert!(
        report.kept_float.iter().any(|k| k.op_type == "Softmax"),
        "{report:?}"
    );
    assert!(report.size_after < fp32.len() / 2, "{report:?}");

    let reference = accuracy(&fp32, &tract());
    let on_tract = accuracy(&int8, &tract());
    assert!(
        (reference - on_tract).abs() <= 0.01,
        "tract: {on_tract} vs FP32 {reference}"
    );
    if let Some(lib) = test_support::ort_library(test) {
        let on_ort = accuracy(
            &int8,
            &LoadOptions::new(BackendKind::Ort).with_ort_library(lib),
        );
        assert!(
            (reference - on_ort).abs() <= 0.01,
            "ORT: {on_ort} vs FP32 {reference}"
        );
    }
    if let Some(python) = python_check(test, &int8) {
        assert!(
            (reference - python).abs() <= 0.01,
            "python: {python} vs FP32 {reference}"
        );
    }
}

#[test]
fn the_cnn_gets_per_channel_int8_weights_int32_bias_and_a_folded_relu() {
    let test = "the_cnn_gets_per_channel_int8_weights_int32_bias_and_a_folded_relu";
    let fp32 = model_bytes("digits_cnn.onnx");
    let options = StaticOptions {
        per_channel: true,
        ..StaticOptions::default()
    };
    let (int8, report) = quantize_static(&fp32, &ranges(&fp32), &options).unwrap();
    let model = onnx::decode_model(&int8).unwrap();
    let graph = onnx::graph(&model).unwrap();
    let conv = graph.node.iter().find(|n| n.op_type == "Conv").unwrap();
    let weight_dq = graph
        .node
        .iter()
        .find(|n| n.output[0] == conv.input[1])
        .expect("the Conv reads its weight through a DequantizeLinear");
    assert_eq!(weight_dq.op_type, "DequantizeLinear");
    assert_eq!(onnx::attr_int(weight_dq, "axis").unwrap(), Some(0));
    let stored = onnx::initializer(graph, &weight_dq.input[0]).unwrap();
    assert_eq!(onnx::element_type(stored), Some(ElementType::I8));
    let bias_dq = graph
        .node
        .iter()
        .find(|n| n.output[0] == conv.input[2])
        .expect("the bias is dequantized");
    let bias = onnx::initializer(graph, &bias_dq.input[0]).unwrap();
    assert_eq!(onnx::element_type(bias), Some(ElementType::I32));
    assert!(!ops(&int8).contains(&"Relu".to_owned()));
    assert!(
        report.quantized.iter().any(|q| q.op_type == "MaxPool"),
        "{report:?}"
    );

    // Same predictions as FP32 on almost every digit, on each engine.
    let agree = |options: &LoadOptions| {
        let a = predictions(&fp32, options);
        let b = predictions(&int8, options);
        a.iter().zip(&b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
    };
    assert!(
        agree(&tract()) >= 0.95,
        "tract agreement {}",
        agree(&tract())
    );
    if let Some(lib) = test_support::ort_library(test) {
        let ort = LoadOptions::new(BackendKind::Ort).with_ort_library(lib);
        assert!(agree(&ort) >= 0.95, "ORT agreement {}", agree(&ort));
    }
    python_check_runs(test, &int8);
}

fn predictions(bytes: &[u8], options: &LoadOptions) -> Vec<usize> {
    let model = Model::load(bytes.to_vec(), options).unwrap();
    let data = Dataset::load(models_dir().join("digits.npz"), "test").unwrap();
    let x = Tensor::from(data.x.clone())
        .reshape(&[data.len(), 1, 8, 8])
        .unwrap();
    let name = model.metadata().inputs[0].name.clone();
    let out = model.run(vec![(name, x)]).unwrap();
    let logits = out
        .iter()
        .next()
        .unwrap()
        .1
        .as_array::<f32>()
        .unwrap()
        .clone();
    logits
        .outer_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(
                    (0, f32::MIN),
                    |best, (i, &v)| if v > best.1 { (i, v) } else { best },
                )
                .0
        })
        .collect()
}

fn f32_init(name: &str, dims: &[i64], values: Vec<f32>) -> pb::TensorProto {
    let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
    let tensor = Tensor::from_shape_vec(&shape, values).unwrap();
    onnx::tensor_to_proto(name, &tensor, onnx::DataLayout::Raw)
}

/// `x[1,2,4,4] → Conv(3 channels, 3×3, pad 1) → BatchNormalization → Relu → y`.
fn conv_bn_relu() -> Vec<u8> {
    let f32 = ElementType::F32;
    let mut conv = onnx::make_node("Conv", "conv", &["x", "w", "b"], &["c"]);
    onnx::set_attribute(
        &mut conv,
        "pads",
        onnx::AttributeValue::Ints(vec![1, 1, 1, 1]),
    );
    let mut bn = onnx::make_node(
        "BatchNormalization",
        "bn",
        &["c", "g", "beta", "m", "v"],
        &["n"],
    );
    onnx::set_attribute(&mut bn, "epsilon", onnx::AttributeValue::Float(1e-3));
    let relu = onnx::make_node("Relu", "relu", &["n"], &["y"]);
    let w: Vec<f32> = (0..54)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0)
        .collect();
    test_support::model(
        vec![conv, bn, relu],
        vec![test_support::value_info(
            "x",
            f32,
            &[Some(1), Some(2), Some(4), Some(4)],
        )],
        vec![test_support::value_info("y", f32, &[])],
        vec![
            f32_init("w", &[3, 2, 3, 3], w),
            f32_init("b", &[3], vec![0.1, -0.2, 0.3]),
            f32_init("g", &[3], vec![1.5, 0.5, -1.0]),
            f32_init("beta", &[3], vec![0.2, 0.0, -0.1]),
            f32_init("m", &[3], vec![0.05, -0.1, 0.2]),
            f32_init("v", &[3], vec![0.9, 1.2, 0.3]),
        ],
    )
}

fn run_one(bytes: &[u8], x: &Tensor) -> Vec<f32> {
    let model = Model::load(bytes.to_vec(), &tract()).unwrap();
    let out = model.run(vec![("x", x.clone())]).unwrap();
    out.get("y")
        .unwrap()
        .as_array::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

#[test]
fn batch_normalization_is_folded_into_the_conv_without_changing_outputs() {
    let bytes = conv_bn_relu();
    let mut model = onnx::decode_model(&bytes).unwrap();
    let report = preprocess(onnx::graph_mut(&mut model).unwrap()).unwrap();
    assert_eq!(report.batch_norms_folded, vec!["bn".to_owned()]);
    let folded = onnx::encode_model(&model);
    assert_eq!(ops(&folded), vec!["Conv", "Relu"]);
    let x = Tensor::from_shape_vec(
        &[1, 2, 4, 4],
        (0..32).map(|i| (i as f32 - 16.0) / 8.0).collect(),
    )
    .unwrap();
    let (a, b) = (run_one(&bytes, &x), run_one(&folded, &x));
    for (p, q) in a.iter().zip(&b) {
        assert!((p - q).abs() <= 1e-5 * (1.0 + p.abs()), "{a:?} vs {b:?}");
    }
}

/// A range for every float tensor of the conv_bn_relu model, wide enough for its values.
fn wide_ranges(names: &[&str]) -> TensorRanges {
    names
        .iter()
        .map(|n| ((*n).to_owned(), TensorRange::new(-8.0, 8.0)))
        .collect::<BTreeMap<_, _>>()
}

#[test]
fn an_unknown_operator_stays_float_and_is_reported_while_the_rest_is_quantized() {
    let test = "an_unknown_operator_stays_float_and_is_reported_while_the_rest_is_quantized";
    let f32 = ElementType::F32;
    let a = onnx::make_node("Add", "add", &["x", "k"], &["s"]);
    let odd = onnx::make_node("Det", "det", &["s"], &["d"]);
    let b = onnx::make_node("Mul", "mul", &["x", "k"], &["y"]);
    let bytes = test_support::model(
        vec![a, odd, b],
        vec![test_support::value_info("x", f32, &[Some(2), Some(2)])],
        vec![
            test_support::value_info("d", f32, &[]),
            test_support::value_info("y", f32, &[Some(2), Some(2)]),
        ],
        vec![f32_init("k", &[2, 2], vec![0.5, -1.0, 2.0, 0.25])],
    );
    let ranges = wide_ranges(&["x", "s", "d", "y"]);
    let (int8, report) = quantize_static(&bytes, &ranges, &StaticOptions::default()).unwrap();
    let det = report.kept_float.iter().find(|k| k.node == "det").unwrap();
    assert_eq!(det.reason, KeepReason::NotQuantizable);
    assert!(
        report.quantized.iter().any(|q| q.node == "add"),
        "{report:?}"
    );
    assert!(
        report.quantized.iter().any(|q| q.node == "mul"),
        "{report:?}"
    );
    python_check_runs(test, &int8);
}

#[test]
fn excluded_nodes_and_op_types_and_tensors_without_a_range_stay_float() {
    let bytes = model_bytes("digits_mlp.onnx");
    let all = ranges(&bytes);
    let model = onnx::decode_model(&bytes).unwrap();
    let gemms: Vec<String> = onnx::graph(&model)
        .unwrap()
        .node
        .iter()
        .filter(|n| n.op_type == "Gemm")
        .map(|n| n.name.clone())
        .collect();
    let options = StaticOptions {
        exclude_nodes: vec![gemms[0].clone()],
        ..StaticOptions::default()
    };
    let (_, report) = quantize_static(&bytes, &all, &options).unwrap();
    let kept = report
        .kept_float
        .iter()
        .find(|k| k.node == gemms[0])
        .unwrap();
    assert_eq!(kept.reason, KeepReason::Excluded);

    let options = StaticOptions {
        exclude_op_types: vec!["Gemm".into()],
        ..StaticOptions::default()
    };
    let (_, report) = quantize_static(&bytes, &all, &options).unwrap();
    assert!(
        report.quantized.iter().all(|q| q.op_type != "Gemm"),
        "{report:?}"
    );

    let none = TensorRanges::new();
    let (_, report) = quantize_static(&bytes, &none, &StaticOptions::default()).unwrap();
    assert!(report.quantized.is_empty(), "{report:?}");
    assert!(
        report
            .kept_float
            .iter()
            .any(|k| k.reason.to_string().contains("no calibration range")),
        "{report:?}"
    );
}

#[test]
fn bad_models_and_options_are_errors_that_name_the_problem() {
    let err = quantize_static(
        b"not a model",
        &TensorRanges::new(),
        &StaticOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, QuantizeError::Format(_)), "{err}");

    let bytes = model_bytes("digits_mlp.onnx");
    let options = StaticOptions {
        exclude_nodes: vec!["no-such-node".into()],
        ..StaticOptions::default()
    };
    let err = quantize_static(&bytes, &TensorRanges::new(), &options).unwrap_err();
    assert!(err.to_string().contains("no-such-node"), "{err}");

    // Per-channel DequantizeLinear needs opset 13: refused by name at opset 11.
    let mut model = onnx::decode_model(&bytes).unwrap();
    onnx::set_opset_version(&mut model, "", 11);
    let old = onnx::encode_model(&model);
    let options = StaticOptions {
        per_channel: true,
        weight_type: QuantType::S8,
        ..StaticOptions::default()
    };
    let err = quantize_static(&old, &TensorRanges::new(), &options).unwrap_err();
    assert!(err.to_string().contains("13"), "{err}");
}
