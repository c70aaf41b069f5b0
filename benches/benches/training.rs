//! Local training speed: one epoch over the digits training split (1,347 examples, batch 32,
//! SGD with momentum) for the MLP and the CNN, and one evaluation pass over the test split.
//!
//! `scripts/bench.sh training` (pin it to one core with `taskset -c 0` for per-core figures).
#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use federated::data::Dataset;
use federated::train::{Loss, TrainConfig, Trainer};
use inference::test_support::model_bytes;

fn split(name: &str) -> Dataset {
    let (x, y) = inference::test_support::digits(name);
    Dataset::new(x, vec![64], y).unwrap()
}

fn training(c: &mut Criterion) {
    let (train, test) = (split("train"), split("test"));
    let mut group = c.benchmark_group("train_epoch");
    group.sample_size(10);
    group.throughput(Throughput::Elements(train.len() as u64));
    for model in ["digits_mlp", "digits_cnn"] {
        let onnx = model_bytes(&format!("{model}.onnx"));
        let mut trainer = Trainer::new(&onnx).unwrap();
        group.bench_function(model, |b| {
            b.iter(|| trainer.fit(&train, &TrainConfig::default(), None).unwrap())
        });
    }
    group.finish();
    let mut group = c.benchmark_group("evaluate");
    for model in ["digits_mlp", "digits_cnn"] {
        let trainer = Trainer::new(&model_bytes(&format!("{model}.onnx"))).unwrap();
        group.bench_function(model, |b| {
            b.iter(|| trainer.evaluate(&test, 256, Loss::CrossEntropy).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, training);
criterion_main!(benches);
