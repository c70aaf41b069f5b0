//! Per-model serving configuration, given at push time (JSON) or beside a model in
//! `--model-dir` (`config.toml`).

use std::collections::BTreeMap;
use std::fmt;

use inference::{BackendChoice, Dim};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
    /// Shapes to assume for inputs, by input name, over what the model declares: for inputs
    /// declared with `-1`, `?` or no shape, which tract cannot load without them. Each dim is a
    /// size, a name (dims of the same name are equal in every call), or `"?"` to keep the
    /// declared dim. Checked against the model when it is loaded; calls are then checked
    /// against these shapes on both backends. See [`inference::LoadOptions::input_shapes`].
    pub input_shapes: BTreeMap<String, Vec<ShapeDim>>,
}

/// The most inputs `input_shapes` may name.
pub const MAX_INPUT_SHAPES: usize = 1024;

/// One dim of a configured input shape: an integer, a symbol name, or `"?"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeDim(pub Dim);

impl Serialize for ShapeDim {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Dim::Fixed(n) => serializer.serialize_u64(*n as u64),
            Dim::Symbolic(name) => serializer.serialize_str(name),
            Dim::Unknown => serializer.serialize_str("?"),
        }
    }
}

impl<'de> Deserialize<'de> for ShapeDim {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ShapeDim;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a dim: a size (0 or more), a symbol name, or \"?\"")
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ShapeDim, E> {
                usize::try_from(v)
                    .ok()
                    .filter(|_| i64::try_from(v).is_ok())
                    .map(|n| ShapeDim(Dim::Fixed(n)))
                    .ok_or_else(|| E::custom(format!("dim {v} is too large")))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ShapeDim, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!(
                        "dim {v} is negative; write \"?\" or a name for a dim left open"
                    ))),
                }
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ShapeDim, E> {
                Ok(ShapeDim(if v == "?" {
                    Dim::Unknown
                } else {
                    Dim::Symbolic(v.to_owned())
                }))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
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
            input_shapes: BTreeMap::new(),
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
        check_range(
            "input_shapes (count)",
            self.input_shapes.len(),
            0..=MAX_INPUT_SHAPES,
        )?;
        inference::input_shapes::check(&self.shapes()).map_err(|e| e.to_string())?;
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
        o.input_shapes = self.shapes();
        o
    }

    /// `input_shapes` as the `inference` crate takes them.
    fn shapes(&self) -> BTreeMap<String, Vec<Dim>> {
        self.input_shapes
            .iter()
            .map(|(name, dims)| (name.clone(), dims.iter().map(|d| d.0.clone()).collect()))
            .collect()
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

    #[test]
    fn input_shapes_read_from_toml_and_json() {
        let config: ModelConfig = toml::from_str(
            "[input_shapes]\nx = [1, 3, 640, 640]\n\"in.2\" = [\"batch\", 3, \"?\", 320]\n",
        )
        .unwrap();
        config.validate().unwrap();
        let options = config.load_options(None);
        assert_eq!(
            options.input_shapes["x"],
            [
                Dim::Fixed(1),
                Dim::Fixed(3),
                Dim::Fixed(640),
                Dim::Fixed(640)
            ]
        );
        assert_eq!(
            options.input_shapes["in.2"],
            [
                Dim::Symbolic("batch".into()),
                Dim::Fixed(3),
                Dim::Unknown,
                Dim::Fixed(320)
            ]
        );
        let json: ModelConfig =
            serde_json::from_value(serde_json::json!({"input_shapes": {"x": [1, "w"]}})).unwrap();
        assert_eq!(
            serde_json::to_value(&json).unwrap()["input_shapes"],
            serde_json::json!({"x": [1, "w"]})
        );
    }

    #[test]
    fn malformed_input_shapes_are_refused_when_read() {
        for (toml_text, expected) in [
            ("[input_shapes]\nx = [1, -1]\n", "dim -1 is negative"),
            ("[input_shapes]\nx = [1, 2.5]\n", "a dim: a size"),
            ("[input_shapes]\nx = 3\n", "a sequence"),
        ] {
            let err = toml::from_str::<ModelConfig>(toml_text).unwrap_err();
            assert!(err.to_string().contains(expected), "{toml_text}: {err}");
        }
        for (json, expected) in [
            (
                serde_json::json!({"x": [1, ""]}),
                "input_shapes.x: dim 1 is the symbol \"\"",
            ),
            (serde_json::json!({"x": ["a b"]}), "white space"),
            (
                serde_json::json!({"x": ["7"]}),
                "a number written as a string",
            ),
        ] {
            let config: ModelConfig =
                serde_json::from_value(serde_json::json!({ "input_shapes": json })).unwrap();
            let err = config.validate().unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
    }

    /// What only the model can tell (inputs, ranks, fixed dims) is checked when it is loaded.
    #[test]
    fn input_shapes_that_do_not_fit_the_model_are_refused_at_load() {
        let config: ModelConfig = toml::from_str("[input_shapes]\nx = [2, 4]\n").unwrap();
        config.validate().unwrap();
        let bytes = inference::test_support::identity_model(inference::ElementType::F32);
        let err = inference::Model::load(bytes, &config.load_options(None)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("input_shapes.x: dim 1 is given as 4"),
            "{err}"
        );
        assert!(err.is_caller_error());
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
