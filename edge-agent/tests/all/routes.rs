//! The router and `openapi.json` describe the same routes: every route the router serves
//! (`edge_agent::route_table`, the table it is built from) is documented, and every documented
//! route is served (answers neither 405 nor the fallback's "no such route").

use std::collections::BTreeSet;

use edge_agent::Verb;
use reqwest::Method;
use serde_json::Value;

use crate::support::{Agent, ADMIN};

/// What `openapi.json` documents for a route of every method (a function call).
const ANY_METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// `(method, OpenAPI path)` for each route the router serves.
fn served() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (verb, path) in edge_agent::route_table() {
        let path = path.replace("{*", "{");
        let methods: &[&str] = match verb {
            Verb::Get => &["get"],
            Verb::Put => &["put"],
            Verb::Post => &["post"],
            Verb::Delete => &["delete"],
            Verb::Any => &ANY_METHODS,
        };
        for method in methods {
            out.insert(((*method).to_owned(), path.clone()));
        }
    }
    out
}

/// `(method, path)` for each operation the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if method != "parameters" {
                out.insert((method.clone(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_route_served_is_in_openapi_json_and_every_documented_route_is_served() {
    let agent = Agent::start().await;
    let doc: Value = agent
        .client
        .get(format!("{}/v1/openapi.json", agent.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    let (served, documented) = (served(), documented(&doc));
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not in openapi.json: {undocumented:?}\n\
         in openapi.json but not in the route table: {unserved:?}"
    );
    assert!(documented.contains(&("post".into(), "/v2/models/{model}/infer".into())));

    // The table is what the router serves: each documented route answers, never with 405 or
    // the fallback's 404.
    for (method, path) in &documented {
        let url = format!(
            "{}{}",
            agent.url,
            path.replace("{model}", "m")
                .replace("{name}", "f")
                .replace("{path}", "p")
                .replace("{version}", "1")
        );
        let method: Method = method.to_uppercase().parse().unwrap();
        let r = agent
            .client
            .request(method.clone(), url)
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert!(
            !(status == 404 && body.contains("no such route")),
            "{method} {path}: {body}"
        );
    }
}
