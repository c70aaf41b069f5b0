//! The forward pass of a [`TrainGraph`] in candle, with training semantics: BatchNormalization
//! normalizes with batch statistics (and reports new running statistics), Dropout drops.
//! Every op is built from candle primitives whose gradients are right; in particular MaxPool
//! gathers each window position and takes the max, instead of candle's `max_pool2d`, whose
//! backward scales the gradient (DESIGN.md).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, D};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::graph::{Node, Op, TrainGraph};
use super::TrainError;

/// The values a forward pass produced.
pub struct ForwardResult {
    /// Every named value, graph outputs included.
    pub values: HashMap<String, Tensor>,
    /// New running statistics of BatchNormalization nodes (training only).
    pub running: Vec<(String, Tensor)>,
}

fn axis(rank: usize, a: i64) -> Result<usize, TrainError> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    if (0..r).contains(&v) {
        Ok(v as usize)
    } else {
        Err(TrainError::Shape(format!(
            "axis {a} is out of range for rank {rank}"
        )))
    }
}

/// Pads the two spatial axes of an NCHW tensor with `value`.
fn pad_spatial(x: &Tensor, pads: [usize; 4], value: f64) -> Result<Tensor, TrainError> {
    let [top, left, bottom, right] = pads;
    if pads == [0; 4] {
        return Ok(x.clone());
    }
    let (n, c, h, w) = x.dims4()?;
    let fill = |shape: (usize, usize, usize, usize)| -> Result<Tensor, TrainError> {
        Ok((Tensor::ones(shape, x.dtype(), x.device())? * value)?)
    };
    let mut parts = Vec::new();
    if top > 0 {
        parts.push(fill((n, c, top, w))?);
    }
    parts.push(x.clone());
    if bottom > 0 {
        parts.push(fill((n, c, bottom, w))?);
    }
    let x = Tensor::cat(&parts, 2)?;
    let h = h + top + bottom;
    let mut parts = Vec::new();
    if left > 0 {
        parts.push(fill((n, c, h, left))?);
    }
    parts.push(x);
    if right > 0 {
        parts.push(fill((n, c, h, right))?);
    }
    Ok(Tensor::cat(&parts, 3)?)
}

/// Every window position of a pooling, stacked on a new last axis: `[N, C, OH, OW, kh·kw]`.
fn windows(x: &Tensor, kernel: [usize; 2], strides: [usize; 2]) -> Result<Tensor, TrainError> {
    let (_, _, h, w) = x.dims4()?;
    if h < kernel[0] || w < kernel[1] || strides.contains(&0) {
        return Err(TrainError::Shape(format!(
            "pooling window {kernel:?} with strides {strides:?} does not fit {h}×{w}"
        )));
    }
    let oh = (h - kernel[0]) / strides[0] + 1;
    let ow = (w - kernel[1]) / strides[1] + 1;
    let dev = x.device();
    let mut taps = Vec::with_capacity(kernel[0] * kernel[1]);
    for ki in 0..kernel[0] {
        let rows: Vec<u32> = (0..oh).map(|o| (o * strides[0] + ki) as u32).collect();
        let xr = x.index_select(&Tensor::new(rows.as_slice(), dev)?, 2)?;
        for kj in 0..kernel[1] {
            let cols: Vec<u32> = (0..ow).map(|o| (o * strides[1] + kj) as u32).collect();
            taps.push(xr.index_select(&Tensor::new(cols.as_slice(), dev)?, 3)?);
        }
    }
    Ok(Tensor::stack(&taps, 4)?)
}

fn reshape_target(shape: &[i64], input: &[usize]) -> Result<Vec<usize>, TrainError> {
    let total: usize = input.iter().product();
    let mut out: Vec<usize> = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, &d) in shape.iter().enumerate() {
        match d {
            0 => out.push(
                *input
                    .get(i)
                    .ok_or_else(|| TrainError::Shape("Reshape 0 past the input rank".into()))?,
            ),
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            d if d > 0 => out.push(d as usize),
            d => return Err(TrainError::Shape(format!("Reshape dimension {d}"))),
        }
    }
    if let Some(i) = infer {
        let known: usize = out.iter().product();
        if known == 0 || !total.is_multiple_of(known) {
            return Err(TrainError::Shape(format!(
                "cannot reshape {input:?} to {shape:?}"
            )));
        }
        out[i] = total / known;
    }
    Ok(out)
}

struct Env<'a> {
    values: HashMap<String, Tensor>,
    graph: &'a TrainGraph,
    dtype: DType,
    device: &'a Device,
}

impl Env<'_> {
    fn get(&self, node: &Node, i: usize) -> Result<Tensor, TrainError> {
        let name = node
            .inputs
            .get(i)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                TrainError::InvalidModel(format!("node `{}` lacks input {i}", node.name))
            })?;
        if let Some(t) = self.values.get(name) {
            return Ok(t.clone());
        }
        let init = self.graph.initializers.get(name).ok_or_else(|| {
            TrainError::InvalidModel(format!(
                "node `{}` reads `{name}`, which is defined nowhere",
                node.name
            ))
        })?;
        match &init.floats {
            Some(v) => Ok(
                Tensor::from_vec(v.clone(), init.shape.as_slice(), self.device)?
                    .to_dtype(self.dtype)?,
            ),
            None => Err(TrainError::InvalidModel(format!(
                "`{name}` is not a float tensor"
            ))),
        }
    }

    fn ints(&self, node: &Node, i: usize) -> Result<Vec<i64>, TrainError> {
        let name = node.inputs.get(i).cloned().unwrap_or_default();
        self.graph
            .initializers
            .get(&name)
            .and_then(|t| t.ints.clone())
            .ok_or_else(|| {
                TrainError::Unsupported(format!(
                    "node `{}`: input `{name}` must be a constant int64 tensor",
                    node.name
                ))
            })
    }

    fn opt(&self, node: &Node, i: usize) -> Result<Option<Tensor>, TrainError> {
        match node.inputs.get(i) {
            Some(n) if !n.is_empty() => self.get(node, i).map(Some),
            _ => Ok(None),
        }
    }
}

/// Runs the graph on `inputs`. `params` override initializers of the same name (the trainable
/// Vars and the current running statistics).
pub fn forward(
    graph: &TrainGraph,
    params: &HashMap<String, Tensor>,
    inputs: &[(String, Tensor)],
    training: bool,
    rng: &mut ChaCha8Rng,
    dtype: DType,
    device: &Device,
) -> Result<ForwardResult, TrainError> {
    let mut env = Env {
        values: params.clone(),
        graph,
        dtype,
        device,
    };
    for (n, t) in inputs {
        env.values.insert(n.clone(), t.clone());
    }
    let mut running = Vec::new();
    for node in &graph.nodes {
        let out = eval(&env, node, training, rng, &mut running).map_err(|e| e.at(&node.name))?;
        if let Some(name) = node.outputs.first() {
            env.values.insert(name.clone(), out);
        }
    }
    Ok(ForwardResult {
        values: env.values,
        running,
    })
}

fn eval(
    env: &Env,
    node: &Node,
    training: bool,
    rng: &mut ChaCha8Rng,
    running: &mut Vec<(String, Tensor)>,
) -> Result<Tensor, TrainError> {
    let x = || env.get(node, 0);
    let y = || env.get(node, 1);
    Ok(match &node.op {
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => {
            let mut a = x()?;
            let mut b = y()?;
            if *trans_a {
                a = a.t()?;
            }
            if *trans_b {
                b = b.t()?;
            }
            let mut out = (a.matmul(&b)? * *alpha)?;
            if let Some(c) = env.opt(node, 2)? {
                out = out.broadcast_add(&(c * *beta)?)?;
            }
            out
        }
        Op::MatMul => x()?.broadcast_matmul(&y()?)?,
        Op::Add => x()?.broadcast_add(&y()?)?,
        Op::Sub => x()?.broadcast_sub(&y()?)?,
        Op::Mul => x()?.broadcast_mul(&y()?)?,
        Op::Div => x()?.broadcast_div(&y()?)?,
        Op::Relu => x()?.relu()?,
        Op::LeakyRelu { alpha } => {
            let x = x()?;
            // max(x, 0) + alpha · min(x, 0)
            (x.relu()? + (x.neg()?.relu()?.neg()? * *alpha)?)?
        }
        Op::Sigmoid => {
            let x = x()?;
            // 1 / (1 + e^−x), from primitives with exact gradients
            (x.neg()?.exp()? + 1.0)?.recip()?
        }
        Op::Tanh => x()?.tanh()?,
        Op::Softmax { axis: a } => {
            let x = x()?;
            let d = axis(x.rank(), *a)?;
            candle_nn::ops::softmax(&x, d)?
        }
        Op::LogSoftmax { axis: a } => {
            let x = x()?;
            let d = axis(x.rank(), *a)?;
            candle_nn::ops::log_softmax(&x, d)?
        }
        Op::Conv {
            strides,
            pads,
            dilations,
            group,
        } => {
            if strides[0] != strides[1] || dilations[0] != dilations[1] {
                return Err(TrainError::Unsupported(
                    "Conv with different strides or dilations per axis".into(),
                ));
            }
            let x = pad_spatial(&x()?, *pads, 0.0)?;
            let mut out = x.conv2d(&y()?, 0, strides[0], dilations[0], *group)?;
            if let Some(b) = env.opt(node, 2)? {
                let c = b.dims1()?;
                out = out.broadcast_add(&b.reshape((1, c, 1, 1))?)?;
            }
            out
        }
        Op::MaxPool {
            kernel,
            strides,
            pads,
        } => {
            let x = pad_spatial(&x()?, *pads, f64::NEG_INFINITY)?;
            windows(&x, *kernel, *strides)?.max(D::Minus1)?
        }
        Op::AveragePool {
            kernel,
            strides,
            pads,
            count_include_pad,
        } => {
            let x = x()?;
            let sums = windows(&pad_spatial(&x, *pads, 0.0)?, *kernel, *strides)?.sum(D::Minus1)?;
            if *count_include_pad || *pads == [0; 4] {
                (sums / (kernel[0] * kernel[1]) as f64)?
            } else {
                let ones = Tensor::ones(x.shape(), x.dtype(), x.device())?;
                let counts =
                    windows(&pad_spatial(&ones, *pads, 0.0)?, *kernel, *strides)?.sum(D::Minus1)?;
                (sums / counts)?
            }
        }
        Op::GlobalAveragePool => x()?.mean_keepdim(3)?.mean_keepdim(2)?,
        Op::BatchNormalization { epsilon, momentum } => {
            let x = x()?;
            let c = x.dim(1)?;
            let mut stat_shape = vec![1usize; x.rank()];
            stat_shape[1] = c;
            let scale = env.get(node, 1)?.reshape(stat_shape.as_slice())?;
            let bias = env.get(node, 2)?.reshape(stat_shape.as_slice())?;
            let (mean, var) = if training {
                // Statistics over every axis but the channel.
                let mut m = x.clone();
                let mut dims: Vec<usize> = (0..x.rank()).filter(|&d| d != 1).collect();
                dims.reverse();
                for &d in &dims {
                    m = m.mean_keepdim(d)?;
                }
                let mut v = x.broadcast_sub(&m)?.sqr()?;
                for &d in &dims {
                    v = v.mean_keepdim(d)?;
                }
                for (i, stat) in [(3, &m), (4, &v)] {
                    if let Some(name) = node.inputs.get(i) {
                        let old = env.get(node, i)?;
                        let new = ((old * *momentum)?
                            + (stat.detach().flatten_all()? * (1.0 - momentum))?)?;
                        running.push((name.clone(), new));
                    }
                }
                (m, v)
            } else {
                (
                    env.get(node, 3)?.reshape(stat_shape.as_slice())?,
                    env.get(node, 4)?.reshape(stat_shape.as_slice())?,
                )
            };
            let norm = x
                .broadcast_sub(&mean)?
                .broadcast_div(&(var + *epsilon)?.sqrt()?)?;
            norm.broadcast_mul(&scale)?.broadcast_add(&bias)?
        }
        Op::Dropout { ratio } => {
            let x = x()?;
            if !training || *ratio <= 0.0 {
                x
            } else {
                let keep = 1.0 - ratio;
                let mask: Vec<f64> = (0..x.elem_count())
                    .map(|_| {
                        if rng.random::<f64>() < keep {
                            1.0 / keep
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
                (x * mask)?
            }
        }
        Op::Flatten { axis: a } => {
            let x = x()?;
            let d = if *a == x.rank() as i64 {
                x.rank()
            } else {
                axis(x.rank(), *a)?
            };
            let outer: usize = x.dims()[..d].iter().product();
            let inner: usize = x.dims()[d..].iter().product();
            x.reshape((outer, inner))?
        }
        Op::Reshape => {
            let x = x()?;
            let target = reshape_target(&env.ints(node, 1)?, x.dims())?;
            x.reshape(target)?
        }
        Op::Concat { axis: a } => {
            let parts: Vec<Tensor> = (0..node.inputs.len())
                .map(|i| env.get(node, i))
                .collect::<Result<_, _>>()?;
            let d = axis(parts[0].rank(), *a)?;
            Tensor::cat(&parts, d)?
        }
        Op::Transpose { perm } => {
            let x = x()?;
            let perm = perm
                .clone()
                .unwrap_or_else(|| (0..x.rank()).rev().collect());
            x.permute(perm)?
        }
        Op::Identity => x()?,
        Op::Constant => {
            let name = node.outputs.first().cloned().unwrap_or_default();
            let init = &env.graph.initializers[&name];
            match &init.floats {
                Some(v) => Tensor::from_vec(v.clone(), init.shape.as_slice(), env.device)?
                    .to_dtype(env.dtype)?,
                // Integer constants are read by the nodes that need them (Reshape).
                None => Tensor::zeros(1, env.dtype, env.device)?,
            }
        }
    })
}
