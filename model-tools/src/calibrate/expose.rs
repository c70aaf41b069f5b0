//! Choosing the tensors to observe and rewriting the model so that each is a graph output.

use std::collections::{HashMap, HashSet};

use inference::onnx::{self, proto as pb};
use inference::ElementType;
use serde::Serialize;

use super::collect::CollectError;
use super::tensor_types::element_types;

/// A tensor calibration could not observe, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedTensor {
    /// The tensor.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// The model with the observed tensors as outputs.
#[derive(Debug)]
pub(crate) struct Exposed {
    /// The rewritten model.
    pub bytes: Vec<u8>,
    /// Observed graph inputs: read from the data fed, not from the model.
    pub inputs: Vec<String>,
    /// Observed tensors the model computes, all graph outputs of the rewritten model.
    pub outputs: Vec<String>,
    /// Float-looking tensors left out.
    pub skipped: Vec<SkippedTensor>,
}

fn is_float(ty: ElementType) -> bool {
    matches!(ty, ElementType::F32 | ElementType::F16)
}

/// The default selection, as onnxruntime's `select_tensors_to_calibrate` makes it: every
/// float tensor a node reads or writes that is not an initializer, plus the float graph
/// inputs; tensors of unknown type are skipped with the reason.
fn default_selection(
    graph: &pb::GraphProto,
    types: &HashMap<String, ElementType>,
    initializers: &HashSet<&str>,
) -> (Vec<String>, Vec<SkippedTensor>) {
    let producers = onnx::producers(graph);
    let mut seen = HashSet::new();
    let (mut chosen, mut skipped) = (Vec::new(), Vec::new());
    let candidates = graph.input.iter().map(|vi| &vi.name).chain(
        graph
            .node
            .iter()
            .flat_map(|n| n.input.iter().chain(&n.output)),
    );
    for name in candidates {
        if name.is_empty() || initializers.contains(name.as_str()) || !seen.insert(name) {
            continue;
        }
        match types.get(name) {
            Some(&ty) if is_float(ty) => chosen.push(name.clone()),
            Some(_) => {}
            None => skipped.push(SkippedTensor {
                name: name.clone(),
                reason: match producers.get(name.as_str()) {
                    Some(&i) => format!(
                        "its element type is unknown: {} has no typing rule here; declare it in the graph's value_info",
                        onnx::node_label(&graph.node[i])
                    ),
                    None => "its element type is unknown and no node writes it".to_owned(),
                },
            }),
        }
    }
    (chosen, skipped)
}

/// Checks names the caller asked for: each a float graph input or a float tensor a node
/// writes.
fn check_requested(
    graph: &pb::GraphProto,
    types: &HashMap<String, ElementType>,
    initializers: &HashSet<&str>,
    requested: &[String],
) -> Result<Vec<String>, CollectError> {
    let producers = onnx::producers(graph);
    let inputs: HashSet<&str> = graph.input.iter().map(|vi| vi.name.as_str()).collect();
    let mut chosen: Vec<String> = Vec::new();
    for name in requested {
        if chosen.contains(name) {
            continue;
        }
        if initializers.contains(name.as_str()) {
            return Err(CollectError::UnknownTensor {
                name: name.clone(),
                why: "it is an initializer (a weight); calibration observes activations".to_owned(),
            });
        }
        if !inputs.contains(name.as_str()) && !producers.contains_key(name.as_str()) {
            return Err(CollectError::UnknownTensor {
                name: name.clone(),
                why: "no node writes it and it is not a graph input (names are case-sensitive; `model-tools inspect` lists them)".to_owned(),
            });
        }
        match types.get(name) {
            Some(&ty) if is_float(ty) => chosen.push(name.clone()),
            Some(&ty) => {
                return Err(CollectError::UnknownTensor {
                    name: name.clone(),
                    why: format!("it is {ty}; only float32 and float16 tensors are calibrated"),
                })
            }
            None => {
                return Err(CollectError::UnknownTensor {
                    name: name.clone(),
                    why: "its element type is unknown; declare it in the graph's value_info"
                        .to_owned(),
                })
            }
        }
    }
    Ok(chosen)
}

/// Decodes `model`, selects the tensors (`requested`, or the default selection) and declares
/// each one the model computes as a graph output.
pub(crate) fn expose(model: &[u8], requested: Option<&[String]>) -> Result<Exposed, CollectError> {
    let invalid = |e: onnx::FormatError| CollectError::InvalidModel(e.to_string());
    let mut proto = onnx::decode_model(model).map_err(invalid)?;
    let graph = onnx::graph(&proto).map_err(invalid)?;
    let types = element_types(graph);
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let (chosen, skipped) = match requested {
        Some(names) => (
            check_requested(graph, &types, &initializers, names)?,
            Vec::new(),
        ),
        None => default_selection(graph, &types, &initializers),
    };
    let graph_inputs: HashSet<&str> = graph
        .input
        .iter()
        .map(|vi| vi.name.as_str())
        .filter(|n| !initializers.contains(n))
        .collect();
    let declared: HashMap<&str, &pb::ValueInfoProto> = graph
        .value_info
        .iter()
        .map(|vi| (vi.name.as_str(), vi))
        .collect();
    let existing: HashSet<&str> = graph.output.iter().map(|vi| vi.name.as_str()).collect();
    let (inputs, outputs): (Vec<String>, Vec<String>) = chosen
        .into_iter()
        .partition(|n| graph_inputs.contains(n.as_str()));
    let added: Vec<pb::ValueInfoProto> = outputs
        .iter()
        .filter(|n| !existing.contains(n.as_str()))
        .map(|n| {
            let ty = types[n.as_str()];
            // The declared shape when there is one; none otherwise (both engines infer it).
            let shape = declared
                .get(n.as_str())
                .and_then(|vi| onnx::declared_tensor(vi))
                .and_then(|d| d.shape);
            onnx::make_value_info(n, ty, shape.as_deref())
        })
        .collect();
    onnx::graph_mut(&mut proto)
        .map_err(invalid)?
        .output
        .extend(added);
    Ok(Exposed {
        bytes: onnx::encode_model(&proto),
        inputs,
        outputs,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use inference::test_support::model_bytes;

    #[test]
    fn the_mlp_exposes_its_hidden_layers_and_keeps_its_outputs() {
        let exposed = expose(&model_bytes("digits_mlp.onnx"), None).unwrap();
        assert_eq!(exposed.inputs, ["input"]);
        assert_eq!(exposed.outputs, ["fc1", "relu1", "logits", "probabilities"]);
        assert!(exposed.skipped.is_empty());
        let proto = onnx::decode_model(&exposed.bytes).unwrap();
        let outs: Vec<&str> = onnx::graph(&proto)
            .unwrap()
            .output
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        assert_eq!(outs, ["logits", "probabilities", "fc1", "relu1"]);
    }

    #[test]
    fn requested_names_are_checked() {
        let bytes = model_bytes("digits_cnn.onnx");
        let exposed = expose(&bytes, Some(&["relu1".to_owned(), "input".to_owned()])).unwrap();
        assert_eq!(
            (exposed.inputs, exposed.outputs),
            (vec!["input".to_owned()], vec!["relu1".to_owned()])
        );
        for (name, words) in [
            ("relu", "no node writes it"),
            ("conv1.weight", "initializer"),
        ] {
            let err = expose(&bytes, Some(&[name.to_owned()]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("`{name}`")) && err.contains(words),
                "{err}"
            );
        }
    }
}
