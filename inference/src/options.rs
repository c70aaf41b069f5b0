//! How a model is loaded: which backend, how many threads, where ONNX Runtime lives.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::{BackendChoice, BackendKind, Dim};

/// Options for [`crate::Model::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// The engine to run the model on, or to try first when there is a `fallback`. Default:
    /// tract.
    pub backend: BackendKind,
    /// The engine to load the model on when `backend` fails to (refuses the model, or, for
    /// ONNX Runtime, is not available); [`crate::Model::fallback`] then records why. Default:
    /// `None`, no second try. See [`LoadOptions::with_choice`].
    pub fallback: Option<BackendKind>,
    /// Threads one call may use inside an operator (ONNX Runtime only; tract runs a call on the
    /// calling thread). Default: 1, which suits serving many concurrent calls.
    pub intra_op_threads: usize,
    /// How many calls may run at once. For ONNX Runtime this is the size of the session pool;
    /// further callers wait for a session. Default: the number of CPUs.
    pub max_concurrency: usize,
    /// Path of the ONNX Runtime shared library; when `None`, `ORT_DYLIB_PATH` is read.
    pub ort_library: Option<PathBuf>,
    /// Where tensors kept outside the model file (ONNX external data) may be read from.
    /// Default `None`: such models are refused, so a model can never make a backend read a
    /// file. When set, each `location` must be a relative path of plain names (no `..`, not
    /// absolute) to a regular file inside this directory, reached through no symlink, and its
    /// `offset`/`length` must lie within the file; the bytes are read here and inlined into
    /// the model before any backend sees it.
    pub external_data_dir: Option<PathBuf>,
    /// Shapes to assume for inputs, by input name, over the shapes the model declares: each
    /// dim a size ([`Dim::Fixed`]), a name shared by every dim of that name
    /// ([`Dim::Symbolic`]), or [`Dim::Unknown`] to keep what the model declares there. For
    /// inputs declared with `-1`, `?` or no shape that tract cannot reason about.
    ///
    /// Checked when the model is loaded ([`crate::Error::InvalidOption`] naming
    /// `input_shapes.<input>`): the input must exist, the rank must match a declared rank, and
    /// a dim the model fixes can only be given that same size. The result is what the model's
    /// metadata then reports and what every call is checked against, on both backends; tract
    /// also optimises the graph for it, while ONNX Runtime gets the model unchanged.
    pub input_shapes: BTreeMap<String, Vec<Dim>>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            backend: BackendKind::default(),
            fallback: None,
            intra_op_threads: 1,
            max_concurrency: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ort_library: None,
            external_data_dir: None,
            input_shapes: BTreeMap::new(),
        }
    }
}

impl LoadOptions {
    /// Default options for the given backend.
    pub fn new(backend: BackendKind) -> Self {
        Self {
            backend,
            ..Self::default()
        }
    }

    /// Default options for a backend choice, e.g. [`BackendChoice::Auto`].
    pub fn for_choice(choice: BackendChoice) -> Self {
        Self::default().with_choice(choice)
    }

    /// Sets the engine tried first and the fallback from a backend choice.
    pub fn with_choice(mut self, choice: BackendChoice) -> Self {
        (self.backend, self.fallback) = choice.engines();
        self
    }

    /// The backend choice these options describe.
    pub fn choice(&self) -> BackendChoice {
        BackendChoice::from_engines(self.backend, self.fallback)
    }

    /// Sets the threads per call.
    pub fn with_intra_op_threads(mut self, threads: usize) -> Self {
        self.intra_op_threads = threads.max(1);
        self
    }

    /// Sets how many calls may run at once.
    pub fn with_max_concurrency(mut self, calls: usize) -> Self {
        self.max_concurrency = calls.max(1);
        self
    }

    /// Allows external data, read from inside `dir`; see [`LoadOptions::external_data_dir`].
    pub fn with_external_data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.external_data_dir = Some(dir.into());
        self
    }

    /// Sets the ONNX Runtime library path.
    pub fn with_ort_library(mut self, path: impl Into<PathBuf>) -> Self {
        self.ort_library = Some(path.into());
        self
    }

    /// Sets the shape to assume for one input; see [`LoadOptions::input_shapes`].
    pub fn with_input_shape(mut self, input: impl Into<String>, dims: Vec<Dim>) -> Self {
        self.input_shapes.insert(input.into(), dims);
        self
    }
}
