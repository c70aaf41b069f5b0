//! Local training of ONNX models: the graph is lowered to candle ops with training semantics,
//! trained with SGD or Adam on cross-entropy or MSE (optionally with FedProx's proximal term),
//! evaluated, and written back into the same ONNX graph, identical but for initializer data,
//! so `inference` serves the result unchanged.

mod forward;
mod graph;
mod optim;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use forward::{forward, ForwardResult};
pub use graph::{Op, TrainGraph, SUPPORTED_OPS};
pub use optim::{Optimizer, OptimizerConfig};

use crate::data::Dataset;
use crate::params::{ParamTensor, Parameters};

/// Why training cannot start or go on.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The bytes are not a usable ONNX model.
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// The ONNX protobuf is malformed: not a model, no graph, or a tensor or attribute that
    /// cannot be read.
    #[error("invalid model: {0}")]
    Format(#[from] inference::onnx::FormatError),
    /// An operator the trainer does not support.
    #[error("node `{node}` uses operator `{op}`, which the trainer does not support (supported: {})", SUPPORTED_OPS.join(", "))]
    UnsupportedOp {
        /// Node name.
        node: String,
        /// Operator.
        op: String,
    },
    /// A supported operator used in an unsupported way.
    #[error("{0}")]
    Unsupported(String),
    /// The model has no float initializers.
    #[error("the model has no float initializers to train")]
    NothingToTrain,
    /// Shapes do not fit.
    #[error("shape error: {0}")]
    Shape(String),
    /// A bad training configuration.
    #[error("invalid training config: {0}")]
    Config(String),
    /// Parameters do not fit the model.
    #[error(transparent)]
    Params(#[from] crate::params::ParamError),
    /// candle failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// A failure inside a named node.
    #[error("in node `{node}`: {source}")]
    AtNode {
        /// Node name.
        node: String,
        /// What failed.
        #[source]
        source: Box<TrainError>,
    },
}

impl TrainError {
    fn at(self, node: &str) -> Self {
        match self {
            e @ (TrainError::AtNode { .. } | TrainError::UnsupportedOp { .. }) => e,
            other => TrainError::AtNode {
                node: node.to_owned(),
                source: Box::new(other),
            },
        }
    }
}

/// The loss minimized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Softmax cross-entropy of the output (logits) against integer labels.
    #[default]
    CrossEntropy,
    /// Mean squared error of the output against one-hot labels.
    Mse,
}

/// How a client trains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// The loss.
    pub loss: Loss,
    /// Passes over the local data.
    pub epochs: usize,
    /// Stop after this many steps, if set (before the epochs are done).
    pub max_steps: Option<usize>,
    /// Examples per step.
    pub batch_size: usize,
    /// FedProx μ: adds μ/2·‖w − w_global‖² to the loss.
    pub proximal_mu: f64,
    /// Seed of shuffling and dropout.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            optimizer: OptimizerConfig::Sgd {
                lr: 0.05,
                momentum: 0.9,
                weight_decay: 0.0,
            },
            loss: Loss::CrossEntropy,
            epochs: 1,
            max_steps: None,
            batch_size: 32,
            proximal_mu: 0.0,
            seed: 0,
        }
    }
}

/// What a training run did.
#[derive(Debug, Clone, PartialEq)]
pub struct FitReport {
    /// Mean training loss over the steps.
    pub loss: f64,
    /// Steps taken.
    pub steps: usize,
    /// Examples seen (with repeats across epochs).
    pub examples: usize,
}

/// Loss and accuracy on a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// Mean loss.
    pub loss: f64,
    /// Fraction of examples whose argmax is the label.
    pub accuracy: f64,
    /// Examples evaluated.
    pub examples: usize,
}

/// A model being trained: its graph, its trainable Vars and running statistics.
pub struct Trainer {
    graph: TrainGraph,
    vars: Vec<(String, Var)>,
    running: HashMap<String, Tensor>,
    input: String,
    input_shape: Option<Vec<usize>>,
    output: String,
    dtype: DType,
    device: Device,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("trainable", &self.graph.trainable)
            .field("input", &self.input)
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

impl Trainer {
    /// Reads an ONNX model for training in `f32` on the CPU; refuses unsupported operators
    /// (naming them) and models without float initializers.
    pub fn new(onnx: &[u8]) -> Result<Self, TrainError> {
        Self::with_dtype(onnx, DType::F32)
    }

    /// As [`Trainer::new`] in a chosen precision (`F64` for gradient checks).
    pub fn with_dtype(onnx: &[u8], dtype: DType) -> Result<Self, TrainError> {
        let graph = TrainGraph::parse(onnx)?;
        let device = Device::Cpu;
        let [input] = graph.inputs.as_slice() else {
            return Err(TrainError::Unsupported(format!(
                "training feeds exactly one input; the model has {:?}",
                graph.inputs
            )));
        };
        let output = ["logits"]
            .iter()
            .find(|n| graph.outputs.iter().any(|o| o == *n))
            .map(|n| (*n).to_owned())
            .or_else(|| graph.outputs.first().cloned())
            .ok_or_else(|| TrainError::InvalidModel("the graph has no outputs".to_owned()))?;
        let input_shape = declared_example_shape(&graph, input);
        let mut vars = Vec::new();
        for name in &graph.trainable {
            let init = &graph.initializers[name];
            let data = init.floats.clone().expect("trainable tensors are float");
            let t = Tensor::from_vec(data, init.shape.as_slice(), &device)?.to_dtype(dtype)?;
            vars.push((name.clone(), Var::from_tensor(&t)?));
        }
        let mut running = HashMap::new();
        for name in &graph.running_stats {
            if let Some(init) = graph.initializers.get(name) {
                let data = init.floats.clone().unwrap_or_default();
                running.insert(
                    name.clone(),
                    Tensor::from_vec(data, init.shape.as_slice(), &device)?.to_dtype(dtype)?,
                );
            }
        }
        Ok(Self {
            input: input.clone(),
            graph,
            vars,
            running,
            input_shape,
            output,
            dtype,
            device,
        })
    }

    /// The graph being trained.
    pub fn graph(&self) -> &TrainGraph {
        &self.graph
    }

    /// The trainable parameters, by initializer name, in graph order.
    pub fn parameters(&self) -> Result<Parameters, TrainError> {
        let tensors = self
            .vars
            .iter()
            .map(|(name, var)| {
                let t = var.as_tensor();
                Ok(ParamTensor {
                    name: name.clone(),
                    shape: t.dims().to_vec(),
                    data: t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?,
                })
            })
            .collect::<Result<Vec<_>, TrainError>>()?;
        Ok(Parameters::new(tensors)?)
    }

    /// Loads parameters (e.g. the global model of a round).
    pub fn set_parameters(&mut self, params: &Parameters) -> Result<(), TrainError> {
        self.parameters()?.check_compatible(params)?;
        for ((_, var), t) in self.vars.iter().zip(params.tensors()) {
            let new = Tensor::from_vec(t.data.clone(), t.shape.as_slice(), &self.device)?
                .to_dtype(self.dtype)?;
            var.set(&new)?;
        }
        Ok(())
    }

    fn batch_input(&self, data: &Dataset, idx: &[usize]) -> Result<Tensor, TrainError> {
        let sub = data.subset(idx);
        let mut shape = vec![idx.len()];
        match &self.input_shape {
            Some(s) if s.iter().product::<usize>() == data.row_len() => shape.extend(s),
            _ => shape.extend(&data.feature_shape),
        }
        Ok(Tensor::from_vec(sub.x, shape, &self.device)?.to_dtype(self.dtype)?)
    }

    fn params_map(&self) -> HashMap<String, Tensor> {
        let mut m: HashMap<String, Tensor> = self.running.clone();
        for (n, v) in &self.vars {
            m.insert(n.clone(), v.as_tensor().clone());
        }
        m
    }

    /// The model's output for `x` (evaluation semantics unless `training`).
    pub fn predict(
        &self,
        x: &Tensor,
        training: bool,
        rng: &mut ChaCha8Rng,
    ) -> Result<Tensor, TrainError> {
        let result = forward(
            &self.graph,
            &self.params_map(),
            &[(self.input.clone(), x.clone())],
            training,
            rng,
            self.dtype,
            &self.device,
        )?;
        result.values.get(&self.output).cloned().ok_or_else(|| {
            TrainError::InvalidModel(format!("output `{}` was not computed", self.output))
        })
    }

    fn loss(&self, out: &Tensor, labels: &[i64], loss: Loss) -> Result<Tensor, TrainError> {
        let classes = out.dim(1)?;
        if labels.iter().any(|&l| l < 0 || l as usize >= classes) {
            return Err(TrainError::Shape(format!(
                "a label is outside 0..{classes}"
            )));
        }
        Ok(match loss {
            Loss::CrossEntropy => {
                let targets: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
                let targets = Tensor::new(targets.as_slice(), &self.device)?;
                candle_nn::loss::cross_entropy(out, &targets)?
            }
            Loss::Mse => {
                let mut onehot = vec![0f64; labels.len() * classes];
                for (i, &l) in labels.iter().enumerate() {
                    onehot[i * classes + l as usize] = 1.0;
                }
                let t = Tensor::from_vec(onehot, (labels.len(), classes), &self.device)?
                    .to_dtype(self.dtype)?;
                (out - t)?.sqr()?.mean_all()?
            }
        })
    }

    /// Trains on `data`. With `config.proximal_mu > 0`, `global` is the anchor of FedProx's
    /// proximal term (the round's starting parameters when `None`).
    pub fn fit(
        &mut self,
        data: &Dataset,
        config: &TrainConfig,
        global: Option<&Parameters>,
    ) -> Result<FitReport, TrainError> {
        if config.batch_size == 0 {
            return Err(TrainError::Config(
                "batch_size must be at least 1".to_owned(),
            ));
        }
        if data.is_empty() {
            return Err(TrainError::Config("no training examples".to_owned()));
        }
        let anchor: Vec<Tensor> = if config.proximal_mu > 0.0 {
            let g = match global {
                Some(g) => g.clone(),
                None => self.parameters()?,
            };
            self.parameters()?.check_compatible(&g)?;
            g.tensors()
                .iter()
                .map(|t| {
                    Ok(
                        Tensor::from_vec(t.data.clone(), t.shape.as_slice(), &self.device)?
                            .to_dtype(self.dtype)?,
                    )
                })
                .collect::<Result<_, TrainError>>()?
        } else {
            Vec::new()
        };
        let mut optimizer = Optimizer::new(config.optimizer.clone(), self.vars.len())?;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut order: Vec<usize> = (0..data.len()).collect();
        let (mut steps, mut examples, mut loss_sum) = (0usize, 0usize, 0f64);
        'epochs: for _ in 0..config.epochs.max(1) {
            order.shuffle(&mut rng);
            for idx in order.chunks(config.batch_size) {
                if config.max_steps.is_some_and(|m| steps >= m) {
                    break 'epochs;
                }
                let x = self.batch_input(data, idx)?;
                let labels: Vec<i64> = idx.iter().map(|&i| data.y[i]).collect();
                let result = forward(
                    &self.graph,
                    &self.params_map(),
                    &[(self.input.clone(), x)],
                    true,
                    &mut rng,
                    self.dtype,
                    &self.device,
                )?;
                let out = result.values.get(&self.output).cloned().ok_or_else(|| {
                    TrainError::InvalidModel(format!("output `{}` was not computed", self.output))
                })?;
                let mut loss = self.loss(&out, &labels, config.loss)?;
                loss_sum += loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                if !anchor.is_empty() {
                    let mut prox = Tensor::zeros((), self.dtype, &self.device)?;
                    for ((_, var), a) in self.vars.iter().zip(&anchor) {
                        prox = (prox + (var.as_tensor() - a)?.sqr()?.sum_all()?)?;
                    }
                    loss = (loss + (prox * (config.proximal_mu / 2.0))?)?;
                }
                let grads = loss.backward()?;
                let g: Vec<Option<Tensor>> = self
                    .vars
                    .iter()
                    .map(|(_, v)| grads.get(v.as_tensor()).cloned())
                    .collect();
                let vars: Vec<Var> = self.vars.iter().map(|(_, v)| v.clone()).collect();
                optimizer.step(&vars, &g)?;
                for (name, t) in result.running {
                    self.running.insert(name, t);
                }
                steps += 1;
                examples += idx.len();
            }
        }
        Ok(FitReport {
            loss: if steps == 0 {
                0.0
            } else {
                loss_sum / steps as f64
            },
            steps,
            examples,
        })
    }

    /// Mean loss and accuracy on `data`, in evaluation mode.
    pub fn evaluate(
        &self,
        data: &Dataset,
        batch_size: usize,
        loss: Loss,
    ) -> Result<EvalReport, TrainError> {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let idx: Vec<usize> = (0..data.len()).collect();
        let (mut total, mut correct) = (0f64, 0usize);
        for chunk in idx.chunks(batch_size.max(1)) {
            let out = self.predict(&self.batch_input(data, chunk)?, false, &mut rng)?;
            let labels: Vec<i64> = chunk.iter().map(|&i| data.y[i]).collect();
            total += self
                .loss(&out, &labels, loss)?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?
                * chunk.len() as f64;
            let pred = out.argmax(1)?.to_vec1::<u32>()?;
            correct += pred
                .iter()
                .zip(&labels)
                .filter(|(p, l)| **p as i64 == **l)
                .count();
        }
        let n = data.len().max(1) as f64;
        Ok(EvalReport {
            loss: total / n,
            accuracy: correct as f64 / n,
            examples: data.len(),
        })
    }

    /// The ONNX model with the trained weights (and running statistics) written back.
    pub fn export_onnx(&self) -> Result<Vec<u8>, TrainError> {
        let mut values = HashMap::new();
        for (name, var) in &self.vars {
            values.insert(
                name.clone(),
                var.as_tensor()
                    .flatten_all()?
                    .to_dtype(DType::F32)?
                    .to_vec1::<f32>()?,
            );
        }
        for (name, t) in &self.running {
            values.insert(
                name.clone(),
                t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?,
            );
        }
        self.graph.export(&values)
    }

    /// Replaces every trainable tensor with a fresh random one, seeded: He-normal
    /// (`N(0, 2 / fan_in)`) for tensors of rank 2 or more, where `fan_in` is the product of all
    /// but the first axis for conv kernels and the first axis for `[in, out]` matrices fed to
    /// Gemm/MatMul as B; zeros for biases (rank 1 or 0). BatchNormalization scales are left as
    /// they are.
    pub fn reinitialize(&mut self, seed: u64) -> Result<(), TrainError> {
        use rand_distr::{Distribution, Normal};
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for (name, var) in &self.vars {
            let dims = var.as_tensor().dims().to_vec();
            let n: usize = dims.iter().product();
            let transposed = self.graph.nodes.iter().any(|node| {
                matches!(node.op, Op::Gemm { trans_b: true, .. })
                    && node.inputs.get(1) == Some(name)
            });
            let fan_in = match dims.len() {
                0 | 1 => {
                    let bn_scale = self.graph.nodes.iter().any(|node| {
                        matches!(node.op, Op::BatchNormalization { .. })
                            && node.inputs.get(1) == Some(name)
                    });
                    if !bn_scale {
                        var.set(&var.as_tensor().zeros_like()?)?;
                    }
                    continue;
                }
                2 if !transposed => dims[0],
                _ => dims[1..].iter().product(),
            };
            let normal = Normal::new(0.0, (2.0 / fan_in.max(1) as f64).sqrt())
                .map_err(|e| TrainError::Config(e.to_string()))?;
            let data: Vec<f64> = (0..n).map(|_| normal.sample(&mut rng)).collect();
            var.set(&Tensor::from_vec(data, dims.as_slice(), &self.device)?.to_dtype(self.dtype)?)?;
        }
        Ok(())
    }

    /// The trainable Vars, for gradient checks.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// The name of the input fed.
    pub fn input_name(&self) -> &str {
        &self.input
    }
}

/// The declared input shape without its batch axis, when every other dimension is fixed.
fn declared_example_shape(graph: &TrainGraph, input: &str) -> Option<Vec<usize>> {
    let g = inference::onnx::graph(&graph.proto).ok()?;
    let vi = g.input.iter().find(|v| v.name == input)?;
    let dims = inference::onnx::declared_tensor(vi)?.shape?;
    dims.iter()
        .skip(1)
        .map(|d| match d {
            inference::Dim::Fixed(v) if *v > 0 => Some(*v),
            _ => None,
        })
        .collect()
}
