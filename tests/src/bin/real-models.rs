//! Prints the real-model table (`integration_tests::real_models_table`): for each third-party
//! model of the real-model test set and each backend, whether it loads, the largest difference
//! from python onnxruntime's outputs, and the median latency of one `Model::run`.
//!
//! ```sh
//! source scripts/env.sh    # writes the cases and sets EDGE_ML_REAL_MODELS, ORT_DYLIB_PATH
//! cargo run --release -p integration-tests --bin real-models -- --runs 20 --warm-up 3
//! cargo run --release -p integration-tests --bin real-models -- --setups tract,auto
//! ```

use std::path::PathBuf;

use anyhow::Context;
use integration_tests::real_model_setups::Setup;
use integration_tests::real_models::ENV;
use integration_tests::real_models_table::{table, TableOptions};

fn parse_args() -> anyhow::Result<TableOptions> {
    let mut options = TableOptions {
        runs: 20,
        warm_up: 3,
        setups: Setup::ALL.to_vec(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--runs" => options.runs = value()?.parse::<usize>()?.max(1),
            "--warm-up" => options.warm_up = value()?.parse()?,
            "--setups" => {
                options.setups = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, String>>()
                    .map_err(anyhow::Error::msg)?
            }
            "--bench" => {}
            other => anyhow::bail!(
                "unknown argument `{other}`; use --runs N --warm-up N --setups tract,tract+shapes,ort,auto"
            ),
        }
    }
    Ok(options)
}

fn main() -> anyhow::Result<()> {
    let options = parse_args()?;
    let root = PathBuf::from(std::env::var(ENV).with_context(|| {
        format!("{ENV} is not set; `source scripts/env.sh` writes the cases and sets it")
    })?);
    print!("{}", table(&root, &options).map_err(anyhow::Error::msg)?);
    Ok(())
}
