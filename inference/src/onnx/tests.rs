//! Unit tests of the format layer: tensors of every element type through both layouts,
//! attributes, models read → written → read, and malformed input.

use half::f16;
use proptest::prelude::*;

use super::proto::{tensor_proto::DataLocation, GraphProto, StringStringEntryProto, TensorProto};
use super::*;
use crate::metadata::Dim;
use crate::{ElementType, Tensor};

/// A 2×3 tensor of each element type, with negative, extreme and non-ASCII values.
fn samples() -> Vec<Tensor> {
    let s = [2, 3];
    let t = |r: Result<Tensor, crate::Error>| r.unwrap();
    vec![
        t(Tensor::from_shape_vec(
            &s,
            [0.0, -1.5, 1e-3, 65504.0, -0.0, 0.25]
                .map(f16::from_f32)
                .to_vec(),
        )),
        t(Tensor::from_shape_vec(
            &s,
            vec![0.0f32, -1.5, f32::MIN_POSITIVE, f32::MAX, -0.0, 3.25],
        )),
        t(Tensor::from_shape_vec(
            &s,
            vec![0.0f64, -1.5, f64::EPSILON, f64::MIN, 1e300, 7.0],
        )),
        t(Tensor::from_shape_vec(
            &s,
            vec![0i8, -1, i8::MIN, i8::MAX, 5, -7],
        )),
        t(Tensor::from_shape_vec(
            &s,
            vec![0i16, -1, i16::MIN, i16::MAX, 300, -7],
        )),
        t(Tensor::from_shape_vec(
            &s,
            vec![0i32, -1, i32::MIN, i32::MAX, 70000, -7],
        )),
        t(Tensor::from_shape_vec(
            &s,
            vec![0i64, -1, i64::MIN, i64::MAX, 1 << 40, -7],
        )),
        t(Tensor::from_shape_vec(&s, vec![0u8, 1, 127, 128, 255, 7])),
        t(Tensor::from_shape_vec(
            &s,
            vec![0u16, 1, 255, 256, u16::MAX, 7],
        )),
        t(Tensor::from_shape_vec(
            &s,
            vec![0u32, 1, 1 << 20, u32::MAX, 9, 7],
        )),
        t(Tensor::from_shape_vec(
            &s,
            vec![0u64, 1, 1 << 40, u64::MAX, 9, 7],
        )),
        t(Tensor::from_shape_vec(
            &s,
            vec![true, false, false, true, true, false],
        )),
        t(Tensor::from_shape_vec(
            &s,
            ["", "a", "ünï", "日本", "x y", "\0"]
                .map(String::from)
                .to_vec(),
        )),
    ]
}

#[test]
fn every_element_type_round_trips_through_both_layouts() {
    let samples = samples();
    let types: Vec<ElementType> = samples.iter().map(Tensor::element_type).collect();
    assert_eq!(types, ElementType::ALL, "one sample per element type");
    for tensor in samples {
        for layout in [DataLayout::Raw, DataLayout::Typed] {
            let proto = tensor_to_proto("t", &tensor, layout);
            let ty = tensor.element_type();
            assert_eq!(element_type(&proto), Some(ty));
            assert_eq!(proto.dims, [2, 3]);
            let raw = layout == DataLayout::Raw && ty != ElementType::String;
            assert_eq!(!proto.raw_data.is_empty(), raw, "{ty} {layout:?}");
            // Through bytes, as a file holds it.
            let back = decode_tensor_proto(&encode_tensor(&proto)).unwrap();
            assert_eq!(back.name, "t");
            assert_eq!(back.tensor, tensor, "{ty} {layout:?}");
        }
    }
}

#[test]
fn raw_data_is_little_endian_and_typed_fields_are_the_ones_onnx_names() {
    let x = Tensor::from_shape_vec(&[2], vec![1.0f32, -2.0]).unwrap();
    let raw = tensor_to_proto("x", &x, DataLayout::Raw);
    assert_eq!(raw.raw_data, [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]);
    let u32s = Tensor::from_shape_vec(&[1], vec![7u32]).unwrap();
    assert_eq!(
        tensor_to_proto("u", &u32s, DataLayout::Typed).uint64_data,
        [7]
    );
    let halfs = Tensor::from_shape_vec(&[1], vec![f16::ONE]).unwrap();
    assert_eq!(
        tensor_to_proto("h", &halfs, DataLayout::Typed).int32_data,
        [0x3c00]
    );
    let bools = Tensor::from_shape_vec(&[2], vec![true, false]).unwrap();
    assert_eq!(
        tensor_to_proto("b", &bools, DataLayout::Raw).raw_data,
        [1, 0]
    );
}

#[test]
fn set_tensor_data_replaces_data_and_keeps_the_name() {
    let mut t = TensorProto {
        name: "w".into(),
        doc_string: "weights".into(),
        data_type: ElementType::F32.onnx_code(),
        dims: vec![2],
        float_data: vec![1.0, 2.0],
        ..Default::default()
    };
    let new = Tensor::from_shape_vec(&[3], vec![5i8, -6, 7]).unwrap();
    set_tensor_data(&mut t, &new, DataLayout::Raw);
    assert!(t.float_data.is_empty());
    assert_eq!((t.name.as_str(), t.doc_string.as_str()), ("w", "weights"));
    assert_eq!(tensor_from_proto(&t).unwrap(), new);
}

#[test]
fn scalars_and_empty_tensors_decode() {
    let scalar = TensorProto {
        data_type: ElementType::I64.onnx_code(),
        int64_data: vec![42],
        ..Default::default()
    };
    assert_eq!(tensor_from_proto(&scalar).unwrap().shape(), &[] as &[usize]);
    let empty = TensorProto {
        data_type: ElementType::F32.onnx_code(),
        dims: vec![0, 4],
        ..Default::default()
    };
    assert_eq!(tensor_from_proto(&empty).unwrap().shape(), [0, 4]);
}

#[test]
fn malformed_tensors_are_errors_that_name_the_problem() {
    let base = TensorProto {
        name: "w".into(),
        dims: vec![3],
        data_type: ElementType::I64.onnx_code(),
        ..Default::default()
    };
    let err = |t: TensorProto| tensor_from_proto(&t).unwrap_err().to_string();
    let short = TensorProto {
        name: String::new(),
        raw_data: vec![0; 16],
        ..base.clone()
    };
    // The unnamed form is what the conformance suite's `.pb` files show.
    let e = decode_tensor_proto(&encode_tensor(&short)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid tensor: shape [3] of int64 needs 24 bytes, but 16 were given"
    );
    assert_eq!(
        err(TensorProto {
            int64_data: vec![1, 2],
            ..base.clone()
        }),
        "`w`: shape [3] holds 3 elements, but `int64_data` has 2"
    );
    assert!(err(TensorProto {
        data_type: 16,
        raw_data: vec![0; 6],
        ..base.clone()
    })
    .contains("element type bfloat16"));
    assert!(err(TensorProto {
        dims: vec![-1],
        ..base.clone()
    })
    .contains("negative dimension -1"));
    assert!(err(TensorProto {
        dims: vec![i64::MAX, i64::MAX],
        ..base.clone()
    })
    .contains("too many elements"));
    assert_eq!(
        err(TensorProto {
            data_type: ElementType::U8.onnx_code(),
            int32_data: vec![1, 300, 2],
            ..base.clone()
        }),
        "`w`: value 300 in `int32_data` does not fit uint8"
    );
    assert!(err(TensorProto {
        data_type: ElementType::String.onnx_code(),
        raw_data: vec![1],
        ..base.clone()
    })
    .contains("cannot use raw data"));
    assert!(err(TensorProto {
        data_type: ElementType::String.onnx_code(),
        string_data: vec![vec![0xff]; 3],
        ..base.clone()
    })
    .contains("not UTF-8"));
    let external = TensorProto {
        data_location: Some(DataLocation::External as i32),
        external_data: vec![StringStringEntryProto {
            key: "location".into(),
            value: "w.bin".into(),
        }],
        ..base.clone()
    };
    assert!(is_external(&external));
    assert!(err(external).contains("external file"));
    assert!(decode_tensor(&[0xff, 0xff]).is_err());
    assert!(decode_tensor_proto(&[0xff, 0xff])
        .unwrap_err()
        .to_string()
        .contains("not a valid TensorProto"));
}

#[test]
fn every_attribute_type_round_trips() {
    let t = tensor_to_proto(
        "c",
        &Tensor::from_shape_vec(&[1], vec![1.0f32]).unwrap(),
        DataLayout::Raw,
    );
    let g = GraphProto {
        name: "branch".into(),
        ..Default::default()
    };
    let values = [
        AttributeValue::Float(0.5),
        AttributeValue::Int(-3),
        AttributeValue::String(b"SAME_UPPER".to_vec()),
        AttributeValue::Tensor(t.clone()),
        AttributeValue::Graph(g.clone()),
        AttributeValue::Floats(vec![1.0, -2.0]),
        AttributeValue::Ints(vec![1, 2, 3]),
        AttributeValue::Strings(vec![b"a".to_vec(), b"b".to_vec()]),
        AttributeValue::Tensors(vec![t.clone()]),
        AttributeValue::Graphs(vec![g.clone()]),
    ];
    let mut node = make_node("Op", "n", &["x"], &["y"]);
    for (i, v) in values.iter().enumerate() {
        let a = make_attribute(&format!("a{i}"), v.clone());
        assert_eq!(attribute_value(&a).unwrap(), *v);
        set_attribute(&mut node, &format!("a{i}"), v.clone());
    }
    assert_eq!(attr_float(&node, "a0").unwrap(), Some(0.5));
    assert_eq!(attr_int(&node, "a1").unwrap(), Some(-3));
    assert_eq!(attr_string(&node, "a2").unwrap(), Some("SAME_UPPER"));
    assert_eq!(attr_tensor(&node, "a3").unwrap(), Some(&t));
    assert_eq!(attr_graph(&node, "a4").unwrap(), Some(&g));
    assert_eq!(attr_floats(&node, "a5").unwrap(), Some(&[1.0, -2.0][..]));
    assert_eq!(attr_ints(&node, "a6").unwrap(), Some(&[1, 2, 3][..]));
    assert_eq!(attr_int(&node, "absent").unwrap(), None);
    // Setting again replaces.
    set_attribute(&mut node, "a1", AttributeValue::Int(9));
    assert_eq!(attr_int(&node, "a1").unwrap(), Some(9));
    assert_eq!(node.attribute.len(), values.len());
}

#[test]
fn attributes_of_another_type_are_errors_and_untyped_ones_are_read() {
    let mut node = make_node("Conv", "conv1", &["x", "w"], &["y"]);
    set_attribute(&mut node, "strides", AttributeValue::Int(2));
    let err = attr_ints(&node, "strides").unwrap_err().to_string();
    assert_eq!(
        err,
        "node `conv1` (Conv): attribute `strides` is of type INT, expected INTS"
    );
    node.attribute[0].r#type = 0;
    assert_eq!(attr_int(&node, "strides").unwrap(), Some(2));
    assert!(attribute_value(&node.attribute[0]).is_err());
    set_attribute(&mut node, "auto_pad", AttributeValue::String(vec![0xff]));
    assert!(attr_string(&node, "auto_pad").is_err());
}

fn sample_model(name: &str) -> Vec<u8> {
    std::fs::read(crate::test_support::models_dir().join(name)).unwrap()
}

#[test]
fn models_read_write_read_unchanged() {
    for name in ["digits_mlp.onnx", "digits_cnn.onnx", "digits_cnn_int8.onnx"] {
        let model = decode_model(&sample_model(name)).unwrap();
        let again = decode_model(&encode_model(&model)).unwrap();
        assert_eq!(again, model, "{name}");
        let g = graph(&again).unwrap();
        assert!(!g.node.is_empty() && !g.initializer.is_empty(), "{name}");
        assert_eq!(opset_version(&again, ""), opset_version(&model, "ai.onnx"));
        // Every initializer reads back to the same tensor.
        for t in &g.initializer {
            let orig = initializer(graph(&model).unwrap(), &t.name).unwrap();
            assert_eq!(
                tensor_from_proto(t).unwrap(),
                tensor_from_proto(orig).unwrap()
            );
        }
    }
}

#[test]
fn an_edited_model_keeps_its_edits_through_bytes() {
    let mut model = decode_model(&sample_model("digits_mlp.onnx")).unwrap();
    let g = graph_mut(&mut model).unwrap();
    let first = g.initializer[0].name.clone();
    let scale = Tensor::from_shape_vec(&[], vec![0.5f32]).unwrap();
    set_initializer(g, tensor_to_proto("scale", &scale, DataLayout::Raw));
    let zeros = Tensor::from_shape_vec(&[1], vec![0u8]).unwrap();
    set_initializer(g, tensor_to_proto(&first, &zeros, DataLayout::Typed));
    let mut q = make_node("QuantizeLinear", "q", &["x", "scale", "zp"], &["xq"]);
    set_attribute(&mut q, "axis", AttributeValue::Int(1));
    g.node.insert(0, q);
    set_opset_version(&mut model, "ai.onnx", 19);
    set_opset_version(&mut model, "com.microsoft", 1);

    let back = decode_model(&encode_model(&model)).unwrap();
    assert_eq!(back, model);
    assert_eq!(opset_version(&back, ""), Some(19));
    assert_eq!(opset_version(&back, "com.microsoft"), Some(1));
    let g = graph(&back).unwrap();
    assert_eq!(attr_int(&g.node[0], "axis").unwrap(), Some(1));
    let read = |name: &str| tensor_from_proto(initializer(g, name).unwrap()).unwrap();
    assert_eq!(read("scale"), scale);
    assert_eq!(read(&first), zeros);
    assert_eq!(producers(g)["xq"], 0);
    assert_eq!(consumers(g)["x"], [0]);
}

#[test]
fn models_without_graphs_and_garbage_are_errors() {
    assert!(matches!(
        graph(&decode_model(&[]).unwrap()),
        Err(FormatError::NoGraph)
    ));
    let err = decode_model(&[0xff, 0xff, 0xff, 0x07, 0x01]).unwrap_err();
    assert!(
        err.to_string().starts_with("not a valid ModelProto"),
        "{err}"
    );
}

#[test]
fn value_infos_round_trip_their_declared_type() {
    let dims = [Dim::Symbolic("N".into()), Dim::Fixed(64), Dim::Unknown];
    let vi = make_value_info("x", ElementType::F16, Some(&dims));
    let declared = declared_tensor(&vi).unwrap();
    assert_eq!(declared.element_type(), Some(ElementType::F16));
    assert_eq!(declared.shape.as_deref(), Some(&dims[..]));
    let unranked = make_value_info("y", ElementType::I64, None);
    assert_eq!(declared_tensor(&unranked).unwrap().shape, None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_model(&bytes).map(|m| graph(&m).is_ok());
        let _ = decode_tensor_proto(&bytes);
    }

    #[test]
    fn arbitrary_tensor_fields_never_panic(
        data_type in -1i32..20,
        dims in proptest::collection::vec(prop_oneof![-2i64..5, Just(i64::MAX), Just(1 << 40)], 0..4),
        raw in proptest::collection::vec(any::<u8>(), 0..40),
        ints in proptest::collection::vec(any::<i32>(), 0..10),
        external in any::<bool>(),
    ) {
        let t = TensorProto {
            data_type,
            dims,
            raw_data: raw,
            int32_data: ints,
            data_location: external.then_some(DataLocation::External as i32),
            ..Default::default()
        };
        if let Ok(tensor) = tensor_from_proto(&t) {
            // Whatever decodes encodes back to the same tensor.
            let again = tensor_from_proto(&tensor_to_proto("t", &tensor, DataLayout::Typed));
            prop_assert_eq!(again.unwrap(), tensor);
        }
    }

    #[test]
    fn float_tensors_round_trip(
        shape in proptest::collection::vec(0usize..4, 0..4),
        seed in any::<u32>(),
        raw in any::<bool>(),
    ) {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| f32::from_bits(seed.wrapping_add(i as u32 * 7919))).collect();
        let tensor = Tensor::from_shape_vec(&shape, data).unwrap();
        let layout = if raw { DataLayout::Raw } else { DataLayout::Typed };
        let back = tensor_from_proto(&decode_tensor(&encode_tensor(&tensor_to_proto("t", &tensor, layout))).unwrap()).unwrap();
        // Compare bits: NaNs are not equal to themselves.
        let bits = |t: &Tensor| t.as_array::<f32>().unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&back), bits(&tensor));
        prop_assert_eq!(back.shape(), tensor.shape());
    }
}
