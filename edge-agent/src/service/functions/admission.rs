//! Admission of a call to a function version: one of its manifest's `max_instances` slots
//! at once, or a place in its bounded wait queue (`max_queue`) until a slot frees, like a
//! model's `max_concurrency` and `max_queue`. Past the queue the call is refused (503 busy);
//! a queued call waits at most its deadline (`timeout_ms`), and a call whose client goes
//! away leaves the queue (its future, and with it its place, is dropped).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use functions_runtime::InvokeError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;
use crate::service::manifest::FunctionManifest;

/// The instance slots and the wait queue of one function version.
#[derive(Debug)]
pub(crate) struct Admission {
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
    max_instances: usize,
    max_queue: usize,
}

/// A place in the queue, given back when dropped (however the call ends).
struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    /// Slots and queue sized by the manifest (already validated against the agent's bounds).
    pub(crate) fn new(manifest: &FunctionManifest) -> Self {
        let max_instances = manifest.max_instances.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            slots: Arc::new(Semaphore::new(max_instances)),
            queued: AtomicUsize::new(0),
            max_instances,
            max_queue: manifest.max_queue,
        }
    }

    /// Calls waiting for a slot now.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Takes a free slot, or waits for one in the queue for at most `timeout_ms`. A full
    /// queue is [`InvokeError::Busy`] naming `max_queue`; a wait past the deadline is
    /// [`InvokeError::Timeout`]. The slot is held until the returned permit drops.
    pub(crate) async fn admit(
        &self,
        function: &str,
        timeout_ms: u64,
        metrics: &Metrics,
    ) -> Result<OwnedSemaphorePermit, InvokeError> {
        // The semaphore is fair: while calls wait, a freed slot goes to the first of them and
        // this fails, so a newcomer does not overtake the queue.
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let before = self.queued.fetch_add(1, Ordering::AcqRel);
        let _place = Place(&self.queued);
        if before >= self.max_queue {
            return Err(InvokeError::Busy {
                function: function.to_owned(),
                reason: format!(
                    "all {} instances of its manifest's `max_instances` are running and its \
                     `max_queue` of {} waiting calls is full",
                    self.max_instances, self.max_queue
                ),
            });
        }
        let _gauge = metrics.queued_function_call(function);
        match tokio::time::timeout(
            Duration::from_millis(timeout_ms),
            self.slots.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(InvokeError::Host {
                function: function.to_owned(),
                reason: "its instance slots were closed".into(),
            }),
            Err(_elapsed) => Err(InvokeError::Timeout {
                function: function.to_owned(),
                timeout_ms,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_instances: usize, max_queue: usize) -> Admission {
        Admission::new(&FunctionManifest {
            max_instances,
            max_queue,
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn a_call_queues_for_a_slot_and_past_the_queue_is_busy_naming_max_queue() {
        let metrics = Metrics::new();
        let a = Arc::new(admission(1, 1));
        let running = a.admit("f", 60_000, &metrics).await.unwrap();
        let waiter = {
            let (a, metrics) = (a.clone(), metrics.clone());
            tokio::spawn(async move { a.admit("f", 60_000, &metrics).await.map(drop) })
        };
        while a.queued() == 0 {
            tokio::task::yield_now().await;
        }
        let err = a.admit("f", 60_000, &metrics).await.unwrap_err();
        assert!(
            matches!(&err, InvokeError::Busy { reason, .. } if reason.contains("`max_queue` of 1")),
            "{err}"
        );
        assert_eq!(a.queued(), 1, "a refused call holds no place");
        drop(running);
        waiter.await.unwrap().unwrap();
        assert_eq!(a.queued(), 0);
    }

    #[tokio::test]
    async fn a_dropped_or_late_waiter_gives_its_place_back() {
        let metrics = Metrics::new();
        let a = Arc::new(admission(1, 4));
        let _running = a.admit("f", 60_000, &metrics).await.unwrap();
        let waiter = {
            let (a, metrics) = (a.clone(), metrics.clone());
            tokio::spawn(async move { a.admit("f", 60_000, &metrics).await.map(drop) })
        };
        while a.queued() == 0 {
            tokio::task::yield_now().await;
        }
        waiter.abort();
        assert!(waiter.await.unwrap_err().is_cancelled());
        assert_eq!(a.queued(), 0);
        assert!(metrics
            .render()
            .contains("edge_agent_function_queued_calls{function=\"f\"} 0"));

        let err = a.admit("f", 1, &metrics).await.unwrap_err();
        assert!(
            matches!(err, InvokeError::Timeout { timeout_ms: 1, .. }),
            "{err}"
        );
        assert_eq!(a.queued(), 0);
    }

    #[tokio::test]
    async fn no_queue_refuses_at_once() {
        let metrics = Metrics::new();
        let a = admission(1, 0);
        let _running = a.admit("f", 60_000, &metrics).await.unwrap();
        let err = a.admit("f", 60_000, &metrics).await.unwrap_err();
        assert!(matches!(err, InvokeError::Busy { .. }), "{err}");
    }
}
