//! Declared dimensions as ONNX means them: a real `dim_param` name ties dimensions together;
//! `?`, unset, negative and the placeholder names exporters write are each independent.

use inference::onnx::proto as pb;
use inference::onnx::proto::tensor_shape_proto::{dimension, Dimension};
use inference::test_support::{model, node, ort_library};
use inference::{BackendKind, Dim, ElementType, Error, LoadOptions, Model, Tensor};

/// A dimension as an exporter writes it: a number is a `dim_value` (negative ones included),
/// `""` leaves the dimension unset, anything else is a `dim_param`.
fn dim(d: &str) -> Dimension {
    let value = match d.parse::<i64>() {
        Ok(n) => Some(dimension::Value::DimValue(n)),
        Err(_) if d.is_empty() => None,
        Err(_) => Some(dimension::Value::DimParam(d.to_owned())),
    };
    Dimension {
        denotation: String::new(),
        value,
    }
}

fn value_info(name: &str, dims: &[&str]) -> pb::ValueInfoProto {
    let mut vi = inference::onnx::make_value_info(name, ElementType::F32, Some(&[]));
    if let Some(pb::type_proto::Value::TensorType(t)) =
        vi.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.shape = Some(pb::TensorShapeProto {
            dim: dims.iter().map(|d| dim(d)).collect(),
        });
    }
    vi
}

/// `y = Identity(x)`, `x` declared with `dims`, `y` without a shape.
fn identity(dims: &[&str]) -> Vec<u8> {
    let y = inference::onnx::make_value_info("y", ElementType::F32, None);
    model(
        vec![node("Identity", &["x"], &["y"])],
        vec![value_info("x", dims)],
        vec![y],
        vec![],
    )
}

/// `z = Add(a, b)`, both declared with `dims`.
fn add(dims: &[&str]) -> Vec<u8> {
    let z = inference::onnx::make_value_info("z", ElementType::F32, None);
    model(
        vec![node("Add", &["a", "b"], &["z"])],
        vec![value_info("a", dims), value_info("b", dims)],
        vec![z],
        vec![],
    )
}

fn zeros(shape: &[usize]) -> Tensor {
    Tensor::from_shape_vec(shape, vec![0.0f32; shape.iter().product()]).unwrap()
}

fn runs(model: &Model, shape: &[usize]) -> Result<(), Error> {
    let out = model.run([("x", zeros(shape))])?;
    assert_eq!(out.get("y").unwrap().shape(), shape);
    Ok(())
}

#[test]
fn placeholder_names_are_unknown_and_real_names_are_symbols() {
    let meta = Model::inspect(&identity(&[
        "-1",
        "3",
        "?",
        "",
        "unk__214",
        "p2o.DynamicDimension.0",
    ]))
    .unwrap();
    let shape = meta.inputs[0].shape.clone().unwrap();
    assert_eq!(
        shape,
        vec![
            Dim::Unknown,
            Dim::Fixed(3),
            Dim::Unknown,
            Dim::Unknown,
            Dim::Unknown,
            Dim::Unknown
        ]
    );
    assert_eq!(meta.inputs[0].to_string(), "float32[?, 3, ?, ?, ?, ?]");
    let meta = Model::inspect(&identity(&["batch", "s0", "height"])).unwrap();
    assert_eq!(
        meta.inputs[0].shape.clone().unwrap(),
        vec![
            Dim::Symbolic("batch".into()),
            Dim::Symbolic("s0".into()),
            Dim::Symbolic("height".into())
        ]
    );
}

/// The repro of issue 12, on the engine given: placeholders take any size, named dims tie,
/// and no message binds a `?` to a size.
fn check_dims_on(options: &LoadOptions) {
    let backend = options.backend;
    let load =
        |bytes: Vec<u8>| Model::load(bytes, options).unwrap_or_else(|e| panic!("{backend}: {e}"));

    let square = load(identity(&["?", "?"]));
    runs(&square, &[2, 3]).unwrap_or_else(|e| panic!("{backend}: [?, ?] refused [2, 3]: {e}"));
    runs(&square, &[3, 3]).unwrap_or_else(|e| panic!("{backend}: [?, ?] refused [3, 3]: {e}"));

    let paddle = load(identity(&["-1", "3", "?", "?"]));
    runs(&paddle, &[4, 3, 48, 192])
        .unwrap_or_else(|e| panic!("{backend}: [-1, 3, ?, ?] refused [4, 3, 48, 192]: {e}"));
    let err = runs(&paddle, &[4, 2, 48, 192]).unwrap_err().to_string();
    assert_eq!(
        err, "input `x`: expected float32[?, 3, ?, ?], got float32[4, 2, 48, 192]",
        "{backend}"
    );

    let placeholders = load(identity(&["unk__1", "unk__1", "DynamicDimension.0", ""]));
    runs(&placeholders, &[1, 2, 3, 4]).unwrap_or_else(|e| panic!("{backend}: {e}"));

    let tied = load(identity(&["N", "N"]));
    runs(&tied, &[3, 3]).unwrap_or_else(|e| panic!("{backend}: {e}"));
    let err = runs(&tied, &[2, 3]).unwrap_err().to_string();
    assert_eq!(
        err,
        "input `x`: expected float32[N, N] with N = 2, as dimension 0 of input `x` sets it, got float32[2, 3]",
        "{backend}"
    );

    // Across inputs: `?` never ties `a` to `b`; a real name does.
    let loose = load(add(&["?", "3"]));
    let out = loose
        .run([("a", zeros(&[2, 3])), ("b", zeros(&[1, 3]))])
        .unwrap_or_else(|e| panic!("{backend}: [?, 3] + [?, 3] refused [2, 3] + [1, 3]: {e}"));
    assert_eq!(out.get("z").unwrap().shape(), &[2, 3]);
    let strict = load(add(&["batch", "3"]));
    let err = strict
        .run([("a", zeros(&[2, 3])), ("b", zeros(&[1, 3]))])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "input `b`: expected float32[batch, 3] with batch = 2, as dimension 0 of input `a` sets it, got float32[1, 3]",
        "{backend}"
    );
    assert!(!err.contains("? ="), "{backend}: {err}");
}

#[test]
fn placeholder_dims_take_any_size_and_named_dims_tie_on_ort() {
    let Some(lib) = ort_library("placeholder_dims_take_any_size_and_named_dims_tie_on_ort") else {
        return;
    };
    check_dims_on(&LoadOptions::new(BackendKind::Ort).with_ort_library(lib));
}

/// Needs tract to load unknown and placeholder dims as fresh symbols (branch `i12-tract` of
/// issue 12): before that, tract reads `?` as one symbol and refuses `[2, 3]` for `[?, ?]`.
/// The lead enables it once both branches are merged.
#[test]
fn placeholder_dims_take_any_size_and_named_dims_tie_on_tract() {
    check_dims_on(&LoadOptions::new(BackendKind::Tract));
}
