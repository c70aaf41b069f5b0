//! An ONNX graph read for training: its operators with parsed attributes, its initializers,
//! and which of them are trainable. Operators outside the supported set are refused up front.

use std::collections::{HashMap, HashSet};

use inference::onnx::{self, proto as pb};
use inference::{ElementType, Tensor};

use super::TrainError;

/// A supported operator with its attributes (named as in the ONNX operator spec).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `alpha · A' · B' + beta · C`.
    Gemm {
        /// Scale of the product.
        alpha: f64,
        /// Scale of C.
        beta: f64,
        /// Transpose A.
        trans_a: bool,
        /// Transpose B.
        trans_b: bool,
    },
    /// Matrix product with broadcasting.
    MatMul,
    /// Elementwise with broadcasting.
    Add,
    /// Elementwise with broadcasting.
    Sub,
    /// Elementwise with broadcasting.
    Mul,
    /// Elementwise with broadcasting.
    Div,
    /// max(x, 0).
    Relu,
    /// x if x ≥ 0 else alpha · x.
    LeakyRelu {
        /// Negative slope.
        alpha: f64,
    },
    /// 1 / (1 + e^−x).
    Sigmoid,
    /// tanh.
    Tanh,
    /// Softmax along an axis.
    Softmax {
        /// The axis.
        axis: i64,
    },
    /// Log-softmax along an axis.
    LogSoftmax {
        /// The axis.
        axis: i64,
    },
    /// 2-D convolution.
    Conv {
        /// Strides (H, W).
        strides: [usize; 2],
        /// Pads (top, left, bottom, right).
        pads: [usize; 4],
        /// Dilations (H, W).
        dilations: [usize; 2],
        /// Groups.
        group: usize,
    },
    /// 2-D max pooling.
    MaxPool {
        /// Window (H, W).
        kernel: [usize; 2],
        /// Strides (H, W).
        strides: [usize; 2],
        /// Pads (top, left, bottom, right).
        pads: [usize; 4],
    },
    /// 2-D average pooling.
    AveragePool {
        /// Window (H, W).
        kernel: [usize; 2],
        /// Strides (H, W).
        strides: [usize; 2],
        /// Pads (top, left, bottom, right).
        pads: [usize; 4],
        /// Whether padded cells count in the mean.
        count_include_pad: bool,
    },
    /// Mean over all spatial positions.
    GlobalAveragePool,
    /// Batch normalization: batch statistics in training, running statistics in evaluation.
    BatchNormalization {
        /// Added to the variance.
        epsilon: f64,
        /// Weight of the old running statistics.
        momentum: f64,
    },
    /// Dropout: active in training.
    Dropout {
        /// Probability of dropping.
        ratio: f64,
    },
    /// To 2-D at an axis.
    Flatten {
        /// The axis.
        axis: i64,
    },
    /// To a shape given by a constant int64 tensor.
    Reshape,
    /// Join along an axis.
    Concat {
        /// The axis.
        axis: i64,
    },
    /// Permute axes.
    Transpose {
        /// The permutation; reversed axes when absent.
        perm: Option<Vec<usize>>,
    },
    /// Pass-through.
    Identity,
    /// A constant tensor (its value is stored as an initializer).
    Constant,
}

/// The operator names the trainer supports.
pub const SUPPORTED_OPS: &[&str] = &[
    "Gemm",
    "MatMul",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "LogSoftmax",
    "Conv",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "BatchNormalization",
    "Dropout",
    "Flatten",
    "Reshape",
    "Concat",
    "Transpose",
    "Identity",
    "Constant",
];

/// A node: an operator, its input names (empty for omitted optional inputs) and outputs.
#[derive(Debug, Clone)]
pub struct Node {
    /// The node name (or its index when unnamed).
    pub name: String,
    /// The operator.
    pub op: Op,
    /// Input names.
    pub inputs: Vec<String>,
    /// Output names.
    pub outputs: Vec<String>,
}

/// A constant tensor of the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Initializer {
    /// Its name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Float values, for float tensors.
    pub floats: Option<Vec<f64>>,
    /// Integer values, for int64/int32 tensors.
    pub ints: Option<Vec<i64>>,
}

/// The graph as the trainer runs it.
#[derive(Debug, Clone)]
pub struct TrainGraph {
    /// The decoded model, kept to write the trained weights back.
    pub proto: pb::ModelProto,
    /// Nodes in topological order.
    pub nodes: Vec<Node>,
    /// Constants by name.
    pub initializers: HashMap<String, Initializer>,
    /// Float initializers that gradients update, in graph order.
    pub trainable: Vec<String>,
    /// BatchNormalization running statistics, updated in training without gradients.
    pub running_stats: HashSet<String>,
    /// The graph inputs to feed (initializers excluded).
    pub inputs: Vec<String>,
    /// The graph outputs.
    pub outputs: Vec<String>,
}

fn int(node: &pb::NodeProto, name: &str, default: i64) -> Result<i64, TrainError> {
    Ok(onnx::attr_int(node, name)?.unwrap_or(default))
}

fn float(node: &pb::NodeProto, name: &str, default: f64) -> Result<f64, TrainError> {
    Ok(onnx::attr_float(node, name)?.map_or(default, f64::from))
}

fn ints(node: &pb::NodeProto, name: &str) -> Result<Option<Vec<i64>>, TrainError> {
    Ok(onnx::attr_ints(node, name)?.map(<[i64]>::to_vec))
}

fn pair(node: &pb::NodeProto, name: &str, default: usize) -> Result<[usize; 2], TrainError> {
    match ints(node, name)? {
        None => Ok([default; 2]),
        Some(v) if v.len() == 2 && v.iter().all(|&x| x >= 0) => Ok([v[0] as usize, v[1] as usize]),
        Some(v) => Err(TrainError::Unsupported(format!(
            "node `{}` ({}): attribute {name} = {v:?} is not two non-negative values (only 2-D is supported)",
            node.name, node.op_type
        ))),
    }
}

fn pads(node: &pb::NodeProto) -> Result<[usize; 4], TrainError> {
    if let Some(mode) = onnx::attr_string(node, "auto_pad")? {
        if !mode.is_empty() && mode != "NOTSET" && mode != "VALID" {
            return Err(TrainError::Unsupported(format!(
                "node `{}` ({}): auto_pad = {mode} is not supported; give explicit pads",
                node.name, node.op_type
            )));
        }
    }
    match ints(node, "pads")? {
        None => Ok([0; 4]),
        Some(v) if v.len() == 4 && v.iter().all(|&x| x >= 0) => {
            Ok([v[0] as usize, v[1] as usize, v[2] as usize, v[3] as usize])
        }
        Some(v) => Err(TrainError::Unsupported(format!(
            "node `{}` ({}): pads = {v:?} is not four non-negative values",
            node.name, node.op_type
        ))),
    }
}

fn parse_op(node: &pb::NodeProto) -> Result<Op, TrainError> {
    if !onnx::is_default_domain(&node.domain) {
        return Err(TrainError::UnsupportedOp {
            node: node.name.clone(),
            op: format!("{}.{}", node.domain, node.op_type),
        });
    }
    Ok(match node.op_type.as_str() {
        "Gemm" => Op::Gemm {
            alpha: float(node, "alpha", 1.0)?,
            beta: float(node, "beta", 1.0)?,
            trans_a: int(node, "transA", 0)? != 0,
            trans_b: int(node, "transB", 0)? != 0,
        },
        "MatMul" => Op::MatMul,
        "Add" => Op::Add,
        "Sub" => Op::Sub,
        "Mul" => Op::Mul,
        "Div" => Op::Div,
        "Relu" => Op::Relu,
        "LeakyRelu" => Op::LeakyRelu {
            alpha: float(node, "alpha", 0.01)?,
        },
        "Sigmoid" => Op::Sigmoid,
        "Tanh" => Op::Tanh,
        "Softmax" => Op::Softmax {
            axis: int(node, "axis", -1)?,
        },
        "LogSoftmax" => Op::LogSoftmax {
            axis: int(node, "axis", -1)?,
        },
        "Conv" => Op::Conv {
            strides: pair(node, "strides", 1)?,
            pads: pads(node)?,
            dilations: pair(node, "dilations", 1)?,
            group: int(node, "group", 1)?.max(1) as usize,
        },
        "MaxPool" => {
            if int(node, "ceil_mode", 0)? != 0
                || node.output.iter().filter(|o| !o.is_empty()).count() > 1
            {
                return Err(TrainError::Unsupported(format!(
                    "node `{}` (MaxPool): ceil_mode and the Indices output are not supported",
                    node.name
                )));
            }
            let kernel = pair(node, "kernel_shape", 1)?;
            Op::MaxPool {
                kernel,
                strides: pair(node, "strides", 1)?,
                pads: pads(node)?,
            }
        }
        "AveragePool" => Op::AveragePool {
            kernel: pair(node, "kernel_shape", 1)?,
            strides: pair(node, "strides", 1)?,
            pads: pads(node)?,
            count_include_pad: int(node, "count_include_pad", 0)? != 0,
        },
        "GlobalAveragePool" => Op::GlobalAveragePool,
        "BatchNormalization" => Op::BatchNormalization {
            epsilon: float(node, "epsilon", 1e-5)?,
            momentum: float(node, "momentum", 0.9)?,
        },
        "Dropout" => Op::Dropout {
            ratio: float(node, "ratio", 0.5)?,
        },
        "Flatten" => Op::Flatten {
            axis: int(node, "axis", 1)?,
        },
        "Reshape" => Op::Reshape,
        "Concat" => Op::Concat {
            axis: int(node, "axis", 0)?,
        },
        "Transpose" => Op::Transpose {
            perm: ints(node, "perm")?.map(|p| p.into_iter().map(|x| x as usize).collect()),
        },
        "Identity" => Op::Identity,
        "Constant" => Op::Constant,
        other => {
            return Err(TrainError::UnsupportedOp {
                node: node.name.clone(),
                op: other.to_owned(),
            })
        }
    })
}

/// Reads a constant tensor: float32/float64 as floats, int32/int64 as integers; other element
/// types keep only their shape (the trainer never reads their values).
pub fn read_tensor(t: &pb::TensorProto) -> Result<Initializer, TrainError> {
    let shape = onnx::tensor_shape(t)?;
    let (floats, ints) = match onnx::element_type(t) {
        Some(ElementType::F32 | ElementType::F64 | ElementType::I32 | ElementType::I64) => {
            match onnx::tensor_from_proto(t)? {
                Tensor::F32(a) => (Some(a.iter().map(|&x| f64::from(x)).collect()), None),
                Tensor::F64(a) => (Some(a.iter().copied().collect()), None),
                Tensor::I32(a) => (None, Some(a.iter().map(|&x| i64::from(x)).collect())),
                Tensor::I64(a) => (None, Some(a.iter().copied().collect())),
                _ => (None, None),
            }
        }
        _ => (None, None),
    };
    Ok(Initializer {
        name: t.name.clone(),
        shape,
        floats,
        ints,
    })
}

impl TrainGraph {
    /// Decodes and checks a model for training.
    pub fn parse(onnx: &[u8]) -> Result<Self, TrainError> {
        let proto = onnx::decode_model(onnx)?;
        let graph = onnx::graph(&proto)?;
        let mut initializers = HashMap::new();
        let mut trainable = Vec::new();
        for t in &graph.initializer {
            let init = read_tensor(t)?;
            if init.floats.is_some() {
                trainable.push(init.name.clone());
            }
            initializers.insert(init.name.clone(), init);
        }
        let mut nodes = Vec::new();
        let mut running_stats = HashSet::new();
        for (i, n) in graph.node.iter().enumerate() {
            let op = parse_op(n)?;
            if op == Op::Constant {
                let value = onnx::attr_tensor(n, "value")?.ok_or_else(|| {
                    TrainError::Unsupported(format!(
                        "Constant node `{}` has no tensor `value`",
                        n.name
                    ))
                })?;
                let mut init = read_tensor(value)?;
                init.name = n.output.first().cloned().unwrap_or_default();
                initializers.insert(init.name.clone(), init);
            }
            if let Op::BatchNormalization { .. } = op {
                running_stats.extend(n.input.iter().skip(3).take(2).cloned());
            }
            nodes.push(Node {
                name: if n.name.is_empty() {
                    format!("#{i}")
                } else {
                    n.name.clone()
                },
                op,
                inputs: n.input.clone(),
                outputs: n.output.clone(),
            });
        }
        // Running statistics and shape constants are not trained.
        let shape_inputs: HashSet<&String> = nodes
            .iter()
            .filter(|n| n.op == Op::Reshape)
            .filter_map(|n| n.inputs.get(1))
            .collect();
        trainable.retain(|name| !running_stats.contains(name) && !shape_inputs.contains(name));
        if trainable.is_empty() {
            return Err(TrainError::NothingToTrain);
        }
        let inputs = graph
            .input
            .iter()
            .map(|v| v.name.clone())
            .filter(|n| !initializers.contains_key(n))
            .collect();
        let outputs = graph.output.iter().map(|v| v.name.clone()).collect();
        Ok(Self {
            proto,
            nodes,
            initializers,
            trainable,
            running_stats,
            inputs,
            outputs,
        })
    }

    /// The ONNX bytes with these values written into the named float32 initializers (as
    /// `raw_data`); everything else is unchanged.
    pub fn export(&self, values: &HashMap<String, Vec<f32>>) -> Result<Vec<u8>, TrainError> {
        let mut proto = self.proto.clone();
        for t in &mut onnx::graph_mut(&mut proto)?.initializer {
            let Some(v) = values.get(&t.name) else {
                continue;
            };
            if onnx::element_type(t) == Some(ElementType::F32) {
                let shape = onnx::tensor_shape(t)?;
                let tensor = Tensor::from_shape_vec(&shape, v.clone())
                    .map_err(|e| TrainError::Shape(format!("initializer `{}`: {e}", t.name)))?;
                onnx::set_tensor_data(t, &tensor, onnx::DataLayout::Raw);
            }
        }
        Ok(onnx::encode_model(&proto))
    }
}
