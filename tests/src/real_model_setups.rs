//! The ways a user can serve a real model, compared side by side: tract as the model declares
//! itself, tract given the shapes it is served at (`input_shapes` in the model config), ONNX
//! Runtime, and `auto` (tract, else ONNX Runtime).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use inference::{BackendChoice, Dim, LoadOptions};

use crate::real_models::{evaluate, DataSet, Outcome, Verdict};

/// One way of loading a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setup {
    /// tract, with the shapes the model declares.
    Tract,
    /// tract, with `input_shapes` set to the shapes of the first data set (what a user writes
    /// in the model config for the size they serve); only data sets of those shapes run.
    TractShaped,
    /// ONNX Runtime.
    Ort,
    /// `auto`: tract, else ONNX Runtime with tract's reason recorded.
    Auto,
}

impl Setup {
    /// Every setup, in table order.
    pub const ALL: [Setup; 4] = [Setup::Tract, Setup::TractShaped, Setup::Ort, Setup::Auto];

    /// The name in reports and tables.
    pub fn label(self) -> &'static str {
        match self {
            Setup::Tract => "tract",
            Setup::TractShaped => "tract+shapes",
            Setup::Ort => "ort",
            Setup::Auto => "auto",
        }
    }

    /// Whether it needs the ONNX Runtime library.
    pub fn needs_ort(self) -> bool {
        matches!(self, Setup::Ort | Setup::Auto)
    }

    /// Load options on one intra-op thread and one session; `ort` is the library for the
    /// setups that need it.
    pub fn options(self, ort: Option<&Path>) -> LoadOptions {
        let choice = match self {
            Setup::Tract | Setup::TractShaped => BackendChoice::Tract,
            Setup::Ort => BackendChoice::Ort,
            Setup::Auto => BackendChoice::Auto,
        };
        let mut options = LoadOptions::for_choice(choice)
            .with_intra_op_threads(1)
            .with_max_concurrency(1);
        options.ort_library = ort.map(Into::into);
        options
    }
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl std::str::FromStr for Setup {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Setup::ALL
            .into_iter()
            .find(|setup| setup.label() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Setup::ALL.iter().map(|s| s.label()).collect();
                format!("unknown setup `{s}`; expected one of {}", names.join(", "))
            })
    }
}

/// `input_shapes` fixing every input at its shape in `set`.
fn served_shapes(set: &DataSet) -> BTreeMap<String, Vec<Dim>> {
    set.inputs
        .iter()
        .map(|(name, t)| {
            let dims = t.shape().iter().map(|&n| Dim::Fixed(n)).collect();
            (name.clone(), dims)
        })
        .collect()
}

/// The options and data sets of `setup` for a model with these data sets: for
/// [`Setup::TractShaped`], `input_shapes` from the first set and the sets of the same shapes.
pub fn prepare(
    setup: Setup,
    options: &LoadOptions,
    sets: &[DataSet],
) -> (LoadOptions, Vec<DataSet>) {
    let mut options = options.clone();
    if setup != Setup::TractShaped {
        return (options, sets.to_vec());
    }
    let Some(first) = sets.first() else {
        return (options, Vec::new());
    };
    let shapes = |s: &DataSet| -> Vec<Vec<usize>> {
        s.inputs.iter().map(|(_, t)| t.shape().to_vec()).collect()
    };
    let served = shapes(first);
    options.input_shapes = served_shapes(first);
    let fitting = sets
        .iter()
        .filter(|s| shapes(s) == served)
        .cloned()
        .collect();
    (options, fitting)
}

/// Loads and checks a model under `setup` (see [`evaluate`]); an `auto` load that fell back
/// says so in `why`.
pub fn evaluate_setup(
    setup: Setup,
    bytes: Vec<u8>,
    sets: &[DataSet],
    options: &LoadOptions,
    rtol: f64,
    atol: f64,
) -> Outcome {
    let (options, sets) = prepare(setup, options, sets);
    let mut outcome = evaluate(bytes, &sets, &options, rtol, atol);
    if outcome.verdict == Verdict::Passed && setup == Setup::TractShaped {
        outcome.why = format!("{} of the data sets fit", sets.len());
    }
    outcome
}
