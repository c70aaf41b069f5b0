//! The committed `models/` files: integrity, metadata, and agreement of tract, ONNX Runtime and
//! python onnxruntime (the reference outputs written by models/scripts/make_models.py).

use std::fs::File;

use inference::ndarray::{ArrayD, Axis};
use inference::test_support::{model_bytes, models_dir};
use inference::{BackendKind, Dim, ElementType, Model, Tensor};
use ndarray_npy::NpzReader;
use sha2::{Digest, Sha256};

use crate::support::backends;

const MODELS: [&str; 4] = [
    "digits_mlp",
    "digits_mlp_int8",
    "digits_cnn",
    "digits_cnn_int8",
];

fn read_npz(path: &str) -> Vec<(String, ArrayD<f32>)> {
    let mut npz = NpzReader::new(File::open(models_dir().join(path)).unwrap()).unwrap();
    let names = npz.names().unwrap();
    names
        .into_iter()
        .map(|n| {
            let a: ArrayD<f32> = npz.by_name(&n).unwrap();
            (n.trim_end_matches(".npy").to_owned(), a)
        })
        .collect()
}

/// Python onnxruntime's outputs for `models/<name>.onnx` on the reference input, computed now on
/// this machine; `None` when no python is configured (`EDGE_ML_PYTHON`, set by scripts/env.sh).
///
/// ONNX Runtime's u8s8 integer kernels give different results on CPUs without VNNI (AVX2's
/// `vpmaddubsw` saturates intermediate sums), so the committed references, made on one CPU,
/// are only a reference for ONNX Runtime on a CPU like it. The same library on the same CPU is.
fn live_onnxruntime_reference(name: &str) -> Option<Vec<(String, ArrayD<f32>)>> {
    let python = std::env::var_os("EDGE_ML_PYTHON")?;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.npz");
    let script = r#"
import sys, numpy as np, onnxruntime as ort
model, reference, out = sys.argv[1:4]
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
s = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
x = np.load(reference)["input"]
names = [o.name for o in s.get_outputs()]
np.savez(out, input=x, **{"output." + n: v for n, v in zip(names, s.run(names, {"input": x}))})
"#;
    let status = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(models_dir().join(format!("{name}.onnx")))
        .arg(models_dir().join(format!("reference/{name}.npz")))
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "python onnxruntime failed on {name}");
    let mut npz = NpzReader::new(File::open(&out).unwrap()).unwrap();
    let names = npz.names().unwrap();
    Some(
        names
            .into_iter()
            .map(|n| {
                let a: ArrayD<f32> = npz.by_name(&n).unwrap();
                (n.trim_end_matches(".npy").to_owned(), a)
            })
            .collect(),
    )
}

#[test]
fn manifest_matches_every_committed_file() {
    let manifest = std::fs::read_to_string(models_dir().join("MANIFEST.sha256")).unwrap();
    let mut checked = 0;
    for line in manifest.lines() {
        let (digest, name) = line.split_once("  ").expect("`<sha256>  <path>` lines");
        let bytes = model_bytes(name);
        assert!(bytes.len() < 1 << 20, "{name} is over 1 MiB");
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            digest,
            "{name} changed without its manifest"
        );
        checked += 1;
    }
    assert_eq!(
        checked, 11,
        "manifest lists every model, dataset and reference file"
    );
}

#[test]
fn metadata_describes_the_digits_models() {
    let mlp = Model::inspect(&model_bytes("digits_mlp.onnx")).unwrap();
    assert_eq!(mlp.opset(), Some(17));
    assert_eq!(mlp.producer_name, "edge-ml-models");
    assert_eq!(mlp.inputs.len(), 1);
    assert_eq!(mlp.inputs[0].name, "input");
    assert_eq!(mlp.inputs[0].element_type, ElementType::F32);
    assert_eq!(
        mlp.inputs[0].shape,
        Some(vec![Dim::Symbolic("N".into()), Dim::Fixed(64)])
    );
    assert_eq!(mlp.inputs[0].shape_with_wildcards(), Some(vec![-1, 64]));
    let outputs: Vec<_> = mlp.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(outputs, ["logits", "probabilities"]);
    assert_eq!(mlp.operators, ["Gemm", "Relu", "Softmax"]);
    assert_eq!(mlp.initializer_count, 4);
    assert_eq!(mlp.byte_size, model_bytes("digits_mlp.onnx").len());
    assert_eq!(mlp.sha256.len(), 64);

    let cnn = Model::inspect(&model_bytes("digits_cnn.onnx")).unwrap();
    assert_eq!(cnn.inputs[0].to_string(), "float32[N, 1, 8, 8]");
    assert!(cnn.operators.contains(&"MaxPool".to_owned()));

    let q = Model::inspect(&model_bytes("digits_cnn_int8.onnx")).unwrap();
    assert!(
        q.operators.contains(&"QuantizeLinear".to_owned()),
        "{:?}",
        q.operators
    );
}

/// Every backend reproduces python onnxruntime's outputs on the reference digits, and so agrees
/// with every other backend.
#[test]
fn backends_agree_with_python_onnxruntime() {
    for options in backends("backends_agree_with_python_onnxruntime") {
        for name in MODELS {
            let model = Model::load(model_bytes(&format!("{name}.onnx")), &options).unwrap();
            let mut reference = read_npz(&format!("reference/{name}.npz"));
            // Float models match to float rounding. Quantized models may differ by one
            // quantization step where an engine rounds an intermediate the other way; on
            // ONNX Runtime they are compared with python onnxruntime on this very CPU.
            let mut tolerance = if name.ends_with("int8") { 0.1 } else { 1e-4 };
            if name.ends_with("int8") && options.backend == BackendKind::Ort {
                match live_onnxruntime_reference(name) {
                    Some(live) => {
                        reference = live;
                        tolerance = 1e-4;
                    }
                    None => {
                        assert!(
                            std::env::var_os("CI").is_none(),
                            "CI must set EDGE_ML_PYTHON (scripts/env.sh)"
                        );
                        inference::test_support::skipped(
                            &format!("sample_models: {name} on ort"),
                            "it needs EDGE_ML_PYTHON for a reference computed on this CPU",
                        );
                        continue;
                    }
                }
            }
            let input = reference
                .iter()
                .find(|(n, _)| n == "input")
                .unwrap()
                .1
                .clone();
            let outputs = model.run([("input", Tensor::F32(input))]).unwrap();
            for (out_name, expected) in reference.iter().filter(|(n, _)| n != "input") {
                let out_name = out_name.trim_start_matches("output.");
                let got = outputs.get(out_name).unwrap().as_array::<f32>().unwrap();
                assert_eq!(
                    got.shape(),
                    expected.shape(),
                    "{name}/{out_name} on {}",
                    options.backend
                );
                let worst = got
                    .iter()
                    .zip(expected.iter())
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(
                    worst <= tolerance,
                    "{name}/{out_name} on {}: max abs difference {worst} > {tolerance}",
                    options.backend
                );
                if out_name == "logits" {
                    let argmax = |a: &ArrayD<f32>| -> Vec<usize> {
                        a.axis_iter(Axis(0))
                            .map(|row| {
                                row.iter()
                                    .enumerate()
                                    .fold(0, |b, (i, v)| if *v > row[b] { i } else { b })
                            })
                            .collect()
                    };
                    let agree = argmax(got)
                        .iter()
                        .zip(argmax(expected))
                        .filter(|(a, b)| **a == *b)
                        .count();
                    assert!(
                        agree >= 31,
                        "{name} on {}: only {agree}/32 predictions agree",
                        options.backend
                    );
                }
            }
        }
    }
}

#[test]
fn the_mlp_classifies_the_test_set_above_95_percent() {
    let mut npz = NpzReader::new(File::open(models_dir().join("digits.npz")).unwrap()).unwrap();
    let x: ArrayD<f32> = npz.by_name("x_test").unwrap();
    let y: ArrayD<i64> = npz.by_name("y_test").unwrap();
    let model = Model::load(model_bytes("digits_mlp.onnx"), &Default::default()).unwrap();
    assert_eq!(model.backend(), BackendKind::Tract);
    let n = x.shape()[0];
    let out = model
        .run_select([("input", Tensor::F32(x))], &["probabilities"])
        .unwrap();
    let probs = out.get("probabilities").unwrap().as_array::<f32>().unwrap();
    let correct = probs
        .axis_iter(Axis(0))
        .zip(y.iter())
        .filter(|(row, &label)| {
            let best = row
                .iter()
                .enumerate()
                .fold(0, |b, (i, v)| if *v > row[b] { i } else { b });
            best as i64 == label
        })
        .count();
    let accuracy = correct as f64 / n as f64;
    assert!(accuracy >= 0.95, "accuracy {accuracy}");
}

#[test]
fn selected_outputs_come_back_alone_and_in_order() {
    for options in backends("selected_outputs_come_back_alone_and_in_order") {
        let model = Model::load(model_bytes("digits_mlp.onnx"), &options).unwrap();
        let x = Tensor::from_shape_vec(&[2, 64], vec![0.5f32; 128]).unwrap();
        let out = model
            .run_select([("input", x.clone())], &["probabilities", "logits"])
            .unwrap();
        let names: Vec<_> = out.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["probabilities", "logits"]);
        let only = model.run_select([("input", x)], &["logits"]).unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only.get("logits").unwrap().shape(), &[2, 10]);
    }
}
