//! Bad models and bad inputs: every one is an error that names the problem, on both backends.

use inference::test_support::{f32_initializer, model, model_bytes, node, value_info};
use inference::{onnx, ElementType, Error, Model, Tensor};

use crate::support::backends;

fn load_err(bytes: Vec<u8>, options: &inference::LoadOptions) -> Error {
    Model::load(bytes, options).expect_err("the model must be refused")
}

#[test]
fn truncated_and_garbage_models_are_invalid_on_every_backend() {
    let good = model_bytes("digits_mlp.onnx");
    for options in backends("truncated_and_garbage_models_are_invalid_on_every_backend") {
        for cut in [1, 100, good.len() / 2, good.len() - 3] {
            let err = load_err(good[..cut].to_vec(), &options);
            assert!(
                matches!(err, Error::InvalidModel { .. }),
                "{} cut at {cut}: {err}",
                options.backend
            );
        }
        let err = load_err(b"this is not a model at all".to_vec(), &options);
        assert!(err.to_string().contains("not a valid ONNX model"), "{err}");
        assert!(matches!(
            load_err(Vec::new(), &options),
            Error::InvalidModel { .. }
        ));
    }
}

#[test]
fn an_unknown_operator_is_refused_with_its_name() {
    let bytes = model(
        vec![node("FrobnicateTensor", &["x"], &["y"])],
        vec![value_info("x", ElementType::F32, &[Some(2)])],
        vec![value_info("y", ElementType::F32, &[Some(2)])],
        vec![],
    );
    for options in backends("an_unknown_operator_is_refused_with_its_name") {
        let err = load_err(bytes.clone(), &options);
        assert!(
            matches!(err, Error::Unsupported { .. }),
            "{}: {err}",
            options.backend
        );
        assert!(
            err.to_string().contains("FrobnicateTensor"),
            "{}: {err}",
            options.backend
        );
    }
}

#[test]
fn a_missing_initializer_is_named() {
    // `w` is read by MatMul but defined nowhere.
    let bytes = model(
        vec![node("MatMul", &["x", "w"], &["y"])],
        vec![value_info("x", ElementType::F32, &[Some(1), Some(2)])],
        vec![value_info("y", ElementType::F32, &[Some(1), Some(2)])],
        vec![],
    );
    for options in backends("a_missing_initializer_is_named") {
        let err = load_err(bytes.clone(), &options);
        assert!(matches!(err, Error::InvalidModel { .. }), "{err}");
        assert!(err.to_string().contains("`w`"), "{err}");
    }
}

#[test]
fn an_inconsistent_initializer_is_refused_by_the_engine() {
    // The initializer claims 2x2 but holds 3 floats.
    let bytes = model(
        vec![node("MatMul", &["x", "w"], &["y"])],
        vec![value_info("x", ElementType::F32, &[Some(1), Some(2)])],
        vec![value_info("y", ElementType::F32, &[Some(1), Some(2)])],
        vec![f32_initializer("w", &[2, 2], &[1.0, 2.0, 3.0])],
    );
    for options in backends("an_inconsistent_initializer_is_refused_by_the_engine") {
        let err = load_err(bytes.clone(), &options);
        assert!(
            matches!(err, Error::Unsupported { .. }),
            "{}: {err}",
            options.backend
        );
    }
}

#[test]
fn unsupported_io_types_are_named() {
    let bytes = model(
        vec![node("Identity", &["x"], &["y"])],
        vec![value_info("x", ElementType::F32, &[Some(2)])],
        vec![value_info("y", ElementType::F32, &[Some(2)])],
        vec![],
    );
    // Patch the input's element type to bfloat16 (16) at the protobuf level.
    let mut proto = onnx::decode_model(&bytes).unwrap();
    if let Some(onnx::proto::type_proto::Value::TensorType(t)) = proto.graph.as_mut().unwrap().input
        [0]
    .r#type
    .as_mut()
    .unwrap()
    .value
    .as_mut()
    {
        t.elem_type = 16;
    }
    let err = Model::inspect(&onnx::encode_model(&proto)).unwrap_err();
    assert!(
        err.to_string()
            .contains("input `x` has element type bfloat16"),
        "{err}"
    );
}

fn two_inputs() -> Vec<u8> {
    model(
        vec![node("Add", &["a", "b"], &["sum"])],
        vec![
            value_info("a", ElementType::F32, &[None, Some(3)]),
            value_info("b", ElementType::F32, &[None, Some(3)]),
        ],
        vec![value_info("sum", ElementType::F32, &[None, Some(3)])],
        vec![],
    )
}

#[test]
fn input_mismatches_name_the_input_and_both_shapes() {
    for options in backends("input_mismatches_name_the_input_and_both_shapes") {
        let model = Model::load(two_inputs(), &options).unwrap();
        let f = |n: usize| Tensor::from_shape_vec(&[n, 3], vec![1.0f32; n * 3]).unwrap();

        let ok = model.run([("a", f(2)), ("b", f(2))]).unwrap();
        assert_eq!(
            ok.get("sum").unwrap().as_array::<f32>().unwrap().sum(),
            12.0
        );

        let wrong_type = Tensor::from_shape_vec(&[2, 3], vec![1i64; 6]).unwrap();
        let err = model
            .run([("a", wrong_type), ("b", f(2))])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "input `a`: expected float32[N, 3], got int64[2, 3]");

        let wrong_shape = Tensor::from_shape_vec(&[2, 4], vec![1.0f32; 8]).unwrap();
        let err = model
            .run([("a", f(2)), ("b", wrong_shape)])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "input `b`: expected float32[N, 3], got float32[2, 4]");

        let wrong_rank = Tensor::from_shape_vec(&[6], vec![1.0f32; 6]).unwrap();
        let err = model
            .run([("a", wrong_rank), ("b", f(2))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("(rank 2)"), "{err}");

        let err = model
            .run([("a", f(2)), ("b", f(5))])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "input `b`: expected float32[N, 3] with N = 2, as dimension 0 of input `a` sets it, got float32[5, 3]"
        );

        let err = model.run([("a", f(2))]).unwrap_err().to_string();
        assert_eq!(err, "missing input `b` (float32[N, 3])");

        let err = model
            .run([("a", f(2)), ("b", f(2)), ("c", f(2))])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "model has no input named `c`; its inputs are `a`, `b`");

        let err = model
            .run([("a", f(2)), ("a", f(2))])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "input `a` was given more than once");

        let err = model
            .run_select([("a", f(2)), ("b", f(2))], &["nope"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "model has no output named `nope`; its outputs are `sum`"
        );
    }
}
