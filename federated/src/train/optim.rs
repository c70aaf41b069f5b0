//! Optimizers over candle `Var`s: SGD with momentum and weight decay, and Adam.

use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use super::TrainError;

/// Which optimizer a client runs, with its hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// `v ← μ v + g + λ w`, `w ← w − η v`.
    Sgd {
        /// Learning rate η.
        lr: f64,
        /// Momentum μ.
        #[serde(default)]
        momentum: f64,
        /// Weight decay λ.
        #[serde(default)]
        weight_decay: f64,
    },
    /// Adam (Kingma & Ba) with bias correction; weight decay added to the gradient.
    Adam {
        /// Learning rate.
        lr: f64,
        /// β₁.
        #[serde(default = "beta1")]
        beta1: f64,
        /// β₂.
        #[serde(default = "beta2")]
        beta2: f64,
        /// ε.
        #[serde(default = "eps")]
        eps: f64,
        /// Weight decay λ.
        #[serde(default)]
        weight_decay: f64,
    },
}

fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.999
}
fn eps() -> f64 {
    1e-8
}

/// Optimizer state for a list of Vars.
pub struct Optimizer {
    config: OptimizerConfig,
    first: Vec<Option<Tensor>>,
    second: Vec<Option<Tensor>>,
    step: i32,
}

impl Optimizer {
    /// Fresh state for `n` Vars.
    pub fn new(config: OptimizerConfig, n: usize) -> Result<Self, TrainError> {
        let lr = match &config {
            OptimizerConfig::Sgd { lr, .. } | OptimizerConfig::Adam { lr, .. } => *lr,
        };
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(TrainError::Config(format!(
                "learning rate {lr} must be > 0"
            )));
        }
        Ok(Self {
            config,
            first: vec![None; n],
            second: vec![None; n],
            step: 0,
        })
    }

    /// Applies one step; `grads[i]` is the gradient of `vars[i]` (None when it got none).
    pub fn step(&mut self, vars: &[Var], grads: &[Option<Tensor>]) -> Result<(), TrainError> {
        self.step += 1;
        for (i, (var, grad)) in vars.iter().zip(grads).enumerate() {
            let Some(g) = grad else { continue };
            let w = var.as_tensor();
            match self.config {
                OptimizerConfig::Sgd {
                    lr,
                    momentum,
                    weight_decay,
                } => {
                    let g = if weight_decay > 0.0 {
                        (g + (w * weight_decay)?)?
                    } else {
                        g.clone()
                    };
                    let v = match (&self.first[i], momentum > 0.0) {
                        (Some(v), true) => ((v * momentum)? + &g)?,
                        _ => g,
                    };
                    var.set(&(w - (&v * lr)?)?)?;
                    self.first[i] = Some(v);
                }
                OptimizerConfig::Adam {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => {
                    let g = if weight_decay > 0.0 {
                        (g + (w * weight_decay)?)?
                    } else {
                        g.clone()
                    };
                    let m = match &self.first[i] {
                        Some(m) => ((m * beta1)? + (&g * (1.0 - beta1))?)?,
                        None => (&g * (1.0 - beta1))?,
                    };
                    let v = match &self.second[i] {
                        Some(v) => ((v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?,
                        None => (g.sqr()? * (1.0 - beta2))?,
                    };
                    let m_hat = (&m / (1.0 - beta1.powi(self.step)))?;
                    let v_hat = (&v / (1.0 - beta2.powi(self.step)))?;
                    let update = (m_hat / (v_hat.sqrt()? + eps)?)?;
                    var.set(&(w - (update * lr)?)?)?;
                    self.first[i] = Some(m);
                    self.second[i] = Some(v);
                }
            }
        }
        Ok(())
    }
}
