//! Fixed-point quantization of clipped float vectors into the ring ℤ/2^b, with the ranges
//! checked up front so that the sum of every client's vector cannot wrap around.
//!
//! A value `x ∈ [−r, r]` maps to `round((x + r)·(L − 1)/(2r)) ∈ [0, L − 1]` (L levels) with
//! stochastic rounding, so the quantized sum is an unbiased estimate of the real sum. The sum
//! of n such values is at most `n·(L − 1)`, which must stay below 2^b.

use rand::{Rng, RngCore};

use super::SecAggError;

/// How floats become ring elements and back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantizer {
    /// Values are clipped to `[−range, range]` before quantization.
    pub range: f64,
    /// Quantization levels L (values map to `0..L`).
    pub levels: u64,
    /// The ring is ℤ/2^`modulus_bits`.
    pub modulus_bits: u32,
}

impl Quantizer {
    /// A quantizer for `clients` summands, refused if their sum could wrap the ring.
    pub fn new(
        range: f64,
        levels: u64,
        modulus_bits: u32,
        clients: usize,
    ) -> Result<Self, SecAggError> {
        if !(range.is_finite() && range > 0.0) {
            return Err(SecAggError::Config(format!(
                "quantization range {range} must be a positive number"
            )));
        }
        if levels < 2 {
            return Err(SecAggError::Config(
                "at least 2 quantization levels are needed".into(),
            ));
        }
        if !(8..=64).contains(&modulus_bits) {
            return Err(SecAggError::Config(format!(
                "modulus bits {modulus_bits} must be in 8..=64"
            )));
        }
        let max_sum = (levels as u128 - 1) * clients as u128;
        if max_sum >= 1u128 << modulus_bits {
            return Err(SecAggError::Config(format!(
                "{clients} clients × {} levels can reach {max_sum}, which wraps the ring 2^{modulus_bits}; \
                 use fewer levels or more modulus bits",
                levels - 1
            )));
        }
        Ok(Self {
            range,
            levels,
            modulus_bits,
        })
    }

    /// The largest integer a client may contribute in an integer slot (a count or a weight):
    /// `clients` of them must not wrap the ring either.
    pub fn max_integer(&self, clients: usize) -> u64 {
        let ring = 1u128 << self.modulus_bits;
        ((ring - 1) / clients.max(1) as u128).min(u64::MAX as u128) as u64
    }

    /// Quantizes `values` (clipping each to the range), with stochastic rounding from `rng`.
    pub fn quantize(&self, values: &[f32], rng: &mut dyn RngCore) -> Vec<u64> {
        let scale = (self.levels - 1) as f64 / (2.0 * self.range);
        values
            .iter()
            .map(|&v| {
                let x = (v as f64).clamp(-self.range, self.range);
                let q = (x + self.range) * scale;
                let floor = q.floor();
                let up = rng.random::<f64>() < q - floor;
                ((floor as u64) + up as u64).min(self.levels - 1)
            })
            .collect()
    }

    /// The real sum of `count` quantized vectors, from the sum of their quantized values.
    pub fn dequantize_sum(&self, sum: &[u64], count: usize) -> Vec<f32> {
        let step = 2.0 * self.range / (self.levels - 1) as f64;
        sum.iter()
            .map(|&s| (s as f64 * step - count as f64 * self.range) as f32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn wrapping_configurations_are_refused() {
        // 2^16 levels × 2^16 clients reaches 2^32 − 2^16 < 2^32: fine; one more client wraps.
        assert!(Quantizer::new(1.0, 1 << 16, 32, 1 << 16).is_ok());
        let err = Quantizer::new(1.0, 1 << 16, 32, (1 << 16) + 2).unwrap_err();
        assert!(err.to_string().contains("wraps"), "{err}");
        assert!(Quantizer::new(0.0, 10, 32, 1).is_err());
        assert!(Quantizer::new(1.0, 1, 32, 1).is_err());
        assert!(Quantizer::new(1.0, 10, 65, 1).is_err());
        let q = Quantizer::new(1.0, 1 << 10, 32, 100).unwrap();
        assert!(q.max_integer(100) as u128 * 100 < 1 << 32);
    }

    #[test]
    fn round_trip_is_unbiased_and_within_one_step() {
        let q = Quantizer::new(2.0, 1 << 12, 32, 10).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let values = [-2.5f32, -1.0, 0.0, 0.3333, 1.999, 7.0];
        let step = 4.0 / 4095.0;
        let quantized = q.quantize(&values, &mut rng);
        let back = q.dequantize_sum(&quantized, 1);
        for (v, b) in values.iter().zip(&back) {
            let clipped = v.clamp(-2.0, 2.0);
            assert!((clipped - b).abs() <= step as f32 * 1.0001, "{v} -> {b}");
        }
        // The mean over many roundings is the value itself.
        let n = 20_000;
        let mut sum = vec![0u64; 1];
        for _ in 0..n {
            sum[0] += q.quantize(&[0.3333], &mut rng)[0];
        }
        let mean = q.dequantize_sum(&sum, n)[0] / n as f32;
        assert!((mean - 0.3333).abs() < 2e-4, "{mean}");
    }
}
