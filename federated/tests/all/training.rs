//! The trainer on real models: refusals, learning on digits, and the exported model served by
//! `inference` unchanged.

use federated::data::Dataset;
use federated::train::{Loss, TrainConfig, TrainError, Trainer};
use inference::onnx;
use inference::test_support::{model, model_bytes, node, value_info};
use inference::{ElementType, LoadOptions, Model, Tensor};

fn digits(name: &str) -> Dataset {
    let (x, y) = inference::test_support::digits(name);
    Dataset::new(x, vec![64], y).unwrap()
}

#[test]
fn unsupported_models_are_refused_by_name() {
    let topk = model(
        vec![node("TopK", &["x", "k"], &["y"])],
        vec![value_info("x", ElementType::F32, &[None, Some(3)])],
        vec![value_info("y", ElementType::F32, &[None, Some(3)])],
        vec![inference::test_support::f32_initializer("w", &[1], &[1.0])],
    );
    let err = Trainer::new(&topk).unwrap_err();
    assert!(
        matches!(err, TrainError::UnsupportedOp { ref op, .. } if op == "TopK"),
        "{err}"
    );
    assert!(err.to_string().contains("`TopK`"));
    let nothing = model(
        vec![node("Relu", &["x"], &["y"])],
        vec![value_info("x", ElementType::F32, &[None, Some(3)])],
        vec![value_info("y", ElementType::F32, &[None, Some(3)])],
        vec![],
    );
    assert!(matches!(
        Trainer::new(&nothing),
        Err(TrainError::NothingToTrain)
    ));
    assert!(matches!(
        Trainer::new(b"garbage"),
        Err(TrainError::Format(onnx::FormatError::Decode { .. }))
    ));
    let q = model_bytes("digits_cnn_int8.onnx");
    assert!(matches!(
        Trainer::new(&q),
        Err(TrainError::UnsupportedOp { .. })
    ));
}

#[test]
fn malformed_tensors_and_attributes_are_refused_naming_them() {
    use inference::test_support::f32_initializer;
    let softmax = |axis: onnx::AttributeValue, w: inference::onnx::proto::TensorProto| {
        let mut n = node("Softmax", &["x"], &["y"]);
        onnx::set_attribute(&mut n, "axis", axis);
        model(
            vec![n, node("Add", &["y", "w"], &["z"])],
            vec![value_info("x", ElementType::F32, &[None, Some(3)])],
            vec![value_info("z", ElementType::F32, &[None, Some(3)])],
            vec![w],
        )
    };
    let w = || f32_initializer("w", &[3], &[1.0, 2.0, 3.0]);
    assert!(Trainer::new(&softmax(onnx::AttributeValue::Int(1), w())).is_ok());
    // An axis given as a float was read as 0 before the format layer checked types.
    let err = Trainer::new(&softmax(onnx::AttributeValue::Float(1.0), w())).unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::Format(onnx::FormatError::AttributeType { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("`axis` is of type FLOAT"), "{err}");
    let short = f32_initializer("w", &[3], &[1.0, 2.0]);
    let err = Trainer::new(&softmax(onnx::AttributeValue::Int(1), short)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid model: `w`: shape [3] holds 3 elements, but `float_data` has 2"
    );
}

#[test]
fn the_cnn_learns_digits_and_exports_a_servable_model() {
    let onnx = model_bytes("digits_cnn.onnx");
    let mut trainer = Trainer::new(&onnx).unwrap();
    let (train, test) = (digits("train"), digits("test"));
    let before = trainer.evaluate(&test, 128, Loss::CrossEntropy).unwrap();
    let config = TrainConfig {
        epochs: 3,
        ..TrainConfig::default()
    };
    let report = trainer.fit(&train, &config, None).unwrap();
    assert_eq!(report.steps, 3 * train.len().div_ceil(32));
    let after = trainer.evaluate(&test, 128, Loss::CrossEntropy).unwrap();
    assert!(before.accuracy < 0.3, "random init: {before:?}");
    assert!(
        after.accuracy > 0.85 && after.loss < before.loss,
        "trained: {after:?}"
    );

    let exported = trainer.export_onnx().unwrap();
    // Identical but for initializer data.
    let strip = |bytes: &[u8]| {
        let mut p = onnx::decode_model(bytes).unwrap();
        for t in &mut onnx::graph_mut(&mut p).unwrap().initializer {
            t.raw_data.clear();
            t.float_data.clear();
        }
        p
    };
    assert_eq!(strip(&exported), strip(&onnx));
    let served = Model::load(exported, &LoadOptions::default()).unwrap();
    let x = Tensor::from_shape_vec(&[test.len(), 1, 8, 8], test.x.clone()).unwrap();
    let out = served.run([("input", x)]).unwrap();
    let logits = out.get("logits").unwrap().as_array::<f32>().unwrap();
    let correct = logits
        .outer_iter()
        .zip(&test.y)
        .filter(|(row, &y)| {
            let best = row
                .iter()
                .enumerate()
                .fold(0, |b, (i, v)| if *v > row[b] { i } else { b });
            best as i64 == y
        })
        .count();
    let served_accuracy = correct as f64 / test.len() as f64;
    assert!(
        (served_accuracy - after.accuracy).abs() < 0.01,
        "{served_accuracy} vs {}",
        after.accuracy
    );
}

#[test]
fn fedprox_pulls_towards_the_anchor_and_max_steps_stop_early() {
    let onnx = model_bytes("digits_mlp.onnx");
    let train = digits("train");
    let global = Trainer::new(&onnx).unwrap().parameters().unwrap();
    let drift = |mu: f64| {
        let mut t = Trainer::new(&onnx).unwrap();
        let config = TrainConfig {
            max_steps: Some(20),
            proximal_mu: mu,
            optimizer: federated::train::OptimizerConfig::Sgd {
                lr: 0.2,
                momentum: 0.0,
                weight_decay: 0.0,
            },
            ..TrainConfig::default()
        };
        let r = t.fit(&train, &config, Some(&global)).unwrap();
        assert_eq!(r.steps, 20);
        t.parameters().unwrap().delta(&global).unwrap().l2_norm()
    };
    let free = drift(0.0);
    let held = drift(2.0);
    assert!(held < free, "μ = 2 drifted {held}, μ = 0 drifted {free}");
}

#[test]
fn batchnorm_running_statistics_are_updated_and_exported() {
    use inference::test_support::f32_initializer;
    // x[N, 2] → BatchNormalization → Gemm → logits[N, 2]
    let onnx = model(
        vec![
            node(
                "BatchNormalization",
                &["x", "s", "b", "mean", "var"],
                &["h"],
            ),
            node("Gemm", &["h", "w", "c"], &["logits"]),
        ],
        vec![value_info("x", ElementType::F32, &[None, Some(2)])],
        vec![value_info("logits", ElementType::F32, &[None, Some(2)])],
        vec![
            f32_initializer("s", &[2], &[1.0, 1.0]),
            f32_initializer("b", &[2], &[0.0, 0.0]),
            f32_initializer("mean", &[2], &[0.0, 0.0]),
            f32_initializer("var", &[2], &[1.0, 1.0]),
            f32_initializer("w", &[2, 2], &[1.0, 0.0, 0.0, 1.0]),
            f32_initializer("c", &[2], &[0.0, 0.0]),
        ],
    );
    let mut trainer = Trainer::new(&onnx).unwrap();
    let names: Vec<&str> = trainer.vars().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["s", "b", "w", "c"],
        "running statistics are not trained"
    );
    // Features centred at (10, -4) with spread 2: running stats must move towards them.
    let x: Vec<f32> = (0..64)
        .flat_map(|i| [10.0 + (i % 5) as f32 - 2.0, -4.0 + (i % 3) as f32 - 1.0])
        .collect();
    let y: Vec<i64> = (0..64).map(|i| i % 2).collect();
    let data = Dataset::new(x, vec![2], y).unwrap();
    trainer
        .fit(
            &data,
            &TrainConfig {
                epochs: 20,
                ..TrainConfig::default()
            },
            None,
        )
        .unwrap();
    let exported = onnx::decode_model(&trainer.export_onnx().unwrap()).unwrap();
    let read = |name: &str| -> Vec<f32> {
        let t = onnx::initializer(onnx::graph(&exported).unwrap(), name).unwrap();
        let tensor = onnx::tensor_from_proto(t).unwrap();
        tensor.as_array::<f32>().unwrap().iter().copied().collect()
    };
    let mean = read("mean");
    let var = read("var");
    assert!(
        (mean[0] - 10.0).abs() < 0.5 && (mean[1] + 4.0).abs() < 0.5,
        "running mean {mean:?}"
    );
    assert!(
        var[0] > 1.0 && var[1] < 1.0,
        "running var {var:?} (true 2.0 and 0.67)"
    );
}
