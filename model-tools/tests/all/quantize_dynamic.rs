//! `quantize dynamic`: the quantized models are valid ONNX (the full checker), run in python
//! onnxruntime, in ONNX Runtime through `inference` and in tract, keep the digits accuracy
//! within a point, and shrink; what cannot be quantized is reported, never mangled.

use std::path::{Path, PathBuf};
use std::process::Command;

use inference::onnx::{self, proto as pb};
use inference::test_support::{self, model_bytes, models_dir, ort_library};
use inference::{BackendKind, ElementType, LoadOptions, Model, Tensor};
use model_tools::quantize::{
    quantize_dynamic, DynamicOp, DynamicOptions, KeepReason, QuantType, QuantizeError,
    QuantizeReport,
};
use model_tools::{evaluate, Dataset};

use crate::python::{python_check, python_check_runs};

fn quantize(name: &str, options: &DynamicOptions) -> (Vec<u8>, QuantizeReport) {
    quantize_dynamic(&model_bytes(name), options).unwrap()
}

fn digits() -> Dataset {
    Dataset::load(models_dir().join("digits.npz"), "test").unwrap()
}

/// Test-split accuracy of `bytes` on a backend.
fn accuracy(bytes: &[u8], options: &LoadOptions) -> f64 {
    let model = Model::load(bytes.to_vec(), options).unwrap();
    evaluate(&model, &digits(), 64, |_| {}).unwrap().accuracy
}

fn ort(test: &str) -> Option<LoadOptions> {
    ort_library(test).map(|lib| LoadOptions::new(BackendKind::Ort).with_ort_library(lib))
}

fn tract() -> LoadOptions {
    LoadOptions::new(BackendKind::Tract)
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

#[test]
fn the_mlp_quantizes_checks_and_runs_everywhere_within_a_point() {
    let test = "the_mlp_quantizes_checks_and_runs_everywhere_within_a_point";
    let fp32 = model_bytes("digits_mlp.onnx");
    let (int8, report) = quantize("digits_mlp.onnx", &DynamicOptions::default());
    let names: Vec<&str> = report.quantized.iter().map(|q| q.node.as_str()).collect();
    assert_eq!(names, ["fc1", "fc2"], "{report:?}");
    assert!(report
        .quantized
        .iter()
        .all(|q| q.integer_op == "MatMulInteger"));
    assert!(ops(&int8).contains(&"DynamicQuantizeLinear".to_owned()));
    assert!(!ops(&int8).contains(&"Gemm".to_owned()));
    assert_eq!(report.size_before, fp32.len());
    assert_eq!(report.size_after, int8.len());
    assert!(
        int8.len() * 2 < fp32.len(),
        "{} vs {}",
        int8.len(),
        fp32.len()
    );

    let fp32_accuracy = accuracy(&fp32, &tract());
    let tract_accuracy = accuracy(&int8, &tract());
    assert!(
        (tract_accuracy - fp32_accuracy).abs() <= 0.01,
        "tract: {tract_accuracy} vs fp32 {fp32_accuracy}"
    );
    let Some(ort) = ort(test) else { return };
    let ort_accuracy = accuracy(&int8, &ort);
    assert!(
        (ort_accuracy - fp32_accuracy).abs() <= 0.01,
        "ort: {ort_accuracy} vs fp32 {fp32_accuracy}"
    );
    if let Some(python_accuracy) = python_check(test, &int8) {
        assert!(
            (python_accuracy - ort_accuracy).abs() <= 1.5 / 450.0,
            "python onnxruntime {python_accuracy} vs ORT through inference {ort_accuracy}"
        );
    }
}

#[test]
fn every_weight_type_and_granularity_stays_within_a_point_on_ort_and_tract() {
    let test = "every_weight_type_and_granularity_stays_within_a_point_on_ort_and_tract";
    let Some(ort) = ort(test) else { return };
    let fp32 = accuracy(&model_bytes("digits_mlp.onnx"), &ort);
    for weight_type in QuantType::ALL {
        for per_channel in [false, true] {
            let options = DynamicOptions {
                weight_type,
                per_channel,
                ..DynamicOptions::default()
            };
            let (int8, report) = quantize("digits_mlp.onnx", &options);
            assert!(report.quantized.iter().all(|q| q.per_channel == per_channel
                && q.weight_type == weight_type
                && q.stored_as == weight_type));
            let on_tract = accuracy(&int8, &tract());
            assert!(
                (on_tract - fp32).abs() <= 0.01,
                "tract, {weight_type} per_channel={per_channel}: {on_tract} vs fp32 {fp32}"
            );
            let got = accuracy(&int8, &ort);
            assert!(
                (got - fp32).abs() <= 0.01,
                "{weight_type} per_channel={per_channel}: {got} vs fp32 {fp32}"
            );
            python_check(test, &int8);
        }
    }
}

#[test]
fn ours_is_no_worse_and_no_larger_than_onnxruntimes_quantize_dynamic() {
    // models/digits_mlp_int8.onnx is onnxruntime's quantize_dynamic of the same model
    // (s8 weights per tensor): the defaults must match it.
    let test = "ours_is_no_worse_and_no_larger_than_onnxruntimes_quantize_dynamic";
    let anchor = model_bytes("digits_mlp_int8.onnx");
    let (ours, _) = quantize("digits_mlp.onnx", &DynamicOptions::default());
    assert!(
        ours.len() <= anchor.len(),
        "ours {} bytes, onnxruntime's {}",
        ours.len(),
        anchor.len()
    );
    let Some(ort) = ort(test) else { return };
    let (a, b) = (accuracy(&ours, &ort), accuracy(&anchor, &ort));
    assert!(a >= b - 0.002, "ours {a} vs onnxruntime's {b}");
}

/// The argmax of `output` for the first 100 test digits, fed as the model's input shape.
fn predictions(bytes: &[u8], options: &LoadOptions, shape: &[usize]) -> Vec<usize> {
    let model = Model::load(bytes.to_vec(), options).unwrap();
    let data = digits();
    let rows: Vec<f32> = data.x.iter().take(100 * 64).copied().collect();
    let mut dims = vec![100];
    dims.extend_from_slice(shape);
    let input = Tensor::from_shape_vec(&dims, rows).unwrap();
    let name = model.metadata().inputs[0].name.clone();
    let out = model.run([(name, input)]).unwrap();
    let logits = out.get("logits").unwrap().as_array::<f32>().unwrap();
    logits
        .rows()
        .into_iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0
        })
        .collect()
}

fn agreement(a: &[usize], b: &[usize]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

#[test]
fn the_cnns_conv_becomes_conv_integer_and_agrees_with_fp32() {
    let test = "the_cnns_conv_becomes_conv_integer_and_agrees_with_fp32";
    let fp32 = model_bytes("digits_cnn.onnx");
    for weight_type in QuantType::ALL {
        for per_channel in [false, true] {
            let options = DynamicOptions {
                weight_type,
                per_channel,
                ..DynamicOptions::default()
            };
            let (int8, report) = quantize("digits_cnn.onnx", &options);
            let conv = report
                .quantized
                .iter()
                .find(|q| q.op_type == "Conv")
                .unwrap();
            assert_eq!(conv.integer_op, "ConvInteger");
            assert_eq!(conv.stored_as, QuantType::U8);
            assert_eq!(conv.per_channel, per_channel);
            assert!(report.quantized.iter().any(|q| q.op_type == "Gemm"));
            assert!(int8.len() < fp32.len());
            let shape = [1, 8, 8];
            let reference = predictions(&fp32, &tract(), &shape);
            let on_tract = predictions(&int8, &tract(), &shape);
            assert!(
                agreement(&reference, &on_tract) >= 0.9,
                "{weight_type} {per_channel}"
            );
            if let Some(ort) = ort(test) {
                let on_ort = predictions(&int8, &ort, &shape);
                assert!(
                    agreement(&reference, &on_ort) >= 0.9,
                    "{weight_type} {per_channel}"
                );
                python_check(test, &int8);
            }
        }
    }
}

#[test]
fn excluded_nodes_and_unselected_op_types_stay_float() {
    let options = DynamicOptions {
        exclude_nodes: vec!["fc2".to_owned()],
        ..DynamicOptions::default()
    };
    let (int8, report) = quantize("digits_mlp.onnx", &options);
    assert_eq!(report.quantized.len(), 1);
    let fc2 = report.kept_float.iter().find(|k| k.node == "fc2").unwrap();
    assert_eq!(fc2.reason, KeepReason::Excluded);
    let model = onnx::decode_model(&int8).unwrap();
    let graph = onnx::graph(&model).unwrap();
    let original = onnx::decode_model(&model_bytes("digits_mlp.onnx")).unwrap();
    let original_fc2 = onnx::graph(&original)
        .unwrap()
        .node
        .iter()
        .find(|n| n.name == "fc2");
    assert_eq!(graph.node.iter().find(|n| n.name == "fc2"), original_fc2);
    assert!(onnx::initializer(graph, "fc2.weight").is_some());
    assert!(
        onnx::initializer(graph, "fc1.weight").is_none(),
        "the replaced weight is dropped"
    );

    let only_conv = DynamicOptions {
        op_types: [DynamicOp::Conv].into_iter().collect(),
        ..DynamicOptions::default()
    };
    let (_, report) = quantize("digits_mlp.onnx", &only_conv);
    assert!(report.quantized.is_empty());
    assert!(report
        .kept_float
        .iter()
        .filter(|k| k.op_type == "Gemm")
        .all(|k| k.reason == KeepReason::OpTypeNotSelected));
    assert_eq!(report.opset_after, report.opset_before);
}

fn f32_init(name: &str, dims: &[i64], seed: f32) -> pb::TensorProto {
    let n: i64 = dims.iter().product();
    let data: Vec<f32> = (0..n).map(|i| ((i as f32 + seed) * 0.37).sin()).collect();
    test_support::f32_initializer(name, dims, &data)
}

/// `x[N, 4] → MatMul(w1) → h → <op> → g → MatMul(w2) → y`, with `op` a node of `domain`.
fn chain_model(op: &str, domain: &str, opset: i64) -> Vec<u8> {
    let f32 = ElementType::F32;
    let mut middle = onnx::make_node(op, "middle", &["h"], &["g"]);
    middle.domain = domain.to_owned();
    let bytes = test_support::model(
        vec![
            onnx::make_node("MatMul", "first", &["x", "w1"], &["h"]),
            middle,
            onnx::make_node("MatMul", "second", &["g", "w2"], &["y"]),
        ],
        vec![test_support::value_info("x", f32, &[None, Some(4)])],
        vec![test_support::value_info("y", f32, &[None, Some(3)])],
        vec![f32_init("w1", &[4, 5], 0.0), f32_init("w2", &[5, 3], 1.0)],
    );
    let mut model = onnx::decode_model(&bytes).unwrap();
    onnx::set_opset_version(&mut model, "", opset);
    if !domain.is_empty() {
        onnx::set_opset_version(&mut model, domain, 1);
    }
    onnx::encode_model(&model)
}

#[test]
fn an_unknown_operator_is_left_alone_and_reported_while_the_rest_is_quantized() {
    let bytes = chain_model("Mystery", "com.example", 17);
    let (int8, report) = quantize_dynamic(&bytes, &DynamicOptions::default()).unwrap();
    let quantized: Vec<&str> = report.quantized.iter().map(|q| q.node.as_str()).collect();
    assert_eq!(quantized, ["first", "second"]);
    let mystery = report
        .kept_float
        .iter()
        .find(|k| k.node == "middle")
        .unwrap();
    assert_eq!(mystery.op_type, "com.example.Mystery");
    assert_eq!(mystery.reason, KeepReason::NotQuantizable);
    let model = onnx::decode_model(&int8).unwrap();
    let node = onnx::graph(&model)
        .unwrap()
        .node
        .iter()
        .find(|n| n.name == "middle");
    let original = onnx::decode_model(&bytes).unwrap();
    assert_eq!(
        node,
        onnx::graph(&original)
            .unwrap()
            .node
            .iter()
            .find(|n| n.name == "middle")
    );
}

#[test]
fn a_low_opset_is_raised_to_11_when_safe_and_refused_when_not() {
    let test = "a_low_opset_is_raised_to_11_when_safe_and_refused_when_not";
    let bytes = chain_model("Relu", "", 9);
    let (int8, report) = quantize_dynamic(&bytes, &DynamicOptions::default()).unwrap();
    assert_eq!((report.opset_before, report.opset_after), (9, 11));
    assert_eq!(
        onnx::opset_version(&onnx::decode_model(&int8).unwrap(), ""),
        Some(11)
    );
    if let Some(ort) = ort(test) {
        let model = Model::load(int8.clone(), &ort).unwrap();
        let x = Tensor::from_shape_vec(&[2, 4], vec![0.5f32; 8]).unwrap();
        model.run([("x", x)]).unwrap();
        python_check_runs(test, &int8);
    }
    let clip = chain_model("Clip", "", 10);
    let err = quantize_dynamic(&clip, &DynamicOptions::default()).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, QuantizeError::OpsetTooOld { version: 10, .. }),
        "{message}"
    );
    assert!(
        message.contains("`middle` (Clip)") && message.contains("version_converter"),
        "{message}"
    );
}

#[test]
fn weights_computed_at_run_time_or_overridable_stay_float() {
    let f32 = ElementType::F32;
    let bytes = test_support::model(
        vec![
            onnx::make_node("MatMul", "dynamic_b", &["x", "b"], &["h"]),
            onnx::make_node("MatMul", "overridable", &["h", "w"], &["y"]),
        ],
        vec![
            test_support::value_info("x", f32, &[Some(2), Some(4)]),
            test_support::value_info("b", f32, &[Some(4), Some(4)]),
            test_support::value_info("w", f32, &[Some(4), Some(2)]),
        ],
        vec![test_support::value_info("y", f32, &[Some(2), Some(2)])],
        vec![f32_init("w", &[4, 2], 0.0)],
    );
    let (out, report) = quantize_dynamic(&bytes, &DynamicOptions::default()).unwrap();
    assert!(report.quantized.is_empty());
    let reasons: Vec<&KeepReason> = report.kept_float.iter().map(|k| &k.reason).collect();
    assert_eq!(
        reasons,
        [
            &KeepReason::WeightNotConstant {
                input: "b".to_owned()
            },
            &KeepReason::WeightIsGraphInput {
                input: "w".to_owned()
            },
        ]
    );
    assert_eq!(
        onnx::decode_model(&out).unwrap(),
        onnx::decode_model(&bytes).unwrap()
    );
}

#[test]
fn malformed_models_and_options_are_errors_that_name_the_problem() {
    let options = DynamicOptions::default();
    let garbage = quantize_dynamic(b"\x08\x07\x12\xff\xff", &options).unwrap_err();
    assert!(matches!(garbage, QuantizeError::Format(_)), "{garbage}");
    assert!(
        garbage.to_string().contains("not a valid ONNX model"),
        "{garbage}"
    );
    let empty = quantize_dynamic(b"", &options).unwrap_err().to_string();
    assert!(
        empty.contains("opset") || empty.contains("no graph"),
        "{empty}"
    );

    let mut model = onnx::decode_model(&model_bytes("digits_mlp.onnx")).unwrap();
    let fc1 = &mut onnx::graph_mut(&mut model).unwrap().node[0];
    onnx::set_attribute(fc1, "alpha", onnx::AttributeValue::Int(2));
    let err = quantize_dynamic(&onnx::encode_model(&model), &options)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`fc1`") && err.contains("alpha"), "{err}");

    let mut model = onnx::decode_model(&model_bytes("digits_mlp.onnx")).unwrap();
    let graph = onnx::graph_mut(&mut model).unwrap();
    onnx::initializer_mut(graph, "fc1.weight")
        .unwrap()
        .raw_data
        .truncate(10);
    let err = quantize_dynamic(&onnx::encode_model(&model), &options)
        .unwrap_err()
        .to_string();
    assert!(err.contains("fc1.weight") && err.contains("bytes"), "{err}");

    let typo = DynamicOptions {
        exclude_nodes: vec!["fc3".to_owned()],
        ..DynamicOptions::default()
    };
    let err = quantize_dynamic(&model_bytes("digits_mlp.onnx"), &typo)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`fc3`") && err.contains("fc1, relu1, fc2"),
        "{err}"
    );

    let none = DynamicOptions {
        op_types: Default::default(),
        ..DynamicOptions::default()
    };
    let err = quantize_dynamic(&model_bytes("digits_mlp.onnx"), &none)
        .unwrap_err()
        .to_string();
    assert!(err.contains("MatMul, Gemm, Conv"), "{err}");
}

fn model_tools(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_model-tools"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn repo() -> PathBuf {
    models_dir().join("..")
}

#[test]
fn the_cli_writes_the_model_and_prints_what_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("mlp.onnx");
    let out_arg = out_path.to_str().unwrap();
    let args = [
        "quantize",
        "dynamic",
        "models/digits_mlp.onnx",
        out_arg,
        "--per-channel",
    ];
    let out = model_tools(&args, &repo());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read(&out_path).unwrap();
    for expected in [
        "quantized   2 nodes",
        "fc1",
        "MatMulInteger",
        "per channel",
        "Relu",
        "Softmax",
    ] {
        assert!(stdout.contains(expected), "{expected}: {stdout}");
    }
    assert!(
        stdout.contains(&format!("-> {} bytes", written.len())),
        "{stdout}"
    );

    let json = model_tools(
        &[
            "quantize",
            "dynamic",
            "models/digits_mlp.onnx",
            out_arg,
            "--json",
            "--exclude-nodes",
            "fc1",
            "--weight-type",
            "u8",
        ],
        &repo(),
    );
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["report"]["quantized"][0]["node"], "fc2");
    assert_eq!(report["report"]["quantized"][0]["weight_type"], "u8");
    assert_eq!(
        report["report"]["kept_float"][0]["reason"]["kind"],
        "excluded"
    );
}

#[test]
fn the_cli_teaches_and_refuses_clearly() {
    let help = model_tools(&["quantize", "dynamic", "--help"], &repo());
    let help = String::from_utf8_lossy(&help.stdout);
    for expected in [
        "DynamicQuantizeLinear",
        "--weight-type",
        "[possible values: s8, u8]",
        "--per-channel",
        "--exclude-nodes",
        "Examples:",
    ] {
        assert!(help.contains(expected), "{expected}: {help}");
    }
    let dir = tempfile::tempdir().unwrap();
    let bad_type = model_tools(
        &[
            "quantize",
            "dynamic",
            "a.onnx",
            "b.onnx",
            "--weight-type",
            "int4",
        ],
        dir.path(),
    );
    assert!(!bad_type.status.success());
    assert!(String::from_utf8_lossy(&bad_type.stderr).contains("s8, u8"));
    let bad_op = model_tools(
        &[
            "quantize",
            "dynamic",
            "a.onnx",
            "b.onnx",
            "--op-types",
            "MatMul,Relu",
        ],
        dir.path(),
    );
    assert!(String::from_utf8_lossy(&bad_op.stderr).contains("MatMul, Gemm, Conv"));
    let missing = model_tools(
        &["quantize", "dynamic", "absent.onnx", "b.onnx"],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        !missing.status.success() && stderr.contains("failed to read `absent.onnx`"),
        "{stderr}"
    );
    let model = dir.path().join("m.onnx");
    std::fs::copy(models_dir().join("digits_mlp.onnx"), &model).unwrap();
    let same = model_tools(&["quantize", "dynamic", "m.onnx", "./m.onnx"], dir.path());
    let stderr = String::from_utf8_lossy(&same.stderr);
    assert!(
        !same.status.success() && stderr.contains("is the input"),
        "{stderr}"
    );
    std::fs::write(dir.path().join("junk.onnx"), b"junk bytes").unwrap();
    let junk = model_tools(
        &["quantize", "dynamic", "junk.onnx", "out.onnx"],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&junk.stderr);
    assert!(
        stderr.contains("failed to quantize `junk.onnx`")
            && stderr.contains("not a valid ONNX model"),
        "{stderr}"
    );
    assert!(!dir.path().join("out.onnx").exists());
}
