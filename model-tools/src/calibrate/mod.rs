//! Calibration for static quantization: the range of values each activation takes on
//! representative inputs, from which the quantizer derives scales and zero points.
//!
//! - [`collect_ranges`] / [`calibrate_npz`]: runs a model on calibration inputs (an `.npz` with
//!   one array per model input, or one `input_key` array for a one-input model) batch by batch,
//!   on ONNX Runtime or tract, with its intermediate tensors declared as graph outputs, and
//!   returns a [`TensorRange`] per tensor ([`TensorRanges`]) with a [`CalibrationSummary`].
//! - [`Calibrator`]: the same on arrays you feed it, tensor by tensor and batch by batch;
//!   only running statistics are kept, never the activations.
//! - The methods ([`CalibrationMethod`], set up by a [`CalibratorConfig`]) follow onnxruntime
//!   1.32's calibrators (`onnxruntime/quantization/calibrate.py`) to the bit where they can:
//!   - `minmax`: lowest and highest value ([`MinMax`]), optionally symmetric;
//!   - `percentile` (default 99.999, symmetric, 2048 bins): on a histogram of absolute values
//!     ([`AbsHistogram`]), or of values when not symmetric ([`SignedHistogram`]);
//!   - `entropy` (128 bins, 128 quantized bins, onnxruntime's defaults): the threshold of least
//!     KL divergence, after TensorRT ([`SignedHistogram::entropy_range`]). With these defaults
//!     and a histogram that never widens, there is one candidate, the whole range; TensorRT's
//!     2048 bins give a real search;
//!   - `mse` (ours): the threshold of least mean squared quantization error
//!     ([`SignedHistogram::mse_range`]).
//!
//!   Histograms grow across batches exactly as onnxruntime's `HistogramCollector` merges them
//!   when fed one batch per `collect` call (its `quantize_static` feeds all batches at once,
//!   which a single [`Calibrator::observe`] call reproduces). NaN and infinite values are
//!   ignored and counted. `tests/calibration/` holds onnxruntime's ranges on committed arrays,
//!   which the tests compare against.
//!
//! ```no_run
//! use inference::{BackendKind, LoadOptions};
//! use model_tools::calibrate::{calibrate_npz, CalibrationMethod, CalibratorConfig, CollectOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let model = std::fs::read("models/digits_cnn.onnx")?;
//! let options = CollectOptions {
//!     calibrator: CalibratorConfig::from(CalibrationMethod::Entropy),
//!     input_key: Some("x_train".into()), // rows of 64 pixels, reshaped to [N, 1, 8, 8]
//!     max_samples: Some(256),
//!     batch_size: 32,
//!     load: LoadOptions::new(BackendKind::Tract), // ONNX Runtime by default
//!     ..CollectOptions::default()
//! };
//! let calibration = calibrate_npz(&model, "models/digits.npz", &options)?;
//! for (tensor, range) in &calibration.ranges {
//!     println!("{tensor}: {range}");
//! }
//! assert!(calibration.ranges["relu1"].min >= 0.0);
//! # Ok(())
//! # }
//! ```

mod calibrator;
mod collect;
mod data;
mod entropy;
mod expose;
mod histogram;
mod mse;
mod numpy;
mod percentile;
mod range;
mod tensor_types;

pub use calibrator::{
    CalibrationError, Calibrator, CalibratorConfig, MinMax, TensorStats, DEFAULT_ENTROPY_BINS,
    DEFAULT_ENTROPY_QUANTIZED_BINS, DEFAULT_MSE_BINS, DEFAULT_PERCENTILE, DEFAULT_PERCENTILE_BINS,
};
pub use collect::{
    calibrate_npz, collect_ranges, Calibration, CalibrationSummary, CollectError, CollectOptions,
};
pub use data::CalibrationData;
pub use expose::SkippedTensor;
pub use histogram::{AbsHistogram, HistogramTooWide, SignedHistogram, MAX_HISTOGRAM_BINS};
pub use range::{CalibrationMethod, TensorRange, TensorRanges, UnknownCalibrationMethod};
