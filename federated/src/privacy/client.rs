//! What a client does to its own update before it leaves the device: local DP (clip, then
//! Gaussian noise, like Flower's `LocalDpMod`) and the clipping the server asks for with
//! client-side central DP.

use rand::RngCore;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::clip_to_norm;

/// Local differential privacy: each client clips its update to `clipping_norm` and adds
/// Gaussian noise calibrated by the classical Gaussian mechanism,
/// σ = C·√(2 ln(1.25/δ))/ε, so that every update it sends is (ε, δ)-DP on its own. The bound
/// holds for ε < 1 only, so larger ε are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalDp {
    /// C: the L2 norm updates are clipped to (the sensitivity).
    pub clipping_norm: f64,
    /// ε per update, in (0, 1).
    pub epsilon: f64,
    /// δ per update, in (0, 1).
    pub delta: f64,
}

impl LocalDp {
    /// Checks the ranges; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.clipping_norm > 0.0 && self.clipping_norm.is_finite()) {
            return Err(format!(
                "local DP clipping norm {} must be > 0",
                self.clipping_norm
            ));
        }
        if !(self.epsilon > 0.0 && self.epsilon < 1.0) {
            return Err(format!(
                "local DP ε = {} must be in (0, 1): the Gaussian mechanism's bound σ = C√(2ln(1.25/δ))/ε holds only there",
                self.epsilon
            ));
        }
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return Err(format!("local DP δ = {} must be in (0, 1)", self.delta));
        }
        if !self.noise_std().is_finite() {
            return Err(format!(
                "local DP noise σ = {} is not a finite number; raise ε",
                self.noise_std()
            ));
        }
        Ok(())
    }

    /// σ of the noise added to each coordinate.
    pub fn noise_std(&self) -> f64 {
        self.clipping_norm * (2.0 * (1.25 / self.delta).ln()).sqrt() / self.epsilon
    }
}

/// Applies, in order, local DP (if any) and the server's clipping norm (if any) to `update`
/// (a flat parameter delta). Returns whether the update's norm was within the server's norm
/// before that last clipping (the adaptive-clipping bit), or `None` without one. Clipping after
/// the local noise is post-processing: it keeps the local guarantee and bounds the update for
/// the central one. An invalid local DP setting is an error, never a silent skip.
pub fn privatize_update(
    update: &mut [f32],
    server_clip: Option<f64>,
    local: Option<&LocalDp>,
    rng: &mut dyn RngCore,
) -> Result<Option<bool>, String> {
    if let Some(l) = local {
        l.validate()?;
        clip_to_norm(update, l.clipping_norm);
        let normal = Normal::new(0.0, l.noise_std()).map_err(|e| e.to_string())?;
        for v in update.iter_mut() {
            *v = (*v as f64 + normal.sample(rng)) as f32;
        }
    }
    Ok(server_clip.map(|c| clip_to_norm(update, c) >= 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn local_noise_matches_the_gaussian_mechanism() {
        let l = LocalDp {
            clipping_norm: 1.0,
            epsilon: 0.5,
            delta: 1e-5,
        };
        l.validate().unwrap();
        // √(2 ln 125000) / 0.5 = 9.6896...
        assert!((l.noise_std() - 2.0 * (2.0f64 * 125_000f64.ln()).sqrt()).abs() < 1e-12);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut u = vec![0.0f32; 50_000];
        u[0] = 100.0;
        assert_eq!(privatize_update(&mut u, None, Some(&l), &mut rng), Ok(None));
        let std = (u[1..].iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / 49_999.0).sqrt();
        assert!((std / l.noise_std() - 1.0).abs() < 0.02, "{std}");
        for bad in [
            LocalDp {
                epsilon: 2.0,
                ..l.clone()
            },
            LocalDp {
                delta: 0.0,
                ..l.clone()
            },
            LocalDp {
                clipping_norm: -1.0,
                ..l.clone()
            },
        ] {
            assert!(bad.validate().is_err());
        }
    }

    #[test]
    fn the_server_clip_comes_last_and_reports_the_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut big = vec![3.0f32, 4.0];
        assert_eq!(
            privatize_update(&mut big, Some(1.0), None, &mut rng),
            Ok(Some(false))
        );
        assert!((big[0] - 0.6).abs() < 1e-6 && (big[1] - 0.8).abs() < 1e-6);
        let mut small = vec![0.3f32, 0.4];
        assert_eq!(
            privatize_update(&mut small, Some(1.0), None, &mut rng),
            Ok(Some(true))
        );
        let l = LocalDp {
            clipping_norm: 1.0,
            epsilon: 0.9,
            delta: 1e-5,
        };
        let mut noisy = vec![0.0f32; 1000];
        privatize_update(&mut noisy, Some(0.5), Some(&l), &mut rng).unwrap();
        let norm = noisy
            .iter()
            .map(|x| (*x as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(norm <= 0.5 + 1e-5, "{norm}");
    }
}
