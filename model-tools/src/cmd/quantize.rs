//! `model-tools quantize <mode>`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use model_tools::quantize::{
    quantize_dynamic, DynamicOp, DynamicOptions, KeepReason, QuantType, QuantizeReport,
};

/// Arguments of `quantize`.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    #[command(subcommand)]
    pub mode: QuantizeMode,
}

/// How to quantize.
#[derive(Debug, Subcommand)]
pub enum QuantizeMode {
    /// INT8 weights, activations quantized at run time: no calibration data needed.
    #[command(long_about = DYNAMIC_ABOUT)]
    Dynamic(DynamicArgs),
    /// INT8 weights and activations with ranges calibrated on data (QDQ format).
    #[command(long_about = super::quantize_static::STATIC_ABOUT)]
    Static(super::quantize_static::StaticArgs),
    /// Static quantization that keeps the most sensitive nodes in float until the accuracy
    /// drop is within a budget.
    #[command(long_about = super::quantize_auto::AUTO_ABOUT)]
    Auto(super::quantize_auto::AutoArgs),
}

const DYNAMIC_ABOUT: &str = "\
INT8 weights, activations quantized at run time: no calibration data needed.

Every MatMul, Gemm and Conv whose weight is a constant float32 initializer gets INT8 weights
(computed now, from the weights' own range) and reads its input through DynamicQuantizeLinear,
which quantizes it to uint8 from its range at each run; MatMulInteger or ConvInteger multiply
in integers, and the result is scaled back to float32 before the bias is added. Weights shrink
about 4×, accuracy usually moves by a fraction of a point, and the model still takes and
returns float32. Best for fully connected and recurrent models (MLPs, transformers); for CNNs,
static quantization with calibration data is usually faster.

Nodes it cannot quantize (weights computed at run time, float16, excluded, other operators)
stay exactly as they were and are listed with the reason. The opset is raised to 11 if lower.

Examples:
  model-tools quantize dynamic models/digits_mlp.onnx mlp_int8.onnx
  model-tools quantize dynamic model.onnx out.onnx --per-channel --weight-type u8
  model-tools quantize dynamic model.onnx out.onnx --op-types MatMul,Gemm --exclude-nodes head

Then compare accuracy: model-tools eval out.onnx --backend ort";

/// Arguments of `quantize dynamic`.
#[derive(Debug, Args)]
pub struct DynamicArgs {
    /// The float32 ONNX model to quantize.
    pub input: PathBuf,
    /// Where to write the quantized model (not the input itself).
    pub output: PathBuf,
    /// Type of the quantized weights.
    ///
    /// `s8` (int8, the default): symmetric around 0, scale from the largest magnitude;
    /// runs as uint8 × int8 on ONNX Runtime. `u8` (uint8): asymmetric, using all 256 levels
    /// for the range [min, max]; can be more accurate for skewed weights. Conv weights run on
    /// ConvInteger, which takes uint8 only: s8 weights are stored shifted by 128, exactly.
    #[arg(
        long,
        default_value = "s8",
        value_name = "TYPE",
        ignore_case = true,
        value_parser = quant_type_parser()
    )]
    pub weight_type: QuantType,
    /// One scale per output channel instead of one per weight tensor.
    ///
    /// Usually more accurate (a channel of small weights keeps its resolution); the scales
    /// take a few more bytes. Applies to Conv and to 2-D MatMul/Gemm weights.
    #[arg(long)]
    pub per_channel: bool,
    /// Quantize weights to 7 bits.
    ///
    /// Avoids saturation of uint8 × int8 products on x86 CPUs without VNNI, at some cost in
    /// accuracy; leave it off on VNNI and ARM.
    #[arg(long)]
    pub reduce_range: bool,
    /// Operator types to quantize, comma-separated (default: all).
    #[arg(
        long,
        value_name = "OPS",
        value_delimiter = ',',
        ignore_case = true,
        default_value = "MatMul,Gemm,Conv",
        value_parser = op_type_parser()
    )]
    pub op_types: Vec<DynamicOp>,
    /// Names of nodes to keep in float, comma-separated (see `model-tools inspect`, or the
    /// names this command lists).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub exclude_nodes: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `u8` or `s8`, listed in `--help`.
pub(crate) fn quant_type_parser() -> impl TypedValueParser<Value = QuantType> {
    PossibleValuesParser::new(QuantType::ALL.map(QuantType::name))
        .try_map(|name| name.parse::<QuantType>())
}

fn op_type_parser() -> impl TypedValueParser<Value = DynamicOp> {
    PossibleValuesParser::new(DynamicOp::ALL.map(DynamicOp::name))
        .try_map(|name| name.parse::<DynamicOp>())
}

/// Runs the chosen mode.
pub fn run(args: QuantizeArgs) -> anyhow::Result<()> {
    match args.mode {
        QuantizeMode::Dynamic(args) => dynamic(args),
        QuantizeMode::Static(args) => super::quantize_static::run(args),
        QuantizeMode::Auto(args) => {
            let budget = args.max_accuracy_drop;
            if super::quantize_auto::run(args)? {
                Ok(())
            } else {
                bail!(
                    "no configuration is within {budget} points of FP32; the most accurate \
                     one was written (raise --max-accuracy-drop or --max-float-nodes)"
                )
            }
        }
    }
}

/// The model at `input`, after checking that `output` will not overwrite it.
pub(crate) fn read_input(input: &Path, output: &Path) -> anyhow::Result<Vec<u8>> {
    if same_file(input, output) {
        bail!(
            "the output `{}` is the input; write the quantized model to another file",
            output.display()
        );
    }
    std::fs::read(input).with_context(|| format!("failed to read `{}`", input.display()))
}

fn dynamic(args: DynamicArgs) -> anyhow::Result<()> {
    let bytes = read_input(&args.input, &args.output)?;
    let options = DynamicOptions {
        weight_type: args.weight_type,
        per_channel: args.per_channel,
        reduce_range: args.reduce_range,
        op_types: args.op_types.iter().copied().collect(),
        exclude_nodes: args.exclude_nodes.clone(),
    };
    let spinner = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} quantizing {msg}").expect("static template"),
    );
    spinner.set_message(args.input.display().to_string());
    spinner.enable_steady_tick(Duration::from_millis(100));
    let started = Instant::now();
    let result = quantize_dynamic(&bytes, &options);
    let elapsed = started.elapsed();
    spinner.finish_and_clear();
    let (quantized, report) =
        result.with_context(|| format!("failed to quantize `{}`", args.input.display()))?;
    std::fs::write(&args.output, &quantized)
        .with_context(|| format!("failed to write `{}`", args.output.display()))?;

    let mut out = std::io::stdout().lock();
    if args.json {
        let json = serde_json::json!({
            "input": args.input,
            "output": args.output,
            "options": {
                "weight_type": options.weight_type,
                "per_channel": options.per_channel,
                "reduce_range": options.reduce_range,
                "op_types": options.op_types,
                "exclude_nodes": options.exclude_nodes,
            },
            "seconds": elapsed.as_secs_f64(),
            "size_ratio": report.size_ratio(),
            "report": report,
        });
        serde_json::to_writer_pretty(&mut out, &json)?;
        writeln!(out)?;
        return Ok(());
    }
    write_report(&mut out, &dynamic_header(&args, &options), &report, elapsed)?;
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The lines that describe a dynamic quantization, before the common report.
fn dynamic_header(args: &DynamicArgs, options: &DynamicOptions) -> [String; 2] {
    [
        format!(
            "model       {} -> {}",
            args.input.display(),
            args.output.display()
        ),
        format!(
            "weights     {} {}, {}{}; activations u8 at run time",
            options.weight_type,
            if options.weight_type.symmetric_by_default() {
                "symmetric"
            } else {
                "asymmetric"
            },
            if options.per_channel {
                "per channel"
            } else {
                "per tensor"
            },
            if options.reduce_range { ", 7-bit" } else { "" },
        ),
    ]
}

/// Prints `header`, then what was quantized and kept, the sizes, the opset and the time.
pub(crate) fn write_report(
    out: &mut impl Write,
    header: &[String],
    report: &QuantizeReport,
    elapsed: Duration,
) -> std::io::Result<()> {
    for line in header {
        writeln!(out, "{line}")?;
    }
    if let Some(pre) = &report.preprocess {
        writeln!(
            out,
            "prepared    {} BatchNormalization folded, {} Constant to initializers, {} Identity/Dropout bypassed",
            pre.batch_norms_folded.len(),
            pre.constants_to_initializers,
            pre.bypassed
        )?;
    }
    writeln!(out, "quantized   {}", nodes(report.quantized.len()))?;
    let width = report
        .quantized
        .iter()
        .map(|q| label(&q.node, &q.output).len())
        .chain(report.notable_kept().map(|k| k.label().len()))
        .max()
        .unwrap_or(0);
    for q in &report.quantized {
        let stored = if q.stored_as == q.weight_type {
            String::new()
        } else {
            format!(", stored as {}", q.stored_as)
        };
        let weight = if q.weight.is_empty() {
            String::new()
        } else {
            format!(
                "  weight `{}` {}{}{}",
                q.weight,
                q.weight_type,
                if q.per_channel { " per channel" } else { "" },
                stored
            )
        };
        let line = format!(
            "  {:<width$}  {:<7} -> {:<13}{}",
            label(&q.node, &q.output),
            q.op_type,
            q.integer_op,
            weight,
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    let notable: Vec<_> = report.notable_kept().collect();
    let untouched: BTreeMap<&str, usize> = report
        .kept_float
        .iter()
        .filter(|k| k.reason == KeepReason::NotQuantizable)
        .fold(BTreeMap::new(), |mut m, k| {
            *m.entry(k.op_type.as_str()).or_default() += 1;
            m
        });
    writeln!(out, "kept float  {}", nodes(report.kept_float.len()))?;
    for k in &notable {
        writeln!(
            out,
            "  {:<width$}  {:<6}    {}",
            k.label(),
            k.op_type,
            k.reason
        )?;
    }
    if !untouched.is_empty() {
        let ops: Vec<String> = untouched
            .iter()
            .map(|(op, n)| {
                if *n == 1 {
                    op.to_string()
                } else {
                    format!("{op} ×{n}")
                }
            })
            .collect();
        writeln!(out, "  not quantizable (left as is): {}", ops.join(", "))?;
    }
    writeln!(
        out,
        "size        {} -> {} bytes ({:.2}×, {:+.1}%)",
        report.size_before,
        report.size_after,
        report.size_ratio(),
        (report.size_ratio() - 1.0) * 100.0
    )?;
    if report.opset_after != report.opset_before {
        writeln!(
            out,
            "opset       {} -> {} (the integer operators need it)",
            report.opset_before, report.opset_after
        )?;
    } else {
        writeln!(out, "opset       {}", report.opset_after)?;
    }
    writeln!(out, "time        {:.1} ms", elapsed.as_secs_f64() * 1e3)?;
    Ok(())
}

fn label<'a>(node: &'a str, output: &'a str) -> &'a str {
    if node.is_empty() {
        output
    } else {
        node
    }
}

fn nodes(n: usize) -> String {
    if n == 1 {
        "1 node".to_owned()
    } else {
        format!("{n} nodes")
    }
}
