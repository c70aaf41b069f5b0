//! Pre-processing that onnxruntime asks its users to run by hand (`quant_pre_process`) before
//! static quantization, done here as part of it:
//!
//! - `Constant` nodes become initializers, so their values can be stored as integers;
//! - a `BatchNormalization` that alone reads a `Conv` with constant weights is folded into
//!   that `Conv` (`W' = W · γ/√(σ²+ε)` per output channel, `B' = (B − μ) · γ/√(σ²+ε) + β`),
//!   so the pair quantizes as one convolution;
//! - `Identity` and inference-mode `Dropout` nodes are bypassed.
//!
//! Each step keeps the model's outputs and leaves what it does not recognise alone.

use std::collections::HashSet;

use inference::onnx::{self, proto::GraphProto, DataLayout};
use inference::{ElementType, Tensor};

use super::error::QuantizeError;

/// What [`preprocess`] changed.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PreprocessReport {
    /// `Constant` nodes turned into initializers.
    pub constants_to_initializers: usize,
    /// `BatchNormalization` nodes folded into the `Conv` before them (their names, or their
    /// output for a node without one).
    pub batch_norms_folded: Vec<String>,
    /// `Identity`/`Dropout` nodes removed.
    pub bypassed: usize,
}

/// Runs the pre-processing steps on `graph` (the main graph; subgraphs are left alone).
pub fn preprocess(graph: &mut GraphProto) -> Result<PreprocessReport, QuantizeError> {
    let mut report = PreprocessReport {
        constants_to_initializers: constants_to_initializers(graph)?,
        ..PreprocessReport::default()
    };
    report.bypassed = bypass_identities(graph);
    report.batch_norms_folded = fold_batch_norms(graph)?;
    drop_unused(graph);
    Ok(report)
}

/// `Constant` nodes holding a tensor (`value`) become initializers of the same name.
fn constants_to_initializers(graph: &mut GraphProto) -> Result<usize, QuantizeError> {
    let mut moved = 0;
    let mut kept = Vec::with_capacity(graph.node.len());
    for node in std::mem::take(&mut graph.node) {
        let value = if onnx::is_default_domain(&node.domain)
            && node.op_type == "Constant"
            && node.output.len() == 1
            && node.attribute.len() == 1
        {
            onnx::attr_tensor(&node, "value").ok().flatten().cloned()
        } else {
            None
        };
        match value {
            Some(mut tensor) => {
                tensor.name = node.output[0].clone();
                graph.initializer.push(tensor);
                moved += 1;
            }
            None => kept.push(node),
        }
    }
    graph.node = kept;
    Ok(moved)
}

/// Removes `Identity` nodes and `Dropout` nodes (inference: the identity; only when the mask
/// output is unused) whose output is not a graph output, pointing readers at their input.
fn bypass_identities(graph: &mut GraphProto) -> usize {
    let outputs: HashSet<String> = graph.output.iter().map(|v| v.name.clone()).collect();
    let mut renames: Vec<(String, String)> = Vec::new();
    graph.node.retain(|node| {
        let passes = onnx::is_default_domain(&node.domain)
            && (node.op_type == "Identity"
                || (node.op_type == "Dropout" && node.output.iter().skip(1).all(String::is_empty)))
            && !node.input.is_empty()
            && !node.output.is_empty()
            && !outputs.contains(&node.output[0]);
        if passes {
            renames.push((node.output[0].clone(), node.input[0].clone()));
        }
        !passes
    });
    for (from, to) in &renames {
        let to = resolve(&renames, to);
        for node in &mut graph.node {
            for input in node.input.iter_mut().filter(|i| *i == from) {
                *input = to.clone();
            }
        }
    }
    renames.len()
}

/// Follows a chain of renames (`Identity` of an `Identity`) to its end.
fn resolve(renames: &[(String, String)], name: &str) -> String {
    let mut name = name.to_owned();
    for _ in 0..renames.len() {
        match renames.iter().find(|(from, _)| *from == name) {
            Some((_, to)) => name = to.clone(),
            None => break,
        }
    }
    name
}

/// Folds each `BatchNormalization` (inference form: one output) that alone reads the output
/// of a `Conv` whose weight and bias are constant float32 initializers.
fn fold_batch_norms(graph: &mut GraphProto) -> Result<Vec<String>, QuantizeError> {
    let mut folded = Vec::new();
    loop {
        let Some((conv, bn)) = next_fold(graph) else {
            return Ok(folded);
        };
        fold(graph, conv, bn)?;
        let node = &graph.node[bn];
        folded.push(if node.name.is_empty() {
            node.output[0].clone()
        } else {
            node.name.clone()
        });
        let output = graph.node[bn].output[0].clone();
        graph.node[conv].output[0] = output;
        graph.node.remove(bn);
    }
}

fn next_fold(graph: &GraphProto) -> Option<(usize, usize)> {
    let producers = onnx::producers(graph);
    let consumers = onnx::consumers(graph);
    let outputs: HashSet<&str> = graph.output.iter().map(|v| v.name.as_str()).collect();
    let inputs: HashSet<&str> = graph.input.iter().map(|v| v.name.as_str()).collect();
    let constant_f32 = |name: &str| {
        !inputs.contains(name)
            && onnx::initializer(graph, name)
                .is_some_and(|t| onnx::element_type(t) == Some(ElementType::F32))
    };
    graph.node.iter().enumerate().find_map(|(b, bn)| {
        if !onnx::is_default_domain(&bn.domain)
            || bn.op_type != "BatchNormalization"
            || bn.input.len() != 5
            || bn.output.iter().skip(1).any(|o| !o.is_empty())
            || onnx::attr_int(bn, "training_mode").ok().flatten() == Some(1)
            || !bn.input[1..].iter().all(|n| constant_f32(n))
        {
            return None;
        }
        let x = bn.input[0].as_str();
        let &c = producers.get(x)?;
        let conv = &graph.node[c];
        let alone = consumers.get(x).is_some_and(|r| r.len() == 1) && !outputs.contains(x);
        let ok = alone
            && onnx::is_default_domain(&conv.domain)
            && conv.op_type == "Conv"
            && conv.output.len() == 1
            && conv.input.len() >= 2
            && conv.input[1..].iter().all(|n| constant_f32(n));
        ok.then_some((c, b))
    })
}

fn fold(graph: &mut GraphProto, conv: usize, bn: usize) -> Result<(), QuantizeError> {
    let label = onnx::node_label(&graph.node[bn]);
    let read = |graph: &GraphProto, name: &str| -> Result<Vec<f32>, QuantizeError> {
        let proto =
            onnx::initializer(graph, name).ok_or_else(|| QuantizeError::MissingConstant {
                node: label.clone(),
                name: name.to_owned(),
            })?;
        let tensor = onnx::tensor_from_proto(proto).map_err(|source| QuantizeError::Node {
            node: label.clone(),
            source,
        })?;
        Ok(tensor
            .as_array::<f32>()
            .map(|a| a.iter().copied().collect())
            .unwrap_or_default())
    };
    let bn_node = graph.node[bn].clone();
    let epsilon = onnx::attr_float(&bn_node, "epsilon")
        .map_err(|source| QuantizeError::Node {
            node: label.clone(),
            source,
        })?
        .unwrap_or(1e-5);
    let [gamma, beta, mean, var] = [1, 2, 3, 4].map(|i| read(graph, &bn_node.input[i]));
    let (gamma, beta, mean, var) = (gamma?, beta?, mean?, var?);
    let conv_node = graph.node[conv].clone();
    let weight_name = conv_node.input[1].clone();
    let weight_proto = onnx::initializer(graph, &weight_name).expect("checked constant");
    let shape = onnx::tensor_shape(weight_proto).map_err(|source| QuantizeError::Node {
        node: label.clone(),
        source,
    })?;
    let weight = read(graph, &weight_name)?;
    let channels = shape.first().copied().unwrap_or(0);
    let per_channel = [&gamma, &beta, &mean, &var]
        .iter()
        .all(|v| v.len() == channels);
    if channels == 0 || !per_channel || weight.len() % channels != 0 {
        return Err(QuantizeError::Unsupported {
            node: label,
            detail: format!(
                "BatchNormalization's parameters do not match the {channels} output channels of the Conv before it"
            ),
        });
    }
    let factor: Vec<f32> = (0..channels)
        .map(|c| gamma[c] / (var[c] + epsilon).sqrt())
        .collect();
    let per = weight.len() / channels;
    let new_weight: Vec<f32> = weight
        .iter()
        .enumerate()
        .map(|(i, w)| w * factor[i / per])
        .collect();
    let old_bias = match conv_node.input.get(2).filter(|n| !n.is_empty()) {
        Some(name) => read(graph, name)?,
        None => vec![0.0; channels],
    };
    let new_bias: Vec<f32> = (0..channels)
        .map(|c| (old_bias.get(c).copied().unwrap_or(0.0) - mean[c]) * factor[c] + beta[c])
        .collect();
    // New initializers, so a weight shared with another node keeps its value there.
    let mut names = super::names::Names::of_graph(graph);
    let w_name = names.fresh(&format!("{weight_name}_bn_folded"));
    let b_name = names.fresh(&format!("{}_bias_bn_folded", conv_node.name));
    let w = Tensor::from_shape_vec(&shape, new_weight).map_err(|e| QuantizeError::Unsupported {
        node: label.clone(),
        detail: e.to_string(),
    })?;
    let b = Tensor::from_shape_vec(&[channels], new_bias).expect("1-D");
    graph
        .initializer
        .push(onnx::tensor_to_proto(&w_name, &w, DataLayout::Raw));
    graph
        .initializer
        .push(onnx::tensor_to_proto(&b_name, &b, DataLayout::Raw));
    let node = &mut graph.node[conv];
    node.input[1] = w_name;
    if node.input.len() > 2 {
        node.input[2] = b_name;
    } else {
        node.input.push(b_name);
    }
    Ok(())
}

/// Removes the initializers that no node (in subgraphs too) and no graph output reads any
/// more, such as float weights now stored as integers or folded, and the `value_info` of
/// values no node writes any more.
pub(crate) fn drop_unused(graph: &mut GraphProto) {
    let mut used = std::collections::HashSet::new();
    collect_reads(graph, &mut used);
    let inputs: std::collections::HashSet<String> =
        graph.input.iter().map(|v| v.name.clone()).collect();
    graph
        .initializer
        .retain(|t| used.contains(&t.name) || inputs.contains(&t.name));
    let written: std::collections::HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(String::as_str))
        .collect();
    let kept: Vec<_> = std::mem::take(&mut graph.value_info)
        .into_iter()
        .filter(|v| written.contains(v.name.as_str()))
        .collect();
    graph.value_info = kept;
}

fn collect_reads(graph: &GraphProto, used: &mut std::collections::HashSet<String>) {
    used.extend(graph.output.iter().map(|v| v.name.clone()));
    for node in &graph.node {
        used.extend(node.input.iter().cloned());
        for a in &node.attribute {
            for g in a.g.iter().chain(&a.graphs) {
                collect_reads(g, used);
            }
        }
    }
}
