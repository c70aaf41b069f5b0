//! Connection hygiene under load: a normal client's latency with and without 2,000 idle or
//! half-open connections held against the agent, and how long those take to be closed.
//!
//! Starts an agent in this process on 127.0.0.1 (auth off, default `[server]` settings
//! unless `--header-timeout-ms` is given) on its own runtime, pushes the digits MLP (tract),
//! then:
//! 1. runs closed-loop clients for `--seconds` at each `--concurrency` (baseline);
//! 2. opens `--idle` connections from 127.0.1.x (250 per address, under the per-address cap):
//!    half send nothing, half a partial request head;
//! 3. runs the same clients again while those are held, checking with
//!    `edge_agent_open_connections` that they are;
//! 4. waits for the agent to close them, and reports when it did.
//!
//! ```sh
//! cargo run --release -p platform-benches --bin conn-load
//! cargo run --release -p platform-benches --bin conn-load -- --idle 2000 --seconds 3 --concurrency 1,16
//! ```
//!
//! Loopback only. Needs about `2 × idle + 100` file descriptors (`ulimit -n`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use edge_agent::AgentConfig;
use inference::test_support::model_bytes;
use platform_benches::{closed_loop, LoadRun};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Args {
    idle: usize,
    seconds: f64,
    concurrency: Vec<usize>,
    header_timeout_ms: Option<u64>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        idle: 2000,
        seconds: 3.0,
        concurrency: vec![1, 16],
        header_timeout_ms: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--idle" => args.idle = value()?.parse()?,
            "--seconds" => args.seconds = value()?.parse()?,
            "--header-timeout-ms" => args.header_timeout_ms = Some(value()?.parse()?),
            "--concurrency" => {
                args.concurrency = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--bench" => {}
            other => anyhow::bail!(
                "unknown argument `{other}`; use --idle N --seconds S --concurrency 1,16 \
                 --header-timeout-ms MS"
            ),
        }
    }
    Ok(args)
}

async fn open_connections(client: &reqwest::Client, base: &str) -> anyhow::Result<i64> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix("edge_agent_open_connections "))
        .context("no edge_agent_open_connections in /metrics")?
        .trim()
        .parse()
        .context("edge_agent_open_connections is not a number")
}

/// Opens a held connection from 127.0.1.x; returns when the agent closed it (from open).
async fn hold(
    agent: SocketAddr,
    index: usize,
) -> anyhow::Result<tokio::task::JoinHandle<Duration>> {
    let from: SocketAddr = format!("127.0.1.{}:0", 1 + index / 250).parse()?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(from)?;
    let mut stream = socket.connect(agent).await?;
    let opened = Instant::now();
    if index % 2 == 1 {
        stream
            .write_all(b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: agent\r\nContent-Le")
            .await?;
    }
    Ok(tokio::spawn(async move {
        let mut buf = [0u8; 256];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return opened.elapsed(),
                Ok(_) => {}
            }
        }
    }))
}

fn row(label: &str, concurrency: usize, run: &LoadRun) {
    println!(
        "| {label} | {concurrency} | {:.0} | {:.3} | {:.3} | {} |",
        run.rate(),
        run.percentile_ms(0.50),
        run.percentile_ms(0.99),
        run.errors
    );
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    let mut config = AgentConfig {
        data_dir: dir.path().to_path_buf(),
        ..AgentConfig::default()
    };
    config.auth.dev_open = true;
    config.limits.shutdown_grace_secs = 1;
    config.limits.inference_threads = 2;
    if let Some(ms) = args.header_timeout_ms {
        config.server.header_read_timeout_ms = ms;
    }
    let header_timeout = config.server.header_read_timeout();

    // The agent on its own runtime, as in its own process.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = server_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let agent = listener.local_addr()?;
    let state = server_rt.block_on(edge_agent::build_state(config, None))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = server_rt.spawn(edge_agent::serve_state(state, listener, async {
        let _ = stopped.await;
    }));

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    client_rt.block_on(async {
        let base = format!("http://{agent}");
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?;
        let form = reqwest::multipart::Form::new()
            .part(
                "model",
                reqwest::multipart::Part::bytes(model_bytes("digits_mlp.onnx")),
            )
            .text(
                "config",
                json!({"backend": "tract", "max_concurrency": 2, "max_queue": 256}).to_string(),
            );
        let r = client
            .put(format!("{base}/v1/models/digits/versions/1"))
            .multipart(form)
            .send()
            .await?;
        anyhow::ensure!(r.status() == 201, "push failed: {}", r.text().await?);
        let row_data = platform_benches::first_test_digit()?;
        let body = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                          "data": row_data}], "outputs": [{"name": "logits"}]});
        let url = format!("{base}/v2/models/digits/infer");

        println!(
            "| held connections | concurrency | throughput (req/s) | p50 (ms) | p99 (ms) | errors |"
        );
        println!("|---|---|---|---|---|---|");
        for &c in &args.concurrency {
            closed_loop(&client, &url, &body, c, 0.3).await; // warm-up
            row(
                "none",
                c,
                &closed_loop(&client, &url, &body, c, args.seconds).await,
            );
        }

        let opening = Instant::now();
        let mut held = Vec::with_capacity(args.idle);
        for i in 0..args.idle {
            held.push(
                hold(agent, i)
                    .await
                    .with_context(|| format!("opening held connection {i} (ulimit -n?)"))?,
            );
        }
        let opened_in = opening.elapsed();
        let open_before = open_connections(&client, &base).await?;
        let label = format!("{} idle/half-open", args.idle);
        for &c in &args.concurrency {
            closed_loop(&client, &url, &body, c, 0.3).await;
            row(
                &label,
                c,
                &closed_loop(&client, &url, &body, c, args.seconds).await,
            );
        }
        let open_after = open_connections(&client, &base).await?;
        let measured_in = opening.elapsed();

        let mut closed_after = Vec::with_capacity(held.len());
        for h in held {
            closed_after.push(h.await?);
        }
        closed_after.sort();
        let all_closed_in = opening.elapsed();
        let open_end = open_connections(&client, &base).await?;
        println!();
        println!(
            "held: {} opened in {:.2} s; open connections by the agent's gauge: {open_before} \
             before the loaded run, {open_after} after it ({:.1} s after opening); \
             server.header_read_timeout_ms = {}",
            args.idle,
            opened_in.as_secs_f64(),
            measured_in.as_secs_f64(),
            header_timeout.as_millis()
        );
        println!(
            "closed by the agent after (from each one's open): min {:.2} s, median {:.2} s, \
             max {:.2} s; all closed {:.2} s after the first was opened; gauge afterwards: \
             {open_end}",
            closed_after[0].as_secs_f64(),
            closed_after[closed_after.len() / 2].as_secs_f64(),
            closed_after[closed_after.len() - 1].as_secs_f64(),
            all_closed_in.as_secs_f64()
        );
        if measured_in >= header_timeout {
            println!(
                "warning: the loaded run outlasted the header timeout; lower --seconds so \
                 the held connections are open throughout"
            );
        }
        anyhow::Ok(())
    })?;
    let _ = stop.send(());
    server_rt.block_on(server)??;
    Ok(())
}
