//! A bounded load generator for the edge agent's OIP v2 inference route.
//!
//! Starts an agent in this process on 127.0.0.1 (auth off; loopback), pushes the digits MLP and
//! CNN on each backend with batching off and on, then for each concurrency runs closed-loop
//! clients (each sends one single-row JSON request, waits for the answer, repeats) for a fixed
//! time, and prints throughput and latency percentiles as a markdown table.
//!
//! ```sh
//! scripts/bench.sh --load            # or: cargo run --release -p platform-benches --bin oip-load
//! cargo run --release -p platform-benches --bin oip-load -- --seconds 5 --concurrency 1,16,64
//! cargo run --release -p platform-benches --bin oip-load -- --server-cpus 0 --client-cpus 1
//! ```
//!
//! By default client and agent share one tokio runtime and the machine's cores, so absolute
//! figures are lower than with a separate client machine; the comparisons between rows hold.
//! `--server-cpus`/`--client-cpus` give each its own runtime pinned to those CPUs. The run
//! prints its conditions (build, cores, logging, warm-up, load average) before the table.

use anyhow::Context;
use inference::test_support::model_bytes;
use inference::BackendKind;
use platform_benches::{closed_loop, parse_concurrency, Harness, HarnessArgs, HARNESS_USAGE};
use serde_json::{json, Value};

struct Args {
    seconds: f64,
    concurrency: Vec<usize>,
    harness: HarnessArgs,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        seconds: 3.0,
        concurrency: vec![1, 16, 64],
        harness: HarnessArgs::new(0.3),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if args.harness.take(&a, &mut it)? {
            continue;
        }
        match a.as_str() {
            "--seconds" => args.seconds = it.next().context("--seconds needs a value")?.parse()?,
            "--concurrency" => args.concurrency = parse_concurrency(it.next())?,
            "--bench" => {}
            other => anyhow::bail!(
                "unknown argument `{other}`; use --seconds S --concurrency 1,16,64 {HARNESS_USAGE}"
            ),
        }
    }
    Ok(args)
}

fn request_for(cnn: bool, row: &[f32]) -> Value {
    let shape = if cnn {
        json!([1, 1, 8, 8])
    } else {
        json!([1, 64])
    };
    json!({"inputs": [{"name": "input", "shape": shape, "datatype": "FP32", "data": row}],
           "outputs": [{"name": "logits"}]})
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let harness = Harness::start(&args.harness, |_| {})?;
    let base = harness.base.clone();
    println!("# OIP v2 load test\n");
    harness.print_conditions(&[format!(
        "{} s per row after the warm-up; `limits.inference_threads` {} (default)",
        args.seconds,
        edge_agent::AgentConfig::default().limits.inference_threads
    )]);
    harness.block_on(run(&args, &base))?;
    println!(
        "\n- load average at the end: {}",
        platform_benches::load_average()
    );
    harness.stop()
}

async fn run(args: &Args, base: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let mut backends = vec![BackendKind::Tract];
    if inference::test_support::ort_library("oip-load on ONNX Runtime").is_some() {
        backends.push(BackendKind::Ort);
    }
    let row = platform_benches::first_test_digit()?;

    println!("| model | backend | batching | concurrency | throughput (req/s) | p50 (ms) | p99 (ms) | errors | 503s |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (file, cnn) in [("digits_mlp.onnx", false), ("digits_cnn.onnx", true)] {
        for backend in &backends {
            for batching in [false, true] {
                let name = format!(
                    "{}-{}-{}",
                    &file[..file.len() - 5],
                    backend,
                    if batching { "b" } else { "n" }
                );
                let mut cfg =
                    json!({"backend": backend.name(), "max_concurrency": 2, "max_queue": 256});
                if batching {
                    cfg["batching"] = json!({"max_batch_size": 32, "max_queue_delay_us": 500});
                }
                let form = reqwest::multipart::Form::new()
                    .part("model", reqwest::multipart::Part::bytes(model_bytes(file)))
                    .text("config", cfg.to_string());
                let r = client
                    .put(format!("{base}/v1/models/{name}/versions/1"))
                    .multipart(form)
                    .send()
                    .await?;
                anyhow::ensure!(
                    r.status() == 201,
                    "push of {name} failed: {}",
                    r.text().await?
                );
                let url = format!("{base}/v2/models/{name}/infer");
                let body = request_for(cnn, &row);
                for &c in &args.concurrency {
                    closed_loop(&client, &url, &body, c, args.harness.warm_up).await;
                    let run = closed_loop(&client, &url, &body, c, args.seconds).await;
                    println!(
                        "| {} | {} | {} | {} | {:.0} | {:.3} | {:.3} | {} | {} |",
                        &file[..file.len() - 5],
                        backend,
                        if batching { "on" } else { "off" },
                        c,
                        run.rate(),
                        run.percentile_ms(0.50),
                        run.percentile_ms(0.99),
                        run.errors,
                        run.busy
                    );
                }
            }
        }
    }
    Ok(())
}
