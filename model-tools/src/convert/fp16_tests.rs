use std::collections::HashSet;

use inference::onnx::proto::{GraphProto, ModelProto, NodeProto, ValueInfoProto};
use inference::onnx::{self, AttributeValue};
use inference::test_support::{self as ts, model_bytes};
use inference::ElementType;

use super::*;

fn convert(bytes: &[u8], options: &Fp16Options) -> (ModelProto, Fp16Report) {
    let (out, report) = convert_fp16(bytes, options).unwrap();
    assert_eq!(out.len(), report.output_bytes);
    let model = onnx::decode_model(&out).unwrap();
    assert_topological(onnx::graph(&model).unwrap(), &HashSet::new());
    (model, report)
}

/// Every value a node reads is defined before it (or outside the graph), recursively.
fn assert_topological(graph: &GraphProto, outer: &HashSet<String>) {
    let mut defined: HashSet<String> = outer.clone();
    defined.extend(graph.input.iter().map(|i| i.name.clone()));
    defined.extend(graph.initializer.iter().map(|t| t.name.clone()));
    for node in &graph.node {
        for input in node.input.iter().filter(|i| !i.is_empty()) {
            assert!(
                defined.contains(input),
                "{} reads `{input}` before it is defined",
                onnx::node_label(node)
            );
        }
        for a in &node.attribute {
            for g in a.g.iter().chain(&a.graphs) {
                assert_topological(g, &defined);
            }
        }
        defined.extend(node.output.iter().cloned());
    }
    for out in &graph.output {
        assert!(
            defined.contains(&out.name),
            "output `{}` is not defined",
            out.name
        );
    }
}

fn elem_types(vis: &[ValueInfoProto]) -> Vec<i32> {
    vis.iter()
        .map(|vi| onnx::declared_tensor(vi).unwrap().elem_type)
        .collect()
}

fn node<'a>(graph: &'a GraphProto, op: &str) -> &'a NodeProto {
    graph.node.iter().find(|n| n.op_type == op).unwrap()
}

fn cast_to(node: &NodeProto) -> i64 {
    assert_eq!(node.op_type, "Cast");
    onnx::attr_int(node, "to").unwrap().unwrap()
}

fn no_block_list() -> Fp16Options {
    Fp16Options {
        default_block_list: false,
        ..Fp16Options::default()
    }
}

#[test]
fn mlp_weights_io_and_compute_become_float16() {
    let original = model_bytes("digits_mlp.onnx");
    let float_initializers = onnx::graph(&onnx::decode_model(&original).unwrap())
        .unwrap()
        .initializer
        .iter()
        .filter(|t| t.data_type == FLOAT)
        .count();
    let (model, report) = convert(&original, &no_block_list());
    let graph = onnx::graph(&model).unwrap();
    assert!(graph.initializer.iter().all(|t| t.data_type == FLOAT16));
    assert_eq!(report.tensors_converted, float_initializers);
    assert_eq!(elem_types(&graph.input), [FLOAT16]);
    assert_eq!(elem_types(&graph.output), [FLOAT16, FLOAT16]);
    assert_eq!(report.casts_inserted, 0);
    assert!(report.kept_float.is_empty());
    assert!(!graph.node.iter().any(|n| n.op_type == "Cast"));
    let ratio = report.output_bytes as f64 / report.input_bytes as f64;
    assert!((0.45..0.6).contains(&ratio), "size ratio {ratio}");
    // The weights are the float32 ones, rounded.
    let before = onnx::decode_model(&original).unwrap();
    let w32 = onnx::tensor_from_proto(&onnx::graph(&before).unwrap().initializer[0]).unwrap();
    let w16 = onnx::tensor_from_proto(&graph.initializer[0]).unwrap();
    let (Tensor::F32(a), Tensor::F16(b)) = (w32, w16) else {
        panic!("unexpected types");
    };
    for (x, y) in a.iter().zip(b.iter()) {
        assert!(
            (x - y.to_f32()).abs() <= x.abs() / 1024.0 + 1e-7,
            "{x} vs {y}"
        );
    }
}

#[test]
fn keep_io_types_casts_at_the_boundary_and_keeps_the_names() {
    let options = Fp16Options {
        keep_io_types: true,
        ..no_block_list()
    };
    let (model, report) = convert(&model_bytes("digits_mlp.onnx"), &options);
    let graph = onnx::graph(&model).unwrap();
    assert_eq!(elem_types(&graph.input), [FLOAT]);
    assert_eq!(elem_types(&graph.output), [FLOAT, FLOAT]);
    let names: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["logits", "probabilities"]);
    assert_eq!(report.casts_inserted, 3);
    let first = &graph.node[0];
    assert_eq!((first.input[0].as_str(), cast_to(first)), ("input", 10));
    for out in ["logits", "probabilities"] {
        let writer = graph.node.iter().find(|n| n.output[0] == out).unwrap();
        assert_eq!(cast_to(writer), 1);
        // The float16 value keeps being read by the rest of the graph.
        let fp16 = &writer.input[0];
        assert!(graph
            .value_info
            .iter()
            .any(|vi| &vi.name == fp16 && onnx::declared_tensor(vi).unwrap().elem_type == FLOAT16));
    }
    let softmax = node(graph, "Softmax");
    assert_ne!(
        softmax.input[0], "logits",
        "Softmax must read the float16 logits"
    );
}

#[test]
fn blocked_ops_compute_in_float32_between_casts() {
    let options = Fp16Options {
        block_ops: vec!["Relu".to_owned()],
        ..no_block_list()
    };
    let (model, report) = convert(&model_bytes("digits_mlp.onnx"), &options);
    let graph = onnx::graph(&model).unwrap();
    assert_eq!(report.kept_float.len(), 1);
    assert_eq!(report.kept_float[0].op, "Relu");
    assert_eq!(report.kept_float[0].reason, KeepReason::BlockOps);
    assert_eq!(report.casts_inserted, 2);
    let relu = node(graph, "Relu");
    let before = graph
        .node
        .iter()
        .find(|n| n.output[0] == relu.input[0])
        .unwrap();
    assert_eq!(cast_to(before), 1);
    let after = graph
        .node
        .iter()
        .find(|n| n.input.first() == Some(&relu.output[0]))
        .unwrap();
    assert_eq!(cast_to(after), 10);
}

#[test]
fn weights_of_float32_nodes_are_stored_in_float16_unless_asked_not_to() {
    let options = Fp16Options {
        block_ops: vec!["Gemm".to_owned()],
        ..no_block_list()
    };
    let (model, report) = convert(&model_bytes("digits_mlp.onnx"), &options);
    let graph = onnx::graph(&model).unwrap();
    assert!(graph.initializer.iter().all(|t| t.data_type == FLOAT16));
    assert!(report.initializers_kept_float.is_empty());
    // Each weight is cast back to float32 at the top of the graph, for its Gemm.
    for t in &graph.initializer {
        let cast = graph
            .node
            .iter()
            .find(|n| n.input.first() == Some(&t.name))
            .unwrap();
        assert_eq!(cast_to(cast), 1, "{}", t.name);
    }
    assert!(report.output_bytes * 10 < report.input_bytes * 6);

    let options = Fp16Options {
        keep_float_weights: true,
        ..options
    };
    let (model, report) = convert(&model_bytes("digits_mlp.onnx"), &options);
    let graph = onnx::graph(&model).unwrap();
    assert!(graph.initializer.iter().all(|t| t.data_type == FLOAT));
    assert_eq!(
        report.initializers_kept_float.len(),
        graph.initializer.len()
    );
    assert_eq!(report.tensors_converted, 0);
    // The input is cast to float32 for the first Gemm.
    assert_eq!(cast_to(&graph.node[0]), 1);
}

#[test]
fn default_block_list_is_applied_and_can_be_turned_off() {
    let op = DEFAULT_FP16_BLOCK_OPS[0];
    let bytes = ts::model(
        vec![ts::node(op, &["x"], &["y"])],
        vec![ts::value_info("x", ElementType::F32, &[None, Some(3)])],
        vec![ts::value_info("y", ElementType::F32, &[None, Some(3)])],
        vec![],
    );
    let (_, report) = convert(&bytes, &Fp16Options::default());
    assert_eq!(report.kept_float.len(), 1);
    assert_eq!(report.kept_float[0].reason, KeepReason::DefaultBlockList);
    let (_, report) = convert(&bytes, &no_block_list());
    assert!(report.kept_float.is_empty());
}

#[test]
fn other_domains_stay_float32() {
    let mut custom = ts::node("FusedGemm", &["x"], &["y"]);
    custom.domain = "com.microsoft".to_owned();
    let bytes = ts::model(
        vec![custom, ts::node("Relu", &["y"], &["z"])],
        vec![ts::value_info("x", ElementType::F32, &[Some(3)])],
        vec![ts::value_info("z", ElementType::F32, &[Some(3)])],
        vec![],
    );
    let (model, report) = convert(&bytes, &no_block_list());
    assert_eq!(report.kept_float[0].op, "com.microsoft.FusedGemm");
    assert_eq!(report.kept_float[0].reason, KeepReason::CustomDomain);
    let graph = onnx::graph(&model).unwrap();
    let relu = node(graph, "Relu");
    let cast = graph
        .node
        .iter()
        .find(|n| n.output[0] == relu.input[0])
        .unwrap();
    assert_eq!(cast_to(cast), 10);
}

#[test]
fn values_are_clamped_into_float16_range_like_onnxruntime() {
    let mut clamped = 0;
    let cases = [
        (1e6f32, 65504.0f32),
        (-1e6, -65504.0),
        (1e-9, 5.960_464_5e-8),
        (-1e-9, -5.960_464_5e-8),
        (0.0, 0.0),
        (f32::INFINITY, f32::INFINITY),
        (0.5, 0.5),
    ];
    for (x, want) in cases {
        assert_eq!(to_f16(x, &mut clamped).to_f32(), want, "{x}");
    }
    assert_eq!(clamped, 4);
    assert!(to_f16(f32::NAN, &mut clamped).is_nan());
    assert_eq!(clamped, 4);
}

#[test]
fn constants_and_their_attributes_are_converted_consistently() {
    let mut scale = ts::node("Constant", &[], &["s"]);
    onnx::set_attribute(&mut scale, "value_float", AttributeValue::Float(2.0));
    let mut big = ts::node("Constant", &[], &["b"]);
    let t = onnx::tensor_to_proto(
        "",
        &Tensor::from_shape_vec(&[1], vec![1e9f32]).unwrap(),
        DataLayout::Typed,
    );
    onnx::set_attribute(&mut big, "value", AttributeValue::Tensor(t));
    let mut shape = ts::node("Constant", &[], &["shape"]);
    let dims = Tensor::from_shape_vec(&[1], vec![3i64]).unwrap();
    onnx::set_attribute(
        &mut shape,
        "value",
        AttributeValue::Tensor(onnx::tensor_to_proto("", &dims, DataLayout::Raw)),
    );
    let mut mul = ts::node("Mul", &["x", "s"], &["xs"]);
    mul.name = "mul".to_owned();
    let bytes = ts::model(
        vec![
            scale,
            big,
            shape,
            mul,
            ts::node("ConstantOfShape", &["shape"], &["zeros"]),
            ts::node("Add", &["xs", "zeros"], &["xz"]),
            ts::node("Sub", &["xz", "b"], &["y"]),
        ],
        vec![ts::value_info("x", ElementType::F32, &[Some(3)])],
        vec![ts::value_info("y", ElementType::F32, &[Some(3)])],
        vec![],
    );
    let (model, report) = convert(&bytes, &no_block_list());
    let graph = onnx::graph(&model).unwrap();
    let attr_tensor = |out: &str, name: &str| {
        let n = graph.node.iter().find(|n| n.output[0] == out).unwrap();
        onnx::tensor_from_proto(onnx::attr_tensor(n, name).unwrap().unwrap()).unwrap()
    };
    assert_eq!(
        attr_tensor("s", "value"),
        Tensor::F16(inference::ndarray::arr0(f16::from_f32(2.0)).into_dyn())
    );
    assert_eq!(attr_tensor("b", "value").element_type(), ElementType::F16);
    assert_eq!(
        attr_tensor("shape", "value").element_type(),
        ElementType::I64
    );
    assert_eq!(
        attr_tensor("zeros", "value").element_type(),
        ElementType::F16
    );
    assert_eq!(report.tensors_converted, 2);
    assert_eq!(report.values_clamped, 1);
    assert_eq!(report.casts_inserted, 0);
}

#[test]
fn resize_scales_stay_float32() {
    let scales = ts::f32_initializer("scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
    let bytes = ts::model(
        vec![ts::node("Resize", &["x", "", "scales"], &["y"])],
        vec![ts::value_info(
            "x",
            ElementType::F32,
            &[Some(1), Some(1), Some(2), Some(2)],
        )],
        vec![ts::value_info(
            "y",
            ElementType::F32,
            &[Some(1), Some(1), Some(4), Some(4)],
        )],
        vec![scales],
    );
    let (model, report) = convert(&bytes, &no_block_list());
    let graph = onnx::graph(&model).unwrap();
    assert_eq!(graph.initializer[0].data_type, FLOAT);
    assert_eq!(report.initializers_kept_float, ["scales"]);
    assert_eq!(elem_types(&graph.input), [FLOAT16]);
    assert_eq!(report.casts_inserted, 0);
}

#[test]
fn subgraphs_are_converted_with_their_outer_values() {
    let branch = |op: &str, out: &str| GraphProto {
        name: out.to_owned(),
        node: vec![onnx::make_node(op, out, &["x", "w"], &[out])],
        output: vec![ts::value_info(out, ElementType::F32, &[Some(3)])],
        ..Default::default()
    };
    let mut if_node = ts::node("If", &["cond"], &["y"]);
    onnx::set_attribute(
        &mut if_node,
        "then_branch",
        AttributeValue::Graph(branch("Add", "t")),
    );
    onnx::set_attribute(
        &mut if_node,
        "else_branch",
        AttributeValue::Graph(branch("Mul", "e")),
    );
    let bytes = ts::model(
        vec![if_node],
        vec![
            ts::value_info("cond", ElementType::Bool, &[]),
            ts::value_info("x", ElementType::F32, &[Some(3)]),
        ],
        vec![ts::value_info("y", ElementType::F32, &[Some(3)])],
        vec![ts::f32_initializer("w", &[3], &[1.0, 2.0, 3.0])],
    );
    let (model, report) = convert(&bytes, &no_block_list());
    let graph = onnx::graph(&model).unwrap();
    assert_eq!(graph.initializer[0].data_type, FLOAT16);
    assert_eq!(elem_types(&graph.output), [FLOAT16]);
    let then = onnx::attr_graph(&graph.node[0], "then_branch")
        .unwrap()
        .unwrap();
    assert_eq!(elem_types(&then.output), [FLOAT16]);
    assert_eq!(report.casts_inserted, 0);

    // Kept in float32, the If reads float32 inside: its branches cast the float16 outer values.
    let options = Fp16Options {
        block_ops: vec!["If".to_owned()],
        keep_float_weights: true,
        ..no_block_list()
    };
    let (model, report) = convert(&bytes, &options);
    let graph = onnx::graph(&model).unwrap();
    assert_eq!(elem_types(&graph.output), [FLOAT16]);
    assert_eq!(
        graph.initializer[0].data_type, FLOAT,
        "only float32 reads of `w`"
    );
    let then = onnx::attr_graph(&graph.node[0], "then_branch")
        .unwrap()
        .unwrap();
    assert_eq!(elem_types(&then.output), [FLOAT]);
    assert_eq!(then.node.len(), 2, "a Cast of the float16 `x`, and the Add");
    // One Cast in each branch, one after the If.
    assert_eq!(report.casts_inserted, 3);
}

#[test]
fn new_names_never_collide() {
    let bytes = ts::model(
        vec![
            ts::node("Relu", &["x"], &["x_fp32"]),
            ts::node("Sigmoid", &["x_fp32"], &["y"]),
        ],
        vec![ts::value_info("x", ElementType::F32, &[Some(3)])],
        vec![ts::value_info("y", ElementType::F32, &[Some(3)])],
        vec![],
    );
    let options = Fp16Options {
        block_ops: vec!["Sigmoid".to_owned()],
        ..no_block_list()
    };
    let (model, _) = convert(&bytes, &options);
    let graph = onnx::graph(&model).unwrap();
    let mut outputs: Vec<&String> = graph.node.iter().flat_map(|n| &n.output).collect();
    let count = outputs.len();
    outputs.sort();
    outputs.dedup();
    assert_eq!(outputs.len(), count, "{outputs:?}");
    assert!(outputs.iter().any(|o| *o == "x_fp32_fp32"));
}

#[test]
fn unreadable_or_float_free_models_are_errors() {
    let err = convert_fp16(b"\x08\x07garbage", &Fp16Options::default()).unwrap_err();
    assert!(matches!(err, ConvertError::Format(_)), "{err}");
    assert!(err.to_string().contains("not a valid ModelProto"), "{err}");
    let ints = ts::identity_model(ElementType::I64);
    let err = convert_fp16(&ints, &Fp16Options::default()).unwrap_err();
    assert!(matches!(err, ConvertError::NoFloat32), "{err}");
    let (fp16, _) = convert_fp16(&model_bytes("digits_mlp.onnx"), &no_block_list()).unwrap();
    let err = convert_fp16(&fp16, &Fp16Options::default()).unwrap_err();
    assert!(err.to_string().contains("already float16"), "{err}");
    let external = ts::external_data_model("w.bin", &[]);
    let err = convert_fp16(&external, &Fp16Options::default()).unwrap_err();
    assert!(err.to_string().contains("external file"), "{err}");
}
