//! Tensor helpers over the `wasi-nn` 0.6 crate (the legacy `wasi_ephemeral_nn` ABI).

pub use wasi_nn::{self, Error, ExecutionTarget, GraphEncoding, TensorType};

/// A model loaded by name from the agent's repository (only models the manifest grants).
pub struct Model {
    graph: wasi_nn::Graph,
}

impl Model {
    /// Loads `name` (or `name:version`).
    pub fn load(name: &str) -> Result<Self, Error> {
        let graph = wasi_nn::GraphBuilder::new(GraphEncoding::Onnx, ExecutionTarget::CPU)
            .build_from_cache(name)?;
        Ok(Self { graph })
    }

    /// Runs the model on one `f32` input of shape `dims` and returns output `output` as `f32`
    /// (at most `max_len` values).
    pub fn run_f32(
        &self,
        input: &[f32],
        dims: &[usize],
        output: usize,
        max_len: usize,
    ) -> Result<Vec<f32>, Error> {
        let mut ctx = self.graph.init_execution_context()?;
        ctx.set_input(0, TensorType::F32, dims, input)?;
        ctx.compute()?;
        let mut out = vec![0f32; max_len];
        let bytes = ctx.get_output(output, &mut out)?;
        out.truncate(bytes / std::mem::size_of::<f32>());
        Ok(out)
    }
}

/// Softmax of scores.
pub fn softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

/// The `k` highest scores with their indices, highest first.
pub fn top_k(scores: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = scores.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(k);
    ranked
}
