//! Configured input shapes ([`crate::LoadOptions::input_shapes`]): checked on their own, then
//! against the model, and merged into the shapes its metadata declares.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::metadata::{Dim, ModelMetadata};

/// The highest rank a configured shape may have when the model declares none.
pub const MAX_RANK: usize = 64;

/// The longest symbol name, in bytes.
pub const MAX_SYMBOL_LEN: usize = 128;

/// Checks the shapes on their own, without a model: ranks, sizes and symbol names.
pub fn check(shapes: &BTreeMap<String, Vec<Dim>>) -> Result<(), Error> {
    for (input, dims) in shapes {
        let err = |reason: String| option_error(input, reason);
        if dims.len() > MAX_RANK {
            return Err(err(format!("rank {} is more than {MAX_RANK}", dims.len())));
        }
        for (axis, dim) in dims.iter().enumerate() {
            match dim {
                Dim::Fixed(n) if i64::try_from(*n).is_err() => {
                    return Err(err(format!("dim {axis} is {n}, larger than a dim can be")))
                }
                Dim::Symbolic(name) => check_symbol(name).map_err(|why| {
                    err(format!("dim {axis} is the symbol {name:?}, which {why}"))
                })?,
                _ => {}
            }
        }
    }
    Ok(())
}

/// Why a symbol name is refused, if it is.
fn check_symbol(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name == "?" {
        Err("is not a name (give a size, a name, or `?` to keep what the model declares)")
    } else if name.len() > MAX_SYMBOL_LEN {
        Err("is longer than 128 bytes")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("holds white space or control characters")
    } else if name.parse::<i64>().is_ok() {
        Err("is a number written as a string (write it without quotes)")
    } else {
        Ok(())
    }
}

/// Checks `shapes` against the model and replaces the declared shapes with them. A configured
/// [`Dim::Unknown`] keeps the declared dim; a dim the model fixes may only be given that size.
pub(crate) fn apply(
    metadata: &mut ModelMetadata,
    shapes: &BTreeMap<String, Vec<Dim>>,
) -> Result<(), Error> {
    check(shapes)?;
    let known: Vec<String> = metadata
        .inputs
        .iter()
        .map(|i| format!("`{}`", i.name))
        .collect();
    for (input, dims) in shapes {
        let err = |reason: String| option_error(input, reason);
        let info = metadata
            .inputs
            .iter_mut()
            .find(|i| &i.name == input)
            .ok_or_else(|| {
                err(format!(
                    "the model has no input `{input}`; its inputs are {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ))
            })?;
        let merged = match &info.shape {
            None => dims.clone(),
            Some(declared) if declared.len() != dims.len() => {
                return Err(err(format!(
                    "{} dims given, but the model declares {info} (rank {})",
                    dims.len(),
                    declared.len()
                )))
            }
            Some(declared) => declared
                .iter()
                .zip(dims)
                .enumerate()
                .map(|(axis, (was, given))| match (was, given) {
                    (Dim::Fixed(a), Dim::Fixed(b)) if a != b => Err(err(format!(
                        "dim {axis} is given as {b}, but the model declares {info}, fixing it at {a}"
                    ))),
                    (Dim::Fixed(a), Dim::Symbolic(s)) => Err(err(format!(
                        "dim {axis} is given as the symbol `{s}`, but the model declares {info}, fixing it at {a}; give {a} or `?`"
                    ))),
                    (was, Dim::Unknown) => Ok(was.clone()),
                    (_, given) => Ok(given.clone()),
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        info.shape = Some(merged);
    }
    Ok(())
}

fn option_error(input: &str, reason: String) -> Error {
    Error::InvalidOption {
        key: format!("input_shapes.{input}"),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::TensorInfo;
    use crate::tensor::ElementType;

    fn metadata(shape: Option<Vec<Dim>>) -> ModelMetadata {
        let bytes = crate::test_support::identity_model(ElementType::F32);
        let mut m = crate::Model::inspect(&bytes).unwrap();
        m.inputs = vec![TensorInfo {
            name: "x".into(),
            element_type: ElementType::F32,
            shape,
        }];
        m
    }

    fn shapes(input: &str, dims: Vec<Dim>) -> BTreeMap<String, Vec<Dim>> {
        BTreeMap::from([(input.to_owned(), dims)])
    }

    use Dim::{Fixed as F, Symbolic as S, Unknown as U};

    #[test]
    fn given_dims_replace_open_ones_and_question_marks_keep_the_declared_dim() {
        let mut m = metadata(Some(vec![U, F(3), S("h".into()), U]));
        apply(&mut m, &shapes("x", vec![S("b".into()), U, F(48), U])).unwrap();
        assert_eq!(m.inputs[0].shape, Some(vec![S("b".into()), F(3), F(48), U]));
        let mut m = metadata(None);
        apply(&mut m, &shapes("x", vec![F(1), F(2)])).unwrap();
        assert_eq!(m.inputs[0].shape, Some(vec![F(1), F(2)]));
    }

    #[test]
    fn contradictions_are_refused_naming_the_key() {
        let cases = [
            (shapes("y", vec![F(1)]), "no input `y`; its inputs are `x`"),
            (
                shapes("x", vec![F(1), F(3)]),
                "2 dims given, but the model declares float32[?, 3, ?] (rank 3)",
            ),
            (
                shapes("x", vec![U, F(4), U]),
                "dim 1 is given as 4, but the model declares float32[?, 3, ?], fixing it at 3",
            ),
            (
                shapes("x", vec![U, S("c".into()), U]),
                "fixing it at 3; give 3 or `?`",
            ),
            (
                shapes("x", vec![U, U, S(String::new())]),
                "dim 2 is the symbol \"\", which is not a name",
            ),
            (
                shapes("x", vec![U, U, S("4".into())]),
                "a number written as a string",
            ),
            (shapes("x", vec![U, U, S("a b".into())]), "white space"),
            (
                shapes("x", vec![U, U, F(usize::MAX)]),
                "larger than a dim can be",
            ),
        ];
        for (given, expected) in cases {
            let mut m = metadata(Some(vec![U, F(3), U]));
            let err = apply(&mut m, &given).unwrap_err().to_string();
            assert!(err.starts_with("input_shapes."), "{err}");
            assert!(err.contains(expected), "{err}\nexpected: {expected}");
        }
        let mut m = metadata(None);
        let err = apply(&mut m, &shapes("x", vec![F(1); MAX_RANK + 1])).unwrap_err();
        assert!(err.to_string().contains("rank 65 is more than 64"), "{err}");
    }
}
