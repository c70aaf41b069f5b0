//! `model-tools convert`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use model_tools::{convert_fp16, Fp16Options, DEFAULT_FP16_BLOCK_OPS};

/// Arguments of `convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The number format to convert to.
    #[command(subcommand)]
    pub format: ConvertFormat,
}

/// The conversions.
#[derive(Debug, Subcommand)]
pub enum ConvertFormat {
    /// Store weights and compute in float16: about half the size.
    ///
    /// Float32 initializers and constants become float16 (values beyond float16's range are
    /// clamped to ±65504, tiny ones to ±5.96e-8, as onnxruntime's converter does), every node
    /// computes in float16 and the declared types follow. Operators without a float16 kernel
    /// on ONNX Runtime's CPU provider (the default block list below, which holds most compute
    /// operators on x86-64), those named by --block-ops and those of other domains than ONNX's
    /// stay in float32, with Casts around them; the report lists them. Their weights are still
    /// stored in float16 (see --keep-float-weights).
    #[command(after_help = fp16_after_help())]
    Fp16(Fp16Args),
}

/// Arguments of `convert fp16`.
#[derive(Debug, Args)]
pub struct Fp16Args {
    /// The float32 ONNX model.
    pub input: PathBuf,
    /// Where to write the float16 model.
    pub output: PathBuf,
    /// Keep float32 graph inputs and outputs.
    ///
    /// Casts to float16 after the inputs and back to float32 before the outputs, so callers
    /// feed and read float32 as with the original model. Without it, inputs and outputs are
    /// float16.
    #[arg(long)]
    pub keep_io_types: bool,
    /// Also keep these operators in float32, comma-separated.
    ///
    /// For operators whose float16 results are not accurate enough, e.g.
    /// `--block-ops Softmax,LayerNormalization`; `domain.Op` names an operator of another
    /// domain. Adds to the default block list.
    #[arg(long, value_delimiter = ',', value_name = "OPS")]
    pub block_ops: Vec<String>,
    /// Convert the operators of the default block list too.
    ///
    /// For accelerators with float16 kernels; on a CPU, ONNX Runtime then inserts the Casts
    /// around those operators itself.
    #[arg(long)]
    pub no_default_block_list: bool,
    /// Leave float32 the weights that only float32 nodes read.
    ///
    /// By default they are stored in float16 behind a Cast (folded when the model loads), so
    /// that the file halves even where compute stays float32.
    #[arg(long)]
    pub keep_float_weights: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn fp16_after_help() -> String {
    format!(
        "Default block list (no float16 kernel on ONNX Runtime's CPU provider):\n  {}",
        DEFAULT_FP16_BLOCK_OPS.join(", ")
    )
}

/// Runs `convert`.
pub fn run(args: ConvertArgs) -> anyhow::Result<()> {
    match args.format {
        ConvertFormat::Fp16(args) => fp16(args),
    }
}

fn fp16(args: Fp16Args) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.input)
        .with_context(|| format!("failed to read `{}`", args.input.display()))?;
    let options = Fp16Options {
        keep_io_types: args.keep_io_types,
        block_ops: args.block_ops.clone(),
        default_block_list: !args.no_default_block_list,
        keep_float_weights: args.keep_float_weights,
    };
    let (converted, report) = convert_fp16(&bytes, &options)
        .with_context(|| format!("failed to convert `{}` to float16", args.input.display()))?;
    std::fs::write(&args.output, &converted)
        .with_context(|| format!("failed to write `{}`", args.output.display()))?;

    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "wrote      {} ({} bytes, {:.2}× the {} bytes of {})",
        args.output.display(),
        report.output_bytes,
        report.output_bytes as f64 / report.input_bytes.max(1) as f64,
        report.input_bytes,
        args.input.display()
    )?;
    writeln!(
        out,
        "float16    {} tensors converted, {} values clamped into float16's range",
        report.tensors_converted, report.values_clamped
    )?;
    writeln!(
        out,
        "io         {}",
        if args.keep_io_types {
            "float32 inputs and outputs kept (--keep-io-types)"
        } else {
            "float32 inputs and outputs are float16 now"
        }
    )?;
    writeln!(out, "casts      {} inserted", report.casts_inserted)?;
    if report.kept_float.is_empty() {
        writeln!(out, "float32    no node kept in float32")?;
    } else {
        writeln!(out, "float32    {} nodes kept:", report.kept_float.len())?;
        for node in &report.kept_float {
            let why = serde_json::to_value(node.reason)?;
            writeln!(
                out,
                "             {} ({})",
                node.node,
                why.as_str().unwrap_or_default()
            )?;
        }
    }
    if !report.initializers_kept_float.is_empty() {
        writeln!(
            out,
            "           float32 initializers read only by those: {}",
            report.initializers_kept_float.join(", ")
        )?;
    }
    Ok(())
}
