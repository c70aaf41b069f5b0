//! Secure aggregation cost: one whole SecAgg / SecAgg+ round in memory, every client's and the
//! server's work on one thread, for vectors the size of the digits MLP's parameters (+2 slots).
//!
//! `scripts/bench.sh secagg` (pin it to one core with `taskset -c 0` for per-core figures).
#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use federated::secagg::{run_round_threads, ParticipantId, SecAggParams, Stage};
use federated::train::Trainer;
use inference::test_support::model_bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn secagg(c: &mut Criterion) {
    let len = Trainer::new(&model_bytes("digits_mlp.onnx"))
        .unwrap()
        .parameters()
        .unwrap()
        .len()
        + 2;
    let mut group = c.benchmark_group("secagg_round");
    group.sample_size(10);
    // (label, clients, neighbours, threshold, dropout)
    let cases = [
        ("secagg", 20, None, 11, 0.0),
        ("secagg", 100, None, 51, 0.0),
        ("secagg+k16", 100, Some(16), 9, 0.0),
        ("secagg+k16_drop10", 100, Some(16), 9, 0.1),
    ];
    for (label, n, neighbours, threshold, dropout) in cases {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let inputs: Vec<(ParticipantId, Vec<u64>)> = (0..n)
            .map(|i| (i, (0..len).map(|_| rng.random_range(0..1 << 22)).collect()))
            .collect();
        group.bench_function(BenchmarkId::new(label, n), |b| {
            b.iter(|| {
                let params = SecAggParams {
                    session: [7; 32],
                    threshold,
                    neighbours,
                    vector_len: len,
                    modulus_bits: 32,
                };
                let stages = [Stage::Keys, Stage::Shares, Stage::Masked, Stage::Unmask];
                let plan: Vec<Option<Stage>> = (0..n)
                    .map(|_| {
                        (rng.random::<f64>() < dropout).then(|| stages[rng.random_range(0..4)])
                    })
                    .collect();
                let mut round_rng = ChaCha8Rng::seed_from_u64(rng.random());
                run_round_threads(
                    params,
                    inputs.clone(),
                    &mut round_rng,
                    |s, id| plan[id as usize] == Some(s),
                    |_, m| vec![(m.from(), m)],
                    1,
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, secagg);
criterion_main!(benches);
