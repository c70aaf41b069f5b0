//! Accuracy and latency of a classifier on a dataset.

use std::time::{Duration, Instant};

use inference::ndarray::{Axis, Ix2};
use inference::{Dim, Model, Tensor};
use serde::Serialize;

use crate::Dataset;

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The model does not look like a classifier over the dataset's rows.
    #[error("{0}")]
    Shape(String),
    /// A run failed.
    #[error(transparent)]
    Inference(#[from] inference::Error),
}

/// Latency percentiles of the batches of an evaluation, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Examples classified.
    pub examples: usize,
    /// Examples whose top class is the label.
    pub correct: usize,
    /// `correct / examples`.
    pub accuracy: f64,
    /// Examples per batch.
    pub batch_size: usize,
    /// The output whose argmax is the prediction.
    pub output: String,
    /// Per-batch latency.
    pub latency: LatencySummary,
    /// Examples per second over the whole run.
    pub throughput_per_s: f64,
}

/// Classifies every example of `data` with `model`, `batch_size` at a time, and measures each
/// batch. Rows are reshaped to the model's input shape (so a `[N, 1, 8, 8]` CNN reads 64-pixel
/// rows); the prediction is the argmax of the output named `logits`, `probabilities` or else the
/// first. `progress` is called with the examples done after each batch.
pub fn evaluate(
    model: &Model,
    data: &Dataset,
    batch_size: usize,
    mut progress: impl FnMut(usize),
) -> Result<EvalReport, EvalError> {
    let meta = model.metadata();
    let [input] = meta.inputs.as_slice() else {
        return Err(EvalError::Shape(format!(
            "the model has {} inputs; evaluation feeds exactly one",
            meta.inputs.len()
        )));
    };
    let output = ["logits", "probabilities"]
        .iter()
        .find_map(|n| meta.output(n))
        .or(meta.outputs.first())
        .ok_or_else(|| EvalError::Shape("the model has no outputs".to_owned()))?
        .name
        .clone();
    let row: usize = data.x.shape()[1..].iter().product();
    let example_shape = example_shape(input.shape.as_deref(), row, &input.name)?;
    let batch_size = batch_size.max(1);

    let mut latencies = Vec::new();
    let mut correct = 0;
    let started = Instant::now();
    let mut done = 0;
    while done < data.len() {
        let n = batch_size.min(data.len() - done);
        let rows: Vec<f32> = data
            .x
            .slice_axis(Axis(0), (done..done + n).into())
            .iter()
            .copied()
            .collect();
        let mut shape = vec![n];
        shape.extend(&example_shape);
        let batch = Tensor::from_shape_vec(&shape, rows)?;
        let t0 = Instant::now();
        let outputs = model.run_select([(input.name.as_str(), batch)], &[&output])?;
        latencies.push(t0.elapsed());
        let scores = outputs
            .get(&output)
            .and_then(|t| t.as_array::<f32>())
            .and_then(|a| a.view().into_dimensionality::<Ix2>().ok())
            .ok_or_else(|| {
                EvalError::Shape(format!(
                    "output `{output}` is not a float32 [batch, classes] matrix"
                ))
            })?;
        for (scores, label) in scores.axis_iter(Axis(0)).zip(data.y.iter().skip(done)) {
            let best = scores
                .iter()
                .enumerate()
                .fold(0, |best, (i, v)| if *v > scores[best] { i } else { best });
            correct += usize::from(best as i64 == *label);
        }
        done += n;
        progress(done);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(EvalReport {
        examples: done,
        correct,
        accuracy: if done == 0 {
            0.0
        } else {
            correct as f64 / done as f64
        },
        batch_size,
        output,
        latency: summarize(&mut latencies),
        throughput_per_s: if elapsed > 0.0 {
            done as f64 / elapsed
        } else {
            0.0
        },
    })
}

/// The shape of one example: the declared input shape without its batch axis, checked against
/// the dataset's row length; a flat row when the model declares no shape.
fn example_shape(
    declared: Option<&[Dim]>,
    row: usize,
    name: &str,
) -> Result<Vec<usize>, EvalError> {
    let Some(dims) = declared else {
        return Ok(vec![row]);
    };
    let rest = dims.get(1..).unwrap_or_default();
    let fixed: Option<Vec<usize>> = rest
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => Some(*n),
            _ => None,
        })
        .collect();
    match fixed {
        Some(shape) if shape.iter().product::<usize>() == row && !dims.is_empty() => Ok(shape),
        _ => Err(EvalError::Shape(format!(
            "input `{name}` is shaped [{}], which does not hold the dataset's rows of {row} values behind a batch axis",
            dims.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        ))),
    }
}

pub(crate) fn summarize(latencies: &mut [Duration]) -> LatencySummary {
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let pick = |q: f64| {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        ms(latencies[i])
    };
    LatencySummary {
        p50_ms: pick(0.50),
        p90_ms: pick(0.90),
        p99_ms: pick(0.99),
        mean_ms: if latencies.is_empty() {
            0.0
        } else {
            latencies.iter().map(|d| ms(*d)).sum::<f64>() / latencies.len() as f64
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let mut l: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = summarize(&mut l);
        assert_eq!((s.p50_ms, s.p90_ms, s.p99_ms), (50.0, 90.0, 99.0));
        assert!((s.mean_ms - 50.5).abs() < 1e-9);
    }

    #[test]
    fn example_shape_drops_the_batch_axis_and_checks_the_row() {
        let cnn = [
            Dim::Symbolic("N".into()),
            Dim::Fixed(1),
            Dim::Fixed(8),
            Dim::Fixed(8),
        ];
        assert_eq!(example_shape(Some(&cnn), 64, "x").unwrap(), [1, 8, 8]);
        let err = example_shape(Some(&cnn), 63, "x").unwrap_err().to_string();
        assert!(err.contains("[N, 1, 8, 8]") && err.contains("63"), "{err}");
        assert_eq!(example_shape(None, 5, "x").unwrap(), [5]);
    }
}
