//! Calling a function: admission against `max_instances`, a fresh instance on a blocking
//! thread under the manifest's limits, then the CGI response; with its metrics and log line.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// Runs the function on one request: admission (queued past `max_instances`), a fresh
    /// instance on a blocking thread, then the CGI response.
    pub async fn call(
        &self,
        function: Arc<LoadedFunction>,
        request: CgiRequest,
        body: Vec<u8>,
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
        body: Vec<u8>,
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
        let runtime = self.registry.hooks().runtime.clone();
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
        let name = function.name.clone();
        let output = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            runtime.invoke(&function.pre, invocation)
        })
        .await
        .map_err(|e| InvokeError::Host {
            function: name,
            reason: format!("the call's thread failed: {e}"),
        })??;
        let response = wagi::parse_output(&output.stdout)?;
        Ok(FunctionResponse {
            response,
            instantiate: output.instantiate,
            latency: started.elapsed(),
        })
    }
}
