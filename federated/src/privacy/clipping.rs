//! Differential privacy as a wrapper around any strategy (Flower's
//! `DifferentialPrivacyServerSideFixedClipping`): each client's update is clipped to an L2
//! norm C, the inner strategy aggregates, and Gaussian noise of standard deviation z·C/m is
//! added to the aggregate (m: clients sampled per round). An optional accountant refuses a
//! round that would exceed the ε budget, before the round is configured.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::{AccountantError, RdpAccountant};
use crate::params::Parameters;
use crate::strategy::{
    ClientId, Config, EvaluateIns, EvaluateRes, Failure, FitAggregate, FitIns, FitRes, Scalar,
    Strategy, StrategyError,
};

/// Clips `update` (a flat vector) to L2 norm `clip`; returns the scale applied.
pub fn clip_to_norm(update: &mut [f32], clip: f64) -> f64 {
    let norm = update
        .iter()
        .map(|&v| (v as f64) * (v as f64))
        .sum::<f64>()
        .sqrt();
    let scale = if norm > clip { clip / norm } else { 1.0 };
    if scale < 1.0 {
        for v in update.iter_mut() {
            *v = (*v as f64 * scale) as f32;
        }
    }
    scale
}

/// Server-side fixed clipping with Gaussian noise around an inner strategy.
pub struct DpFixedClipping {
    inner: Box<dyn Strategy>,
    noise_multiplier: f64,
    clipping_norm: f64,
    sampled_clients: usize,
    accountant: Option<RdpAccountant>,
    rng: ChaCha8Rng,
    epsilon: f64,
}

impl DpFixedClipping {
    /// Wraps `inner`. `sampled_clients` is m, the clients per round; `accountant` (if any)
    /// tracks ε and enforces its budget. Parameters are checked here, as Flower does.
    pub fn new(
        inner: Box<dyn Strategy>,
        noise_multiplier: f64,
        clipping_norm: f64,
        sampled_clients: usize,
        accountant: Option<RdpAccountant>,
        seed: u64,
    ) -> Result<Self, StrategyError> {
        if noise_multiplier.is_nan() || noise_multiplier < 0.0 {
            return Err(StrategyError::InvalidParameter(format!(
                "noise multiplier {noise_multiplier} must be ≥ 0"
            )));
        }
        if clipping_norm.is_nan() || clipping_norm <= 0.0 {
            return Err(StrategyError::InvalidParameter(format!(
                "clipping norm {clipping_norm} must be > 0"
            )));
        }
        if sampled_clients == 0 {
            return Err(StrategyError::InvalidParameter(
                "sampled clients must be at least 1".to_owned(),
            ));
        }
        Ok(Self {
            inner,
            noise_multiplier,
            clipping_norm,
            sampled_clients,
            accountant,
            rng: ChaCha8Rng::seed_from_u64(seed),
            epsilon: 0.0,
        })
    }

    /// ε spent so far (0 without an accountant).
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// The standard deviation of the noise added to the aggregate: z·C/m.
    pub fn noise_std(&self) -> f64 {
        self.noise_multiplier * self.clipping_norm / self.sampled_clients as f64
    }
}

impl Strategy for DpFixedClipping {
    fn name(&self) -> &str {
        "DP fixed clipping"
    }

    fn configure_fit(
        &mut self,
        round: u64,
        parameters: &Parameters,
        available: &[ClientId],
        rng: &mut dyn rand::RngCore,
    ) -> Result<Vec<(ClientId, FitIns)>, StrategyError> {
        if let Some(acc) = &mut self.accountant {
            self.epsilon = acc.spend_round().map_err(|e| match e {
                AccountantError::BudgetExceeded { .. } | AccountantError::Invalid(_) => {
                    StrategyError::InvalidParameter(e.to_string())
                }
            })?;
        }
        self.inner.configure_fit(round, parameters, available, rng)
    }

    fn aggregate_fit(
        &mut self,
        round: u64,
        current: &Parameters,
        results: Vec<(ClientId, FitRes)>,
        failures: Vec<Failure>,
    ) -> Result<FitAggregate, StrategyError> {
        let base = current.flatten();
        let mut clipped = Vec::with_capacity(results.len());
        for (client, mut r) in results {
            if current.check_compatible(&r.parameters).is_ok() {
                let mut update: Vec<f32> = r
                    .parameters
                    .flatten()
                    .iter()
                    .zip(&base)
                    .map(|(p, c)| p - c)
                    .collect();
                clip_to_norm(&mut update, self.clipping_norm);
                let values: Vec<f32> = base.iter().zip(&update).map(|(c, u)| c + u).collect();
                r.parameters = current.unflatten_like(&values)?;
            }
            clipped.push((client, r));
        }
        let mut out = self
            .inner
            .aggregate_fit(round, current, clipped, failures)?;
        if let Some(p) = out.parameters.take() {
            let normal = Normal::new(0.0, self.noise_std())
                .map_err(|e| StrategyError::InvalidParameter(e.to_string()))?;
            let noisy: Vec<f32> = p
                .flatten()
                .iter()
                .map(|&v| (v as f64 + normal.sample(&mut self.rng)) as f32)
                .collect();
            out.parameters = Some(p.unflatten_like(&noisy)?);
        }
        out.metrics
            .insert("dp_epsilon".to_owned(), Scalar::Float(self.epsilon));
        out.metrics
            .insert("dp_noise_std".to_owned(), Scalar::Float(self.noise_std()));
        Ok(out)
    }

    fn configure_evaluate(
        &mut self,
        round: u64,
        parameters: &Parameters,
        available: &[ClientId],
        rng: &mut dyn rand::RngCore,
    ) -> Result<Vec<(ClientId, EvaluateIns)>, StrategyError> {
        self.inner
            .configure_evaluate(round, parameters, available, rng)
    }

    fn aggregate_evaluate(
        &mut self,
        round: u64,
        results: Vec<(ClientId, EvaluateRes)>,
        failures: Vec<Failure>,
    ) -> Option<(f64, Config)> {
        self.inner.aggregate_evaluate(round, results, failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ParamTensor;
    use crate::strategy::{ClientSelection, StrategyConfig};

    fn p(v: &[f32]) -> Parameters {
        Parameters::new(vec![ParamTensor {
            name: "w".into(),
            shape: vec![v.len()],
            data: v.to_vec(),
        }])
        .unwrap()
    }

    fn res(v: &[f32]) -> FitRes {
        FitRes {
            parameters: p(v),
            num_examples: 1,
            metrics: Config::new(),
            complete: true,
        }
    }

    fn fedavg() -> Box<dyn Strategy> {
        let sel = ClientSelection {
            min_fit_clients: 1,
            min_available_clients: 1,
            ..ClientSelection::default()
        };
        StrategyConfig::FedAvg.build(sel, Config::new()).unwrap()
    }

    #[test]
    fn clipping_by_hand() {
        let mut u = [3.0f32, 4.0];
        assert_eq!(clip_to_norm(&mut u, 1.0), 0.2);
        assert_eq!(u, [0.6, 0.8]);
        let mut small = [0.3f32, 0.4];
        assert_eq!(clip_to_norm(&mut small, 1.0), 1.0);
        assert_eq!(small, [0.3, 0.4]);
    }

    #[test]
    fn updates_are_clipped_before_averaging_and_noise_is_z_c_over_m() {
        // Without noise: updates (3, 4) and (0, 0.5) clip to (0.6, 0.8) and (0, 0.5): mean (0.3, 0.65).
        let mut dp = DpFixedClipping::new(fedavg(), 0.0, 1.0, 2, None, 0).unwrap();
        let out = dp
            .aggregate_fit(
                1,
                &p(&[0.0, 0.0]),
                vec![
                    ("a".into(), res(&[3.0, 4.0])),
                    ("b".into(), res(&[0.0, 0.5])),
                ],
                vec![],
            )
            .unwrap();
        let got = out.parameters.unwrap().flatten();
        assert!(
            (got[0] - 0.3).abs() < 1e-6 && (got[1] - 0.65).abs() < 1e-6,
            "{got:?}"
        );
        // With noise: the empirical std of many coordinates is z·C/m = 2·1/4 = 0.5.
        let mut dp = DpFixedClipping::new(fedavg(), 2.0, 1.0, 4, None, 7).unwrap();
        assert_eq!(dp.noise_std(), 0.5);
        let zeros = vec![0.0f32; 20_000];
        let out = dp
            .aggregate_fit(1, &p(&zeros), vec![("a".into(), res(&zeros))], vec![])
            .unwrap();
        let v = out.parameters.unwrap().flatten();
        let std = (v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        assert!((std - 0.5).abs() < 0.01, "std {std}");
        assert!(DpFixedClipping::new(fedavg(), -1.0, 1.0, 1, None, 0).is_err());
        assert!(DpFixedClipping::new(fedavg(), 1.0, 0.0, 1, None, 0).is_err());
    }

    #[test]
    fn the_accountant_refuses_a_round_over_budget() {
        let acc = RdpAccountant::new(0.1, 1.0, 1e-5, Some(2.5)).unwrap();
        let mut dp = DpFixedClipping::new(fedavg(), 1.0, 1.0, 1, Some(acc), 0).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let clients = vec!["a".to_owned()];
        let mut rounds = 0;
        while dp
            .configure_fit(rounds + 1, &p(&[0.0]), &clients, &mut rng)
            .is_ok()
        {
            rounds += 1;
            assert!(dp.epsilon() <= 2.5);
        }
        assert!(rounds >= 2, "only {rounds} rounds fit the budget");
        let err = dp
            .configure_fit(rounds + 1, &p(&[0.0]), &clients, &mut rng)
            .unwrap_err();
        assert!(err.to_string().contains("budget"), "{err}");
    }
}
