//! `auto` and `auto-ort`: one engine first, the other when the first refuses the model, with
//! the refusal recorded. The cases without ONNX Runtime are in `ort_library`, in child
//! processes (the library loads once per process).

use inference::test_support::{identity_model, model, node, ort_library, value_info};
use inference::{BackendChoice, BackendKind, ElementType, Error, LoadOptions, Model, Tensor};

/// `y = Det(x)` over float32[2, 2]: ONNX Runtime runs it; tract has no `Det`.
pub fn det_model() -> Vec<u8> {
    model(
        vec![node("Det", &["x"], &["y"])],
        vec![value_info("x", ElementType::F32, &[Some(2), Some(2)])],
        vec![value_info("y", ElementType::F32, &[])],
        vec![],
    )
}

/// Runs the `Det` model on [[1, 2], [3, 4]]: -2 (to rounding).
pub fn det_of_example(model: &Model) -> f32 {
    let x = Tensor::from_shape_vec(&[2, 2], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
    let out = model.run([("x", x)]).unwrap();
    out.get("y")
        .unwrap()
        .as_array::<f32>()
        .unwrap()
        .iter()
        .copied()
        .next()
        .unwrap()
}

fn options(choice: BackendChoice, test: &str) -> Option<LoadOptions> {
    let lib = ort_library(test)?;
    Some(LoadOptions::for_choice(choice).with_ort_library(lib))
}

#[test]
fn auto_loads_on_ort_what_tract_refuses_and_records_why() {
    let test = "auto_loads_on_ort_what_tract_refuses_and_records_why";
    let Some(auto) = options(BackendChoice::Auto, test) else {
        return;
    };
    let refused = Model::load(det_model(), &LoadOptions::new(BackendKind::Tract)).unwrap_err();
    assert!(refused.to_string().contains("Det"), "{refused}");

    let model = Model::load(det_model(), &auto).unwrap();
    assert_eq!(model.backend(), BackendKind::Ort);
    let fallback = model.fallback().expect("a recorded fallback");
    assert_eq!(fallback.from, BackendKind::Tract);
    assert!(fallback.reason.contains("tract"), "{}", fallback.reason);
    assert!(fallback.reason.contains("Det"), "{}", fallback.reason);
    let det = det_of_example(&model);
    assert!((det + 2.0).abs() < 1e-5, "det {det}");
}

#[test]
fn auto_stays_on_tract_when_tract_loads_and_auto_ort_prefers_ort() {
    let test = "auto_stays_on_tract_when_tract_loads_and_auto_ort_prefers_ort";
    let (Some(auto), Some(auto_ort)) = (
        options(BackendChoice::Auto, test),
        options(BackendChoice::AutoOrt, test),
    ) else {
        return;
    };
    let bytes = identity_model(ElementType::F32);
    let model = Model::load(bytes.clone(), &auto).unwrap();
    assert_eq!(model.backend(), BackendKind::Tract);
    assert_eq!(model.fallback(), None);

    let model = Model::load(bytes, &auto_ort).unwrap();
    assert_eq!(model.backend(), BackendKind::Ort);
    assert_eq!(model.fallback(), None);
    let model = Model::load(det_model(), &auto_ort).unwrap();
    assert_eq!(model.backend(), BackendKind::Ort);
    assert_eq!(model.fallback(), None);
}

#[test]
fn when_both_engines_refuse_the_error_gives_both_reasons() {
    let test = "when_both_engines_refuse_the_error_gives_both_reasons";
    let bytes = model(
        vec![node("FrobnicateTensor", &["x"], &["y"])],
        vec![value_info("x", ElementType::F32, &[Some(2)])],
        vec![value_info("y", ElementType::F32, &[Some(2)])],
        vec![],
    );
    for choice in [BackendChoice::Auto, BackendChoice::AutoOrt] {
        let Some(options) = options(choice, test) else {
            return;
        };
        let err = Model::load(bytes.clone(), &options).unwrap_err();
        let Error::NoBackend { first, fallback } = &err else {
            panic!("{choice}: {err}");
        };
        let (first_engine, second_engine) = choice.engines();
        assert!(
            matches!(**first, Error::Unsupported { backend, .. } if backend == first_engine),
            "{choice}: {first}"
        );
        assert!(
            matches!(**fallback, Error::Unsupported { backend, .. } if Some(backend) == second_engine),
            "{choice}: {fallback}"
        );
        let msg = err.to_string();
        assert!(msg.contains("the tract backend cannot load"), "{msg}");
        assert!(msg.contains("the ort backend cannot load"), "{msg}");
        assert!(msg.contains("FrobnicateTensor"), "{msg}");
        assert!(
            err.is_caller_error(),
            "both engines refused the model: {msg}"
        );
    }
}

#[test]
fn load_options_describe_their_choice() {
    for choice in BackendChoice::ALL {
        assert_eq!(LoadOptions::for_choice(choice).choice(), choice);
    }
    let auto = LoadOptions::for_choice(BackendChoice::Auto);
    assert_eq!(
        (auto.backend, auto.fallback),
        (BackendKind::Tract, Some(BackendKind::Ort))
    );
    assert_eq!(LoadOptions::default().choice(), BackendChoice::Tract);
    assert_eq!(
        LoadOptions::new(BackendKind::Ort).choice(),
        BackendChoice::Ort
    );
}
