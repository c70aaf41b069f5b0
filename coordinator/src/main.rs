//! `coordinator`: federated learning from the shell.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use coordinator::{run_simulation, SimulationFile};
use indicatif::{ProgressBar, ProgressStyle};

/// Run federated learning experiments.
#[derive(Debug, Parser)]
#[command(name = "coordinator", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate federated training on one machine from a TOML file.
    ///
    /// Every [[variants]] entry runs the same clients, partition and rounds with its own
    /// strategy, optionally with central DP (`dp`), local DP (`local_dp`) and secure
    /// aggregation (`secagg`, SecAgg or SecAgg+). Writes metrics.csv, metrics.json and
    /// accuracy.svg (test accuracy and loss per round; ε per round with DP) to --out.
    /// See coordinator/examples/fedprox-digits.toml, privacy-digits.toml and
    /// secagg-hundred.toml.
    Simulate {
        /// The simulation file.
        file: PathBuf,
        /// Directory for metrics.csv, metrics.json and accuracy.svg.
        #[arg(long, default_value = "simulation-out", value_name = "DIR")]
        out: PathBuf,
    },
    /// Plan a differential-privacy budget (RDP accountant, Poisson-subsampled Gaussian).
    ///
    /// `epsilon` prints ε for a sampling rate, noise multiplier and number of steps (rounds);
    /// `noise` prints the smallest noise multiplier that keeps them within a target ε.
    Privacy {
        #[command(subcommand)]
        question: PrivacyQuestion,
    },
}

#[derive(Debug, Subcommand)]
enum PrivacyQuestion {
    /// ε after STEPS rounds at sampling rate Q and noise multiplier Z.
    Epsilon {
        /// Sampling rate: the fraction of clients (or examples) in each round.
        #[arg(short, long)]
        q: f64,
        /// Noise multiplier z: noise standard deviation over the clipping norm.
        #[arg(short, long)]
        z: f64,
        /// Rounds (steps).
        #[arg(short, long)]
        steps: u64,
        /// δ.
        #[arg(short, long, default_value_t = 1e-5)]
        delta: f64,
    },
    /// The noise multiplier needed for a target ε.
    Noise {
        /// Sampling rate.
        #[arg(short, long)]
        q: f64,
        /// Rounds (steps).
        #[arg(short, long)]
        steps: u64,
        /// Target ε.
        #[arg(short, long)]
        epsilon: f64,
        /// δ.
        #[arg(short, long, default_value_t = 1e-5)]
        delta: f64,
    },
}

fn privacy(question: PrivacyQuestion) -> anyhow::Result<()> {
    use federated::privacy::{compute_rdp, epsilon_from_rdp, noise_multiplier_for, DEFAULT_ORDERS};
    match question {
        PrivacyQuestion::Epsilon { q, z, steps, delta } => {
            let rdp = compute_rdp(q, z, steps, DEFAULT_ORDERS)?;
            let (eps, order) = epsilon_from_rdp(DEFAULT_ORDERS, &rdp, delta)?;
            println!("ε = {eps:.4} at δ = {delta} (q = {q}, z = {z}, {steps} steps; best RDP order {order})");
        }
        PrivacyQuestion::Noise {
            q,
            steps,
            epsilon,
            delta,
        } => {
            let z = noise_multiplier_for(q, steps, epsilon, delta)?;
            println!("noise multiplier z = {z:.4} keeps ε ≤ {epsilon} at δ = {delta} (q = {q}, {steps} steps)");
        }
    }
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Privacy { question } => privacy(question),
        Command::Simulate { file, out } => {
            let sim = SimulationFile::load(&file)?;
            let total = sim.rounds * sim.variants.len() as u64;
            let bar = ProgressBar::new(total).with_style(
                ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} rounds {msg}")
                    .context("progress template")?
                    .progress_chars("=> "),
            );
            let results = run_simulation(&sim, &out, |variant, m| {
                let eps = m.dp_epsilon.map_or(String::new(), |e| format!(" ε {e:.3}"));
                bar.set_message(format!(
                    "{variant}: round {} accuracy {:.3}{eps}",
                    m.round, m.eval_accuracy
                ));
                bar.inc(1);
            })?;
            bar.finish_and_clear();
            println!(
                "{:<32} {:>7} {:>9} {:>9} {:>9} {:>9}",
                "variant", "rounds", "accuracy", "best", "s/round", "ε"
            );
            for r in &results {
                let last = r.rounds.last().map_or(f64::NAN, |m| m.eval_accuracy);
                let best = r.rounds.iter().map(|m| m.eval_accuracy).fold(0.0, f64::max);
                let secs =
                    r.rounds.iter().map(|m| m.seconds).sum::<f64>() / r.rounds.len().max(1) as f64;
                let eps = r
                    .rounds
                    .last()
                    .and_then(|m| m.dp_epsilon)
                    .map_or("-".to_owned(), |e| format!("{e:.3}"));
                println!(
                    "{:<32} {:>7} {:>9.4} {:>9.4} {:>9.3} {:>9}",
                    r.name,
                    r.rounds.len(),
                    last,
                    best,
                    secs,
                    eps
                );
            }
            println!(
                "wrote {}/metrics.csv, metrics.json and accuracy.svg",
                out.display()
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coordinator: {e:#}");
            ExitCode::FAILURE
        }
    }
}
