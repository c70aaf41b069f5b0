//! The ONNX backend node test cases, run on every backend.
//!
//! `scripts/env.sh` writes the cases from the pinned `onnx` wheel to `$ONNX_NODE_TESTS`
//! (tests/conformance/generate.py). Each case is classified:
//!
//! - **passed**: the model loads and every output matches within the case's tolerances;
//! - **failed**: the model loads but a run errs or an output differs;
//! - **unsupported**: the backend refuses the model (an operator or type it lacks), or the case
//!   feeds sequences, maps, optionals or element types the platform does not serve.
//!
//! The test prints the counts, writes one line per case to
//! `target/tmp/conformance-<backend>.txt`, and fails when a backend passes fewer cases than its
//! floor below. The floors are what each backend passed when they were set; raise them when a
//! backend improves.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use inference::onnx::decode_tensor_proto;
use inference::test_support::{ort_library, setup_var};
use inference::{BackendKind, LoadOptions, Model, Tensor};
use serde_json::Value;

/// Cases each backend must pass (of 1884 in onnx 1.23.2). Measured on 2026-11-26.
const FLOORS: [(BackendKind, usize); 2] = [
    (BackendKind::Tract, TRACT_FLOOR),
    (BackendKind::Ort, ORT_FLOOR),
];
const TRACT_FLOOR: usize = 1050;
const ORT_FLOOR: usize = 1566;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Passed,
    Failed,
    Unsupported,
}

struct Case {
    name: String,
    rtol: f64,
    atol: f64,
    skip: Option<String>,
}

fn cases_dir() -> Option<PathBuf> {
    setup_var("ONNX_NODE_TESTS", "conformance", false).map(PathBuf::from)
}

fn read_index(dir: &Path) -> Vec<Case> {
    let text =
        std::fs::read_to_string(dir.join("index.json")).expect("index.json in ONNX_NODE_TESTS");
    let index: Value = serde_json::from_str(&text).unwrap();
    index["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().to_owned(),
            rtol: c["rtol"].as_f64().unwrap(),
            atol: c["atol"].as_f64().unwrap(),
            skip: c.get("skip").and_then(Value::as_str).map(str::to_owned),
        })
        .collect()
}

fn first_line(s: impl ToString) -> String {
    let s = s.to_string();
    let line = s.lines().next().unwrap_or_default();
    line.chars().take(200).collect()
}

fn run_case(dir: &Path, case: &Case, options: &LoadOptions) -> (Verdict, String) {
    if let Some(why) = &case.skip {
        return (Verdict::Unsupported, why.clone());
    }
    let case_dir = dir.join(&case.name);
    let bytes = std::fs::read(case_dir.join("model.onnx")).unwrap();
    let model = match Model::load(bytes, options) {
        Ok(m) => m,
        Err(e) => return (Verdict::Unsupported, first_line(e)),
    };
    let mut sets: Vec<PathBuf> = std::fs::read_dir(&case_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    sets.sort();
    for set in sets {
        let read = |prefix: &str, count: usize| -> Result<Vec<Tensor>, String> {
            (0..count)
                .map(|j| {
                    let bytes = std::fs::read(set.join(format!("{prefix}_{j}.pb")))
                        .map_err(|e| e.to_string())?;
                    decode_tensor_proto(&bytes)
                        .map(|t| t.tensor)
                        .map_err(first_line)
                })
                .collect()
        };
        let meta = model.metadata();
        let inputs = match read("input", meta.inputs.len()) {
            Ok(t) => t,
            Err(e) => return (Verdict::Unsupported, e),
        };
        let expected = match read("output", meta.outputs.len()) {
            Ok(t) => t,
            Err(e) => return (Verdict::Unsupported, e),
        };
        let named = meta.inputs.iter().map(|i| i.name.clone()).zip(inputs);
        let outputs = match model.run(named) {
            Ok(o) => o,
            Err(e) => return (Verdict::Failed, first_line(e)),
        };
        for ((name, got), want) in outputs.iter().zip(&expected) {
            if let Err(why) = compare(got, want, case.rtol, case.atol) {
                return (Verdict::Failed, format!("output `{name}`: {why}"));
            }
        }
    }
    (Verdict::Passed, String::new())
}

/// `numpy.testing.assert_allclose` semantics: |got - want| <= atol + rtol * |want|, NaN equals
/// NaN, infinities must match; integers, booleans and strings must be equal.
fn compare(got: &Tensor, want: &Tensor, rtol: f64, atol: f64) -> Result<(), String> {
    if got.element_type() != want.element_type() || got.shape() != want.shape() {
        return Err(format!(
            "expected {}, got {}",
            inference::describe(want),
            inference::describe(got)
        ));
    }
    let close = |a: f64, b: f64| {
        (a.is_nan() && b.is_nan())
            || a == b
            || (a.is_finite() && b.is_finite() && (a - b).abs() <= atol + rtol * b.abs())
    };
    fn floats(t: &Tensor) -> Option<Vec<f64>> {
        match t {
            Tensor::F16(a) => Some(a.iter().map(|x| x.to_f64()).collect()),
            Tensor::F32(a) => Some(a.iter().map(|&x| x as f64).collect()),
            Tensor::F64(a) => Some(a.iter().copied().collect()),
            _ => None,
        }
    }
    match (floats(got), floats(want)) {
        (Some(g), Some(w)) => match g.iter().zip(&w).position(|(a, b)| !close(*a, *b)) {
            Some(i) => Err(format!("element {i}: expected {}, got {}", w[i], g[i])),
            None => Ok(()),
        },
        _ if got == want => Ok(()),
        _ => Err("values differ".to_owned()),
    }
}

fn run_backend(dir: &Path, cases: &[Case], options: &LoadOptions) -> Vec<(Verdict, String)> {
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut results: Vec<Option<(Verdict, String)>> = vec![None; cases.len()];
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|w| {
                let next = &next;
                std::thread::Builder::new()
                    .name(format!("conformance-{w}"))
                    .spawn_scoped(scope, move || {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(case) = cases.get(i) else { break };
                            done.push((i, run_case(dir, case, options)));
                        }
                        done
                    })
                    .unwrap()
            })
            .collect();
        for worker in workers {
            for (i, r) in worker.join().unwrap() {
                results[i] = Some(r);
            }
        }
    });
    results.into_iter().map(Option::unwrap).collect()
}

/// Engines that panic on odd cases are caught per case; keep their panic messages off the
/// console (they are in the report), while the test's own panics still print.
fn quiet_worker_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let worker = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("conformance-"));
        if !worker {
            default(info);
        }
    }));
}

#[test]
fn onnx_node_tests_pass_above_the_floor_on_every_backend() {
    let Some(dir) = cases_dir() else { return };
    let cases = read_index(&dir);
    assert!(
        cases.len() > 1500,
        "only {} cases in {}",
        cases.len(),
        dir.display()
    );
    let mut backends = vec![LoadOptions::new(BackendKind::Tract).with_max_concurrency(1)];
    if let Some(lib) = ort_library("onnx_node_tests_pass_above_the_floor_on_every_backend") {
        backends.push(
            LoadOptions::new(BackendKind::Ort)
                .with_ort_library(lib)
                .with_max_concurrency(1),
        );
    }
    quiet_worker_panics();
    let mut summary = String::new();
    let mut below = Vec::new();
    for options in &backends {
        let results = run_backend(&dir, &cases, options);
        let count = |v: Verdict| results.iter().filter(|(r, _)| *r == v).count();
        let (passed, failed, unsupported) = (
            count(Verdict::Passed),
            count(Verdict::Failed),
            count(Verdict::Unsupported),
        );
        let floor = FLOORS
            .iter()
            .find(|(k, _)| *k == options.backend)
            .unwrap()
            .1;
        writeln!(
            summary,
            "conformance {:>5}: {passed} passed, {failed} failed, {unsupported} unsupported of {} (floor {floor})",
            options.backend.name(),
            cases.len()
        )
        .unwrap();
        let mut report = String::new();
        for (case, (verdict, why)) in cases.iter().zip(&results) {
            writeln!(report, "{:<11} {} {why}", format!("{verdict:?}"), case.name).unwrap();
        }
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("conformance-{}.txt", options.backend));
        std::fs::write(&path, report).unwrap();
        writeln!(summary, "  per-case report: {}", path.display()).unwrap();
        if passed < floor {
            below.push(format!(
                "{} passed {passed} < floor {floor}",
                options.backend
            ));
        }
    }
    // Written to the real stderr, past the test harness's capture, so that every run of the
    // suite shows the counts.
    std::io::stderr().write_all(summary.as_bytes()).unwrap();
    assert!(
        below.is_empty(),
        "conformance fell below the floor: {}",
        below.join("; ")
    );
}
