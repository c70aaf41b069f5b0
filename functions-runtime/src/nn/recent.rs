//! How long each model's recent `compute` took, to decide where the next one runs: inline on
//! the guest's thread when it is known to be short (no thread hop each way, which costs more
//! than a small model's run), else on tokio's blocking pool, where the call's deadline timer
//! can end the call while the model runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use inference::Model;

/// The longest predicted run that goes inline; longer ones go to the blocking pool.
pub(super) const INLINE_MAX: Duration = Duration::from_micros(300);

/// How much of the call's remaining time an inline run may be predicted to take at most
/// (a quarter), so that a run slower than predicted still leaves time before the deadline.
const DEADLINE_SHARE: u32 = 4;

/// More models than this are remembered only while they are alive (dead ones are pruned).
const PRUNE_ABOVE: usize = 64;

/// The last run of one model.
struct LastRun {
    /// The model (weak: the entry does not keep it loaded; while this lives, the model's
    /// allocation, and so its address, is not reused by another model).
    model: Weak<Model>,
    /// How long it took.
    took: Duration,
    /// The bytes of its inputs.
    input_bytes: usize,
}

/// The last run of every model seen, by the address of its allocation.
fn table() -> std::sync::MutexGuard<'static, HashMap<usize, LastRun>> {
    static TABLE: std::sync::OnceLock<Mutex<HashMap<usize, LastRun>>> = std::sync::OnceLock::new();
    TABLE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Whether a run of `model` on `input_bytes` bytes of inputs may go inline, with `remaining`
/// time before the call's deadline: only when the model ran before, its last run scaled up to
/// these inputs (never down) is at most [`INLINE_MAX`], and at most a quarter of `remaining`.
pub(super) fn inline(model: &Arc<Model>, input_bytes: usize, remaining: Duration) -> bool {
    let key = Arc::as_ptr(model) as usize;
    let Some((took, last_bytes)) = table().get(&key).map(|r| (r.took, r.input_bytes)) else {
        return false;
    };
    let scale = input_bytes.div_ceil(last_bytes.max(1)).max(1);
    let predicted = took.saturating_mul(u32::try_from(scale).unwrap_or(u32::MAX));
    predicted <= INLINE_MAX && predicted.saturating_mul(DEADLINE_SHARE) <= remaining
}

/// Remembers that a run of `model` on `input_bytes` bytes of inputs took `took`.
pub(super) fn record(model: &Arc<Model>, input_bytes: usize, took: Duration) {
    let key = Arc::as_ptr(model) as usize;
    let mut table = table();
    if table.len() > PRUNE_ABOVE && !table.contains_key(&key) {
        table.retain(|_, r| r.model.strong_count() > 0);
    }
    table.insert(
        key,
        LastRun {
            model: Arc::downgrade(model),
            took,
            input_bytes,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Arc<Model> {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/digits_mlp.onnx");
        let bytes = std::fs::read(&path).unwrap();
        Arc::new(Model::load(bytes, &inference::LoadOptions::default()).unwrap())
    }

    const LONG: Duration = Duration::from_secs(10);

    #[test]
    fn only_a_model_known_to_be_quick_runs_inline_with_time_to_spare() {
        let model = model();
        assert!(!inline(&model, 256, LONG), "never seen: the blocking pool");
        record(&model, 256, Duration::from_micros(20));
        assert!(inline(&model, 256, LONG));
        assert!(
            inline(&model, 128, LONG),
            "smaller inputs: never scaled down"
        );
        assert!(
            !inline(&model, 256 * 100, LONG),
            "100 times the inputs: predicted 2 ms"
        );
        assert!(
            !inline(&model, 256, Duration::from_micros(50)),
            "too close to the deadline"
        );
        record(&model, 256, INLINE_MAX + Duration::from_micros(1));
        assert!(!inline(&model, 256, LONG), "its last run was slow");
        let other = self::model();
        assert!(!inline(&other, 256, LONG), "another model is not this one");
    }
}
