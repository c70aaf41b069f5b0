//! Calibration ranges against onnxruntime's, on the arrays and reference values that
//! `model-tools/tests/calibration/make_reference.py` committed.
//!
//! Tolerances: min/max ranges and percentile ranges are compared exactly (both pick float32
//! values by the same rules); entropy ranges to within one bin of the final histogram, since
//! onnxruntime computes the KL divergence with numpy's float32 logarithm, which may differ in
//! the last bit from Rust's and so break a near tie differently. The histograms themselves
//! (bins, edges, and the count moments Σcᵢ, Σi·cᵢ, Σi²·cᵢ) must match exactly, which checks
//! the merging of batches.

use std::fs::File;
use std::path::PathBuf;
use std::process::Command;

use inference::ndarray::ArrayD;
use inference::test_support::setup_var;
use model_tools::calibrate::{Calibrator, CalibratorConfig, TensorRange, TensorStats};
use ndarray_npy::NpzReader;
use serde_json::Value;

fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/calibration")
}

fn load_reference(dir: &std::path::Path) -> (Value, NpzReader<File>) {
    let json = std::fs::read_to_string(dir.join("reference.json")).expect("reference.json");
    let reference: Value = serde_json::from_str(&json).expect("JSON");
    let npz = NpzReader::new(File::open(dir.join("activations.npz")).expect("activations.npz"))
        .expect("an .npz");
    (reference, npz)
}

fn batches(reference: &Value, npz: &mut NpzReader<File>, dataset: &str) -> Vec<Vec<f32>> {
    reference["datasets"][dataset]
        .as_array()
        .expect("dataset's arrays")
        .iter()
        .map(|name| {
            let a: ArrayD<f32> = npz.by_name(name.as_str().unwrap()).expect("float32 array");
            a.iter().copied().collect()
        })
        .collect()
}

fn config(c: &Value) -> CalibratorConfig {
    let usize_of = |k: &str| c[k].as_u64().expect(k) as usize;
    match c["method"].as_str().unwrap() {
        "minmax" => CalibratorConfig::MinMax {
            symmetric: c["symmetric"].as_bool().unwrap(),
        },
        "percentile" => CalibratorConfig::Percentile {
            percentile: c["percentile"].as_f64().unwrap(),
            symmetric: c["symmetric"].as_bool().unwrap(),
            num_bins: usize_of("num_bins"),
        },
        "entropy" => CalibratorConfig::Entropy {
            num_bins: usize_of("num_bins"),
            num_quantized_bins: usize_of("num_quantized_bins"),
        },
        other => panic!("unknown method {other}"),
    }
}

/// Bins, edges and count moments of our histogram, as the script fingerprints onnxruntime's.
fn fingerprint(stats: &TensorStats) -> Option<Value> {
    let (counts, edges) = match stats {
        TensorStats::MinMax(_) => return None,
        TensorStats::Abs(h) => (h.counts(), h.edges()),
        TensorStats::Signed(h) => (h.counts(), h.edges()),
    };
    let moment = |p: u32| -> u64 {
        counts
            .iter()
            .enumerate()
            .map(|(i, &c)| (i as u64).pow(p) * c)
            .sum()
    };
    Some(serde_json::json!({
        "bins": counts.len(),
        "first_edge": f64::from(edges[0]),
        "last_edge": f64::from(edges[edges.len() - 1]),
        "bin_width": f64::from(edges[1] - edges[0]),
        "count_total": moment(0),
        "count_moment1": moment(1),
        "count_moment2": moment(2),
    }))
}

/// Whether two fingerprints agree: counts exactly, edges as the float32 values they are
/// (serde_json's default float parsing may be one float64 ulp off python's printing).
fn same_fingerprint(ours: Option<&Value>, theirs: &Value) -> bool {
    let Some(ours) = ours else {
        return theirs.is_null();
    };
    ["bins", "count_total", "count_moment1", "count_moment2"]
        .iter()
        .all(|k| ours[k].as_u64().is_some() && ours[k].as_u64() == theirs[k].as_u64())
        && ["first_edge", "last_edge", "bin_width"].iter().all(|k| {
            let f32_of = |v: &Value| v.as_f64().map(|f| f as f32);
            f32_of(&ours[k]).is_some() && f32_of(&ours[k]) == f32_of(&theirs[k])
        })
}

#[test]
fn ranges_agree_with_onnxruntimes_calibrators() {
    let (reference, mut npz) = load_reference(&reference_dir());
    let cases = reference["cases"].as_array().expect("cases");
    assert!(cases.len() >= 50, "only {} cases", cases.len());
    let (mut exact, mut failures) = (0, Vec::new());
    for case in cases {
        let label = format!(
            "{} {} via {} {}",
            case["dataset"], case["feed"], case["via"], case["config"]
        );
        let config = config(&case["config"]);
        let data = batches(&reference, &mut npz, case["dataset"].as_str().unwrap());
        let mut calibrator = Calibrator::new(config).unwrap();
        if case["feed"] == "concatenated" {
            calibrator.observe("x", &data.concat()).unwrap();
        } else {
            for batch in &data {
                calibrator.observe("x", batch).unwrap();
            }
        }
        let ours = calibrator.range("x").expect("a range");
        let theirs = TensorRange::new(
            case["min"].as_f64().unwrap() as f32,
            case["max"].as_f64().unwrap() as f32,
        );
        let ours_hist = fingerprint(calibrator.stats("x").unwrap());
        if !same_fingerprint(ours_hist.as_ref(), &case["histogram"]) {
            failures.push(format!(
                "{label}: histogram {} vs onnxruntime's {}",
                ours_hist.unwrap_or_default(),
                case["histogram"]
            ));
            continue;
        }
        if ours == theirs {
            exact += 1;
            continue;
        }
        let tolerance = match &config {
            CalibratorConfig::Entropy { .. } => case["histogram"]["bin_width"].as_f64().unwrap(),
            _ => 0.0,
        };
        let off =
            f64::from((ours.min - theirs.min).abs()).max(f64::from((ours.max - theirs.max).abs()));
        if off > tolerance {
            failures.push(format!(
                "{label}: ours {ours}, onnxruntime's {theirs} (off by {off}, tolerance {tolerance})"
            ));
        }
    }
    println!(
        "{exact} of {} ranges identical to onnxruntime's",
        cases.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_reference_regenerates_identically() {
    let Some(python) = setup_var(
        "EDGE_ML_PYTHON",
        "the_reference_regenerates_identically",
        true,
    ) else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let script = reference_dir().join("make_reference.py");
    let status = Command::new(python)
        .arg(&script)
        .arg("--out")
        .arg(out.path())
        .status()
        .expect("python runs");
    assert!(status.success(), "{} failed", script.display());
    let (committed, mut committed_npz) = load_reference(&reference_dir());
    let (fresh, mut fresh_npz) = load_reference(out.path());
    assert_eq!(
        committed,
        fresh,
        "reference.json is stale: rerun {}",
        script.display()
    );
    for name in committed_npz.names().unwrap() {
        let a: ArrayD<f32> = committed_npz.by_name(&name).unwrap();
        let b: ArrayD<f32> = fresh_npz.by_name(&name).unwrap();
        assert_eq!(a, b, "activations.npz array {name} is stale");
    }
}
