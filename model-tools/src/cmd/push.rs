//! `model-tools push`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use model_tools::push::{
    push_to_agents, AgentReport, PushError, PushEvent, PushOptions, RetryPolicy, Token, Upload,
};

/// Arguments of `push`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
The token is read from $EDGE_AGENT_TOKEN, or from --token-file; never from the command line,
where other users could read it in the process list. It needs the agent's `admin` role.

The model is checked to be ONNX and its sha256 is sent with it: the agent refuses bytes that do
not hash to it, and loads the model before storing anything.

Examples:
  export EDGE_AGENT_TOKEN=...      # an admin token of the agents
  model-tools push models/digits_cnn.onnx --agent http://10.0.0.7:8080 \\
      --agent http://10.0.0.8:8080 --name digits --version 3
  model-tools push model_int8.onnx --agent 10.0.0.7:8080 --name det --version 2 \\
      --config '{\"backend\": \"auto\", \"max_concurrency\": 2}' --no-activate \\
      --token-file ~/.config/edge/admin.token

Exit status: 0 when every agent took the model, 1 when any did not (the table says which and
why), 2 for a usage error.")]
pub struct PushArgs {
    /// The ONNX model file to push.
    pub model: PathBuf,
    /// An agent's base URL, e.g. http://10.0.0.7:8080 (http:// is assumed when left out).
    /// Repeat for several agents.
    #[arg(long = "agent", value_name = "URL", required = true)]
    pub agents: Vec<String>,
    /// The model's name on the agents: letters, digits, `_`, `-` or `.`.
    #[arg(long)]
    pub name: String,
    /// The version to create, 1 or more. Versions are immutable: a version the agent already
    /// has is refused (409).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub version: u64,
    /// The serving config, as JSON or as @FILE holding JSON, e.g.
    /// '{"backend": "auto", "max_concurrency": 2}' (see docs/edge-agent.md, ModelConfig).
    #[arg(long, value_name = "JSON")]
    pub config: Option<String>,
    /// Store the new version without making it the active one; activate it later with
    /// POST /v1/models/NAME/versions/V/activate. (A model's first version is activated anyway.)
    #[arg(long)]
    pub no_activate: bool,
    /// Read the token from this file (its only content) instead of $EDGE_AGENT_TOKEN.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Retries after a connection error or a 5xx answer, waiting 0.5 s, 1 s, 2 s, 4 s, then 8 s
    /// (or the agent's Retry-After, at most 8 s). A 4xx answer is never retried.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub retries: u32,
    /// Agents pushed to at once.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub parallel: u64,
    /// The longest one attempt may take, upload and the agent's load of the model included.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub timeout: u64,
}

/// Pushes to every agent with a progress bar each, then prints a table of the outcomes.
pub fn run(args: PushArgs) -> anyhow::Result<()> {
    let token = match &args.token_file {
        Some(file) => Some(Token::from_file(file)?),
        None => Token::from_env()?,
    };
    if token.is_none() {
        eprintln!(
            "model-tools: warning: no token ($EDGE_AGENT_TOKEN is unset and no --token-file was \
             given); pushing without one"
        );
    }
    let mut upload =
        Upload::from_file(&args.model, &args.name, args.version)?.with_activate(!args.no_activate);
    if let Some(config) = &args.config {
        upload = upload.with_config(read_config(config)?)?;
    }
    let options = PushOptions {
        token,
        retry: RetryPolicy {
            retries: args.retries,
            ..RetryPolicy::default()
        },
        timeout: Duration::from_secs(args.timeout.max(1)),
        parallel: usize::try_from(args.parallel).unwrap_or(usize::MAX),
        ..PushOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the I/O runtime")?;
    let bars = Bars::new(&args.agents, upload.len());
    let handler = bars.clone();
    let reports = runtime.block_on(push_to_agents(
        &args.agents,
        &upload,
        &options,
        move |event| handler.on(event),
    ));
    bars.multi.clear().ok();

    let mut out = std::io::stdout().lock();
    write_table(&mut out, &upload, &reports)?;
    out.flush()?;
    let failed: Vec<&AgentReport> = reports.iter().filter(|r| r.result.is_err()).collect();
    for report in &failed {
        if let Err(e) = &report.result {
            eprintln!("model-tools: {}: {e}", report.agent);
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} agent(s) did not take `{}` version {}",
            failed.len(),
            reports.len(),
            upload.name(),
            upload.version()
        );
    }
    Ok(())
}

/// `--config`: JSON, or `@FILE` holding JSON.
fn read_config(text: &str) -> anyhow::Result<serde_json::Value> {
    let (text, origin) = match text.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the config file `{path}`"))?,
            format!("the config file `{path}`"),
        ),
        None => (text.to_owned(), "--config".to_owned()),
    };
    serde_json::from_str(&text).with_context(|| format!("{origin} is not valid JSON"))
}

/// One byte bar per agent; retry notices above them (or on stderr when they are hidden).
#[derive(Clone)]
struct Bars {
    multi: MultiProgress,
    bars: Arc<Vec<ProgressBar>>,
    agents: Arc<Vec<String>>,
}

impl Bars {
    fn new(agents: &[String], bytes: u64) -> Self {
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template(
            "{prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .expect("static template")
        .progress_chars("=> ");
        let bars = agents
            .iter()
            .map(|agent| {
                multi.add(
                    ProgressBar::new(bytes)
                        .with_style(style.clone())
                        .with_prefix(agent.clone()),
                )
            })
            .collect();
        Self {
            multi,
            bars: Arc::new(bars),
            agents: Arc::new(agents.to_vec()),
        }
    }

    fn on(&self, event: PushEvent) {
        match event {
            PushEvent::Attempt { agent, attempt } => {
                self.bars[agent].set_position(0);
                if attempt > 1 {
                    self.bars[agent].set_message(format!("attempt {attempt}"));
                }
            }
            PushEvent::Sent { agent, bytes, .. } => self.bars[agent].set_position(bytes),
            PushEvent::Retrying {
                agent,
                attempt,
                delay,
                reason,
            } => {
                let line = format!(
                    "model-tools: {}: attempt {attempt} failed ({reason}); retrying in {:.1} s",
                    self.agents[agent],
                    delay.as_secs_f64()
                );
                if self.multi.is_hidden() {
                    eprintln!("{line}");
                } else {
                    self.multi.println(line).ok();
                }
            }
            PushEvent::Finished { agent, .. } => self.bars[agent].finish_and_clear(),
        }
    }
}

fn write_table(
    out: &mut impl Write,
    upload: &Upload,
    reports: &[AgentReport],
) -> std::io::Result<()> {
    writeln!(
        out,
        "pushed `{}` version {} ({} bytes, sha256 {})",
        upload.name(),
        upload.version(),
        upload.len(),
        upload.sha256()
    )?;
    let width = reports
        .iter()
        .map(|r| r.agent.len())
        .chain([5])
        .max()
        .unwrap_or(5);
    writeln!(
        out,
        "{:width$}  {:6}  {:6}  {:>8}  {:>8}  detail",
        "agent", "result", "status", "attempts", "time"
    )?;
    for r in reports {
        let status = r.status().map_or_else(|| "-".to_owned(), |s| s.to_string());
        let (result, detail) = match &r.result {
            Ok(p) => (
                "ok",
                format!(
                    "active version {}{}",
                    p.active_version
                        .map_or_else(|| "none".to_owned(), |v| v.to_string()),
                    if p.recovered {
                        " (stored by an earlier attempt)"
                    } else {
                        ""
                    }
                ),
            ),
            Err(e) => ("failed", short(e).to_owned()),
        };
        writeln!(
            out,
            "{:width$}  {result:6}  {status:6}  {:8}  {:>6.2} s  {detail}",
            r.agent,
            r.attempts,
            r.elapsed.as_secs_f64()
        )?;
    }
    Ok(())
}

/// A few words for the table; the full message goes to stderr.
fn short(e: &PushError) -> &'static str {
    match e {
        PushError::InvalidUrl { .. } => "invalid agent URL",
        PushError::Unauthorized { .. } => "token missing or unknown",
        PushError::Forbidden { .. } => "token lacks the admin role",
        PushError::VersionExists { .. } => "version already exists",
        PushError::TooLarge { .. } => "over the agent's upload limit",
        PushError::Refused { .. } => "refused by the agent",
        PushError::Server { .. } => "agent error",
        PushError::Transport { .. } => "unreachable",
    }
}
