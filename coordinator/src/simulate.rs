//! `coordinator simulate`: experiments from a TOML file.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use federated::data::{Dataset, Partitioner};
use federated::privacy::{DpConfig, LocalDp};
use federated::secagg::SecAggConfig;
use federated::simulation::{build_strategy, RoundMetrics, Simulation};
use federated::strategy::{ClientSelection, Config, StrategyConfig};
use federated::train::TrainConfig;
use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

/// An experiment: shared settings, and one run per variant (strategy).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationFile {
    /// ONNX model every client starts from (relative to the TOML file).
    pub model: PathBuf,
    /// `.npz` with `x_train`, `y_train`, `x_test`, `y_test` (relative to the TOML file).
    pub dataset: PathBuf,
    /// Rounds per variant.
    pub rounds: u64,
    /// Virtual clients.
    pub clients: usize,
    /// Probability that a selected client straggles (stops early, partial work).
    #[serde(default)]
    pub straggler_fraction: f64,
    /// Seed of everything random.
    #[serde(default)]
    pub seed: u64,
    /// Worker threads (default: the number of CPUs).
    pub threads: Option<usize>,
    /// Start from fresh random weights (seeded by `seed`) instead of the model's trained ones.
    #[serde(default)]
    pub reinitialize: bool,
    /// How the training data is split.
    pub partition: Partitioner,
    /// Which clients take part in a round.
    #[serde(default)]
    pub selection: ClientSelection,
    /// Local training.
    #[serde(default)]
    pub train: TrainConfig,
    /// The strategies compared.
    pub variants: Vec<Variant>,
}

/// One run of the experiment.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Its label in files and plots.
    pub name: String,
    /// The strategy.
    pub strategy: StrategyConfig,
    /// Central differential privacy (a wrapper around the strategy).
    #[serde(default)]
    pub dp: Option<DpConfig>,
    /// Local differential privacy on every client.
    #[serde(default)]
    pub local_dp: Option<LocalDp>,
    /// Secure aggregation of the clients' updates.
    #[serde(default)]
    pub secagg: Option<SecAggConfig>,
}

/// A variant's per-round metrics.
#[derive(Debug, Clone, Serialize)]
pub struct VariantResult {
    /// The variant's name.
    pub name: String,
    /// One entry per round.
    pub rounds: Vec<RoundMetrics>,
}

impl SimulationFile {
    /// Reads and checks a simulation file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        Self::parse(&text, path.parent().unwrap_or(Path::new(".")))
            .with_context(|| format!("invalid simulation file `{}`", path.display()))
    }

    /// Parses and checks a simulation file's text; `model` and `dataset` are taken relative
    /// to `base` (the file's folder). Every variant's strategy is built once, so a bad
    /// strategy, DP or secure-aggregation setting is refused here, by name, before any
    /// training starts.
    pub fn parse(text: &str, base: &Path) -> anyhow::Result<Self> {
        let mut sim: SimulationFile = toml::from_str(text)?;
        sim.model = base.join(&sim.model);
        sim.dataset = base.join(&sim.dataset);
        anyhow::ensure!(
            !sim.variants.is_empty(),
            "the file lists no [[variants]]; add one with a `strategy`"
        );
        anyhow::ensure!(
            sim.rounds > 0 && sim.clients > 0,
            "rounds and clients must be at least 1"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&sim.straggler_fraction),
            "straggler_fraction must be in [0, 1]"
        );
        for v in &sim.variants {
            if let Some(l) = &v.local_dp {
                l.validate()
                    .map_err(|e| anyhow::anyhow!("variant `{}`: {e}", v.name))?;
            }
            if let Some(s) = &v.secagg {
                s.validate()
                    .with_context(|| format!("variant `{}`", v.name))?;
            }
            sim.strategy(v)?;
        }
        Ok(sim)
    }

    /// The local-training settings sent to every client with each round.
    fn fit_config(&self) -> Config {
        let mut fit_config = Config::new();
        fit_config.insert(
            "local_epochs".into(),
            federated::strategy::Scalar::Int(self.train.epochs as i64),
        );
        fit_config
    }

    /// `variant`'s strategy, wrapped in central DP when it asks for it.
    fn strategy(
        &self,
        variant: &Variant,
    ) -> anyhow::Result<Box<dyn federated::strategy::Strategy>> {
        build_strategy(
            &variant.strategy,
            self.selection.clone(),
            self.fit_config(),
            variant.dp.as_ref(),
            variant.secagg.is_some(),
            self.seed,
        )
        .with_context(|| format!("variant `{}`", variant.name))
    }
}

fn load_split(
    npz: &mut ndarray_npy::NpzReader<File>,
    split: &str,
    path: &Path,
) -> anyhow::Result<Dataset> {
    let x: ArrayD<f32> = npz
        .by_name(&format!("x_{split}"))
        .with_context(|| format!("`{}` has no float32 `x_{split}`", path.display()))?;
    let y: ArrayD<i64> = npz
        .by_name(&format!("y_{split}"))
        .with_context(|| format!("`{}` has no int64 `y_{split}`", path.display()))?;
    let shape = x.shape()[1..].to_vec();
    Ok(Dataset::new(
        x.iter().copied().collect(),
        shape,
        y.iter().copied().collect(),
    )?)
}

/// Runs every variant, reporting each finished round to `progress`, and writes
/// `metrics.csv`, `metrics.json` and `accuracy.svg` to `out`.
pub fn run_simulation(
    sim: &SimulationFile,
    out: &Path,
    mut progress: impl FnMut(&str, &RoundMetrics),
) -> anyhow::Result<Vec<VariantResult>> {
    let model = std::fs::read(&sim.model)
        .with_context(|| format!("cannot read model `{}`", sim.model.display()))?;
    let file = File::open(&sim.dataset)
        .with_context(|| format!("cannot open dataset `{}`", sim.dataset.display()))?;
    let mut npz = ndarray_npy::NpzReader::new(file)
        .with_context(|| format!("`{}` is not an .npz", sim.dataset.display()))?;
    let train = load_split(&mut npz, "train", &sim.dataset)?;
    let test = load_split(&mut npz, "test", &sim.dataset)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create `{}`", out.display()))?;

    let mut results = Vec::new();
    for variant in &sim.variants {
        let mut strategy = sim.strategy(variant)?;
        let simulation = Simulation {
            model: model.clone(),
            train: train.clone(),
            test: test.clone(),
            clients: sim.clients,
            partitioner: sim.partition.clone(),
            rounds: sim.rounds,
            train_config: sim.train.clone(),
            straggler_fraction: sim.straggler_fraction,
            threads: sim
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            seed: sim.seed,
            reinitialize: sim.reinitialize,
            local_dp: variant.local_dp.clone(),
            secagg: variant.secagg.clone(),
            accepts_partial: variant.strategy.accepts_partial(),
        };
        let rounds = simulation
            .run(strategy.as_mut(), |m| progress(&variant.name, m))
            .with_context(|| format!("variant `{}` failed", variant.name))?;
        results.push(VariantResult {
            name: variant.name.clone(),
            rounds,
        });
    }
    write_outputs(out, &results)?;
    Ok(results)
}

fn write_outputs(out: &Path, results: &[VariantResult]) -> anyhow::Result<()> {
    let mut csv = File::create(out.join("metrics.csv"))?;
    writeln!(csv, "variant,round,train_loss,eval_loss,eval_accuracy,clients_used,clients_dropped,stragglers,seconds,dp_epsilon,dp_clipping_norm,secagg_survivors")?;
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.6}"));
    for r in results {
        for m in &r.rounds {
            writeln!(
                csv,
                "{},{},{:.6},{:.6},{:.6},{},{},{},{:.4},{},{},{}",
                r.name.replace(',', ";"),
                m.round,
                m.train_loss,
                m.eval_loss,
                m.eval_accuracy,
                m.clients_used,
                m.clients_dropped,
                m.stragglers,
                m.seconds,
                opt(m.dp_epsilon),
                opt(m.dp_clipping_norm),
                m.secagg_survivors.map_or(String::new(), |k| k.to_string()),
            )?;
        }
    }
    serde_json::to_writer_pretty(File::create(out.join("metrics.json"))?, results)?;
    crate::plot_curves(&out.join("accuracy.svg"), results)?;
    Ok(())
}
