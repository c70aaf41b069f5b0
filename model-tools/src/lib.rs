//! Model tools: the library behind the `model-tools` command.
//!
//! - [`Dataset`]: labelled examples from a numpy `.npz` file;
//! - [`evaluate`]: classification accuracy and latency of a model on a dataset, batch by batch,
//!   on any backend of the `inference` crate;
//! - [`calibrate`]: activation ranges for static quantization ([`calibrate::TensorRanges`]);
//! - [`quantize`]: dynamic, static (QDQ) and accuracy-driven INT8 quantization;
//! - [`convert_fp16`]: float32 to float16 weights and compute;
//! - [`compare()`]: a candidate model against its reference (errors, SQNR, accuracy, size,
//!   latency), with the report types and CI gates in [`mod@compare`];
//! - [`bench`]: latency and throughput on tract and ONNX Runtime at several batch sizes;
//! - [`push`]: pushing a model to edge agents, with retries and errors that say what to do.
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

pub mod bench;
pub mod calibrate;
pub mod compare;
mod convert;
mod dataset;
mod evaluation;
pub mod push;
pub mod quantize;

pub use calibrate::{CalibrationMethod, TensorRange, TensorRanges};
pub use compare::{compare, CompareError, CompareOptions, CompareReport};
pub use convert::{
    convert_fp16, ConvertError, Fp16Options, Fp16Report, KeepReason, KeptFloatNode,
    DEFAULT_FP16_BLOCK_OPS,
};
pub use dataset::{Dataset, DatasetError};
pub use evaluation::{evaluate, EvalError, EvalReport, LatencySummary};
