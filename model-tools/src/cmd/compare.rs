//! `model-tools compare`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use inference::BackendKind;
use model_tools::compare::{format_db, Gates, Latency};
use model_tools::{CompareOptions, CompareReport};
use serde::Serialize;

/// The exit status of `compare` when a gate (--max-accuracy-drop, --min-sqnr) fails.
pub const GATE_FAILED_EXIT: u8 = 3;

/// Arguments of `compare`.
#[derive(Debug, Args)]
#[command(after_help = "\
Exit status:
  0  the comparison ran and every gate passed
  1  the comparison could not run (unreadable model or data, models that do not match, ...)
  2  usage error
  3  a gate failed (--max-accuracy-drop, --min-sqnr); the reasons are printed on stderr

Example:
  model-tools compare models/digits_mlp.onnx models/digits_mlp_int8.onnx \\
      --data models/digits.npz --input-key x_test --labels y_test --max-accuracy-drop 0.5")]
pub struct CompareArgs {
    /// The reference model, usually the float32 original.
    pub reference: PathBuf,
    /// The candidate model: quantized, float16, ...
    pub candidate: PathBuf,
    /// The inputs to run both models on: an .npz with one array per model input, named after
    /// it (first axis: examples).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// The array to feed a single-input model, when none is named after its input.
    ///
    /// E.g. `x_test` of models/digits.npz.
    #[arg(long, value_name = "KEY")]
    pub input_key: Option<String>,
    /// The array of integer class labels: measure top-1 accuracy of both models.
    ///
    /// E.g. `y_test`. The prediction is the argmax of output `logits`, else `probabilities`,
    /// else the first output both models share.
    #[arg(long, value_name = "KEY")]
    pub labels: Option<String>,
    /// Print the report as JSON (SQNR of identical outputs is "inf").
    #[arg(long)]
    pub json: bool,
    /// Fail (exit 3) when the candidate's accuracy is more than POINTS percentage points below
    /// the reference's. Needs --labels.
    #[arg(long, value_name = "POINTS")]
    pub max_accuracy_drop: Option<f64>,
    /// Fail (exit 3) when any output's SQNR is below DB decibels.
    #[arg(long, value_name = "DB")]
    pub min_sqnr: Option<f64>,
    /// Backends to measure latency on, comma-separated; outputs are computed on the first that
    /// loads each model.
    ///
    /// A backend that cannot load a model (tract without an operator, ONNX Runtime without its
    /// library) is reported in the latency table, not an error.
    #[arg(long, value_delimiter = ',', default_value = "tract,ort", value_parser = backend_kind_parser(), value_name = "BACKENDS")]
    pub backend: Vec<BackendKind>,
    /// Path of libonnxruntime.so; defaults to $ORT_DYLIB_PATH.
    #[arg(long, value_name = "FILE")]
    pub ort_library: Option<PathBuf>,
    /// Examples per call when comparing outputs.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub batch_size: usize,
    /// Compare only the first N examples.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Timed one-example calls per model and backend for the latency median.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub latency_runs: usize,
}

fn backend_kind_parser() -> impl TypedValueParser<Value = BackendKind> {
    PossibleValuesParser::new(["tract", "ort", "onnxruntime"])
        .try_map(|name| name.parse::<BackendKind>())
}

/// A failed gate: `main` prints it and exits with [`GATE_FAILED_EXIT`].
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct GateFailed(pub Vec<String>);

#[derive(Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    report: &'a CompareReport,
    gate_failures: &'a [String],
}

/// Runs both models with a progress bar, prints the report, checks the gates.
pub fn run(args: CompareArgs) -> anyhow::Result<()> {
    if args.max_accuracy_drop.is_some() && args.labels.is_none() {
        anyhow::bail!("--max-accuracy-drop needs --labels KEY, the array of class labels");
    }
    let options = CompareOptions {
        input_key: args.input_key.clone(),
        labels_key: args.labels.clone(),
        backends: args.backend.clone(),
        ort_library: args.ort_library.clone(),
        batch_size: args.batch_size,
        limit: args.limit,
        latency_runs: args.latency_runs,
    };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} {msg:28} [{bar:30}] {pos}/{len}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let report = model_tools::compare::compare_with_progress(
        &args.reference,
        &args.candidate,
        &args.data,
        &options,
        |p| {
            bar.set_message(p.stage);
            bar.set_length(p.total);
            bar.set_position(p.done);
        },
    )
    .with_context(|| {
        format!(
            "failed to compare `{}` with `{}`",
            args.candidate.display(),
            args.reference.display()
        )
    })?;
    bar.finish_and_clear();

    let failures = report.gate_failures(&Gates {
        max_accuracy_drop: args.max_accuracy_drop,
        min_sqnr_db: args.min_sqnr,
    });
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = JsonReport {
            report: &report,
            gate_failures: &failures,
        };
        serde_json::to_writer_pretty(&mut out, &json)?;
        writeln!(out)?;
    } else {
        write_table(&mut out, &report)?;
    }
    out.flush()?;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(GateFailed(failures).into())
    }
}

fn write_table(out: &mut impl Write, r: &CompareReport) -> std::io::Result<()> {
    let width = r
        .reference
        .path
        .display()
        .to_string()
        .len()
        .max(r.candidate.path.display().to_string().len());
    for (label, side) in [("reference", &r.reference), ("candidate", &r.candidate)] {
        writeln!(
            out,
            "{label:<10} {:<width$}  {:>9} bytes  outputs on {}",
            side.path.display(),
            side.bytes,
            side.backend
        )?;
    }
    writeln!(
        out,
        "size       candidate is {:.2}× the reference",
        r.size_ratio
    )?;
    writeln!(
        out,
        "data       {} ({} examples)",
        r.data.display(),
        r.examples
    )?;
    writeln!(out)?;
    let name_width = r
        .outputs
        .iter()
        .map(|o| o.name.len())
        .max()
        .unwrap_or(0)
        .max(6);
    writeln!(
        out,
        "{:<name_width$}  {:>12}  {:>12}  {:>10}  {:>9}",
        "output", "max abs err", "mean abs err", "cosine", "SQNR dB"
    )?;
    for o in &r.outputs {
        writeln!(
            out,
            "{:<name_width$}  {:>12.6}  {:>12.6}  {:>10.6}  {:>9}",
            o.name,
            o.max_abs_error,
            o.mean_abs_error,
            o.cosine_similarity,
            format_db(o.sqnr_db)
        )?;
        if o.non_finite_mismatches > 0 {
            writeln!(
                out,
                "{:name_width$}  ({} elements NaN or infinite on one side only)",
                "", o.non_finite_mismatches
            )?;
        }
    }
    if !r.unmatched_outputs.is_empty() {
        writeln!(
            out,
            "not compared (in one model only): {}",
            r.unmatched_outputs.join(", ")
        )?;
    }
    if let Some(a) = &r.accuracy {
        writeln!(out)?;
        writeln!(
            out,
            "accuracy   reference {:.2}%  candidate {:.2}%  delta {:+.2} points  (argmax of `{}` vs `{}`)",
            a.reference * 100.0,
            a.candidate * 100.0,
            a.delta_points,
            a.output,
            a.labels
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "latency p50, one example  {:>12}  {:>12}",
        "reference", "candidate"
    )?;
    let cell = |l: &Latency| match l.p50_ms {
        Some(ms) => format!("{ms:.3} ms"),
        None => "n/a".to_owned(),
    };
    for b in &r.latency {
        writeln!(
            out,
            "{:<25}  {:>12}  {:>12}",
            b.backend.name(),
            cell(&b.reference),
            cell(&b.candidate)
        )?;
        for (which, l) in [("reference", &b.reference), ("candidate", &b.candidate)] {
            if let Some(e) = &l.error {
                writeln!(out, "  {} cannot run the {which}: {e}", b.backend)?;
            }
        }
    }
    Ok(())
}
