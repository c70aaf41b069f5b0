//! Whole models: decoding, encoding, the graph, and operator set imports.

use prost::Message;

use super::error::FormatError;
use super::proto::{GraphProto, ModelProto, OperatorSetIdProto};

/// The IR version [`new_model`] writes (ONNX 1.13's, which ONNX Runtime ≥ 1.14 and tract read).
pub const DEFAULT_IR_VERSION: i64 = 8;

/// Decodes serialized `ModelProto` bytes. Only the protobuf is checked; the model loader
/// checks the graph itself.
pub fn decode_model(bytes: &[u8]) -> Result<ModelProto, FormatError> {
    ModelProto::decode(bytes).map_err(|source| FormatError::Decode {
        message: "ModelProto",
        source,
    })
}

/// Serializes a model.
pub fn encode_model(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// The model's graph.
pub fn graph(model: &ModelProto) -> Result<&GraphProto, FormatError> {
    model.graph.as_ref().ok_or(FormatError::NoGraph)
}

/// The model's graph, to edit.
pub fn graph_mut(model: &mut ModelProto) -> Result<&mut GraphProto, FormatError> {
    model.graph.as_mut().ok_or(FormatError::NoGraph)
}

/// Whether `domain` is the default operator domain, which ONNX spells both `` and `ai.onnx`.
pub fn is_default_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

fn same_domain(a: &str, b: &str) -> bool {
    a == b || (is_default_domain(a) && is_default_domain(b))
}

/// The version of `domain` the model imports (`""` or `ai.onnx` for the default domain).
pub fn opset_version(model: &ModelProto, domain: &str) -> Option<i64> {
    model
        .opset_import
        .iter()
        .find(|o| same_domain(&o.domain, domain))
        .map(|o| o.version)
}

/// Imports `domain` at `version`, replacing an import of the same domain.
pub fn set_opset_version(model: &mut ModelProto, domain: &str, version: i64) {
    match model
        .opset_import
        .iter_mut()
        .find(|o| same_domain(&o.domain, domain))
    {
        Some(o) => o.version = version,
        None => model.opset_import.push(OperatorSetIdProto {
            domain: domain.to_owned(),
            version,
        }),
    }
}

/// A model of `graph` importing the default domain at `opset`, at [`DEFAULT_IR_VERSION`],
/// naming `producer` as its producer.
pub fn new_model(graph: GraphProto, opset: i64, producer: &str) -> ModelProto {
    ModelProto {
        ir_version: DEFAULT_IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        producer_name: producer.to_owned(),
        graph: Some(graph),
        ..Default::default()
    }
}
