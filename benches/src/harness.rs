//! What the load generators share besides the closed loop: an agent in this process on
//! loopback (auth off), optionally on its own CPUs and the client on others
//! (`sched_setaffinity` on every thread of each side), optionally logging like the shipped
//! agent, and the conditions of a run printed with its figures.

use anyhow::Context;
use edge_agent::AgentConfig;
use tokio::runtime::Runtime;

/// The options every load generator takes.
#[derive(Debug, Clone, Default)]
pub struct HarnessArgs {
    /// CPUs for the agent's threads (`--server-cpus 0` or `0,1` or `0-1`).
    pub server_cpus: Option<Vec<usize>>,
    /// CPUs for the client's threads (`--client-cpus 1`).
    pub client_cpus: Option<Vec<usize>>,
    /// Log like the shipped agent (`info` to stderr) instead of not at all (`--log`).
    pub log: bool,
    /// Warm-up before each measured configuration, in seconds (`--warm-up S`).
    pub warm_up: f64,
}

/// The usage text of [`HarnessArgs`]' flags.
pub const HARNESS_USAGE: &str = "[--server-cpus LIST] [--client-cpus LIST] [--log] [--warm-up S]";

impl HarnessArgs {
    /// Defaults: no pinning, no logging, `warm_up` seconds of warm-up.
    pub fn new(warm_up: f64) -> Self {
        Self {
            warm_up,
            ..Self::default()
        }
    }

    /// Takes `flag` (and its value from `rest`) when it is one of these options; `Ok(false)`
    /// when it is not.
    pub fn take(
        &mut self,
        flag: &str,
        rest: &mut impl Iterator<Item = String>,
    ) -> anyhow::Result<bool> {
        let mut value = || rest.next().with_context(|| format!("{flag} needs a value"));
        match flag {
            "--server-cpus" => self.server_cpus = Some(parse_cpus(&value()?)?),
            "--client-cpus" => self.client_cpus = Some(parse_cpus(&value()?)?),
            "--log" => self.log = true,
            "--warm-up" => self.warm_up = value()?.parse().context("--warm-up S")?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Parses the value of `--concurrency`, a list of client counts like `1,16,64`.
pub fn parse_concurrency(value: Option<String>) -> anyhow::Result<Vec<usize>> {
    value
        .context("--concurrency needs a list like 1,16,64")?
        .split(',')
        .map(|n| {
            n.parse()
                .with_context(|| format!("--concurrency: `{n}` is not a number"))
        })
        .collect()
}

/// Parses a CPU list like `0`, `0,2` or `0-3`.
pub fn parse_cpus(text: &str) -> anyhow::Result<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.trim().parse::<usize>()?..=b.trim().parse::<usize>()?),
            None => cpus.push(part.trim().parse()?),
        }
    }
    anyhow::ensure!(!cpus.is_empty(), "an empty CPU list");
    Ok(cpus)
}

/// Pins the calling thread (and the threads it starts later) to `cpus`.
#[allow(
    unsafe_code,
    reason = "sched_setaffinity has no safe wrapper among the workspace's dependencies"
)]
pub fn pin_current_thread(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: `set` is a plain bitmask on the stack, sized as passed; pid 0 is this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn runtime(name: &str, cpus: Option<Vec<usize>>) -> anyhow::Result<Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all().thread_name(name);
    if let Some(cpus) = cpus {
        builder.worker_threads(cpus.len());
        builder.on_thread_start(move || {
            if let Err(e) = pin_current_thread(&cpus) {
                eprintln!("cannot pin a thread to CPUs {cpus:?}: {e}");
            }
        });
    }
    Ok(builder.build()?)
}

/// An agent serving on loopback in this process, and the runtime the client runs on.
pub struct Harness {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The agent's own runtime when it is pinned apart; else it shares the client's.
    server_rt: Option<Runtime>,
    client_rt: Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), edge_agent::StartError>>,
    _dir: tempfile::TempDir,
    args: HarnessArgs,
}

impl Harness {
    /// Starts the agent (auth off, data in a temporary folder, `tweak` applied to its config)
    /// with the pinning and logging of `args`.
    pub fn start(args: &HarnessArgs, tweak: impl FnOnce(&mut AgentConfig)) -> anyhow::Result<Self> {
        if args.log {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_writer(std::io::stderr)
                .init();
        }
        let dir = tempfile::tempdir()?;
        let mut config = AgentConfig {
            data_dir: dir.path().to_path_buf(),
            ..AgentConfig::default()
        };
        config.auth.dev_open = true;
        config.limits.shutdown_grace_secs = 1;
        tweak(&mut config);
        let apart = args.server_cpus.is_some() || args.client_cpus.is_some();
        let server_rt = if apart {
            Some(runtime("agent", args.server_cpus.clone())?)
        } else {
            None
        };
        let client_rt = runtime(
            if apart { "client" } else { "shared" },
            args.client_cpus.clone(),
        )?;
        // Threads the agent starts outside its runtime (inference pool, epoch ticker) inherit
        // the affinity of the thread that builds it: this one, pinned for the while.
        if let Some(cpus) = &args.server_cpus {
            pin_current_thread(cpus)?;
        }
        let rt = server_rt.as_ref().unwrap_or(&client_rt);
        let (base, stop, server) = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let base = format!("http://{}", listener.local_addr()?);
            let state = edge_agent::build_state(config, None).await?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(edge_agent::serve_state(state, listener, async {
                let _ = stopped.await;
            }));
            Ok::<_, anyhow::Error>((base, stop, server))
        })?;
        if let Some(cpus) = &args.client_cpus {
            pin_current_thread(cpus)?;
        } else if args.server_cpus.is_some() {
            let all: Vec<usize> = (0..cpu_count()).collect();
            pin_current_thread(&all)?;
        }
        Ok(Self {
            base,
            server_rt,
            client_rt,
            stop,
            server,
            _dir: dir,
            args: args.clone(),
        })
    }

    /// Runs a client future to completion on the client's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.client_rt.block_on(f)
    }

    /// Stops the agent and waits for it.
    pub fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        let rt = self.server_rt.as_ref().unwrap_or(&self.client_rt);
        rt.block_on(self.server)??;
        Ok(())
    }

    /// Prints the conditions of the run as Markdown list items: build profile, CPUs and
    /// pinning, logging, warm-up, the load average now, plus `extra` lines.
    pub fn print_conditions(&self, extra: &[String]) {
        let a = &self.args;
        let profile = if cfg!(debug_assertions) {
            "debug (debug assertions on): not for figures"
        } else {
            "release (no debug assertions)"
        };
        let n = cpu_count();
        let cores = match (&a.server_cpus, &a.client_cpus) {
            (None, None) => format!(
                "shared: agent and client on one tokio runtime in this process, all {n} CPUs"
            ),
            (s, c) => {
                let show = |x: &Option<Vec<usize>>| {
                    x.as_ref()
                        .map_or_else(|| format!("any of {n}"), |v| format!("{v:?}"))
                };
                let disjoint = match (s, c) {
                    (Some(s), Some(c)) => !s.iter().any(|x| c.contains(x)),
                    _ => false,
                };
                format!(
                    "agent runtime on CPUs {}, client runtime on CPUs {}: {}",
                    show(s),
                    show(c),
                    if disjoint { "not shared" } else { "shared" }
                )
            }
        };
        println!("- build: {profile}");
        println!("- cores: {cores}");
        println!(
            "- logging: {}",
            if a.log {
                "on (info to stderr, as the shipped agent)"
            } else {
                "off (no tracing subscriber)"
            }
        );
        println!("- warm-up: {} s per configuration", a.warm_up);
        println!("- load average at start: {}", load_average());
        for line in extra {
            println!("- {line}");
        }
        println!();
    }
}

/// The CPUs this process may use.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `/proc/loadavg`'s first three fields (1, 5, 15 minutes), or why not.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |e| format!("unknown ({e})"),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}
