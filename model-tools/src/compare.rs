//! A candidate model (quantized, float16, ...) against its reference, on the same inputs:
//! how far each output moved, what it costs in top-1 accuracy, and what it saves in size and
//! latency.

mod data;
mod metrics;
mod report;

pub use report::{
    format_db, AccuracyComparison, BackendLatency, CompareReport, Gates, Latency, ModelSide,
    OutputComparison, Progress,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use inference::{BackendKind, Dim, LoadOptions, Model, TensorInfo};

use data::{Array, Npz};
use metrics::ErrorStats;

/// Options of [`compare()`].
#[derive(Debug, Clone, PartialEq)]
pub struct CompareOptions {
    /// The `.npz` array to feed a single-input model when the archive has no array named
    /// after the input, e.g. `x_test` in `models/digits.npz`. Models with several inputs read
    /// one array per input, named after it.
    pub input_key: Option<String>,
    /// The `.npz` array of integer class labels (e.g. `y_test`), one per example: top-1
    /// accuracy of both models is then measured.
    pub labels_key: Option<String>,
    /// The backends to measure latency on, in order; outputs are computed on the first one
    /// that loads each model. Default: tract, then ONNX Runtime.
    pub backends: Vec<BackendKind>,
    /// The ONNX Runtime library; `None` reads `ORT_DYLIB_PATH`.
    pub ort_library: Option<PathBuf>,
    /// Examples per call when computing outputs (a model with a fixed batch size gets that).
    pub batch_size: usize,
    /// Compare only the first N examples.
    pub limit: Option<usize>,
    /// Timed calls of one example per model and backend, after 3 untimed ones.
    pub latency_runs: usize,
}

impl Default for CompareOptions {
    fn default() -> Self {
        Self {
            input_key: None,
            labels_key: None,
            backends: BackendKind::ALL.to_vec(),
            ort_library: None,
            batch_size: 32,
            limit: None,
            latency_runs: 50,
        }
    }
}

/// Why a comparison could not run.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A model file could not be read.
    #[error("failed to read `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not a valid ONNX model.
    #[error("`{path}` is not a usable model: {source}")]
    Model {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: inference::Error,
    },
    /// None of the backends could load a model.
    #[error("no backend could load `{path}`: {reasons}")]
    NoBackend {
        /// The file.
        path: PathBuf,
        /// Each backend's reason.
        reasons: String,
    },
    /// The data file is unreadable or lacks what the models need.
    #[error("`{path}`: {message}")]
    Data {
        /// The `.npz` file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The two models do not have comparable inputs or outputs.
    #[error("the models cannot be compared: {0}")]
    Mismatch(String),
    /// A run failed.
    #[error("running `{path}` on {backend} failed")]
    Run {
        /// The model.
        path: PathBuf,
        /// The backend.
        backend: BackendKind,
        /// The error.
        #[source]
        source: inference::Error,
    },
}

/// Runs `reference` and `candidate` on the examples of the `data` archive and compares them:
/// per output the max and mean absolute error, cosine similarity and SQNR; top-1 accuracy of
/// both with [`CompareOptions::labels_key`]; file sizes; the median latency of one-example
/// calls on each backend of [`CompareOptions::backends`] (a backend that cannot load a model
/// is reported, not fatal).
pub fn compare(
    reference: &Path,
    candidate: &Path,
    data: &Path,
    options: &CompareOptions,
) -> Result<CompareReport, CompareError> {
    compare_with_progress(reference, candidate, data, options, |_| {})
}

/// [`compare()`], calling `progress` as it goes.
pub fn compare_with_progress(
    reference: &Path,
    candidate: &Path,
    data: &Path,
    options: &CompareOptions,
    mut progress: impl FnMut(Progress),
) -> Result<CompareReport, CompareError> {
    let reference = Side::open(reference, options)?;
    let candidate = Side::open(candidate, options)?;
    let data_err = |message: String| CompareError::Data {
        path: data.to_path_buf(),
        message,
    };
    let mut npz = Npz::open(data).map_err(data_err)?;
    let feeds = feeds(&mut npz, &reference, &candidate, options).map_err(|e| match e {
        FeedError::Data(m) => data_err(m),
        FeedError::Mismatch(m) => CompareError::Mismatch(m),
    })?;
    let mut examples = feeds.iter().map(|f| f.array.rows()).min().unwrap_or(0);
    if let Some(limit) = options.limit {
        examples = examples.min(limit);
    }
    let labels = match &options.labels_key {
        None => None,
        Some(key) => {
            if !npz.has(key) {
                return Err(data_err(format!(
                    "there is no labels array `{key}`; {}",
                    npz.listing()
                )));
            }
            let labels = npz.read(key).map_err(data_err)?;
            if labels.values.len() < examples {
                return Err(data_err(format!(
                    "labels `{key}` has {} entries for {examples} examples",
                    labels.values.len()
                )));
            }
            Some((key.clone(), labels))
        }
    };

    let ref_outputs: Vec<&TensorInfo> = reference.model.metadata().outputs.iter().collect();
    let cand_meta = candidate.model.metadata();
    let common: Vec<String> = ref_outputs
        .iter()
        .filter(|o| cand_meta.output(&o.name).is_some())
        .map(|o| o.name.clone())
        .collect();
    if common.is_empty() {
        return Err(CompareError::Mismatch(format!(
            "no output name is shared (reference: {}; candidate: {})",
            names(&reference.model.metadata().outputs),
            names(&cand_meta.outputs)
        )));
    }
    let unmatched_outputs: Vec<String> = ref_outputs
        .iter()
        .copied()
        .chain(&cand_meta.outputs)
        .filter(|o| !common.contains(&o.name))
        .map(|o| o.name.clone())
        .collect();
    let class_output = labels.as_ref().map(|_| {
        ["logits", "probabilities"]
            .iter()
            .map(|s| (*s).to_owned())
            .find(|n| common.contains(n))
            .unwrap_or_else(|| common[0].clone())
    });

    let batch = batch_size(&[&reference, &candidate], options.batch_size);
    let mut stats: BTreeMap<String, ErrorStats> = BTreeMap::new();
    let (mut ref_correct, mut cand_correct) = (0usize, 0usize);
    let mut done = 0;
    let mut shown = 0;
    while done + batch <= examples || (done < examples && batch_is_free(&[&reference, &candidate]))
    {
        let n = batch.min(examples - done);
        let ref_out = reference.run(&feeds, done, n)?;
        let cand_out = candidate.run(&feeds, done, n)?;
        for name in &common {
            let (Some(r), Some(c)) = (ref_out.get(name), cand_out.get(name)) else {
                return Err(CompareError::Mismatch(format!(
                    "output `{name}` does not hold numbers"
                )));
            };
            if r.0 != c.0 {
                return Err(CompareError::Mismatch(format!(
                    "output `{name}` is shaped {:?} by the reference but {:?} by the candidate",
                    r.0, c.0
                )));
            }
            stats.entry(name.clone()).or_default().add(&r.1, &c.1);
        }
        if let (Some(out), Some((key, labels))) = (&class_output, &labels) {
            let rows = |(shape, values): &(Vec<usize>, Vec<f64>)| {
                let classes = shape.last().copied().unwrap_or(1).max(1);
                (shape.len() == 2).then(|| {
                    values
                        .chunks(classes)
                        .map(metrics::argmax)
                        .collect::<Vec<_>>()
                })
            };
            let not_matrix = || {
                CompareError::Mismatch(format!(
                    "labels `{key}` need output `{out}` to be a [batch, classes] matrix"
                ))
            };
            let r = ref_out.get(out).and_then(rows).ok_or_else(not_matrix)?;
            let c = cand_out.get(out).and_then(rows).ok_or_else(not_matrix)?;
            for (i, label) in labels.values[done..done + n].iter().enumerate() {
                ref_correct += usize::from(r[i] as f64 == *label);
                cand_correct += usize::from(c[i] as f64 == *label);
            }
        }
        done += n;
        shown += 1;
        if shown % 4 == 0 || done == examples {
            progress(Progress {
                stage: "outputs".to_owned(),
                done: done as u64,
                total: examples as u64,
            });
        }
    }

    let outputs = common
        .iter()
        .map(|name| {
            let s = stats.remove(name).unwrap_or_default();
            OutputComparison {
                name: name.clone(),
                elements: s.elements,
                max_abs_error: s.max_abs_error(),
                mean_abs_error: s.mean_abs_error(),
                cosine_similarity: s.cosine_similarity(),
                sqnr_db: s.sqnr_db(),
                non_finite_mismatches: s.mismatched_non_finite,
            }
        })
        .collect();
    let accuracy = class_output.zip(labels).map(|(output, (labels, _))| {
        let acc = |correct: usize| {
            if done == 0 {
                0.0
            } else {
                correct as f64 / done as f64
            }
        };
        let (r, c) = (acc(ref_correct), acc(cand_correct));
        AccuracyComparison {
            output,
            labels,
            reference: r,
            candidate: c,
            delta_points: (c - r) * 100.0,
        }
    });

    let mut latency = Vec::new();
    for &backend in &options.backends {
        let mut measure = |side: &Side, which: &str| {
            side.latency(backend, &feeds, options, &mut |done, total| {
                progress(Progress {
                    stage: format!("latency {backend} {which}"),
                    done,
                    total,
                })
            })
        };
        let reference_latency = measure(&reference, "reference");
        let candidate_latency = measure(&candidate, "candidate");
        latency.push(BackendLatency {
            backend,
            reference: reference_latency,
            candidate: candidate_latency,
        });
    }

    Ok(CompareReport {
        size_ratio: candidate.bytes as f64 / reference.bytes.max(1) as f64,
        reference: reference.summary(),
        candidate: candidate.summary(),
        data: data.to_path_buf(),
        examples: done,
        outputs,
        unmatched_outputs,
        accuracy,
        latency,
    })
}

fn names(infos: &[TensorInfo]) -> String {
    infos
        .iter()
        .map(|i| format!("`{}`", i.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One model: its bytes and the backend its outputs are computed on.
struct Side {
    path: PathBuf,
    bytes: u64,
    model_bytes: Arc<[u8]>,
    model: Model,
}

impl Side {
    fn open(path: &Path, options: &CompareOptions) -> Result<Self, CompareError> {
        let raw = std::fs::read(path).map_err(|source| CompareError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Model::inspect(&raw).map_err(|source| CompareError::Model {
            path: path.to_path_buf(),
            source,
        })?;
        let model_bytes: Arc<[u8]> = raw.into();
        let mut reasons = Vec::new();
        for &backend in &options.backends {
            match Model::load(model_bytes.clone(), &load_options(backend, options)) {
                Ok(model) => {
                    return Ok(Self {
                        path: path.to_path_buf(),
                        bytes: model_bytes.len() as u64,
                        model_bytes,
                        model,
                    })
                }
                Err(e) => reasons.push(format!("{backend}: {}", inference::error_chain(&e))),
            }
        }
        Err(CompareError::NoBackend {
            path: path.to_path_buf(),
            reasons: if reasons.is_empty() {
                "no backend was asked for".to_owned()
            } else {
                reasons.join("; ")
            },
        })
    }

    fn summary(&self) -> ModelSide {
        ModelSide {
            path: self.path.clone(),
            bytes: self.bytes,
            backend: self.model.backend(),
        }
    }

    /// Runs examples `start..start + n`, returning each output's shape and values.
    fn run(&self, feeds: &[Feed], start: usize, n: usize) -> Result<RunOutputs, CompareError> {
        run_on(&self.model, feeds, start, n).map_err(|source| CompareError::Run {
            path: self.path.clone(),
            backend: self.model.backend(),
            source,
        })
    }

    fn latency(
        &self,
        backend: BackendKind,
        feeds: &[Feed],
        options: &CompareOptions,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Latency {
        let loaded;
        let model = if self.model.backend() == backend {
            &self.model
        } else {
            match Model::load(self.model_bytes.clone(), &load_options(backend, options)) {
                Ok(m) => {
                    loaded = m;
                    &loaded
                }
                Err(e) => {
                    return Latency {
                        p50_ms: None,
                        error: Some(inference::error_chain(&e)),
                    }
                }
            }
        };
        let rows = feeds
            .iter()
            .map(|f| f.array.rows())
            .min()
            .unwrap_or(0)
            .max(1);
        let runs = options.latency_runs.max(1);
        let mut times = Vec::with_capacity(runs);
        for i in 0..runs + 3 {
            let t0 = Instant::now();
            if let Err(e) = run_on(model, feeds, i % rows, 1) {
                return Latency {
                    p50_ms: None,
                    error: Some(inference::error_chain(&e)),
                };
            }
            if i >= 3 {
                times.push(t0.elapsed());
            }
            progress(i as u64 + 1, runs as u64 + 3);
        }
        Latency {
            p50_ms: Some(metrics::p50_ms(&mut times)),
            error: None,
        }
    }
}

fn load_options(backend: BackendKind, options: &CompareOptions) -> LoadOptions {
    let mut load = LoadOptions::new(backend).with_intra_op_threads(1);
    load.ort_library = options.ort_library.clone();
    load
}

/// One input of the models and the array that feeds it.
struct Feed {
    input: String,
    array: Array,
}

enum FeedError {
    Data(String),
    Mismatch(String),
}

/// Pairs each input of the reference with an array: the one named after it, else (single
/// input) `input_key`. The candidate must take the same inputs.
fn feeds(
    npz: &mut Npz,
    reference: &Side,
    candidate: &Side,
    options: &CompareOptions,
) -> Result<Vec<Feed>, FeedError> {
    let inputs = &reference.model.metadata().inputs;
    let cand = candidate.model.metadata();
    for input in inputs {
        if cand.input(&input.name).is_none() {
            return Err(FeedError::Mismatch(format!(
                "the candidate has no input `{}` (its inputs: {})",
                input.name,
                names(&cand.inputs)
            )));
        }
    }
    let mut feeds = Vec::new();
    for input in inputs {
        let key = match (&options.input_key, inputs.len()) {
            (Some(key), 1) => key.clone(),
            (Some(_), n) => {
                return Err(FeedError::Data(format!(
                    "--input-key names the array of a single-input model, but the models have {n} inputs; name the arrays after the inputs ({})",
                    names(inputs)
                )))
            }
            (None, _) => input.name.clone(),
        };
        if !npz.has(&key) {
            let hint = if inputs.len() == 1 && options.input_key.is_none() {
                " (pass the array to feed with --input-key)"
            } else {
                ""
            };
            return Err(FeedError::Data(format!(
                "there is no array `{key}` for input `{}`{hint}; {}",
                input.name,
                npz.listing()
            )));
        }
        let array = npz.read(&key).map_err(FeedError::Data)?;
        feeds.push(Feed {
            input: input.name.clone(),
            array,
        });
    }
    Ok(feeds)
}

/// The batch size: fixed by a model that declares one, else `wanted`.
fn batch_size(sides: &[&Side], wanted: usize) -> usize {
    sides
        .iter()
        .flat_map(|s| &s.model.metadata().inputs)
        .find_map(|i| match i.shape.as_deref() {
            Some([Dim::Fixed(n), ..]) => Some(*n),
            _ => None,
        })
        .unwrap_or(wanted)
        .max(1)
}

/// Whether the models accept a batch of any size (no input fixes its first axis).
fn batch_is_free(sides: &[&Side]) -> bool {
    !sides
        .iter()
        .flat_map(|s| &s.model.metadata().inputs)
        .any(|i| matches!(i.shape.as_deref(), Some([Dim::Fixed(_), ..])))
}

/// Runs `model` on examples `start..start + n` of every feed, converted to the declared
/// element types and shapes; every output as shape and `f64` values.
/// Each output of a run, by name: its shape and its values as f64.
type RunOutputs = BTreeMap<String, (Vec<usize>, Vec<f64>)>;

fn run_on(
    model: &Model,
    feeds: &[Feed],
    start: usize,
    n: usize,
) -> Result<RunOutputs, inference::Error> {
    let meta = model.metadata();
    let mut inputs = Vec::new();
    for feed in feeds {
        let Some(info) = meta.input(&feed.input) else {
            continue;
        };
        let example = example_shape(info, &feed.array);
        let tensor = feed
            .array
            .batch(start, n, &example, info.element_type)
            .ok_or_else(|| {
                inference::Error::InvalidTensor(format!(
                    "input `{}` is of type {}, which cannot be fed from a numeric array",
                    info.name, info.element_type
                ))
            })?;
        inputs.push((feed.input.clone(), tensor));
    }
    let outputs = model.run(inputs)?;
    Ok(outputs
        .iter()
        .filter_map(|(name, t)| Some((name.to_owned(), (t.shape().to_vec(), data::to_f64(t)?))))
        .collect())
}

/// The shape of one example: the declared shape behind the batch axis when it is fixed and
/// holds the array's rows (so 64-pixel rows feed a `[N, 1, 8, 8]` CNN), else the array's.
fn example_shape(info: &TensorInfo, array: &Array) -> Vec<usize> {
    let own: Vec<usize> = array.shape.iter().skip(1).copied().collect();
    let declared: Option<Vec<usize>> = info.shape.as_ref().and_then(|dims| {
        dims.iter()
            .skip(1)
            .map(|d| match d {
                Dim::Fixed(n) => Some(*n),
                _ => None,
            })
            .collect()
    });
    match declared {
        Some(shape) if shape.iter().product::<usize>() == array.row_len() => shape,
        _ => own,
    }
}
