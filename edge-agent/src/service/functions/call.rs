//! Calling a function: admission against `max_instances`, a fresh instance run as part of the
//! request's task under the manifest's limits (the guest yields at every epoch tick, so it
//! never holds a worker thread for long), then the CGI response; with its metrics and log line.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;

use functions_runtime::wagi::{self, CgiRequest, CgiResponse};
use functions_runtime::{GuestLimits, Invocation, InvokeError};

use super::{Functions, LoadedFunction};

/// What one call produced, with its timings.
#[derive(Debug)]
pub struct FunctionResponse {
    /// The guest's response.
    pub response: CgiResponse,
    /// Time to instantiate.
    pub instantiate: Duration,
    /// Whole time of the call.
    pub latency: Duration,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The guest failed or was stopped.
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    /// The guest's stdout is not a CGI response.
    #[error(transparent)]
    BadOutput(#[from] wagi::BadOutput),
}

impl Functions {
    /// Runs the function on one request: admission (queued past `max_instances`, 503 past
    /// `max_queue`), a fresh instance run on this task, then the CGI response.
    pub async fn call(
        &self,
        function: Arc<LoadedFunction>,
        request: CgiRequest,
        body: Bytes,
    ) -> Result<FunctionResponse, CallError> {
        let started = Instant::now();
        let name = function.name.clone();
        let outcome = self.call_inner(function, request, body, started).await;
        let (label, instantiate) = match &outcome {
            Ok(r) => ("ok", Some(r.instantiate)),
            Err(CallError::BadOutput(_)) => ("bad_output", None),
            Err(CallError::Invoke(e)) => (
                match e {
                    InvokeError::Timeout { .. } => "timeout",
                    InvokeError::OutOfFuel { .. } => "fuel",
                    InvokeError::Memory { .. } => "memory",
                    InvokeError::Trap { .. } => "trap",
                    InvokeError::Busy { .. } => "busy",
                    InvokeError::OutputTooLarge { .. } => "output_too_large",
                    InvokeError::Host { .. } => "error",
                },
                None,
            ),
        };
        self.registry.hooks().metrics.observe_function(
            &name,
            label,
            started.elapsed(),
            instantiate,
        );
        // A failure is logged once, by the HTTP edge's error middleware (http/error.rs).
        if let Ok(r) = &outcome {
            tracing::info!(function = %name, status = r.response.status, instantiate_us = r.instantiate.as_micros() as u64, elapsed_us = started.elapsed().as_micros() as u64, "function called")
        }
        outcome
    }

    async fn call_inner(
        &self,
        function: Arc<LoadedFunction>,
        request: CgiRequest,
        body: Bytes,
        started: Instant,
    ) -> Result<FunctionResponse, CallError> {
        let permit = function
            .slots
            .admit(
                &function.name,
                function.manifest.timeout_ms,
                &self.registry.hooks().metrics,
            )
            .await?;
        let runtime = &self.registry.hooks().runtime;
        let invocation = Invocation {
            function: function.name.clone(),
            args: vec![function.name.clone()],
            env: request.env(&function.env),
            stdin: body,
            limits: GuestLimits {
                memory_mib: function.manifest.memory_mib,
                timeout_ms: function.manifest.timeout_ms,
                fuel: function.manifest.fuel,
            },
            grants: function.grants.clone(),
        };
        // A panic while the guest runs (a host call gone wrong) fails this call, as it did
        // when calls ran on a blocking thread, instead of the connection's task.
        let mut run = Box::pin(runtime.call(&function.pre, invocation));
        let output = std::future::poll_fn(|cx| {
            std::panic::catch_unwind(AssertUnwindSafe(|| run.as_mut().poll(cx))).unwrap_or_else(
                |_| {
                    Poll::Ready(Err(InvokeError::Host {
                        function: function.name.clone(),
                        reason: "the call panicked".into(),
                    }))
                },
            )
        })
        .await;
        drop(run);
        drop(permit);
        let output = output?;
        let response = wagi::parse_output(&output.stdout)?;
        Ok(FunctionResponse {
            response,
            instantiate: output.instantiate,
            latency: started.elapsed(),
        })
    }
}
