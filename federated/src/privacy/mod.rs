//! Differential privacy: the RDP accountant for the Poisson-subsampled Gaussian mechanism, and
//! fixed clipping with Gaussian noise as a wrapper around any strategy.

mod accountant;
mod clipping;

pub use clipping::{clip_to_norm, DpFixedClipping};

pub use accountant::{
    compute_rdp, epsilon_from_rdp, noise_multiplier_for, AccountantError, RdpAccountant,
    DEFAULT_ORDERS,
};
