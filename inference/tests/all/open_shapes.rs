//! Models as exporters write them: inputs with open or missing dims, graphs that optimisation
//! reduces to nothing, repeated node names. tract loads them (with `input_shapes` where it
//! needs sizes), and where it cannot, says at which node and what to do.

use inference::onnx::{self, make_attribute, proto as pb, AttributeValue};
use inference::test_support::{model, node};
use inference::{BackendKind, Dim, ElementType, Error, LoadOptions, Model, Tensor};

use crate::support::backends;

use Dim::{Fixed as F, Symbolic as S, Unknown as U};

fn f32_info(name: &str, dims: Option<&[Dim]>) -> pb::ValueInfoProto {
    onnx::make_value_info(name, ElementType::F32, dims)
}

fn tract() -> LoadOptions {
    LoadOptions::new(BackendKind::Tract)
}

/// `shape` filled with 0, 1, 2, ...
fn iota(shape: &[usize]) -> Tensor {
    let n = shape.iter().product::<usize>();
    Tensor::from_shape_vec(shape, (0..n).map(|i| i as f32).collect()).unwrap()
}

fn identity(input: Option<&[Dim]>) -> Vec<u8> {
    model(
        vec![node("Identity", &["x"], &["y"])],
        vec![f32_info("x", input)],
        vec![f32_info("y", input)],
        vec![],
    )
}

fn runs_as_identity(model: &Model, shape: &[usize]) {
    let out = model
        .run([("x", iota(shape))])
        .unwrap_or_else(|e| panic!("{shape:?}: {e}"));
    assert_eq!(out.get("y"), Some(&iota(shape)), "{shape:?}");
}

/// The repro: `x float[1,1] -> Slice(axes=[0], starts=[0], ends=[1]) -> y` at opset 9,
/// which tract optimises away, so that its source node is renamed after the output.
#[test]
fn a_slice_that_optimises_away_serves_on_every_backend() {
    let mut slice = node("Slice", &["x"], &["y"]);
    for (name, value) in [("axes", 0), ("starts", 0), ("ends", 1)] {
        slice
            .attribute
            .push(make_attribute(name, AttributeValue::Ints(vec![value])));
    }
    let graph = pb::GraphProto {
        node: vec![slice],
        name: "slice".into(),
        input: vec![f32_info("x", Some(&[F(1), F(1)]))],
        output: vec![f32_info("y", Some(&[F(1), F(1)]))],
        ..Default::default()
    };
    let bytes = onnx::encode_model(&onnx::new_model(graph, 9, "inference-tests"));
    for options in backends("a_slice_that_optimises_away_serves_on_every_backend") {
        let model = Model::load(bytes.clone(), &options)
            .unwrap_or_else(|e| panic!("{}: {e}", options.backend));
        let x = Tensor::from_shape_vec(&[1, 1], vec![7.0f32]).unwrap();
        let out = model.run([("x", x.clone())]).unwrap();
        assert_eq!(out.get("y"), Some(&x), "{}", options.backend);
    }
}

/// Dims exporters leave open (`-1` or no value) become symbols of their own on tract, so the
/// model runs with any sizes there, and sizes that differ from each other.
#[test]
fn open_dims_load_on_tract_and_run_with_any_size() {
    let model = Model::load(identity(Some(&[U, U])), &tract()).unwrap();
    for shape in [[2, 3], [4, 5], [1, 1]] {
        runs_as_identity(&model, &shape);
    }
    let model = Model::load(identity(Some(&[U, F(3), U, U])), &tract()).unwrap();
    for shape in [[1, 3, 2, 5], [4, 3, 7, 1]] {
        runs_as_identity(&model, &shape);
    }
}

/// `x` and `z` both `[N, 3]` share the symbol `N`, next to a dim left open.
#[test]
fn named_dims_are_one_symbol_across_inputs() {
    let bytes = model(
        vec![node("Add", &["x", "z"], &["y"])],
        vec![
            f32_info("x", Some(&[S("N".into()), F(3), U])),
            f32_info("z", Some(&[S("N".into()), F(3), F(1)])),
        ],
        vec![f32_info("y", Some(&[S("N".into()), F(3), U]))],
        vec![],
    );
    let model = Model::load(bytes, &tract()).unwrap();
    let out = model
        .run([("x", iota(&[2, 3, 4])), ("z", iota(&[2, 3, 1]))])
        .unwrap();
    assert_eq!(out.get("y").unwrap().shape(), [2, 3, 4]);
}

/// A graph output that is also its input, next to one that a node writes.
#[test]
fn an_output_that_is_an_input_is_served_on_tract() {
    let bytes = model(
        vec![node("Neg", &["x"], &["y"])],
        vec![f32_info("x", Some(&[F(2)]))],
        vec![f32_info("y", Some(&[F(2)])), f32_info("x", Some(&[F(2)]))],
        vec![],
    );
    let model = Model::load(bytes, &tract()).unwrap();
    let out = model.run([("x", iota(&[2]))]).unwrap();
    let neg = Tensor::from_shape_vec(&[2], vec![-0.0f32, -1.0]).unwrap();
    assert_eq!(out.get("y"), Some(&neg));
    assert_eq!(out.get("x"), Some(&iota(&[2])));
    let only_x = model.run_select([("x", iota(&[2]))], &["x"]).unwrap();
    assert_eq!(only_x.get("x"), Some(&iota(&[2])));
}

/// Exporters repeat node names (spox writes `F0::anon` for several nodes); tract needs its own
/// names unique.
#[test]
fn repeated_node_names_load_on_tract() {
    let mut a = node("Neg", &["x"], &["t"]);
    let mut b = node("Neg", &["t"], &["y"]);
    a.name = "anon".into();
    b.name = "anon".into();
    let bytes = model(
        vec![a, b],
        vec![f32_info("x", Some(&[F(2)]))],
        vec![f32_info("y", Some(&[F(2)]))],
        vec![],
    );
    let model = Model::load(bytes, &tract()).unwrap();
    let out = model.run([("x", iota(&[2]))]).unwrap();
    assert_eq!(out.get("y"), Some(&iota(&[2])));
}

fn unsupported_reason(err: Error) -> String {
    match err {
        Error::Unsupported {
            backend, reason, ..
        } => {
            assert_eq!(backend, BackendKind::Tract);
            reason
        }
        other => panic!("expected a refusal by tract, got {other}"),
    }
}

/// An input declared without any shape: tract cannot load it until `input_shapes` gives one;
/// the error says so. With one, calls are checked against it on every backend.
#[test]
fn input_shapes_give_tract_the_shape_the_model_leaves_out() {
    let bytes = identity(None);
    let reason = unsupported_reason(Model::load(bytes.clone(), &tract()).unwrap_err());
    for needle in [
        "fails at input `x`",
        "inputs declared without a shape: `x`",
        "`[input_shapes]`, e.g. `x = [?, ...]`",
        "backend = \"ort\"",
        "backend = \"auto\"",
    ] {
        assert!(reason.contains(needle), "missing {needle:?} in: {reason}");
    }
    for options in backends("input_shapes_give_tract_the_shape_the_model_leaves_out") {
        let options = options.with_input_shape("x", vec![F(2), S("w".into())]);
        let model = Model::load(bytes.clone(), &options)
            .unwrap_or_else(|e| panic!("{}: {e}", options.backend));
        assert_eq!(
            model.metadata().inputs[0].shape,
            Some(vec![F(2), S("w".into())])
        );
        runs_as_identity(&model, &[2, 3]);
        runs_as_identity(&model, &[2, 5]);
        let err = model.run([("x", iota(&[3, 3]))]).unwrap_err();
        assert!(
            matches!(&err, Error::InputMismatch { .. })
                && err.to_string().contains("float32[2, w]"),
            "{}: {err}",
            options.backend
        );
    }
}

/// `input_shapes` that do not fit the model are refused when it loads, naming the key.
#[test]
fn input_shapes_that_contradict_the_model_are_refused_at_load() {
    let bytes = identity(Some(&[U, F(3)]));
    let cases = [
        (
            "z",
            vec![F(1), F(3)],
            "input_shapes.z: the model has no input `z`; its inputs are `x`",
        ),
        (
            "x",
            vec![F(1)],
            "input_shapes.x: 1 dims given, but the model declares",
        ),
        ("x", vec![F(1), F(4)], "input_shapes.x: dim 1 is given as 4"),
    ];
    for options in backends("input_shapes_that_contradict_the_model_are_refused_at_load") {
        for (input, dims, expected) in &cases {
            let options = options.clone().with_input_shape(*input, dims.clone());
            let err = Model::load(bytes.clone(), &options).unwrap_err();
            assert!(
                matches!(err, Error::InvalidOption { .. }) && err.is_caller_error(),
                "{err}"
            );
            assert!(
                err.to_string().starts_with(expected),
                "{}: {err}",
                options.backend
            );
        }
    }
}

/// Where tract fails, the error names the node and its operator, and what the user can do.
#[test]
fn a_tract_failure_names_the_node_its_operator_and_the_remedies() {
    let mut matmul = node("MatMul", &["a", "b"], &["y"]);
    matmul.name = "broken_matmul".into();
    let bytes = model(
        vec![matmul],
        vec![
            f32_info("a", Some(&[F(2), F(3)])),
            f32_info("b", Some(&[F(4), F(5)])),
        ],
        vec![f32_info("y", Some(&[U]))],
        vec![],
    );
    let reason = unsupported_reason(Model::load(bytes, &tract()).unwrap_err());
    for needle in [
        "fails at node `broken_matmul` (MatMul)",
        "backend = \"ort\"",
        "backend = \"auto\"",
    ] {
        assert!(reason.contains(needle), "missing {needle:?} in: {reason}");
    }
    // Every input is fully fixed: giving shapes would not help, so it is not suggested.
    assert!(!reason.contains("input_shapes"), "{reason}");
}

/// An input that an initializer shadows is a constant, not an input: the inputs after it keep
/// their order (a `Sub` tells them apart).
#[test]
fn an_initializer_shadowed_input_does_not_shift_the_others() {
    let w = inference::test_support::f32_initializer("w", &[2], &[10.0, 20.0]);
    let bytes = model(
        vec![
            node("Sub", &["x", "z"], &["d"]),
            node("Add", &["d", "w"], &["y"]),
        ],
        vec![
            f32_info("w", Some(&[F(2)])),
            f32_info("x", Some(&[U])),
            f32_info("z", Some(&[U])),
        ],
        vec![f32_info("y", Some(&[U]))],
        vec![w],
    );
    for options in backends("an_initializer_shadowed_input_does_not_shift_the_others") {
        let model = Model::load(bytes.clone(), &options)
            .unwrap_or_else(|e| panic!("{}: {e}", options.backend));
        let x = Tensor::from_shape_vec(&[2], vec![5.0f32, 7.0]).unwrap();
        let z = Tensor::from_shape_vec(&[2], vec![1.0f32, 2.0]).unwrap();
        let out = model.run([("z", z), ("x", x)]).unwrap();
        let expected = Tensor::from_shape_vec(&[2], vec![14.0f32, 25.0]).unwrap();
        assert_eq!(out.get("y"), Some(&expected), "{}", options.backend);
    }
}
