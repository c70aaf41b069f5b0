//! Secure aggregation of model updates: clipped float deltas in, their (weighted) mean out,
//! the server never seeing one client's update. Configured from a run's TOML.

use rand::{Rng, RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use super::{run_round_threads, ParticipantId, Quantizer, SecAggError, SecAggParams, Stage};

/// Which protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecAggMode {
    /// SecAgg: every client shares its secrets with every other.
    #[serde(rename = "secagg")]
    SecAgg,
    /// SecAgg+: with `neighbours` clients on a random ring.
    #[serde(rename = "secagg+")]
    SecAggPlus,
}

fn half() -> f64 {
    0.5
}
fn levels() -> u64 {
    1 << 22
}
fn bits() -> u32 {
    32
}
fn max_weight() -> u64 {
    1000
}

/// Secure aggregation settings, with Flower's SecAgg+ defaults where they exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecAggConfig {
    /// `"secagg"` or `"secagg+"`.
    pub mode: SecAggMode,
    /// SecAgg+ only: neighbours per client (e.g. 2·⌈log₂ n⌉ or more).
    #[serde(default)]
    pub neighbours: Option<usize>,
    /// Shares needed to rebuild a secret, as a fraction of each client's share set
    /// (neighbours and itself); at least 2.
    #[serde(default = "half")]
    pub threshold: f64,
    /// Every coordinate of an update is clipped to ±this before quantization (default: the DP
    /// clipping norm with client-side DP, 8.0 otherwise).
    #[serde(default)]
    pub clipping_range: Option<f64>,
    /// Quantization levels.
    #[serde(default = "levels")]
    pub quantization_levels: u64,
    /// The ring is ℤ/2^bits.
    #[serde(default = "bits")]
    pub modulus_bits: u32,
    /// Largest example count a client's update is weighted by (larger counts are capped).
    #[serde(default = "max_weight")]
    pub max_weight: u64,
    /// Simulation only: probability that a client drops out during the round (at a random
    /// one of the four stages).
    #[serde(default)]
    pub dropout: f64,
}

impl SecAggConfig {
    /// Checks what can be checked without knowing the round's size.
    pub fn validate(&self) -> Result<(), SecAggError> {
        let bad = |m: String| Err(SecAggError::Config(m));
        match (self.mode, self.neighbours) {
            (SecAggMode::SecAggPlus, None) => {
                return bad("secagg+ needs `neighbours` (e.g. 16 for 100 clients)".into())
            }
            (SecAggMode::SecAgg, Some(_)) => {
                return bad("`neighbours` is for secagg+; plain secagg links everyone".into())
            }
            _ => {}
        }
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return bad(format!("threshold {} must be in (0, 1]", self.threshold));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout {} must be in [0, 1)", self.dropout));
        }
        if self.max_weight == 0 {
            return bad("max_weight must be at least 1".into());
        }
        Ok(())
    }

    /// The protocol parameters for a round of `n` clients and vectors of `len` values.
    pub fn params(&self, n: usize, len: usize, rng: &mut dyn RngCore) -> SecAggParams {
        let share_set = match self.neighbours {
            // The ring links k rounded up to even.
            Some(k) => k.div_ceil(2).saturating_mul(2).saturating_add(1).min(n),
            None => n,
        };
        let threshold = ((self.threshold * share_set as f64).ceil() as usize).clamp(2, n.max(2));
        let mut session = [0u8; 32];
        rng.fill_bytes(&mut session);
        SecAggParams {
            session,
            threshold,
            neighbours: self.neighbours,
            vector_len: len,
            modulus_bits: self.modulus_bits,
        }
    }
}

/// One client's contribution.
#[derive(Debug, Clone, PartialEq)]
pub struct SecureUpdate {
    /// Its parameter delta (already clipped if DP asks for it).
    pub delta: Vec<f32>,
    /// Its weight (example count; 1 for a uniform mean).
    pub weight: u64,
    /// Whether its norm was within the DP clipping norm (adaptive clipping's bit).
    pub within_clip: bool,
}

/// The outcome of a secure mean.
#[derive(Debug, Clone, PartialEq)]
pub struct SecureMean {
    /// Σ wᵢΔᵢ / Σ wᵢ over the survivors (wᵢ capped at `max_weight`).
    pub mean: Vec<f32>,
    /// Indices (into the updates given) of the clients whose updates are in the mean.
    pub survivors: Vec<usize>,
    /// Σ of the survivors' `within_clip` bits (securely summed too).
    pub within_clip: u64,
}

/// Securely aggregates `updates` with the protocol of `config`, the clients' work spread over
/// `threads`. `range` is the per-coordinate clipping range when the config leaves it out.
/// `uniform` ignores the weights (every client counts once, as DP needs).
pub fn secure_mean(
    config: &SecAggConfig,
    updates: &[SecureUpdate],
    range: f64,
    uniform: bool,
    threads: usize,
    rng: &mut dyn RngCore,
) -> Result<SecureMean, SecAggError> {
    config.validate()?;
    let n = updates.len();
    let Some(len) = updates.first().map(|u| u.delta.len()) else {
        return Err(SecAggError::Config("no updates to aggregate".into()));
    };
    let range = config.clipping_range.unwrap_or(range);
    let quantizer = Quantizer::new(range, config.quantization_levels, config.modulus_bits, n)?;
    let max_int = quantizer.max_integer(n);
    if !uniform && config.max_weight > max_int {
        return Err(SecAggError::Config(format!(
            "max_weight {} × {n} clients wraps the ring; at most {max_int}",
            config.max_weight
        )));
    }
    let cap = if uniform { 1 } else { config.max_weight };
    let top = cap as f64;
    let inputs: Vec<(ParticipantId, Vec<u64>)> = updates
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let w = u.weight.clamp(1, cap);
            let scaled: Vec<f32> = u
                .delta
                .iter()
                .map(|&d| (d as f64 * w as f64 / top) as f32)
                .collect();
            let mut v = quantizer.quantize(&scaled, rng);
            v.push(w);
            v.push(u64::from(u.within_clip));
            (i as ParticipantId, v)
        })
        .collect();
    let params = config.params(n, len + 2, rng);
    // Simulated dropouts: each client drops with probability `dropout`, at a random stage.
    let mut drop_rng = rand_chacha::ChaCha8Rng::seed_from_u64(rng.next_u64());
    let stages = [Stage::Keys, Stage::Shares, Stage::Masked, Stage::Unmask];
    let plan: Vec<Option<Stage>> = (0..n)
        .map(|_| {
            let drops = drop_rng.random::<f64>() < config.dropout;
            let stage = stages[drop_rng.random_range(0..stages.len())];
            drops.then_some(stage)
        })
        .collect();
    let out = run_round_threads(
        params,
        inputs,
        rng,
        |stage: Stage, id| plan.get(id as usize).copied().flatten() == Some(stage),
        |_, m| vec![(m.from(), m)],
        threads,
    )?;
    let k = out.survivors.len();
    let weights = out.sum[len];
    let within_clip = out.sum[len + 1];
    let total = quantizer.dequantize_sum(&out.sum[..len], k);
    let mean = total
        .iter()
        .map(|&t| (t as f64 * top / weights.max(1) as f64) as f32)
        .collect();
    Ok(SecureMean {
        mean,
        survivors: out.survivors.iter().map(|&i| i as usize).collect(),
        within_clip,
    })
}
