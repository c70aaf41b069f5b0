//! Byzantine-robust rules: coordinate-wise median (Yin et al. 2018), trimmed mean, Krum and
//! Multi-Krum (Blanchard et al. 2017).

use super::{Aggregation, StrategyError};
use crate::aggregate;
use crate::params::ParamError;

fn empty() -> StrategyError {
    StrategyError::Params(ParamError::Empty)
}

/// FedMedian: the coordinate-wise median of the clients' parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Median;

impl Aggregation for Median {
    fn name(&self) -> &str {
        "FedMedian"
    }

    fn aggregate(
        &mut self,
        _current: &[f32],
        updates: &[(&[f32], f64)],
    ) -> Result<Vec<f32>, StrategyError> {
        let values: Vec<&[f32]> = updates.iter().map(|(u, _)| *u).collect();
        aggregate::median(&values).ok_or_else(empty)
    }
}

/// FedTrimmedAvg: the coordinate-wise mean without the `beta` fraction at each end.
#[derive(Debug, Clone, PartialEq)]
pub struct TrimmedMean {
    beta: f64,
}

impl TrimmedMean {
    /// Trims `beta` (in `[0, 0.5)`) from each end; Flower's default is 0.2.
    pub fn new(beta: f64) -> Result<Self, StrategyError> {
        if !(0.0..0.5).contains(&beta) {
            return Err(StrategyError::InvalidParameter(format!(
                "beta = {beta} must be in [0, 0.5)"
            )));
        }
        Ok(Self { beta })
    }
}

impl Aggregation for TrimmedMean {
    fn name(&self) -> &str {
        "FedTrimmedAvg"
    }

    fn aggregate(
        &mut self,
        _current: &[f32],
        updates: &[(&[f32], f64)],
    ) -> Result<Vec<f32>, StrategyError> {
        let values: Vec<&[f32]> = updates.iter().map(|(u, _)| *u).collect();
        aggregate::trimmed_mean(&values, self.beta).ok_or_else(|| StrategyError::NotEnoughClients {
            available: values.len(),
            needed: (2.0 * self.beta * values.len() as f64).floor() as usize + 1,
        })
    }
}

/// Krum (`keep = 1`) and Multi-Krum (`keep > 1`: the mean of the `keep` best by Krum score).
#[derive(Debug, Clone, PartialEq)]
pub struct Krum {
    byzantine: usize,
    keep: usize,
}

impl Krum {
    /// Krum tolerating `byzantine` malicious clients.
    pub fn single(byzantine: usize) -> Self {
        Self { byzantine, keep: 1 }
    }

    /// Multi-Krum averaging the `keep` most central updates.
    pub fn multi_krum(byzantine: usize, keep: usize) -> Result<Self, StrategyError> {
        if keep == 0 {
            return Err(StrategyError::InvalidParameter(
                "Multi-Krum must keep at least 1 update".to_owned(),
            ));
        }
        Ok(Self { byzantine, keep })
    }
}

impl Aggregation for Krum {
    fn name(&self) -> &str {
        if self.keep == 1 {
            "Krum"
        } else {
            "MultiKrum"
        }
    }

    fn aggregate(
        &mut self,
        _current: &[f32],
        updates: &[(&[f32], f64)],
    ) -> Result<Vec<f32>, StrategyError> {
        let needed = 2 * self.byzantine + 3;
        if updates.len() < needed {
            return Err(StrategyError::NotEnoughClients {
                available: updates.len(),
                needed,
            });
        }
        let values: Vec<&[f32]> = updates.iter().map(|(u, _)| *u).collect();
        let chosen = aggregate::krum_select(&values, self.byzantine, self.keep);
        let picked: Vec<(&[f32], f64)> = chosen.iter().map(|&i| updates[i]).collect();
        aggregate::weighted_mean(&picked).ok_or_else(empty)
    }
}
