//! Names in a graph: fresh ones for the nodes and values a rewrite adds, and the values still
//! read after it.

use std::collections::HashSet;

use inference::onnx::proto::{GraphProto, NodeProto};

/// Every name a graph uses (nodes, values, initializers, in subgraphs too), so that new ones
/// never collide: ONNX values are single-assignment across nested graphs.
#[derive(Debug, Default)]
pub(crate) struct Names {
    used: HashSet<String>,
}

impl Names {
    /// The names `graph` and its subgraphs use.
    pub(crate) fn of_graph(graph: &GraphProto) -> Self {
        let mut names = Self::default();
        names.add_graph(graph);
        names
    }

    fn add_graph(&mut self, graph: &GraphProto) {
        let declared = graph
            .input
            .iter()
            .chain(&graph.output)
            .chain(&graph.value_info);
        self.used.extend(declared.map(|v| v.name.clone()));
        self.used
            .extend(graph.initializer.iter().map(|t| t.name.clone()));
        for node in &graph.node {
            self.add_node(node);
        }
    }

    fn add_node(&mut self, node: &NodeProto) {
        self.used.insert(node.name.clone());
        self.used.extend(node.input.iter().cloned());
        self.used.extend(node.output.iter().cloned());
        for graph in subgraphs(node) {
            self.add_graph(graph);
        }
    }

    /// `base` if no name uses it yet, else `base_1`, `base_2`, ...; reserved from then on.
    pub(crate) fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_owned();
        let mut n = 0;
        while self.used.contains(&name) {
            n += 1;
            name = format!("{base}_{n}");
        }
        self.used.insert(name.clone());
        name
    }
}

/// The subgraphs a node holds (branches of `If`, bodies of `Loop` and `Scan`).
pub(crate) fn subgraphs(node: &NodeProto) -> impl Iterator<Item = &GraphProto> {
    node.attribute
        .iter()
        .flat_map(|a| a.g.iter().chain(&a.graphs))
}

/// The values read by the nodes of `graph` and its subgraphs, and its outputs.
pub(crate) fn values_read(graph: &GraphProto) -> HashSet<String> {
    let mut read = HashSet::new();
    collect_read(graph, &mut read);
    read
}

fn collect_read(graph: &GraphProto, read: &mut HashSet<String>) {
    read.extend(graph.output.iter().map(|o| o.name.clone()));
    for node in &graph.node {
        read.extend(node.input.iter().filter(|i| !i.is_empty()).cloned());
        for sub in subgraphs(node) {
            collect_read(sub, read);
        }
    }
}

#[cfg(test)]
mod tests {
    use inference::onnx;

    use super::*;

    #[test]
    fn fresh_names_skip_every_name_in_use_including_subgraphs() {
        let inner = GraphProto {
            node: vec![onnx::make_node("Relu", "r", &["x"], &["w_scale"])],
            ..Default::default()
        };
        let mut node = onnx::make_node("If", "if", &["c"], &["y"]);
        onnx::set_attribute(&mut node, "then_branch", onnx::AttributeValue::Graph(inner));
        let graph = GraphProto {
            node: vec![node],
            ..Default::default()
        };
        let mut names = Names::of_graph(&graph);
        assert_eq!(names.fresh("w_scale"), "w_scale_1");
        assert_eq!(names.fresh("w_scale"), "w_scale_2");
        assert_eq!(names.fresh("y_int32"), "y_int32");
        assert!(values_read(&graph).contains("x"));
    }
}
