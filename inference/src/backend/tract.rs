//! The tract backend: pure Rust, single-threaded per call, shareable across threads.

use std::sync::Arc;

use tract_onnx::prelude::{
    DatumType, Framework, InferenceModelExt, IntoTValue, IntoTensor, TValue, TVec,
    Tensor as TractTensor, TypedFact, TypedOp,
};
use tract_onnx::tract_core::plan::SimplePlan;

use super::{guard, Backend, BackendKind};
use crate::error::{error_chain as chain, Error};
use crate::metadata::ModelMetadata;
use crate::onnx::proto as pb;
use crate::tensor::{with_array, Tensor};

type Plan = SimplePlan<TypedFact, Box<dyn TypedOp>>;

/// A model optimised and planned by tract.
///
/// The plan is immutable; each call gets its own state, so calls run in parallel without locks.
#[derive(Debug)]
pub struct TractBackend {
    plan: Arc<Plan>,
    /// For each tract model input, the index of the metadata input that feeds it.
    input_order: Vec<usize>,
    /// For each metadata output, the index of the tract model output that carries it.
    output_index: Vec<usize>,
    output_names: Vec<String>,
}

impl TractBackend {
    /// Builds the tract plan for a decoded model.
    pub(crate) fn load(proto: &pb::ModelProto, metadata: &ModelMetadata) -> Result<Self, Error> {
        guard(BackendKind::Tract, "loading", || {
            Self::load_inner(proto, metadata)
        })
    }

    fn load_inner(proto: &pb::ModelProto, metadata: &ModelMetadata) -> Result<Self, Error> {
        let unsupported = |stage: &str, e: tract_onnx::prelude::TractError| {
            let source: Box<dyn std::error::Error + Send + Sync> = e.into();
            Error::Unsupported {
                backend: BackendKind::Tract,
                reason: format!("{stage}: {}", chain(source.as_ref())),
                source: Some(source),
            }
        };
        let model = tract_onnx::onnx()
            .model_for_proto_model(proto)
            .map_err(|e| unsupported("translating the graph", e))?;
        let typed = model
            .into_optimized()
            .map_err(|e| unsupported("analysing and optimising the graph", e))?;

        let input_order = typed
            .input_outlets()
            .map_err(|e| unsupported("listing inputs", e))?
            .iter()
            .map(|outlet| {
                let name = &typed.node(outlet.node).name;
                metadata
                    .inputs
                    .iter()
                    .position(|i| &i.name == name)
                    .ok_or_else(|| Error::Unsupported {
                        backend: BackendKind::Tract,
                        reason: format!(
                            "tract expects an input `{name}` the model does not declare"
                        ),
                        source: None,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tract_outputs = typed
            .output_outlets()
            .map_err(|e| unsupported("listing outputs", e))?
            .to_vec();
        let output_index = metadata
            .outputs
            .iter()
            .enumerate()
            .map(|(i, out)| {
                tract_outputs
                    .iter()
                    .position(|o| {
                        typed.outlet_label(*o) == Some(out.name.as_str())
                            || typed.node(o.node).name == out.name
                    })
                    .unwrap_or(i)
            })
            .collect();
        let plan = SimplePlan::new(typed).map_err(|e| unsupported("planning", e))?;
        Ok(Self {
            plan,
            input_order,
            output_index,
            output_names: metadata.outputs.iter().map(|o| o.name.clone()).collect(),
        })
    }
}

impl Backend for TractBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Tract
    }

    fn run(&self, inputs: Vec<Tensor>, outputs: &[usize]) -> Result<Vec<Tensor>, Error> {
        guard(BackendKind::Tract, "running", || {
            let mut slots: Vec<Option<Tensor>> = inputs.into_iter().map(Some).collect();
            let values: TVec<TValue> = self
                .input_order
                .iter()
                .map(|&i| {
                    to_tract(slots[i].take().expect("each input feeds one tract input"))
                        .into_tvalue()
                })
                .collect();
            let mut results = self.plan.run(values).map_err(|e| Error::Run {
                backend: BackendKind::Tract,
                reason: chain(AsRef::<dyn std::error::Error>::as_ref(&e)),
            })?;
            let mut taken: Vec<Option<TValue>> = results.drain(..).map(Some).collect();
            outputs
                .iter()
                .map(|&o| {
                    let name = &self.output_names[o];
                    let value = self
                        .output_index
                        .get(o)
                        .and_then(|&t| taken.get_mut(t))
                        .and_then(Option::take)
                        .ok_or_else(|| Error::Output {
                            name: name.clone(),
                            reason: "tract did not produce it".to_owned(),
                        })?;
                    from_tract(value.into_tensor(), name)
                })
                .collect()
        })
    }
}

/// Converts one of our tensors to tract's.
pub(crate) fn to_tract(tensor: Tensor) -> TractTensor {
    with_array!(tensor, a => TractTensor::from(a))
}

/// Converts a tract tensor to ours; quantized integers come back as their storage type.
pub(crate) fn from_tract(tensor: TractTensor, name: &str) -> Result<Tensor, Error> {
    let err = |e: tract_onnx::prelude::TractError| Error::Output {
        name: name.to_owned(),
        reason: e.to_string(),
    };
    let tensor = match tensor.datum_type() {
        DatumType::QU8(_) => tensor.cast_to_dt(DatumType::U8).map_err(err)?.into_owned(),
        DatumType::QI8(_) => tensor.cast_to_dt(DatumType::I8).map_err(err)?.into_owned(),
        DatumType::QI32(_) => tensor.cast_to_dt(DatumType::I32).map_err(err)?.into_owned(),
        _ => tensor,
    };
    Ok(match tensor.datum_type() {
        DatumType::F16 => Tensor::F16(tensor.into_plain_array().map_err(err)?),
        DatumType::F32 => Tensor::F32(tensor.into_plain_array().map_err(err)?),
        DatumType::F64 => Tensor::F64(tensor.into_plain_array().map_err(err)?),
        DatumType::I8 => Tensor::I8(tensor.into_plain_array().map_err(err)?),
        DatumType::I16 => Tensor::I16(tensor.into_plain_array().map_err(err)?),
        DatumType::I32 => Tensor::I32(tensor.into_plain_array().map_err(err)?),
        DatumType::I64 => Tensor::I64(tensor.into_plain_array().map_err(err)?),
        DatumType::U8 => Tensor::U8(tensor.into_plain_array().map_err(err)?),
        DatumType::U16 => Tensor::U16(tensor.into_plain_array().map_err(err)?),
        DatumType::U32 => Tensor::U32(tensor.into_plain_array().map_err(err)?),
        DatumType::U64 => Tensor::U64(tensor.into_plain_array().map_err(err)?),
        DatumType::Bool => Tensor::Bool(tensor.into_plain_array().map_err(err)?),
        DatumType::String => Tensor::String(tensor.into_plain_array().map_err(err)?),
        DatumType::TDim => {
            let cast = tensor.cast_to_dt(DatumType::I64).map_err(err)?.into_owned();
            Tensor::I64(cast.into_plain_array().map_err(err)?)
        }
        other => {
            return Err(Error::Output {
                name: name.to_owned(),
                reason: format!("tract produced element type {other:?}, which is not supported"),
            })
        }
    })
}
