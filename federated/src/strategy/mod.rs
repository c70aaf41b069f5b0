//! Strategies, shaped like Flower's: configure a round (which clients, with what config),
//! aggregate fit results, configure and aggregate evaluation.
//!
//! One [`Strategy`] implementation, [`FedStrategy`], does the round plumbing (client
//! selection, dropping failures and unusable results) and delegates the arithmetic to an
//! [`Aggregation`]: the mean (FedAvg, FedProx), a server optimizer (FedAvgM, FedAdam, FedYogi,
//! FedAdagrad) or a robust rule (FedMedian, FedTrimmedAvg, Krum, Multi-Krum).

mod config;
mod robust;
mod server_opt;

use std::collections::BTreeMap;

use rand::seq::IndexedRandom;
use rand::RngCore;
use serde::{Deserialize, Serialize};

pub use config::StrategyConfig;
pub use robust::{Krum, Median, TrimmedMean};
pub use server_opt::{ServerOpt, ServerOptKind};

use crate::aggregate;
use crate::params::{ParamError, Parameters};

/// A client's id.
pub type ClientId = String;

/// A config or metric value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
}

impl Scalar {
    /// The value as a float, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Int(i) => Some(*i as f64),
            Scalar::Float(f) => Some(*f),
            _ => None,
        }
    }
}

/// Named scalars: round configs for clients, metrics from them.
pub type Config = BTreeMap<String, Scalar>;

/// What a client is asked to train.
#[derive(Debug, Clone, PartialEq)]
pub struct FitIns {
    /// The global parameters to start from.
    pub parameters: Parameters,
    /// Round config: `local_epochs`, `learning_rate`, `proximal_mu`, ...
    pub config: Config,
}

/// What a client returns from training.
#[derive(Debug, Clone, PartialEq)]
pub struct FitRes {
    /// Its updated parameters.
    pub parameters: Parameters,
    /// Training examples it used (the weight of its update).
    pub num_examples: u64,
    /// Its metrics (e.g. `train_loss`).
    pub metrics: Config,
    /// False when it stopped early (a straggler's partial work).
    pub complete: bool,
}

/// What a client is asked to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluateIns {
    /// The parameters to evaluate.
    pub parameters: Parameters,
    /// Round config.
    pub config: Config,
}

/// A client's evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluateRes {
    /// Mean loss over its examples.
    pub loss: f64,
    /// Examples evaluated.
    pub num_examples: u64,
    /// Metrics (e.g. `accuracy`).
    pub metrics: Config,
}

/// A client that did not deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Who.
    pub client: ClientId,
    /// Why.
    pub reason: String,
}

/// The outcome of [`Strategy::aggregate_fit`]. `parameters: None` means "keep the current
/// model" (Flower's convention).
#[derive(Debug, Clone, PartialEq)]
pub struct FitAggregate {
    /// The new global parameters, if any.
    pub parameters: Option<Parameters>,
    /// Aggregated metrics, with `clients_used` and `clients_dropped`.
    pub metrics: Config,
}

/// Why a round cannot go on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StrategyError {
    /// Fewer clients than the strategy needs.
    #[error("{available} clients available, {needed} needed")]
    NotEnoughClients {
        /// Clients available.
        available: usize,
        /// Clients needed.
        needed: usize,
    },
    /// A parameter of the strategy is out of range.
    #[error("invalid strategy parameter: {0}")]
    InvalidParameter(String),
    /// Parameters do not fit together.
    #[error(transparent)]
    Params(#[from] ParamError),
}

/// How many clients take part (Flower's `fraction_fit`, `min_fit_clients`,
/// `min_available_clients`, and their evaluation twins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientSelection {
    /// Fraction of available clients to train each round.
    pub fraction_fit: f64,
    /// Fraction of available clients to evaluate each round.
    pub fraction_evaluate: f64,
    /// At least this many train.
    pub min_fit_clients: usize,
    /// At least this many evaluate.
    pub min_evaluate_clients: usize,
    /// No round starts with fewer available.
    pub min_available_clients: usize,
}

impl Default for ClientSelection {
    fn default() -> Self {
        Self {
            fraction_fit: 1.0,
            fraction_evaluate: 1.0,
            min_fit_clients: 2,
            min_evaluate_clients: 2,
            min_available_clients: 2,
        }
    }
}

impl ClientSelection {
    fn validate(&self) -> Result<(), StrategyError> {
        for (name, f) in [
            ("fraction_fit", self.fraction_fit),
            ("fraction_evaluate", self.fraction_evaluate),
        ] {
            if !(0.0..=1.0).contains(&f) {
                return Err(StrategyError::InvalidParameter(format!(
                    "{name} = {f} is outside [0, 1]"
                )));
            }
        }
        Ok(())
    }

    /// Samples `max(ceil(fraction · n), min)` clients without replacement.
    pub fn sample(
        &self,
        available: &[ClientId],
        fraction: f64,
        min: usize,
        rng: &mut dyn RngCore,
    ) -> Result<Vec<ClientId>, StrategyError> {
        let needed = self.min_available_clients.max(min);
        if available.len() < needed {
            return Err(StrategyError::NotEnoughClients {
                available: available.len(),
                needed,
            });
        }
        let n = ((fraction * available.len() as f64).ceil() as usize)
            .max(min)
            .min(available.len());
        let mut chosen: Vec<ClientId> = available.choose_multiple(rng, n).cloned().collect();
        chosen.sort();
        Ok(chosen)
    }
}

/// A Flower-shaped strategy.
pub trait Strategy: Send {
    /// A short name for logs and reports.
    fn name(&self) -> &str;

    /// Picks the clients that train this round and the instructions each gets.
    fn configure_fit(
        &mut self,
        round: u64,
        parameters: &Parameters,
        available: &[ClientId],
        rng: &mut dyn RngCore,
    ) -> Result<Vec<(ClientId, FitIns)>, StrategyError>;

    /// Combines the round's results into new global parameters. Failures are reported apart;
    /// results a strategy cannot use (partial work it does not accept, mismatched parameters)
    /// are dropped from the round, never failing it.
    fn aggregate_fit(
        &mut self,
        round: u64,
        current: &Parameters,
        results: Vec<(ClientId, FitRes)>,
        failures: Vec<Failure>,
    ) -> Result<FitAggregate, StrategyError>;

    /// Picks the clients that evaluate this round.
    fn configure_evaluate(
        &mut self,
        round: u64,
        parameters: &Parameters,
        available: &[ClientId],
        rng: &mut dyn RngCore,
    ) -> Result<Vec<(ClientId, EvaluateIns)>, StrategyError>;

    /// The example-weighted mean loss and metrics of the evaluations, if any.
    fn aggregate_evaluate(
        &mut self,
        round: u64,
        results: Vec<(ClientId, EvaluateRes)>,
        failures: Vec<Failure>,
    ) -> Option<(f64, Config)>;
}

/// The arithmetic of one aggregation rule over flat parameter vectors.
pub trait Aggregation: Send {
    /// The strategy's name (`FedAvg`, `FedAdam`, ...).
    fn name(&self) -> &str;

    /// New global values from the current ones and the clients' `(values, examples)`.
    fn aggregate(
        &mut self,
        current: &[f32],
        updates: &[(&[f32], f64)],
    ) -> Result<Vec<f32>, StrategyError>;

    /// Whether a straggler's partial work is used (FedProx) or dropped.
    fn accepts_partial(&self) -> bool {
        false
    }

    /// Config every training client receives from this rule (e.g. `proximal_mu`).
    fn fit_config(&self) -> Config {
        Config::new()
    }
}

/// The example-weighted mean: FedAvg (McMahan et al. 2017), and FedProx (Li et al. 2020) when
/// `proximal_mu` is set; FedProx accepts stragglers' partial work.
#[derive(Debug, Clone, PartialEq)]
pub struct Mean {
    proximal_mu: Option<f64>,
}

impl Mean {
    /// FedAvg.
    pub fn fedavg() -> Self {
        Self { proximal_mu: None }
    }

    /// FedProx with proximal term μ/2·‖w − w_global‖² on the clients.
    pub fn fedprox(mu: f64) -> Result<Self, StrategyError> {
        if !(mu >= 0.0 && mu.is_finite()) {
            return Err(StrategyError::InvalidParameter(format!(
                "proximal_mu = {mu} must be ≥ 0"
            )));
        }
        Ok(Self {
            proximal_mu: Some(mu),
        })
    }
}

impl Aggregation for Mean {
    fn name(&self) -> &str {
        if self.proximal_mu.is_some() {
            "FedProx"
        } else {
            "FedAvg"
        }
    }

    fn aggregate(
        &mut self,
        _current: &[f32],
        updates: &[(&[f32], f64)],
    ) -> Result<Vec<f32>, StrategyError> {
        aggregate::weighted_mean(updates).ok_or(StrategyError::Params(ParamError::Empty))
    }

    fn accepts_partial(&self) -> bool {
        self.proximal_mu.is_some()
    }

    fn fit_config(&self) -> Config {
        let mut c = Config::new();
        if let Some(mu) = self.proximal_mu {
            c.insert("proximal_mu".to_owned(), Scalar::Float(mu));
        }
        c
    }
}

/// The round plumbing around an [`Aggregation`].
pub struct FedStrategy<A: Aggregation> {
    selection: ClientSelection,
    fit_config: Config,
    aggregation: A,
}

impl<A: Aggregation> FedStrategy<A> {
    /// A strategy with this selection, this per-round client config (e.g. `local_epochs`,
    /// `learning_rate`, `batch_size`), and this aggregation.
    pub fn new(
        selection: ClientSelection,
        fit_config: Config,
        aggregation: A,
    ) -> Result<Self, StrategyError> {
        selection.validate()?;
        Ok(Self {
            selection,
            fit_config,
            aggregation,
        })
    }

    /// The aggregation rule.
    pub fn aggregation(&self) -> &A {
        &self.aggregation
    }
}

fn weighted_metrics<'a>(items: impl Iterator<Item = (&'a Config, u64)>) -> Config {
    let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (metrics, n) in items {
        for (k, v) in metrics {
            if let Some(x) = v.as_f64() {
                let e = sums.entry(k.clone()).or_default();
                e.0 += x * n as f64;
                e.1 += n as f64;
            }
        }
    }
    sums.into_iter()
        .filter(|(_, (_, w))| *w > 0.0)
        .map(|(k, (s, w))| (k, Scalar::Float(s / w)))
        .collect()
}

impl<A: Aggregation> Strategy for FedStrategy<A> {
    fn name(&self) -> &str {
        self.aggregation.name()
    }

    fn configure_fit(
        &mut self,
        round: u64,
        parameters: &Parameters,
        available: &[ClientId],
        rng: &mut dyn RngCore,
    ) -> Result<Vec<(ClientId, FitIns)>, StrategyError> {
        let clients = self.selection.sample(
            available,
            self.selection.fraction_fit,
            self.selection.min_fit_clients,
            rng,
        )?;
        let mut config = self.fit_config.clone();
        config.extend(self.aggregation.fit_config());
        config.insert("server_round".to_owned(), Scalar::Int(round as i64));
        Ok(clients
            .into_iter()
            .map(|c| {
                (
                    c,
                    FitIns {
                        parameters: parameters.clone(),
                        config: config.clone(),
                    },
                )
            })
            .collect())
    }

    fn aggregate_fit(
        &mut self,
        round: u64,
        current: &Parameters,
        results: Vec<(ClientId, FitRes)>,
        failures: Vec<Failure>,
    ) -> Result<FitAggregate, StrategyError> {
        let mut dropped = failures.len();
        let usable: Vec<(ClientId, FitRes)> = results
            .into_iter()
            .filter(|(client, r)| {
                let ok = (r.complete || self.aggregation.accepts_partial())
                    && r.num_examples > 0
                    && current.check_compatible(&r.parameters).is_ok();
                if !ok {
                    tracing::debug!(round, %client, complete = r.complete, "dropping a fit result");
                    dropped += 1;
                }
                ok
            })
            .collect();
        let mut metrics =
            weighted_metrics(usable.iter().map(|(_, r)| (&r.metrics, r.num_examples)));
        metrics.insert("clients_used".to_owned(), Scalar::Int(usable.len() as i64));
        metrics.insert("clients_dropped".to_owned(), Scalar::Int(dropped as i64));
        if usable.is_empty() {
            return Ok(FitAggregate {
                parameters: None,
                metrics,
            });
        }
        let flats: Vec<Vec<f32>> = usable.iter().map(|(_, r)| r.parameters.flatten()).collect();
        let updates: Vec<(&[f32], f64)> = flats
            .iter()
            .zip(&usable)
            .map(|(f, (_, r))| (f.as_slice(), r.num_examples as f64))
            .collect();
        let new = self.aggregation.aggregate(&current.flatten(), &updates)?;
        Ok(FitAggregate {
            parameters: Some(current.unflatten_like(&new)?),
            metrics,
        })
    }

    fn configure_evaluate(
        &mut self,
        round: u64,
        parameters: &Parameters,
        available: &[ClientId],
        rng: &mut dyn RngCore,
    ) -> Result<Vec<(ClientId, EvaluateIns)>, StrategyError> {
        if self.selection.fraction_evaluate == 0.0 {
            return Ok(Vec::new());
        }
        let clients = self.selection.sample(
            available,
            self.selection.fraction_evaluate,
            self.selection.min_evaluate_clients,
            rng,
        )?;
        let mut config = Config::new();
        config.insert("server_round".to_owned(), Scalar::Int(round as i64));
        Ok(clients
            .into_iter()
            .map(|c| {
                (
                    c,
                    EvaluateIns {
                        parameters: parameters.clone(),
                        config: config.clone(),
                    },
                )
            })
            .collect())
    }

    fn aggregate_evaluate(
        &mut self,
        _round: u64,
        results: Vec<(ClientId, EvaluateRes)>,
        _failures: Vec<Failure>,
    ) -> Option<(f64, Config)> {
        let total: u64 = results.iter().map(|(_, r)| r.num_examples).sum();
        if total == 0 {
            return None;
        }
        let loss = results
            .iter()
            .map(|(_, r)| r.loss * r.num_examples as f64)
            .sum::<f64>()
            / total as f64;
        Some((
            loss,
            weighted_metrics(results.iter().map(|(_, r)| (&r.metrics, r.num_examples))),
        ))
    }
}

#[cfg(test)]
mod tests;
