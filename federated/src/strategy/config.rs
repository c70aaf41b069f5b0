//! Strategies described in configuration files (`kind = "fedprox"`, ...).

use serde::{Deserialize, Serialize};

use super::{
    Aggregation, ClientSelection, Config, FedStrategy, Krum, Mean, Median, ServerOpt, Strategy,
    StrategyError, TrimmedMean,
};

/// A strategy and its parameters, with Flower's defaults where a parameter is left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StrategyConfig {
    /// FedAvg.
    FedAvg,
    /// FedProx with proximal term μ.
    FedProx {
        /// μ.
        proximal_mu: f64,
    },
    /// FedAvgM.
    FedAvgM {
        /// Server learning rate.
        #[serde(default = "one")]
        server_lr: f64,
        /// Server momentum.
        #[serde(default)]
        momentum: f64,
    },
    /// FedAdam.
    FedAdam {
        /// η.
        #[serde(default = "eta_adaptive")]
        eta: f64,
        /// β₁.
        #[serde(default = "beta1")]
        beta1: f64,
        /// β₂.
        #[serde(default = "beta2")]
        beta2: f64,
        /// τ.
        #[serde(default = "tau_small")]
        tau: f64,
    },
    /// FedYogi.
    FedYogi {
        /// η.
        #[serde(default = "eta_yogi")]
        eta: f64,
        /// β₁.
        #[serde(default = "beta1")]
        beta1: f64,
        /// β₂.
        #[serde(default = "beta2")]
        beta2: f64,
        /// τ.
        #[serde(default = "tau_yogi")]
        tau: f64,
    },
    /// FedAdagrad.
    FedAdagrad {
        /// η.
        #[serde(default = "eta_adaptive")]
        eta: f64,
        /// τ.
        #[serde(default = "tau_small")]
        tau: f64,
    },
    /// FedMedian.
    FedMedian,
    /// FedTrimmedAvg.
    FedTrimmedAvg {
        /// Fraction trimmed from each end.
        #[serde(default = "trim")]
        beta: f64,
    },
    /// Krum.
    Krum {
        /// Malicious clients tolerated.
        byzantine: usize,
    },
    /// Multi-Krum.
    MultiKrum {
        /// Malicious clients tolerated.
        byzantine: usize,
        /// Updates averaged.
        keep: usize,
    },
}

fn one() -> f64 {
    1.0
}
fn eta_adaptive() -> f64 {
    0.1
}
fn eta_yogi() -> f64 {
    0.01
}
fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.99
}
fn tau_small() -> f64 {
    1e-9
}
fn tau_yogi() -> f64 {
    1e-3
}
fn trim() -> f64 {
    0.2
}

fn boxed<A: Aggregation + 'static>(
    selection: ClientSelection,
    fit_config: Config,
    a: A,
) -> Result<Box<dyn Strategy>, StrategyError> {
    Ok(Box::new(FedStrategy::new(selection, fit_config, a)?))
}

impl StrategyConfig {
    /// Whether the rule is a (possibly server-optimized) mean of the updates, which DP's
    /// sensitivity bound and secure aggregation's sum both need. Robust rules (median,
    /// trimmed mean, Krum) are not.
    pub fn is_mean_based(&self) -> bool {
        !matches!(
            self,
            StrategyConfig::FedMedian
                | StrategyConfig::FedTrimmedAvg { .. }
                | StrategyConfig::Krum { .. }
                | StrategyConfig::MultiKrum { .. }
        )
    }

    /// Whether stragglers' partial work is aggregated (FedProx).
    pub fn accepts_partial(&self) -> bool {
        matches!(self, StrategyConfig::FedProx { .. })
    }

    /// Builds the strategy; parameters out of range are errors that name them.
    pub fn build(
        &self,
        selection: ClientSelection,
        fit_config: Config,
    ) -> Result<Box<dyn Strategy>, StrategyError> {
        match *self {
            StrategyConfig::FedAvg => boxed(selection, fit_config, Mean::fedavg()),
            StrategyConfig::FedProx { proximal_mu } => {
                boxed(selection, fit_config, Mean::fedprox(proximal_mu)?)
            }
            StrategyConfig::FedAvgM {
                server_lr,
                momentum,
            } => boxed(
                selection,
                fit_config,
                ServerOpt::fedavgm(server_lr, momentum)?,
            ),
            StrategyConfig::FedAdam {
                eta,
                beta1,
                beta2,
                tau,
            } => boxed(
                selection,
                fit_config,
                ServerOpt::fedadam(eta, beta1, beta2, tau)?,
            ),
            StrategyConfig::FedYogi {
                eta,
                beta1,
                beta2,
                tau,
            } => boxed(
                selection,
                fit_config,
                ServerOpt::fedyogi(eta, beta1, beta2, tau)?,
            ),
            StrategyConfig::FedAdagrad { eta, tau } => {
                boxed(selection, fit_config, ServerOpt::fedadagrad(eta, tau)?)
            }
            StrategyConfig::FedMedian => boxed(selection, fit_config, Median),
            StrategyConfig::FedTrimmedAvg { beta } => {
                boxed(selection, fit_config, TrimmedMean::new(beta)?)
            }
            StrategyConfig::Krum { byzantine } => {
                boxed(selection, fit_config, Krum::single(byzantine))
            }
            StrategyConfig::MultiKrum { byzantine, keep } => {
                boxed(selection, fit_config, Krum::multi_krum(byzantine, keep)?)
            }
        }
    }
}
