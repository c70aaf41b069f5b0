//! The quantization arithmetic against values onnxruntime computed
//! (`tests/reference/quantize_params.json`, written by `quantize_params.py` next to it).
//! Floats are compared bit for bit.

use inference::half::f16;
use inference::Tensor;
use serde_json::Value;

use super::params::{compute_scale_zp, compute_scale_zp_f16, QuantType};
use super::weights::{quantize_weights, Granularity, WeightConfig};
use super::ParamsConfig;

const REFERENCE: &str = include_str!("../../tests/reference/quantize_params.json");

fn reference() -> Value {
    serde_json::from_str(REFERENCE).expect("valid JSON")
}

fn cases<'a>(doc: &'a Value, key: &str) -> &'a [Value] {
    let cases = doc[key].as_array().expect("an array of cases");
    assert!(
        cases.len() > 100 || key == "quantize_data",
        "{key}: too few cases"
    );
    cases
}

fn qtype(case: &Value) -> QuantType {
    case["qtype"].as_str().unwrap().parse().unwrap()
}

fn flag(case: &Value, key: &str) -> bool {
    case[key].as_bool().unwrap()
}

fn int(case: &Value, key: &str) -> i64 {
    case[key].as_i64().unwrap()
}

fn f32_of(case: &Value, key: &str) -> f32 {
    f32::from_bits(u32::try_from(int(case, key)).unwrap())
}

fn f16_of(case: &Value, key: &str) -> f16 {
    f16::from_bits(u16::try_from(int(case, key)).unwrap())
}

/// The integer range onnxruntime used is the one `QuantType::range` gives.
fn check_range(case: &Value) -> (i32, i32) {
    let range = qtype(case).range(flag(case, "reduce_range"), flag(case, "symmetric"));
    let expected = (int(case, "qmin") as i32, int(case, "qmax") as i32);
    assert_eq!(range, expected, "{case}");
    range
}

#[test]
fn float32_scales_and_zero_points_match_onnxruntime() {
    let doc = reference();
    for case in cases(&doc, "scale_zp_f32") {
        let (qmin, qmax) = check_range(case);
        let width =
            (!case["min_real_range_bits"].is_null()).then(|| f32_of(case, "min_real_range_bits"));
        let p = compute_scale_zp(
            f32_of(case, "rmin_bits"),
            f32_of(case, "rmax_bits"),
            qmin,
            qmax,
            flag(case, "symmetric"),
            width,
        )
        .unwrap();
        assert_eq!(
            p.scale.to_bits(),
            int(case, "scale_bits") as u32,
            "scale of {case}: {p:?}"
        );
        assert_eq!(
            i64::from(p.zero_point),
            int(case, "zero_point"),
            "zero point of {case}"
        );
        if width.is_none() {
            let config = ParamsConfig {
                qtype: qtype(case),
                symmetric: flag(case, "symmetric"),
                reduce_range: flag(case, "reduce_range"),
                min_real_range: None,
            };
            let via_config = super::params_for_range(
                f32_of(case, "rmin_bits"),
                f32_of(case, "rmax_bits"),
                &config,
            );
            assert_eq!(via_config, p);
        }
    }
}

#[test]
fn float16_scales_and_zero_points_match_onnxruntime() {
    let doc = reference();
    for case in cases(&doc, "scale_zp_f16") {
        let (qmin, qmax) = check_range(case);
        let width =
            (!case["min_real_range_bits"].is_null()).then(|| f16_of(case, "min_real_range_bits"));
        let p = compute_scale_zp_f16(
            f16_of(case, "rmin_bits"),
            f16_of(case, "rmax_bits"),
            qmin,
            qmax,
            flag(case, "symmetric"),
            width,
        )
        .unwrap();
        assert_eq!(
            p.scale.to_bits(),
            int(case, "scale_bits") as u16,
            "scale of {case}: {p:?}"
        );
        assert_eq!(
            i64::from(p.zero_point),
            int(case, "zero_point"),
            "zero point of {case}"
        );
    }
}

#[test]
fn quantized_arrays_match_onnxruntime() {
    let doc = reference();
    for case in cases(&doc, "quantize_data") {
        let data: Vec<f32> = case["data_bits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| f32::from_bits(b.as_u64().unwrap() as u32))
            .collect();
        let config = WeightConfig {
            params: ParamsConfig {
                qtype: qtype(case),
                symmetric: flag(case, "symmetric"),
                reduce_range: flag(case, "reduce_range"),
                min_real_range: None,
            },
            granularity: Granularity::PerTensor,
        };
        let tensor = Tensor::from_shape_vec(&[data.len()], data).unwrap();
        let q = quantize_weights(&tensor, &config).unwrap();
        assert_eq!(
            q.params[0].scale.to_bits(),
            int(case, "scale_bits") as u32,
            "{case}"
        );
        assert_eq!(
            i64::from(q.params[0].zero_point),
            int(case, "zero_point"),
            "{case}"
        );
        let values: Vec<i64> = match &q.data {
            Tensor::U8(a) => a.iter().map(|&v| i64::from(v)).collect(),
            Tensor::I8(a) => a.iter().map(|&v| i64::from(v)).collect(),
            other => panic!("{other:?}"),
        };
        let expected: Vec<i64> = case["quantized"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(values, expected, "{case}");
    }
}
