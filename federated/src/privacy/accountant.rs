//! Rényi differential privacy of the Poisson-subsampled Gaussian mechanism (Mironov, Talwar &
//! Zhang 2019), summed over steps and converted to (ε, δ), following Google's `dp-accounting`
//! (0.6): integer orders by the binomial sum, fractional orders by the two-sided series, and
//! the RDP-to-DP conversion of Balle et al. 2020.

/// Orders used when none are given: `dp-accounting`'s defaults.
pub const DEFAULT_ORDERS: &[f64] = &[
    1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 2.6, 2.7, 2.8, 2.9,
    3.0, 3.1, 3.2, 3.3, 3.4, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0, 4.1, 4.2, 4.3, 4.4, 4.5, 4.6, 4.7, 4.8,
    4.9, 5.0, 5.1, 5.2, 5.3, 5.4, 5.5, 5.6, 5.7, 5.8, 5.9, 6.0, 6.1, 6.2, 6.3, 6.4, 6.5, 6.6, 6.7,
    6.8, 6.9, 7.0, 7.1, 7.2, 7.3, 7.4, 7.5, 7.6, 7.7, 7.8, 7.9, 8.0, 8.1, 8.2, 8.3, 8.4, 8.5, 8.6,
    8.7, 8.8, 8.9, 9.0, 9.1, 9.2, 9.3, 9.4, 9.5, 9.6, 9.7, 9.8, 9.9, 10.0, 10.1, 10.2, 10.3, 10.4,
    10.5, 10.6, 10.7, 10.8, 10.9, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0, 20.0, 21.0,
    22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 30.0, 31.0, 32.0, 33.0, 34.0, 35.0, 36.0, 37.0,
    38.0, 39.0, 40.0, 41.0, 42.0, 43.0, 44.0, 45.0, 46.0, 47.0, 48.0, 49.0, 50.0, 51.0, 52.0, 53.0,
    54.0, 55.0, 56.0, 57.0, 58.0, 59.0, 60.0, 61.0, 62.0, 63.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Why an accounting question cannot be answered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AccountantError {
    /// A parameter is out of its range.
    #[error("{0}")]
    Invalid(String),
    /// A round would exceed the privacy budget.
    #[error("the round would spend ε = {would:.4} > budget {budget} at δ = {delta}; refused before it ran")]
    BudgetExceeded {
        /// ε after the round.
        would: f64,
        /// The configured budget.
        budget: f64,
        /// δ.
        delta: f64,
    },
}

fn log_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    if hi == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// `ln(erfc(x))`, accurate where `erfc` underflows.
fn log_erfc(x: f64) -> f64 {
    if x < 20.0 {
        libm::erfc(x).ln()
    } else {
        // erfc(x) = e^{−x²} / (x √π) · (1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶) + …)
        let x2 = x * x;
        let series = 1.0 - 1.0 / (2.0 * x2) + 3.0 / (4.0 * x2 * x2) - 15.0 / (8.0 * x2 * x2 * x2);
        -x2 - (x * std::f64::consts::PI.sqrt()).ln() + series.ln()
    }
}

fn log_binom_int(n: u64, k: u64) -> f64 {
    libm::lgamma((n + 1) as f64) - libm::lgamma((k + 1) as f64) - libm::lgamma((n - k + 1) as f64)
}

fn log_a_int(q: f64, sigma: f64, alpha: u64) -> f64 {
    let mut log_a = f64::NEG_INFINITY;
    for i in 0..=alpha {
        let s = log_binom_int(alpha, i)
            + i as f64 * q.ln()
            + (alpha - i) as f64 * (1.0 - q).ln()
            + (i as f64 * i as f64 - i as f64) / (2.0 * sigma * sigma);
        log_a = log_add(log_a, s);
    }
    log_a
}

/// The series of Mironov et al. 2019, Sec. 3.3, as `dp-accounting` 0.6 sums it: terms with
/// `ln|binom(α, i)|`, added in log space, until both halves decrease and fall 30 nats below the
/// total. `None` when it does not converge (the order is then left out).
fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> Option<f64> {
    let (mut log_a0, mut log_a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let log1mq = (-q).ln_1p();
    let (mut last_s0, mut last_s1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for i in 0..1000u32 {
        let fi = f64::from(i);
        let j = alpha - fi;
        let log_coef = libm::lgamma(alpha + 1.0) - libm::lgamma(fi + 1.0) - libm::lgamma(j + 1.0);
        let log_t0 = log_coef + fi * q.ln() + j * log1mq;
        let log_t1 = log_coef + j * q.ln() + fi * log1mq;
        let log_e0 = 0.5f64.ln() + log_erfc((fi - z0) / (std::f64::consts::SQRT_2 * sigma));
        let log_e1 = 0.5f64.ln() + log_erfc((z0 - j) / (std::f64::consts::SQRT_2 * sigma));
        let log_s0 = log_t0 + (fi * fi - fi) / (2.0 * sigma * sigma) + log_e0;
        let log_s1 = log_t1 + (j * j - j) / (2.0 * sigma * sigma) + log_e1;
        log_a0 = log_add(log_a0, log_s0);
        log_a1 = log_add(log_a1, log_s1);
        let total = log_add(log_a0, log_a1);
        if log_s0 < last_s0 && log_s1 < last_s1 && log_s0.max(log_s1) < total - 30.0 {
            return Some(total);
        }
        last_s0 = log_s0;
        last_s1 = log_s1;
    }
    None
}

fn validate(q: f64, noise: f64) -> Result<(), AccountantError> {
    if !(0.0..=1.0).contains(&q) {
        return Err(AccountantError::Invalid(format!(
            "sampling rate q = {q} must be in [0, 1]"
        )));
    }
    if !(noise > 0.0 && noise.is_finite()) {
        return Err(AccountantError::Invalid(format!(
            "noise multiplier z = {noise} must be > 0"
        )));
    }
    Ok(())
}

/// RDP of `steps` compositions of the Poisson-subsampled Gaussian mechanism with sampling rate
/// `q` and noise multiplier `noise` (σ / sensitivity), at each order.
pub fn compute_rdp(
    q: f64,
    noise: f64,
    steps: u64,
    orders: &[f64],
) -> Result<Vec<f64>, AccountantError> {
    validate(q, noise)?;
    orders
        .iter()
        .map(|&alpha| {
            if alpha.is_nan() || alpha <= 1.0 {
                return Err(AccountantError::Invalid(format!(
                    "RDP order {alpha} must be > 1"
                )));
            }
            let per_step = if q == 0.0 {
                0.0
            } else if q == 1.0 {
                alpha / (2.0 * noise * noise)
            } else if alpha.is_infinite() {
                f64::INFINITY
            } else if alpha.fract() == 0.0 && alpha < 1e6 {
                log_a_int(q, noise, alpha as u64) / (alpha - 1.0)
            } else {
                log_a_frac(q, noise, alpha).map_or(f64::INFINITY, |a| a / (alpha - 1.0))
            };
            Ok(per_step * steps as f64)
        })
        .collect()
}

/// The smallest ε over the orders for this δ (Balle et al. 2020's conversion), and the order
/// that gives it.
pub fn epsilon_from_rdp(
    orders: &[f64],
    rdp: &[f64],
    delta: f64,
) -> Result<(f64, f64), AccountantError> {
    if !(delta > 0.0 && delta < 1.0) {
        return Err(AccountantError::Invalid(format!(
            "δ = {delta} must be in (0, 1)"
        )));
    }
    let mut best = (f64::INFINITY, f64::NAN);
    for (&a, &r) in orders.iter().zip(rdp) {
        if r < 0.0 || !r.is_finite() {
            continue;
        }
        let eps = r - (delta.ln() + a.ln()) / (a - 1.0) + ((a - 1.0) / a).ln();
        if eps < best.0 {
            best = (eps, a);
        }
    }
    Ok((best.0.max(0.0), best.1))
}

/// The smallest noise multiplier (to 3 significant digits) that keeps `steps` steps at
/// sampling rate `q` within `target_epsilon` at `delta`.
pub fn noise_multiplier_for(
    q: f64,
    steps: u64,
    target_epsilon: f64,
    delta: f64,
) -> Result<f64, AccountantError> {
    if target_epsilon.is_nan() || target_epsilon <= 0.0 {
        return Err(AccountantError::Invalid(format!(
            "target ε = {target_epsilon} must be > 0"
        )));
    }
    let eps = |z: f64| -> Result<f64, AccountantError> {
        let rdp = compute_rdp(q, z, steps, DEFAULT_ORDERS)?;
        Ok(epsilon_from_rdp(DEFAULT_ORDERS, &rdp, delta)?.0)
    };
    let (mut lo, mut hi) = (1e-3, 1.0);
    while eps(hi)? > target_epsilon {
        hi *= 2.0;
        if hi > 1e6 {
            return Err(AccountantError::Invalid(format!(
                "no noise multiplier reaches ε = {target_epsilon}"
            )));
        }
    }
    while (hi - lo) / hi > 1e-4 {
        let mid = (lo + hi) / 2.0;
        if eps(mid)? > target_epsilon {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi)
}

/// Tracks the privacy spent round by round and refuses a round that would exceed the budget.
/// RDP composes by addition, so rounds with different sampling rates add up exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct RdpAccountant {
    q: f64,
    noise: f64,
    delta: f64,
    budget: Option<f64>,
    steps: u64,
    rdp: Vec<f64>,
}

impl RdpAccountant {
    /// An accountant for sampling rate `q` (the default for [`spend_round`](Self::spend_round)),
    /// noise multiplier `noise`, δ and an optional ε budget.
    pub fn new(
        q: f64,
        noise: f64,
        delta: f64,
        budget: Option<f64>,
    ) -> Result<Self, AccountantError> {
        validate(q, noise)?;
        epsilon_from_rdp(&[2.0], &[0.0], delta)?;
        if let Some(b) = budget {
            if b.is_nan() || b <= 0.0 {
                return Err(AccountantError::Invalid(format!(
                    "the ε budget {b} must be > 0"
                )));
            }
        }
        Ok(Self {
            q,
            noise,
            delta,
            budget,
            steps: 0,
            rdp: vec![0.0; DEFAULT_ORDERS.len()],
        })
    }

    /// ε spent so far.
    pub fn epsilon(&self) -> f64 {
        if self.steps == 0 {
            return 0.0;
        }
        epsilon_from_rdp(DEFAULT_ORDERS, &self.rdp, self.delta)
            .expect("validated in new")
            .0
    }

    /// δ.
    pub fn delta(&self) -> f64 {
        self.delta
    }

    /// Rounds recorded.
    pub fn rounds(&self) -> u64 {
        self.steps
    }

    /// Records one more round at the default sampling rate, or refuses it (changing nothing)
    /// if it would exceed the budget. Returns ε after the round.
    pub fn spend_round(&mut self) -> Result<f64, AccountantError> {
        self.spend_round_at(self.q)
    }

    /// Records one more round at sampling rate `q` (e.g. the clients sampled this round over
    /// those available), or refuses it as [`spend_round`](Self::spend_round) does.
    pub fn spend_round_at(&mut self, q: f64) -> Result<f64, AccountantError> {
        validate(q, self.noise)?;
        let step = compute_rdp(q, self.noise, 1, DEFAULT_ORDERS)?;
        let total: Vec<f64> = self.rdp.iter().zip(&step).map(|(a, b)| a + b).collect();
        let (would, _) = epsilon_from_rdp(DEFAULT_ORDERS, &total, self.delta)?;
        if let Some(budget) = self.budget {
            if would > budget {
                return Err(AccountantError::BudgetExceeded {
                    would,
                    budget,
                    delta: self.delta,
                });
            }
        }
        self.rdp = total;
        self.steps += 1;
        Ok(would)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, rel: f64) {
        assert!(
            (got - want).abs() <= rel * want.abs(),
            "got {got}, want {want}"
        );
    }

    #[test]
    fn matches_dp_accounting_reference_values() {
        // dp-accounting 0.6: q = 0.1, z = 2, 10 steps, order 5.
        close(
            compute_rdp(0.1, 2.0, 10, &[5.0]).unwrap()[0],
            0.0773697,
            1e-5,
        );
        // q = 0.01, z = 2.5, 50 steps, fractional and large orders.
        let orders = [1.5, 2.5, 5.0, 50.0, 100.0];
        let want = [0.000670580, 0.00108549, 0.00218076, 0.0238460, 167.416308];
        for (got, want) in compute_rdp(0.01, 2.5, 50, &orders)
            .unwrap()
            .into_iter()
            .zip(want)
        {
            close(got, want, 1e-5);
        }
    }

    #[test]
    fn without_sampling_the_closed_form_holds() {
        for (z, a) in [(1.0, 2.0), (2.5, 7.5), (0.7, 32.0)] {
            close(
                compute_rdp(1.0, z, 1, &[a]).unwrap()[0],
                a / (2.0 * z * z),
                1e-12,
            );
        }
        assert_eq!(compute_rdp(0.0, 1.0, 10, &[2.0]).unwrap()[0], 0.0);
    }

    #[test]
    fn epsilon_of_the_dp_sgd_mnist_example() {
        // q = 150/60000, z = 1.3, 6000 steps, δ = 1e-5 → ε = 0.7242
        let rdp = compute_rdp(150.0 / 60000.0, 1.3, 6000, DEFAULT_ORDERS).unwrap();
        let (eps, _) = epsilon_from_rdp(DEFAULT_ORDERS, &rdp, 1e-5).unwrap();
        close(eps, 0.7242, 1e-3);
    }

    #[test]
    fn noise_for_a_target_inverts_epsilon() {
        let z = noise_multiplier_for(150.0 / 60000.0, 6000, 0.7242, 1e-5).unwrap();
        close(z, 1.3, 2e-3);
        assert!(noise_multiplier_for(0.1, 10, -1.0, 1e-5).is_err());
    }

    #[test]
    fn the_budget_refuses_a_round_before_it_runs() {
        let mut acc = RdpAccountant::new(0.1, 1.0, 1e-5, Some(3.0)).unwrap();
        let mut last = 0.0;
        let mut rounds = 0;
        loop {
            match acc.spend_round() {
                Ok(eps) => {
                    assert!(eps > last && eps <= 3.0);
                    last = eps;
                    rounds += 1;
                }
                Err(AccountantError::BudgetExceeded { would, .. }) => {
                    assert!(would > 3.0);
                    assert_eq!(acc.epsilon(), last, "a refused round spends nothing");
                    assert!(rounds >= 2, "only {rounds} rounds fit the budget");
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(RdpAccountant::new(1.5, 1.0, 1e-5, None).is_err());
        assert!(RdpAccountant::new(0.5, 0.0, 1e-5, None).is_err());
        assert!(RdpAccountant::new(0.5, 1.0, 0.0, None).is_err());
        assert!(RdpAccountant::new(0.5, 1.0, 1e-5, Some(0.0)).is_err());
    }

    #[test]
    fn rounds_add_up_like_steps() {
        // Ten rounds one by one give the ε of ten steps at once.
        let mut acc = RdpAccountant::new(0.1, 2.0, 1e-5, None).unwrap();
        for _ in 0..10 {
            acc.spend_round().unwrap();
        }
        let rdp = compute_rdp(0.1, 2.0, 10, DEFAULT_ORDERS).unwrap();
        close(
            acc.epsilon(),
            epsilon_from_rdp(DEFAULT_ORDERS, &rdp, 1e-5).unwrap().0,
            1e-9,
        );
        // A round with a higher sampling rate spends more.
        let before = acc.epsilon();
        let mut other = acc.clone();
        let low = acc.spend_round_at(0.1).unwrap() - before;
        let high = other.spend_round_at(0.5).unwrap() - before;
        assert!(high > low, "{high} vs {low}");
    }
}
