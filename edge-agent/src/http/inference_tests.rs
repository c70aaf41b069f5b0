//! Decoding hostile infer bodies: sizes are checked against the bytes received before anything
//! of a declared size is allocated, and nothing panics.

use axum::http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use serde_json::json;

use super::{check_target, decode, memory_needed, split_body, HEADER_LENGTH};

fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<usize, String> {
    let (json_part, binary) = split_body(headers, body).map_err(|e| format!("{e:?}"))?;
    decode(json_part, binary)
        .map(|d| d.call.inputs.len())
        .map_err(|e| format!("{e:?}"))
}

fn json_body(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn declared_shapes_larger_than_the_data_are_refused_before_allocating() {
    let none = HeaderMap::new();
    for shape in [
        json!([1_000_000_000u64]),
        json!([300_000_000u64]),
        json!([i64::MAX, 2]),
        json!([i64::MAX, i64::MAX]),
        json!([4_611_686_018_427_387_904u64, 4]),
        json!([-1]),
        json!([0, i64::MAX, i64::MAX]),
    ] {
        for datatype in ["FP32", "BYTES", "BOOL", "INT64"] {
            let body = json_body(json!({"inputs": [
                {"name": "input", "shape": shape, "datatype": datatype, "data": [1]}
            ]}));
            let err = decode_body(&none, &body).unwrap_err();
            assert!(err.contains("400"), "{shape} {datatype}: {err}");
        }
    }
}

#[test]
fn binary_sizes_are_checked_against_the_bytes_received() {
    let cases: Vec<(serde_json::Value, Vec<u8>)> = vec![
        // BYTES elements need at least 4 bytes each.
        (
            json!({"name": "s", "shape": [1_000_000_000u64], "datatype": "BYTES",
                "parameters": {"binary_data_size": 8}}),
            vec![0; 8],
        ),
        (
            json!({"name": "x", "shape": [1_000_000_000u64], "datatype": "FP32",
                "parameters": {"binary_data_size": 8}}),
            vec![0; 8],
        ),
        (
            json!({"name": "x", "shape": [i64::MAX, 2], "datatype": "FP64",
                "parameters": {"binary_data_size": 8}}),
            vec![0; 8],
        ),
        (
            json!({"name": "x", "shape": [2], "datatype": "FP32",
                "parameters": {"binary_data_size": u64::MAX}}),
            vec![0; 8],
        ),
        (
            json!({"name": "x", "shape": [2], "datatype": "FP32",
                "parameters": {"binary_data_size": -1}}),
            vec![0; 8],
        ),
        // A BYTES length prefix that runs past the data.
        (
            json!({"name": "s", "shape": [1], "datatype": "BYTES",
                "parameters": {"binary_data_size": 8}}),
            vec![255, 255, 255, 255, 0, 0, 0, 0],
        ),
    ];
    for (input, binary) in cases {
        let header = json_body(json!({ "inputs": [input.clone()] }));
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_LENGTH, HeaderValue::from(header.len()));
        let mut body = header;
        body.extend_from_slice(&binary);
        let err = decode_body(&headers, &body).unwrap_err();
        assert!(err.contains("400"), "{input}: {err}");
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        HEADER_LENGTH,
        HeaderValue::from_static("18446744073709551615"),
    );
    assert!(decode_body(&headers, b"{}").unwrap_err().contains("400"));
}

#[test]
fn memory_needed_saturates() {
    assert_eq!(memory_needed(&[0; 10], &[0; 5]), 10 * 24 + 10);
}

/// `check_target`'s verdict on a body naming `name` and `version`, for a request to model `m`
/// whose path names `path_version`, served by version 3.
fn target(
    name: Option<&str>,
    version: Option<&str>,
    path_version: Option<u64>,
) -> Result<(), String> {
    let mut body = json!({"inputs": []});
    if let Some(n) = name {
        body["model_name"] = json!(n);
    }
    if let Some(v) = version {
        body["model_version"] = json!(v);
    }
    let decoded = decode(&json_body(body), &[]).map_err(|e| format!("{e:?}"))?;
    check_target(&decoded, "m", 3, path_version).map_err(|e| format!("{e:?}"))
}

#[test]
fn a_body_may_name_its_target_but_not_contradict_the_path() {
    for path_version in [None, Some(3)] {
        assert_eq!(target(None, None, path_version), Ok(()));
        assert_eq!(target(Some("m"), None, path_version), Ok(()));
        assert_eq!(target(Some("m"), Some("3"), path_version), Ok(()));
        assert_eq!(target(None, Some(""), path_version), Ok(()));
        let err = target(Some("other"), None, path_version).unwrap_err();
        assert!(
            err.contains("model_name `other` contradicts the model in the path, `m`"),
            "{err}"
        );
        let err = target(Some("m"), Some("x"), path_version).unwrap_err();
        assert!(
            err.contains("400") && err.contains("`x` is not an integer"),
            "{err}"
        );
    }
    let err = target(Some("m"), Some("2"), Some(3)).unwrap_err();
    assert!(
        err.contains("`2` contradicts version 3 in the path"),
        "{err}"
    );
    let err = target(None, Some("2"), None).unwrap_err();
    assert!(
        err.contains("`m` serves version 3") && err.contains("/v2/models/m/versions/2/infer"),
        "{err}"
    );
}

#[test]
fn unknown_top_level_fields_are_skipped_and_unknown_tensor_fields_refused() {
    // Raw text: `json!` would sort the keys.
    let body = br#"{"model_name": "m", "trace": {"deep": [1, 2]}, "inputs": [
        {"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}
    ], "priority": 3}"#;
    let decoded = decode(body, &[]).unwrap();
    assert_eq!(decoded.unknown_fields, ["trace", "priority"]);
    assert_eq!(decoded.model_name.as_deref(), Some("m"));
    assert_eq!(decoded.call.inputs.len(), 1);
    for bad in [
        json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0], "extra": 1}]}),
        json!({"inputs": [], "outputs": [{"name": "y", "binary": true}]}),
        json!({"id": "no inputs"}),
        json!({"inputs": [], "model_name": 7}),
        json!([]),
    ] {
        let err = decode_body(&HeaderMap::new(), &json_body(bad.clone())).unwrap_err();
        assert!(
            err.contains("400") && err.contains("malformed infer request JSON"),
            "{bad}: {err}"
        );
    }
    let err = decode_body(&HeaderMap::new(), br#"{"inputs": [], "inputs": []}"#).unwrap_err();
    assert!(err.contains("duplicate field `inputs`"), "{err}");
}

fn datatype() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16",
        "FP32", "FP64", "BYTES", "BF16", "",
    ])
}

fn dim() -> impl Strategy<Value = i64> {
    prop_oneof![
        0i64..4,
        Just(-1i64),
        Just(i64::MAX),
        Just(i64::MIN),
        Just(1i64 << 32),
        Just(1i64 << 62),
    ]
}

fn leaf() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<i64>().prop_map(|v| json!(v)),
        any::<u64>().prop_map(|v| json!(v)),
        any::<f64>().prop_map(|v| json!(v)),
        any::<bool>().prop_map(|v| json!(v)),
        ".{0,4}".prop_map(|v| json!(v)),
        Just(serde_json::Value::Null),
    ]
}

fn data() -> impl Strategy<Value = serde_json::Value> {
    leaf().prop_recursive(4, 32, 6, |inner| {
        prop::collection::vec(inner, 0..6).prop_map(serde_json::Value::Array)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Structured JSON inputs with hostile shapes, types and data: an answer, never a panic.
    #[test]
    fn json_inputs_never_panic(
        shape in prop::collection::vec(dim(), 0..4),
        datatype in datatype(),
        data in data(),
    ) {
        let body = json_body(json!({"inputs": [
            {"name": "x", "shape": shape, "datatype": datatype, "data": data}
        ]}));
        let _ = decode_body(&HeaderMap::new(), &body);
    }

    /// Binary inputs whose declared sizes and header length lie: an answer, never a panic.
    #[test]
    fn binary_inputs_never_panic(
        shape in prop::collection::vec(dim(), 0..4),
        datatype in datatype(),
        size in prop_oneof![0u64..64, Just(u64::MAX), Just(1u64 << 40)],
        header_delta in -4i64..4,
        binary in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let header = json_body(json!({"inputs": [
            {"name": "x", "shape": shape, "datatype": datatype,
             "parameters": {"binary_data_size": size}}
        ]}));
        let declared = (header.len() as i64 + header_delta).max(0);
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_LENGTH, HeaderValue::from(declared));
        let mut body = header;
        body.extend_from_slice(&binary);
        let _ = decode_body(&headers, &body);
    }

    /// Arbitrary bytes as a body: an answer, never a panic.
    #[test]
    fn arbitrary_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_body(&HeaderMap::new(), &body);
    }
}
