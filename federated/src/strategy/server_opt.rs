//! Server-side optimizers over the averaged update (Reddi et al. 2021, "Adaptive Federated
//! Optimization"; Hsu et al. 2019 for FedAvgM), as Flower implements them.

use super::{Aggregation, StrategyError};
use crate::aggregate;
use crate::params::ParamError;

/// Which server optimizer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ServerOptKind {
    /// FedAvgM: `v ← β v + (w − avg)`, `w ← w − η v`.
    AvgM {
        /// Server momentum β.
        momentum: f64,
    },
    /// FedAdagrad: `v ← v + Δ²`.
    Adagrad,
    /// FedAdam: `v ← β₂ v + (1 − β₂) Δ²`, with bias correction of η.
    Adam,
    /// FedYogi: `v ← v − (1 − β₂) Δ² sign(v − Δ²)`.
    Yogi,
}

/// A server optimizer with its state (first and second moments, step count).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerOpt {
    kind: ServerOptKind,
    eta: f64,
    beta1: f64,
    beta2: f64,
    tau: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    step: i32,
}

impl ServerOpt {
    /// FedAvgM with server learning rate `eta` and momentum.
    pub fn fedavgm(eta: f64, momentum: f64) -> Result<Self, StrategyError> {
        Self::new(ServerOptKind::AvgM { momentum }, eta, 0.0, 0.0, 0.0)
    }

    /// FedAdagrad (Flower's defaults: η = 0.1, τ = 1e-9).
    pub fn fedadagrad(eta: f64, tau: f64) -> Result<Self, StrategyError> {
        Self::new(ServerOptKind::Adagrad, eta, 0.0, 0.0, tau)
    }

    /// FedAdam (Flower's defaults: η = 0.1, β₁ = 0.9, β₂ = 0.99, τ = 1e-9).
    pub fn fedadam(eta: f64, beta1: f64, beta2: f64, tau: f64) -> Result<Self, StrategyError> {
        Self::new(ServerOptKind::Adam, eta, beta1, beta2, tau)
    }

    /// FedYogi (Flower's defaults: η = 0.01, β₁ = 0.9, β₂ = 0.99, τ = 1e-3).
    pub fn fedyogi(eta: f64, beta1: f64, beta2: f64, tau: f64) -> Result<Self, StrategyError> {
        Self::new(ServerOptKind::Yogi, eta, beta1, beta2, tau)
    }

    fn new(
        kind: ServerOptKind,
        eta: f64,
        beta1: f64,
        beta2: f64,
        tau: f64,
    ) -> Result<Self, StrategyError> {
        let bad =
            |what: &str, v: f64| Err(StrategyError::InvalidParameter(format!("{what} = {v}")));
        if !(eta > 0.0 && eta.is_finite()) {
            return bad("server learning rate (eta) must be > 0, got", eta);
        }
        for (name, b) in [("beta1", beta1), ("beta2", beta2)] {
            if !(0.0..1.0).contains(&b) {
                return bad(&format!("{name} must be in [0, 1), got"), b);
            }
        }
        if let ServerOptKind::AvgM { momentum } = kind {
            if !(0.0..1.0).contains(&momentum) {
                return bad("momentum must be in [0, 1), got", momentum);
            }
        }
        if tau.is_nan() || tau < 0.0 {
            return bad("tau must be ≥ 0, got", tau);
        }
        Ok(Self {
            kind,
            eta,
            beta1,
            beta2,
            tau,
            m: Vec::new(),
            v: Vec::new(),
            step: 0,
        })
    }
}

impl Aggregation for ServerOpt {
    fn name(&self) -> &str {
        match self.kind {
            ServerOptKind::AvgM { .. } => "FedAvgM",
            ServerOptKind::Adagrad => "FedAdagrad",
            ServerOptKind::Adam => "FedAdam",
            ServerOptKind::Yogi => "FedYogi",
        }
    }

    fn aggregate(
        &mut self,
        current: &[f32],
        updates: &[(&[f32], f64)],
    ) -> Result<Vec<f32>, StrategyError> {
        let avg =
            aggregate::weighted_mean(updates).ok_or(StrategyError::Params(ParamError::Empty))?;
        let n = current.len();
        if self.m.len() != n {
            self.m = vec![0.0; n];
            // Flower starts v at τ² for the adaptive methods.
            let v0 = if matches!(self.kind, ServerOptKind::AvgM { .. }) {
                0.0
            } else {
                self.tau * self.tau
            };
            self.v = vec![v0; n];
            self.step = 0;
        }
        self.step += 1;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let w = current[i] as f64;
            let delta = avg[i] as f64 - w;
            let new = match self.kind {
                ServerOptKind::AvgM { momentum } => {
                    // Flower: pseudo-gradient = w − avg; with momentum, v = β v + g.
                    let g = -delta;
                    self.m[i] = if self.step == 1 {
                        g
                    } else {
                        momentum * self.m[i] + g
                    };
                    w - self.eta * self.m[i]
                }
                kind => {
                    self.m[i] = self.beta1 * self.m[i] + (1.0 - self.beta1) * delta;
                    let d2 = delta * delta;
                    self.v[i] = match kind {
                        ServerOptKind::Adagrad => self.v[i] + d2,
                        ServerOptKind::Adam => self.beta2 * self.v[i] + (1.0 - self.beta2) * d2,
                        ServerOptKind::Yogi => {
                            self.v[i] - (1.0 - self.beta2) * d2 * (self.v[i] - d2).signum()
                        }
                        ServerOptKind::AvgM { .. } => unreachable!("handled above"),
                    };
                    let eta = if kind == ServerOptKind::Adam {
                        self.eta * (1.0 - self.beta2.powi(self.step)).sqrt()
                            / (1.0 - self.beta1.powi(self.step))
                    } else {
                        self.eta
                    };
                    w + eta * self.m[i] / (self.v[i].sqrt() + self.tau)
                }
            };
            out.push(new as f32);
        }
        Ok(out)
    }
}
