//! A load generator that compares edge functions with their OIP v2 twin in the same run.
//!
//! Starts an agent in this process on 127.0.0.1 (auth off), pushes the digits MLP as `digits`
//! (tract) and deploys `hello` and `classify-digits` (built by `scripts/build-functions.sh`),
//! then for each concurrency runs closed-loop clients against three targets, interleaved:
//! `POST /fn/hello` (empty body), `POST /fn/classify-digits` (the first test digit as JSON
//! pixels) and `POST /v2/models/digits/infer` (the same digit). Each round runs every target
//! once for `--seconds`, in an order that rotates between rounds; `--repeats` rounds. It
//! prints the median of each target's throughput, p50 and p99, its errors and 503s, and the
//! median over rounds of each function's ratio to the /v2 run of the same round.
//!
//! ```sh
//! scripts/bench.sh --fn-load          # or: cargo run --release -p platform-benches --bin fn-load
//! cargo run --release -p platform-benches --bin fn-load -- --seconds 2 --repeats 7 \
//!     --concurrency 1,8,16 --server-cpus 0 --client-cpus 1
//! ```

use anyhow::Context;
use platform_benches::{
    closed_loop_text, parse_concurrency, Harness, HarnessArgs, LoadRun, HARNESS_USAGE,
};
use serde_json::json;

struct Args {
    seconds: f64,
    repeats: usize,
    concurrency: Vec<usize>,
    harness: HarnessArgs,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        seconds: 1.0,
        repeats: 5,
        concurrency: vec![1, 8, 16],
        harness: HarnessArgs::new(1.0),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if args.harness.take(&a, &mut it)? {
            continue;
        }
        match a.as_str() {
            "--seconds" => args.seconds = it.next().context("--seconds needs a value")?.parse()?,
            "--repeats" => args.repeats = it.next().context("--repeats needs a value")?.parse()?,
            "--concurrency" => args.concurrency = parse_concurrency(it.next())?,
            "--bench" => {}
            other => anyhow::bail!(
                "unknown argument `{other}`; use --seconds S --repeats N --concurrency 1,8,16 \
                 {HARNESS_USAGE}"
            ),
        }
    }
    anyhow::ensure!(args.repeats > 0, "--repeats must be at least 1");
    Ok(args)
}

fn guest(name: &str) -> anyhow::Result<Vec<u8>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../functions/target/wasm32-wasip1/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    let alt = path.with_file_name(format!("{name}.wasm"));
    std::fs::read(&path)
        .or_else(|_| std::fs::read(&alt))
        .with_context(|| {
            format!(
                "cannot read {}; run scripts/build-functions.sh first",
                alt.display()
            )
        })
}

/// One target of the comparison.
struct Target {
    label: &'static str,
    path: &'static str,
    body: String,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let harness = Harness::start(&args.harness, |_| {})?;
    let base = harness.base.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let pixels = platform_benches::first_test_digit()?;
    let targets = [
        Target {
            label: "/v2 infer digits",
            path: "/v2/models/digits/infer",
            body: json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                                     "data": pixels}],
                         "outputs": [{"name": "logits"}]})
            .to_string(),
        },
        Target {
            label: "/fn/hello",
            path: "/fn/hello",
            body: String::new(),
        },
        Target {
            label: "/fn/classify-digits",
            path: "/fn/classify-digits",
            body: json!({ "pixels": pixels }).to_string(),
        },
    ];
    harness.block_on(async {
        let form = reqwest::multipart::Form::new()
            .part(
                "model",
                reqwest::multipart::Part::bytes(inference::test_support::model_bytes(
                    "digits_mlp.onnx",
                )),
            )
            .text("config", json!({"backend": "tract"}).to_string());
        let r = client
            .put(format!("{base}/v1/models/digits/versions/1"))
            .multipart(form)
            .send()
            .await?;
        anyhow::ensure!(r.status() == 201, "push of digits: {}", r.text().await?);
        for (name, manifest) in [
            ("hello", json!({})),
            ("classify-digits", json!({"models": [{"name": "digits"}]})),
        ] {
            let form = reqwest::multipart::Form::new()
                .part("wasm", reqwest::multipart::Part::bytes(guest(name)?))
                .text("manifest", manifest.to_string());
            let r = client
                .put(format!("{base}/v1/functions/{name}"))
                .multipart(form)
                .send()
                .await?;
            anyhow::ensure!(r.status() == 201, "deploy of {name}: {}", r.text().await?);
        }
        Ok(())
    })?;

    println!("# edge functions vs their OIP v2 twin (digits_mlp on tract, one digit)\n");
    harness.print_conditions(&[
        format!(
            "{} rounds per concurrency, each running every target for {} s in a rotating order; \
             medians over rounds",
            args.repeats, args.seconds
        ),
        "default manifests (max_instances 8, max_queue 64) and model config \
         (max_concurrency and max_queue defaults, batching off)"
            .into(),
    ]);
    println!("| target | concurrency | throughput (req/s) | p50 (ms) | p99 (ms) | errors | 503s | p50 / v2 | throughput / v2 |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for &c in &args.concurrency {
        // runs[target][round]
        let mut runs: Vec<Vec<LoadRun>> = targets.iter().map(|_| Vec::new()).collect();
        harness.block_on(async {
            for t in &targets {
                let url = format!("{base}{}", t.path);
                closed_loop_text(&client, &url, &t.body, c, args.harness.warm_up).await;
            }
            for round in 0..args.repeats {
                for k in 0..targets.len() {
                    let i = (k + round) % targets.len();
                    let t = &targets[i];
                    let url = format!("{base}{}", t.path);
                    runs[i].push(closed_loop_text(&client, &url, &t.body, c, args.seconds).await);
                }
            }
        });
        let v2 = &runs[0];
        for (t, rs) in targets.iter().zip(&runs) {
            let ratio = |f: &dyn Fn(&LoadRun) -> f64| {
                median(rs.iter().zip(v2).map(|(a, b)| f(a) / f(b)).collect())
            };
            let (p50_ratio, rate_ratio) = if std::ptr::eq(rs, v2) {
                ("1".to_owned(), "1".to_owned())
            } else {
                (
                    format!("{:.2}", ratio(&|r| r.percentile_ms(0.50))),
                    format!("{:.2}", ratio(&|r| r.rate())),
                )
            };
            println!(
                "| {} | {c} | {:.0} | {:.3} | {:.3} | {} | {} | {p50_ratio} | {rate_ratio} |",
                t.label,
                median(rs.iter().map(LoadRun::rate).collect()),
                median(rs.iter().map(|r| r.percentile_ms(0.50)).collect()),
                median(rs.iter().map(|r| r.percentile_ms(0.99)).collect()),
                rs.iter().map(|r| r.errors).sum::<usize>(),
                rs.iter().map(|r| r.busy).sum::<usize>(),
            );
        }
    }
    println!(
        "\n- load average at the end: {}",
        platform_benches::load_average()
    );
    harness.stop()
}
