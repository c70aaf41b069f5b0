//! Model tools: the library behind the `model-tools` command.
//!
//! - [`Dataset`]: labelled examples from a numpy `.npz` file;
//! - [`evaluate`]: classification accuracy and latency of a model on a dataset, batch by batch,
//!   on any backend of the `inference` crate;
//! - [`calibrate`]: activation ranges for static quantization ([`TensorRanges`]).
//!
//! ```no_run
//! use inference::{LoadOptions, Model};
//! use model_tools::{evaluate, Dataset};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let model = Model::load_file("models/digits_mlp.onnx", &LoadOptions::default())?;
//! let data = Dataset::load("models/digits.npz", "test")?;
//! let report = evaluate(&model, &data, 1, |_| {})?;
//! println!("accuracy {:.2}%", report.accuracy * 100.0);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod calibrate;
mod dataset;
mod evaluation;

pub use calibrate::{CalibrationMethod, TensorRange, TensorRanges};
pub use dataset::{Dataset, DatasetError};
pub use evaluation::{evaluate, EvalError, EvalReport, LatencySummary};
