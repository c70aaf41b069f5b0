//! `input_shapes` in a model's config: a model whose input declares no shape, which tract
//! cannot load alone, is served from `--model-dir` with the shape its `config.toml` gives;
//! a pushed config that does not fit its model is refused at push.

use inference::onnx::make_value_info;
use inference::test_support::{model, node};
use inference::ElementType;
use serde_json::{json, Value};

use crate::support::Agent;

/// `y = Identity(x)`, with `x` and `y` declared without a shape.
fn shapeless_identity() -> Vec<u8> {
    model(
        vec![node("Identity", &["x"], &["y"])],
        vec![make_value_info("x", ElementType::F32, None)],
        vec![make_value_info("y", ElementType::F32, None)],
        vec![],
    )
}

fn request(shape: [usize; 2]) -> Value {
    let data: Vec<f32> = (0..shape[0] * shape[1]).map(|i| i as f32).collect();
    json!({"inputs": [{"name": "x", "shape": shape, "datatype": "FP32", "data": data}]})
}

#[tokio::test]
async fn a_model_dir_config_gives_tract_the_input_shape() {
    let dir = tempfile::tempdir().unwrap();
    let version = dir.path().join("shaped").join("1");
    std::fs::create_dir_all(&version).unwrap();
    std::fs::write(version.join("model.onnx"), shapeless_identity()).unwrap();
    std::fs::write(
        dir.path().join("shaped").join("config.toml"),
        "backend = \"tract\"\n[input_shapes]\nx = [2, \"w\"]\n",
    )
    .unwrap();
    let model_dir = dir.path().to_path_buf();
    let agent = Agent::start_with(move |c| c.model_dir = Some(model_dir)).await;

    let meta: Value = agent.get_json("/v2/models/shaped").await;
    assert_eq!(meta["inputs"][0]["shape"], json!([2, -1]), "{meta}");
    let (status, body) = agent.infer("shaped", None, &request([2, 3])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["shape"], json!([2, 3]), "{body}");
    let (status, body) = agent.infer("shaped", None, &request([3, 3])).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("float32[2, w]"),
        "{body}"
    );

    let r = agent
        .push_bytes(
            "pushed",
            1,
            shapeless_identity(),
            json!({"input_shapes": {"z": [1, 2]}}),
        )
        .await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("input_shapes.z: the model has no input `z`"),
        "{body}"
    );
}
