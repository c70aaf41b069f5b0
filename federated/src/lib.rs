//! Federated learning core: parameters and their wire format, Flower-shaped strategies and
//! their arithmetic, and data partitioners. Pure logic, no I/O: the simulation and the
//! coordinator drive it.
//!
//! - [`Parameters`]: a model's trainable tensors by ONNX initializer name; [`wire`] encodes
//!   them compactly and validates what it decodes;
//! - [`strategy`]: [`Strategy`] with Flower's split (configure fit, aggregate fit, configure
//!   evaluate, aggregate evaluate) and FedAvg, FedProx, FedAvgM, FedAdam, FedYogi, FedAdagrad,
//!   FedMedian, FedTrimmedAvg, Krum and Multi-Krum;
//! - [`aggregate`]: the arithmetic as pure functions;
//! - [`data`]: labelled datasets and the IID, Dirichlet(α) and label-shard partitioners;
//! - [`train`]: local training of ONNX models (lowered to candle), exported back to ONNX;
//! - [`simulation`]: N virtual clients, R rounds of any strategy, stragglers, metrics.
#![deny(missing_docs)]

pub mod aggregate;
pub mod data;
pub mod params;
pub mod privacy;
pub mod secagg;
pub mod simulation;
pub mod strategy;
pub mod train;
pub mod wire;

pub use params::{weighted_average, ParamError, ParamTensor, Parameters};
pub use strategy::{ClientSelection, FedStrategy, Strategy, StrategyError};
