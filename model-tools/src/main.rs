//! `model-tools`: inspect and evaluate ONNX models from the shell.

mod cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use inference::{BackendChoice, LoadOptions};

/// Inspect and evaluate ONNX models on tract or ONNX Runtime.
#[derive(Debug, Parser)]
#[command(name = "model-tools", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a model's inputs, outputs, opset, operators, size and sha256.
    Inspect(cmd::inspect::InspectArgs),
    /// Classify a labelled .npz dataset and report accuracy and latency.
    Eval(cmd::eval::EvalArgs),
    /// Quantize a float32 model to INT8 (`quantize dynamic|static|auto IN OUT`).
    Quantize(cmd::quantize::QuantizeArgs),
    /// Convert a model to another number format (float16).
    Convert(cmd::convert::ConvertArgs),
    /// Compare a candidate model with its reference: errors, SQNR, accuracy, size, latency.
    Compare(cmd::compare::CompareArgs),
    /// Measure p50/p99 latency and throughput on tract and ONNX Runtime at several batch sizes.
    Bench(cmd::bench::BenchArgs),
    /// Push a model to edge agents, with retries and a summary per agent.
    Push(cmd::push::PushArgs),
}

/// How to load a model; shared by the subcommands that run one.
#[derive(Debug, Args)]
#[command(next_help_heading = "Backend")]
pub struct BackendArgs {
    /// Run on this engine.
    ///
    /// `tract` is pure Rust and always available. `ort` is ONNX Runtime, loaded from
    /// --ort-library or the ORT_DYLIB_PATH environment variable (1.31 or newer). `auto` tries
    /// tract, then ONNX Runtime if tract refuses the model; `auto-ort` the other way round.
    #[arg(long, default_value = "tract", ignore_case = true, value_parser = backend_parser())]
    pub backend: BackendChoice,
    /// Path of libonnxruntime.so for `--backend ort`; defaults to $ORT_DYLIB_PATH.
    #[arg(long, value_name = "FILE")]
    pub ort_library: Option<PathBuf>,
    /// Threads ONNX Runtime may use within one call.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,
}

impl BackendArgs {
    /// The load options these flags describe.
    pub fn options(&self) -> LoadOptions {
        let mut options = LoadOptions::for_choice(self.backend).with_intra_op_threads(self.threads);
        options.ort_library = self.ort_library.clone();
        options
    }
}

/// `--backend`: the names of [`BackendChoice::ALL`] (listed in `--help`; `onnxruntime` also
/// names `ort`), parsed by [`BackendChoice`]'s `FromStr`.
fn backend_parser() -> impl TypedValueParser<Value = BackendChoice> {
    PossibleValuesParser::new(BackendChoice::ALL.map(|backend| match backend {
        BackendChoice::Ort => PossibleValue::new(backend.name()).alias("onnxruntime"),
        other => PossibleValue::new(other.name()),
    }))
    .try_map(|name| name.parse::<BackendChoice>())
}

fn main() -> ExitCode {
    // Before any thread starts: ONNX Runtime reads these when it loads.
    inference::harden_ort_environment();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Quantize(args) => cmd::quantize::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Push(args) => cmd::push::run(args),
        Command::Convert(args) => cmd::convert::run(args),
        Command::Compare(args) => cmd::compare::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            if let Some(gate) = err.downcast_ref::<cmd::compare::GateFailed>() {
                gate.0
                    .iter()
                    .for_each(|f| eprintln!("model-tools: gate failed: {f}"));
                return ExitCode::from(cmd::compare::GATE_FAILED_EXIT);
            }
            eprintln!("model-tools: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn backend_of(args: &[&str]) -> Result<BackendChoice, clap::Error> {
        let cli = Cli::try_parse_from(["model-tools", "eval", "m.onnx"].iter().chain(args))?;
        let Command::Eval(eval) = cli.command else {
            panic!("not eval");
        };
        Ok(eval.backend.backend)
    }

    #[test]
    fn backend_lists_its_values_in_help_and_parses_them() {
        let help = Cli::command()
            .find_subcommand_mut("eval")
            .unwrap()
            .render_help()
            .to_string();
        let values = "[possible values: tract, ort, auto, auto-ort]";
        assert!(help.contains(values), "{help}");
        assert_eq!(backend_of(&[]).unwrap(), BackendChoice::Tract);
        assert_eq!(
            backend_of(&["--backend", "ort"]).unwrap(),
            BackendChoice::Ort
        );
        assert_eq!(
            backend_of(&["--backend", "ORT"]).unwrap(),
            BackendChoice::Ort
        );
        assert_eq!(
            backend_of(&["--backend", "onnxruntime"]).unwrap(),
            BackendChoice::Ort
        );
        assert_eq!(
            backend_of(&["--backend", "auto"]).unwrap(),
            BackendChoice::Auto
        );
        assert_eq!(
            backend_of(&["--backend", "Auto-Ort"]).unwrap(),
            BackendChoice::AutoOrt
        );
        let err = backend_of(&["--backend", "tvm"]).unwrap_err().to_string();
        assert!(err.contains(values), "{err}");
    }
}
