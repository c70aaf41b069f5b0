//! OIP v2 inference: metadata, JSON and binary tensors of every datatype, output selection,
//! and bad requests.

use inference::test_support::{identity_model, model_bytes};
use inference::{ElementType, LoadOptions, Model, Tensor};
use serde_json::{json, Value};

use crate::support::{digits, mlp_request, Agent, INFER};

#[tokio::test]
async fn server_and_model_metadata_follow_oip() {
    let agent = Agent::start().await;
    agent.push("digits", 1, "digits_mlp.onnx", json!({})).await;
    let server: Value = agent.get_json("/v2").await;
    assert_eq!(server["name"], "edge-agent");
    assert!(server["extensions"]
        .as_array()
        .unwrap()
        .contains(&json!("binary_tensor_data")));

    let meta: Value = agent.get_json("/v2/models/digits").await;
    assert_eq!(meta["name"], "digits");
    assert_eq!(meta["versions"], json!(["1"]));
    assert_eq!(meta["platform"], "tract_onnx");
    assert_eq!(
        meta["inputs"],
        json!([{"name": "input", "datatype": "FP32", "shape": [-1, 64]}])
    );
    assert_eq!(meta["outputs"][1]["name"], "probabilities");

    let v: Value = agent.get_json("/v2/models/digits/versions/1").await;
    assert_eq!(v, meta);
    let ready: Value = agent.get_json("/v2/models/digits/ready").await;
    assert_eq!(ready, json!({"name": "digits", "ready": true}));
    let r = agent
        .get("/v2/models/digits/versions/9/ready")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = agent.get("/v2/models/nope/ready").send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn json_inference_matches_the_library_and_echoes_the_id() {
    let agent = Agent::start().await;
    agent.push("digits", 1, "digits_mlp.onnx", json!({})).await;
    let rows = digits(3);
    let mut request = mlp_request(&rows);
    request["id"] = json!("req-42");
    request["outputs"] = json!([{"name": "logits"}]);
    let (status, out) = agent.infer("digits", None, &request).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["id"], "req-42");
    assert_eq!(out["model_name"], "digits");
    assert_eq!(out["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(out["outputs"][0]["shape"], json!([3, 10]));
    assert_eq!(out["outputs"][0]["datatype"], "FP32");

    let model = Model::load(model_bytes("digits_mlp.onnx"), &LoadOptions::default()).unwrap();
    let x = Tensor::from_shape_vec(&[3, 64], rows.concat()).unwrap();
    let expected = model.run([("input", x)]).unwrap();
    let expected = expected.get("logits").unwrap().as_array::<f32>().unwrap();
    let got: Vec<f32> = out["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(got, expected.iter().copied().collect::<Vec<_>>());

    // Nested data is accepted as row-major.
    let nested =
        json!({"inputs": [{"name": "input", "shape": [3, 64], "datatype": "FP32", "data": rows}]});
    let (_, out2) = agent.infer("digits", None, &nested).await;
    assert_eq!(out2["outputs"][0]["data"], out["outputs"][0]["data"]);
}

/// Triton's binary extension: inputs after the JSON header, outputs returned as binary.
#[tokio::test]
async fn binary_tensors_in_and_out() {
    let agent = Agent::start().await;
    agent.push("digits", 1, "digits_mlp.onnx", json!({})).await;
    let rows = digits(2);
    let raw: Vec<u8> = rows.concat().iter().flat_map(|x| x.to_le_bytes()).collect();
    let header = json!({
        "inputs": [{"name": "input", "shape": [2, 64], "datatype": "FP32", "parameters": {"binary_data_size": raw.len()}}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": true}}, {"name": "logits"}]
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&raw);
    let r = agent
        .client
        .post(format!("{}/v2/models/digits/infer", agent.url))
        .bearer_auth(INFER)
        .header("inference-header-content-length", header.len())
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let json_len: usize = r.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    let head: Value = serde_json::from_slice(&bytes[..json_len]).unwrap();
    assert_eq!(head["outputs"][0]["name"], "probabilities");
    assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 80);
    assert!(head["outputs"][0].get("data").is_none());
    assert!(head["outputs"][1]["data"].is_array(), "logits stay JSON");
    let probs: Vec<f32> = bytes[json_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(probs.len(), 20);
    assert!((probs[..10].iter().sum::<f32>() - 1.0).abs() < 1e-4);
}

fn sample_json(ty: ElementType) -> Value {
    match ty {
        ElementType::Bool => json!([true, false, true, false, false, true]),
        ElementType::String => json!(["a", "", "héllo", "x", "y", "z"]),
        ElementType::F16 | ElementType::F32 | ElementType::F64 => {
            json!([0.5, -1.25, 2.0, 0.0, 3.5, -0.75])
        }
        ElementType::I8 | ElementType::I16 | ElementType::I32 | ElementType::I64 => {
            json!([-3, -1, 0, 1, 2, 100])
        }
        _ => json!([0, 1, 2, 3, 4, 200]),
    }
}

#[tokio::test]
async fn every_datatype_round_trips_in_json_and_binary() {
    let agent = Agent::start().await;
    for ty in ElementType::ALL {
        let name = format!("id-{}", ty.name());
        let r = agent
            .push_bytes(&name, 1, identity_model(ty), json!({}))
            .await;
        assert_eq!(r.status(), 201, "{ty}");
        let datatype = match ty {
            ElementType::String => "BYTES".to_owned(),
            ElementType::Bool => "BOOL".to_owned(),
            t if t.name().starts_with("float") => format!("FP{}", &t.name()[5..]),
            t => t.name().to_uppercase(),
        };
        let request = json!({"inputs": [{"name": "x", "shape": [2, 3], "datatype": datatype, "data": sample_json(ty)}]});
        let (status, out) = agent.infer(&name, None, &request).await;
        assert_eq!(status, 200, "{ty}: {out}");
        assert_eq!(out["outputs"][0]["datatype"], datatype.as_str());
        assert_eq!(out["outputs"][0]["data"], sample_json(ty), "{ty}");

        let mut binary = request.clone();
        binary["parameters"] = json!({"binary_data_output": true});
        let r = agent
            .client
            .post(format!("{}/v2/models/{name}/infer", agent.url))
            .bearer_auth(INFER)
            .json(&binary)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let len: usize = r.headers()["inference-header-content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let bytes = r.bytes().await.unwrap();
        let size = serde_json::from_slice::<Value>(&bytes[..len]).unwrap()["outputs"][0]
            ["parameters"]["binary_data_size"]
            .as_u64()
            .unwrap() as usize;
        assert_eq!(bytes.len() - len, size, "{ty}");
    }
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let agent = Agent::start().await;
    agent.push("digits", 1, "digits_mlp.onnx", json!({})).await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "INT64", "data": vec![0; 64]}]}),
            "input `input`: expected float32[N, 64], got int64[1, 64]",
        ),
        (
            json!({"inputs": [{"name": "input", "shape": [1, 63], "datatype": "FP32", "data": vec![0.0; 63]}]}),
            "expected float32[N, 64], got float32[1, 63]",
        ),
        (
            json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": vec![0.0; 10]}]}),
            "needs 64 elements, but data has 10",
        ),
        (
            json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP99", "data": []}]}),
            "unknown datatype `FP99`",
        ),
        (
            json!({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": vec![0.0; 64]}]}),
            "no input named `pixels`",
        ),
        (
            json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": vec![0.0; 64]}], "outputs": [{"name": "nope"}]}),
            "no output named `nope`",
        ),
        (
            json!({"inputs": [{"name": "input", "shape": [-1, 64], "datatype": "FP32", "data": []}]}),
            "negative dimension",
        ),
        (
            json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": vec!["a"; 64]}]}),
            "is not a valid FP32",
        ),
        (
            json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32"}]}),
            "neither `data` nor parameters.binary_data_size",
        ),
        (json!({"inputz": []}), "malformed infer request JSON"),
    ];
    for (request, needle) in cases {
        let (status, out) = agent.infer("digits", None, &request).await;
        assert_eq!(status, 400, "{request}: {out}");
        let msg = out["error"].as_str().unwrap();
        assert!(msg.contains(needle), "`{msg}` should contain `{needle}`");
    }
    let post = |path: &str, body: Vec<u8>| {
        agent
            .client
            .post(format!("{}{path}", agent.url))
            .bearer_auth(INFER)
            .body(body)
    };
    let r = post("/v2/models/digits/infer", b"{not json".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("malformed"));
    let r = post("/v2/models/digits/infer", vec![b' '; 2 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("limit"));
    let r = post("/v2/models/digits/infer", b"{}".to_vec())
        .header("inference-header-content-length", "99")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (status, out) = agent.infer("ghost", None, &mlp_request(&digits(1))).await;
    assert_eq!(
        (status, out["error"].as_str().unwrap()),
        (404, "model `ghost` not found")
    );
    let (status, _) = agent
        .infer("digits", Some(7), &mlp_request(&digits(1)))
        .await;
    assert_eq!(status, 404);
    let r = agent
        .get("/v2/models/digits/versions/x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // After all that, the agent still serves.
    let (status, _) = agent.infer("digits", None, &mlp_request(&digits(1))).await;
    assert_eq!(status, 200);
}

/// KServe's client names the model in the body: a name and version that match the path are
/// served, as is an unknown top-level field; a contradiction or a malformed tensor is a 400.
#[tokio::test]
async fn the_body_may_name_its_target_but_not_contradict_the_path() {
    let agent = Agent::start().await;
    agent.push("digits", 1, "digits_mlp.onnx", json!({})).await;
    let with = |fields: Value| {
        let mut body = mlp_request(&digits(1));
        for (k, v) in fields.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let served =
        with(json!({"model_name": "digits", "model_version": "1", "x-trace": {"span": 7}}));
    for version in [None, Some(1)] {
        let (status, out) = agent.infer("digits", version, &served).await;
        assert_eq!(status, 200, "{version:?}: {out}");
        assert_eq!(out["outputs"][0]["shape"], json!([1, 10]));
    }
    let (status, _) = agent
        .infer(
            "digits",
            None,
            &with(json!({"model_name": null, "model_version": ""})),
        )
        .await;
    assert_eq!(status, 200);
    let mut bad_tensor = mlp_request(&digits(1));
    bad_tensor["inputs"][0]["extra"] = json!(1);
    let cases: Vec<(Option<u64>, Value, &str)> = vec![
        (
            None,
            with(json!({"model_name": "words"})),
            "the body's model_name `words` contradicts the model in the path, `digits`",
        ),
        (
            Some(1),
            with(json!({"model_version": "2"})),
            "the body's model_version `2` contradicts version 1 in the path",
        ),
        (
            None,
            with(json!({"model_version": "2"})),
            "`digits` serves version 1; POST /v2/models/digits/versions/2/infer to run another",
        ),
        (
            None,
            with(json!({"model_version": "v1"})),
            "`v1` is not an integer",
        ),
        (None, bad_tensor, "unknown field `extra`"),
    ];
    for (version, request, needle) in cases {
        let (status, out) = agent.infer("digits", version, &request).await;
        assert_eq!(status, 400, "{request}: {out}");
        let msg = out["error"].as_str().unwrap();
        assert!(msg.contains(needle), "`{msg}` should contain `{needle}`");
    }
}
