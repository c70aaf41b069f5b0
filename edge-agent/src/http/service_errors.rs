//! Service errors to HTTP: the one place that decides each service error's status, and
//! whether its text may reach the caller ([`ApiError::internal`] keeps it in the log).
//!
//! Kept apart from [`super::error`] so that retyping a service's errors changes this file
//! only.

use axum::http::StatusCode;

use super::error::ApiError;
#[cfg(feature = "functions")]
use crate::service::CallError;
use crate::service::{InferError, MemoryError, RepositoryError};
#[cfg(feature = "functions")]
use functions_runtime::InvokeError;

impl From<RepositoryError> for ApiError {
    fn from(e: RepositoryError) -> Self {
        match e {
            RepositoryError::NotFound { .. } | RepositoryError::NotReady { .. } => {
                Self::not_found(e.to_string())
            }
            RepositoryError::Conflict { .. } => Self::new(StatusCode::CONFLICT, e.to_string()),
            RepositoryError::Rejected(_) => Self::bad_request(e.to_string()),
            RepositoryError::Internal { .. } | RepositoryError::Storage(_) => {
                Self::internal(inference::error_chain(&e))
            }
        }
    }
}

impl From<InferError> for ApiError {
    fn from(e: InferError) -> Self {
        match e {
            InferError::Overloaded {
                retry_after_secs, ..
            } => Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                .retry_after(retry_after_secs),
            InferError::Unloaded(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).retry_after(1)
            }
            InferError::Invalid(_) => Self::bad_request(e.to_string()),
            InferError::Failed(e) => Self::internal(inference::error_chain(&e)),
        }
    }
}

impl From<MemoryError> for ApiError {
    fn from(e: MemoryError) -> Self {
        let message = e.to_string();
        match e {
            MemoryError::TooLarge { .. } => Self::new(StatusCode::PAYLOAD_TOO_LARGE, message),
            MemoryError::Busy { .. } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, message).retry_after(1)
            }
        }
    }
}

#[cfg(feature = "functions")]
impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        let message = e.to_string();
        match e {
            CallError::BadOutput(_) | CallError::Invoke(InvokeError::OutputTooLarge { .. }) => {
                Self::new(StatusCode::BAD_GATEWAY, message)
            }
            CallError::Invoke(InvokeError::Timeout { .. }) => {
                Self::new(StatusCode::GATEWAY_TIMEOUT, message)
            }
            CallError::Invoke(InvokeError::Busy { .. }) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, message).retry_after(1)
            }
            // The guest's own fault: the text describes the caller's function (its trap, its
            // stderr, its limits), not the agent.
            CallError::Invoke(
                InvokeError::Trap { .. }
                | InvokeError::Memory { .. }
                | InvokeError::OutOfFuel { .. },
            ) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, message),
            CallError::Invoke(InvokeError::Host { .. }) => Self::internal(message),
        }
    }
}
