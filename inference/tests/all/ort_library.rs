//! Choosing ONNX Runtime without a usable library is an error, never a crash, and tract keeps
//! working. Each case runs in a child process, because the library loads once per process.

use std::process::Command;

use inference::test_support::{identity_model, model_bytes, ort_library};
use inference::{BackendChoice, BackendKind, ElementType, Error, LoadOptions, Model, Tensor};

use crate::auto_backend::det_model;

const CHILD_ENV: &str = "INFERENCE_ORT_LIBRARY_CASE";

/// Runs `case` in a fresh copy of this test binary and checks that it passed.
fn in_child(test: &str, case: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, case)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child `{case}` failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child `{case}` did not run:\n{text}"
    );
}

fn tract_still_works() {
    let model = Model::load(model_bytes("digits_mlp.onnx"), &LoadOptions::default()).unwrap();
    let x = Tensor::from_shape_vec(&[1, 64], vec![0.0f32; 64]).unwrap();
    assert_eq!(model.run([("input", x)]).unwrap().len(), 2);
}

fn expect_unavailable(options: LoadOptions, needle: &str) {
    let err = Model::load(model_bytes("digits_mlp.onnx"), &options).unwrap_err();
    assert!(matches!(err, Error::OrtUnavailable { .. }), "{err}");
    assert!(
        err.to_string().contains(needle),
        "`{err}` should mention `{needle}`"
    );
}

#[test]
fn a_missing_library_is_an_error_and_tract_keeps_working() {
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("missing") => {
            let ort = LoadOptions::new(BackendKind::Ort)
                .with_ort_library("/nonexistent/libonnxruntime.so.1.32.0");
            expect_unavailable(ort, "does not exist");
            tract_still_works();
        }
        _ => in_child(
            "ort_library::a_missing_library_is_an_error_and_tract_keeps_working",
            "missing",
        ),
    }
}

#[test]
fn an_unset_library_path_says_what_to_set() {
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("unset") => {
            std::env::remove_var(inference::ORT_DYLIB_ENV);
            expect_unavailable(LoadOptions::new(BackendKind::Ort), "ORT_DYLIB_PATH");
            tract_still_works();
        }
        _ => in_child(
            "ort_library::an_unset_library_path_says_what_to_set",
            "unset",
        ),
    }
}

#[test]
fn a_too_old_library_is_refused_and_tract_keeps_working() {
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("old") => {
            let old = std::env::var("EDGE_ML_OLD_ORT_DYLIB").unwrap();
            expect_unavailable(
                LoadOptions::new(BackendKind::Ort).with_ort_library(old),
                "1.31 or newer",
            );
            tract_still_works();
        }
        _ => {
            // The old library comes from scripts/env.sh, like the current one.
            if ort_library("a_too_old_library_is_refused_and_tract_keeps_working").is_none() {
                return;
            }
            assert!(
                std::env::var_os("EDGE_ML_OLD_ORT_DYLIB").is_some(),
                "EDGE_ML_OLD_ORT_DYLIB is not set; run scripts/test.sh"
            );
            in_child(
                "ort_library::a_too_old_library_is_refused_and_tract_keeps_working",
                "old",
            );
        }
    }
}

#[test]
fn the_configured_library_loads_and_reports_its_version() {
    let Some(lib) = ort_library("the_configured_library_loads_and_reports_its_version") else {
        return;
    };
    let rt = inference::OrtRuntime::get(Some(&lib)).unwrap();
    assert!(rt.version().starts_with("1."), "version {}", rt.version());
}

#[test]
fn auto_without_ort_is_tract_only_and_says_why_ort_was_not_tried() {
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("auto-missing") => {
            let missing = "/nonexistent/libonnxruntime.so.1.32.0";
            let auto = LoadOptions::for_choice(BackendChoice::Auto).with_ort_library(missing);
            let model = Model::load(identity_model(ElementType::F32), &auto).unwrap();
            assert_eq!(model.backend(), BackendKind::Tract);
            assert_eq!(model.fallback(), None);

            let err = Model::load(det_model(), &auto).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(&err, Error::NoBackend { fallback, .. } if matches!(**fallback, Error::OrtUnavailable { .. })),
                "{msg}"
            );
            assert!(
                msg.starts_with("the tract backend cannot load this model"),
                "{msg}"
            );
            assert!(msg.contains("Det"), "tract's reason: {msg}");
            assert!(msg.contains("ONNX Runtime was not tried"), "{msg}");
            assert!(
                msg.contains("does not exist"),
                "why ORT is not available: {msg}"
            );
            assert!(err.is_caller_error(), "tract refused the model: {msg}");

            // `auto-ort` the other way round: ONNX Runtime first, tract when it is missing.
            let auto_ort =
                LoadOptions::for_choice(BackendChoice::AutoOrt).with_ort_library(missing);
            let model = Model::load(identity_model(ElementType::F32), &auto_ort).unwrap();
            assert_eq!(model.backend(), BackendKind::Tract);
            let fallback = model.fallback().expect("the missing ORT is recorded");
            assert_eq!(fallback.from, BackendKind::Ort);
            assert!(
                fallback.reason.contains("does not exist"),
                "{}",
                fallback.reason
            );
            let err = Model::load(det_model(), &auto_ort).unwrap_err();
            assert!(
                err.is_caller_error(),
                "tract, the only engine tried, refused it: {err}"
            );
            assert!(err.to_string().contains("Det"), "{err}");
        }
        _ => in_child(
            "ort_library::auto_without_ort_is_tract_only_and_says_why_ort_was_not_tried",
            "auto-missing",
        ),
    }
}
