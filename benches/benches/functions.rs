//! Edge functions: warm per-request latency of `hello` and `classify-digits` over HTTP, the
//! same model through OIP v2 `/infer`, and cold starts (a fresh deploy with its first call; a
//! module loaded from its precompiled artifact as after a restart, then called).
//!
//! Run with `scripts/bench.sh functions` (builds the guests in `functions/` first).
#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

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
        self.rt.block_on(async {
            let r = self
                .client
                .post(format!("{}{path}", self.url))
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            r.bytes().await.unwrap().to_vec()
        })
    }
}

fn warm(c: &mut Criterion) {
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
    let oip_body =
        json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": pixels}],
                          "outputs": [{"name": "logits"}]})
        .to_string()
        .into_bytes();
    let mut group = c.benchmark_group("warm");
    group.bench_function("hello", |b| b.iter(|| agent.post("/fn/hello", Vec::new())));
    group.bench_function("classify-digits", |b| {
        b.iter(|| agent.post("/fn/classify-digits", fn_body.clone()))
    });
    group.bench_function("oip-infer-digits", |b| {
        b.iter(|| agent.post("/v2/models/digits/infer", oip_body.clone()))
    });
    group.finish();

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
        stdin,
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

criterion_group!(benches, warm, restart);
criterion_main!(benches);
