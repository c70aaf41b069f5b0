//! Prometheus metrics of the agent, exposed as text at `/metrics`.

use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of per-model series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
}

/// Labels of request counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
    /// `success`, `invalid`, `overloaded`, `error`.
    pub outcome: String,
}

fn latency_histogram() -> Histogram {
    // 10 µs to about 10 s.
    Histogram::new(exponential_buckets(1e-5, 2.0, 21))
}

fn batch_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 10))
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    queue_seconds: Family<ModelLabels, Histogram, fn() -> Histogram>,
    compute_seconds: Family<ModelLabels, Histogram, fn() -> Histogram>,
    batch_size: Family<ModelLabels, Histogram, fn() -> Histogram>,
    loaded_models: Gauge<i64, AtomicI64>,
    in_flight: Gauge<i64, AtomicI64>,
}

/// The agent's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every series declared.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("edge_agent");
        let requests = Family::<RequestLabels, Counter>::default();
        let queue_seconds =
            Family::<ModelLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let compute_seconds =
            Family::<ModelLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let batch_size = Family::<ModelLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            batch_histogram,
        );
        let loaded_models = Gauge::<i64, AtomicI64>::default();
        let in_flight = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "inference_requests",
            "Inference requests by model, version and outcome",
            requests.clone(),
        );
        registry.register(
            "inference_queue_seconds",
            "Time a request waited for a compute slot (and for batch company)",
            queue_seconds.clone(),
        );
        registry.register(
            "inference_compute_seconds",
            "Time the engine spent computing a request's batch",
            compute_seconds.clone(),
        );
        registry.register(
            "inference_batch_size",
            "Rows per computed batch",
            batch_size.clone(),
        );
        registry.register(
            "loaded_models",
            "Model versions loaded and ready",
            loaded_models.clone(),
        );
        registry.register(
            "in_flight_requests",
            "HTTP requests being served",
            in_flight.clone(),
        );
        Self(Arc::new(Inner {
            registry,
            requests,
            queue_seconds,
            compute_seconds,
            batch_size,
            loaded_models,
            in_flight,
        }))
    }

    fn labels(model: &str, version: u64) -> ModelLabels {
        ModelLabels {
            model: model.to_owned(),
            version: version.to_string(),
        }
    }

    /// Counts a finished request.
    pub fn count_request(&self, model: &str, version: u64, outcome: &str) {
        self.0
            .requests
            .get_or_create(&RequestLabels {
                model: model.to_owned(),
                version: version.to_string(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Records where a request's time went.
    pub fn observe_compute(&self, model: &str, version: u64, queue: Duration, compute: Duration) {
        let l = Self::labels(model, version);
        self.0
            .queue_seconds
            .get_or_create(&l)
            .observe(queue.as_secs_f64());
        self.0
            .compute_seconds
            .get_or_create(&l)
            .observe(compute.as_secs_f64());
    }

    /// Records the rows of one computation (a merged batch, or one unbatched call).
    pub fn observe_batch(&self, model: &str, version: u64, rows: usize) {
        self.0
            .batch_size
            .get_or_create(&Self::labels(model, version))
            .observe(rows as f64);
    }

    /// Sets the number of loaded model versions.
    pub fn set_loaded_models(&self, n: usize) {
        self.0.loaded_models.set(n as i64);
    }

    /// The in-flight gauge, for the HTTP layer.
    pub fn in_flight(&self) -> &Gauge<i64, AtomicI64> {
        &self.0.in_flight
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.0.registry).expect("writing to a String cannot fail");
        out
    }
}
