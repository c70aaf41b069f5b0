//! Every supported operator's gradient against central finite differences, in f64.
//!
//! Each case is a one-node graph whose tensors are all initializers (so all get gradients),
//! fed a dummy input; the checked scalar is `Σ output ⊙ R` for a fixed random `R`.

use candle_core::{DType, Device, Tensor};
use federated::train::Trainer;
use inference::onnx::{self, proto as pb, AttributeValue, DataLayout};
use inference::test_support::{model, value_info};
use inference::ElementType;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

enum A {
    I(i64),
    F(f32),
    Is(Vec<i64>),
}

fn node(op: &str, inputs: &[&str], attrs: Vec<(&str, A)>) -> pb::NodeProto {
    let mut node = onnx::make_node(op, &format!("{op}_node"), inputs, &["y"]);
    for (name, a) in attrs {
        let value = match a {
            A::I(i) => AttributeValue::Int(i),
            A::F(f) => AttributeValue::Float(f),
            A::Is(v) => AttributeValue::Ints(v),
        };
        onnx::set_attribute(&mut node, name, value);
    }
    node
}

fn init(name: &str, shape: &[usize], rng: &mut ChaCha8Rng, positive: bool) -> pb::TensorProto {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|_| {
            let v: f32 = rng.random_range(-1.0..1.0);
            if positive {
                v.abs() + 0.5
            } else {
                v
            }
        })
        .collect();
    let tensor = inference::Tensor::from_shape_vec(shape, data).unwrap();
    onnx::tensor_to_proto(name, &tensor, DataLayout::Typed)
}

fn int64(name: &str, values: &[i64]) -> pb::TensorProto {
    let tensor = inference::Tensor::from_shape_vec(&[values.len()], values.to_vec()).unwrap();
    onnx::tensor_to_proto(name, &tensor, DataLayout::Typed)
}

/// Builds the one-node model: `tensors` are (name, shape, strictly positive?).
fn case(
    op: pb::NodeProto,
    tensors: &[(&str, &[usize], bool)],
    extra: Vec<pb::TensorProto>,
) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut inits: Vec<pb::TensorProto> = tensors
        .iter()
        .map(|(n, s, p)| init(n, s, &mut rng, *p))
        .collect();
    inits.extend(extra);
    let bytes = model(
        vec![op],
        vec![value_info("dummy", ElementType::F32, &[Some(1)])],
        vec![value_info("y", ElementType::F32, &[])],
        inits,
    );
    // value_info gave `y` a rank-0 shape; drop it, the trainer does not need it.
    let mut proto = onnx::decode_model(&bytes).unwrap();
    onnx::graph_mut(&mut proto).unwrap().output[0].r#type = None;
    onnx::encode_model(&proto)
}

fn check(name: &str, onnx: Vec<u8>, training: bool) {
    let trainer = Trainer::with_dtype(&onnx, DType::F64).unwrap_or_else(|e| panic!("{name}: {e}"));
    let dev = Device::Cpu;
    let dummy = Tensor::zeros(1, DType::F64, &dev).unwrap();
    let run = |t: &Trainer| {
        t.predict(&dummy, training, &mut ChaCha8Rng::seed_from_u64(9))
            .unwrap()
    };
    let out = run(&trainer);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let r: Vec<f64> = (0..out.elem_count())
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let r = Tensor::from_vec(r, out.shape(), &dev).unwrap();
    let scalar = |t: &Trainer| {
        (run(t) * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let grads = (out * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let h = 1e-6;
    let mut checked = 0;
    for (var_name, var) in trainer.vars() {
        let original = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let analytic = grads
            .get(var.as_tensor())
            .map(|g| g.flatten_all().unwrap().to_vec1::<f64>().unwrap())
            .unwrap_or_else(|| vec![0.0; original.len()]);
        let shape = var.as_tensor().shape().clone();
        for j in (0..original.len()).step_by((original.len() / 7).max(1)) {
            let at = |delta: f64| {
                let mut v = original.clone();
                v[j] += delta;
                var.set(&Tensor::from_vec(v, shape.clone(), &dev).unwrap())
                    .unwrap();
                scalar(&trainer)
            };
            let numeric = (at(h) - at(-h)) / (2.0 * h);
            var.set(&Tensor::from_vec(original.clone(), shape.clone(), &dev).unwrap())
                .unwrap();
            let a = analytic[j];
            assert!(
                (a - numeric).abs() <= 1e-5 + 1e-4 * numeric.abs(),
                "{name}: d/d{var_name}[{j}] analytic {a} vs numeric {numeric}"
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "{name}: nothing checked");
}

#[test]
fn dense_ops() {
    check(
        "Gemm",
        case(
            node(
                "Gemm",
                &["a", "b", "c"],
                vec![
                    ("transB", A::I(1)),
                    ("alpha", A::F(0.5)),
                    ("beta", A::F(2.0)),
                ],
            ),
            &[
                ("a", &[3, 4], false),
                ("b", &[5, 4], false),
                ("c", &[5], false),
            ],
            vec![],
        ),
        true,
    );
    check(
        "MatMul",
        case(
            node("MatMul", &["a", "b"], vec![]),
            &[("a", &[2, 3, 4], false), ("b", &[4, 5], false)],
            vec![],
        ),
        true,
    );
    for op in ["Add", "Sub", "Mul"] {
        check(
            op,
            case(
                node(op, &["a", "b"], vec![]),
                &[("a", &[2, 3], false), ("b", &[3], false)],
                vec![],
            ),
            true,
        );
    }
    check(
        "Div",
        case(
            node("Div", &["a", "b"], vec![]),
            &[("a", &[2, 3], false), ("b", &[2, 3], true)],
            vec![],
        ),
        true,
    );
}

#[test]
fn activations() {
    for op in ["Relu", "Sigmoid", "Tanh", "Identity"] {
        check(
            op,
            case(node(op, &["a"], vec![]), &[("a", &[3, 5], false)], vec![]),
            true,
        );
    }
    check(
        "LeakyRelu",
        case(
            node("LeakyRelu", &["a"], vec![("alpha", A::F(0.1))]),
            &[("a", &[3, 5], false)],
            vec![],
        ),
        true,
    );
    check(
        "Softmax",
        case(
            node("Softmax", &["a"], vec![("axis", A::I(1))]),
            &[("a", &[3, 5], false)],
            vec![],
        ),
        true,
    );
    check(
        "LogSoftmax",
        case(
            node("LogSoftmax", &["a"], vec![("axis", A::I(-1))]),
            &[("a", &[3, 5], false)],
            vec![],
        ),
        true,
    );
    check(
        "Dropout",
        case(
            node("Dropout", &["a"], vec![("ratio", A::F(0.3))]),
            &[("a", &[4, 6], false)],
            vec![],
        ),
        true,
    );
}

#[test]
fn convolution_and_pooling() {
    check(
        "Conv",
        case(
            node(
                "Conv",
                &["x", "w", "b"],
                vec![
                    ("pads", A::Is(vec![1, 0, 1, 2])),
                    ("strides", A::Is(vec![2, 2])),
                ],
            ),
            &[
                ("x", &[2, 2, 5, 5], false),
                ("w", &[3, 2, 3, 3], false),
                ("b", &[3], false),
            ],
            vec![],
        ),
        true,
    );
    check(
        "MaxPool (overlapping, padded)",
        case(
            node(
                "MaxPool",
                &["x"],
                vec![
                    ("kernel_shape", A::Is(vec![3, 3])),
                    ("strides", A::Is(vec![2, 2])),
                    ("pads", A::Is(vec![1, 1, 1, 1])),
                ],
            ),
            &[("x", &[2, 2, 5, 5], false)],
            vec![],
        ),
        true,
    );
    check(
        "MaxPool (2x2 stride 2)",
        case(
            node(
                "MaxPool",
                &["x"],
                vec![
                    ("kernel_shape", A::Is(vec![2, 2])),
                    ("strides", A::Is(vec![2, 2])),
                ],
            ),
            &[("x", &[1, 3, 4, 4], false)],
            vec![],
        ),
        true,
    );
    check(
        "AveragePool",
        case(
            node(
                "AveragePool",
                &["x"],
                vec![
                    ("kernel_shape", A::Is(vec![2, 3])),
                    ("pads", A::Is(vec![1, 1, 0, 1])),
                ],
            ),
            &[("x", &[2, 2, 4, 5], false)],
            vec![],
        ),
        true,
    );
    check(
        "GlobalAveragePool",
        case(
            node("GlobalAveragePool", &["x"], vec![]),
            &[("x", &[2, 3, 4, 4], false)],
            vec![],
        ),
        true,
    );
}

#[test]
fn normalization_and_shapes() {
    check(
        "BatchNormalization (training)",
        case(
            node(
                "BatchNormalization",
                &["x", "s", "b", "m", "v"],
                vec![("epsilon", A::F(1e-3))],
            ),
            &[
                ("x", &[4, 3, 2, 2], false),
                ("s", &[3], false),
                ("b", &[3], false),
                ("m", &[3], false),
                ("v", &[3], true),
            ],
            vec![],
        ),
        true,
    );
    check(
        "Flatten",
        case(
            node("Flatten", &["x"], vec![("axis", A::I(2))]),
            &[("x", &[2, 3, 4], false)],
            vec![],
        ),
        true,
    );
    check(
        "Reshape",
        case(
            node("Reshape", &["x", "shape"], vec![]),
            &[("x", &[2, 3, 4], false)],
            vec![int64("shape", &[0, -1, 2])],
        ),
        true,
    );
    check(
        "Concat",
        case(
            node("Concat", &["a", "b"], vec![("axis", A::I(1))]),
            &[("a", &[2, 3], false), ("b", &[2, 4], false)],
            vec![],
        ),
        true,
    );
    check(
        "Transpose",
        case(
            node("Transpose", &["x"], vec![("perm", A::Is(vec![2, 0, 1]))]),
            &[("x", &[2, 3, 4], false)],
            vec![],
        ),
        true,
    );
}
