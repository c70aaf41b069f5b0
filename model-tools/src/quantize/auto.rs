//! Accuracy-driven quantization (`quantize auto`): quantize everything, measure; while the
//! accuracy drop is over the budget, return the most sensitive node to float, and measure
//! again.
//!
//! A node's sensitivity is the accuracy the model regains when that node alone is kept in
//! float (everything else quantized), measured on the evaluation set: one evaluation per
//! quantized node with weights, and per other quantized node when those do not suffice.
//! Nodes are then returned to float in that order, one at a time, until the model is within
//! the budget or every candidate is float. Intel Neural Compressor's tuning is the model for
//! this; onnxruntime's quantizer has no equivalent.

use inference::{LoadOptions, Model};
use serde::Serialize;

use super::error::QuantizeError;
use super::report::QuantizeReport;
use super::static_qdq::{quantize_static, StaticOptions};
use crate::calibrate::TensorRanges;
use crate::{evaluate, Dataset, EvalError};

/// How [`quantize_auto`] searches.
#[derive(Debug, Clone)]
pub struct AutoOptions {
    /// The static quantization to start from; its `exclude_nodes` grow during the search.
    pub quantization: StaticOptions,
    /// The largest accuracy drop accepted, in percentage points (0.5 = half a point).
    pub max_accuracy_drop: f64,
    /// The engine that evaluates each candidate.
    pub load: LoadOptions,
    /// Examples per evaluation batch.
    pub batch_size: usize,
    /// At most this many nodes are returned to float.
    pub max_float_nodes: usize,
}

impl Default for AutoOptions {
    fn default() -> Self {
        Self {
            quantization: StaticOptions::default(),
            max_accuracy_drop: 0.5,
            load: LoadOptions::default(),
            batch_size: 64,
            max_float_nodes: 16,
        }
    }
}

/// One measured configuration.
#[derive(Debug, Clone, Serialize)]
pub struct AutoStep {
    /// The nodes kept in float in this configuration (beyond those the quantizer leaves).
    pub float_nodes: Vec<String>,
    /// Accuracy on the evaluation set, in percent.
    pub accuracy: f64,
    /// Accuracy drop against FP32, in points.
    pub drop: f64,
    /// Size of the model, in bytes.
    pub size: usize,
    /// Median latency of an evaluation batch, in milliseconds.
    pub p50_ms: f64,
}

/// What the search did.
#[derive(Debug, Clone, Serialize)]
pub struct AutoReport {
    /// Accuracy of the FP32 model, in percent.
    pub fp32_accuracy: f64,
    /// Size of the FP32 model, in bytes.
    pub fp32_size: usize,
    /// Median latency of an FP32 evaluation batch, in milliseconds.
    pub fp32_p50_ms: f64,
    /// The budget, in points.
    pub max_accuracy_drop: f64,
    /// Per candidate node, the accuracy with it alone kept in float, most sensitive first.
    pub sensitivity: Vec<(String, f64)>,
    /// Every configuration measured on the way, the first with everything quantized.
    pub steps: Vec<AutoStep>,
    /// The index in `steps` of the configuration returned: the first within the budget, else
    /// the most accurate.
    pub chosen: usize,
    /// Whether the returned model is within the budget.
    pub within_budget: bool,
    /// The quantizer's report on the returned model.
    pub quantization: QuantizeReport,
}

/// Why the search failed.
#[derive(Debug, thiserror::Error)]
pub enum AutoError {
    /// Quantization itself failed.
    #[error(transparent)]
    Quantize(Box<QuantizeError>),
    /// A model could not be loaded for evaluation.
    #[error("cannot load {what} for evaluation: {source}")]
    Load {
        /// Which model.
        what: &'static str,
        /// Why.
        #[source]
        source: inference::Error,
    },
    /// A model could not be evaluated on the data.
    #[error("cannot evaluate {what}: {source}")]
    Evaluate {
        /// Which model.
        what: &'static str,
        /// Why.
        #[source]
        source: EvalError,
    },
    /// The budget is not a number of points.
    #[error("--max-accuracy-drop must be a finite number of points, 0 or more; got {0}")]
    BadBudget(f64),
}

impl From<QuantizeError> for AutoError {
    fn from(e: QuantizeError) -> Self {
        Self::Quantize(Box::new(e))
    }
}

/// Searches for the most quantized configuration of `model` whose accuracy on `eval` is
/// within `options.max_accuracy_drop` of FP32, with `ranges` from calibration. Returns the
/// model (the best found when nothing is within the budget; the report says so) and the
/// report. `progress` gets a line per evaluation.
pub fn quantize_auto(
    model: &[u8],
    ranges: &TensorRanges,
    eval: &Dataset,
    options: &AutoOptions,
    mut progress: impl FnMut(&str),
) -> Result<(Vec<u8>, AutoReport), AutoError> {
    if !(options.max_accuracy_drop.is_finite() && options.max_accuracy_drop >= 0.0) {
        return Err(AutoError::BadBudget(options.max_accuracy_drop));
    }
    let measure = |bytes: &[u8], what: &'static str| -> Result<(f64, f64), AutoError> {
        let loaded = Model::load(bytes.to_vec(), &options.load)
            .map_err(|source| AutoError::Load { what, source })?;
        let report = evaluate(&loaded, eval, options.batch_size, |_| {})
            .map_err(|source| AutoError::Evaluate { what, source })?;
        Ok((report.accuracy * 100.0, report.latency.p50_ms))
    };
    let (fp32_accuracy, fp32_p50_ms) = measure(model, "the FP32 model")?;
    progress(&format!("FP32: {fp32_accuracy:.2} %"));
    let config = |float: &[String]| {
        let mut q = options.quantization.clone();
        q.exclude_nodes.extend(float.iter().cloned());
        q
    };
    let step = |float: &[String]| -> Result<(QuantizeReport, AutoStep), AutoError> {
        let (bytes, report) = quantize_static(model, ranges, &config(float))?;
        let (accuracy, p50_ms) = measure(&bytes, "a quantized candidate")?;
        let step = AutoStep {
            float_nodes: float.to_vec(),
            accuracy,
            drop: fp32_accuracy - accuracy,
            size: bytes.len(),
            p50_ms,
        };
        Ok((report, step))
    };
    let within = |s: &AutoStep| s.drop <= options.max_accuracy_drop + 1e-9;

    let (full, first) = step(&[])?;
    progress(&format!(
        "everything quantized: {:.2} % ({:+.2} points)",
        first.accuracy, -first.drop
    ));
    let mut steps = vec![first];
    let mut sensitivity = Vec::new();
    if !within(&steps[0]) {
        // Candidates: the quantized nodes that compute (weights first), by name.
        let mut candidates: Vec<(String, bool)> = full
            .quantized
            .iter()
            .filter(|q| !q.node.is_empty() && q.integer_op == "QDQ")
            .map(|q| (q.node.clone(), !q.weight.is_empty()))
            .collect();
        candidates.sort_by_key(|(_, weighted)| !weighted);
        for (name, _) in &candidates {
            let (_, alone) = step(std::slice::from_ref(name))?;
            progress(&format!("{name} alone in float: {:.2} %", alone.accuracy));
            sensitivity.push((name.clone(), alone.accuracy));
        }
        sensitivity.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut float = Vec::new();
        for (name, _) in sensitivity.iter().take(options.max_float_nodes) {
            float.push(name.clone());
            let (_, s) = step(&float)?;
            progress(&format!(
                "{} in float: {:.2} % ({:+.2} points)",
                float.len(),
                s.accuracy,
                -s.drop
            ));
            let done = within(&s);
            steps.push(s);
            if done {
                break;
            }
        }
    }
    let within_budget = steps.iter().any(within);
    let chosen = match steps.iter().position(within) {
        Some(i) => i,
        None => steps
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.accuracy.total_cmp(&b.1.accuracy))
            .map_or(0, |(i, _)| i),
    };
    let (bytes, quantization) =
        quantize_static(model, ranges, &config(&steps[chosen].float_nodes))?;
    Ok((
        bytes,
        AutoReport {
            fp32_accuracy,
            fp32_size: model.len(),
            fp32_p50_ms,
            max_accuracy_drop: options.max_accuracy_drop,
            sensitivity,
            steps,
            chosen,
            within_budget,
            quantization,
        },
    ))
}
