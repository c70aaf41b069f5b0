//! One loaded model serves many threads at once and gives each the answer it would get alone.

use std::sync::Arc;

use inference::test_support::model_bytes;
use inference::{Model, Tensor};

use crate::support::backends;

#[test]
fn many_threads_share_one_model() {
    for options in backends("many_threads_share_one_model") {
        let options = options.with_max_concurrency(3);
        let model = Arc::new(Model::load(model_bytes("digits_cnn.onnx"), &options).unwrap());
        let input = |seed: usize| {
            let data = (0..64)
                .map(|i| ((i * 7 + seed * 13) % 17) as f32 / 16.0)
                .collect();
            Tensor::from_shape_vec(&[1, 1, 8, 8], data).unwrap()
        };
        let alone: Vec<Tensor> = (0..8)
            .map(|s| {
                model
                    .run([("input", input(s))])
                    .unwrap()
                    .take("logits")
                    .unwrap()
            })
            .collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let model = model.clone();
                    scope.spawn(move || {
                        (0..25)
                            .map(|i| {
                                let s = (t + i) % 8;
                                (
                                    s,
                                    model
                                        .run([("input", input(s))])
                                        .unwrap()
                                        .take("logits")
                                        .unwrap(),
                                )
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                for (s, got) in h.join().unwrap() {
                    assert_eq!(got, alone[s], "{}: seed {s}", options.backend);
                }
            }
        });
    }
}
