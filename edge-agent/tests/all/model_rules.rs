//! Pushed models that reach outside themselves or are ambiguous are refused with 400 and a
//! message naming the problem, on both backends, and nothing is stored.

use inference::test_support::{external_data_model, model, node, value_info, with_opset};
use inference::ElementType;
use serde_json::{json, Value};

use crate::support::Agent;

fn relu_in(domain: &str) -> Vec<u8> {
    let mut n = node("Relu", &["x"], &["y"]);
    n.domain = domain.to_owned();
    let bytes = model(
        vec![n],
        vec![value_info("x", ElementType::F32, &[Some(2)])],
        vec![value_info("y", ElementType::F32, &[Some(2)])],
        vec![],
    );
    with_opset(&bytes, domain, 1)
}

fn output_twice() -> Vec<u8> {
    model(
        vec![node("Relu", &["x"], &["y"])],
        vec![value_info("x", ElementType::F32, &[Some(2)])],
        vec![
            value_info("y", ElementType::F32, &[Some(2)]),
            value_info("y", ElementType::F32, &[Some(2)]),
        ],
        vec![],
    )
}

#[tokio::test]
async fn external_data_unknown_domains_and_duplicate_names_are_refused_with_400() {
    let agent = Agent::start().await;
    let cases: [(Vec<u8>, &[&str]); 5] = [
        (
            external_data_model("etc/passwd", &[]),
            &["initializer `w`", "external file", "`etc/passwd`"],
        ),
        (
            external_data_model("/etc/passwd", &[]),
            &["external file", "`/etc/passwd`"],
        ),
        (
            external_data_model("../x", &[]),
            &["external file", "`../x`"],
        ),
        (
            relu_in("com.evil"),
            &["`com.evil`", "`Relu`", "node `Relu_0`"],
        ),
        (
            output_twice(),
            &["graph output `y` is declared more than once"],
        ),
    ];
    for backend in ["tract", "ort"] {
        for (i, (bytes, expected)) in cases.iter().enumerate() {
            let r = agent
                .push_bytes("bad", 1, bytes.clone(), json!({ "backend": backend }))
                .await;
            assert_eq!(r.status(), 400, "{backend} case {i}");
            let body: Value = r.json().await.unwrap();
            let msg = body["error"].as_str().unwrap();
            for part in *expected {
                assert!(msg.contains(part), "{backend} case {i}: {msg}");
            }
        }
    }
    let models: Value = agent.get_json("/v1/models").await;
    assert_eq!(models, json!([]), "a refused push stores nothing");
}
