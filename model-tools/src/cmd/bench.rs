//! `model-tools bench`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use inference::{BackendKind, Dim};
use model_tools::bench::{bench_file, BenchConfig, BenchReport};

/// Which engines to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backends {
    /// tract only.
    Tract,
    /// ONNX Runtime only.
    Ort,
    /// tract, then ONNX Runtime.
    Both,
}

/// Arguments of `bench`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Inputs are random, of the shapes the model declares: the first dim of each input (unless the
model fixes it) is the batch; other open dims need a size from --shape. Floats are in [0, 1),
integers in 0..10 (uint8 in 0..=255).

A backend that cannot load the model, or a batch the model cannot take, is a row with its error;
the exit status is 1 only when nothing could be measured.

Examples:
  model-tools bench models/digits_cnn.onnx --batch 1,8,32
  model-tools bench det.onnx --backend ort --shape x=N,3,640,640 --iterations 20 --json")]
pub struct BenchArgs {
    /// The ONNX model file.
    pub model: PathBuf,
    /// The engines to measure.
    #[arg(long, value_enum, default_value = "both", ignore_case = true)]
    pub backend: Backends,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32", value_name = "N,N,...", value_parser = positive)]
    pub batch: Vec<usize>,
    /// Timed calls per backend and batch.
    #[arg(long, default_value_t = 100, value_name = "N", value_parser = positive)]
    pub iterations: usize,
    /// Untimed calls before the timed ones.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub warm_up: usize,
    /// The shape of an input with open dims, e.g. x=N,3,640,640: each dim a size, a name, or
    /// `?` to keep what the model declares. The first dim still takes the batch. Repeatable.
    #[arg(long = "shape", value_name = "INPUT=DIMS", value_parser = input_shape)]
    pub shapes: Vec<(String, Vec<Dim>)>,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Path of libonnxruntime.so; defaults to $ORT_DYLIB_PATH.
    #[arg(long, value_name = "FILE")]
    pub ort_library: Option<PathBuf>,
    /// Threads ONNX Runtime may use within one call.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = positive)]
    pub threads: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn positive(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{text}` is not an integer of 1 or more")),
    }
}

/// `INPUT=D,D,...`.
fn input_shape(text: &str) -> Result<(String, Vec<Dim>), String> {
    let Some((name, dims)) = text.split_once('=') else {
        return Err(format!("`{text}` is not INPUT=DIMS, e.g. x=N,3,640,640"));
    };
    if name.trim().is_empty() {
        return Err(format!("`{text}` names no input"));
    }
    let dims = dims
        .split(',')
        .map(|d| match d.trim() {
            "?" => Ok(Dim::Unknown),
            "" => Err(format!("`{text}` has an empty dim")),
            d => Ok(d
                .parse::<usize>()
                .map_or_else(|_| Dim::Symbolic(d.to_owned()), Dim::Fixed)),
        })
        .collect::<Result<_, _>>()?;
    Ok((name.trim().to_owned(), dims))
}

/// Measures with a progress bar, prints the table or JSON.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let backends: &[BackendKind] = match args.backend {
        Backends::Tract => &[BackendKind::Tract],
        Backends::Ort => &[BackendKind::Ort],
        Backends::Both => &BackendKind::ALL,
    };
    let config = BenchConfig {
        batches: args.batch.clone(),
        iterations: args.iterations,
        warm_up: args.warm_up,
        seed: args.seed,
        threads: args.threads,
        ort_library: args.ort_library.clone(),
        input_shapes: args.shapes.iter().cloned().collect(),
    };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} {msg:18} [{bar:30}] {pos}/{len} calls {per_sec}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let report = bench_file(&args.model, backends, &config, |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_message(format!("{} batch {}", p.backend, p.batch));
    })?;
    bar.finish_and_clear();

    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_table(&mut out, &report)?;
    }
    out.flush()?;
    if report.rows.iter().all(|r| r.result.is_err()) {
        bail!("no backend could run `{}`", args.model.display());
    }
    Ok(())
}

fn write_table(out: &mut impl Write, report: &BenchReport) -> std::io::Result<()> {
    writeln!(
        out,
        "model    {} ({:.1} KiB), random inputs, {} timed calls after {} warm-up",
        report.model.display(),
        report.model_bytes as f64 / 1024.0,
        report.iterations,
        report.warm_up
    )?;
    writeln!(
        out,
        "{:7}  {:>5}  {:>9}  {:>9}  {:>9}  {:>10}",
        "backend", "batch", "p50 ms", "p99 ms", "mean ms", "samples/s"
    )?;
    for row in &report.rows {
        let batch = row.batch.map_or_else(|| "-".to_owned(), |b| b.to_string());
        match &row.result {
            Ok(s) => writeln!(
                out,
                "{:7}  {batch:>5}  {:>9.3}  {:>9.3}  {:>9.3}  {:>10.0}",
                row.backend.name(),
                s.latency.p50_ms,
                s.latency.p99_ms,
                s.latency.mean_ms,
                s.throughput_per_s
            )?,
            Err(why) => writeln!(out, "{:7}  {batch:>5}  failed: {why}", row.backend.name())?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_batches_parse() {
        assert_eq!(
            input_shape("x=N,3,?,640").unwrap(),
            (
                "x".to_owned(),
                vec![
                    Dim::Symbolic("N".into()),
                    Dim::Fixed(3),
                    Dim::Unknown,
                    Dim::Fixed(640)
                ]
            )
        );
        assert!(input_shape("x").unwrap_err().contains("INPUT=DIMS"));
        assert!(input_shape("x=1,,2").unwrap_err().contains("empty dim"));
        assert_eq!(positive("8"), Ok(8));
        assert!(positive("0").is_err() && positive("x").is_err());
    }
}
