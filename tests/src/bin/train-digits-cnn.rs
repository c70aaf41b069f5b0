//! Trains the digits CNN of `models/digits_cnn_trained.onnx` with our own trainer
//! (`integration_tests::digits_cnn`, `federated::train`) and writes it.
//!
//! ```sh
//! cargo run -p integration-tests --bin train-digits-cnn            # rewrites the committed model
//! cargo run -p integration-tests --bin train-digits-cnn -- --epochs 5 --out /tmp/cnn.onnx
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use integration_tests::digits_cnn::{load_digits, train, Recipe, FILE_NAME};
use sha2::{Digest, Sha256};

const LONG_ABOUT: &str = "\
Trains the digits CNN (two Conv 3x3 -> BatchNormalization -> Relu -> MaxPool blocks of 16 and
32 channels, then a Gemm to 10 logits) with the platform's own trainer (federated::train,
candle autodiff), on the training split of a digits .npz, and writes the ONNX model.

With the defaults it rewrites models/digits_cnn_trained.onnx; on the machine that made it the
bytes are identical (every random choice is seeded), so `git status models/` shows no change
and models/MANIFEST.sha256 still holds. Another CPU may round differently (candle picks its SIMD
matrix kernels at run time) and write a model that differs in the last bits.

The test accuracy printed after each epoch is only reported: the model written is the one after
the last epoch.";

/// Train the digits CNN of models/ with federated's trainer.
#[derive(Debug, Parser)]
#[command(name = "train-digits-cnn", about, long_about = LONG_ABOUT)]
struct Args {
    /// The digits: an .npz with x_train, y_train, x_test, y_test (64 pixels a row).
    #[arg(long, default_value = "models/digits.npz", value_name = "NPZ")]
    data: PathBuf,
    /// Where to write the trained model.
    #[arg(long, default_value_t = format!("models/{FILE_NAME}"), value_name = "ONNX")]
    out: String,
    /// Passes over the training split.
    #[arg(long, default_value_t = Recipe::default().epochs)]
    epochs: usize,
    /// Examples per SGD step.
    #[arg(long, default_value_t = Recipe::default().batch_size)]
    batch_size: usize,
    /// Learning rate of the first epoch; it decays along a cosine towards 0.
    #[arg(long, default_value_t = Recipe::default().lr)]
    lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = Recipe::default().momentum)]
    momentum: f64,
    /// L2 weight decay.
    #[arg(long, default_value_t = Recipe::default().weight_decay)]
    weight_decay: f64,
    /// Seed of the initial weights and of the shuffling.
    #[arg(long, default_value_t = Recipe::default().seed)]
    seed: u64,
    /// Fail, writing nothing, if the test accuracy ends below this fraction.
    #[arg(long, default_value_t = 0.97, value_name = "FRACTION")]
    min_accuracy: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let recipe = Recipe {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        momentum: args.momentum,
        weight_decay: args.weight_decay,
        seed: args.seed,
    };
    let train_set = load_digits(&args.data, "train")?;
    let test_set = load_digits(&args.data, "test")?;
    let bar = ProgressBar::new(recipe.epochs as u64).with_style(
        ProgressStyle::with_template("{spinner} training [{bar:30}] {pos}/{len} epochs {msg}")
            .context("progress template")?
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let trained = train(&recipe, &train_set, &test_set, |e| {
        bar.set_message(format!(
            "lr {:.4} loss {:.4} test accuracy {:.2}%",
            e.lr,
            e.train_loss,
            e.test_accuracy * 100.0
        ));
        bar.inc(1);
        log_epoch(e);
    })?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let summary = format!(
        "{} training digits, {} epochs, {seconds:.1} s: train accuracy {:.2}%, test accuracy {:.2}% ({} test digits)",
        train_set.len(),
        recipe.epochs,
        trained.train_accuracy * 100.0,
        trained.test_accuracy * 100.0,
        test_set.len()
    );
    anyhow::ensure!(
        trained.test_accuracy >= args.min_accuracy,
        "{summary}, below --min-accuracy {}; nothing written",
        args.min_accuracy
    );
    std::fs::write(&args.out, &trained.onnx).with_context(|| format!("writing {}", args.out))?;
    println!("{summary}");
    println!(
        "wrote {} ({} bytes, sha256 {})",
        args.out,
        trained.onnx.len(),
        hex::encode(Sha256::digest(&trained.onnx))
    );
    Ok(())
}

/// One line per epoch on stderr when the progress bar is hidden (stderr is not a terminal), so
/// that logs of a non-interactive run still show the training.
fn log_epoch(e: &integration_tests::digits_cnn::EpochReport) {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        eprintln!(
            "epoch {}/{}: lr {:.4} loss {:.4} test accuracy {:.2}%",
            e.epoch,
            e.epochs,
            e.lr,
            e.train_loss,
            e.test_accuracy * 100.0
        );
    }
}
