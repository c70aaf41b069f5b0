//! `model-tools quantize auto`: static quantization within an accuracy budget.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use inference::{BackendKind, LoadOptions};
use model_tools::quantize::{quantize_auto, AutoOptions};
use model_tools::Dataset;

use super::quantize::{read_input, write_report};
use super::quantize_static::StaticArgs;

pub(crate) const AUTO_ABOUT: &str = "\
Static quantization within an accuracy budget: what onnxruntime's quantizer cannot do.

Calibrates and quantizes everything as `quantize static` does, then measures top-1 accuracy on
the evaluation set (an .npz with x_<split> and y_<split> arrays, as models/digits.npz). While
the drop against the FP32 model is over --max-accuracy-drop points, it measures each quantized
node's sensitivity (the accuracy with that node alone kept in float) and returns the most
sensitive nodes to float, one at a time, until the model is within the budget. The report
lists every configuration tried with its accuracy, size and latency, and the nodes kept in
float. If nothing is within the budget, the most accurate configuration is written and the
command exits with status 1, saying so.

Examples:
  model-tools quantize auto models/digits_mlp.onnx mlp_int8.onnx \\
      --calibration models/digits.npz --input-key x_train --max-samples 256 \\
      --eval models/digits.npz --max-accuracy-drop 0.5";

/// Arguments of `quantize auto`.
#[derive(Debug, Args)]
pub struct AutoArgs {
    /// The static quantization to start from (model, output, calibration, types, exclusions).
    #[command(flatten)]
    pub quantize: StaticArgs,
    /// Evaluation data with labels: an .npz holding `x_<split>` and `y_<split>`.
    #[arg(long, value_name = "DATA.npz")]
    pub eval: PathBuf,
    /// The split of --eval to measure on (`test` reads x_test and y_test).
    #[arg(long, default_value = "test", value_name = "SPLIT")]
    pub eval_split: String,
    /// The largest accuracy drop accepted, in percentage points.
    #[arg(long, default_value_t = 0.5, value_name = "POINTS")]
    pub max_accuracy_drop: f64,
    /// Return at most this many nodes to float.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub max_float_nodes: usize,
    /// Evaluate on this engine (`ort` or `tract`).
    #[arg(long, default_value = "ort", value_name = "ENGINE")]
    pub eval_backend: BackendKind,
}

/// Runs the search, writes the model, prints the report; `Ok(false)` when over the budget.
pub fn run(args: AutoArgs) -> anyhow::Result<bool> {
    let q = &args.quantize;
    let bytes = read_input(&q.input, &q.output)?;
    let eval = Dataset::load(&args.eval, &args.eval_split).with_context(|| {
        format!(
            "failed to read the evaluation set `{}` (split `{}`)",
            args.eval.display(),
            args.eval_split
        )
    })?;
    let started = Instant::now();
    let calibration = super::quantize_static::calibrate(q, &bytes)?;
    let options = AutoOptions {
        quantization: super::quantize_static::options(q),
        max_accuracy_drop: args.max_accuracy_drop,
        load: LoadOptions::new(args.eval_backend),
        max_float_nodes: args.max_float_nodes,
        ..AutoOptions::default()
    };
    let spinner = ProgressBar::new_spinner()
        .with_style(ProgressStyle::with_template("{spinner} {msg}").expect("static template"));
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let result = quantize_auto(&bytes, &calibration.ranges, &eval, &options, |line| {
        spinner.set_message(line.to_owned());
    });
    spinner.finish_and_clear();
    let (quantized, report) =
        result.with_context(|| format!("failed to quantize `{}`", q.input.display()))?;
    std::fs::write(&q.output, &quantized)
        .with_context(|| format!("failed to write `{}`", q.output.display()))?;
    let elapsed = started.elapsed();

    let mut out = std::io::stdout().lock();
    if q.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(report.within_budget);
    }
    writeln!(
        out,
        "FP32        {:.2} % top-1 on {} examples, {} bytes, p50 {:.3} ms per batch",
        report.fp32_accuracy,
        eval.len(),
        report.fp32_size,
        report.fp32_p50_ms
    )?;
    writeln!(out, "budget      {:.2} points", report.max_accuracy_drop)?;
    writeln!(out, "steps")?;
    writeln!(
        out,
        "  {:<4} {:>9} {:>8} {:>10} {:>9}  nodes kept in float",
        "step", "accuracy", "drop", "bytes", "p50 ms"
    )?;
    for (i, s) in report.steps.iter().enumerate() {
        writeln!(
            out,
            "  {:<4} {:>8.2}% {:>8.2} {:>10} {:>9.3}  {}{}",
            i,
            s.accuracy,
            s.drop,
            s.size,
            s.p50_ms,
            if s.float_nodes.is_empty() {
                "(none)".to_owned()
            } else {
                s.float_nodes.join(", ")
            },
            if i == report.chosen {
                "  <- written"
            } else {
                ""
            }
        )?;
    }
    if !report.sensitivity.is_empty() {
        writeln!(out, "sensitivity (accuracy with the node alone in float)")?;
        for (node, accuracy) in &report.sensitivity {
            writeln!(out, "  {node:<24} {accuracy:.2} %")?;
        }
    }
    let header = [format!(
        "model       {} -> {}",
        q.input.display(),
        q.output.display()
    )];
    write_report(&mut out, &header, &report.quantization, elapsed)?;
    if !report.within_budget {
        writeln!(
            out,
            "no configuration is within {:.2} points; the most accurate one was written",
            report.max_accuracy_drop
        )?;
    }
    Ok(report.within_budget)
}
