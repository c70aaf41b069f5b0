//! `classify-digits`: `{"pixels": [64 floats in 0..1]}` (an 8×8 digit) → the digits model via
//! wasi-nn → `{"top3": [{"digit", "probability"}, ...]}`. The model name comes from the
//! `MODEL` variable (granted in the manifest's `env`), else `digits`.

use edge_fn::nn::{softmax, top_k, Model};
use edge_fn::{Request, Response};
use serde::Deserialize;

#[derive(Deserialize)]
struct Input {
    pixels: Vec<f32>,
}

fn main() {
    edge_fn::run(|req: Request| {
        let input: Input = match req.json() {
            Ok(i) => i,
            Err(e) => {
                return Response::error(400, format!("expected {{\"pixels\": [64 numbers]}}: {e}"))
            }
        };
        if input.pixels.len() != 64 {
            return Response::error(
                400,
                format!("expected 64 pixels, got {}", input.pixels.len()),
            );
        }
        let name = std::env::var("MODEL").unwrap_or_else(|_| "digits".into());
        let model = match Model::load(&name) {
            Ok(m) => m,
            Err(e) => return Response::error(403, format!("cannot load model `{name}`: {e}")),
        };
        let logits = match model.run_f32(&input.pixels, &[1, 64], 0, 10) {
            Ok(l) => l,
            Err(e) => return Response::error(500, format!("inference failed: {e}")),
        };
        let top3: Vec<_> = top_k(&softmax(&logits), 3)
            .into_iter()
            .map(|(digit, p)| serde_json::json!({ "digit": digit, "probability": p }))
            .collect();
        Response::json(200, &serde_json::json!({ "model": name, "top3": top3 }))
    });
}
