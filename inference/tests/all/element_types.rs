//! Every element type goes in and comes back out unchanged, on both backends.

use inference::half::f16;
use inference::test_support::identity_model;
use inference::{ElementType, Model, Tensor};

use crate::support::backends;

fn sample(ty: ElementType) -> Tensor {
    let shape = [2, 3];
    match ty {
        ElementType::F16 => Tensor::from_shape_vec(
            &shape,
            (0..6).map(|i| f16::from_f32(i as f32 * 0.5)).collect(),
        ),
        ElementType::F32 => Tensor::from_shape_vec(
            &shape,
            vec![-1.5f32, 0.0, 1.0, f32::MAX, f32::MIN_POSITIVE, 3.25],
        ),
        ElementType::F64 => {
            Tensor::from_shape_vec(&shape, vec![-1.5f64, 0.0, 1e300, 2.0, 3.0, 4.0])
        }
        ElementType::I8 => Tensor::from_shape_vec(&shape, vec![i8::MIN, -1, 0, 1, 2, i8::MAX]),
        ElementType::I16 => Tensor::from_shape_vec(&shape, vec![i16::MIN, -1, 0, 1, 2, i16::MAX]),
        ElementType::I32 => Tensor::from_shape_vec(&shape, vec![i32::MIN, -1, 0, 1, 2, i32::MAX]),
        ElementType::I64 => Tensor::from_shape_vec(&shape, vec![i64::MIN, -1, 0, 1, 2, i64::MAX]),
        ElementType::U8 => Tensor::from_shape_vec(&shape, vec![0u8, 1, 2, 3, 4, u8::MAX]),
        ElementType::U16 => Tensor::from_shape_vec(&shape, vec![0u16, 1, 2, 3, 4, u16::MAX]),
        ElementType::U32 => Tensor::from_shape_vec(&shape, vec![0u32, 1, 2, 3, 4, u32::MAX]),
        ElementType::U64 => Tensor::from_shape_vec(&shape, vec![0u64, 1, 2, 3, 4, u64::MAX]),
        ElementType::Bool => {
            Tensor::from_shape_vec(&shape, vec![true, false, true, true, false, false])
        }
        ElementType::String => Tensor::from_shape_vec(
            &shape,
            ["", "a", "héllo", "日本", "x y", "🦀"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        ),
    }
    .unwrap()
}

#[test]
fn every_element_type_round_trips_through_identity() {
    for options in backends("every_element_type_round_trips_through_identity") {
        for ty in ElementType::ALL {
            let model = Model::load(identity_model(ty), &options)
                .unwrap_or_else(|e| panic!("{ty} on {}: {e}", options.backend));
            let input = sample(ty);
            let out = model
                .run([("x", input.clone())])
                .unwrap_or_else(|e| panic!("{ty} on {}: {e}", options.backend));
            assert_eq!(out.get("y"), Some(&input), "{ty} on {}", options.backend);
        }
    }
}

#[test]
fn an_empty_batch_is_served() {
    for options in backends("an_empty_batch_is_served") {
        let model = Model::load(identity_model(ElementType::F32), &options).unwrap();
        let empty = Tensor::from_shape_vec(&[0, 3], Vec::<f32>::new()).unwrap();
        let out = model.run([("x", empty)]).unwrap();
        assert_eq!(
            out.get("y").unwrap().shape(),
            &[0, 3],
            "{}",
            options.backend
        );
    }
}
