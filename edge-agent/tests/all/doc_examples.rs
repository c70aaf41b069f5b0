//! The model configs and function manifests the docs tell users to paste are accepted by a
//! real agent: every `-F 'config=…'` and `-F 'manifest=…'` in the README and `docs/`.

use std::path::Path;

use reqwest::Method;
use serde_json::Value;

use crate::guests::guest;
use crate::support::Agent;

/// Every `-F '<field>={...}'` in the Markdown files, as (file, JSON); a value may continue over
/// the following lines until its closing quote.
fn pasted_json(field: &str) -> Vec<(String, Value)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    for file in ["README.md", "docs/edge-agent.md", "docs/functions.md"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let marker = format!("-F '{field}=");
        for (start, _) in text.match_indices(&marker) {
            let rest = &text[start + marker.len()..];
            let end = rest
                .find('\'')
                .unwrap_or_else(|| panic!("{file}: unterminated {field}"));
            let json = rest[..end].replace("\\\n", "");
            let value = serde_json::from_str(&json)
                .unwrap_or_else(|e| panic!("{file}: the {field} shown is not JSON ({e}): {json}"));
            found.push((file.to_owned(), value));
        }
    }
    found
}

#[tokio::test]
async fn every_model_config_in_the_docs_is_accepted() {
    let configs = pasted_json("config");
    assert!(!configs.is_empty(), "no -F 'config=…' found in the docs");
    let agent = Agent::start().await;
    for (version, (file, config)) in (1..).zip(configs) {
        let r = agent
            .push_bytes(
                "digits",
                version,
                inference::test_support::model_bytes("digits_mlp.onnx"),
                config.clone(),
            )
            .await;
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, 201, "{file}: config {config} refused: {body}");
    }
}

#[tokio::test]
async fn every_function_manifest_in_the_docs_is_accepted() {
    let Some(wasm) = guest("classify-digits") else {
        return;
    };
    let manifests = pasted_json("manifest");
    assert!(manifests.len() >= 2, "found {manifests:?}");
    let agent = Agent::start().await;
    agent
        .push("digits", 1, "digits_mlp.onnx", serde_json::json!({}))
        .await;
    for (i, (file, manifest)) in manifests.into_iter().enumerate() {
        // A fresh name each time: two manifests may claim the same route.
        let (status, body) = agent
            .deploy(&format!("doc-{i}"), wasm.clone(), &manifest.to_string())
            .await;
        assert_eq!(status, 201, "{file}: manifest {manifest} refused: {body}");
        let r = agent
            .admin(Method::DELETE, &format!("/v1/functions/doc-{i}"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "delete doc-{i}: {}", r.status());
    }
}
