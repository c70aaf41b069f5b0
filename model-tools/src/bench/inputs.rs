//! Random inputs of the shapes a model declares, with the batch dim set.

use inference::half::f16;
use inference::{Dim, ElementType, ModelMetadata, Tensor, TensorInfo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The shape to feed `input` at `batch`: its first dim, unless fixed, is the batch, and so is
/// every dim named like it; every other dim must be fixed (by the model or by `--shape`).
/// The error says which dim is open and how to fix it.
pub fn input_shape(input: &TensorInfo, batch: usize) -> Result<Vec<usize>, String> {
    let name = &input.name;
    let Some(dims) = &input.shape else {
        return Err(format!(
            "input `{name}` declares no shape: give one with --shape {name}=N,<size>,..."
        ));
    };
    let batch_symbol = match dims.first() {
        Some(Dim::Symbolic(s)) => Some(s),
        _ => None,
    };
    dims.iter()
        .enumerate()
        .map(|(axis, dim)| match dim {
            Dim::Fixed(n) if axis == 0 && *n != batch => Err(format!(
                "input `{name}` fixes its first dim at {n}, so it cannot take a batch of {batch}; \
                 bench it with --batch {n}"
            )),
            Dim::Fixed(n) => Ok(*n),
            _ if axis == 0 => Ok(batch),
            Dim::Symbolic(s) if Some(s) == batch_symbol => Ok(batch),
            open => Err(format!(
                "input `{name}` leaves dim {axis} open ({open}); give its size with --shape \
                 {name}={}",
                example(dims)
            )),
        })
        .collect()
}

/// `dims` as a `--shape` value, `<size>` where a size is wanted.
fn example(dims: &[Dim]) -> String {
    dims.iter()
        .enumerate()
        .map(|(axis, d)| match d {
            Dim::Fixed(n) => n.to_string(),
            _ if axis == 0 => d.to_string(),
            _ => "<size>".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// One random tensor per input of `meta`, shaped by [`input_shape`] at `batch`: floats in
/// [0, 1), integers in 0..10 (0..=255 for `uint8`, as for pixels), random booleans, and the
/// string `"a"`. The same `seed` gives the same tensors.
pub fn random_inputs(
    meta: &ModelMetadata,
    batch: usize,
    seed: u64,
) -> Result<Vec<(String, Tensor)>, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    meta.inputs
        .iter()
        .map(|input| {
            let shape = input_shape(input, batch)?;
            let tensor = random_tensor(input.element_type, &shape, &mut rng)
                .map_err(|e| format!("input `{}`: {e}", input.name))?;
            Ok((input.name.clone(), tensor))
        })
        .collect()
}

fn random_tensor(
    ty: ElementType,
    shape: &[usize],
    rng: &mut StdRng,
) -> Result<Tensor, inference::Error> {
    let n: usize = shape.iter().product();
    macro_rules! ints {
        ($t:ty, $range:expr) => {
            Tensor::from_shape_vec(
                shape,
                (0..n).map(|_| rng.random_range($range) as $t).collect(),
            )
        };
    }
    match ty {
        ElementType::F32 => {
            Tensor::from_shape_vec(shape, (0..n).map(|_| rng.random()).collect::<Vec<f32>>())
        }
        ElementType::F64 => {
            Tensor::from_shape_vec(shape, (0..n).map(|_| rng.random()).collect::<Vec<f64>>())
        }
        ElementType::F16 => {
            Tensor::from_shape_vec(shape, (0..n).map(|_| f16::from_f32(rng.random())).collect())
        }
        ElementType::I8 => ints!(i8, 0..10),
        ElementType::I16 => ints!(i16, 0..10),
        ElementType::I32 => ints!(i32, 0..10),
        ElementType::I64 => ints!(i64, 0..10),
        ElementType::U8 => ints!(u8, 0..=255),
        ElementType::U16 => ints!(u16, 0..10),
        ElementType::U32 => ints!(u32, 0..10),
        ElementType::U64 => ints!(u64, 0..10),
        ElementType::Bool => {
            Tensor::from_shape_vec(shape, (0..n).map(|_| rng.random()).collect::<Vec<bool>>())
        }
        ElementType::String => Tensor::from_shape_vec(shape, vec!["a".to_owned(); n]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, ty: ElementType, dims: Option<Vec<Dim>>) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            element_type: ty,
            shape: dims,
        }
    }

    #[test]
    fn the_batch_fills_the_first_dim_and_its_namesakes() {
        let n = || Dim::Symbolic("N".into());
        let x = info("x", ElementType::F32, Some(vec![n(), Dim::Fixed(3), n()]));
        assert_eq!(input_shape(&x, 8).unwrap(), [8, 3, 8]);
        let unknown = info(
            "x",
            ElementType::F32,
            Some(vec![Dim::Unknown, Dim::Fixed(64)]),
        );
        assert_eq!(input_shape(&unknown, 4).unwrap(), [4, 64]);
        let scalar = info("t", ElementType::F32, Some(vec![]));
        assert_eq!(input_shape(&scalar, 4).unwrap(), Vec::<usize>::new());
    }

    #[test]
    fn open_or_fixed_dims_say_how_to_bench() {
        let det = info(
            "x",
            ElementType::F32,
            Some(vec![
                Dim::Unknown,
                Dim::Fixed(3),
                Dim::Unknown,
                Dim::Symbolic("w".into()),
            ]),
        );
        let err = input_shape(&det, 1).unwrap_err();
        assert!(
            err.contains("dim 2 open (?)") && err.contains("--shape x=?,3,<size>,<size>"),
            "{err}"
        );
        let fixed = info(
            "x",
            ElementType::F32,
            Some(vec![Dim::Fixed(1), Dim::Fixed(64)]),
        );
        assert_eq!(input_shape(&fixed, 1).unwrap(), [1, 64]);
        let err = input_shape(&fixed, 8).unwrap_err();
        assert!(
            err.contains("fixes its first dim at 1") && err.contains("--batch 1"),
            "{err}"
        );
        let err = input_shape(&info("x", ElementType::F32, None), 1).unwrap_err();
        assert!(err.contains("declares no shape"), "{err}");
    }

    #[test]
    fn inputs_are_random_typed_and_reproducible() {
        let meta =
            inference::Model::inspect(&inference::test_support::model_bytes("digits_cnn.onnx"))
                .unwrap();
        let a = random_inputs(&meta, 4, 7).unwrap();
        let b = random_inputs(&meta, 4, 7).unwrap();
        assert_eq!(a, b);
        let (name, tensor) = &a[0];
        assert_eq!(name, &meta.inputs[0].name);
        assert_eq!(tensor.shape(), [4, 1, 8, 8]);
        let values = tensor.as_array::<f32>().unwrap();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        let first = values.iter().next().unwrap();
        assert!(values.iter().any(|v| v != first));
        for ty in [
            ElementType::I64,
            ElementType::U8,
            ElementType::Bool,
            ElementType::F16,
            ElementType::String,
        ] {
            let t = random_tensor(ty, &[2, 3], &mut StdRng::seed_from_u64(1)).unwrap();
            assert_eq!((t.element_type(), t.shape()), (ty, &[2usize, 3][..]));
        }
    }
}
