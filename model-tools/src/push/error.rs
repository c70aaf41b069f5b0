//! Why a push failed: what the agent answered, in words that say what to do next.

use std::path::PathBuf;

use super::token::{TokenSource, TOKEN_ENV};

/// Why a model could not be prepared for upload (before any agent is contacted).
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The model file could not be read.
    #[error("cannot read the model `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an ONNX model the agent could load.
    #[error("`{path}` is not a model an agent would accept")]
    NotAModel {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: inference::Error,
    },
    /// The serving config is not a JSON object.
    #[error("the model config must be a JSON object such as {{\"backend\": \"auto\"}}: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// Version 0 was asked for.
    #[error("versions start at 1")]
    VersionZero,
}

/// Why one agent did not take the model. Each message says what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PushError {
    /// The agent's URL is unusable.
    #[error("invalid agent URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why.
        reason: String,
    },
    /// `401`: no token, or one the agent does not know.
    #[error("{}", unauthorized(.token.as_ref(), .message))]
    Unauthorized {
        /// Where the token came from; `None` when none was sent.
        token: Option<TokenSource>,
        /// The agent's message.
        message: String,
    },
    /// `403`: the token is known but lacks the `admin` role.
    #[error(
        "the agent knows the token from {} but it may not push (403: {message}); pushing needs \
         a token with the `admin` role",
        .token.as_ref().map_or_else(|| "nowhere".to_owned(), ToString::to_string)
    )]
    Forbidden {
        /// Where the token came from.
        token: Option<TokenSource>,
        /// The agent's message.
        message: String,
    },
    /// `409`: the version is already stored (versions are immutable).
    #[error("{}", version_exists(.name, *.version, *.latest, *.same_bytes, .message))]
    VersionExists {
        /// The model.
        name: String,
        /// The version pushed.
        version: u64,
        /// The highest version the agent stores, if it could be read.
        latest: Option<u64>,
        /// Whether the stored version holds the same bytes, if that could be read.
        same_bytes: Option<bool>,
        /// The agent's message.
        message: String,
    },
    /// `413`: the upload is over the agent's limit.
    #[error("{}", too_large(*.size, *.limit, .key.as_deref(), .message))]
    TooLarge {
        /// The model's size in bytes.
        size: u64,
        /// The agent's limit in bytes, when it said.
        limit: Option<u64>,
        /// The agent's configuration key for the limit, when it said.
        key: Option<String>,
        /// The agent's message.
        message: String,
    },
    /// Another `4xx`: the agent refused the upload (a model it cannot load, a bad config, a
    /// sha256 mismatch...). Never retried.
    #[error("the agent refused the upload ({status}: {message})")]
    Refused {
        /// The status.
        status: u16,
        /// The agent's message.
        message: String,
    },
    /// A `5xx` on every attempt.
    #[error("the agent failed ({status}: {message}) on all {attempts} attempt(s)")]
    Server {
        /// The last status.
        status: u16,
        /// The agent's last message.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The agent could not be reached, or the connection broke, on every attempt.
    #[error("could not reach the agent on any of {attempts} attempt(s): {reason}")]
    Transport {
        /// The last error, with its causes.
        reason: String,
        /// Attempts made.
        attempts: u32,
    },
}

impl PushError {
    /// The HTTP status the agent answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized { .. } => Some(401),
            Self::Forbidden { .. } => Some(403),
            Self::VersionExists { .. } => Some(409),
            Self::TooLarge { .. } => Some(413),
            Self::Refused { status, .. } | Self::Server { status, .. } => Some(*status),
            Self::InvalidUrl { .. } | Self::Transport { .. } => None,
        }
    }
}

fn unauthorized(token: Option<&TokenSource>, message: &str) -> String {
    match token {
        None => format!(
            "the agent needs a token and none was sent (401: {message}): set {TOKEN_ENV} or \
             pass --token-file with a token of the `admin` role"
        ),
        Some(source) => format!(
            "the agent does not know the token from {source} (401: {message}): check that it \
             is one of the agent's [[auth.tokens]] (stored there as a sha256; `edge-agent \
             hash-token` makes one)"
        ),
    }
}

fn version_exists(
    name: &str,
    version: u64,
    latest: Option<u64>,
    same_bytes: Option<bool>,
    message: &str,
) -> String {
    let next = latest.map_or(version + 1, |l| l.max(version) + 1);
    let holds = match same_bytes {
        Some(true) => " It already holds these very bytes.",
        Some(false) => " It holds a different model.",
        None => "",
    };
    let highest = latest.map_or_else(String::new, |l| format!(" (the highest stored is {l})"));
    format!(
        "model `{name}` already has version {version} on this agent (409: {message}).{holds} \
         Versions are immutable: push with --version {next}{highest}, or delete version \
         {version} first (DELETE /v1/models/{name}/versions/{version} with an admin token; \
         an active version must be replaced or rolled back before it can be deleted)"
    )
}

fn too_large(size: u64, limit: Option<u64>, key: Option<&str>, message: &str) -> String {
    let key = key.unwrap_or("limits.max_model_bytes");
    let limit = limit.map_or_else(
        || "the agent's upload limit".to_owned(),
        |l| format!("the agent's upload limit of {l} bytes"),
    );
    format!(
        "the upload of {size} bytes is over {limit} (413: {message}): raise {key} in the \
         agent's config, or push a smaller model (e.g. `model-tools quantize dynamic`)"
    )
}

/// The limit and its key in the agent's `413` message, e.g. `the request declares a body of
/// 19920 bytes, over limits.max_model_bytes (8192 bytes)`.
pub(crate) fn parse_limit(message: &str) -> (Option<u64>, Option<String>) {
    let Some(rest) = message.split(" over ").nth(1) else {
        return (None, None);
    };
    let key = rest
        .split_whitespace()
        .next()
        .filter(|k| {
            k.contains('.')
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._".contains(c))
        })
        .map(str::to_owned);
    let limit = rest
        .split_once('(')
        .and_then(|(_, after)| after.split_once(" bytes)"))
        .and_then(|(n, _)| n.trim().parse().ok());
    (limit, key)
}

/// The agent's message in an error body: the `error` of its JSON, else the text (cut short).
pub(crate) fn message_of(status: u16, body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(text) = value.get("error").and_then(|e| e.as_str()) {
            return text.to_owned();
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return http_reason(status).to_owned();
    }
    let mut cut: String = text.chars().take(300).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

fn http_reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("no message")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_read_from_the_agents_413() {
        let msg =
            "the request declares a body of 19920 bytes, over limits.max_model_bytes (8192 bytes)";
        assert_eq!(
            parse_limit(msg),
            (Some(8192), Some("limits.max_model_bytes".to_owned()))
        );
        assert_eq!(
            parse_limit("model upload is larger than limits.max_model_bytes"),
            (None, None)
        );
        let err = PushError::TooLarge {
            size: 19920,
            limit: Some(8192),
            key: Some("limits.max_model_bytes".into()),
            message: msg.into(),
        }
        .to_string();
        assert!(
            err.starts_with(
                "the upload of 19920 bytes is over the agent's upload limit of 8192 bytes"
            ),
            "{err}"
        );
        assert!(err.contains("raise limits.max_model_bytes"), "{err}");
    }

    #[test]
    fn messages_say_what_to_do() {
        let none = PushError::Unauthorized {
            token: None,
            message: "missing bearer token".into(),
        };
        assert!(none
            .to_string()
            .contains("set EDGE_AGENT_TOKEN or pass --token-file"));
        let wrong = PushError::Unauthorized {
            token: Some(TokenSource::File("/etc/t".into())),
            message: "invalid bearer token".into(),
        };
        assert!(
            wrong.to_string().contains("the token file `/etc/t`"),
            "{wrong}"
        );
        let exists = PushError::VersionExists {
            name: "digits".into(),
            version: 2,
            latest: Some(5),
            same_bytes: Some(false),
            message: "x".into(),
        }
        .to_string();
        assert!(
            exists.contains("--version 6 (the highest stored is 5)"),
            "{exists}"
        );
        assert!(
            exists.contains("DELETE /v1/models/digits/versions/2"),
            "{exists}"
        );
    }

    #[test]
    fn error_bodies_become_messages() {
        assert_eq!(message_of(400, br#"{"error":"bad"}"#), "bad");
        assert_eq!(message_of(502, b"  upstream down \n"), "upstream down");
        assert_eq!(message_of(503, b""), "Service Unavailable");
        let long = "x".repeat(1000);
        assert_eq!(message_of(500, long.as_bytes()).chars().count(), 301);
    }
}
