//! Differential privacy: the RDP accountant for the Poisson-subsampled Gaussian mechanism.

mod accountant;

pub use accountant::{
    compute_rdp, epsilon_from_rdp, noise_multiplier_for, AccountantError, RdpAccountant,
    DEFAULT_ORDERS,
};
