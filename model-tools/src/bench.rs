//! Latency and throughput of a model on each backend at several batch sizes, on random inputs
//! of the shapes it declares.
//!
//! A backend that cannot load the model, or a batch size the model cannot take, is a row with
//! its error, not a failure of the whole benchmark: the point is to compare what runs.
//!
//! ```no_run
//! use inference::BackendKind;
//! use model_tools::bench::{bench_file, BenchConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = BenchConfig { batches: vec![1, 8], ..BenchConfig::default() };
//! let report = bench_file("models/digits_cnn.onnx".as_ref(), &BackendKind::ALL, &config, |_| {})?;
//! for row in &report.rows {
//!     match &row.result {
//!         Ok(stats) => println!("{} x{:?}: p50 {:.3} ms", row.backend, row.batch, stats.latency.p50_ms),
//!         Err(why) => println!("{}: {why}", row.backend),
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod inputs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inference::{BackendKind, Dim, LoadOptions, Model, Tensor};
use serde::{Serialize, Serializer};

use crate::evaluation::summarize;
use crate::LatencySummary;

pub use inputs::{input_shape, random_inputs};

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchConfig {
    /// Batch sizes, each measured on every backend.
    pub batches: Vec<usize>,
    /// Timed calls per backend and batch.
    pub iterations: usize,
    /// Untimed calls before them (first-call allocations, caches).
    pub warm_up: usize,
    /// Seed of the random inputs (the same for every backend).
    pub seed: u64,
    /// Threads ONNX Runtime may use within one call (tract uses one).
    pub threads: usize,
    /// libonnxruntime; `None` reads `ORT_DYLIB_PATH`.
    pub ort_library: Option<PathBuf>,
    /// Shapes to assume for inputs with open dims (see [`LoadOptions::input_shapes`]).
    pub input_shapes: BTreeMap<String, Vec<Dim>>,
}

impl Default for BenchConfig {
    /// Batch 1, 100 timed calls after 10 untimed, seed 0, one ONNX Runtime thread.
    fn default() -> Self {
        Self {
            batches: vec![1],
            iterations: 100,
            warm_up: 10,
            seed: 0,
            threads: 1,
            ort_library: None,
            input_shapes: BTreeMap::new(),
        }
    }
}

/// Latency of one backend at one batch size.
#[derive(Debug, Clone, Serialize)]
pub struct BatchStats {
    /// Per-call latency.
    pub latency: LatencySummary,
    /// Samples (batch rows) per second over the timed calls.
    pub throughput_per_s: f64,
    /// Timed calls.
    pub iterations: usize,
}

/// One row of the report: a backend at a batch size, or a backend that did not load (`batch`
/// is then `None`).
#[derive(Debug, Clone)]
pub struct BenchRow {
    /// The backend.
    pub backend: BackendKind,
    /// The batch size; `None` when the backend could not load the model.
    pub batch: Option<usize>,
    /// The measurement, or why there is none.
    pub result: Result<BatchStats, String>,
}

/// As JSON: `backend`, `batch`, `ok`, then the [`BatchStats`] fields or `error`.
impl Serialize for BenchRow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Row<'a> {
            backend: &'static str,
            batch: Option<usize>,
            ok: bool,
            #[serde(flatten)]
            stats: Option<&'a BatchStats>,
            #[serde(skip_serializing_if = "Option::is_none")]
            error: Option<&'a str>,
        }
        Row {
            backend: self.backend.name(),
            batch: self.batch,
            ok: self.result.is_ok(),
            stats: self.result.as_ref().ok(),
            error: self.result.as_ref().err().map(String::as_str),
        }
        .serialize(serializer)
    }
}

/// The outcome of [`bench_file`].
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The model file.
    pub model: PathBuf,
    /// Its size in bytes.
    pub model_bytes: usize,
    /// Timed calls per row.
    pub iterations: usize,
    /// Untimed calls before them.
    pub warm_up: usize,
    /// One per backend and batch, backends in the order asked.
    pub rows: Vec<BenchRow>,
}

/// Where a benchmark stands, after each call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchProgress {
    /// The backend being measured.
    pub backend: BackendKind,
    /// The batch size being measured.
    pub batch: usize,
    /// Calls done over the whole benchmark (calls that a failure skipped count as done).
    pub done: usize,
    /// Calls in the whole benchmark.
    pub total: usize,
}

/// Why a benchmark could not start at all.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The model file could not be read.
    #[error("cannot read `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an ONNX model.
    #[error("`{path}` is not a model to benchmark")]
    NotAModel {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: inference::Error,
    },
    /// Nothing to measure.
    #[error("{0}")]
    Config(String),
}

/// Measures the model at `path` on each of `backends` at each batch size of `config`.
/// `progress` is called after each call. Fails only when the file is not a model or the
/// config asks for nothing; everything else is a row's error.
pub fn bench_file(
    path: &Path,
    backends: &[BackendKind],
    config: &BenchConfig,
    mut progress: impl FnMut(BenchProgress),
) -> Result<BenchReport, BenchError> {
    if config.batches.is_empty() || config.batches.contains(&0) {
        return Err(BenchError::Config(
            "batch sizes must be 1 or more, e.g. --batch 1,8,32".to_owned(),
        ));
    }
    if config.iterations == 0 {
        return Err(BenchError::Config(
            "iterations must be 1 or more".to_owned(),
        ));
    }
    let bytes: Arc<[u8]> = std::fs::read(path)
        .map_err(|source| BenchError::Read {
            path: path.to_path_buf(),
            source,
        })?
        .into();
    Model::inspect(&bytes).map_err(|source| BenchError::NotAModel {
        path: path.to_path_buf(),
        source,
    })?;
    let per_row = config.warm_up + config.iterations;
    let total = backends.len() * config.batches.len() * per_row;
    let mut done = 0;
    let mut rows = Vec::new();
    for &backend in backends {
        let model = match Model::load(bytes.clone(), &load_options(backend, config)) {
            Ok(model) => model,
            Err(e) => {
                tracing::debug!(%backend, error = %inference::error_chain(&e), "cannot load");
                rows.push(BenchRow {
                    backend,
                    batch: None,
                    result: Err(inference::error_chain(&e)),
                });
                done += config.batches.len() * per_row;
                if let Some(&batch) = config.batches.last() {
                    progress(BenchProgress {
                        backend,
                        batch,
                        done,
                        total,
                    });
                }
                continue;
            }
        };
        for &batch in &config.batches {
            let row_start = done;
            let result = bench_batch(&model, batch, config, |calls| {
                progress(BenchProgress {
                    backend,
                    batch,
                    done: row_start + calls,
                    total,
                })
            });
            done = row_start + per_row;
            progress(BenchProgress {
                backend,
                batch,
                done,
                total,
            });
            rows.push(BenchRow {
                backend,
                batch: Some(batch),
                result,
            });
        }
    }
    Ok(BenchReport {
        model: path.to_path_buf(),
        model_bytes: bytes.len(),
        iterations: config.iterations,
        warm_up: config.warm_up,
        rows,
    })
}

fn load_options(backend: BackendKind, config: &BenchConfig) -> LoadOptions {
    let mut options = LoadOptions::new(backend)
        .with_intra_op_threads(config.threads.max(1))
        .with_max_concurrency(1);
    options.ort_library = config.ort_library.clone();
    options.input_shapes = config.input_shapes.clone();
    options
}

/// Runs `model` on random inputs of batch `batch`: `config.warm_up` untimed calls, then
/// `config.iterations` timed ones. `calls` is called with the calls done so far.
pub fn bench_batch(
    model: &Model,
    batch: usize,
    config: &BenchConfig,
    mut calls: impl FnMut(usize),
) -> Result<BatchStats, String> {
    let inputs = random_inputs(model.metadata(), batch, config.seed)?;
    let run = |feed: Vec<(String, Tensor)>| -> Result<Duration, String> {
        let started = Instant::now();
        model.run(feed).map_err(|e| inference::error_chain(&e))?;
        Ok(started.elapsed())
    };
    for i in 0..config.warm_up {
        run(inputs.clone())?;
        calls(i + 1);
    }
    let mut latencies = Vec::with_capacity(config.iterations);
    for i in 0..config.iterations {
        latencies.push(run(inputs.clone())?);
        calls(config.warm_up + i + 1);
    }
    let busy: f64 = latencies.iter().map(Duration::as_secs_f64).sum();
    Ok(BatchStats {
        latency: summarize(&mut latencies),
        throughput_per_s: if busy > 0.0 {
            (batch * config.iterations) as f64 / busy
        } else {
            0.0
        },
        iterations: config.iterations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_batch_is_a_row_and_a_model_that_does_not_load_is_one_too() {
        let path = inference::test_support::models_dir().join("digits_mlp.onnx");
        let config = BenchConfig {
            batches: vec![1, 3],
            iterations: 3,
            warm_up: 1,
            ..BenchConfig::default()
        };
        let mut last = None;
        let report = bench_file(&path, &[BackendKind::Tract], &config, |p| last = Some(p)).unwrap();
        assert_eq!(report.rows.len(), 2, "{report:?}");
        for (row, batch) in report.rows.iter().zip([1, 3]) {
            assert_eq!((row.backend, row.batch), (BackendKind::Tract, Some(batch)));
            let stats = row.result.as_ref().unwrap();
            assert_eq!(stats.iterations, 3);
            assert!(stats.latency.p50_ms > 0.0 && stats.throughput_per_s > 0.0);
        }
        let end = last.unwrap();
        assert_eq!((end.done, end.total), (8, 8));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["rows"][1]["ok"], true);
        assert_eq!(json["rows"][1]["batch"], 3);
        assert!(json["rows"][1]["latency"]["p99_ms"].is_number());

        // A shape for an input the model does not have: no backend loads it.
        let config = BenchConfig {
            input_shapes: [("nope".to_owned(), vec![Dim::Fixed(1)])].into(),
            ..config
        };
        let report = bench_file(&path, &[BackendKind::Tract], &config, |p| last = Some(p)).unwrap();
        let [row] = report.rows.as_slice() else {
            panic!("{report:?}")
        };
        assert_eq!((row.backend, row.batch), (BackendKind::Tract, None));
        assert!(row.result.as_ref().unwrap_err().contains("nope"), "{row:?}");
        assert_eq!(last.map(|p| (p.done, p.total)), Some((8, 8)));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["rows"][0]["ok"], false);
        assert!(json["rows"][0]["error"].is_string());
        assert!(json["rows"][0].get("latency").is_none());
    }

    #[test]
    fn nothing_to_measure_and_not_a_model_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.onnx");
        std::fs::write(&junk, b"junk").unwrap();
        let err = bench_file(
            &junk,
            &[BackendKind::Tract],
            &BenchConfig::default(),
            |_| {},
        );
        assert!(matches!(err, Err(BenchError::NotAModel { .. })), "{err:?}");
        let config = BenchConfig {
            batches: vec![0],
            ..BenchConfig::default()
        };
        let err = bench_file(&junk, &[BackendKind::Tract], &config, |_| {}).unwrap_err();
        assert!(err.to_string().contains("--batch"), "{err}");
    }
}
