//! Load time and latency at batch 1 and 32, per backend, per `models/` file; and the ONNX Runtime
//! backend against a bare `ort` session on the same model in the same run (`ort-overhead`).
//!
//! Run with `scripts/bench.sh inference` (sets up ONNX Runtime); without `ORT_DYLIB_PATH` only
//! tract is measured. `cargo bench -p platform-benches --bench inference -- ort-overhead` runs
//! only the comparison, which prints one line per model with the ratio ours/direct.
#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use inference::test_support::{model_bytes, ort_library};
use inference::{BackendKind, LoadOptions, Model, Tensor};

const MODELS: [&str; 4] = [
    "digits_mlp",
    "digits_mlp_int8",
    "digits_cnn",
    "digits_cnn_int8",
];

fn backends() -> Vec<LoadOptions> {
    let mut all = vec![LoadOptions::new(BackendKind::Tract)];
    if let Some(lib) = ort_library("the ONNX Runtime benches") {
        all.push(
            LoadOptions::new(BackendKind::Ort)
                .with_ort_library(lib)
                .with_max_concurrency(1),
        );
    }
    all
}

fn input(model: &str, batch: usize) -> Tensor {
    let data: Vec<f32> = (0..batch * 64).map(|i| (i % 17) as f32 / 16.0).collect();
    let shape: Vec<usize> = if model.contains("cnn") {
        vec![batch, 1, 8, 8]
    } else {
        vec![batch, 64]
    };
    Tensor::from_shape_vec(&shape, data).unwrap()
}

fn load(c: &mut Criterion) {
    let mut group = c.benchmark_group("load");
    for options in backends() {
        for name in MODELS {
            let bytes = model_bytes(&format!("{name}.onnx"));
            group.bench_with_input(
                BenchmarkId::new(options.backend.name(), name),
                &bytes,
                |b, bytes| b.iter(|| Model::load(bytes.clone(), &options).unwrap()),
            );
        }
    }
    group.finish();
}

fn latency(c: &mut Criterion) {
    for batch in [1usize, 32] {
        let mut group = c.benchmark_group(format!("run/batch{batch}"));
        group.throughput(Throughput::Elements(batch as u64));
        for options in backends() {
            for name in MODELS {
                let model = Model::load(model_bytes(&format!("{name}.onnx")), &options).unwrap();
                let x = input(name, batch);
                group.bench_function(BenchmarkId::new(options.backend.name(), name), |b| {
                    b.iter(|| black_box(model.run([("input", x.clone())]).unwrap()))
                });
            }
        }
        group.finish();
    }
}

/// One model for the overhead comparison: its bytes and one set of named inputs.
struct Case {
    label: String,
    bytes: Vec<u8>,
    inputs: Vec<(String, Tensor)>,
}

fn digits_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for name in ["digits_mlp", "digits_cnn"] {
        for batch in [1usize, 32] {
            cases.push(Case {
                label: format!("{name}/batch{batch}"),
                bytes: model_bytes(&format!("{name}.onnx")),
                inputs: vec![("input".to_owned(), input(name, batch))],
            });
        }
    }
    cases
}

/// silero-vad (the smallest real model, where a fixed per-call cost shows most), when
/// `EDGE_ML_REAL_MODELS` (set by `scripts/env.sh`) holds the real-model cases.
fn real_cases() -> Vec<Case> {
    let Some(root) = std::env::var_os("EDGE_ML_REAL_MODELS").map(PathBuf::from) else {
        eprintln!("ort-overhead: EDGE_ML_REAL_MODELS is not set; only the digits models");
        return Vec::new();
    };
    let dir = root.join("real/silero-vad");
    match read_case(&dir, &["input", "state", "sr"]) {
        Ok((bytes, inputs)) => vec![Case {
            label: "silero-vad".to_owned(),
            bytes,
            inputs,
        }],
        Err(e) => {
            eprintln!("ort-overhead: skipping silero-vad: {e}");
            Vec::new()
        }
    }
}

/// A model's bytes and its named inputs.
type CaseData = (Vec<u8>, Vec<(String, Tensor)>);

fn read_case(dir: &Path, names: &[&str]) -> anyhow::Result<CaseData> {
    let bytes = std::fs::read(dir.join("model.onnx"))?;
    let inputs = names
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let pb = std::fs::read(dir.join(format!("test_data_set_0/input_{j}.pb")))?;
            let tensor = inference::onnx::decode_tensor_proto(&pb)?.tensor;
            Ok(((*name).to_owned(), tensor))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((bytes, inputs))
}

/// The input as a bare `ort` value, built the way a direct caller would: from an owned copy
/// of the data, without a further copy.
fn to_direct(tensor: &Tensor) -> ort::value::DynValue {
    let shape = tensor.shape().to_vec();
    match tensor {
        Tensor::F32(a) => {
            ort::value::Tensor::from_array((shape, a.iter().copied().collect::<Vec<_>>()))
                .unwrap()
                .into_dyn()
        }
        Tensor::I64(a) => {
            ort::value::Tensor::from_array((shape, a.iter().copied().collect::<Vec<_>>()))
                .unwrap()
                .into_dyn()
        }
        other => panic!("ort-overhead: add {:?} to to_direct", other.element_type()),
    }
}

/// The bare session: same library, same environment, same thread settings as the backend's.
fn direct_session(bytes: &[u8], threads: usize) -> ort::session::Session {
    let runtime = inference::OrtRuntime::get(None).unwrap();
    ort::session::Session::builder(runtime.environment())
        .unwrap()
        .with_intra_threads(threads)
        .unwrap()
        .with_inter_threads(1)
        .unwrap()
        .commit_from_memory(bytes)
        .unwrap()
}

/// Median seconds per call over `rounds` rounds of `calls` calls each, the two sides
/// interleaved round by round (A B, then B A) so that a change of machine load hits both.
fn interleaved(
    rounds: usize,
    calls: usize,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (Duration, Duration) {
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..calls {
            f();
        }
        start.elapsed() / calls as u32
    };
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 0 {
            ta.push(time(&mut a));
            tb.push(time(&mut b));
        } else {
            tb.push(time(&mut b));
            ta.push(time(&mut a));
        }
    }
    ta.sort();
    tb.sort();
    (ta[rounds / 2], tb[rounds / 2])
}

fn wanted(group: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    filters.is_empty()
        || filters
            .iter()
            .any(|f| group.contains(f.as_str()) || f.contains(group))
}

/// Our ONNX Runtime backend (`Model::run`, what the agent's compute histogram times) against a
/// bare `ort` session on the same model, library, environment, inputs and threads (1 intra-op,
/// 1 inter-op), interleaved; prints the ratio ours/direct. Also registers both with criterion.
fn ort_overhead(c: &mut Criterion) {
    if ort_library("the ort-overhead bench").is_none() || !wanted("ort-overhead") {
        return;
    }
    let options = LoadOptions::new(BackendKind::Ort)
        .with_intra_op_threads(1)
        .with_max_concurrency(1);
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("ort-overhead: load average {}", loadavg.trim());
    let mut group = c.benchmark_group("ort-overhead");
    for case in digits_cases().into_iter().chain(real_cases()) {
        let model = Model::load(case.bytes.clone(), &options).unwrap();
        let mut session = direct_session(&case.bytes, 1);
        let mut ours = || {
            black_box(
                model
                    .run(case.inputs.iter().map(|(n, t)| (n.as_str(), t.clone())))
                    .unwrap(),
            );
        };
        let mut direct = || {
            let values: Vec<(&str, ort::session::SessionInputValue<'_>)> = case
                .inputs
                .iter()
                .map(|(n, t)| (n.as_str(), to_direct(t).into()))
                .collect();
            let outputs = session.run(values).unwrap();
            for (_, value) in outputs.iter() {
                black_box(value.try_extract_tensor::<f32>().ok());
            }
        };
        // Warm both, then size a round to about 20 ms.
        for _ in 0..20 {
            ours();
            direct();
        }
        let once = {
            let start = Instant::now();
            ours();
            start.elapsed()
        };
        let calls = (Duration::from_millis(20).as_nanos() / once.as_nanos().max(1)).clamp(5, 5_000)
            as usize;
        let (t_ours, t_direct) = interleaved(41, calls, &mut ours, &mut direct);
        println!(
            "ort-overhead/{:<22} direct {:>9.1} µs  ours {:>9.1} µs  ratio ours/direct {:.3}",
            case.label,
            t_direct.as_secs_f64() * 1e6,
            t_ours.as_secs_f64() * 1e6,
            t_ours.as_secs_f64() / t_direct.as_secs_f64()
        );
        group.bench_function(format!("direct/{}", case.label), |b| b.iter(&mut direct));
        group.bench_function(format!("ours/{}", case.label), |b| b.iter(&mut ours));
    }
    group.finish();
}

criterion_group!(benches, load, latency, ort_overhead);
criterion_main!(benches);
