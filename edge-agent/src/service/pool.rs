//! The bounded pool that runs inference off the async reactor.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// At most `threads` computations at once, across all models, each on a blocking thread.
#[derive(Debug, Clone)]
pub struct InferencePool {
    slots: Arc<Semaphore>,
}

impl InferencePool {
    /// A pool of `threads` (at least 1).
    pub fn new(threads: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(threads.max(1))),
        }
    }

    /// Runs `f` on a blocking thread once a slot is free.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        match tokio::task::spawn_blocking(f).await {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}
