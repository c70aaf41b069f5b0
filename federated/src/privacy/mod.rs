//! Differential privacy: the RDP accountant for the Poisson-subsampled Gaussian mechanism,
//! central DP (fixed or adaptive clipping, on the server or the client, Gaussian noise on the
//! mean) as a wrapper around a mean-based strategy, and local DP on the client.

mod accountant;
mod client;
mod clipping;
mod dp;

pub use accountant::{
    compute_rdp, epsilon_from_rdp, noise_multiplier_for, AccountantError, RdpAccountant,
    DEFAULT_ORDERS,
};
pub use client::{privatize_update, LocalDp};
pub use clipping::clip_to_norm;
pub use dp::{
    AdaptiveClipping, ClippingSide, DifferentialPrivacy, DpConfig, AGGREGATE_CLIENTS_KEY,
    CLIPPING_NORM_KEY, NORM_BIT_KEY,
};
