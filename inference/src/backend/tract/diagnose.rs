//! Why tract could not load a model, in words a user can act on: the node where it failed
//! (name and operator) and what to do instead (give input shapes, or serve it on ONNX Runtime).

use tract_onnx::prelude::TractError;

use crate::metadata::{Dim, ModelMetadata};
use crate::onnx::proto as pb;

/// What to do when tract cannot load a model.
pub(crate) const REMEDY: &str = "serve it on ONNX Runtime (`backend = \"ort\"`, or `backend = \"auto\"` to try tract first and fall back to ONNX Runtime)";

/// The reason text of a load failure at `stage`: tract's own error chain, then the failing
/// node and the remedies.
pub(super) fn explain(
    stage: &str,
    err: &TractError,
    graph: &pb::GraphProto,
    original_names: &[String],
    metadata: &ModelMetadata,
) -> String {
    let chain = err
        .chain()
        .map(|e| e.to_string())
        .fold(String::new(), |mut out, s| {
            if !out.contains(&s) {
                if !out.is_empty() {
                    out.push_str(": ");
                }
                out.push_str(&s);
            }
            out
        });
    let mut reason = format!("{stage}: {chain}");
    if let Some(place) = failing_place(&chain, graph, original_names) {
        reason.push_str(&format!(" (fails at {place})"));
    }
    reason.push_str(". ");
    reason.push_str(&remedies(metadata));
    reason
}

/// The same for errors that carry no tract error (kept for symmetric messages).
pub(super) fn remedies(metadata: &ModelMetadata) -> String {
    let shapes = match metadata.inputs.iter().find(|i| {
        i.shape
            .as_ref()
            .is_none_or(|d| d.iter().any(|d| !matches!(d, Dim::Fixed(_))))
    }) {
        Some(input) => {
            let dims = match &input.shape {
                Some(dims) => dims
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(n) => n.to_string(),
                        _ => "?".to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                None => "?, ...".to_owned(),
            };
            format!(
                "give concrete input shapes in the model config (`[input_shapes]`, e.g. `{} = [{dims}]` with a number for each `?`), or ",
                toml_key(&input.name)
            )
        }
        None => String::new(),
    };
    format!("To serve this model, {shapes}{REMEDY}")
}

/// `name` as a TOML key: bare when it can be, quoted otherwise.
fn toml_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

/// The node (or input) tract's messages name, resolved against the main graph: the outermost
/// `#<id> "<name>"` that is a node of the graph (nodes inside subgraphs are not), with its
/// operator type. tract names a node after the ONNX node, or its first output when unnamed,
/// and suffixes the nodes it derives from it with `.something`.
fn failing_place(chain: &str, graph: &pb::GraphProto, original_names: &[String]) -> Option<String> {
    for name in quoted_node_names(chain) {
        let mut candidate = name;
        loop {
            if let Some(ix) = graph.node.iter().position(|n| tract_name(n) == candidate) {
                let node = &graph.node[ix];
                let shown = original_names
                    .get(ix)
                    .filter(|n| !n.is_empty())
                    .map_or_else(
                        || format!("the node writing `{candidate}`"),
                        |n| format!("node `{n}`"),
                    );
                return Some(format!("{shown} ({})", crate::onnx::qualified_op(node)));
            }
            if graph.input.iter().any(|i| i.name == candidate) {
                return Some(format!("input `{candidate}`"));
            }
            match candidate.rfind('.') {
                Some(dot) if dot > 0 => candidate = &candidate[..dot],
                _ => break,
            }
        }
    }
    None
}

/// The name tract gives the node built from `node`.
fn tract_name(node: &pb::NodeProto) -> &str {
    if !node.name.is_empty() {
        &node.name
    } else {
        node.output.first().map_or("", String::as_str)
    }
}

/// Every `#<digits> "<name>"` in tract's messages, in order.
fn quoted_node_names(chain: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = chain;
    while let Some(hash) = rest.find('#') {
        let after = &rest[hash + 1..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        let after_digits = &after[digits..];
        if digits > 0 {
            if let Some(quoted) = after_digits.strip_prefix(" \"") {
                if let Some(end) = quoted.find('"') {
                    names.push(&quoted[..end]);
                    rest = &quoted[end + 1..];
                    continue;
                }
            }
        }
        rest = after;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_read_from_tract_messages() {
        let msg = "Failed analyse for node #107 \"/model/decoder/If\" If: Infering facts: Failed analyse for node #1 \"/model/decoder/Squeeze\" Squeeze13";
        assert_eq!(
            quoted_node_names(msg),
            ["/model/decoder/If", "/model/decoder/Squeeze"]
        );
        assert!(quoted_node_names("#x \"no\" and # \"no\" and #3 no").is_empty());
    }

    #[test]
    fn derived_node_names_resolve_to_the_onnx_node() {
        let mut named = crate::onnx::make_node("Conv", "conv1", &["x", "w"], &["c"]);
        named.name = "conv1".into();
        let unnamed = crate::onnx::make_node("Relu", "", &["c"], &["r.out"]);
        let graph = pb::GraphProto {
            node: vec![named, unnamed],
            ..Default::default()
        };
        let names = vec!["conv1".to_owned(), String::new()];
        assert_eq!(
            failing_place("node #4 \"conv1.pad\" Pad", &graph, &names).as_deref(),
            Some("node `conv1` (Conv)")
        );
        assert_eq!(
            failing_place("node #5 \"r.out\" Relu", &graph, &names).as_deref(),
            Some("the node writing `r.out` (Relu)")
        );
        assert_eq!(failing_place("node #5 \"zzz\" Relu", &graph, &names), None);
    }
}
