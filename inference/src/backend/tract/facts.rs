//! The input facts tract is given: element type and shape of every input, from our metadata.
//!
//! tract needs every input's rank and every dimension as a number or a symbol before it can
//! optimise a graph. A model's own facts often lack them (`-1`, `?`, no shape), so they are
//! replaced with facts built from [`ModelMetadata`] (which already carries any configured
//! `input_shapes`): a fixed dim is that number, a named dim is the tract symbol of that name
//! (one symbol for every dim of the same name, in the model's one symbol scope), and an unknown
//! dim is a fresh symbol of its own.

use tract_onnx::prelude::{InferenceFact, InferenceModel, SymbolScope, TDim, TVec};
use tract_onnx::tract_hir::infer::{DimFact, ShapeFactoid};

use super::convert::datum_type;
use crate::metadata::{Dim, ModelMetadata, TensorInfo};

/// Sets the fact of each input outlet of `model` (in declared order) from `metadata`.
pub(super) fn set_input_facts(
    model: &mut InferenceModel,
    metadata: &ModelMetadata,
) -> tract_onnx::prelude::TractResult<()> {
    let outlets = model.input_outlets()?.to_vec();
    if outlets.len() != metadata.inputs.len() {
        return Err(tract_onnx::prelude::TractError::msg(format!(
            "tract sees {} inputs where the model declares {}",
            outlets.len(),
            metadata.inputs.len()
        )));
    }
    let scope = model.symbols.clone();
    for (ix, info) in metadata.inputs.iter().enumerate() {
        model.set_input_fact(ix, input_fact(&scope, info))?;
    }
    Ok(())
}

/// The fact of one input: its datum type and, when its rank is known, its dims.
pub(super) fn input_fact(scope: &SymbolScope, info: &TensorInfo) -> InferenceFact {
    let fact = InferenceFact::dt(datum_type(info.element_type));
    let Some(dims) = &info.shape else {
        return fact;
    };
    let dims: TVec<DimFact> = dims
        .iter()
        .enumerate()
        .map(|(axis, dim)| DimFact::from(tdim(scope, &info.name, axis, dim)))
        .collect();
    fact.with_shape(ShapeFactoid::closed(dims))
}

/// One dim as tract sees it.
fn tdim(scope: &SymbolScope, input: &str, axis: usize, dim: &Dim) -> TDim {
    match dim {
        Dim::Fixed(n) => TDim::Val(i64::try_from(*n).unwrap_or(i64::MAX)),
        Dim::Symbolic(name) => TDim::Sym(scope.sym(name)),
        Dim::Unknown => TDim::Sym(scope.new_with_prefix(&fresh_name(input, axis))),
    }
}

/// The prefix of the fresh symbol for an unknown dim: the input name reduced to letters,
/// digits and `_`, then the axis, e.g. `x_2`, so that tract's messages point at the input.
fn fresh_name(input: &str, axis: usize) -> String {
    let base: String = input
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let base = if base.starts_with(|c: char| c.is_ascii_alphabetic()) {
        base
    } else {
        format!("in_{base}")
    };
    format!("{base}_{axis}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::ElementType;
    use tract_onnx::tract_hir::infer::Factoid;

    fn info(dims: Vec<Dim>) -> TensorInfo {
        TensorInfo {
            name: "x".into(),
            element_type: ElementType::F32,
            shape: Some(dims),
        }
    }

    #[test]
    fn named_dims_share_a_symbol_and_unknown_dims_get_their_own() {
        let scope = SymbolScope::default();
        let fact = input_fact(
            &scope,
            &info(vec![
                Dim::Symbolic("N".into()),
                Dim::Fixed(3),
                Dim::Unknown,
                Dim::Unknown,
                Dim::Symbolic("N".into()),
            ]),
        );
        let shape = fact.shape.concretize().expect("a closed shape");
        assert_eq!(shape[0], shape[4]);
        assert_eq!(shape[1], TDim::Val(3));
        assert_ne!(shape[2], shape[3]);
        assert_ne!(shape[0], shape[2]);
        assert_eq!(shape[2].to_string(), "x_2");
    }

    #[test]
    fn fresh_names_are_symbol_friendly() {
        assert_eq!(fresh_name("x", 0), "x_0");
        assert_eq!(fresh_name("input.1", 2), "input_1_2");
        assert_eq!(fresh_name("0:in", 1), "in_0_in_1");
    }
}
