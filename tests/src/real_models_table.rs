//! The real-model table: for each third-party model of the real-model set and each backend,
//! whether it loads, the largest difference from python onnxruntime's outputs, and the median
//! latency of one `Model::run`. Printed by `tests/src/bin/real-models.rs` (release build) and
//! by the ignored test `real_models_table` (the test build).

use std::path::Path;
use std::time::{Duration, Instant};

use inference::Model;

use crate::real_model_setups::{prepare, Setup};
use crate::real_models::{check, first_line, read_data_sets, Index};

/// How to measure.
#[derive(Debug, Clone)]
pub struct TableOptions {
    /// Timed runs per model and backend; the median is reported.
    pub runs: usize,
    /// Untimed runs before them.
    pub warm_up: usize,
    /// The setups, one row each per model.
    pub setups: Vec<Setup>,
}

fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// Measures every real model under `root` (the generator's output folder) and returns the
/// markdown table, followed by the conditions and each model's measured input shapes.
pub fn table(root: &Path, options: &TableOptions) -> Result<String, String> {
    let index = Index::read(root)?;
    let mut out = String::from(
        "| model | source package | backend | loads | max abs error vs python ORT | p50 latency |\n|---|---|---|---|---|---|\n",
    );
    let mut shapes = String::new();
    for m in &index.models {
        let dir = root.join(&m.dir);
        let bytes = std::fs::read(dir.join("model.onnx"))
            .map_err(|e| format!("reading {}: {e}", dir.display()))?;
        let sets = read_data_sets(&dir, &m.inputs, &m.outputs)?;
        let first_shapes = m
            .shapes
            .first()
            .map(|s| format!("{s:?}"))
            .unwrap_or_default();
        shapes.push_str(&format!("- {}: {first_shapes}\n", m.name));
        for &setup in &options.setups {
            let mut row = |loads: &str, error: &str, p50: &str| {
                out.push_str(&format!(
                    "| {} | {} | {setup} | {loads} | {error} | {p50} |\n",
                    m.name, m.package
                ));
            };
            let (load, sets) = prepare(setup, &setup.options(None), &sets);
            let model = match Model::load(bytes.clone(), &load) {
                Ok(model) => model,
                Err(e) => {
                    row(&format!("no: {}", first_line(e)), "-", "-");
                    continue;
                }
            };
            let loads = if setup == Setup::Auto {
                format!("yes, on {}", model.backend())
            } else {
                "yes".to_owned()
            };
            let loads = loads.as_str();
            let outcome = check(&model, &sets, m.rtol, m.atol);
            let error = match (outcome.max_abs_error, outcome.why.as_str()) {
                (Some(e), "") => format!("{e:.1e}"),
                (Some(e), why) => format!("{e:.1e} (out of tolerance: {why})"),
                (None, why) => format!("- ({why})"),
            };
            let Some(first) = sets.first() else {
                row(loads, &error, "-");
                continue;
            };
            let run = || model.run(first.inputs.iter().map(|(n, t)| (n.clone(), t.clone())));
            if run().is_err() {
                row(loads, &error, "-");
                continue;
            }
            let mut times = Vec::with_capacity(options.runs);
            for i in 0..options.warm_up + options.runs.max(1) {
                let start = Instant::now();
                run().map_err(|e| format!("{} on {setup}: {e}", m.name))?;
                if i >= options.warm_up {
                    times.push(start.elapsed());
                }
            }
            times.sort();
            row(loads, &error, &millis(times[times.len() / 2]));
        }
    }
    out.push_str(&format!(
        "\np50 of {} runs after {} warm-up runs, one intra-op thread, on each model's first data set (inputs copied into each call):\n{shapes}",
        options.runs.max(1),
        options.warm_up
    ));
    Ok(out)
}
