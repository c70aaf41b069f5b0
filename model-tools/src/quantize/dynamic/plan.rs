//! Deciding what each node becomes: a [`Plan`] to quantize it, or the reason it stays float.

use std::collections::{HashMap, HashSet};

use inference::onnx;
use inference::onnx::proto::{AttributeProto, GraphProto, NodeProto, TensorProto};
use inference::{ElementType, Tensor};

use super::{DynamicOp, DynamicOptions};
use crate::quantize::error::QuantizeError;
use crate::quantize::names::{self, Names};
use crate::quantize::params::QuantType;
use crate::quantize::report::{KeepReason, KeptNode, QuantizedNode};

/// What a quantizable node becomes.
pub(super) struct Plan {
    pub(super) op: DynamicOp,
    /// The float input quantized at run time.
    pub(super) activation: String,
    /// `Gemm` with `transA = 1`: transpose the activation first.
    pub(super) transpose_activation: bool,
    /// The weight initializer's name.
    pub(super) weight_name: String,
    /// The weight as it enters the integer operator (Gemm's transposed and scaled).
    pub(super) weight: Tensor,
    /// Identifies the weight with its transformation, to quantize it once.
    pub(super) weight_key: String,
    pub(super) bias: Bias,
    /// The attributes `ConvInteger` inherits from `Conv`.
    pub(super) attributes: Vec<AttributeProto>,
}

pub(super) enum Bias {
    None,
    /// Added as it is.
    Value(String),
    /// A computed `C` multiplied by `beta` at run time.
    Scaled(String, f32),
    /// A new constant (Gemm's `beta · C`, Conv's bias reshaped to `[M, 1, …]`) replacing the
    /// initializer `replaces`.
    Constant {
        replaces: String,
        tensor: Tensor,
    },
}

/// The quantized activation: `DynamicQuantizeLinear`'s three outputs.
#[derive(Clone)]
pub(super) struct QuantizedActivation {
    pub(super) data: String,
    pub(super) scale: String,
    pub(super) zero_point: String,
}

/// The initializers of a quantized weight.
#[derive(Clone)]
pub(super) struct WeightNames {
    pub(super) data: String,
    pub(super) scale: String,
    pub(super) zero_point: String,
    pub(super) per_channel: bool,
    pub(super) stored_as: QuantType,
}

/// The state of one pass over the main graph's nodes.
pub(super) struct Rewrite<'a> {
    pub(super) options: &'a DynamicOptions,
    pub(super) initializer: HashMap<&'a str, &'a TensorProto>,
    pub(super) graph_inputs: HashSet<&'a str>,
    pub(super) names: Names,
    pub(super) activations: HashMap<String, QuantizedActivation>,
    pub(super) weights: HashMap<String, WeightNames>,
    /// The new node list.
    pub(super) nodes: Vec<NodeProto>,
    /// New initializers.
    pub(super) initializers: Vec<TensorProto>,
    /// Float weights that were quantized (removed when nothing reads them any more).
    pub(super) replaced: HashSet<String>,
    pub(super) quantized: Vec<QuantizedNode>,
    pub(super) kept_float: Vec<KeptNode>,
}

impl<'a> Rewrite<'a> {
    pub(super) fn new(graph: &'a GraphProto, options: &'a DynamicOptions) -> Self {
        Self {
            options,
            initializer: graph
                .initializer
                .iter()
                .map(|t| (t.name.as_str(), t))
                .collect(),
            graph_inputs: graph.input.iter().map(|i| i.name.as_str()).collect(),
            names: Names::of_graph(graph),
            activations: HashMap::new(),
            weights: HashMap::new(),
            nodes: Vec::new(),
            initializers: Vec::new(),
            replaced: HashSet::new(),
            quantized: Vec::new(),
            kept_float: Vec::new(),
        }
    }

    pub(super) fn node(&mut self, node: NodeProto) -> Result<(), QuantizeError> {
        let plan = match DynamicOp::of(&node) {
            None if names::subgraphs(&node).next().is_some() => Err(KeepReason::Unsupported {
                detail: "holds subgraphs, which stay in float".to_owned(),
            }),
            None => Err(KeepReason::NotQuantizable),
            Some(_) if !node.name.is_empty() && self.options.exclude_nodes.contains(&node.name) => {
                Err(KeepReason::Excluded)
            }
            Some(op) if !self.options.op_types.contains(&op) => Err(KeepReason::OpTypeNotSelected),
            Some(op) => self.plan(&node, op)?,
        };
        match plan {
            Ok(plan) => self.emit(node, plan),
            Err(reason) => {
                self.kept_float.push(KeptNode {
                    node: node.name.clone(),
                    output: node.output.first().cloned().unwrap_or_default(),
                    op_type: onnx::qualified_op(&node),
                    reason,
                });
                self.nodes.push(node);
            }
        }
        Ok(())
    }

    /// How to rewrite `node`, or why not; an error for a malformed node.
    fn plan(
        &self,
        node: &NodeProto,
        op: DynamicOp,
    ) -> Result<Result<Plan, KeepReason>, QuantizeError> {
        let unsupported = |detail: String| Ok(Err(KeepReason::Unsupported { detail }));
        let (min_inputs, max_inputs) = match op {
            DynamicOp::MatMul => (2, 2),
            DynamicOp::Gemm | DynamicOp::Conv => (2, 3),
        };
        let input = |i: usize| node.input.get(i).map(String::as_str).unwrap_or("");
        if node.input.len() < min_inputs
            || node.input.len() > max_inputs
            || input(0).is_empty()
            || input(1).is_empty()
            || node.output.first().is_none_or(String::is_empty)
        {
            return unsupported(format!(
                "has {} inputs and {} outputs, not the form {op} is quantized in",
                node.input.len(),
                node.output.len()
            ));
        }
        let weight_name = input(1);
        let weight = match self.constant(node, weight_name)? {
            Ok(w) => w,
            Err(reason) => return Ok(Err(reason)),
        };
        let rank = weight.shape().len();
        // Attribute errors name the node already.
        let malformed = QuantizeError::Format;
        let mut plan = Plan {
            op,
            activation: input(0).to_owned(),
            transpose_activation: false,
            weight_name: weight_name.to_owned(),
            weight_key: weight_name.to_owned(),
            weight,
            bias: Bias::None,
            attributes: Vec::new(),
        };
        match op {
            DynamicOp::MatMul => {
                if rank < 2 {
                    return unsupported(format!(
                        "weight `{weight_name}` is {rank}-D; MatMulInteger needs a matrix"
                    ));
                }
            }
            DynamicOp::Gemm => {
                if rank != 2 {
                    return unsupported(format!(
                        "weight `{weight_name}` is {rank}-D, not a matrix"
                    ));
                }
                let alpha = onnx::attr_float(node, "alpha")
                    .map_err(malformed)?
                    .unwrap_or(1.0);
                let beta = onnx::attr_float(node, "beta")
                    .map_err(malformed)?
                    .unwrap_or(1.0);
                let trans_a = onnx::attr_int(node, "transA")
                    .map_err(malformed)?
                    .unwrap_or(0);
                let trans_b = onnx::attr_int(node, "transB")
                    .map_err(malformed)?
                    .unwrap_or(0);
                plan.transpose_activation = trans_a != 0;
                if trans_b != 0 {
                    plan.weight = transpose(&plan.weight);
                }
                if alpha != 1.0 {
                    plan.weight = scale(&plan.weight, alpha);
                    let finite = plan
                        .weight
                        .as_array::<f32>()
                        .is_some_and(|a| a.iter().all(|x| x.is_finite()));
                    if !finite {
                        return unsupported(format!(
                            "alpha {alpha} times weight `{weight_name}` overflows float32"
                        ));
                    }
                }
                plan.weight_key = format!("{weight_name}|transB={trans_b}|alpha={alpha}");
                let c = input(2);
                plan.bias = if c.is_empty() || beta == 0.0 {
                    Bias::None
                } else if beta == 1.0 {
                    Bias::Value(c.to_owned())
                } else {
                    match self.constant(node, c)? {
                        Ok(c_tensor) => Bias::Constant {
                            replaces: c.to_owned(),
                            tensor: scale(&c_tensor, beta),
                        },
                        Err(KeepReason::Unsupported { detail }) => return unsupported(detail),
                        Err(_) => Bias::Scaled(c.to_owned(), beta),
                    }
                };
            }
            DynamicOp::Conv => {
                if rank < 3 {
                    return unsupported(format!(
                        "weight `{weight_name}` is {rank}-D; Conv weights are [M, C, k…]"
                    ));
                }
                let b = input(2);
                if !b.is_empty() {
                    let bias = match self.constant(node, b)? {
                        Ok(bias) => bias,
                        Err(reason) => {
                            return unsupported(format!("bias: {reason}"));
                        }
                    };
                    let channels = plan.weight.shape()[0];
                    if bias.shape() != [channels] {
                        return unsupported(format!(
                            "bias `{b}` has shape {:?}, not [{channels}]",
                            bias.shape()
                        ));
                    }
                    let mut shape = vec![1; rank - 1];
                    shape[0] = channels;
                    plan.bias = Bias::Constant {
                        replaces: b.to_owned(),
                        tensor: bias.reshape(&shape).expect("same element count"),
                    };
                }
                plan.attributes = node.attribute.clone();
            }
        }
        Ok(Ok(plan))
    }

    /// The float32 constant `name` that `node` reads, or why it is not one.
    fn constant(
        &self,
        node: &NodeProto,
        name: &str,
    ) -> Result<Result<Tensor, KeepReason>, QuantizeError> {
        let Some(proto) = self.initializer.get(name) else {
            return Ok(Err(KeepReason::WeightNotConstant {
                input: name.to_owned(),
            }));
        };
        if self.graph_inputs.contains(name) {
            return Ok(Err(KeepReason::WeightIsGraphInput {
                input: name.to_owned(),
            }));
        }
        if onnx::element_type(proto) != Some(ElementType::F32) {
            return Ok(Err(KeepReason::Unsupported {
                detail: format!(
                    "`{name}` is {}; only float32 weights are quantized",
                    inference::onnx_type_name(proto.data_type)
                ),
            }));
        }
        let tensor = onnx::tensor_from_proto(proto).map_err(|source| QuantizeError::Node {
            node: onnx::node_label(node),
            source,
        })?;
        if let Some(bad) = tensor
            .as_array::<f32>()
            .and_then(|a| a.iter().find(|x| !x.is_finite()).copied())
        {
            return Ok(Err(KeepReason::Unsupported {
                detail: format!("`{name}` holds {bad}, which has no integer representation"),
            }));
        }
        Ok(Ok(tensor))
    }
}

/// A 2-D float32 tensor transposed.
pub(super) fn transpose(t: &Tensor) -> Tensor {
    let a = t.as_array::<f32>().expect("checked float32");
    Tensor::from(a.clone().reversed_axes().as_standard_layout().into_owned())
}

/// A float32 tensor times `factor`.
pub(super) fn scale(t: &Tensor, factor: f32) -> Tensor {
    let a = t.as_array::<f32>().expect("checked float32");
    Tensor::from(a.mapv(|x| x * factor))
}
