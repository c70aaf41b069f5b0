//! A global budget for the memory that in-flight requests make the agent hold (decoded
//! tensors, parsed JSON), so that many large-but-valid requests at once queue briefly or get
//! 503 instead of exhausting the machine's memory.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget's unit: permits count KiB, so that a `u32` permit count covers any request.
const UNIT: usize = 1024;

/// Why a reservation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// The request alone needs more than the whole budget.
    #[error(
        "the request needs about {needed} bytes of memory to decode, more than the agent's whole \
         budget for in-flight requests (limits.max_inflight_request_bytes = {budget}); send \
         smaller batches or binary tensors"
    )]
    TooLarge {
        /// Bytes the request needs.
        needed: usize,
        /// The configured budget.
        budget: usize,
    },
    /// Other requests hold the budget and none was released in time.
    #[error(
        "the agent is holding its whole memory budget for in-flight requests \
         (limits.max_inflight_request_bytes = {budget}); retry shortly"
    )]
    Busy {
        /// The configured budget.
        budget: usize,
    },
}

/// The budget shared by every request; cheap to clone.
#[derive(Debug, Clone)]
pub struct RequestMemory {
    permits: Arc<Semaphore>,
    budget: usize,
    wait: Duration,
}

/// Memory reserved for one request; released when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
}

impl RequestMemory {
    /// A budget of `budget` bytes; a reservation waits at most `wait` for memory to free up.
    pub fn new(budget: usize, wait: Duration) -> Self {
        let units = (budget / UNIT).clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Self {
            permits: Arc::new(Semaphore::new(units)),
            budget,
            wait,
        }
    }

    /// Reserves `bytes`, waiting up to the configured time for other requests to finish.
    pub async fn reserve(&self, bytes: usize) -> Result<Reservation, MemoryError> {
        if bytes == 0 {
            return Ok(Reservation { _permit: None });
        }
        let units = bytes.div_ceil(UNIT);
        let Ok(units) = u32::try_from(units) else {
            return Err(self.too_large(bytes));
        };
        if units as usize > self.permits_total() {
            return Err(self.too_large(bytes));
        }
        let acquire = self.permits.clone().acquire_many_owned(units);
        match tokio::time::timeout(self.wait, acquire).await {
            Ok(Ok(permit)) => Ok(Reservation {
                _permit: Some(permit),
            }),
            Ok(Err(_)) | Err(_) => Err(MemoryError::Busy {
                budget: self.budget,
            }),
        }
    }

    /// Bytes not reserved right now (for metrics and tests).
    pub fn available(&self) -> usize {
        self.permits.available_permits() * UNIT
    }

    fn permits_total(&self) -> usize {
        (self.budget / UNIT).max(1)
    }

    fn too_large(&self, needed: usize) -> MemoryError {
        MemoryError::TooLarge {
            needed,
            budget: self.budget,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_refuse_when_too_large_or_busy() {
        let memory = RequestMemory::new(10 * UNIT, Duration::from_millis(20));
        assert!(matches!(
            memory.reserve(11 * UNIT).await,
            Err(MemoryError::TooLarge { .. })
        ));
        assert!(matches!(
            memory.reserve(usize::MAX).await,
            Err(MemoryError::TooLarge { .. })
        ));
        let held = memory.reserve(6 * UNIT).await.unwrap();
        assert_eq!(memory.available(), 4 * UNIT);
        assert!(matches!(
            memory.reserve(5 * UNIT).await,
            Err(MemoryError::Busy { .. })
        ));
        drop(held);
        assert_eq!(memory.available(), 10 * UNIT);
        memory.reserve(0).await.unwrap();
    }

    #[tokio::test]
    async fn a_reservation_waits_for_memory_to_be_released() {
        let memory = RequestMemory::new(10 * UNIT, Duration::from_secs(60));
        let held = memory.reserve(6 * UNIT).await.unwrap();
        let waiting = tokio::spawn({
            let memory = memory.clone();
            async move { memory.reserve(5 * UNIT).await.map(|_| ()) }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "the second reservation must wait");
        drop(held);
        waiting.await.unwrap().unwrap();
        assert_eq!(memory.available(), 10 * UNIT);
    }
}
