//! A short simulation learns digits; stragglers and strategies behave as configured.

use federated::data::{Dataset, Partitioner};
use federated::privacy::{AdaptiveClipping, ClippingSide, DpConfig, LocalDp};
use federated::secagg::{SecAggConfig, SecAggMode};
use federated::simulation::{build_strategy, RoundMetrics, Simulation};
use federated::strategy::{ClientSelection, Config, StrategyConfig};
use federated::train::TrainConfig;
use inference::test_support::model_bytes;

fn split(name: &str) -> Dataset {
    let (x, y) = inference::test_support::digits(name);
    Dataset::new(x, vec![64], y).unwrap()
}

fn simulation(partitioner: Partitioner, stragglers: f64) -> Simulation {
    Simulation {
        model: model_bytes("digits_mlp.onnx"),
        train: split("train"),
        test: split("test"),
        clients: 10,
        partitioner,
        rounds: 5,
        train_config: TrainConfig::default(),
        straggler_fraction: stragglers,
        threads: 2,
        seed: 3,
        reinitialize: true,
        local_dp: None,
        secagg: None,
        accepts_partial: false,
    }
}

fn selection(n: usize) -> ClientSelection {
    ClientSelection {
        fraction_fit: 0.5,
        min_fit_clients: n,
        min_available_clients: 10,
        ..ClientSelection::default()
    }
}

#[test]
fn fedavg_learns_digits_from_random_weights() {
    let sim = simulation(Partitioner::Iid, 0.0);
    let mut strategy = StrategyConfig::FedAvg
        .build(selection(5), Config::new())
        .unwrap();
    let mut seen = Vec::new();
    let history = sim.run(strategy.as_mut(), |m| seen.push(m.round)).unwrap();
    assert_eq!(seen, [1, 2, 3, 4, 5], "progress reported every round");
    let first = history[0].eval_accuracy;
    let last = history[4].eval_accuracy;
    // Measured (seed 3): 0.28 after round 1, 0.78 after round 5; the bar is 0.7.
    assert!(last > 0.7 && last > first + 0.3, "{history:#?}");
    assert!(history
        .iter()
        .all(|m| m.clients_used == 5 && m.clients_dropped == 0));
    // Reproducible: the same seed gives the same curve.
    let mut again = StrategyConfig::FedAvg
        .build(selection(5), Config::new())
        .unwrap();
    let replay = simulation(Partitioner::Iid, 0.0)
        .run(again.as_mut(), |_| {})
        .unwrap();
    assert_eq!(
        history.iter().map(|m| m.eval_accuracy).collect::<Vec<_>>(),
        replay.iter().map(|m| m.eval_accuracy).collect::<Vec<_>>()
    );
}

#[test]
fn stragglers_are_dropped_by_fedavg_and_kept_by_fedprox() {
    let sim = simulation(
        Partitioner::Dirichlet {
            alpha: 0.5,
            min_size: 5,
        },
        1.0,
    );
    let mut fedavg = StrategyConfig::FedAvg
        .build(selection(5), Config::new())
        .unwrap();
    let h = sim.run(fedavg.as_mut(), |_| {}).unwrap();
    assert!(h
        .iter()
        .all(|m| m.stragglers == 5 && m.clients_used == 0 && m.clients_dropped == 5));
    // With nothing usable, FedAvg keeps the model: accuracy stays where it started.
    assert!(h
        .windows(2)
        .all(|w| w[0].eval_accuracy == w[1].eval_accuracy));
    let mut fedprox = StrategyConfig::FedProx { proximal_mu: 0.1 }
        .build(selection(5), Config::new())
        .unwrap();
    let h = sim.run(fedprox.as_mut(), |_| {}).unwrap();
    assert!(h.iter().all(|m| m.clients_used == 5));
    assert!(h[4].eval_accuracy > h[0].eval_accuracy);
}

#[test]
fn too_few_clients_is_an_error() {
    let sim = simulation(Partitioner::Iid, 0.0);
    let mut strategy = StrategyConfig::FedAvg
        .build(
            ClientSelection {
                min_available_clients: 50,
                ..ClientSelection::default()
            },
            Config::new(),
        )
        .unwrap();
    let err = sim
        .run(strategy.as_mut(), |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("10 clients available, 50 needed"), "{err}");
}

fn secagg(mode: SecAggMode, neighbours: Option<usize>, dropout: f64) -> SecAggConfig {
    SecAggConfig {
        mode,
        neighbours,
        threshold: 0.5,
        clipping_range: None,
        quantization_levels: 1 << 22,
        modulus_bits: 32,
        max_weight: 1000,
        dropout,
    }
}

fn dp(z: f64, clip: f64) -> DpConfig {
    DpConfig {
        noise_multiplier: z,
        clipping_norm: clip,
        clipping: ClippingSide::Client,
        adaptive: None,
        delta: 1e-5,
        epsilon_budget: None,
    }
}

fn run(sim: &Simulation, dp: Option<&DpConfig>) -> Vec<RoundMetrics> {
    let mut strategy = build_strategy(
        &StrategyConfig::FedAvg,
        selection(10),
        Config::new(),
        dp,
        sim.secagg.is_some(),
        9,
    )
    .unwrap();
    sim.run(strategy.as_mut(), |_| {}).unwrap()
}

#[test]
fn secure_aggregation_gives_the_plain_fedavg_model() {
    let mut sim = simulation(Partitioner::Iid, 0.0);
    sim.rounds = 2;
    let plain = run(&sim, None);
    sim.secagg = Some(secagg(SecAggMode::SecAgg, None, 0.0));
    let secure = run(&sim, None);
    for (p, s) in plain.iter().zip(&secure) {
        // Only quantization (steps of 4e-6) separates them.
        assert!((p.eval_loss - s.eval_loss).abs() < 1e-3, "{p:?}\n{s:?}");
        assert!(
            (p.eval_accuracy - s.eval_accuracy).abs() <= 0.01,
            "{p:?}\n{s:?}"
        );
        assert_eq!(s.secagg_survivors, Some(10));
        assert_eq!(s.clients_used, 10);
    }
    // SecAgg+ with dropouts: fewer survivors, still learning.
    sim.secagg = Some(secagg(SecAggMode::SecAggPlus, Some(6), 0.05));
    sim.rounds = 3;
    let plus = run(&sim, None);
    assert!(
        plus.iter().any(|m| m.secagg_survivors < Some(10)),
        "{plus:#?}"
    );
    assert!(plus
        .iter()
        .all(|m| m.clients_used + m.clients_dropped == 10));
    assert!(plus[2].eval_accuracy > plus[0].eval_accuracy, "{plus:#?}");
}

#[test]
fn dp_composes_with_secure_aggregation_and_reports_epsilon_per_round() {
    let mut sim = simulation(Partitioner::Iid, 0.0);
    sim.rounds = 4;
    sim.secagg = Some(secagg(SecAggMode::SecAgg, None, 0.0));
    let mut config = dp(0.3, 1.0);
    config.adaptive = Some(AdaptiveClipping::default());
    let h = run(&sim, Some(&config));
    let eps: Vec<f64> = h.iter().map(|m| m.dp_epsilon.unwrap()).collect();
    assert!(eps.windows(2).all(|w| w[1] > w[0]), "{eps:?}");
    let clips: Vec<f64> = h.iter().map(|m| m.dp_clipping_norm.unwrap()).collect();
    assert!(
        clips.windows(2).any(|w| w[0] != w[1]),
        "adaptive C moved: {clips:?}"
    );
    assert!(h.iter().all(|m| m.clients_used == 10));
    // The same run without SecAgg spends the same ε.
    sim.secagg = None;
    let plain = run(&sim, Some(&config));
    assert_eq!(
        eps,
        plain
            .iter()
            .map(|m| m.dp_epsilon.unwrap())
            .collect::<Vec<_>>()
    );
    // Local DP on top: heavy noise, the run still completes every round.
    sim.local_dp = Some(LocalDp {
        clipping_norm: 1.0,
        epsilon: 0.9,
        delta: 1e-5,
    });
    sim.rounds = 2;
    assert_eq!(run(&sim, Some(&dp(0.3, 1.0))).len(), 2);
}

#[test]
fn impossible_combinations_and_spent_budgets_are_refused() {
    let err = build_strategy(
        &StrategyConfig::FedMedian,
        selection(10),
        Config::new(),
        Some(&dp(1.0, 1.0)),
        false,
        0,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("mean-based"), "{err}");
    let mut server_side = dp(1.0, 1.0);
    server_side.clipping = ClippingSide::Server;
    let err = build_strategy(
        &StrategyConfig::FedAvg,
        selection(10),
        Config::new(),
        Some(&server_side),
        true,
        0,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("clipping = \"client\""), "{err}");
    // A budget of ε = 1 with z = 0.5 and everyone sampled: refused in round 1, before training.
    let mut sim = simulation(Partitioner::Iid, 0.0);
    let mut budgeted = dp(0.5, 1.0);
    budgeted.epsilon_budget = Some(1.0);
    let mut strategy = build_strategy(
        &StrategyConfig::FedAvg,
        selection(10),
        Config::new(),
        Some(&budgeted),
        false,
        0,
    )
    .unwrap();
    sim.rounds = 3;
    let mut rounds = 0;
    let err = sim.run(strategy.as_mut(), |_| rounds += 1).err().unwrap();
    assert_eq!(rounds, 0);
    assert!(err.to_string().contains("budget"), "{err}");
}

#[test]
fn an_aborted_secure_round_fails_that_round_only() {
    // Nearly everyone drops: each round aborts below the threshold; the run goes on and the
    // model stays as it was.
    let mut sim = simulation(Partitioner::Iid, 0.0);
    sim.rounds = 2;
    sim.secagg = Some(secagg(SecAggMode::SecAgg, None, 0.9));
    let h = run(&sim, None);
    assert_eq!(h.len(), 2);
    assert!(h
        .iter()
        .all(|m| m.clients_used == 0 && m.clients_dropped == 10 && m.secagg_survivors == Some(0)));
    assert_eq!(h[0].eval_accuracy, h[1].eval_accuracy);
}
