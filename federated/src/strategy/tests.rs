//! Each strategy's arithmetic against hand-computed cases, and the round plumbing.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::params::ParamTensor;

fn p(values: &[f32]) -> Parameters {
    Parameters::new(vec![ParamTensor {
        name: "w".into(),
        shape: vec![values.len()],
        data: values.to_vec(),
    }])
    .unwrap()
}

fn res(values: &[f32], n: u64, complete: bool) -> FitRes {
    let mut metrics = Config::new();
    metrics.insert("train_loss".into(), Scalar::Float(values[0] as f64));
    FitRes {
        parameters: p(values),
        num_examples: n,
        metrics,
        complete,
    }
}

fn selection() -> ClientSelection {
    ClientSelection {
        min_fit_clients: 1,
        min_evaluate_clients: 1,
        min_available_clients: 1,
        ..ClientSelection::default()
    }
}

fn run<A: Aggregation>(agg: A, current: &[f32], results: Vec<FitRes>) -> FitAggregate {
    let mut s = FedStrategy::new(selection(), Config::new(), agg).unwrap();
    let results = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| (format!("c{i}"), r))
        .collect();
    s.aggregate_fit(1, &p(current), results, vec![]).unwrap()
}

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
    }
}

#[test]
fn fedavg_weights_by_examples_and_drops_stragglers() {
    let out = run(
        Mean::fedavg(),
        &[0.0, 0.0],
        vec![
            res(&[1.0, 2.0], 10, true),
            res(&[3.0, 6.0], 30, true),
            res(&[100.0, 100.0], 50, false),
        ],
    );
    close(&out.parameters.unwrap().flatten(), &[2.5, 5.0]);
    assert_eq!(out.metrics["clients_used"], Scalar::Int(2));
    assert_eq!(out.metrics["clients_dropped"], Scalar::Int(1));
    // train_loss weighted by examples: (1·10 + 3·30) / 40 = 2.5
    assert_eq!(out.metrics["train_loss"], Scalar::Float(2.5));
}

#[test]
fn fedprox_accepts_partial_work_and_configures_mu() {
    let out = run(
        Mean::fedprox(0.1).unwrap(),
        &[0.0],
        vec![res(&[1.0], 10, true), res(&[4.0], 20, false)],
    );
    close(&out.parameters.unwrap().flatten(), &[3.0]);
    let mut s = FedStrategy::new(selection(), Config::new(), Mean::fedprox(0.1).unwrap()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let ins = s
        .configure_fit(3, &p(&[0.0]), &["a".into()], &mut rng)
        .unwrap();
    assert_eq!(ins[0].1.config["proximal_mu"], Scalar::Float(0.1));
    assert_eq!(ins[0].1.config["server_round"], Scalar::Int(3));
    assert!(Mean::fedprox(-1.0).is_err());
}

#[test]
fn no_usable_result_keeps_the_current_model() {
    let mut s = FedStrategy::new(selection(), Config::new(), Mean::fedavg()).unwrap();
    let wrong_shape = res(&[1.0, 2.0, 3.0], 10, true);
    let failures = vec![Failure {
        client: "x".into(),
        reason: "timeout".into(),
    }];
    let out = s
        .aggregate_fit(1, &p(&[0.0]), vec![("c".into(), wrong_shape)], failures)
        .unwrap();
    assert_eq!(out.parameters, None);
    assert_eq!(out.metrics["clients_dropped"], Scalar::Int(2));
}

#[test]
fn fedavgm_accumulates_momentum() {
    let mut s = FedStrategy::new(
        selection(),
        Config::new(),
        ServerOpt::fedavgm(1.0, 0.9).unwrap(),
    )
    .unwrap();
    // Round 1: g = 0 − 1 = −1, v = −1, w = 0 − (−1) = 1.
    let r1 = s
        .aggregate_fit(
            1,
            &p(&[0.0]),
            vec![("a".into(), res(&[1.0], 1, true))],
            vec![],
        )
        .unwrap();
    close(&r1.parameters.clone().unwrap().flatten(), &[1.0]);
    // Round 2: g = 1 − 3 = −2, v = 0.9·(−1) − 2 = −2.9, w = 1 + 2.9 = 3.9.
    let r2 = s
        .aggregate_fit(
            2,
            &r1.parameters.unwrap(),
            vec![("a".into(), res(&[3.0], 1, true))],
            vec![],
        )
        .unwrap();
    close(&r2.parameters.unwrap().flatten(), &[3.9]);
}

#[test]
fn adaptive_server_optimizers_by_hand() {
    // Δ = 2 in every case; τ = 1 so v starts at 1.
    // Adagrad: m = Δ = 2, v = 1 + 4 = 5, w = 2 / (√5 + 1) = 0.618034
    let out = run(
        ServerOpt::fedadagrad(1.0, 1.0).unwrap(),
        &[0.0],
        vec![res(&[2.0], 1, true)],
    );
    close(&out.parameters.unwrap().flatten(), &[0.618034]);
    // Adam (β₁ = β₂ = 0.5): m = 1, v = 0.5 + 2 = 2.5, η₁ = √0.5 / 0.5 = 1.414214,
    // w = 1.414214 / (√2.5 + 1) = 0.547907
    let out = run(
        ServerOpt::fedadam(1.0, 0.5, 0.5, 1.0).unwrap(),
        &[0.0],
        vec![res(&[2.0], 1, true)],
    );
    close(&out.parameters.unwrap().flatten(), &[0.547907]);
    // Yogi: m = 1, v = 1 − 0.5·4·sign(1 − 4) = 3, w = 1 / (√3 + 1) = 0.366025
    let out = run(
        ServerOpt::fedyogi(1.0, 0.5, 0.5, 1.0).unwrap(),
        &[0.0],
        vec![res(&[2.0], 1, true)],
    );
    close(&out.parameters.unwrap().flatten(), &[0.366025]);
    assert!(ServerOpt::fedadam(0.0, 0.9, 0.99, 1e-9).is_err());
    assert!(ServerOpt::fedyogi(0.1, 1.0, 0.99, 1e-9).is_err());
}

#[test]
fn robust_rules_by_hand() {
    let results = || {
        vec![
            res(&[1.0, 0.0], 1, true),
            res(&[2.0, 0.0], 1, true),
            res(&[3.0, 1.0], 1, true),
            res(&[4.0, 1.0], 1, true),
            res(&[1000.0, -500.0], 1000, true),
        ]
    };
    let median = run(Median, &[0.0, 0.0], results());
    close(&median.parameters.unwrap().flatten(), &[3.0, 0.0]);
    // beta 0.2 of 5 drops one per end: [1, 2, 3, 4, 1000] → [2, 3, 4] → 3;
    // [−500, 0, 0, 1, 1] → [0, 0, 1] → 1/3
    let trimmed = run(TrimmedMean::new(0.2).unwrap(), &[0.0, 0.0], results());
    close(&trimmed.parameters.unwrap().flatten(), &[3.0, 1.0 / 3.0]);
    // Krum with f = 1 keeps the most central update; Multi-Krum the mean of the 3 best.
    let krum = run(Krum::single(1), &[0.0, 0.0], results());
    let k = krum.parameters.unwrap().flatten();
    assert!(k == [2.0, 0.0] || k == [3.0, 1.0], "{k:?}");
    let multi = run(Krum::multi_krum(1, 4).unwrap(), &[0.0, 0.0], results());
    close(&multi.parameters.unwrap().flatten(), &[2.5, 0.5]);
    assert!(TrimmedMean::new(0.5).is_err());
}

#[test]
fn selection_respects_fraction_minimums_and_seed() {
    let clients: Vec<ClientId> = (0..10).map(|i| format!("c{i:02}")).collect();
    let sel = ClientSelection {
        fraction_fit: 0.35,
        min_fit_clients: 2,
        min_available_clients: 5,
        ..ClientSelection::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let a = sel.sample(&clients, 0.35, 2, &mut rng).unwrap();
    assert_eq!(a.len(), 4, "ceil(0.35 · 10) = 4");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    assert_eq!(
        sel.sample(&clients, 0.35, 2, &mut rng).unwrap(),
        a,
        "same seed, same clients"
    );
    assert_eq!(sel.sample(&clients, 0.01, 3, &mut rng).unwrap().len(), 3);
    let err = sel.sample(&clients[..4], 1.0, 2, &mut rng).unwrap_err();
    assert_eq!(
        err,
        StrategyError::NotEnoughClients {
            available: 4,
            needed: 5
        }
    );
    let bad = ClientSelection {
        fraction_fit: 1.5,
        ..ClientSelection::default()
    };
    assert!(FedStrategy::new(bad, Config::new(), Mean::fedavg()).is_err());
}

#[test]
fn evaluation_is_weighted_by_examples() {
    let mut s = FedStrategy::new(selection(), Config::new(), Mean::fedavg()).unwrap();
    let mk = |loss: f64, acc: f64, n: u64| EvaluateRes {
        loss,
        num_examples: n,
        metrics: [("accuracy".to_owned(), Scalar::Float(acc))]
            .into_iter()
            .collect(),
    };
    let (loss, metrics) = s
        .aggregate_evaluate(
            1,
            vec![
                ("a".into(), mk(1.0, 0.5, 10)),
                ("b".into(), mk(2.0, 1.0, 30)),
            ],
            vec![],
        )
        .unwrap();
    assert!((loss - 1.75).abs() < 1e-12);
    assert_eq!(metrics["accuracy"], Scalar::Float(0.875));
    assert!(s.aggregate_evaluate(1, vec![], vec![]).is_none());
}
