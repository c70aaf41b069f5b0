//! `model-tools quantize static`: calibrate on data, then quantize in the QDQ format.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Args;
use inference::{BackendKind, LoadOptions};
use model_tools::calibrate::{
    calibrate_npz, Calibration, CalibrationMethod, CalibratorConfig, CollectOptions,
};
use model_tools::quantize::{quantize_static, QuantType, StaticOptions};

use super::quantize::{quant_type_parser, read_input, write_report};

pub(crate) const STATIC_ABOUT: &str = "\
INT8 weights and activations, with ranges calibrated on data you give (QDQ format).

The model runs on the calibration inputs (ONNX Runtime by default) with every intermediate
float tensor exposed; each tensor's range comes from the chosen method. Then every quantizable
node reads its inputs through DequantizeLinear and writes its output through a
QuantizeLinear/DequantizeLinear pair with that range; weights are stored as int8 (per tensor
or per output channel) and biases as int32 with the scale s_input × s_weight. ONNX Runtime fuses
these patterns into its integer kernels (QLinearConv, QLinearMatMul, ...).

Before that, the model is pre-processed as onnxruntime asks you to do by hand: Constant nodes
become initializers, BatchNormalization is folded into the Conv before it, Identity and
Dropout are bypassed; a Relu or Clip right after a quantized node is folded into its range.
Quantized: Conv, MatMul, Gemm, Add, Mul, Concat, MaxPool, AveragePool, GlobalAveragePool, Relu,
Clip, LeakyRelu, Sigmoid, Resize, and Reshape/Flatten/Transpose/Squeeze/Unsqueeze (sharing
their input's scale). Every other node stays float, unchanged, and is listed.

The calibration file is an .npz with one array per model input, named after it; for a model of
one input, --input-key names the array instead (e.g. x_train). A few hundred representative
samples are enough.

Examples:
  model-tools quantize static models/digits_cnn.onnx cnn_int8.onnx \\
      --calibration models/digits.npz --input-key x_train --max-samples 256
  model-tools quantize static model.onnx out.onnx --calibration calib.npz \\
      --method percentile --percentile 99.99 --per-channel
  model-tools quantize static model.onnx out.onnx --calibration calib.npz \\
      --exclude-op-types Add --exclude-nodes head

Then measure what it cost:
  model-tools compare model.onnx out.onnx --data test.npz";

/// Arguments of `quantize static`.
#[derive(Debug, Args)]
pub struct StaticArgs {
    /// The float32 ONNX model to quantize.
    pub input: PathBuf,
    /// Where to write the quantized model (not the input itself).
    pub output: PathBuf,
    /// Calibration inputs: an .npz with one array per model input (or see --input-key).
    #[arg(long, value_name = "DATA.npz")]
    pub calibration: PathBuf,
    /// For a model with one input, the array of the .npz that feeds it (e.g. `x_train`).
    #[arg(long, value_name = "KEY")]
    pub input_key: Option<String>,
    /// Calibrate on at most this many samples (the first ones).
    #[arg(long, value_name = "N")]
    pub max_samples: Option<usize>,
    /// Samples per calibration run.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub batch_size: usize,
    /// How a tensor's range is chosen from what it took.
    ///
    /// `minmax`: lowest to highest value. `percentile`: clip the tails at --percentile of a
    /// histogram of absolute values (outliers stop wasting levels). `entropy`: the range
    /// whose quantized distribution is closest (KL divergence) to the real one, as TensorRT
    /// does. `mse`: the range with the least mean squared quantization error.
    #[arg(long, default_value = "minmax", value_name = "METHOD", value_parser = method_parser())]
    pub method: CalibrationMethod,
    /// The percentile kept by `--method percentile`.
    #[arg(long, default_value_t = 99.999, value_name = "P")]
    pub percentile: f64,
    /// Type of the quantized activations (`u8`, onnxruntime's default, or `s8`).
    #[arg(long, default_value = "u8", value_name = "TYPE", value_parser = quant_type_parser())]
    pub activation_type: QuantType,
    /// Type of the quantized weights (`s8`, symmetric, the default; or `u8`).
    #[arg(long, default_value = "s8", value_name = "TYPE", value_parser = quant_type_parser())]
    pub weight_type: QuantType,
    /// One scale per output channel of Conv, MatMul and Gemm weights (needs opset 13).
    #[arg(long)]
    pub per_channel: bool,
    /// Make activation ranges symmetric around zero.
    #[arg(long)]
    pub symmetric_activations: bool,
    /// Names of nodes to keep in float, comma-separated.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub exclude_nodes: Vec<String>,
    /// Operator types to keep in float, comma-separated (e.g. `Add,Concat`).
    #[arg(long, value_name = "OPS", value_delimiter = ',')]
    pub exclude_op_types: Vec<String>,
    /// Run calibration on tract instead of ONNX Runtime.
    #[arg(long)]
    pub calibrate_on_tract: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn method_parser() -> impl TypedValueParser<Value = CalibrationMethod> {
    PossibleValuesParser::new(CalibrationMethod::ALL.map(CalibrationMethod::name))
        .try_map(|name| name.parse::<CalibrationMethod>())
}

/// The calibration method and its settings these flags choose.
fn calibrator(args: &StaticArgs) -> CalibratorConfig {
    match args.method {
        CalibrationMethod::Percentile => CalibratorConfig::percentile(args.percentile),
        method => CalibratorConfig::from(method),
    }
}

/// The quantization these flags choose.
pub(crate) fn options(args: &StaticArgs) -> StaticOptions {
    StaticOptions {
        activation_type: args.activation_type,
        weight_type: args.weight_type,
        per_channel: args.per_channel,
        symmetric_activations: args.symmetric_activations,
        exclude_nodes: args.exclude_nodes.clone(),
        exclude_op_types: args.exclude_op_types.clone(),
    }
}

/// Runs the calibration these flags describe on `model`.
pub(crate) fn calibrate(args: &StaticArgs, model: &[u8]) -> anyhow::Result<Calibration> {
    let collect = CollectOptions {
        calibrator: calibrator(args),
        input_key: args.input_key.clone(),
        max_samples: args.max_samples,
        batch_size: args.batch_size,
        load: LoadOptions::new(if args.calibrate_on_tract {
            BackendKind::Tract
        } else {
            BackendKind::Ort
        }),
        ..CollectOptions::default()
    };
    calibrate_npz(model, &args.calibration, &collect).with_context(|| {
        format!(
            "failed to calibrate `{}` on `{}`",
            args.input.display(),
            args.calibration.display()
        )
    })
}

/// Calibrates, quantizes, writes the model and prints the report.
pub fn run(args: StaticArgs) -> anyhow::Result<()> {
    let bytes = read_input(&args.input, &args.output)?;
    let started = Instant::now();
    let calibration = calibrate(&args, &bytes)?;
    let options = options(&args);
    let (quantized, report) = quantize_static(&bytes, &calibration.ranges, &options)
        .with_context(|| format!("failed to quantize `{}`", args.input.display()))?;
    let elapsed = started.elapsed();
    std::fs::write(&args.output, &quantized)
        .with_context(|| format!("failed to write `{}`", args.output.display()))?;

    let mut out = std::io::stdout().lock();
    if args.json {
        let json = serde_json::json!({
            "input": args.input,
            "output": args.output,
            "calibration": calibration.summary,
            "seconds": elapsed.as_secs_f64(),
            "size_ratio": report.size_ratio(),
            "report": report,
        });
        serde_json::to_writer_pretty(&mut out, &json)?;
        writeln!(out)?;
        return Ok(());
    }
    let summary = &calibration.summary;
    let header = [
        format!(
            "model       {} -> {}",
            args.input.display(),
            args.output.display()
        ),
        format!(
            "calibration {} on {} samples ({} runs on {}), {} tensors, {:.2} s",
            summary.method.name(),
            summary.samples,
            summary.batches,
            summary.backend,
            summary.observed,
            summary.seconds
        ),
        format!(
            "format      QDQ; activations {}{}, weights {} {}",
            options.activation_type,
            if options.symmetric_activations {
                " symmetric"
            } else {
                ""
            },
            options.weight_type,
            if options.per_channel {
                "per channel"
            } else {
                "per tensor"
            },
        ),
    ];
    write_report(&mut out, &header, &report, elapsed)?;
    Ok(())
}
