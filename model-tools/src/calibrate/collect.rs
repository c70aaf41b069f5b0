//! Running a model on calibration data with its intermediate tensors exposed, and feeding
//! them to a [`Calibrator`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use inference::{BackendKind, Dim, ElementType, LoadOptions, Model, Tensor};
use serde::Serialize;

use super::calibrator::{CalibrationError, Calibrator, CalibratorConfig};
use super::data::CalibrationData;
use super::expose::{expose, SkippedTensor};
use super::range::{CalibrationMethod, TensorRanges};

/// How [`collect_ranges`] and [`calibrate_npz`] run.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// The method and its settings; default min/max.
    pub calibrator: CalibratorConfig,
    /// The tensors to observe; `None` (default): every float tensor a node reads or writes,
    /// and the float graph inputs (onnxruntime's selection).
    pub tensors: Option<Vec<String>>,
    /// For a model of one input, the `.npz` array that feeds it (e.g. `x_train`); by default
    /// each input reads the array of its own name.
    pub input_key: Option<String>,
    /// Calibrate on at most this many samples (the first ones).
    pub max_samples: Option<usize>,
    /// Samples per run; default 32. A model whose inputs fix the batch size runs with that
    /// size, and a last, partial batch is left out.
    pub batch_size: usize,
    /// How the model is loaded; default ONNX Runtime (`LoadOptions::new(BackendKind::Ort)`),
    /// tract with `BackendKind::Tract`.
    pub load: LoadOptions,
    /// Show a progress bar over the batches on stderr (hidden when stderr is not a terminal);
    /// default true.
    pub progress: bool,
}

impl Default for CollectOptions {
    fn default() -> Self {
        Self {
            calibrator: CalibratorConfig::default(),
            tensors: None,
            input_key: None,
            max_samples: None,
            batch_size: 32,
            load: LoadOptions::new(BackendKind::Ort),
            progress: true,
        }
    }
}

/// What a calibration did.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationSummary {
    /// The method.
    pub method: CalibrationMethod,
    /// The method's settings.
    pub calibrator: CalibratorConfig,
    /// The engine that ran the model.
    pub backend: BackendKind,
    /// Samples the model ran on.
    pub samples: usize,
    /// Samples per run.
    pub batch_size: usize,
    /// Runs.
    pub batches: usize,
    /// Tensors that got a range.
    pub observed: usize,
    /// Tensors left out, with the reason.
    pub skipped: Vec<SkippedTensor>,
    /// NaN and infinite values seen (and ignored), by tensor; only tensors that had some.
    pub non_finite: BTreeMap<String, u64>,
    /// Wall time, in seconds.
    pub seconds: f64,
}

/// The outcome of a calibration: a range per tensor, and what was done.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    /// The range of every observed tensor.
    pub ranges: TensorRanges,
    /// What was done.
    pub summary: CalibrationSummary,
}

/// Why calibration failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The model bytes are not an ONNX model.
    #[error("the model is not a valid ONNX model: {0}")]
    InvalidModel(String),
    /// The model (with its tensors exposed) did not load.
    #[error("the model could not be loaded on {backend} with its intermediate tensors as outputs")]
    Load {
        /// The engine.
        backend: BackendKind,
        /// Its error.
        #[source]
        source: inference::Error,
    },
    /// A run failed.
    #[error("running calibration batch {batch} (samples {first}..{end}) failed")]
    Run {
        /// The batch, from 0.
        batch: usize,
        /// Its first sample.
        first: usize,
        /// One past its last sample.
        end: usize,
        /// The engine's error.
        #[source]
        source: inference::Error,
    },
    /// A tensor asked for cannot be observed.
    #[error("cannot observe tensor `{name}`: {why}")]
    UnknownTensor {
        /// The name asked for.
        name: String,
        /// Why.
        why: String,
    },
    /// Nothing to observe.
    #[error("the model has no float tensors to calibrate")]
    NothingToObserve,
    /// The data file could not be opened.
    #[error("failed to open calibration data `{path}`")]
    DataOpen {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The data file is not a readable `.npz`, or an array in it is not.
    #[error("failed to read `{array}` from `{path}` (is it an .npz written by numpy.savez?)")]
    DataRead {
        /// The file.
        path: PathBuf,
        /// The array.
        array: String,
        /// The npz error.
        #[source]
        source: ndarray_npy::ReadNpzError,
    },
    /// A model input has no array.
    #[error("`{path}` has no array `{array}` for model input `{input}` (it has: {}){}", .available.join(", "), if *.single_input { "; name the array that feeds the input with input_key (`--input-key`), e.g. `x_train`" } else { "; save one array per model input, named after it" })]
    MissingArray {
        /// The file.
        path: PathBuf,
        /// The array looked for.
        array: String,
        /// The input it would feed.
        input: String,
        /// The arrays the file has.
        available: Vec<String>,
        /// Whether the model has one input (so `input_key` would help).
        single_input: bool,
    },
    /// `input_key` names one array but the model has several inputs.
    #[error("input_key `{key}` feeds a model of one input, but this one has {}: {}; save one array per input, named after it", .inputs.len(), .inputs.join(", "))]
    InputKeyNeedsOneInput {
        /// The key given.
        key: String,
        /// The model's inputs.
        inputs: Vec<String>,
    },
    /// An array has another element type than its input.
    #[error("array `{array}` in `{path}` is {found}, but model input `{input}` is {expected}; convert it (e.g. `x.astype(numpy.float32)`)")]
    DataType {
        /// The file.
        path: PathBuf,
        /// The array.
        array: String,
        /// The input.
        input: String,
        /// numpy's name for the array's type.
        found: String,
        /// The input's type.
        expected: ElementType,
    },
    /// An array's shape does not fit its input.
    #[error("array `{array}` in `{path}` is shaped {found:?}, but model input `{input}` takes {expected}")]
    DataShape {
        /// The file.
        path: PathBuf,
        /// The array.
        array: String,
        /// The input.
        input: String,
        /// The array's shape.
        found: Vec<usize>,
        /// What the input takes.
        expected: String,
    },
    /// A string input, which `.npz` data cannot feed.
    #[error("model input `{input}` takes strings, which calibration data cannot feed")]
    StringInput {
        /// The input.
        input: String,
    },
    /// The inputs disagree on the number of samples.
    #[error("the calibration inputs hold different numbers of samples: {counts}")]
    SampleCounts {
        /// Each input's count.
        counts: String,
    },
    /// No sample to run.
    #[error("the calibration data holds no sample{0}")]
    NoSamples(String),
    /// The calibrator refused its settings or a tensor's values.
    #[error(transparent)]
    Calibration(#[from] CalibrationError),
}

/// Reads the calibration inputs of `model` from an `.npz` file (see
/// [`CalibrationData::from_npz`]) and calibrates it ([`collect_ranges`]).
pub fn calibrate_npz(
    model: &[u8],
    data: impl AsRef<Path>,
    options: &CollectOptions,
) -> Result<Calibration, CollectError> {
    options.calibrator.validate()?;
    let metadata = Model::inspect(model)
        .map_err(|e| CollectError::InvalidModel(inference::error_chain(&e)))?;
    let data = CalibrationData::from_npz(data, &metadata.inputs, options.input_key.as_deref())?;
    collect_ranges(model, &data, options)
}

/// Runs `model` (ONNX bytes) on `data`, batch by batch, with the observed tensors declared as
/// graph outputs, and feeds every observed tensor to a [`Calibrator`]: only running statistics
/// are kept, never the activations.
pub fn collect_ranges(
    model: &[u8],
    data: &CalibrationData,
    options: &CollectOptions,
) -> Result<Calibration, CollectError> {
    let started = Instant::now();
    let mut calibrator = Calibrator::new(options.calibrator)?;
    let exposed = expose(model, options.tensors.as_deref())?;
    if exposed.inputs.is_empty() && exposed.outputs.is_empty() {
        return Err(CollectError::NothingToObserve);
    }
    let backend = options.load.backend;
    let loaded = Model::load(exposed.bytes, &options.load)
        .map_err(|source| CollectError::Load { backend, source })?;

    let batch_size = fixed_batch(&loaded).unwrap_or(options.batch_size.max(1));
    let available = data
        .samples()
        .min(options.max_samples.unwrap_or(usize::MAX));
    let samples = if fixed_batch(&loaded).is_some() {
        available - available % batch_size
    } else {
        available
    };
    if samples == 0 {
        return Err(CollectError::NoSamples(if available > 0 {
            format!(
                " for a whole batch: the model fixes its batch at {batch_size}, the data has {available}"
            )
        } else {
            String::new()
        }));
    }
    let batches = samples.div_ceil(batch_size);
    let bar = progress_bar(options.progress, batches);
    let fetch: Vec<&str> = exposed.outputs.iter().map(String::as_str).collect();
    for batch in 0..batches {
        let (first, end) = (batch * batch_size, ((batch + 1) * batch_size).min(samples));
        let inputs = data.batch(first, end);
        for name in &exposed.inputs {
            if let Some((_, t)) = inputs.iter().find(|(n, _)| n == name) {
                observe_tensor(&mut calibrator, name, t)?;
            }
        }
        if !fetch.is_empty() {
            let outputs =
                loaded
                    .run_select(inputs, &fetch)
                    .map_err(|source| CollectError::Run {
                        batch,
                        first,
                        end,
                        source,
                    })?;
            for (name, tensor) in outputs.iter() {
                observe_tensor(&mut calibrator, name, tensor)?;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    let ranges = calibrator.ranges();
    let mut skipped = exposed.skipped;
    let mut non_finite = BTreeMap::new();
    for name in calibrator.tensors() {
        let ignored = calibrator.ignored_values(name);
        if ignored > 0 {
            non_finite.insert(name.to_owned(), ignored);
        }
        if !ranges.contains_key(name) {
            skipped.push(SkippedTensor {
                name: name.to_owned(),
                reason: "it took no finite value on the calibration data".to_owned(),
            });
        }
    }
    Ok(Calibration {
        summary: CalibrationSummary {
            method: options.calibrator.method(),
            calibrator: options.calibrator,
            backend: loaded.backend(),
            samples,
            batch_size,
            batches,
            observed: ranges.len(),
            skipped,
            non_finite,
            seconds: started.elapsed().as_secs_f64(),
        },
        ranges,
    })
}

/// The batch size the model's inputs fix, if their first dimension is a number.
fn fixed_batch(model: &Model) -> Option<usize> {
    model
        .metadata()
        .inputs
        .iter()
        .find_map(|i| match i.shape.as_deref() {
            Some([Dim::Fixed(n), ..]) => Some(*n),
            _ => None,
        })
}

/// Feeds a float32 or float16 tensor's values to the calibrator.
fn observe_tensor(
    calibrator: &mut Calibrator,
    name: &str,
    tensor: &Tensor,
) -> Result<(), CollectError> {
    match tensor {
        Tensor::F32(a) => match a.as_slice_memory_order() {
            Some(values) => calibrator.observe(name, values)?,
            None => calibrator.observe(name, &a.iter().copied().collect::<Vec<_>>())?,
        },
        Tensor::F16(a) => {
            let values: Vec<f32> = a.iter().map(|v| v.to_f32()).collect();
            calibrator.observe(name, &values)?;
        }
        _ => {}
    }
    Ok(())
}

fn progress_bar(show: bool, batches: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    ProgressBar::with_draw_target(Some(batches as u64), ProgressDrawTarget::stderr()).with_style(
        ProgressStyle::with_template(
            "{spinner} calibrating [{bar:30}] {pos}/{len} batches {per_sec}",
        )
        .expect("static template")
        .progress_chars("=> "),
    )
}
