//! Pushing a model to edge agents through their model repository API
//! (`PUT /v1/models/{name}/versions/{version}`, see `docs/edge-agent.md`).
//!
//! One [`Upload`] (the ONNX bytes, checked and hashed here; an optional serving config) goes to
//! every agent of a list, a few at a time. Each upload is a multipart body with `config`,
//! `sha256` (the agent refuses bytes that do not hash to it) and `model` parts. Connection
//! errors and `5xx` answers are retried with exponential backoff ([`RetryPolicy`]); `4xx`
//! answers never are, and each becomes a [`PushError`] that says what to do. A retry that finds
//! the version already stored with the same bytes (an earlier attempt got through, its answer
//! did not) counts as success.
//!
//! ```no_run
//! use model_tools::push::{push_to_agents, PushOptions, Token, Upload};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let upload = Upload::from_file("models/digits_mlp.onnx".as_ref(), "digits", 3)?;
//! let options = PushOptions { token: Token::from_env()?, ..PushOptions::default() };
//! let agents = vec!["http://10.0.0.7:8080".to_owned()];
//! for report in push_to_agents(&agents, &upload, &options, |_event| {}).await {
//!     println!("{}: {:?}", report.agent, report.result.map(|p| p.active_version));
//! }
//! # Ok(())
//! # }
//! ```

mod body;
mod error;
mod token;
mod url;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use inference::Model;
use reqwest::multipart::{Form, Part};
use reqwest::{Client, Url};

pub use error::{PushError, UploadError};
pub use token::{Token, TokenError, TokenSource, TOKEN_ENV};

use body::ProgressBody;
use url::{base_url, endpoint, push_url};

/// A model ready to push: its bytes (checked to be an ONNX model), their sha256, and what to
/// call it.
#[derive(Debug, Clone)]
pub struct Upload {
    name: String,
    version: u64,
    bytes: Bytes,
    sha256: String,
    config: Option<serde_json::Value>,
    activate: bool,
}

impl Upload {
    /// Reads a model file and checks that it is an ONNX model (no backend loads it here; the
    /// agent does). It will be pushed as `name` version `version` and activated.
    pub fn from_file(path: &Path, name: &str, version: u64) -> Result<Self, UploadError> {
        let bytes = std::fs::read(path).map_err(|source| UploadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(bytes, name, version).map_err(|e| match e {
            UploadError::NotAModel { source, .. } => UploadError::NotAModel {
                path: path.to_path_buf(),
                source,
            },
            other => other,
        })
    }

    /// As [`Upload::from_file`], from bytes in memory.
    pub fn from_bytes(bytes: Vec<u8>, name: &str, version: u64) -> Result<Self, UploadError> {
        if version == 0 {
            return Err(UploadError::VersionZero);
        }
        let meta = Model::inspect(&bytes).map_err(|source| UploadError::NotAModel {
            path: "<memory>".into(),
            source,
        })?;
        Ok(Self {
            name: name.to_owned(),
            version,
            bytes: Bytes::from(bytes),
            sha256: meta.sha256,
            config: None,
            activate: true,
        })
    }

    /// With a serving config (the agent's `ModelConfig`, e.g. `{"backend": "auto"}`), which
    /// must be a JSON object; the agent checks its fields.
    pub fn with_config(mut self, config: serde_json::Value) -> Result<Self, UploadError> {
        if !config.is_object() {
            return Err(UploadError::Config {
                reason: format!("got {config}"),
            });
        }
        self.config = Some(config);
        Ok(self)
    }

    /// Whether the new version becomes the active one (default `true`). The agent activates
    /// the first version of a model whatever this says.
    pub fn with_activate(mut self, activate: bool) -> Self {
        self.activate = activate;
        self
    }

    /// The model name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Lowercase hex sha256 of the bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether there are no bytes (never, for a checked model).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// How often and how patiently to retry connection errors and `5xx` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `retries + 1` attempts at most).
    pub retries: u32,
    /// The wait before the first retry; it doubles before each next one.
    pub initial_backoff: Duration,
    /// The longest wait between attempts (also caps an agent's `Retry-After`).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 4 retries, waiting 0.5, 1, 2 and 4 s (at most 8 s).
    fn default() -> Self {
        Self {
            retries: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first).
    pub fn delay(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(30);
        self.initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }
}

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The bearer token (an `admin` one); `None` sends no `Authorization`.
    pub token: Option<Token>,
    /// Retries of connection errors and `5xx` answers.
    pub retry: RetryPolicy,
    /// The longest wait for a connection.
    pub connect_timeout: Duration,
    /// The longest one attempt may take, upload and the agent's load of the model included.
    pub timeout: Duration,
    /// Agents pushed to at once.
    pub parallel: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        Self {
            token: None,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(600),
            parallel: 4,
        }
    }
}

/// What happens during a push, for progress bars and logs. `agent` is the index in the list
/// given to [`push_to_agents`].
#[derive(Debug, Clone, PartialEq)]
pub enum PushEvent {
    /// An attempt starts (1 for the first).
    Attempt {
        /// The agent.
        agent: usize,
        /// The attempt.
        attempt: u32,
    },
    /// Bytes of the model handed to the connection so far in this attempt.
    Sent {
        /// The agent.
        agent: usize,
        /// Bytes so far.
        bytes: u64,
        /// Bytes in all.
        total: u64,
    },
    /// An attempt failed in a way worth retrying; the next starts after `delay`.
    Retrying {
        /// The agent.
        agent: usize,
        /// The attempt that failed.
        attempt: u32,
        /// The wait before the next.
        delay: Duration,
        /// What went wrong.
        reason: String,
    },
    /// The agent's push is over.
    Finished {
        /// The agent.
        agent: usize,
        /// Whether it took the model.
        ok: bool,
    },
}

/// What an agent answered to a successful push.
#[derive(Debug, Clone, PartialEq)]
pub struct Pushed {
    /// The status (`201`; `409` when a retry found the version stored by an earlier attempt).
    pub status: u16,
    /// The model's active version after the push.
    pub active_version: Option<u64>,
    /// Whether a retry found the version already stored, with these bytes, by an earlier
    /// attempt whose answer was lost.
    pub recovered: bool,
    /// The agent's answer: the model's summary (`/v1/models/{name}`).
    pub summary: serde_json::Value,
}

/// One agent's outcome.
#[derive(Debug, Clone)]
pub struct AgentReport {
    /// The agent's URL, as given.
    pub agent: String,
    /// The answer, or why it failed.
    pub result: Result<Pushed, PushError>,
    /// Attempts made.
    pub attempts: u32,
    /// Time from the first attempt to the outcome, waits included.
    pub elapsed: Duration,
}

impl AgentReport {
    /// The last HTTP status, if the agent answered.
    pub fn status(&self) -> Option<u16> {
        match &self.result {
            Ok(pushed) => Some(pushed.status),
            Err(e) => e.status(),
        }
    }
}

type Events = Arc<dyn Fn(PushEvent) + Send + Sync>;

/// Pushes `upload` to every agent (`http://host:port`, a bare `host:port` meaning http), at
/// most `options.parallel` at once, and returns one report per agent, in order. Never fails
/// as a whole: each agent's failure is in its report. `events` is called from the tasks doing
/// the work. Must run inside a tokio runtime.
pub async fn push_to_agents(
    agents: &[String],
    upload: &Upload,
    options: &PushOptions,
    events: impl Fn(PushEvent) + Send + Sync + 'static,
) -> Vec<AgentReport> {
    let client = match Client::builder()
        .connect_timeout(options.connect_timeout)
        .timeout(options.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            let reason = inference::error_chain(&e);
            return agents
                .iter()
                .map(|agent| AgentReport {
                    agent: agent.clone(),
                    result: Err(PushError::Transport {
                        reason: format!("cannot build an HTTP client: {reason}"),
                        attempts: 0,
                    }),
                    attempts: 0,
                    elapsed: Duration::ZERO,
                })
                .collect();
        }
    };
    let events: Events = Arc::new(events);
    let permits = Arc::new(tokio::sync::Semaphore::new(options.parallel.max(1)));
    let job = Arc::new((upload.clone(), options.clone()));
    let tasks: Vec<_> = agents
        .iter()
        .enumerate()
        .map(|(index, agent)| {
            let (client, events, permits, job) =
                (client.clone(), events.clone(), permits.clone(), job.clone());
            let agent = agent.clone();
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                let (upload, options) = &*job;
                let report = push_one(&client, index, &agent, upload, options, &events).await;
                events(PushEvent::Finished {
                    agent: index,
                    ok: report.result.is_ok(),
                });
                report
            })
        })
        .collect();
    let mut reports = Vec::with_capacity(agents.len());
    for (task, agent) in tasks.into_iter().zip(agents) {
        reports.push(task.await.unwrap_or_else(|e| AgentReport {
            agent: agent.clone(),
            result: Err(PushError::Transport {
                reason: format!("the push task failed: {e}"),
                attempts: 0,
            }),
            attempts: 0,
            elapsed: Duration::ZERO,
        }));
    }
    reports
}

/// The agent's answer to one attempt.
struct Answer {
    status: u16,
    body: Bytes,
    retry_after: Option<Duration>,
}

/// Pushes to one agent, retrying what is worth retrying.
async fn push_one(
    client: &Client,
    index: usize,
    agent: &str,
    upload: &Upload,
    options: &PushOptions,
    events: &Events,
) -> AgentReport {
    let started = Instant::now();
    let report = |result, attempts| AgentReport {
        agent: agent.to_owned(),
        result,
        attempts,
        elapsed: started.elapsed(),
    };
    let (base, url) = match base_url(agent).and_then(|base| {
        let url = push_url(&base, upload)?;
        Ok((base, url))
    }) {
        Ok(urls) => urls,
        Err(reason) => {
            let err = PushError::InvalidUrl {
                url: agent.to_owned(),
                reason,
            };
            return report(Err(err), 0);
        }
    };
    let token = options.token.as_ref();
    let mut attempt = 0;
    loop {
        attempt += 1;
        events(PushEvent::Attempt {
            agent: index,
            attempt,
        });
        let (failure, retry_after) = match send(client, index, &url, upload, token, events).await {
            Ok(answer) if (200..300).contains(&answer.status) => {
                let summary = serde_json::from_slice(&answer.body).unwrap_or_default();
                return report(Ok(pushed(answer.status, summary, false)), attempt);
            }
            Ok(answer) if answer.status >= 500 => {
                let message = error::message_of(answer.status, &answer.body);
                let failure = PushError::Server {
                    status: answer.status,
                    message,
                    attempts: attempt,
                };
                (failure, answer.retry_after)
            }
            Ok(answer) => {
                let stored = if answer.status == 409 {
                    stored_version(client, &base, upload, token).await
                } else {
                    None
                };
                if attempt > 1 && stored.as_ref().is_some_and(|s| s.same_bytes == Some(true)) {
                    tracing::info!(
                        agent,
                        attempt,
                        "the version is stored with these bytes: an earlier attempt got through"
                    );
                    let summary = stored.map(|s| s.summary).unwrap_or_default();
                    return report(Ok(pushed(answer.status, summary, true)), attempt);
                }
                let err = refusal(answer.status, &answer.body, upload, token, stored);
                return report(Err(err), attempt);
            }
            Err(e) => {
                let failure = PushError::Transport {
                    reason: inference::error_chain(&e),
                    attempts: attempt,
                };
                (failure, None)
            }
        };
        if attempt > options.retry.retries {
            return report(Err(failure), attempt);
        }
        let delay = retry_after
            .unwrap_or_else(|| options.retry.delay(attempt))
            .min(options.retry.max_backoff);
        tracing::debug!(agent, attempt, ?delay, error = %failure, "retrying");
        events(PushEvent::Retrying {
            agent: index,
            attempt,
            delay,
            reason: short_reason(&failure),
        });
        tokio::time::sleep(delay).await;
    }
}

/// One attempt: the multipart upload and the whole answer.
async fn send(
    client: &Client,
    index: usize,
    url: &Url,
    upload: &Upload,
    token: Option<&Token>,
    events: &Events,
) -> Result<Answer, reqwest::Error> {
    let total = upload.len();
    let on_sent = {
        let events = events.clone();
        Arc::new(move |bytes: u64| {
            events(PushEvent::Sent {
                agent: index,
                bytes,
                total,
            })
        })
    };
    let model = reqwest::Body::wrap(ProgressBody::new(upload.bytes.clone(), on_sent));
    let mut form = Form::new();
    // The small parts first: an agent that refuses the config answers before the model is sent.
    if let Some(config) = &upload.config {
        form = form.text("config", config.to_string());
    }
    form = form.text("sha256", upload.sha256.clone()).part(
        "model",
        Part::stream_with_length(model, total).file_name("model.onnx"),
    );
    let mut request = client.put(url.clone()).multipart(form);
    if let Some(token) = token {
        request = request.bearer_auth(token.secret());
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.bytes().await?;
    Ok(Answer {
        status,
        body,
        retry_after,
    })
}

fn pushed(status: u16, summary: serde_json::Value, recovered: bool) -> Pushed {
    Pushed {
        status,
        active_version: summary.get("active_version").and_then(|v| v.as_u64()),
        recovered,
        summary,
    }
}

/// What the agent stores under the upload's name, read after a `409`.
struct Stored {
    latest: Option<u64>,
    same_bytes: Option<bool>,
    summary: serde_json::Value,
}

/// Best effort: `GET /v1/models/{name}`, for the highest version and whether the pushed one
/// holds the same bytes.
async fn stored_version(
    client: &Client,
    base: &Url,
    upload: &Upload,
    token: Option<&Token>,
) -> Option<Stored> {
    let url = endpoint(base, &["v1", "models", upload.name.as_str()]).ok()?;
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token.secret());
    }
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let summary: serde_json::Value = response.json().await.ok()?;
    let versions = summary.get("versions")?.as_array()?;
    let latest = versions
        .iter()
        .filter_map(|v| v.get("version")?.as_u64())
        .max();
    let same_bytes = versions
        .iter()
        .find(|v| v.get("version").and_then(|n| n.as_u64()) == Some(upload.version))
        .and_then(|v| v.get("sha256")?.as_str())
        .map(|sha| sha.eq_ignore_ascii_case(&upload.sha256));
    Some(Stored {
        latest,
        same_bytes,
        summary,
    })
}

/// The error for a `4xx` (or any other status that is neither success nor `5xx`).
fn refusal(
    status: u16,
    body: &[u8],
    upload: &Upload,
    token: Option<&Token>,
    stored: Option<Stored>,
) -> PushError {
    let message = error::message_of(status, body);
    let token = token.map(|t| t.source().clone());
    match status {
        401 => PushError::Unauthorized { token, message },
        403 => PushError::Forbidden { token, message },
        409 => PushError::VersionExists {
            name: upload.name.clone(),
            version: upload.version,
            latest: stored.as_ref().and_then(|s| s.latest),
            same_bytes: stored.and_then(|s| s.same_bytes),
            message,
        },
        413 => {
            let (limit, key) = error::parse_limit(&message);
            PushError::TooLarge {
                size: upload.len(),
                limit,
                key,
                message,
            }
        }
        _ => PushError::Refused { status, message },
    }
}

/// A one-line reason for a retry notice.
fn short_reason(failure: &PushError) -> String {
    match failure {
        PushError::Server {
            status, message, ..
        } => format!("{status}: {message}"),
        PushError::Transport { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let delays: Vec<u64> = (1..=6)
            .map(|n| policy.delay(n).as_millis() as u64)
            .collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 8000]);
        assert_eq!(policy.delay(u32::MAX), Duration::from_secs(8));
    }

    #[test]
    fn uploads_are_checked_before_any_agent_is_contacted() {
        let bytes = inference::test_support::model_bytes("digits_mlp.onnx");
        let upload = Upload::from_bytes(bytes.clone(), "m", 1).unwrap();
        assert_eq!(upload.sha256().len(), 64);
        assert_eq!(upload.len(), bytes.len() as u64);
        assert!(matches!(
            Upload::from_bytes(bytes.clone(), "m", 0),
            Err(UploadError::VersionZero)
        ));
        let err = Upload::from_bytes(b"not onnx".to_vec(), "m", 1).unwrap_err();
        assert!(matches!(err, UploadError::NotAModel { .. }), "{err}");
        let err = upload
            .with_config(serde_json::json!([1]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("JSON object"), "{err}");
    }
}
