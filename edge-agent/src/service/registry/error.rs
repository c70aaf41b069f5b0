//! Why a registry operation failed: typed by what went wrong, naming the kind of entry.

use crate::storage::{not_found, Kind, StoreError};
#[cfg(feature = "functions")]
use functions_runtime::CompileError;

/// Why a model or function repository operation failed. The HTTP layer maps `NotFound` and
/// `NotReady` to 404, `Conflict` to 409, `Rejected` to 400 and the rest to 500.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// No such entry (`version` is `None`), or no such version of it.
    #[error("{}", not_found(*.kind, .name, *.version))]
    NotFound {
        /// What was looked for.
        kind: Kind,
        /// Its name.
        name: String,
        /// The version, when the entry exists but not the version.
        version: Option<u64>,
    },
    /// The entry exists but cannot serve: no version is active (`version` is `None`), or the
    /// version asked for (or the active one) is stored but not loaded; `reason` is why, when
    /// it failed to load.
    #[error("{kind} `{name}` has no {}{}",
        .version.map_or_else(|| "active version".to_owned(), |v| format!("ready version {v}")),
        .reason.as_ref().map_or_else(String::new, |r| format!(": {r}")))]
    NotReady {
        /// What was asked for.
        kind: Kind,
        /// Its name.
        name: String,
        /// The version that is not loaded.
        version: Option<u64>,
        /// Why it did not load, if it failed to.
        reason: Option<String>,
    },
    /// The change contradicts the current state; nothing changed.
    #[error("{}", conflict.describe(*.kind, .name))]
    Conflict {
        /// What was to change.
        kind: Kind,
        /// Its name.
        name: String,
        /// What stands in the way.
        conflict: Conflict,
    },
    /// The upload, its config or its name was refused; nothing changed.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// Storage failed.
    #[error("storage failed")]
    Storage(#[source] StoreError),
    /// The agent failed for a reason of its own (not the request's).
    #[error("{context}: {source}")]
    Internal {
        /// What the agent was doing.
        context: &'static str,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What a refused change ran into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// The entry comes from the read-only `--model-dir`.
    ReadOnly,
    /// The version is already stored.
    VersionExists(u64),
    /// Rollback has no earlier active version to go back to.
    NoEarlierVersion,
    /// The version is active, so it cannot be deleted.
    ActiveVersion(u64),
    /// A route of the function's manifest is served by another function.
    RouteTaken {
        /// The route's path prefix.
        prefix: String,
        /// The route's host, if it names one.
        host: Option<String>,
        /// The function that serves it.
        by: String,
    },
}

impl Conflict {
    /// The message, for the entry `kind` `name`.
    fn describe(&self, kind: Kind, name: &str) -> String {
        match self {
            Self::ReadOnly => {
                format!("{kind} `{name}` comes from the read-only --model-dir; change it there")
            }
            Self::VersionExists(version) => StoreError::VersionExists {
                kind,
                name: name.to_owned(),
                version: *version,
            }
            .to_string(),
            Self::NoEarlierVersion => StoreError::NoEarlierVersion {
                kind,
                name: name.to_owned(),
            }
            .to_string(),
            Self::ActiveVersion(version) => StoreError::ActiveVersion {
                kind,
                name: name.to_owned(),
                version: *version,
            }
            .to_string(),
            Self::RouteTaken { prefix, host, by } => format!(
                "route prefix `{prefix}`{} is already served by function `{by}`",
                host.as_ref()
                    .map_or_else(String::new, |h| format!(" (host `{h}`)"))
            ),
        }
    }
}

/// Why an upload (or a stored version at start-up) was refused.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// The name breaks the naming rule.
    #[error("invalid {kind} name `{name}`: use 1 to 128 letters, digits, `_`, `-` or `.`, starting with a letter or digit")]
    InvalidName {
        /// What was named.
        kind: Kind,
        /// The name.
        name: String,
    },
    /// Version 0 was asked for.
    #[error("versions start at 1")]
    VersionZero,
    /// The bytes do not hash to what the client declared.
    #[error("sha256 mismatch: the client declared {declared} but the upload hashes to {actual}; the upload is corrupted or incomplete")]
    ShaMismatch {
        /// The client's sha256.
        declared: String,
        /// The bytes' sha256.
        actual: String,
    },
    /// The serving config (a model config, a function manifest) is refused; `reason` says
    /// which field and why.
    #[error("{reason}")]
    Config {
        /// What the config is for.
        kind: Kind,
        /// Why it is refused.
        reason: String,
    },
    /// A stored config no longer parses.
    #[error("stored config of `{name}` v{version} is invalid: {source}")]
    StoredConfig {
        /// The entry.
        name: String,
        /// The version.
        version: u64,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The ONNX model does not load.
    #[error("model failed to load: {}", inference::error_chain(.0))]
    Model(#[source] inference::Error),
    /// The WebAssembly module does not compile or link.
    #[cfg(feature = "functions")]
    #[error(transparent)]
    Module(CompileError),
}

impl From<StoreError> for RepositoryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound {
                kind,
                name,
                version,
            } => Self::NotFound {
                kind,
                name,
                version,
            },
            StoreError::VersionExists {
                kind,
                name,
                version,
            } => Self::Conflict {
                kind,
                name,
                conflict: Conflict::VersionExists(version),
            },
            StoreError::NoEarlierVersion { kind, name } => Self::Conflict {
                kind,
                name,
                conflict: Conflict::NoEarlierVersion,
            },
            StoreError::ActiveVersion {
                kind,
                name,
                version,
            } => Self::Conflict {
                kind,
                name,
                conflict: Conflict::ActiveVersion(version),
            },
            other => Self::Storage(other),
        }
    }
}

/// Checks the name of a `kind` of entry: 1 to 128 of letters, digits, `_`, `-`, `.`, starting
/// with a letter or digit.
pub fn validate_name(kind: Kind, name: &str) -> Result<(), RepositoryError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Rejection::InvalidName {
            kind,
            name: name.to_owned(),
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_kind_the_entry_and_the_version() {
        let texts = [
            RepositoryError::NotFound {
                kind: Kind::Function,
                name: "f".into(),
                version: None,
            },
            RepositoryError::NotFound {
                kind: Kind::Model,
                name: "m".into(),
                version: Some(3),
            },
            RepositoryError::NotReady {
                kind: Kind::Model,
                name: "m".into(),
                version: None,
                reason: None,
            },
            RepositoryError::NotReady {
                kind: Kind::Function,
                name: "f".into(),
                version: Some(2),
                reason: None,
            },
            RepositoryError::NotReady {
                kind: Kind::Model,
                name: "m".into(),
                version: Some(1),
                reason: Some("bad bytes".into()),
            },
            RepositoryError::Conflict {
                kind: Kind::Model,
                name: "m".into(),
                conflict: Conflict::ReadOnly,
            },
            RepositoryError::Conflict {
                kind: Kind::Function,
                name: "f".into(),
                conflict: Conflict::RouteTaken {
                    prefix: "/a".into(),
                    host: Some("h".into()),
                    by: "g".into(),
                },
            },
        ]
        .map(|e| e.to_string());
        assert_eq!(
            texts,
            [
                "function `f` not found",
                "model `m` has no version 3",
                "model `m` has no active version",
                "function `f` has no ready version 2",
                "model `m` has no ready version 1: bad bytes",
                "model `m` comes from the read-only --model-dir; change it there",
                "route prefix `/a` (host `h`) is already served by function `g`",
            ]
        );
    }

    #[test]
    fn names_follow_the_rule() {
        for good in ["a", "A-1_b.c", &"x".repeat(128)] {
            assert!(validate_name(Kind::Model, good).is_ok(), "{good}");
        }
        for bad in ["", "-a", ".a", "a/b", "a b", &"x".repeat(129)] {
            let err = validate_name(Kind::Function, bad).unwrap_err();
            assert!(
                matches!(&err, RepositoryError::Rejected(Rejection::InvalidName { kind: Kind::Function, name }) if name == bad),
                "{bad}: {err:?}"
            );
        }
        assert!(validate_name(Kind::Function, "-bad")
            .unwrap_err()
            .to_string()
            .starts_with("invalid function name `-bad`"));
    }
}
