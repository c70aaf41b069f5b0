//! Graphs that engines would run wrongly or fail on late are refused at load, on both backends:
//! operators of domains a backend does not implement, domains the model does not import, and
//! names declared twice.

use inference::onnx::{make_attribute, proto as pb, AttributeValue};
use inference::test_support::{model, node, value_info, with_opset};
use inference::{BackendKind, ElementType, Error, LoadOptions, Model, Tensor};

use crate::support::backends;

/// `y = <domain>.<op>(x)` over float32[2], importing `imports` besides the default domain.
fn one_node(op: &str, domain: &str, imports: &[&str]) -> Vec<u8> {
    let mut n = node(op, &["x"], &["y"]);
    n.domain = domain.to_owned();
    let bytes = model(
        vec![n],
        vec![value_info("x", ElementType::F32, &[Some(2)])],
        vec![value_info("y", ElementType::F32, &[Some(2)])],
        vec![],
    );
    imports
        .iter()
        .fold(bytes, |bytes, d| with_opset(&bytes, d, 1))
}

fn load_err(bytes: Vec<u8>, options: &LoadOptions) -> Error {
    match Model::load(bytes, options) {
        Ok(_) => panic!("{}: the model must be refused", options.backend),
        Err(e) => e,
    }
}

#[test]
fn a_node_of_an_unknown_domain_is_refused_on_every_backend() {
    for options in backends("a_node_of_an_unknown_domain_is_refused_on_every_backend") {
        let err = load_err(one_node("Relu", "com.evil", &["com.evil"]), &options);
        assert!(
            matches!(&err, Error::Unsupported { backend, .. } if *backend == options.backend),
            "{}: {err}",
            options.backend
        );
        let msg = err.to_string();
        assert!(
            msg.contains("node `Relu_0`") && msg.contains("`com.evil`") && msg.contains("`Relu`"),
            "{}: {msg}",
            options.backend
        );
        // The same node in the default domain, spelled either way, runs.
        for domain in ["", "ai.onnx"] {
            let model = Model::load(one_node("Relu", domain, &[]), &options).unwrap();
            let x = Tensor::from_shape_vec(&[2], vec![-1.0f32, 3.0]).unwrap();
            let y = model.run([("x", x)]).unwrap();
            let y = y.get("y").and_then(|t| t.as_array::<f32>()).unwrap();
            assert_eq!(y.iter().copied().collect::<Vec<_>>(), [0.0, 3.0]);
        }
    }
}

#[test]
fn a_domain_the_model_does_not_import_is_refused() {
    for options in backends("a_domain_the_model_does_not_import_is_refused") {
        let err = load_err(one_node("Relu", "com.evil", &[]), &options);
        assert!(matches!(err, Error::InvalidModel { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("`com.evil`") && msg.contains("does not import"),
            "{msg}"
        );
    }
}

#[test]
fn microsoft_contrib_operators_run_on_ort_only() {
    let bytes = one_node("Gelu", "com.microsoft", &["com.microsoft"]);
    for options in backends("microsoft_contrib_operators_run_on_ort_only") {
        match options.backend {
            BackendKind::Tract => {
                let msg = load_err(bytes.clone(), &options).to_string();
                assert!(
                    msg.contains("`com.microsoft`") && msg.contains("tract"),
                    "{msg}"
                );
            }
            BackendKind::Ort => {
                let model = Model::load(bytes.clone(), &options).unwrap();
                let x = Tensor::from_shape_vec(&[2], vec![0.0f32, 10.0]).unwrap();
                let y = model.run([("x", x)]).unwrap();
                let y = y.get("y").and_then(|t| t.as_array::<f32>()).unwrap();
                assert_eq!(y.iter().copied().collect::<Vec<_>>(), [0.0, 10.0]);
            }
        }
    }
}

#[test]
fn an_ml_operator_outside_its_domain_is_refused_by_tract() {
    let options = LoadOptions::new(BackendKind::Tract);
    let msg = load_err(one_node("Normalizer", "", &[]), &options).to_string();
    assert!(msg.contains("`ai.onnx.ml`"), "{msg}");
    let msg = load_err(one_node("Imputer", "ai.onnx.ml", &["ai.onnx.ml"]), &options).to_string();
    assert!(msg.contains("Imputer") && msg.contains("only"), "{msg}");
}

#[test]
fn a_node_of_an_unknown_domain_inside_a_subgraph_is_refused() {
    // If(cond) whose branches hold a `com.evil.Relu`.
    let mut relu = node("Relu", &["x"], &["b"]);
    relu.domain = "com.evil".to_owned();
    let branch = pb::GraphProto {
        name: "branch".to_owned(),
        node: vec![relu],
        output: vec![value_info("b", ElementType::F32, &[Some(2)])],
        ..Default::default()
    };
    let mut if_node = node("If", &["cond"], &["y"]);
    if_node.attribute = ["then_branch", "else_branch"]
        .iter()
        .map(|name| make_attribute(name, AttributeValue::Graph(branch.clone())))
        .collect();
    let bytes = model(
        vec![if_node],
        vec![
            value_info("x", ElementType::F32, &[Some(2)]),
            value_info("cond", ElementType::Bool, &[]),
        ],
        vec![value_info("y", ElementType::F32, &[Some(2)])],
        vec![],
    );
    let bytes = with_opset(&bytes, "com.evil", 1);
    for options in backends("a_node_of_an_unknown_domain_inside_a_subgraph_is_refused") {
        let msg = load_err(bytes.clone(), &options).to_string();
        assert!(
            msg.contains("subgraph `then_branch`") && msg.contains("`com.evil`"),
            "{}: {msg}",
            options.backend
        );
    }
}

/// `y = Relu(x)`, `z = Neg(x)`, with the graph's inputs and outputs as given.
fn names_model(inputs: &[&str], outputs: &[&str], z_from: &str) -> Vec<u8> {
    model(
        vec![node("Relu", &["x"], &["y"]), node("Neg", &["x"], &[z_from])],
        inputs
            .iter()
            .map(|n| value_info(n, ElementType::F32, &[Some(2)]))
            .collect(),
        outputs
            .iter()
            .map(|n| value_info(n, ElementType::F32, &[Some(2)]))
            .collect(),
        vec![],
    )
}

#[test]
fn names_declared_twice_are_refused_at_load() {
    for options in backends("names_declared_twice_are_refused_at_load") {
        for (bytes, expected) in [
            (
                names_model(&["x"], &["y", "z", "y"], "z"),
                "graph output `y` is declared more than once",
            ),
            (
                names_model(&["x", "x"], &["y"], "z"),
                "graph input `x` is declared more than once",
            ),
            (
                names_model(&["x"], &["y"], "y"),
                "`y` is written by node `Relu_0` (Relu) and again by node `Neg_0` (Neg)",
            ),
            (
                names_model(&["x"], &["x"], "x"),
                "node `Neg_0` (Neg) writes `x`, which is already a graph input",
            ),
        ] {
            let err = load_err(bytes, &options);
            assert!(
                matches!(err, Error::InvalidModel { .. }),
                "{}: {err}",
                options.backend
            );
            assert!(
                err.to_string().contains(expected),
                "{}: {err}",
                options.backend
            );
        }
    }
}
