//! Edge functions: warm per-request latency of `hello` and `classify-digits` over HTTP, each
//! next to its OIP v2 twin (`/v2/models/digits/infer` of the same digit), and cold starts (a
//! fresh deploy with its first call; a module loaded from its precompiled artifact as after a
//! restart, then called).
//!
//! After criterion's groups, `paired` measures each function against its twin interleaved in
//! the same run (bursts of requests at 1, 4 and 16 concurrent clients, alternating ABBA) and
//! prints the ratios, with the load average, so one command gives comparable figures on a
//! machine that is not quiet.
//!
//! Run with `scripts/bench.sh functions` (builds the guests in `functions/` first).
#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use edge_agent::AgentConfig;
use functions_runtime::{
    Grants, GraphSource, GuestLimits, Invocation, ModelGrant, RuntimeConfig, WasmRuntime,
};
use inference::test_support::{digits, model_bytes};
use reqwest::multipart::{Form, Part};
use serde_json::json;

fn guest(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../functions/target/wasm32-wasip1/release")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run scripts/build-functions.sh first",
            path.display()
        )
    })
}

struct Agent {
    url: String,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start() -> Agent {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = AgentConfig {
            data_dir: dir.path().to_path_buf(),
            ..AgentConfig::default()
        };
        config.auth.dev_open = true;
        let url = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let state = edge_agent::build_state(config, None).await.unwrap();
            tokio::spawn(edge_agent::serve_state(
                state,
                listener,
                std::future::pending(),
            ));
            url
        });
        Agent {
            url,
            client: reqwest::Client::new(),
            rt,
            _dir: dir,
        }
    }

    fn deploy(&self, name: &str, wasm: Vec<u8>, manifest: serde_json::Value) {
        let form = Form::new()
            .part("wasm", Part::bytes(wasm))
            .text("manifest", manifest.to_string());
        let r = self.rt.block_on(
            self.client
                .put(format!("{}/v1/functions/{name}", self.url))
                .multipart(form)
                .send(),
        );
        assert_eq!(r.unwrap().status(), 201);
    }

    fn post(&self, path: &str, body: Vec<u8>) -> Vec<u8> {
        self.rt.block_on(post(&self.client, &self.url, path, body))
    }
}

async fn post(client: &reqwest::Client, url: &str, path: &str, body: Vec<u8>) -> Vec<u8> {
    let r = client
        .post(format!("{url}{path}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.bytes().await.unwrap().to_vec()
}

/// A request: a path and its body.
#[derive(Clone)]
struct Call {
    path: &'static str,
    body: Vec<u8>,
}

/// A function call and its OIP v2 twin.
struct Pair {
    name: &'static str,
    function: Call,
    twin: Call,
}

/// The agent with `digits` and both guests deployed, and the two pairs.
fn setup() -> (Agent, [Pair; 2]) {
    let agent = Agent::start();
    let form = Form::new().part("model", Part::bytes(model_bytes("digits_mlp.onnx")));
    let r = agent.rt.block_on(
        agent
            .client
            .put(format!("{}/v1/models/digits/versions/1", agent.url))
            .multipart(form)
            .send(),
    );
    assert_eq!(r.unwrap().status(), 201);
    agent.deploy("hello", guest("hello"), json!({}));
    agent.deploy(
        "classify-digits",
        guest("classify-digits"),
        json!({"models": [{"name": "digits"}]}),
    );
    let (x, _) = digits("test");
    let pixels = &x[..64];
    let fn_body = json!({ "pixels": pixels }).to_string().into_bytes();
    let oip = Call {
        path: "/v2/models/digits/infer",
        body: json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": pixels}],
                     "outputs": [{"name": "logits"}]})
        .to_string()
        .into_bytes(),
    };
    let pairs = [
        Pair {
            name: "hello",
            function: Call {
                path: "/fn/hello",
                body: Vec::new(),
            },
            twin: oip.clone(),
        },
        Pair {
            name: "classify-digits",
            function: Call {
                path: "/fn/classify-digits",
                body: fn_body,
            },
            twin: oip,
        },
    ];
    (agent, pairs)
}

fn warm(c: &mut Criterion) {
    let (agent, pairs) = setup();
    for pair in &pairs {
        let mut group = c.benchmark_group(format!("warm-{}", pair.name));
        group.bench_function("function", |b| {
            b.iter(|| agent.post(pair.function.path, pair.function.body.clone()))
        });
        group.bench_function("v2-twin", |b| {
            b.iter(|| agent.post(pair.twin.path, pair.twin.body.clone()))
        });
        group.finish();
    }

    let mut group = c.benchmark_group("cold");
    group.sample_size(10);
    let hello = guest("hello");
    let mut n = 0u64;
    group.bench_function("deploy-then-call-hello", |b| {
        b.iter(|| {
            // A module never seen before (a custom section makes its sha256 new), so the
            // deploy compiles it rather than finding a cached artifact.
            n += 1;
            let mut wasm = hello.clone();
            wasm.extend_from_slice(&[0, 13, 4]);
            wasm.extend_from_slice(b"benc");
            wasm.extend_from_slice(&n.to_le_bytes());
            agent.deploy("fresh", wasm, json!({}));
            agent.post("/fn/fresh", Vec::new())
        })
    });
    group.finish();
}

/// Requests per burst (split over the clients), rounds per concurrency, and the concurrency
/// levels of [`paired`]; `FN_PAIRED_ROUNDS` overrides the rounds.
const BURST: usize = 400;
const ROUNDS: usize = 20;
const CONCURRENCY: [usize; 3] = [1, 4, 16];

/// Mean time per request of a burst of [`BURST`] requests by `clients` concurrent clients
/// (each sending its share one after the other): the burst's time × clients / requests.
fn burst(agent: &Agent, call: &Call, clients: usize) -> Duration {
    let started = Instant::now();
    agent.rt.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (client, url, call) = (agent.client.clone(), agent.url.clone(), call.clone());
                tokio::spawn(async move {
                    for _ in 0..BURST / clients {
                        post(&client, &url, call.path, call.body.clone()).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    started.elapsed() * clients as u32 / (BURST / clients * clients) as u32
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Each function against its OIP v2 twin, interleaved: per concurrency level, rounds of one
/// burst each (ABBA order), then the medians and the median of the per-round ratios.
fn paired(_: &mut Criterion) {
    let rounds = std::env::var("FN_PAIRED_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    let (agent, pairs) = setup();
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\npaired: function vs its /v2 twin, interleaved; {BURST} requests per burst, {rounds} rounds; loadavg {}", load().trim());
    println!(
        "{:<16} {:>7} {:>12} {:>12} {:>7}",
        "function", "clients", "fn µs/req", "v2 µs/req", "fn/v2"
    );
    for clients in CONCURRENCY {
        for pair in &pairs {
            // Warm both paths at this concurrency first.
            burst(&agent, &pair.function, clients);
            burst(&agent, &pair.twin, clients);
            let (mut f, mut v, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            for round in 0..rounds {
                let (a, b) = if round % 2 == 0 {
                    let a = burst(&agent, &pair.function, clients);
                    (a, burst(&agent, &pair.twin, clients))
                } else {
                    let b = burst(&agent, &pair.twin, clients);
                    (burst(&agent, &pair.function, clients), b)
                };
                let (a, b) = (a.as_secs_f64() * 1e6, b.as_secs_f64() * 1e6);
                f.push(a);
                v.push(b);
                ratios.push(a / b);
            }
            println!(
                "{:<16} {:>7} {:>12.1} {:>12.1} {:>7.3}",
                pair.name,
                clients,
                median(f),
                median(v),
                median(ratios)
            );
        }
    }
    println!("loadavg after: {}", load().trim());
}

/// The digits MLP (tract) under the name `digits`.
struct Digits(Arc<inference::Model>);

impl GraphSource for Digits {
    fn graph(&self, name: &str, _: Option<u64>) -> Option<Arc<inference::Model>> {
        (name == "digits").then(|| self.0.clone())
    }
}

fn invocation(source: &Arc<Digits>, stdin: Vec<u8>) -> Invocation {
    Invocation {
        function: "bench".into(),
        args: vec!["bench".into()],
        env: vec![("REQUEST_METHOD".into(), "POST".into())],
        stdin: stdin.into(),
        limits: GuestLimits {
            memory_mib: 64,
            timeout_ms: 1000,
            fuel: None,
        },
        grants: Grants {
            models: vec![ModelGrant {
                name: "digits".into(),
                version: None,
            }]
            .into(),
            allow_load: false,
            source: source.clone(),
        },
    }
}

fn restart(c: &mut Criterion) {
    let rt = WasmRuntime::new(RuntimeConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache: PathBuf = dir.path().to_path_buf();
    let wasm = guest("hello");
    let (module, compiled) = rt.load_cached(&cache, "hello", &wasm).unwrap();
    assert!(compiled);
    let pre = rt.prepare(&module).unwrap();
    let model =
        inference::Model::load(model_bytes("digits_mlp.onnx"), &Default::default()).unwrap();
    let source = Arc::new(Digits(Arc::new(model)));
    let classify = rt.compile(&guest("classify-digits")).unwrap();
    let classify = rt.prepare(&classify).unwrap();
    let (x, _) = digits("test");
    let body = json!({ "pixels": &x[..64] }).to_string().into_bytes();
    let mut group = c.benchmark_group("runtime");
    group.bench_function("artifact-load-link-call-hello", |b| {
        b.iter(|| {
            let (module, compiled) = rt.load_cached(&cache, "hello", &wasm).unwrap();
            assert!(!compiled);
            let pre = rt.prepare(&module).unwrap();
            rt.invoke(&pre, invocation(&source, Vec::new())).unwrap()
        })
    });
    group.bench_function("instantiate-call-hello", |b| {
        b.iter(|| rt.invoke(&pre, invocation(&source, Vec::new())).unwrap())
    });
    group.bench_function("instantiate-call-classify-digits", |b| {
        b.iter(|| {
            let out = rt
                .invoke(&classify, invocation(&source, body.clone()))
                .unwrap();
            assert!(out.stdout.starts_with(b"Status: 200"));
            out
        })
    });
    group.sample_size(10);
    group.bench_function("compile-hello", |b| b.iter(|| rt.compile(&wasm).unwrap()));
    group.finish();
}

criterion_group!(benches, warm, restart, paired);
criterion_main!(benches);
