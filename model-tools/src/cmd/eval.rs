//! `model-tools eval`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use inference::Model;
use model_tools::{evaluate, Dataset};

use crate::BackendArgs;

/// Arguments of `eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The ONNX classifier to evaluate.
    pub model: PathBuf,
    /// The labelled dataset: an .npz with `x_<split>` (float32 rows) and `y_<split>` (int64).
    #[arg(long, default_value = "models/digits.npz", value_name = "FILE")]
    pub data: PathBuf,
    /// Which split of the dataset to classify.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Examples per call; latency is reported per call.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub batch_size: usize,
    /// Classify only the first N examples.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// Loads the model and the dataset, classifies with a progress bar, prints the report.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let options = args.backend.options();
    let model = Model::load_file(&args.model, &options).with_context(|| {
        format!(
            "failed to load `{}` on {}",
            args.model.display(),
            options.choice()
        )
    })?;
    let mut data = Dataset::load(&args.data, &args.split)?;
    if let Some(n) = args.limit {
        data.truncate(n);
    }
    let bar = ProgressBar::new(data.len() as u64).with_style(
        ProgressStyle::with_template("{spinner} classifying [{bar:30}] {pos}/{len} {per_sec}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let report = evaluate(&model, &data, args.batch_size, |done| {
        bar.set_position(done as u64)
    })
    .with_context(|| format!("failed to evaluate `{}`", args.model.display()))?;
    bar.finish_and_clear();

    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "model      {} on {}",
        args.model.display(),
        model.backend()
    )?;
    if let Some(fallback) = model.fallback() {
        writeln!(
            out,
            "fallback   {} refused it: {}",
            fallback.from, fallback.reason
        )?;
    }
    writeln!(
        out,
        "dataset    {} ({} split, {} examples)",
        args.data.display(),
        args.split,
        report.examples
    )?;
    writeln!(
        out,
        "accuracy   {:.2}% ({}/{}) by argmax of `{}`",
        report.accuracy * 100.0,
        report.correct,
        report.examples,
        report.output
    )?;
    let l = &report.latency;
    writeln!(
        out,
        "latency    p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  mean {:.3} ms per call of {}",
        l.p50_ms, l.p90_ms, l.p99_ms, l.mean_ms, report.batch_size
    )?;
    writeln!(out, "throughput {:.0} examples/s", report.throughput_per_s)?;
    Ok(())
}
