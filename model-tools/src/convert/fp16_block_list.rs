//! The operators [`crate::convert_fp16`] keeps in float32 by default.

/// Operators ONNX Runtime's CPU execution provider has no float16 kernel for, which
/// [`crate::convert_fp16`] keeps in float32 unless [`crate::Fp16Options::default_block_list`]
/// is off.
///
/// How it was determined (onnxruntime 1.32.0, onnx 1.23.2, x86-64 CPU): the script
/// `model-tools/scripts/probe_fp16_ort_cpu.py` takes every one-node case of ONNX's backend node
/// tests that reads or writes float32 (the cases `tests/conformance/generate.py` writes), makes
/// its float16 twin, opens it in onnxruntime with only the CPU provider, runs it on the case's
/// inputs, and reads back the graph onnxruntime executes (`optimized_model_filepath`). An
/// operator is listed when no case ran on a float16 kernel: either the session or the run
/// failed (e.g. `QuantizeLinear`, `RoiAlign`: no kernel; `NonMaxSuppression`, `Upsample`:
/// float32-only inputs; `LayerNormalization`: float32 statistics outputs), or onnxruntime could
/// only run it by inserting Casts to float32 around it itself (its `InsertCastTransformer`),
/// as for `MatMul`, `Gemm`, `Conv`, `Add` and `Relu` on x86-64. Left out although the probe
/// failed: `If`, `Loop` and `Scan` (their kernels run any type; the probe did not convert their
/// subgraphs, this converter does) and `OptionalGetElement` (optional values are not served).
///
/// The probe found float16 kernels for 39 operators, which are converted: `Attention`, `Cast`,
/// `Celu`, `Clip`, `Compress`, `Concat`, `Constant`, `ConstantOfShape`, `DepthToSpace`,
/// `Dropout`, `Expand`, `Flatten`, `Gather`, `GatherElements`, `GatherND`, `Identity`, `IsInf`,
/// `IsNaN`, `Max`, `Min`, `Mod`, `RMSNormalization`, `Reshape`, `ReverseSequence`,
/// `RotaryEmbedding`, `Round`, `Scatter`, `ScatterElements`, `ScatterND`, `Shape`, `Shrink`,
/// `Sign`, `Slice`, `SpaceToDepth`, `Split`, `Squeeze`, `TensorScatter`, `Transpose`,
/// `Unsqueeze`. Operators without a float32 node test are converted too.
///
/// On a CPU, a model converted with this list is a float16 *storage* format: weights are
/// stored in float16 (half the size) and Cast back to float32 when the model loads (ONNX
/// Runtime and tract fold those Casts), and compute stays float32 where no float16 kernel
/// exists. For an accelerator with float16 kernels, turn the list off
/// (`--no-default-block-list`).
pub const DEFAULT_FP16_BLOCK_OPS: &[&str] = &[
    "Abs", "Acos", "Acosh", "Add", "AffineGrid", "ArgMax", "ArgMin", "Asin", "Asinh", "Atan",
    "Atanh", "AveragePool", "BatchNormalization", "Bernoulli", "BitCast", "BlackmanWindow",
    "CastLike", "CausalConvWithState", "Ceil", "CenterCropPad", "Col2Im", "Conv", "ConvTranspose",
    "Cos", "Cosh", "DFT", "DeformConv", "DequantizeLinear", "Det", "Div", "DynamicQuantizeLinear",
    "Elu", "Erf", "Exp", "EyeLike", "Floor", "GRU", "Gelu", "Gemm", "GlobalAveragePool",
    "GlobalMaxPool", "Greater", "GreaterOrEqual", "GridSample", "GroupNormalization",
    "HammingWindow", "HannWindow", "HardSigmoid", "HardSwish", "Hardmax", "InstanceNormalization",
    "LRN", "LSTM", "LayerNormalization", "LeakyRelu", "Less", "LessOrEqual", "LinearAttention",
    "Log", "LogSoftmax", "LpNormalization", "LpPool", "MatMul", "MaxPool", "MaxUnpool", "Mean",
    "MeanVarianceNormalization", "MelWeightMatrix", "Mish", "Mul", "Neg",
    "NegativeLogLikelihoodLoss", "NonMaxSuppression", "OneHot", "PRelu", "Pad", "Pow",
    "QLinearConv", "QLinearMatMul", "QuantizeLinear", "RNN", "Range", "Reciprocal", "ReduceL1",
    "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
    "ReduceProd", "ReduceSum", "ReduceSumSquare", "Relu", "Resize", "RoiAlign", "STFT", "Selu",
    "Sigmoid", "Sin", "Sinh", "Size", "Softmax", "SoftmaxCrossEntropyLoss", "Softplus", "Softsign",
    "Sqrt", "Sub", "Sum", "SwiGLU", "Swish", "Tan", "Tanh", "TfIdfVectorizer", "ThresholdedRelu",
    "Tile", "TopK", "Unique", "Upsample", "Where",
];
