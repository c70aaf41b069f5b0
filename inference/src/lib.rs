//! Backend-neutral ONNX execution: the one door to running a model on the platform.
//!
//! A [`Model`] is loaded from bytes or a file onto one of two backends:
//!
//! - **tract** ([`BackendKind::Tract`], the default): pure Rust, always available;
//! - **ONNX Runtime** ([`BackendKind::Ort`]): loaded at run time from a shared library named
//!   by [`LoadOptions::ort_library`] or the `ORT_DYLIB_PATH` environment variable. When the
//!   library is missing or too old (older than 1.31), loading on `ort` is an
//!   [`Error::OrtUnavailable`] and tract keeps working.
//!
//! [`LoadOptions`] name the engine tried first and, optionally, a fallback tried when the first
//! refuses the model ([`BackendChoice::Auto`]: tract, else ONNX Runtime; `auto-ort` the other
//! way round); [`Model::backend`] says which engine runs it and [`Model::fallback`] why the
//! first one did not.
//!
//! Every model exposes its [`ModelMetadata`] (inputs and outputs with symbolic dimensions,
//! opset, producer, size, sha256). Inputs are checked against it before a backend sees them,
//! so a wrong type or shape names the input, the expected and the given type and shape.
//! One loaded model serves many threads at once; ONNX Runtime sessions are pooled.
//!
//! ```no_run
//! use inference::{LoadOptions, Model, Tensor};
//!
//! # fn main() -> Result<(), inference::Error> {
//! let model = Model::load_file("models/digits_mlp.onnx", &LoadOptions::default())?;
//! let pixels = Tensor::from_shape_vec(&[1, 64], vec![0.0f32; 64])?;
//! let outputs = model.run_select([("input", pixels)], &["logits"])?;
//! let logits = outputs.get("logits").and_then(|t| t.as_array::<f32>()).unwrap();
//! println!("{logits}");
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

#[cfg(not(any(feature = "tract", feature = "ort")))]
compile_error!(
    "the `inference` crate needs at least one engine: enable the `tract` or the `ort` feature"
);

mod backend;
mod error;
mod external_data;
mod graph_checks;
pub mod input_shapes;
mod metadata;
mod model;
mod options;
mod tensor;

pub mod onnx;

#[cfg(feature = "ort")]
pub use backend::ort::{
    harden_ort_environment, LOAD_CONFIG_FROM_MODEL_ENV, ORT_DYLIB_ENV, TELEMETRY_OFF_ENV,
};
#[cfg(feature = "tract")]
pub use backend::TractBackend;
pub use backend::{Backend, BackendChoice, BackendKind, UnknownBackend, UnknownBackendChoice};
#[cfg(feature = "ort")]
pub use backend::{OrtBackend, OrtRuntime};
pub use error::{error_chain, BackendError, Error};
pub use metadata::{Dim, ModelMetadata, Opset, TensorInfo};
pub use model::{describe, Fallback, Model, Outputs};
pub use options::LoadOptions;
pub use tensor::{onnx_type_name, Element, ElementType, Tensor};

#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

/// Re-exported so callers build tensors with the same `half` version.
pub use half;
/// Re-exported so callers build tensors with the same `ndarray` version.
pub use ndarray;
