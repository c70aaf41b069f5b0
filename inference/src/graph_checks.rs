//! Checks on a decoded graph that both backends would otherwise get wrong, or get wrong
//! differently: names defined twice, operator domains the model does not import, and operators
//! from domains a backend does not implement (tract ignores a node's domain and would run
//! `com.evil.Relu` as the standard `Relu`).

use std::collections::{HashMap, HashSet};

use crate::backend::BackendKind;
use crate::error::Error;
use crate::onnx::{node_label, proto as pb};

/// The operators tract implements from `ai.onnx.ml` (those its op register holds under ONNX-ML
/// names); it implements no other non-default domain.
const TRACT_ML_OPS: [&str; 6] = [
    "ArrayFeatureExtractor",
    "CategoryMapper",
    "LinearClassifier",
    "LinearRegressor",
    "Normalizer",
    "TreeEnsembleClassifier",
];

/// The operator domains ONNX Runtime's default CPU build implements, besides the default one:
/// the ONNX-ML operators, and Microsoft's contrib operators, which `onnxruntime.quantization`
/// and the transformer optimizers emit. Custom-op libraries are never registered.
const ORT_DOMAINS: [&str; 2] = ["ai.onnx.ml", "com.microsoft"];

/// The default domain is spelled both `` and `ai.onnx`.
fn normalized(domain: &str) -> &str {
    if domain == "ai.onnx" {
        ""
    } else {
        domain
    }
}

fn shown(domain: &str) -> &str {
    if domain.is_empty() {
        "ai.onnx"
    } else {
        domain
    }
}

/// Graph inputs, outputs and initializers each have distinct names, and every tensor is
/// written once: by one node, or as an input or initializer.
pub(crate) fn check_unique_names(graph: &pb::GraphProto) -> Result<(), Error> {
    let twice = |what: &str, name: &str| {
        Error::invalid(format!(
            "{what} `{name}` is declared more than once; every {what} needs its own name"
        ))
    };
    let mut inputs = HashSet::new();
    for vi in &graph.input {
        if !inputs.insert(vi.name.as_str()) {
            return Err(twice("graph input", &vi.name));
        }
    }
    let mut outputs = HashSet::new();
    for vi in &graph.output {
        if !outputs.insert(vi.name.as_str()) {
            return Err(twice("graph output", &vi.name));
        }
    }
    let mut initializers = HashSet::new();
    for t in &graph.initializer {
        if !initializers.insert(t.name.as_str()) {
            return Err(twice("initializer", &t.name));
        }
    }
    let mut writers: HashMap<&str, &pb::NodeProto> = HashMap::new();
    for node in &graph.node {
        for out in node.output.iter().filter(|o| !o.is_empty()) {
            if inputs.contains(out.as_str()) || initializers.contains(out.as_str()) {
                let kind = if inputs.contains(out.as_str()) {
                    "a graph input"
                } else {
                    "an initializer"
                };
                return Err(Error::invalid(format!(
                    "{} writes `{out}`, which is already {kind}",
                    node_label(node)
                )));
            }
            if let Some(first) = writers.insert(out, node) {
                return Err(Error::invalid(format!(
                    "`{out}` is written by {} and again by {}; every tensor needs its own name",
                    node_label(first),
                    node_label(node)
                )));
            }
        }
    }
    Ok(())
}

/// A node, the operator sets in scope for it, and words saying where it is.
type NodeVisit<'f> =
    dyn FnMut(&pb::NodeProto, &[pb::OperatorSetIdProto], &str) -> Result<(), Error> + 'f;

/// Calls `f` on every node: of the main graph, of every subgraph (`If`, `Loop`, `Scan`...),
/// of the training graphs and of the model-local functions.
fn for_each_node(proto: &pb::ModelProto, f: &mut NodeVisit<'_>) -> Result<(), Error> {
    if let Some(graph) = &proto.graph {
        graph_nodes(graph, &proto.opset_import, "", f)?;
    }
    for info in &proto.training_info {
        for graph in [&info.initialization, &info.algorithm]
            .into_iter()
            .flatten()
        {
            graph_nodes(graph, &proto.opset_import, "in a training graph: ", f)?;
        }
    }
    for function in &proto.functions {
        let context = format!(
            "in function `{}`: ",
            function.name.as_deref().unwrap_or("<unnamed>")
        );
        for node in &function.node {
            node_and_subgraphs(node, &function.opset_import, &context, f)?;
        }
    }
    Ok(())
}

fn graph_nodes(
    graph: &pb::GraphProto,
    imports: &[pb::OperatorSetIdProto],
    context: &str,
    f: &mut NodeVisit<'_>,
) -> Result<(), Error> {
    for node in &graph.node {
        node_and_subgraphs(node, imports, context, f)?;
    }
    Ok(())
}

fn node_and_subgraphs(
    node: &pb::NodeProto,
    imports: &[pb::OperatorSetIdProto],
    context: &str,
    f: &mut NodeVisit<'_>,
) -> Result<(), Error> {
    f(node, imports, context)?;
    for attr in &node.attribute {
        let sub = format!(
            "{context}in subgraph `{}` of {}: ",
            attr.name,
            node_label(node)
        );
        for g in attr.g.iter().chain(&attr.graphs) {
            graph_nodes(g, imports, &sub, f)?;
        }
    }
    Ok(())
}

/// Every node's domain is one the model (or its function) imports in `opset_import`.
pub(crate) fn check_opset_imports(proto: &pb::ModelProto) -> Result<(), Error> {
    for_each_node(proto, &mut |node, imports, context| {
        let domain = normalized(&node.domain);
        if imports.iter().any(|o| normalized(&o.domain) == domain) {
            return Ok(());
        }
        let listed: Vec<String> = imports
            .iter()
            .map(|o| format!("`{}`", shown(normalized(&o.domain))))
            .collect();
        Err(Error::invalid(format!(
            "{context}{} uses domain `{}`, which the model does not import (its opset_import lists {})",
            node_label(node),
            shown(domain),
            if listed.is_empty() {
                "nothing".to_owned()
            } else {
                listed.join(", ")
            }
        )))
    })
}

/// Every node's operator comes from a domain the backend implements, so that no engine runs
/// an operator of an unknown domain as the standard operator of the same name.
pub(crate) fn check_domains(proto: &pb::ModelProto, backend: BackendKind) -> Result<(), Error> {
    let local_functions: HashSet<(&str, &str)> = proto
        .functions
        .iter()
        .filter_map(|f| Some((f.domain.as_deref().unwrap_or(""), f.name.as_deref()?)))
        .collect();
    for_each_node(proto, &mut |node, _, context| {
        let domain = normalized(&node.domain);
        let op = node.op_type.as_str();
        let refusal = match backend {
            BackendKind::Tract => tract_refusal(domain, op),
            BackendKind::Ort => {
                let known = domain.is_empty()
                    || ORT_DOMAINS.contains(&domain)
                    || local_functions.contains(&(node.domain.as_str(), op));
                (!known).then(|| {
                    format!(
                        "ONNX Runtime here implements the default domain, {}, and the model's own \
                         functions; no custom-operator library is loaded",
                        ORT_DOMAINS
                            .iter()
                            .map(|d| format!("`{d}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
            }
        };
        match refusal {
            None => Ok(()),
            Some(why) => Err(Error::Unsupported {
                backend,
                reason: format!(
                    "{context}{} is operator `{op}` of domain `{}`, which {backend} does not \
                     implement: {why}",
                    node_label(node),
                    shown(domain),
                ),
                source: None,
            }),
        }
    })
}

fn tract_refusal(domain: &str, op: &str) -> Option<String> {
    let ml_ops = TRACT_ML_OPS.join(", ");
    match domain {
        "" if TRACT_ML_OPS.contains(&op) => Some(format!(
            "`{op}` is an `ai.onnx.ml` operator; the node must say so in its domain"
        )),
        "" => None,
        "ai.onnx.ml" if TRACT_ML_OPS.contains(&op) => None,
        "ai.onnx.ml" => Some(format!(
            "from `ai.onnx.ml` tract implements only {ml_ops}; try the ort backend"
        )),
        _ => Some(format!(
            "tract implements the default ONNX domain and, for {ml_ops}, `ai.onnx.ml` \
             (no model-local functions, no custom domains)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, domain: &str) -> pb::NodeProto {
        pb::NodeProto {
            op_type: op.to_owned(),
            domain: domain.to_owned(),
            name: "n".to_owned(),
            input: vec!["x".to_owned()],
            output: vec!["y".to_owned()],
            ..Default::default()
        }
    }

    fn model(nodes: Vec<pb::NodeProto>, imports: &[&str]) -> pb::ModelProto {
        pb::ModelProto {
            opset_import: imports
                .iter()
                .map(|d| pb::OperatorSetIdProto {
                    domain: (*d).to_owned(),
                    version: 1,
                })
                .collect(),
            graph: Some(pb::GraphProto {
                node: nodes,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn domains_per_backend() {
        let ok = |op, domain, backend| check_domains(&model(vec![node(op, domain)], &[]), backend);
        assert!(ok("Relu", "", BackendKind::Tract).is_ok());
        assert!(ok("Relu", "ai.onnx", BackendKind::Tract).is_ok());
        assert!(ok("Normalizer", "ai.onnx.ml", BackendKind::Tract).is_ok());
        assert!(ok("Normalizer", "", BackendKind::Tract).is_err());
        assert!(ok("Imputer", "ai.onnx.ml", BackendKind::Tract).is_err());
        assert!(ok("QGemm", "com.microsoft", BackendKind::Tract).is_err());
        assert!(ok("QGemm", "com.microsoft", BackendKind::Ort).is_ok());
        assert!(ok("Imputer", "ai.onnx.ml", BackendKind::Ort).is_ok());
        let err = ok("Relu", "com.evil", BackendKind::Ort).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`com.evil`") && msg.contains("`Relu`") && msg.contains("node `n`"),
            "{msg}"
        );
    }

    #[test]
    fn undeclared_domains_are_named() {
        let m = model(vec![node("Relu", "ai.onnx")], &[""]);
        assert!(check_opset_imports(&m).is_ok());
        let m = model(vec![node("Normalizer", "ai.onnx.ml")], &[""]);
        let msg = check_opset_imports(&m).unwrap_err().to_string();
        assert!(msg.contains("`ai.onnx.ml`"), "{msg}");
    }
}
