//! Federated simulation on one machine: N virtual clients, each training on its own partition,
//! R rounds of any [`Strategy`], a fraction of stragglers that stop early, and centralized
//! evaluation of the global model after every round. Clients of a round train in parallel on
//! `threads` workers.
//!
//! Privacy composes here as it would on real devices: each client applies local DP and the
//! clipping norm the server sent (client-side central DP) to its own update, and with secure
//! aggregation the clients' updates only leave as masked vectors: the strategy sees one
//! aggregate, whose noise (if any) the DP wrapper adds after unmasking.

use std::sync::Mutex;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::data::{Dataset, Partitioner};
use crate::params::Parameters;
use crate::privacy::{
    privatize_update, ClippingSide, DifferentialPrivacy, DpConfig, LocalDp, AGGREGATE_CLIENTS_KEY,
    CLIPPING_NORM_KEY, NORM_BIT_KEY,
};
use crate::secagg::{secure_mean, SecAggConfig, SecAggError, SecureUpdate};
use crate::strategy::{
    ClientId, ClientSelection, Config, Failure, FitRes, Scalar, Strategy, StrategyConfig,
    StrategyError,
};
use crate::train::{Loss, TrainConfig, TrainError, Trainer};

/// What one round did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundMetrics {
    /// Round number, from 1.
    pub round: u64,
    /// Example-weighted mean training loss of the clients used.
    pub train_loss: f64,
    /// Loss of the new global model on the test set.
    pub eval_loss: f64,
    /// Accuracy of the new global model on the test set.
    pub eval_accuracy: f64,
    /// Clients whose results were aggregated.
    pub clients_used: usize,
    /// Clients that failed or whose results were dropped.
    pub clients_dropped: usize,
    /// Stragglers this round (stopped early).
    pub stragglers: usize,
    /// Wall time of the round in seconds.
    pub seconds: f64,
    /// ε spent so far, with central DP.
    pub dp_epsilon: Option<f64>,
    /// The clipping norm used this round, with central DP.
    pub dp_clipping_norm: Option<f64>,
    /// Clients whose updates were securely aggregated, with SecAgg.
    pub secagg_survivors: Option<usize>,
}

/// Builds `config`'s strategy, wrapped in central DP when `dp` is given; refuses the
/// combinations that cannot work (DP or secure aggregation with a robust rule, server-side
/// clipping with secure aggregation), saying what to change.
pub fn build_strategy(
    config: &StrategyConfig,
    selection: ClientSelection,
    fit_config: Config,
    dp: Option<&DpConfig>,
    secagg: bool,
    seed: u64,
) -> Result<Box<dyn Strategy>, StrategyError> {
    let invalid = |m: &str| Err(StrategyError::InvalidParameter(m.to_owned()));
    if (dp.is_some() || secagg) && !config.is_mean_based() {
        return invalid(
            "DP and secure aggregation need a mean-based strategy (fedavg, fedprox, fedavgm, fedadam, fedyogi, fedadagrad), not a robust one",
        );
    }
    if secagg && dp.is_some_and(|d| d.clipping == ClippingSide::Server) {
        return invalid(
            "with secure aggregation the server never sees single updates: set dp.clipping = \"client\"",
        );
    }
    let inner = config.build(selection, fit_config)?;
    Ok(match dp {
        Some(d) => Box::new(DifferentialPrivacy::new(
            inner,
            d.clone(),
            config.accepts_partial(),
            seed,
        )?),
        None => inner,
    })
}

/// A simulation, ready to run.
pub struct Simulation {
    /// The ONNX model every client starts from.
    pub model: Vec<u8>,
    /// The training data, split across clients.
    pub train: Dataset,
    /// Centralized test data.
    pub test: Dataset,
    /// Number of virtual clients.
    pub clients: usize,
    /// How to split the training data.
    pub partitioner: Partitioner,
    /// Rounds to run.
    pub rounds: u64,
    /// Local training.
    pub train_config: TrainConfig,
    /// Probability that a selected client straggles: it stops after a random fraction of its
    /// steps and reports partial work.
    pub straggler_fraction: f64,
    /// Worker threads for client training.
    pub threads: usize,
    /// Seed of partitioning, selection, stragglers and training.
    pub seed: u64,
    /// Start from fresh random weights (seeded) instead of the model's own.
    pub reinitialize: bool,
    /// Local DP on every client.
    pub local_dp: Option<LocalDp>,
    /// Secure aggregation of the updates.
    pub secagg: Option<SecAggConfig>,
    /// Whether stragglers' partial work enters a secure aggregate (FedProx accepts it).
    pub accepts_partial: bool,
}

/// Why a simulation stopped.
#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    /// The model cannot be trained.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The strategy refused the round.
    #[error(transparent)]
    Strategy(#[from] StrategyError),
    /// The data cannot be split as asked.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// Secure aggregation aborted the round.
    #[error("secure aggregation failed in round {round}")]
    SecAgg {
        /// The round.
        round: u64,
        /// Why.
        source: SecAggError,
    },
    /// Parameters do not fit together.
    #[error(transparent)]
    Params(#[from] crate::params::ParamError),
    /// A client's privacy setting cannot be applied.
    #[error("client privacy: {0}")]
    Privacy(String),
}

impl Simulation {
    /// Runs every round, calling `on_round` after each, and returns the metrics.
    pub fn run(
        &self,
        strategy: &mut dyn Strategy,
        mut on_round: impl FnMut(&RoundMetrics),
    ) -> Result<Vec<RoundMetrics>, SimulationError> {
        let parts = self
            .partitioner
            .partition(&self.train.y, self.clients, self.seed)?;
        let shards: Vec<Dataset> = parts.iter().map(|p| self.train.subset(p)).collect();
        let ids: Vec<ClientId> = (0..self.clients)
            .map(|i| format!("client-{i:03}"))
            .collect();
        let mut evaluator = Trainer::new(&self.model)?;
        if self.reinitialize {
            evaluator.reinitialize(self.seed)?;
        }
        let mut global = evaluator.parameters()?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x5eed);
        let mut history = Vec::new();
        for round in 1..=self.rounds {
            let started = Instant::now();
            let instructions = strategy.configure_fit(round, &global, &ids, &mut rng)?;
            let jobs: Vec<(usize, TrainConfig, bool)> = instructions
                .iter()
                .map(|(client, ins)| {
                    let index = ids
                        .iter()
                        .position(|c| c == client)
                        .expect("selected from ids");
                    let mut config = self.train_config.clone();
                    config.seed = self.seed ^ (round << 20) ^ index as u64;
                    if let Some(mu) = ins.config.get("proximal_mu").and_then(Scalar::as_f64) {
                        config.proximal_mu = mu;
                    }
                    let straggler = rng.random::<f64>() < self.straggler_fraction;
                    if straggler {
                        let full = config.epochs.max(1)
                            * shards[index].len().div_ceil(config.batch_size.max(1));
                        config.max_steps = Some(rng.random_range(1..=full.max(1)));
                    }
                    (index, config, straggler)
                })
                .collect();
            let stragglers = jobs.iter().filter(|j| j.2).count();
            let server_clip = instructions
                .first()
                .and_then(|(_, ins)| ins.config.get(CLIPPING_NORM_KEY))
                .and_then(Scalar::as_f64);
            let (mut results, mut failures) = self.train_clients(&jobs, &shards, &ids, &global);
            if server_clip.is_some() || self.local_dp.is_some() {
                self.privatize(&mut results, &global, server_clip, round)?;
            }
            let mut secagg_survivors = None;
            if let Some(config) = &self.secagg {
                let clients: Vec<ClientId> = results.iter().map(|(c, _)| c.clone()).collect();
                match self.secure_aggregate(
                    config,
                    results,
                    &mut failures,
                    &global,
                    server_clip,
                    &mut rng,
                ) {
                    Ok((aggregate, survivors)) => {
                        results = aggregate;
                        secagg_survivors = Some(survivors);
                    }
                    // A setup that cannot work stops the run; an aborted round (too few
                    // survivors, an unrecoverable secret) fails this round only.
                    Err(source @ SecAggError::Config(_)) => {
                        return Err(SimulationError::SecAgg { round, source })
                    }
                    Err(e) => {
                        tracing::warn!(round, error = %e, "secure aggregation aborted the round");
                        let known: std::collections::BTreeSet<ClientId> =
                            failures.iter().map(|f| f.client.clone()).collect();
                        failures.extend(clients.into_iter().filter(|c| !known.contains(c)).map(
                            |client| Failure {
                                client,
                                reason: e.to_string(),
                            },
                        ));
                        results = Vec::new();
                        secagg_survivors = Some(0);
                    }
                }
            }
            let outcome = strategy.aggregate_fit(round, &global, results, failures)?;
            if let Some(p) = outcome.parameters {
                global = p;
            }
            evaluator.set_parameters(&global)?;
            let eval = evaluator.evaluate(&self.test, 256, Loss::CrossEntropy)?;
            let metric = |k: &str| {
                outcome
                    .metrics
                    .get(k)
                    .and_then(Scalar::as_f64)
                    .unwrap_or(f64::NAN)
            };
            let m = RoundMetrics {
                round,
                train_loss: metric("train_loss"),
                eval_loss: eval.loss,
                eval_accuracy: eval.accuracy,
                clients_used: secagg_survivors.unwrap_or(metric("clients_used") as usize),
                clients_dropped: metric("clients_dropped") as usize,
                stragglers,
                seconds: started.elapsed().as_secs_f64(),
                dp_epsilon: outcome.metrics.get("dp_epsilon").and_then(Scalar::as_f64),
                dp_clipping_norm: outcome
                    .metrics
                    .get("dp_clipping_norm")
                    .and_then(Scalar::as_f64),
                secagg_survivors,
            };
            tracing::debug!(?m, "round done");
            on_round(&m);
            history.push(m);
        }
        Ok(history)
    }

    /// What each client does to its update before it leaves: local DP, then the server's
    /// clipping norm; the adaptive-clipping bit goes in its metrics.
    fn privatize(
        &self,
        results: &mut [(ClientId, FitRes)],
        global: &Parameters,
        server_clip: Option<f64>,
        round: u64,
    ) -> Result<(), SimulationError> {
        let base = global.flatten();
        for (client, r) in results.iter_mut() {
            // Every client and round gets its own noise stream (FNV-1a over seed, round, id).
            let key = self
                .seed
                .to_le_bytes()
                .into_iter()
                .chain(round.to_le_bytes())
                .chain(client.bytes());
            let hash = key.fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            let mut rng = ChaCha8Rng::seed_from_u64(hash);
            let mut delta = r.parameters.flat_delta(&base);
            let bit = privatize_update(&mut delta, server_clip, self.local_dp.as_ref(), &mut rng)
                .map_err(SimulationError::Privacy)?;
            let values: Vec<f32> = base.iter().zip(&delta).map(|(c, d)| c + d).collect();
            r.parameters = global.unflatten_like(&values)?;
            if let Some(b) = bit {
                r.metrics
                    .insert(NORM_BIT_KEY.to_owned(), Scalar::Int(i64::from(b)));
            }
        }
        Ok(())
    }

    /// Replaces the clients' results by one securely aggregated result (their mean update),
    /// moving unusable and dropped clients to `failures`. Returns it and the survivor count.
    fn secure_aggregate(
        &self,
        config: &SecAggConfig,
        results: Vec<(ClientId, FitRes)>,
        failures: &mut Vec<Failure>,
        global: &Parameters,
        server_clip: Option<f64>,
        rng: &mut ChaCha8Rng,
    ) -> Result<(Vec<(ClientId, FitRes)>, usize), SecAggError> {
        let base = global.flatten();
        let (mut clients, mut updates, mut losses) = (Vec::new(), Vec::new(), Vec::new());
        for (client, r) in results {
            if !r.complete && !self.accepts_partial {
                failures.push(Failure {
                    client,
                    reason: "partial work is not accepted".into(),
                });
                continue;
            }
            let delta = r.parameters.flat_delta(&base);
            let within_clip = r
                .metrics
                .get(NORM_BIT_KEY)
                .and_then(Scalar::as_f64)
                .is_some_and(|b| b > 0.0);
            losses.push(r.metrics.get("train_loss").and_then(Scalar::as_f64));
            updates.push(SecureUpdate {
                delta,
                weight: r.num_examples,
                within_clip,
            });
            clients.push(client);
        }
        if updates.is_empty() {
            return Ok((Vec::new(), 0));
        }
        // With DP the mean is uniform and every coordinate is within the clipping norm.
        let uniform = server_clip.is_some();
        // Without central clipping: Flower's ±8, widened to cover local DP's noise (6σ).
        let range = server_clip.unwrap_or_else(|| {
            let local = self
                .local_dp
                .as_ref()
                .map_or(0.0, |l| l.clipping_norm + 6.0 * l.noise_std());
            local.max(8.0)
        });
        let out = secure_mean(config, &updates, range, uniform, self.threads.max(1), rng)?;
        let survivors: std::collections::BTreeSet<usize> = out.survivors.iter().copied().collect();
        let mut metrics = Config::new();
        let mut examples = 0;
        let mut loss = (0.0, 0usize);
        for (i, client) in clients.into_iter().enumerate() {
            if survivors.contains(&i) {
                examples += updates[i].weight;
                if let Some(l) = losses[i] {
                    loss = (loss.0 + l, loss.1 + 1);
                }
            } else {
                failures.push(Failure {
                    client,
                    reason: "dropped out of secure aggregation".into(),
                });
            }
        }
        if loss.1 > 0 {
            metrics.insert("train_loss".into(), Scalar::Float(loss.0 / loss.1 as f64));
        }
        metrics.insert(
            AGGREGATE_CLIENTS_KEY.into(),
            Scalar::Int(survivors.len() as i64),
        );
        metrics.insert(NORM_BIT_KEY.into(), Scalar::Int(out.within_clip as i64));
        let values: Vec<f32> = base.iter().zip(&out.mean).map(|(c, d)| c + d).collect();
        let parameters = global
            .unflatten_like(&values)
            .map_err(|e| SecAggError::Config(e.to_string()))?;
        let aggregate = FitRes {
            parameters,
            num_examples: examples.max(1),
            metrics,
            complete: true,
        };
        Ok((
            vec![("secure-aggregate".into(), aggregate)],
            survivors.len(),
        ))
    }

    /// Trains one round's clients on `threads` workers, each reusing one trainer.
    fn train_clients(
        &self,
        jobs: &[(usize, TrainConfig, bool)],
        shards: &[Dataset],
        ids: &[ClientId],
        global: &Parameters,
    ) -> (Vec<(ClientId, FitRes)>, Vec<Failure>) {
        let next = Mutex::new(0usize);
        let out = Mutex::new((Vec::new(), Vec::new()));
        std::thread::scope(|scope| {
            for _ in 0..self.threads.max(1).min(jobs.len().max(1)) {
                scope.spawn(|| {
                    let mut trainer = match Trainer::new(&self.model) {
                        Ok(t) => t,
                        Err(e) => {
                            tracing::error!(error = %e, "a worker could not build its trainer");
                            return;
                        }
                    };
                    loop {
                        let job = {
                            let mut n = next.lock().unwrap_or_else(|p| p.into_inner());
                            let j = *n;
                            *n += 1;
                            j
                        };
                        let Some((index, config, straggler)) = jobs.get(job) else {
                            break;
                        };
                        let client = ids[*index].clone();
                        let result = trainer
                            .set_parameters(global)
                            .and_then(|()| trainer.fit(&shards[*index], config, Some(global)))
                            .and_then(|report| Ok((report, trainer.parameters()?)));
                        let mut guard = out.lock().unwrap_or_else(|p| p.into_inner());
                        match result {
                            Ok((report, parameters)) => {
                                let mut metrics = Config::new();
                                metrics.insert("train_loss".to_owned(), Scalar::Float(report.loss));
                                guard.0.push((
                                    client,
                                    FitRes {
                                        parameters,
                                        num_examples: shards[*index].len() as u64,
                                        metrics,
                                        complete: !straggler,
                                    },
                                ));
                            }
                            Err(e) => guard.1.push(Failure {
                                client,
                                reason: e.to_string(),
                            }),
                        }
                    }
                });
            }
        });
        let (mut results, failures) = out.into_inner().unwrap_or_else(|p| p.into_inner());
        // Aggregation order must not depend on thread timing.
        results.sort_by(|a: &(ClientId, FitRes), b| a.0.cmp(&b.0));
        (results, failures)
    }
}
