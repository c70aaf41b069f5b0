//! Graph edits the float16 conversion makes: renaming a value's definition, declaring new
//! values, inserting nodes in topological order, and finding the names in use.

use std::collections::{HashMap, HashSet};

use inference::onnx::proto::{type_proto, GraphProto, NodeProto, ValueInfoProto};

use super::types::FLOAT;

/// Declares a float32 value as `code` (float16 or float32).
pub(crate) fn set_elem_type(vi: &mut ValueInfoProto, code: i32) {
    if let Some(type_proto::Value::TensorType(t)) =
        vi.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        if t.elem_type == FLOAT {
            t.elem_type = code;
        }
    }
}

/// Declares `to` like `from` (if `from` is declared float32), as `code`.
pub(crate) fn copy_declaration(graph: &mut GraphProto, from: &str, to: &str, code: i32) {
    let declared = graph
        .input
        .iter()
        .chain(&graph.output)
        .chain(&graph.value_info)
        .find(|vi| vi.name == from)
        .cloned();
    if let Some(mut vi) = declared {
        vi.name = to.to_owned();
        set_elem_type(&mut vi, code);
        graph.value_info.push(vi);
    }
}

/// Renames the definition of `old` (a node output or an initializer) and every read of it,
/// in this graph and its subgraphs.
pub(crate) fn rename_definition(graph: &mut GraphProto, old: &str, new: &str) {
    for t in graph.initializer.iter_mut().filter(|t| t.name == old) {
        t.name = new.to_owned();
    }
    for node in &mut graph.node {
        for out in node.output.iter_mut().filter(|o| *o == old) {
            *out = new.to_owned();
        }
    }
    rename_reads(graph, old, new);
}

fn rename_reads(graph: &mut GraphProto, old: &str, new: &str) {
    for node in &mut graph.node {
        for input in node.input.iter_mut().filter(|i| *i == old) {
            *input = new.to_owned();
        }
        for a in &mut node.attribute {
            for g in a.g.iter_mut().chain(a.graphs.iter_mut()) {
                rename_reads(g, old, new);
                for out in g.output.iter_mut().filter(|o| o.name == old) {
                    out.name = new.to_owned();
                }
            }
        }
    }
}

/// Inserts each node after the node of the index given: `None` at the top (for nodes reading
/// graph inputs, initializers and outer values), `usize::MAX` at the end.
pub(crate) fn insert_nodes(graph: &mut GraphProto, casts: Vec<(Option<usize>, NodeProto)>) {
    if casts.is_empty() {
        return;
    }
    let mut after: HashMap<Option<usize>, Vec<NodeProto>> = HashMap::new();
    for (at, node) in casts {
        after.entry(at).or_default().push(node);
    }
    let old = std::mem::take(&mut graph.node);
    let mut nodes = after.remove(&None).unwrap_or_default();
    for (i, node) in old.into_iter().enumerate() {
        nodes.push(node);
        nodes.extend(after.remove(&Some(i)).unwrap_or_default());
    }
    nodes.extend(after.into_values().flatten());
    graph.node = nodes;
}

/// The values a subgraph (or its own subgraphs) reads from enclosing graphs.
pub(crate) fn outer_reads(graph: &GraphProto) -> HashSet<String> {
    let mut defined: HashSet<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
    defined.extend(graph.initializer.iter().map(|t| t.name.as_str()));
    defined.extend(
        graph
            .node
            .iter()
            .flat_map(|n| n.output.iter().map(String::as_str)),
    );
    let mut reads = HashSet::new();
    for node in &graph.node {
        reads.extend(node.input.iter().filter(|i| !i.is_empty()).cloned());
        for a in &node.attribute {
            for g in a.g.iter().chain(&a.graphs) {
                reads.extend(outer_reads(g));
            }
        }
    }
    reads.extend(graph.output.iter().map(|o| o.name.clone()));
    reads.retain(|r| !defined.contains(r.as_str()));
    reads
}

pub(crate) fn collect_names(graph: &GraphProto, names: &mut HashSet<String>) {
    let declared = graph
        .input
        .iter()
        .chain(&graph.output)
        .chain(&graph.value_info);
    names.extend(declared.map(|vi| vi.name.clone()));
    names.extend(graph.initializer.iter().map(|t| t.name.clone()));
    for node in &graph.node {
        names.insert(node.name.clone());
        names.extend(node.input.iter().chain(&node.output).cloned());
        for a in &node.attribute {
            for g in a.g.iter().chain(&a.graphs) {
                collect_names(g, names);
            }
        }
    }
}
