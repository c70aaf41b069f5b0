//! The graph rewrite: nodes in their order, each quantized one preceded by the
//! DequantizeLinear of its weights and followed by the Q/DQ pair of its output.

use std::collections::{HashMap, HashSet};

use inference::onnx::{self, proto::GraphProto, proto::NodeProto};

use super::super::error::QuantizeError;
use super::super::names::Names;
use super::super::params::{params_for_range, ParamsConfig, QuantParams};
use super::super::report::{KeptNode, QuantizeReport, QuantizedNode};
use super::super::weights::{QuantizedWeights, WeightConfig};
use super::decide::Decision;
use super::emit::Emitter;
use super::select::{self, Constants, Role, SAME_AS_INPUT};
use super::StaticOptions;
use crate::calibrate::TensorRanges;

/// Rewrites `graph` as `decisions` say; the report's sizes and opsets are left to the caller.
pub(super) fn rewrite(
    graph: &mut GraphProto,
    decisions: &[Decision],
    ranges: &TensorRanges,
    options: &StaticOptions,
) -> Result<QuantizeReport, QuantizeError> {
    let constants = Constants::of(graph);
    let mut names = Names::of_graph(graph);
    let mut nodes = std::mem::take(&mut graph.node);
    let roles: Vec<Vec<Role>> = nodes
        .iter()
        .map(|n| select::input_roles(n, &constants, options.per_channel))
        .collect();

    // Folds: the producer now writes the removed activation's output.
    for (i, decision) in decisions.iter().enumerate() {
        if let Decision::FoldedInto(p) = decision {
            nodes[*p].output[0] = nodes[i].output[0].clone();
        }
    }
    let params = activation_params(&nodes, decisions, &roles, ranges, options);
    let graph_outputs: HashSet<String> = graph.output.iter().map(|v| v.name.clone()).collect();

    let mut out = Rewriter {
        emitter: Emitter {
            names: &mut names,
            nodes: Vec::with_capacity(nodes.len() * 3),
            initializers: Vec::new(),
        },
        params: &params,
        graph_outputs: &graph_outputs,
        view: HashMap::new(),
        options,
    };
    for input in graph
        .input
        .iter()
        .map(|v| v.name.clone())
        .collect::<Vec<_>>()
    {
        if params.contains_key(&input) {
            out.pair(&input, &input, false);
        }
    }
    let labels: Vec<String> = nodes
        .iter()
        .map(|n| {
            if n.name.is_empty() {
                n.output[0].clone()
            } else {
                n.name.clone()
            }
        })
        .collect();
    let mut report = QuantizeReport {
        quantized: Vec::new(),
        kept_float: Vec::new(),
        size_before: 0,
        size_after: 0,
        opset_before: 0,
        opset_after: 0,
        preprocess: None,
    };
    let mut weights: HashMap<String, (String, QuantizedWeights)> = HashMap::new();
    for (i, mut node) in nodes.into_iter().enumerate() {
        match &decisions[i] {
            Decision::FoldedInto(p) => {
                report.quantized.push(QuantizedNode {
                    node: node.name.clone(),
                    output: node.output[0].clone(),
                    op_type: node.op_type.clone(),
                    weight: String::new(),
                    weight_type: options.weight_type,
                    stored_as: options.weight_type,
                    per_channel: false,
                    integer_op: format!("folded into {}", labels[*p]),
                });
                continue;
            }
            Decision::Keep(reason) => {
                report.kept_float.push(KeptNode {
                    node: node.name.clone(),
                    output: node.output.first().cloned().unwrap_or_default(),
                    op_type: onnx::qualified_op(&node),
                    reason: reason.clone(),
                });
                for input in &mut node.input {
                    if let Some(v) = out.view.get(input) {
                        *input = v.clone();
                    }
                }
                out.emitter.nodes.push(node);
                continue;
            }
            Decision::Quantize => {}
        }
        let original = node.input.clone();
        let mut weight: Option<(String, QuantizedWeights)> = None;
        for (k, role) in roles[i].iter().enumerate() {
            let name = &original[k];
            match role {
                Role::Activation => {
                    // Written by a float node (or not yet paired): its pair goes here.
                    if !out.view.contains_key(name) {
                        out.pair(name, name, false);
                    }
                    node.input[k] = out.view[name].clone();
                }
                Role::Weight { channel_axis } => {
                    if !weights.contains_key(name) {
                        let tensor = constant(graph, &node, name)?;
                        let config = match channel_axis {
                            Some(axis) => WeightConfig::per_channel(options.weight_type, *axis),
                            None => WeightConfig::per_tensor(options.weight_type),
                        };
                        let made =
                            out.emitter
                                .weight(name, &tensor, &config)
                                .map_err(|source| QuantizeError::Weight {
                                    node: onnx::node_label(&node),
                                    source,
                                })?;
                        weights.insert(name.clone(), made);
                    }
                    let (dq, q) = weights[name].clone();
                    node.input[k] = dq;
                    if k == 1 {
                        weight = Some((name.clone(), q));
                    }
                }
                Role::Bias => {
                    let input_scale = params.get(&original[0]).map(|p| p.scale);
                    if let (Some(scale), Some((_, w))) = (input_scale, &weight) {
                        let bias = constant(graph, &node, name)?;
                        if let Some(dq) = out.emitter.bias(name, &bias, scale, w)? {
                            node.input[k] = dq;
                        }
                    }
                }
                Role::Skip => {}
            }
        }
        report.quantized.push(QuantizedNode {
            node: node.name.clone(),
            output: node.output[0].clone(),
            op_type: node.op_type.clone(),
            weight: weight.as_ref().map(|(n, _)| n.clone()).unwrap_or_default(),
            weight_type: options.weight_type,
            stored_as: options.weight_type,
            per_channel: weight.as_ref().is_some_and(|(_, w)| w.axis.is_some()),
            integer_op: "QDQ".to_owned(),
        });
        let output = node.output[0].clone();
        if params.contains_key(&output) {
            // A graph output keeps its name, on the DequantizeLinear.
            let source = if graph_outputs.contains(&output) {
                let renamed = out.emitter.names.fresh(&format!("{output}_float"));
                node.output[0] = renamed.clone();
                renamed
            } else {
                output.clone()
            };
            out.emitter.nodes.push(node);
            out.pair(&output, &source, true);
        } else {
            out.emitter.nodes.push(node);
        }
    }
    let Emitter {
        nodes,
        initializers,
        ..
    } = out.emitter;
    graph.node = nodes;
    graph.initializer.extend(initializers);
    super::super::preprocess::drop_unused(graph);
    Ok(report)
}

/// The scale and zero point of every activation tensor that gets a Q/DQ pair: the inputs of
/// quantized nodes and their outputs, from the calibrated ranges, except the outputs of
/// [`SAME_AS_INPUT`] operators, which take their input's.
fn activation_params(
    nodes: &[NodeProto],
    decisions: &[Decision],
    roles: &[Vec<Role>],
    ranges: &TensorRanges,
    options: &StaticOptions,
) -> HashMap<String, QuantParams> {
    let config = ParamsConfig {
        symmetric: options.symmetric_activations,
        ..ParamsConfig::new(options.activation_type)
    };
    let of = |name: &str| {
        ranges
            .get(name)
            .map(|r| params_for_range(r.min, r.max, &config))
    };
    let mut params = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        if decisions[i] != Decision::Quantize {
            continue;
        }
        for (name, role) in node.input.iter().zip(&roles[i]) {
            if *role == Role::Activation && !params.contains_key(name) {
                if let Some(p) = of(name) {
                    params.insert(name.clone(), p);
                }
            }
        }
        let output = &node.output[0];
        let p = if SAME_AS_INPUT.contains(&node.op_type.as_str()) {
            params.get(&node.input[0]).copied()
        } else {
            of(output)
        };
        if let Some(p) = p {
            params.insert(output.clone(), p);
        }
    }
    params
}

/// The float32 constant `name` of `graph`, read by `node`.
fn constant(
    graph: &GraphProto,
    node: &NodeProto,
    name: &str,
) -> Result<inference::Tensor, QuantizeError> {
    let proto = onnx::initializer(graph, name).ok_or_else(|| QuantizeError::MissingConstant {
        node: onnx::node_label(node),
        name: name.to_owned(),
    })?;
    onnx::tensor_from_proto(proto).map_err(|source| QuantizeError::Node {
        node: onnx::node_label(node),
        source,
    })
}

/// The nodes being written, and where readers of each quantized tensor now read.
struct Rewriter<'a, 'n> {
    emitter: Emitter<'n>,
    params: &'a HashMap<String, QuantParams>,
    graph_outputs: &'a HashSet<String>,
    /// Quantized tensor → the output of its DequantizeLinear.
    view: HashMap<String, String>,
    options: &'a StaticOptions,
}

impl Rewriter<'_, '_> {
    /// The Q/DQ pair of `tensor`, reading `source` (the tensor itself, or its renamed float
    /// value when it is a graph output); with `takes_name` the DequantizeLinear writes the
    /// graph output `tensor` itself.
    fn pair(&mut self, tensor: &str, source: &str, takes_name: bool) {
        let output = if takes_name && self.graph_outputs.contains(tensor) {
            tensor.to_owned()
        } else {
            self.emitter
                .names
                .fresh(&format!("{tensor}_DequantizeLinear_Output"))
        };
        self.emitter.activation_pair(
            source,
            &output,
            tensor,
            self.params[tensor],
            self.options.activation_type,
        );
        self.view.insert(tensor.to_owned(), output);
    }
}
