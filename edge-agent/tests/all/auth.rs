//! Bearer tokens: 401 without a valid token, 403 without the role, health always open.

use reqwest::Method;
use serde_json::json;

use crate::support::{Agent, INFER};

#[tokio::test]
async fn tokens_and_roles_guard_the_routes() {
    let agent = Agent::start().await;
    agent.push("m", 1, "digits_mlp.onnx", json!({})).await;
    let url = |p: &str| format!("{}{p}", agent.url);

    for open in [
        "/v2/health/live",
        "/v2/health/ready",
        "/metrics",
        "/v1/openapi.json",
    ] {
        let r = agent.client.get(url(open)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{open} is open");
    }

    let r = agent.client.get(url("/v2/models/m")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert!(r.text().await.unwrap().contains("Authorization: Bearer"));

    let r = agent
        .client
        .get(url("/v2/models/m"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = agent
        .client
        .get(url("/v2/models/m"))
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let r = agent
        .client
        .get(url("/v2/models/m"))
        .bearer_auth(INFER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = agent
        .client
        .delete(url("/v1/models/m"))
        .bearer_auth(INFER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("needs `admin`"));
    let r = agent
        .admin(Method::GET, "/v2/models/m")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "admin may also infer");
}

#[tokio::test]
async fn dev_open_is_explicit() {
    let agent = Agent::start_with(|c| {
        c.auth.tokens.clear();
        c.auth.dev_open = true;
    })
    .await;
    let r = agent
        .client
        .get(format!("{}/v1/models", agent.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
