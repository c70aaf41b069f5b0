//! Models are self-contained: a tensor kept in an external file is refused on both backends,
//! wherever it sits in the model, unless the caller names a directory, and then only a plain
//! file inside that directory is read.

use inference::onnx::{self, make_attribute, proto as pb, AttributeValue};
use inference::test_support::{external_data_model, model, node, value_info};
use inference::{ElementType, Error, LoadOptions, Model, Tensor};

use crate::support::backends;

const WEIGHTS: [f32; 4] = [0.5, -1.0, 2.0, 10.0];

fn weight_bytes() -> Vec<u8> {
    WEIGHTS.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn refusal(bytes: Vec<u8>, options: &LoadOptions) -> String {
    match Model::load(bytes, options) {
        Ok(_) => panic!("{}: a model with external data loaded", options.backend),
        Err(e @ Error::ExternalData { .. }) => e.to_string(),
        Err(e) => panic!("{}: refused for another reason: {e}", options.backend),
    }
}

fn run(model: &Model) -> Vec<f32> {
    let x = Tensor::from_shape_vec(&[4], vec![1.0f32; 4]).unwrap();
    let out = model.run([("x", x)]).unwrap();
    out.get("y")
        .and_then(|t| t.as_array::<f32>())
        .unwrap()
        .iter()
        .copied()
        .collect()
}

#[test]
fn external_data_is_refused_by_default_naming_tensor_and_location() {
    for options in backends("external_data_is_refused_by_default_naming_tensor_and_location") {
        for location in ["etc/passwd", "/etc/passwd", "../x", "*/_ORT_MEM_ADDR_/*"] {
            let msg = refusal(external_data_model(location, &[]), &options);
            assert!(
                msg.contains("initializer `w`")
                    && msg.contains(&format!("`{location}`"))
                    && msg.contains("external"),
                "{}: {msg}",
                options.backend
            );
        }
        // A path alone, without the EXTERNAL flag, is refused too.
        let mut proto = onnx::decode_model(&external_data_model("w.bin", &[])).unwrap();
        proto.graph.as_mut().unwrap().initializer[0].data_location = None;
        refusal(onnx::encode_model(&proto), &options);
    }
    let err = Model::inspect(&external_data_model("etc/passwd", &[])).unwrap_err();
    assert!(matches!(err, Error::ExternalData { .. }), "{err}");
}

/// A `Constant` whose `value` is external, in a graph or nested in an `If` branch.
fn constant_model(in_subgraph: bool) -> Vec<u8> {
    let value = pb::TensorProto {
        dims: vec![4],
        data_type: ElementType::F32.onnx_code(),
        name: "c".to_owned(),
        data_location: Some(pb::tensor_proto::DataLocation::External as i32),
        external_data: vec![pb::StringStringEntryProto {
            key: "location".to_owned(),
            value: "etc/passwd".to_owned(),
        }],
        ..Default::default()
    };
    let mut constant = node("Constant", &[], &["c"]);
    constant
        .attribute
        .push(make_attribute("value", AttributeValue::Tensor(value)));
    if !in_subgraph {
        return model(
            vec![constant, node("Add", &["x", "c"], &["y"])],
            vec![value_info("x", ElementType::F32, &[Some(4)])],
            vec![value_info("y", ElementType::F32, &[Some(4)])],
            vec![],
        );
    }
    let branch = |nodes: Vec<pb::NodeProto>| pb::GraphProto {
        name: "branch".to_owned(),
        node: nodes,
        output: vec![value_info("c", ElementType::F32, &[Some(4)])],
        ..Default::default()
    };
    let mut if_node = node("If", &["cond"], &["c2"]);
    if_node.attribute = vec![
        make_attribute(
            "then_branch",
            AttributeValue::Graph(branch(vec![constant.clone()])),
        ),
        make_attribute("else_branch", AttributeValue::Graph(branch(vec![constant]))),
    ];
    model(
        vec![if_node, node("Add", &["x", "c2"], &["y"])],
        vec![
            value_info("x", ElementType::F32, &[Some(4)]),
            value_info("cond", ElementType::Bool, &[]),
        ],
        vec![value_info("y", ElementType::F32, &[Some(4)])],
        vec![],
    )
}

#[test]
fn external_data_in_attributes_and_subgraphs_is_refused() {
    for options in backends("external_data_in_attributes_and_subgraphs_is_refused") {
        let msg = refusal(constant_model(false), &options);
        assert!(
            msg.contains("attribute `value`") && msg.contains("Constant"),
            "{msg}"
        );
        let msg = refusal(constant_model(true), &options);
        assert!(
            msg.contains("subgraph `then_branch`") && msg.contains("`etc/passwd`"),
            "{msg}"
        );
    }
}

#[test]
fn with_a_directory_a_file_inside_it_is_inlined_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("weights.bin"), weight_bytes()).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let mut padded = b"8 bytes!".to_vec();
    padded.extend(weight_bytes());
    padded.extend(b"trailing");
    std::fs::write(dir.path().join("sub").join("packed.bin"), padded).unwrap();
    let expected: Vec<f32> = WEIGHTS.iter().map(|w| w + 1.0).collect();
    for options in backends("with_a_directory_a_file_inside_it_is_inlined_and_runs") {
        let options = options.with_external_data_dir(dir.path());
        for bytes in [
            external_data_model("weights.bin", &[]),
            external_data_model("./weights.bin", &[("offset", "0"), ("length", "16")]),
            external_data_model("sub/packed.bin", &[("offset", "8"), ("length", "16")]),
        ] {
            let model =
                Model::load(bytes, &options).unwrap_or_else(|e| panic!("{}: {e}", options.backend));
            assert_eq!(run(&model), expected, "{}", options.backend);
        }
    }
}

#[cfg(unix)]
#[test]
fn with_a_directory_escapes_links_and_bad_ranges_are_refused() {
    let outer = tempfile::tempdir().unwrap();
    let dir = outer.path().join("models");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(outer.path().join("x"), weight_bytes()).unwrap();
    std::fs::write(dir.join("weights.bin"), weight_bytes()).unwrap();
    std::os::unix::fs::symlink(dir.join("weights.bin"), dir.join("link.bin")).unwrap();
    std::os::unix::fs::symlink(&dir, dir.join("looped")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("passwd")).unwrap();
    /// A location, its other entries, and a phrase the refusal must hold.
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static str,
    );
    let cases: [Case; 10] = [
        ("../x", &[], "`..`"),
        ("/etc/passwd", &[], "absolute"),
        ("etc/passwd", &[], "cannot be read"),
        ("link.bin", &[], "symbolic link"),
        ("passwd", &[], "symbolic link"),
        ("looped/weights.bin", &[], "symbolic link"),
        ("", &[], "no `location`"),
        (
            "weights.bin",
            &[("offset", "8"), ("length", "16")],
            "within the file",
        ),
        (
            "weights.bin",
            &[("offset", "18446744073709551615"), ("length", "2")],
            "within the file",
        ),
        ("weights.bin", &[("offset", "-1")], "whole number"),
    ];
    for options in backends("with_a_directory_escapes_links_and_bad_ranges_are_refused") {
        let options = options.with_external_data_dir(&dir);
        for (location, entries, why) in cases {
            let msg = refusal(external_data_model(location, entries), &options);
            assert!(msg.contains(why), "{} {location:?}: {msg}", options.backend);
        }
        let missing = options
            .clone()
            .with_external_data_dir(outer.path().join("nope"));
        let msg = refusal(external_data_model("weights.bin", &[]), &missing);
        assert!(msg.contains("cannot be opened"), "{msg}");
    }
}
