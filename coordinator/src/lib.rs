//! The federated-learning coordinator. For now: `coordinator simulate`, which runs federated
//! experiments on one machine from a TOML file and writes their metrics and a plot.
//!
//! - [`SimulationFile`]: the experiment description (model, data, partition, clients,
//!   stragglers, local training, and one or more strategy variants);
//! - [`run_simulation`]: runs every variant and writes `metrics.csv`, `metrics.json` and
//!   `accuracy.svg` to an output directory.
#![deny(missing_docs)]

mod plot;
mod simulate;

pub use plot::plot_curves;
pub use simulate::{run_simulation, SimulationFile, Variant, VariantResult};
