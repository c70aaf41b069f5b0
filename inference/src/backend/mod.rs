//! The two execution backends behind one trait.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;
use crate::tensor::Tensor;

mod choice;
#[cfg(feature = "ort")]
pub(crate) mod ort;
#[cfg(feature = "tract")]
pub(crate) mod tract;

pub use self::choice::{BackendChoice, UnknownBackendChoice};
#[cfg(feature = "ort")]
pub use self::ort::{OrtBackend, OrtRuntime};
#[cfg(feature = "tract")]
pub use self::tract::TractBackend;

/// Which engine runs a model. (Which engine to *load* a model on, possibly one then the
/// other, is a [`BackendChoice`].)
///
/// Both are always named, so that configs parse the same in every build; a build without an
/// engine's cargo feature refuses to load a model on it ([`Error::NotBuilt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BackendKind {
    /// tract: pure Rust, the default (in a build without it, ONNX Runtime is).
    #[cfg_attr(feature = "tract", default)]
    Tract,
    /// ONNX Runtime, loaded at run time from a shared library.
    #[cfg_attr(not(feature = "tract"), default)]
    Ort,
}

impl BackendKind {
    /// Both backends, tract first.
    pub const ALL: [BackendKind; 2] = [BackendKind::Tract, BackendKind::Ort];

    /// The lowercase name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Tract => "tract",
            BackendKind::Ort => "ort",
        }
    }

    /// Whether this build has the engine: its cargo feature (`tract`, `ort`, named like the
    /// engine) was on.
    pub fn is_built(self) -> bool {
        match self {
            BackendKind::Tract => cfg!(feature = "tract"),
            BackendKind::Ort => cfg!(feature = "ort"),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Serialized as its lowercase name.
impl serde::Serialize for BackendKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// Deserialized from `tract`, `ort` or `onnxruntime`.
impl<'de> serde::Deserialize<'de> for BackendKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The error of parsing a backend name.
#[derive(Debug, thiserror::Error)]
#[error("unknown backend `{0}`; expected `tract` or `ort`")]
pub struct UnknownBackend(pub String);

impl FromStr for BackendKind {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tract" => Ok(BackendKind::Tract),
            "ort" | "onnxruntime" => Ok(BackendKind::Ort),
            _ => Err(UnknownBackend(s.to_owned())),
        }
    }
}

/// An engine with one model loaded, ready for many concurrent calls.
///
/// [`crate::Model`] checks inputs against the metadata before it calls a backend, so a backend
/// receives every input, in the order of [`crate::ModelMetadata::inputs`], with the declared
/// element types and ranks.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Which engine this is.
    fn kind(&self) -> BackendKind;

    /// Runs the model on `inputs` (one per declared input, in order) and returns the outputs
    /// whose indices into [`crate::ModelMetadata::outputs`] are listed in `outputs`, in that order.
    fn run(&self, inputs: Vec<Tensor>, outputs: &[usize]) -> Result<Vec<Tensor>, Error>;
}

/// Runs `f`, turning a panic inside a backend into an error, so that a model that trips a bug in
/// an engine fails one call instead of the process.
pub(crate) fn guard<T>(
    backend: BackendKind,
    what: &str,
    f: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            tracing::error!(%backend, what, panic = %msg, "backend panicked");
            Err(Error::Run {
                backend,
                reason: format!("{what} panicked inside the engine: {msg}"),
            })
        }
    }
}
