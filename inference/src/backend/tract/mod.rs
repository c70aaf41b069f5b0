//! The tract backend: pure Rust, single-threaded per call, shareable across threads.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use tract_onnx::prelude::{
    Framework, InferenceModelExt, IntoTValue, IntoTensor, TValue, TVec, TractError, TypedFact,
    TypedModel, TypedOp,
};
use tract_onnx::tract_core::plan::SimplePlan;

use super::{guard, Backend, BackendKind};
use crate::error::{error_chain as chain, Error};
use crate::metadata::ModelMetadata;
use crate::onnx::proto as pb;
use crate::tensor::Tensor;

mod convert;
mod diagnose;
mod facts;

pub(crate) use convert::{from_tract, to_tract};

type Plan = SimplePlan<TypedFact, Box<dyn TypedOp>>;

/// A model optimised and planned by tract.
///
/// The plan is immutable; each call gets its own state, so calls run in parallel without locks.
/// Inputs and outputs are matched to tract's by position: tract keeps the declared order of
/// both through optimisation, while it may rename the nodes behind them.
#[derive(Debug)]
pub struct TractBackend {
    plan: Arc<Plan>,
    output_names: Vec<String>,
}

impl TractBackend {
    /// Builds the tract plan for a decoded model.
    ///
    /// Every input's fact (element type and shape) comes from `metadata`, which holds the
    /// declared shapes with any configured `input_shapes` applied; see [`facts`].
    pub(crate) fn load(proto: &pb::ModelProto, metadata: &ModelMetadata) -> Result<Self, Error> {
        guard(BackendKind::Tract, "loading", || {
            Self::load_inner(proto, metadata)
        })
    }

    fn load_inner(proto: &pb::ModelProto, metadata: &ModelMetadata) -> Result<Self, Error> {
        let (proto, original_names) = with_unique_node_names(proto);
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| Error::invalid("the model has no graph"))?;
        let unsupported = |reason: String, e: Option<TractError>| Error::Unsupported {
            backend: BackendKind::Tract,
            reason,
            source: e.map(Into::into),
        };
        let explain = |stage: &str, e: TractError| {
            let reason = diagnose::explain(stage, &e, graph, &original_names, metadata);
            unsupported(reason, Some(e))
        };
        // The model's value_info (shapes of intermediate tensors) can contradict the input
        // facts (a dim named `height` in value_info when `input_shapes` fixes it at 320):
        // when analysis fails with it, it is tried once more without.
        let typed = match optimise(&proto, metadata, false) {
            Ok(typed) => Ok(typed),
            Err(first) if !graph.value_info.is_empty() => {
                optimise(&proto, metadata, true).map_err(|_| first)
            }
            Err(first) => Err(first),
        }
        .map_err(|(stage, e)| {
            let mut err = explain(stage, e);
            if let Error::Unsupported { reason, .. } = &mut err {
                let rankless: Vec<String> = metadata
                    .inputs
                    .iter()
                    .filter(|i| i.shape.is_none())
                    .map(|i| format!("`{}`", i.name))
                    .collect();
                if !rankless.is_empty() {
                    reason.push_str(&format!(
                        " (inputs declared without a shape: {})",
                        rankless.join(", ")
                    ));
                }
            }
            err
        })?;
        let ins = typed
            .input_outlets()
            .map_err(|e| explain("listing inputs", e))?
            .len();
        let outs = typed
            .output_outlets()
            .map_err(|e| explain("listing outputs", e))?
            .len();
        if ins != metadata.inputs.len() || outs != metadata.outputs.len() {
            return Err(unsupported(
                format!(
                    "tract's graph has {ins} inputs and {outs} outputs where the model declares {} and {}. {}",
                    metadata.inputs.len(),
                    metadata.outputs.len(),
                    diagnose::remedies(metadata)
                ),
                None,
            ));
        }
        let plan = SimplePlan::new(typed).map_err(|e| explain("planning", e))?;
        Ok(Self {
            plan,
            output_names: metadata.outputs.iter().map(|o| o.name.clone()).collect(),
        })
    }
}

/// Translates, sets the input facts, analyses and optimises; on failure, the stage and error.
fn optimise(
    proto: &pb::ModelProto,
    metadata: &ModelMetadata,
    ignore_value_info: bool,
) -> Result<TypedModel, (&'static str, TractError)> {
    let mut model = tract_onnx::onnx()
        .with_ignore_value_info(ignore_value_info)
        .model_for_proto_model(proto)
        .map_err(|e| ("translating the graph", e))?;
    facts::set_input_facts(&mut model, metadata).map_err(|e| ("setting the input facts", e))?;
    model
        .into_optimized()
        .map_err(|e| ("analysing and optimising the graph", e))
}

/// The model with every node name unique, as tract requires of its own nodes, and the names
/// as the model gives them, by node index. tract names a node after the ONNX node, or after its
/// first output when unnamed; exporters sometimes repeat a name (`F0::anon`). Borrowed when
/// nothing needs renaming.
fn with_unique_node_names(proto: &pb::ModelProto) -> (Cow<'_, pb::ModelProto>, Vec<String>) {
    let Some(graph) = proto.graph.as_ref() else {
        return (Cow::Borrowed(proto), Vec::new());
    };
    let original: Vec<String> = graph.node.iter().map(|n| n.name.clone()).collect();
    let mut taken: HashSet<String> = graph
        .input
        .iter()
        .map(|i| i.name.clone())
        .chain(graph.initializer.iter().map(|t| t.name.clone()))
        .collect();
    let mut renames = Vec::new();
    for (ix, node) in graph.node.iter().enumerate() {
        let name = if node.name.is_empty() {
            node.output.first().cloned().unwrap_or_default()
        } else {
            node.name.clone()
        };
        if !taken.insert(name.clone()) {
            let fresh = (1..)
                .map(|k| format!("{name}.{k}"))
                .find(|n| !taken.contains(n))
                .expect("an unused name");
            taken.insert(fresh.clone());
            renames.push((ix, fresh));
        }
    }
    if renames.is_empty() {
        return (Cow::Borrowed(proto), original);
    }
    let mut owned = proto.clone();
    let nodes = &mut owned.graph.as_mut().expect("checked above").node;
    for (ix, name) in renames {
        nodes[ix].name = name;
    }
    (Cow::Owned(owned), original)
}

impl Backend for TractBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Tract
    }

    fn run(&self, inputs: Vec<Tensor>, outputs: &[usize]) -> Result<Vec<Tensor>, Error> {
        guard(BackendKind::Tract, "running", || {
            let values: TVec<TValue> = inputs
                .into_iter()
                .map(|t| to_tract(t).into_tvalue())
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
                    let value =
                        taken
                            .get_mut(o)
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
