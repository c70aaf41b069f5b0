//! The real-model table: for each third-party model of the real-model test set and each
//! backend, whether it loads, the largest difference from python onnxruntime's outputs, and
//! the median latency of one `Model::run`.
//!
//! ```sh
//! source scripts/env.sh    # writes the cases and sets EDGE_ML_REAL_MODELS, ORT_DYLIB_PATH
//! cargo run --release -p platform-benches --bin real-models -- --runs 20 --warm-up 3
//! cargo run --release -p platform-benches --bin real-models -- --backends tract
//! ```
//!
//! Prints a markdown table. Latency is measured on the case's first data set (the shapes are
//! printed below the table) with one intra-op thread, after the warm-up runs; the error is
//! over every data set.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use inference::{BackendKind, LoadOptions, Model};
use integration_tests::real_models::{check, first_line, read_data_sets, Index, ENV};

struct Args {
    runs: usize,
    warm_up: usize,
    backends: Vec<BackendKind>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        runs: 20,
        warm_up: 3,
        backends: BackendKind::ALL.to_vec(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--runs" => args.runs = value()?.parse::<usize>()?.max(1),
            "--warm-up" => args.warm_up = value()?.parse()?,
            "--backends" => {
                args.backends = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--bench" => {}
            other => anyhow::bail!(
                "unknown argument `{other}`; use --runs N --warm-up N --backends tract,ort"
            ),
        }
    }
    Ok(args)
}

fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let root = PathBuf::from(std::env::var(ENV).with_context(|| {
        format!("{ENV} is not set; `source scripts/env.sh` writes the cases and sets it")
    })?);
    let index = Index::read(&root).map_err(anyhow::Error::msg)?;
    println!(
        "| model | source package | backend | loads | max abs error vs python ORT | p50 latency |"
    );
    println!("|---|---|---|---|---|---|");
    let mut shapes = Vec::new();
    for m in &index.models {
        let dir = root.join(&m.dir);
        let bytes = std::fs::read(dir.join("model.onnx"))?;
        let sets = read_data_sets(&dir, &m.inputs, &m.outputs).map_err(anyhow::Error::msg)?;
        shapes.push(format!("{}: {:?}", m.name, m.shapes.first()));
        for &backend in &args.backends {
            let options = LoadOptions::new(backend).with_intra_op_threads(1);
            let row = |loads: &str, error: &str, p50: &str| {
                println!(
                    "| {} | {} | {backend} | {loads} | {error} | {p50} |",
                    m.name, m.package
                )
            };
            let model = match Model::load(bytes.clone(), &options) {
                Ok(model) => model,
                Err(e) => {
                    row(&format!("no: {}", first_line(e)), "-", "-");
                    continue;
                }
            };
            let outcome = check(&model, &sets, m.rtol, m.atol);
            let error = match (outcome.max_abs_error, outcome.why.as_str()) {
                (Some(e), "") => format!("{e:.1e}"),
                (Some(e), why) => format!("{e:.1e} (out of tolerance: {why})"),
                (None, why) => format!("- ({why})"),
            };
            let first = &sets[0];
            let run = || model.run(first.inputs.iter().map(|(n, t)| (n.clone(), t.clone())));
            if run().is_err() {
                row("yes", &error, "-");
                continue;
            }
            for _ in 0..args.warm_up {
                run()?;
            }
            let mut times: Vec<Duration> = (0..args.runs)
                .map(|_| {
                    let start = Instant::now();
                    run().map(|_| start.elapsed())
                })
                .collect::<Result<_, _>>()?;
            times.sort();
            row("yes", &error, &millis(times[times.len() / 2]));
        }
    }
    println!();
    println!(
        "p50 of {} runs after {} warm-up runs, one intra-op thread, on each model's first data set:",
        args.runs, args.warm_up
    );
    for s in shapes {
        println!("- {s}");
    }
    Ok(())
}
