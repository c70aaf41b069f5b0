//! Federated simulation on one machine: N virtual clients, each training on its own partition,
//! R rounds of any [`Strategy`], a fraction of stragglers that stop early, and centralized
//! evaluation of the global model after every round. Clients of a round train in parallel on
//! `threads` workers.

use std::sync::Mutex;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::data::{Dataset, Partitioner};
use crate::params::Parameters;
use crate::strategy::{ClientId, Config, Failure, FitRes, Scalar, Strategy, StrategyError};
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
            let (results, failures) = self.train_clients(&jobs, &shards, &ids, &global);
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
                clients_used: metric("clients_used") as usize,
                clients_dropped: metric("clients_dropped") as usize,
                stragglers,
                seconds: started.elapsed().as_secs_f64(),
            };
            tracing::debug!(?m, "round done");
            on_round(&m);
            history.push(m);
        }
        Ok(history)
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
