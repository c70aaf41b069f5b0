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

/// Labels of a function's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabels {
    /// The function name.
    pub function: String,
}

/// Labels of a function's invocations.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionOutcomeLabels {
    /// The function name.
    pub function: String,
    /// `ok`, `timeout`, `memory`, `fuel`, `trap`, `busy`, `bad_output` or `error`.
    pub outcome: String,
}

/// Labels of a function's cold starts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ColdStartLabels {
    /// The function name.
    pub function: String,
    /// `compiled` (from wasm) or `artifact` (a cached precompiled artifact).
    pub source: String,
}

/// Labels of connection events.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    /// Refusals: `max_connections` or `max_connections_per_ip`. Timeouts: `header`,
    /// `keep_alive`, `body` or `send`.
    pub reason: String,
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
    pending: Family<ModelLabels, Gauge<i64, AtomicI64>>,
    loaded_models: Gauge<i64, AtomicI64>,
    in_flight: Gauge<i64, AtomicI64>,
    fn_invocations: Family<FunctionOutcomeLabels, Counter>,
    fn_latency: Family<FunctionLabels, Histogram, fn() -> Histogram>,
    fn_instantiate: Family<FunctionLabels, Histogram, fn() -> Histogram>,
    fn_cold_starts: Family<ColdStartLabels, Counter>,
    fn_load: Family<ColdStartLabels, Histogram, fn() -> Histogram>,
    fn_queued: Family<FunctionLabels, Gauge<i64, AtomicI64>>,
    open_connections: Gauge<i64, AtomicI64>,
    refused_connections: Family<ConnectionLabels, Counter>,
    connection_timeouts: Family<ConnectionLabels, Counter>,
}

/// One request counted in `inference_pending_requests` (or one call in
/// `function_queued_calls`); dropping it uncounts it.
#[derive(Debug)]
pub struct Pending(Gauge<i64, AtomicI64>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.dec();
    }
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
        let pending = Family::<ModelLabels, Gauge<i64, AtomicI64>>::default();
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
            "inference_pending_requests",
            "Requests admitted to a model version and not yet answered (queued or computing)",
            pending.clone(),
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
        let fn_invocations = Family::<FunctionOutcomeLabels, Counter>::default();
        let fn_latency =
            Family::<FunctionLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let fn_instantiate =
            Family::<FunctionLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let fn_cold_starts = Family::<ColdStartLabels, Counter>::default();
        let fn_load = Family::<ColdStartLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "function_invocations",
            "Function invocations by function and outcome",
            fn_invocations.clone(),
        );
        registry.register(
            "function_latency_seconds",
            "Time from admission to the guest's exit, per function",
            fn_latency.clone(),
        );
        registry.register(
            "function_instantiate_seconds",
            "Time to instantiate a guest (pooling allocator, pre-linked)",
            fn_instantiate.clone(),
        );
        registry.register(
            "function_cold_starts",
            "Modules made ready to run, by compiling or by loading a cached artifact",
            fn_cold_starts.clone(),
        );
        registry.register(
            "function_load_seconds",
            "Time to make a module ready (compile or deserialize, then link)",
            fn_load.clone(),
        );
        let fn_queued = Family::<FunctionLabels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "function_queued_calls",
            "Calls waiting in a function's queue (`max_queue`) for one of its instances",
            fn_queued.clone(),
        );
        let open_connections = Gauge::<i64, AtomicI64>::default();
        let refused_connections = Family::<ConnectionLabels, Counter>::default();
        let connection_timeouts = Family::<ConnectionLabels, Counter>::default();
        registry.register(
            "open_connections",
            "HTTP connections open (accepted and not yet closed)",
            open_connections.clone(),
        );
        registry.register(
            "refused_connections",
            "Connections closed at accept because a cap was reached, by cap",
            refused_connections.clone(),
        );
        registry.register(
            "connection_timeouts",
            "Connections closed (or requests answered 408) by a server timeout, by timeout",
            connection_timeouts.clone(),
        );
        Self(Arc::new(Inner {
            open_connections,
            refused_connections,
            connection_timeouts,
            fn_invocations,
            fn_latency,
            fn_instantiate,
            fn_cold_starts,
            fn_load,
            fn_queued,
            registry,
            requests,
            queue_seconds,
            compute_seconds,
            batch_size,
            pending,
            loaded_models,
            in_flight,
        }))
    }

    /// Counts one invocation of `function` and, when it ran, its latency and instantiate time.
    pub fn observe_function(
        &self,
        function: &str,
        outcome: &str,
        latency: Duration,
        instantiate: Option<Duration>,
    ) {
        self.0
            .fn_invocations
            .get_or_create(&FunctionOutcomeLabels {
                function: function.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        let labels = FunctionLabels {
            function: function.to_owned(),
        };
        self.0
            .fn_latency
            .get_or_create(&labels)
            .observe(latency.as_secs_f64());
        if let Some(t) = instantiate {
            self.0
                .fn_instantiate
                .get_or_create(&labels)
                .observe(t.as_secs_f64());
        }
    }

    /// Counts a cold start of `function` (`source`: `compiled` or `artifact`).
    pub fn observe_cold_start(&self, function: &str, source: &str, took: Duration) {
        let labels = ColdStartLabels {
            function: function.to_owned(),
            source: source.to_owned(),
        };
        self.0.fn_cold_starts.get_or_create(&labels).inc();
        self.0
            .fn_load
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
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

    /// Counts a request as pending on `model` `version` until the returned guard drops (however
    /// the call ends: answered, refused, or its future dropped by a disconnect).
    pub fn pending(&self, model: &str, version: u64) -> Pending {
        let gauge = self
            .0
            .pending
            .get_or_create(&Self::labels(model, version))
            .clone();
        gauge.inc();
        Pending(gauge)
    }

    /// Counts a call as queued for an instance of `function` until the returned guard drops.
    pub fn queued_function_call(&self, function: &str) -> Pending {
        let gauge = self
            .0
            .fn_queued
            .get_or_create(&FunctionLabels {
                function: function.to_owned(),
            })
            .clone();
        gauge.inc();
        Pending(gauge)
    }

    /// Sets the number of loaded model versions.
    pub fn set_loaded_models(&self, n: usize) {
        self.0.loaded_models.set(n as i64);
    }

    /// The in-flight gauge, for the HTTP layer.
    pub fn in_flight(&self) -> &Gauge<i64, AtomicI64> {
        &self.0.in_flight
    }

    /// The open-connections gauge, for the server.
    pub fn open_connections(&self) -> &Gauge<i64, AtomicI64> {
        &self.0.open_connections
    }

    /// Counts a connection refused at accept because of the cap named by `reason`.
    pub fn count_refused_connection(&self, reason: &str) {
        self.0
            .refused_connections
            .get_or_create(&ConnectionLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a server timeout (`header`, `keep_alive`, `body` or `send`).
    pub fn count_connection_timeout(&self, reason: &str) {
        self.0
            .connection_timeouts
            .get_or_create(&ConnectionLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.0.registry).expect("writing to a String cannot fail");
        out
    }
}
