//! What a comparison reports, and the gates a CI pipeline checks it against.

use std::path::PathBuf;

use inference::BackendKind;
use serde::{Serialize, Serializer};

/// One of the two models.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSide {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The backend its outputs were computed on.
    pub backend: BackendKind,
}

/// How far one output of the candidate is from the reference's, over all examples.
#[derive(Debug, Clone, Serialize)]
pub struct OutputComparison {
    /// The output's name.
    pub name: String,
    /// Elements compared.
    pub elements: usize,
    /// Largest |reference − candidate|.
    pub max_abs_error: f64,
    /// Mean |reference − candidate|.
    pub mean_abs_error: f64,
    /// Cosine similarity of the flattened outputs (1: same direction).
    pub cosine_similarity: f64,
    /// 10·log10(Σ reference² / Σ (reference − candidate)²); infinite when identical (written
    /// `"inf"` in JSON).
    #[serde(serialize_with = "float_or_text")]
    pub sqnr_db: f64,
    /// Elements where one side is NaN or infinite and the other is not the same.
    pub non_finite_mismatches: usize,
}

/// Top-1 accuracy of both models against labels.
#[derive(Debug, Clone, Serialize)]
pub struct AccuracyComparison {
    /// The output whose argmax is the prediction.
    pub output: String,
    /// The labels array.
    pub labels: String,
    /// The reference's accuracy, 0 to 1.
    pub reference: f64,
    /// The candidate's accuracy, 0 to 1.
    pub candidate: f64,
    /// candidate − reference, in percentage points (negative: the candidate is worse).
    pub delta_points: f64,
}

/// The median latency of one model on one backend, or why it could not be measured.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median of the timed calls, in milliseconds.
    pub p50_ms: Option<f64>,
    /// Why the backend could not load or run the model.
    pub error: Option<String>,
}

/// Latency of both models on one backend.
#[derive(Debug, Clone, Serialize)]
pub struct BackendLatency {
    /// The backend.
    pub backend: BackendKind,
    /// The reference's.
    pub reference: Latency,
    /// The candidate's.
    pub candidate: Latency,
}

/// The outcome of [`compare`](super::compare()).
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    /// The reference model.
    pub reference: ModelSide,
    /// The candidate model.
    pub candidate: ModelSide,
    /// candidate bytes / reference bytes.
    pub size_ratio: f64,
    /// The data file.
    pub data: PathBuf,
    /// Examples compared.
    pub examples: usize,
    /// One entry per output both models have, in the reference's order.
    pub outputs: Vec<OutputComparison>,
    /// Outputs only one of the models has (not compared).
    pub unmatched_outputs: Vec<String>,
    /// With labels: top-1 accuracy of both.
    pub accuracy: Option<AccuracyComparison>,
    /// One entry per backend asked for.
    pub latency: Vec<BackendLatency>,
}

/// Thresholds a CI pipeline gates on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gates {
    /// The largest accepted accuracy loss, in percentage points.
    pub max_accuracy_drop: Option<f64>,
    /// The smallest accepted SQNR of every output, in dB.
    pub min_sqnr_db: Option<f64>,
}

impl CompareReport {
    /// The gates the report fails, each as a sentence; empty when it passes them all.
    pub fn gate_failures(&self, gates: &Gates) -> Vec<String> {
        let mut failures = Vec::new();
        if let Some(max) = gates.max_accuracy_drop {
            match &self.accuracy {
                None => failures.push(
                    "accuracy was not measured (no labels), so the accuracy gate cannot pass"
                        .to_owned(),
                ),
                Some(a) if -a.delta_points > max => failures.push(format!(
                    "accuracy went from {:.2}% to {:.2}% ({:+.2} points), a larger drop than the {max} points allowed",
                    a.reference * 100.0,
                    a.candidate * 100.0,
                    a.delta_points,
                )),
                Some(_) => {}
            }
        }
        if let Some(min) = gates.min_sqnr_db {
            for o in &self.outputs {
                if o.sqnr_db < min || o.non_finite_mismatches > 0 {
                    failures.push(format!(
                        "output `{}` has SQNR {} dB{}, below the {min} dB required",
                        o.name,
                        format_db(o.sqnr_db),
                        if o.non_finite_mismatches > 0 {
                            format!(" and {} NaN/infinity mismatches", o.non_finite_mismatches)
                        } else {
                            String::new()
                        }
                    ));
                }
            }
        }
        failures
    }
}

/// A dB figure for people: `inf` when infinite, else two decimals.
pub fn format_db(db: f64) -> String {
    if db.is_finite() {
        format!("{db:.2}")
    } else {
        format!("{db}")
    }
}

fn float_or_text<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    if x.is_finite() {
        s.serialize_f64(*x)
    } else {
        s.serialize_str(&format!("{x}"))
    }
}

/// Where a comparison is, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// What is being done, e.g. `outputs` or `latency ort candidate`.
    pub stage: String,
    /// Steps done in this stage.
    pub done: u64,
    /// Steps in this stage.
    pub total: u64,
}
