//! `edge-agent`: serve ONNX models over the Open Inference Protocol v2.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use edge_agent::{AgentConfig, LogFormat};

/// An edge model server: OIP v2 inference, a model repository, metrics.
#[derive(Debug, Parser)]
#[command(name = "edge-agent", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API until SIGINT or SIGTERM, then drain and exit.
    Serve(ServeArgs),
    /// Print a commented example configuration file.
    PrintExampleConfig,
    /// Print the SHA-256 of a token, for the `[[auth.tokens]]` table of the config.
    HashToken {
        /// The token; read from stdin when absent (keeps it out of shell history).
        token: Option<String>,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Configuration file (TOML); see `edge-agent print-example-config`.
    ///
    /// Layers, each overriding the ones before: defaults, this file, EDGE_AGENT__* environment
    /// variables (EDGE_AGENT__LIMITS__INFERENCE_THREADS=4), these flags.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR:PORT", help_heading = "Server")]
    listen: Option<SocketAddr>,
    /// Directory of the agent's own state (SQLite and model blobs) [default: edge-agent-data].
    #[arg(long, value_name = "DIR", help_heading = "Server")]
    data_dir: Option<PathBuf>,
    /// Read-only Triton-style model repository: <DIR>/<model>/<version>/model.onnx, with an
    /// optional <DIR>/<model>/config.toml.
    #[arg(long, value_name = "DIR", help_heading = "Server")]
    model_dir: Option<PathBuf>,
    /// Whether /v2/health/ready is 503 while a model the agent was to serve failed to load
    /// (readiness.strict) [default: true].
    #[arg(long, value_name = "BOOL", help_heading = "Server")]
    strict_readiness: Option<bool>,
    /// Serve every route without authentication. Local development only.
    #[arg(long, help_heading = "Security")]
    dev_open: bool,
    /// Log format [default: text].
    #[arg(long, value_enum, value_name = "FORMAT", help_heading = "Logging")]
    log_format: Option<LogFormat>,
}

fn init_tracing(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn generate_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    Ok(hex::encode(bytes))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = AgentConfig::load(args.config.as_deref(), std::env::vars())?;
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if args.model_dir.is_some() {
        config.model_dir = args.model_dir;
    }
    if let Some(strict) = args.strict_readiness {
        config.readiness.strict = strict;
    }
    if args.dev_open {
        config.auth.dev_open = true;
    }
    if let Some(format) = args.log_format {
        config.log_format = format;
    }
    init_tracing(config.log_format);

    let generated = if config.auth.dev_open {
        tracing::warn!(
            "authentication is OFF (--dev-open): every route is open to anyone who can connect"
        );
        None
    } else if config.auth.tokens.is_empty() {
        let token = generate_token()?;
        eprintln!("edge-agent: no tokens configured; generated an admin token for this run (shown once):\n\n    {token}\n");
        Some(token)
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let state = edge_agent::build_state(config, generated.as_deref()).await?;
    tracing::info!(%addr, models = state.repo.loaded_count(), "edge-agent listening");
    edge_agent::serve_state(state, listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(serve(args)),
        Command::PrintExampleConfig => {
            print!("{}", AgentConfig::example());
            Ok(())
        }
        Command::HashToken { token } => {
            let token = match token {
                Some(t) => t,
                None => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim().to_owned()
                }
            };
            anyhow::ensure!(!token.is_empty(), "the token is empty");
            println!("{}", edge_agent::hash_token(&token));
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    // Before any thread starts: ONNX Runtime reads these when it loads (see the function).
    #[cfg(feature = "ort")]
    inference::harden_ort_environment();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("edge-agent: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn log_format_takes_only_its_values_and_lists_them() {
        let cli = Cli::try_parse_from(["edge-agent", "serve", "--log-format", "json"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve: {cli:?}");
        };
        assert_eq!(args.log_format, Some(LogFormat::Json));
        let err = Cli::try_parse_from(["edge-agent", "serve", "--log-format", "yaml"]).unwrap_err();
        assert!(
            err.to_string().contains("[possible values: text, json]"),
            "{err}"
        );
        let help = Cli::command()
            .find_subcommand_mut("serve")
            .unwrap()
            .render_help()
            .to_string();
        assert!(help.contains("[possible values: text, json]"), "{help}");
    }
}
