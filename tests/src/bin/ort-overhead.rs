//! The ONNX Runtime path against python onnxruntime, on the real models: for each model, the
//! median time per call of python `InferenceSession.run`, of a bare `ort` session in this
//! process, and of `Model::run` on the ORT backend (what the agent's compute histogram times),
//! on the same inputs and thread settings, interleaved round by round; and the ratios.
//!
//! ```sh
//! source scripts/env.sh    # writes the cases, sets EDGE_ML_REAL_MODELS, ORT_DYLIB_PATH, EDGE_ML_PYTHON
//! cargo run --release -p integration-tests --bin ort-overhead -- --rounds 15 --threads 1
//! # the environment's log level before issue 13 (what `ort`'s tracing feature sets):
//! cargo run --release -p integration-tests --bin ort-overhead -- --ort-log verbose
//! ```
//!
//! Python runs in a coprocess (`tests/real_models/time_onnxruntime.py`) that keeps its sessions
//! between rounds; every side gets 10 untimed calls first. Sessions: intra-op threads as given,
//! 1 inter-op thread, everything else at ONNX Runtime's defaults.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use inference::{BackendKind, LoadOptions, Model, OrtRuntime, Tensor};
use integration_tests::real_models::{read_data_sets, Index, ENV};
use ort::logging::LogLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::DynValue;

struct Args {
    rounds: usize,
    threads: usize,
    target: Duration,
    only: Option<String>,
    log: Option<LogLevel>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        rounds: 15,
        threads: 1,
        target: Duration::from_millis(30),
        only: None,
        log: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--rounds" => args.rounds = value()?.parse::<usize>()?.max(1),
            "--threads" => args.threads = value()?.parse::<usize>()?.max(1),
            "--round-ms" => args.target = Duration::from_millis(value()?.parse()?),
            "--models" => args.only = Some(value()?),
            "--ort-log" => {
                args.log = Some(match value()?.as_str() {
                    "verbose" => LogLevel::Verbose,
                    "info" => LogLevel::Info,
                    "warning" => LogLevel::Warning,
                    "error" => LogLevel::Error,
                    other => bail!("unknown --ort-log `{other}`; use verbose, info, warning or error"),
                })
            }
            "--bench" => {}
            other => bail!(
                "unknown argument `{other}`; use --rounds N --threads N --round-ms MS --models a,b --ort-log LEVEL"
            ),
        }
    }
    Ok(args)
}

/// The python coprocess.
struct Python {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Python {
    fn start() -> anyhow::Result<Self> {
        let python = std::env::var("EDGE_ML_PYTHON")
            .context("EDGE_ML_PYTHON is not set; `source scripts/env.sh` sets it")?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("real_models/time_onnxruntime.py");
        let mut child = Command::new(python)
            .arg("-W")
            .arg("ignore")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", script.display()))?;
        let stdin = child.stdin.take().context("python's stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("python's stdout")?);
        Ok(Self {
            child,
            stdin,
            stdout,
        })
    }

    fn time(
        &mut self,
        dir: &Path,
        inputs: &[String],
        threads: usize,
        calls: usize,
    ) -> anyhow::Result<Duration> {
        let request = serde_json::json!({
            "dir": dir, "inputs": inputs, "threads": threads, "calls": calls,
        });
        writeln!(self.stdin, "{request}")?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the python timer exited (see its error above)");
        }
        let answer: serde_json::Value = serde_json::from_str(&line)?;
        let secs = answer["seconds_per_call"]
            .as_f64()
            .with_context(|| format!("unexpected answer from python: {line}"))?;
        Ok(Duration::from_secs_f64(secs))
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn to_direct(tensor: &Tensor) -> anyhow::Result<DynValue> {
    let shape = tensor.shape().to_vec();
    macro_rules! owned {
        ($a:expr) => {
            ort::value::Tensor::from_array((shape, $a.iter().cloned().collect::<Vec<_>>()))?
                .into_dyn()
        };
    }
    Ok(match tensor {
        Tensor::F16(a) => owned!(a),
        Tensor::F32(a) => owned!(a),
        Tensor::F64(a) => owned!(a),
        Tensor::I8(a) => owned!(a),
        Tensor::I16(a) => owned!(a),
        Tensor::I32(a) => owned!(a),
        Tensor::I64(a) => owned!(a),
        Tensor::U8(a) => owned!(a),
        Tensor::U16(a) => owned!(a),
        Tensor::U32(a) => owned!(a),
        Tensor::U64(a) => owned!(a),
        Tensor::Bool(a) => owned!(a),
        Tensor::String(_) => bail!("string inputs are not timed"),
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn micros(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let root = PathBuf::from(std::env::var(ENV).with_context(|| {
        format!("{ENV} is not set; `source scripts/env.sh` writes the cases and sets it")
    })?);
    let index = Index::read(&root).map_err(anyhow::Error::msg)?;
    let options = LoadOptions::new(BackendKind::Ort)
        .with_intra_op_threads(args.threads)
        .with_max_concurrency(1);
    let runtime = OrtRuntime::get(None)?;
    if let Some(level) = args.log {
        runtime.environment().set_log_level(level);
    }
    let mut python = Python::start()?;
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "ONNX Runtime {} ({}); environment log level {}; intra-op threads {}, inter-op 1; {} rounds of ~{} ms per side; load average at start {}",
        runtime.version(),
        runtime.library().display(),
        args.log.map_or_else(|| "as the backend sets it".to_owned(), |l| format!("{l:?}")),
        args.threads,
        args.rounds,
        args.target.as_millis(),
        loadavg.trim()
    );
    println!("| model | python session.run µs | direct ort µs | Model::run µs | ours/python | ours/direct | direct/python |");
    println!("|---|---|---|---|---|---|---|");
    for m in &index.models {
        if args
            .only
            .as_ref()
            .is_some_and(|only| !only.split(',').any(|o| o == m.name))
        {
            continue;
        }
        let dir = root.join(&m.dir);
        let bytes = std::fs::read(dir.join("model.onnx"))?;
        let set = read_data_sets(&dir, &m.inputs, &m.outputs)
            .map_err(anyhow::Error::msg)?
            .into_iter()
            .next()
            .context("no data set")?;
        let model = Model::load(bytes.clone(), &options)?;
        let mut session = Session::builder(runtime.environment())?
            .with_intra_threads(args.threads)
            .map_err(<ort::Error>::from)?
            .with_inter_threads(1)
            .map_err(<ort::Error>::from)?
            .commit_from_memory(&bytes)?;
        let mut ours = || -> anyhow::Result<()> {
            std::hint::black_box(
                model.run(set.inputs.iter().map(|(n, t)| (n.as_str(), t.clone())))?,
            );
            Ok(())
        };
        let mut direct = || -> anyhow::Result<()> {
            let values = set
                .inputs
                .iter()
                .map(|(n, t)| Ok((n.as_str(), SessionInputValue::from(to_direct(t)?))))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let outputs = session.run(values)?;
            std::hint::black_box(outputs);
            Ok(())
        };
        for _ in 0..10 {
            ours()?;
            direct()?;
        }
        let start = Instant::now();
        ours()?;
        let once = start.elapsed();
        let calls = (args.target.as_nanos() / once.as_nanos().max(1)).clamp(1, 10_000) as usize;
        let time = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<Duration> {
            let start = Instant::now();
            for _ in 0..calls {
                f()?;
            }
            Ok(start.elapsed() / calls as u32)
        };
        let (mut tp, mut td, mut to) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..args.rounds {
            // Rotate the order so that no side always runs first after the others.
            for side in 0..3 {
                match (round + side) % 3 {
                    0 => tp.push(python.time(&dir, &m.inputs, args.threads, calls)?),
                    1 => td.push(time(&mut direct)?),
                    _ => to.push(time(&mut ours)?),
                }
            }
        }
        let (p, d, o) = (median(tp), median(td), median(to));
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        println!(
            "| {} | {} | {} | {} | {:.3} | {:.3} | {:.3} |",
            m.name,
            micros(p),
            micros(d),
            micros(o),
            ratio(o, p),
            ratio(o, d),
            ratio(d, p)
        );
    }
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at end {}", loadavg.trim());
    Ok(())
}
