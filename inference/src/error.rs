//! The error type of the `inference` crate.

use std::path::PathBuf;

use crate::BackendKind;

/// Boxed error from a backend, kept as the source of our own variants.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file could not be read.
    #[error("failed to read model file `{path}`")]
    Io {
        /// The file that was read.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not an ONNX model (truncated, not protobuf, or no graph).
    #[error("not a valid ONNX model: {reason}")]
    InvalidModel {
        /// What is wrong, in words.
        reason: String,
    },
    /// The model is well formed but uses something a backend cannot run.
    #[error("the {backend} backend cannot load this model: {reason}")]
    Unsupported {
        /// The backend that refused.
        backend: BackendKind,
        /// What it refused, in the backend's words.
        reason: String,
        /// The backend's error.
        #[source]
        source: Option<BackendError>,
    },
    /// A tensor of the model keeps its data in an external file: refused unless the caller
    /// named a directory for it ([`crate::LoadOptions::external_data_dir`]) and the file lies
    /// safely inside it.
    #[error("{tensor} keeps its data in an external file (`{location}`): {reason}")]
    ExternalData {
        /// Which tensor, and where in the model, e.g. ``initializer `w` ``.
        tensor: String,
        /// The `location` the model gives.
        location: String,
        /// Why it is refused, and what to do.
        reason: String,
    },
    /// A load option does not fit the model, e.g. an `input_shapes` entry for an input the
    /// model lacks or contradicting a dim it fixes.
    #[error("{key}: {reason}")]
    InvalidOption {
        /// The option's key as configs spell it, e.g. `input_shapes.x`.
        key: String,
        /// What is wrong, in words.
        reason: String,
    },
    /// A serialized tensor (an ONNX `TensorProto`) is malformed or of an unserved type.
    #[error("invalid tensor: {0}")]
    InvalidTensor(String),
    /// A graph input or output has an element type the platform does not serve.
    #[error("{direction} `{name}` has element type {type_name}, which is not supported")]
    UnsupportedElementType {
        /// `input` or `output`.
        direction: &'static str,
        /// The tensor name.
        name: String,
        /// The ONNX type name.
        type_name: String,
    },
    /// ONNX Runtime could not be found or loaded.
    #[error("ONNX Runtime is not available: {reason}")]
    OrtUnavailable {
        /// What went wrong and what to do.
        reason: String,
    },
    /// This build has no such engine: the cargo feature named like it (`tract`, `ort`) was off.
    #[error(
        "this build has no {backend} backend: it was compiled without the `{backend}` feature \
         (of the `inference` crate, and of `edge-agent`); load the model on another backend or \
         use a build with it"
    )]
    NotBuilt {
        /// The engine asked for.
        backend: BackendKind,
    },
    /// Neither the engine tried first nor the fallback ([`crate::LoadOptions::fallback`])
    /// could load the model.
    #[error("{first}; {}", fallback_note(fallback))]
    NoBackend {
        /// Why the engine tried first failed.
        first: Box<Error>,
        /// Why the fallback failed, or why it could not be tried.
        fallback: Box<Error>,
    },
    /// An input was given that the model does not have.
    #[error("model has no input named `{name}`; its inputs are {known}")]
    UnknownInput {
        /// The name given.
        name: String,
        /// The model's inputs, listed.
        known: String,
    },
    /// An output was asked for that the model does not have.
    #[error("model has no output named `{name}`; its outputs are {known}")]
    UnknownOutput {
        /// The name given.
        name: String,
        /// The model's outputs, listed.
        known: String,
    },
    /// A required input was not given.
    #[error("missing input `{name}` ({expected})")]
    MissingInput {
        /// The input's name.
        name: String,
        /// Its expected type and shape.
        expected: String,
    },
    /// An input was given twice.
    #[error("input `{name}` was given more than once")]
    DuplicateInput {
        /// The input's name.
        name: String,
    },
    /// An input's element type or shape does not match the model.
    #[error("input `{input}`: expected {expected}, got {got}")]
    InputMismatch {
        /// The input's name.
        input: String,
        /// What the model declares, e.g. `float32[N, 64]`.
        expected: String,
        /// What was given, e.g. `int64[1, 64]`.
        got: String,
    },
    /// Data length does not match a shape.
    #[error("shape {shape:?} holds {expected} elements, but {given} were given")]
    DataLength {
        /// The shape.
        shape: Vec<usize>,
        /// Elements the shape holds.
        expected: usize,
        /// Elements given.
        given: usize,
    },
    /// Raw bytes do not fill a shape.
    #[error("shape {shape:?} of {element_type} needs {} bytes, but {given} were given", expected_bytes(shape, *element_type))]
    ByteLength {
        /// The shape.
        shape: Vec<usize>,
        /// The element type.
        element_type: crate::ElementType,
        /// Bytes given.
        given: usize,
    },
    /// Tensors could not be merged into, or split from, a batch.
    #[error("batching failed: {0}")]
    Batch(String),
    /// The backend failed while running the model.
    #[error("the {backend} backend failed to run the model: {reason}")]
    Run {
        /// The backend.
        backend: BackendKind,
        /// The backend's message.
        reason: String,
    },
    /// The backend returned something other than a supported dense tensor.
    #[error("output `{name}` could not be read: {reason}")]
    Output {
        /// The output's name.
        name: String,
        /// Why.
        reason: String,
    },
}

fn expected_bytes(shape: &[usize], ty: crate::ElementType) -> String {
    shape
        .iter()
        .try_fold(ty.byte_size().unwrap_or(0), |a, &d| a.checked_mul(d))
        .map_or_else(|| "more than usize::MAX".to_owned(), |n| n.to_string())
}

/// How a failed fallback reads after the first engine's error.
fn fallback_note(fallback: &Error) -> String {
    match fallback {
        Error::OrtUnavailable { reason } => {
            format!("ONNX Runtime was not tried: it is not available ({reason})")
        }
        Error::NotBuilt { backend } => {
            format!("{backend} was not tried: this build has no {backend} backend (cargo feature `{backend}`)")
        }
        other => format!("and the fallback failed: {other}"),
    }
}

impl Error {
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidModel {
            reason: reason.into(),
        }
    }

    /// Whether the caller can fix this by sending something else: the model bytes it gave
    /// (malformed, unsupported, external data, an unserved element type) or the inputs of a
    /// call (names, types, shapes, lengths, a batch that does not merge). `false` for failures
    /// of the environment or the backend: reading a file, loading ONNX Runtime, running the
    /// model, reading its outputs. A server answers the first kind 4xx and the second 5xx.
    ///
    /// When no engine could load a model ([`Error::NoBackend`]), it is the caller's error when
    /// every engine that was tried refused the model; an engine that is not available does
    /// not count.
    pub fn is_caller_error(&self) -> bool {
        match self {
            Self::NoBackend { first, fallback } => {
                let tried: Vec<&Error> = [first, fallback]
                    .into_iter()
                    .map(Box::as_ref)
                    .filter(|e| !matches!(e, Self::OrtUnavailable { .. } | Self::NotBuilt { .. }))
                    .collect();
                !tried.is_empty() && tried.iter().all(|e| e.is_caller_error())
            }
            Self::InvalidModel { .. }
            | Self::Unsupported { .. }
            | Self::ExternalData { .. }
            | Self::InvalidOption { .. }
            | Self::InvalidTensor(_)
            | Self::UnsupportedElementType { .. }
            | Self::UnknownInput { .. }
            | Self::UnknownOutput { .. }
            | Self::MissingInput { .. }
            | Self::DuplicateInput { .. }
            | Self::InputMismatch { .. }
            | Self::DataLength { .. }
            | Self::ByteLength { .. }
            | Self::Batch(_) => true,
            Self::Io { .. }
            | Self::OrtUnavailable { .. }
            | Self::NotBuilt { .. }
            | Self::Run { .. }
            | Self::Output { .. } => false,
        }
    }
}

/// Renders an error and its sources on one line, the way `{:#}` does for `anyhow`, skipping a
/// source whose text the line already holds.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_caller_sent_is_a_caller_error_and_what_failed_underneath_is_not() {
        let caller = [
            Error::invalid("truncated"),
            Error::UnknownInput {
                name: "x".into(),
                known: "`input`".into(),
            },
            Error::MissingInput {
                name: "input".into(),
                expected: "float32[1, 64]".into(),
            },
            Error::InputMismatch {
                input: "input".into(),
                expected: "float32[N, 64]".into(),
                got: "int8[1, 64]".into(),
            },
            Error::DataLength {
                shape: vec![2],
                expected: 2,
                given: 3,
            },
            Error::Batch("input `x` missing from a call".into()),
        ];
        for e in caller {
            assert!(e.is_caller_error(), "{e}");
        }
        let ours = [
            Error::Io {
                path: "/nowhere".into(),
                source: std::io::Error::other("disk gone"),
            },
            Error::OrtUnavailable {
                reason: "no library".into(),
            },
            Error::Run {
                backend: BackendKind::Tract,
                reason: "kernel failed".into(),
            },
            Error::Output {
                name: "y".into(),
                reason: "sparse".into(),
            },
        ];
        for e in ours {
            assert!(!e.is_caller_error(), "{e}");
        }
    }
}
