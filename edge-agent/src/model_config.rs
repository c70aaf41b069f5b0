//! Per-model serving configuration, given at push time (JSON) or beside a model in
//! `--model-dir` (`config.toml`).

use inference::BackendKind;
use serde::{Deserialize, Serialize};

/// How one model is served.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// `tract` (default) or `ort`.
    pub backend: BackendKind,
    /// Requests of this model computed at once.
    pub max_concurrency: usize,
    /// Requests that may wait for a slot; beyond that the agent answers 503 with `Retry-After`.
    pub max_queue: usize,
    /// Threads one ONNX Runtime call may use.
    pub intra_op_threads: usize,
    /// Dynamic batching; off when absent.
    pub batching: Option<BatchingConfig>,
    /// Free text for people.
    pub description: String,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            backend: BackendKind::Tract,
            max_concurrency: 2,
            max_queue: 64,
            intra_op_threads: 1,
            batching: None,
            description: String::new(),
        }
    }
}

/// Dynamic batching: concurrent requests merged along the batch axis.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct BatchingConfig {
    /// Most rows in one merged batch.
    pub max_batch_size: usize,
    /// How long the first request of a batch waits for company, in microseconds.
    pub max_queue_delay_us: u64,
    /// Batch sizes worth running at once without waiting out the delay.
    pub preferred_batch_sizes: Vec<usize>,
}

impl Default for BatchingConfig {
    fn default() -> Self {
        Self {
            max_batch_size: 32,
            max_queue_delay_us: 500,
            preferred_batch_sizes: Vec::new(),
        }
    }
}

impl ModelConfig {
    /// Checks the numbers make sense; the message says which one does not.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_concurrency == 0 {
            return Err("max_concurrency must be at least 1".to_owned());
        }
        if self.intra_op_threads == 0 {
            return Err("intra_op_threads must be at least 1".to_owned());
        }
        if let Some(b) = &self.batching {
            if b.max_batch_size < 2 {
                return Err("batching.max_batch_size must be at least 2".to_owned());
            }
            if b.max_queue_delay_us > 1_000_000 {
                return Err("batching.max_queue_delay_us must be at most 1000000 (1 s)".to_owned());
            }
            if let Some(p) = b
                .preferred_batch_sizes
                .iter()
                .find(|&&p| p == 0 || p > b.max_batch_size)
            {
                return Err(format!(
                    "batching.preferred_batch_sizes has {p}, outside 1..={}",
                    b.max_batch_size
                ));
            }
        }
        Ok(())
    }

    /// Load options for the `inference` crate.
    pub fn load_options(&self, ort_library: Option<&std::path::Path>) -> inference::LoadOptions {
        let mut o = inference::LoadOptions::new(self.backend)
            .with_intra_op_threads(self.intra_op_threads)
            .with_max_concurrency(self.max_concurrency);
        o.ort_library = ort_library.map(Into::into);
        o
    }
}
