//! Criterion benchmarks live in `benches/`; this library holds what the load generators in
//! `src/bin/` share. See `README.md` here for the figures and the commands that produced them.

use std::time::{Duration, Instant};

use anyhow::Context;

mod harness;

pub use harness::{
    cpu_count, load_average, parse_concurrency, parse_cpus, pin_current_thread, Harness,
    HarnessArgs, HARNESS_USAGE,
};

/// The first test digit of `models/digits.npz`, as 64 floats.
pub fn first_test_digit() -> anyhow::Result<Vec<f32>> {
    let file = std::fs::File::open(inference::test_support::models_dir().join("digits.npz"))?;
    let mut npz = ndarray_npy::NpzReader::new(file)?;
    let x: inference::ndarray::ArrayD<f32> = npz.by_name("x_test")?;
    Ok(x.outer_iter()
        .next()
        .context("empty dataset")?
        .iter()
        .copied()
        .collect())
}

/// What one closed-loop run measured.
#[derive(Debug, Clone)]
pub struct LoadRun {
    /// Latencies of the successful requests, sorted.
    pub latencies: Vec<Duration>,
    /// Requests that failed or got a non-2xx answer other than 503.
    pub errors: usize,
    /// Requests answered 503 (busy or overloaded).
    pub busy: usize,
    /// Seconds the run took.
    pub elapsed_secs: f64,
}

impl LoadRun {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed_secs
    }

    /// The `q` quantile of the latencies, in milliseconds (0 with no request).
    pub fn percentile_ms(&self, q: f64) -> f64 {
        let sorted = &self.latencies;
        if sorted.is_empty() {
            return 0.0;
        }
        let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i].as_secs_f64() * 1e3
    }
}

/// `concurrency` clients each POST `body` (JSON) to `url` back to back for `seconds`.
pub async fn closed_loop(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    concurrency: usize,
    seconds: f64,
) -> LoadRun {
    closed_loop_text(client, url, &body.to_string(), concurrency, seconds).await
}

/// [`closed_loop`] with the body as text (sent as `application/json`; may be empty).
pub async fn closed_loop_text(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    concurrency: usize,
    seconds: f64,
) -> LoadRun {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let client = client.clone();
        let url = url.to_owned();
        let body = body.to_owned();
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut busy = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                        let _ = r.bytes().await;
                        busy += 1;
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors, busy)
        })
    });
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut busy = 0;
    for w in futures::future::join_all(workers).await {
        let (lat, e, b) = w.expect("a load worker panicked");
        latencies.extend(lat);
        errors += e;
        busy += b;
    }
    let elapsed_secs = started.elapsed().as_secs_f64();
    latencies.sort();
    LoadRun {
        latencies,
        errors,
        busy,
        elapsed_secs,
    }
}
