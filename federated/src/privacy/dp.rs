//! Differential privacy as a wrapper around a mean-based strategy, in the style of Flower's
//! `DifferentialPrivacy{Server,Client}Side{Fixed,Adaptive}Clipping`, with DP-FedAvg's
//! arithmetic (McMahan et al. 2018):
//!
//! - every client's update Δᵢ is clipped to L2 norm C, on the server or (so that it composes
//!   with secure aggregation) on the client, which is told C in its round config
//!   (`dp_clipping_norm`);
//! - the clipped updates are summed and divided by m, the clients sampled this round, and
//!   Gaussian noise of standard deviation z·C/m is added to that mean, before the inner
//!   strategy's server optimizer sees it (so FedAdam & co. only post-process private data);
//! - with adaptive clipping (Andrew et al. 2019) C follows a target quantile γ of the update
//!   norms: C ← C·exp(−η(b̃ − γ)), b̃ the noised fraction of clients whose norm was ≤ C; the
//!   update noise becomes z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2) so that both releases together cost what
//!   z alone costs;
//! - the [`RdpAccountant`] counts every round at q = m / (clients available), and refuses a
//!   round that would exceed the ε budget before any client is asked to train.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::{clip_to_norm, AccountantError, RdpAccountant};
use crate::params::Parameters;
use crate::strategy::{
    ClientId, Config, EvaluateIns, EvaluateRes, Failure, FitAggregate, FitIns, FitRes, Scalar,
    Strategy, StrategyError,
};

/// Round-config key telling clients to clip their update to this norm.
pub const CLIPPING_NORM_KEY: &str = "dp_clipping_norm";
/// Metric a client (or a secure aggregate) reports: how many clipped updates had a norm ≤ C
/// before clipping (1 or 0 for one client, a count for an aggregate).
pub const NORM_BIT_KEY: &str = "dp_norm_within_clip";
/// Metric of a secure aggregate: how many clients its (mean) update stands for.
pub const AGGREGATE_CLIENTS_KEY: &str = "secagg_clients";

/// Where updates are clipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClippingSide {
    /// The server clips what clients send (it sees every update).
    #[default]
    Server,
    /// Each client clips its own update (needed with secure aggregation).
    Client,
}

/// Adaptive clipping parameters (Andrew et al. 2019), with Flower's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptiveClipping {
    /// γ: the fraction of updates that should end up unclipped.
    pub target_quantile: f64,
    /// η_C: the clipping norm's geometric learning rate.
    pub learning_rate: f64,
    /// σ_b: noise on the count of unclipped updates (default m/20).
    pub clipped_count_stddev: Option<f64>,
}

impl Default for AdaptiveClipping {
    fn default() -> Self {
        Self {
            target_quantile: 0.5,
            learning_rate: 0.2,
            clipped_count_stddev: None,
        }
    }
}

fn default_delta() -> f64 {
    1e-5
}

/// Central differential privacy for a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpConfig {
    /// z: noise standard deviation over the clipping norm.
    pub noise_multiplier: f64,
    /// C, or its starting value with adaptive clipping.
    pub clipping_norm: f64,
    /// Where updates are clipped.
    #[serde(default)]
    pub clipping: ClippingSide,
    /// Adapt C to a quantile of the update norms.
    #[serde(default)]
    pub adaptive: Option<AdaptiveClipping>,
    /// δ of the (ε, δ) guarantee.
    #[serde(default = "default_delta")]
    pub delta: f64,
    /// Refuse a round that would bring ε above this.
    #[serde(default)]
    pub epsilon_budget: Option<f64>,
}

/// The DP wrapper; see the module docs.
pub struct DifferentialPrivacy {
    inner: Box<dyn Strategy>,
    config: DpConfig,
    accepts_partial: bool,
    accountant: Option<RdpAccountant>,
    rng: ChaCha8Rng,
    /// C for the round in progress.
    clip: f64,
    /// Clients sampled for the round in progress.
    sampled: usize,
    epsilon: f64,
}

impl DifferentialPrivacy {
    /// Wraps `inner`, which must average (FedAvg, FedProx, FedAvgM, FedAdam, FedYogi,
    /// FedAdagrad); `accepts_partial` says whether stragglers' partial work counts (FedProx).
    pub fn new(
        inner: Box<dyn Strategy>,
        config: DpConfig,
        accepts_partial: bool,
        seed: u64,
    ) -> Result<Self, StrategyError> {
        let invalid = |m: String| Err(StrategyError::InvalidParameter(m));
        let z = config.noise_multiplier;
        if z.is_nan() || z < 0.0 || z.is_infinite() {
            return invalid(format!("noise multiplier {z} must be ≥ 0"));
        }
        let c = config.clipping_norm;
        if c.is_nan() || c <= 0.0 || c.is_infinite() {
            return invalid(format!("clipping norm {c} must be > 0"));
        }
        if let Some(a) = &config.adaptive {
            if !(0.0..=1.0).contains(&a.target_quantile) {
                return invalid(format!(
                    "target quantile {} must be in [0, 1]",
                    a.target_quantile
                ));
            }
            if !(a.learning_rate > 0.0 && a.learning_rate.is_finite()) {
                return invalid(format!(
                    "clipping learning rate {} must be > 0",
                    a.learning_rate
                ));
            }
            if a.clipped_count_stddev
                .is_some_and(|s| !(s > 0.0 && s.is_finite()))
            {
                return invalid("clipped_count_stddev must be a finite number > 0".into());
            }
        }
        let accountant = if z > 0.0 {
            Some(
                RdpAccountant::new(1.0, z, config.delta, config.epsilon_budget)
                    .map_err(|e| StrategyError::InvalidParameter(e.to_string()))?,
            )
        } else if config.epsilon_budget.is_some() {
            return invalid("an ε budget needs a noise multiplier > 0".into());
        } else {
            None
        };
        Ok(Self {
            inner,
            clip: c,
            config,
            accepts_partial,
            accountant,
            rng: ChaCha8Rng::seed_from_u64(seed),
            sampled: 0,
            epsilon: 0.0,
        })
    }

    /// ε spent so far (infinite without noise).
    pub fn epsilon(&self) -> f64 {
        if self.accountant.is_some() {
            self.epsilon
        } else {
            f64::INFINITY
        }
    }

    /// The clipping norm the next round uses.
    pub fn clipping_norm(&self) -> f64 {
        self.clip
    }

    /// σ_b for `m` sampled clients.
    fn count_stddev(&self, m: usize) -> f64 {
        self.config
            .adaptive
            .as_ref()
            .and_then(|a| a.clipped_count_stddev)
            .unwrap_or(m as f64 / 20.0)
    }

    /// The noise multiplier of the update: z, or z_Δ with adaptive clipping.
    pub fn update_noise_multiplier(&self, m: usize) -> Result<f64, StrategyError> {
        let z = self.config.noise_multiplier;
        if self.config.adaptive.is_none() || z == 0.0 {
            return Ok(z);
        }
        let sb = self.count_stddev(m);
        if z >= 2.0 * sb {
            return Err(StrategyError::InvalidParameter(format!(
                "with adaptive clipping z = {z} must be below 2σ_b = {} (raise clipped_count_stddev or sample more clients)",
                2.0 * sb
            )));
        }
        Ok((z.powi(-2) - (2.0 * sb).powi(-2)).powf(-0.5))
    }
}

impl Strategy for DifferentialPrivacy {
    fn name(&self) -> &str {
        "differential privacy"
    }

    fn configure_fit(
        &mut self,
        round: u64,
        parameters: &Parameters,
        available: &[ClientId],
        rng: &mut dyn rand::RngCore,
    ) -> Result<Vec<(ClientId, FitIns)>, StrategyError> {
        let mut ins = self
            .inner
            .configure_fit(round, parameters, available, rng)?;
        let m = ins.len();
        self.update_noise_multiplier(m)?;
        if let Some(acc) = &mut self.accountant {
            let q = m as f64 / available.len().max(1) as f64;
            self.epsilon = acc.spend_round_at(q).map_err(|e| match e {
                AccountantError::BudgetExceeded { .. } | AccountantError::Invalid(_) => {
                    StrategyError::InvalidParameter(e.to_string())
                }
            })?;
        }
        self.sampled = m;
        if self.config.clipping == ClippingSide::Client {
            for (_, i) in &mut ins {
                i.config
                    .insert(CLIPPING_NORM_KEY.to_owned(), Scalar::Float(self.clip));
            }
        }
        Ok(ins)
    }

    fn aggregate_fit(
        &mut self,
        round: u64,
        current: &Parameters,
        results: Vec<(ClientId, FitRes)>,
        failures: Vec<Failure>,
    ) -> Result<FitAggregate, StrategyError> {
        let base = current.flatten();
        let m = self.sampled.max(1);
        let mut sum = vec![0.0f64; base.len()];
        let (mut contributors, mut within, mut dropped) = (0.0f64, 0.0f64, failures.len());
        let (mut loss, mut loss_weight) = (0.0f64, 0.0f64);
        for (client, r) in results {
            let aggregate_of = r
                .metrics
                .get(AGGREGATE_CLIENTS_KEY)
                .and_then(Scalar::as_f64);
            let usable = (r.complete || self.accepts_partial)
                && current.check_compatible(&r.parameters).is_ok();
            if !usable {
                tracing::debug!(round, %client, "dropping a fit result");
                dropped += 1;
                continue;
            }
            let mut delta = r.parameters.flat_delta(&base);
            let norm = delta
                .iter()
                .map(|&v| (v as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            let count = match (self.config.clipping, aggregate_of) {
                (ClippingSide::Server, Some(_)) => {
                    return Err(StrategyError::InvalidParameter(
                        "server-side clipping cannot see securely aggregated updates; use client-side clipping".into(),
                    ))
                }
                (ClippingSide::Server, None) => {
                    within += f64::from(u8::from(norm <= self.clip));
                    clip_to_norm(&mut delta, self.clip);
                    1.0
                }
                (ClippingSide::Client, aggregate_of) => {
                    // An aggregate stands for 1 ≤ k ≤ m clients; its mean of clipped updates is
                    // within C too (quantization may add a hair). A client that did not clip
                    // would void the guarantee: its update is dropped.
                    let k = aggregate_of.unwrap_or(1.0);
                    let tolerance = if aggregate_of.is_some() { 1e-3 } else { 1e-4 };
                    let bad_count = !(k >= 1.0 && k <= m as f64 && k.fract() == 0.0);
                    if bad_count || norm.is_nan() || norm > self.clip * (1.0 + tolerance) {
                        tracing::warn!(round, %client, norm, clip = self.clip, k, "update not clipped by its client(s); dropped");
                        dropped += 1;
                        continue;
                    }
                    // A missing bit counts as "clipped" (0), the conservative side for C.
                    let bit = r
                        .metrics
                        .get(NORM_BIT_KEY)
                        .and_then(Scalar::as_f64)
                        .unwrap_or(0.0);
                    within += if bit.is_finite() { bit.clamp(0.0, k) } else { 0.0 };
                    k
                }
            };
            // An aggregate carries the mean of `count` updates: it adds their sum.
            for (s, d) in sum.iter_mut().zip(&delta) {
                *s += *d as f64 * count;
            }
            contributors += count;
            if let Some(l) = r.metrics.get("train_loss").and_then(Scalar::as_f64) {
                loss += l * count;
                loss_weight += count;
            }
        }
        let z = self.update_noise_multiplier(m)?;
        let noise_std = z * self.clip / m as f64;
        let mut metrics = Config::new();
        metrics.insert("dp_epsilon".to_owned(), Scalar::Float(self.epsilon()));
        metrics.insert("dp_noise_std".to_owned(), Scalar::Float(noise_std));
        metrics.insert("dp_clipping_norm".to_owned(), Scalar::Float(self.clip));
        let parameters = if contributors > 0.0 {
            let normal = Normal::new(0.0, noise_std)
                .map_err(|e| StrategyError::InvalidParameter(e.to_string()))?;
            let values: Vec<f32> = base
                .iter()
                .zip(&sum)
                .map(|(&c, &s)| (c as f64 + s / m as f64 + normal.sample(&mut self.rng)) as f32)
                .collect();
            let mut fit = Config::new();
            if loss_weight > 0.0 {
                fit.insert("train_loss".to_owned(), Scalar::Float(loss / loss_weight));
            }
            let noised = FitRes {
                parameters: current.unflatten_like(&values)?,
                num_examples: 1,
                metrics: fit,
                complete: true,
            };
            let out = self.inner.aggregate_fit(
                round,
                current,
                vec![("dp-noised-mean".to_owned(), noised)],
                Vec::new(),
            )?;
            metrics.extend(out.metrics);
            out.parameters
        } else {
            None
        };
        metrics.insert("clients_used".to_owned(), Scalar::Int(contributors as i64));
        metrics.insert("clients_dropped".to_owned(), Scalar::Int(dropped as i64));
        if let Some(a) = &self.config.adaptive {
            let sb = self.count_stddev(m);
            let count_noise = Normal::new(0.0, sb).map_err(|e| {
                StrategyError::InvalidParameter(format!("clipped-count noise: {e}"))
            })?;
            let noisy_count = within + count_noise.sample(&mut self.rng);
            let fraction = noisy_count / m as f64;
            self.clip *= (-a.learning_rate * (fraction - a.target_quantile)).exp();
            metrics.insert("dp_unclipped_fraction".to_owned(), Scalar::Float(fraction));
        }
        Ok(FitAggregate {
            parameters,
            metrics,
        })
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
            num_examples: 7,
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

    fn config(z: f64, c: f64) -> DpConfig {
        DpConfig {
            noise_multiplier: z,
            clipping_norm: c,
            clipping: ClippingSide::Server,
            adaptive: None,
            delta: 1e-5,
            epsilon_budget: None,
        }
    }

    fn ids(n: usize) -> Vec<ClientId> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    /// Configures a round on `available` clients (all sampled, fraction 1).
    fn start(dp: &mut DifferentialPrivacy, available: usize) -> Vec<(ClientId, FitIns)> {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        dp.configure_fit(1, &p(&[0.0, 0.0]), &ids(available), &mut rng)
            .unwrap()
    }

    #[test]
    fn updates_are_clipped_summed_over_m_and_noised_with_z_c_over_m() {
        // Without noise: (3, 4) and (0, 0.5) clip to (0.6, 0.8) and (0, 0.5); their sum over
        // m = 2 is (0.3, 0.65), whatever the example counts.
        let mut dp = DifferentialPrivacy::new(fedavg(), config(0.0, 1.0), false, 0).unwrap();
        start(&mut dp, 2);
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
        assert_eq!(out.metrics["clients_used"], Scalar::Int(2));
        // With noise: the empirical std of many coordinates is z·C/m = 2·1/4 = 0.5.
        let mut dp = DifferentialPrivacy::new(fedavg(), config(2.0, 1.0), false, 7).unwrap();
        let zeros = vec![0.0f32; 20_000];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        dp.configure_fit(1, &p(&zeros), &ids(4), &mut rng).unwrap();
        let out = dp
            .aggregate_fit(1, &p(&zeros), vec![("a".into(), res(&zeros))], vec![])
            .unwrap();
        assert_eq!(out.metrics["dp_noise_std"], Scalar::Float(0.5));
        let v = out.parameters.unwrap().flatten();
        let std = (v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        assert!((std - 0.5).abs() < 0.01, "std {std}");
        // q = 4/4 = 1 for one round of z = 2: ε is finite and positive.
        let eps = dp.epsilon();
        assert!(eps > 0.0 && eps.is_finite());
        assert!(DifferentialPrivacy::new(fedavg(), config(-1.0, 1.0), false, 0).is_err());
        assert!(DifferentialPrivacy::new(fedavg(), config(1.0, 0.0), false, 0).is_err());
    }

    #[test]
    fn client_side_clipping_sends_the_norm_and_drops_unclipped_updates() {
        let mut c = config(0.0, 1.0);
        c.clipping = ClippingSide::Client;
        let mut dp = DifferentialPrivacy::new(fedavg(), c, false, 0).unwrap();
        let ins = start(&mut dp, 2);
        assert!(ins
            .iter()
            .all(|(_, i)| i.config[CLIPPING_NORM_KEY] == Scalar::Float(1.0)));
        let out = dp
            .aggregate_fit(
                1,
                &p(&[0.0, 0.0]),
                vec![
                    ("honest".into(), res(&[0.6, 0.8])),
                    ("cheat".into(), res(&[3.0, 4.0])),
                ],
                vec![],
            )
            .unwrap();
        assert_eq!(out.metrics["clients_dropped"], Scalar::Int(1));
        // Only the honest update counts, over m = 2.
        let got = out.parameters.unwrap().flatten();
        assert!((got[0] - 0.3).abs() < 1e-6, "{got:?}");
        // A secure aggregate of 2 clients (mean (0.3, 0.4)) adds their sum.
        let mut dp = DifferentialPrivacy::new(
            fedavg(),
            DpConfig {
                clipping: ClippingSide::Client,
                ..config(0.0, 1.0)
            },
            false,
            0,
        )
        .unwrap();
        start(&mut dp, 4);
        let mut agg = res(&[0.3, 0.4]);
        agg.metrics
            .insert(AGGREGATE_CLIENTS_KEY.into(), Scalar::Int(2));
        let out = dp
            .aggregate_fit(
                1,
                &p(&[0.0, 0.0]),
                vec![("secagg".into(), agg.clone())],
                vec![],
            )
            .unwrap();
        let got = out.parameters.unwrap().flatten();
        assert!(
            (got[0] - 0.15).abs() < 1e-6 && (got[1] - 0.2).abs() < 1e-6,
            "{got:?}"
        );
        // Server-side clipping cannot take an aggregate.
        let mut dp = DifferentialPrivacy::new(fedavg(), config(0.0, 1.0), false, 0).unwrap();
        start(&mut dp, 2);
        assert!(dp
            .aggregate_fit(1, &p(&[0.0, 0.0]), vec![("secagg".into(), agg)], vec![])
            .is_err());
    }

    #[test]
    fn client_reports_cannot_move_c_or_inflate_an_aggregate() {
        let mut c = config(0.0, 1.0);
        c.clipping = ClippingSide::Client;
        c.adaptive = Some(AdaptiveClipping::default());
        let mut dp = DifferentialPrivacy::new(fedavg(), c.clone(), false, 0).unwrap();
        start(&mut dp, 4);
        let mut liar = res(&[0.1, 0.0]);
        liar.metrics.insert(NORM_BIT_KEY.into(), Scalar::Float(1e9));
        let mut inflated = res(&[0.1, 0.0]);
        inflated
            .metrics
            .insert(AGGREGATE_CLIENTS_KEY.into(), Scalar::Int(1000));
        let out = dp
            .aggregate_fit(
                1,
                &p(&[0.0, 0.0]),
                vec![("liar".into(), liar), ("inflated".into(), inflated)],
                vec![],
            )
            .unwrap();
        // The bit is clamped to 1 and the 1000-client "aggregate" (m = 4) is dropped.
        assert_eq!(out.metrics["clients_dropped"], Scalar::Int(1));
        let clip = dp.clipping_norm();
        assert!(clip.is_finite() && clip > 0.5, "C = {clip}");
        let mut bad = c;
        bad.adaptive = Some(AdaptiveClipping {
            clipped_count_stddev: Some(f64::INFINITY),
            ..AdaptiveClipping::default()
        });
        assert!(DifferentialPrivacy::new(fedavg(), bad, false, 0).is_err());
    }

    #[test]
    fn adaptive_clipping_tracks_the_target_quantile() {
        // Update norms 0.1, 0.2, ..., 2.0; target median: C should settle near 1.05.
        let mut c = config(0.0, 0.05);
        c.adaptive = Some(AdaptiveClipping {
            target_quantile: 0.5,
            learning_rate: 0.2,
            clipped_count_stddev: None,
        });
        let mut dp = DifferentialPrivacy::new(fedavg(), c, false, 0).unwrap();
        for _ in 0..200 {
            start(&mut dp, 20);
            let results = (1..=20)
                .map(|i| (format!("c{i}"), res(&[i as f32 * 0.1, 0.0])))
                .collect();
            dp.aggregate_fit(1, &p(&[0.0, 0.0]), results, vec![])
                .unwrap();
        }
        let clip = dp.clipping_norm();
        assert!((0.85..=1.25).contains(&clip), "C = {clip}");
        // z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2): z = 1, m = 100, σ_b = 5 → 1/√(1 − 0.01).
        let mut c = config(1.0, 1.0);
        c.adaptive = Some(AdaptiveClipping::default());
        let dp = DifferentialPrivacy::new(fedavg(), c, false, 0).unwrap();
        let z = dp.update_noise_multiplier(100).unwrap();
        assert!((z - 1.0 / 0.99f64.sqrt()).abs() < 1e-12, "{z}");
        // Too few clients for the count noise: refused with advice.
        let err = dp.update_noise_multiplier(10).unwrap_err();
        assert!(err.to_string().contains("clipped_count_stddev"), "{err}");
    }

    #[test]
    fn the_accountant_refuses_a_round_over_budget_before_it_runs() {
        let mut c = config(1.0, 1.0);
        c.epsilon_budget = Some(2.5);
        let mut dp = DifferentialPrivacy::new(fedavg(), c, false, 0).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        // 1 of 10 clients per round: q = 0.1.
        let sel = ClientSelection {
            fraction_fit: 0.1,
            min_fit_clients: 1,
            min_available_clients: 1,
            ..ClientSelection::default()
        };
        dp.inner = StrategyConfig::FedAvg.build(sel, Config::new()).unwrap();
        let mut rounds = 0;
        while dp
            .configure_fit(rounds + 1, &p(&[0.0]), &ids(10), &mut rng)
            .is_ok()
        {
            rounds += 1;
            assert!(dp.epsilon() <= 2.5);
        }
        assert!(rounds >= 2, "only {rounds} rounds fit the budget");
        let before = dp.epsilon();
        let err = dp
            .configure_fit(rounds + 1, &p(&[0.0]), &ids(10), &mut rng)
            .unwrap_err();
        assert!(err.to_string().contains("budget"), "{err}");
        assert_eq!(dp.epsilon(), before, "a refused round spends nothing");
    }
}
