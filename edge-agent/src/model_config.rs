//! Per-model serving configuration, given at push time (JSON) or beside a model in
//! `--model-dir` (`config.toml`).

use inference::BackendChoice;
use serde::{Deserialize, Serialize};

use crate::config::check_range;

/// The most requests of one model computed at once.
pub const MAX_CONCURRENCY: usize = 1024;
/// The most requests of one model that may wait.
pub const MAX_QUEUE: usize = 1 << 20;
/// The most threads one ONNX Runtime call may use.
pub const MAX_THREADS: usize = 256;
/// The largest merged batch.
pub const MAX_BATCH_SIZE: usize = 1 << 16;

/// How one model is served.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Which engine loads the model: `auto` (default: tract, else ONNX Runtime when tract
    /// refuses the model and ONNX Runtime is available), `auto-ort` (ONNX Runtime, else
    /// tract), `tract` or `ort`.
    pub backend: BackendChoice,
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
            backend: BackendChoice::Auto,
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
    /// Checks the numbers make sense; the message names the key and its range.
    pub fn validate(&self) -> Result<(), String> {
        check_range("max_concurrency", self.max_concurrency, 1..=MAX_CONCURRENCY)?;
        check_range("max_queue", self.max_queue, 0..=MAX_QUEUE)?;
        check_range("intra_op_threads", self.intra_op_threads, 1..=MAX_THREADS)?;
        check_range("description (bytes)", self.description.len(), 0..=4096)?;
        if let Some(b) = &self.batching {
            check_range(
                "batching.max_batch_size",
                b.max_batch_size,
                2..=MAX_BATCH_SIZE,
            )?;
            check_range(
                "batching.max_queue_delay_us",
                b.max_queue_delay_us,
                0..=1_000_000,
            )?;
            check_range(
                "batching.preferred_batch_sizes (count)",
                b.preferred_batch_sizes.len(),
                0..=64,
            )?;
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
        let mut o = inference::LoadOptions::for_choice(self.backend)
            .with_intra_op_threads(self.intra_op_threads)
            .with_max_concurrency(self.max_concurrency);
        o.ort_library = ort_library.map(Into::into);
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_is_range_checked_by_key() {
        let huge = usize::MAX;
        let cases: Vec<(ModelConfig, &str)> = vec![
            (
                ModelConfig {
                    max_concurrency: 0,
                    ..Default::default()
                },
                "max_concurrency",
            ),
            (
                ModelConfig {
                    max_concurrency: huge,
                    ..Default::default()
                },
                "max_concurrency",
            ),
            (
                ModelConfig {
                    max_queue: huge,
                    ..Default::default()
                },
                "max_queue",
            ),
            (
                ModelConfig {
                    intra_op_threads: huge,
                    ..Default::default()
                },
                "intra_op_threads",
            ),
            (
                ModelConfig {
                    batching: Some(BatchingConfig {
                        max_batch_size: huge,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "batching.max_batch_size",
            ),
            (
                ModelConfig {
                    batching: Some(BatchingConfig {
                        max_queue_delay_us: u64::MAX,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "batching.max_queue_delay_us",
            ),
        ];
        for (config, key) in cases {
            let err = config.validate().unwrap_err();
            assert!(err.contains(key), "{key}: {err}");
        }
        ModelConfig::default().validate().unwrap();
    }

    use proptest::prelude::*;

    /// Mostly ordinary numbers, sometimes the ones that once overflowed a semaphore.
    fn number() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            6 => (1u64..5).prop_map(serde_json::Value::from),
            1 => Just(serde_json::Value::from(u64::MAX)),
            1 => Just(serde_json::Value::from(usize::MAX >> 3)),
            1 => Just(serde_json::Value::from(1u64 << 32)),
            1 => Just(serde_json::Value::from(0)),
            1 => Just(serde_json::Value::from(-1)),
            1 => Just(serde_json::Value::from(1e300)),
        ]
    }

    fn config_json() -> impl Strategy<Value = serde_json::Value> {
        let batching =
            prop::option::of((number(), number(), prop::collection::vec(number(), 0..3)));
        (number(), number(), number(), batching).prop_map(|(c, q, t, b)| {
            let mut v = serde_json::json!({
                "max_concurrency": c, "max_queue": q, "intra_op_threads": t,
            });
            if let Some((size, delay, preferred)) = b {
                v["batching"] = serde_json::json!({
                    "max_batch_size": size, "max_queue_delay_us": delay,
                    "preferred_batch_sizes": preferred,
                });
            }
            v
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// A pushed config with hostile numbers is refused (by key) or served: a config that
        /// validates never panics the model's scheduler (semaphores, queues, batcher).
        #[test]
        fn hostile_configs_are_refused_or_served(v in config_json()) {
            let Ok(config) = serde_json::from_value::<ModelConfig>(v) else {
                return Ok(());
            };
            if config.validate().is_err() {
                return Ok(());
            }
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let model = inference::Model::load(
                    inference::test_support::identity_model(inference::ElementType::F32),
                    &config.load_options(None),
                )
                .unwrap();
                crate::service::LoadedModel::new(
                    "m".into(),
                    1,
                    config,
                    model,
                    crate::service::InferencePool::new(1),
                    crate::metrics::Metrics::new(),
                );
            });
        }
    }
}
