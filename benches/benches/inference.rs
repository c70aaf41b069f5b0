//! Load time and latency at batch 1 and 32, per backend, per `models/` file.
//!
//! Run with `scripts/bench.sh inference` (sets up ONNX Runtime); without `ORT_DYLIB_PATH` only
//! tract is measured.
#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::hint::black_box;

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

criterion_group!(benches, load, latency);
criterion_main!(benches);
