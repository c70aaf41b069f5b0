//! The bearer token a push sends, and where it came from (so that a `401` can say where to look).

use std::fmt;
use std::path::{Path, PathBuf};

/// The environment variable a push reads its token from when no token file is given.
pub const TOKEN_ENV: &str = "EDGE_AGENT_TOKEN";

/// Where a [`Token`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// An environment variable (normally [`TOKEN_ENV`]).
    Env(String),
    /// A file (`--token-file`).
    File(PathBuf),
    /// Handed over by a program calling the library.
    Given,
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(var) => write!(f, "${var}"),
            Self::File(path) => write!(f, "the token file `{}`", path.display()),
            Self::Given => f.write_str("the caller"),
        }
    }
}

/// A bearer token. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct Token {
    secret: String,
    source: TokenSource,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("secret", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

/// Why a token could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file could not be read.
    #[error("cannot read the token file `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The token is empty.
    #[error("{origin} is empty: put the agent's admin token in it")]
    Empty {
        /// Where it came from.
        origin: TokenSource,
    },
    /// The token cannot be sent in an HTTP header.
    #[error(
        "{origin} holds characters that cannot be sent in an HTTP header (only visible ASCII \
         may be): is it the token itself, on one line?"
    )]
    NotHeaderSafe {
        /// Where it came from.
        origin: TokenSource,
    },
}

impl Token {
    /// A token with its source; white space around it is trimmed.
    pub fn new(secret: &str, source: TokenSource) -> Result<Self, TokenError> {
        let secret = secret.trim();
        if secret.is_empty() {
            return Err(TokenError::Empty { origin: source });
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err(TokenError::NotHeaderSafe { origin: source });
        }
        Ok(Self {
            secret: secret.to_owned(),
            source,
        })
    }

    /// The token in [`TOKEN_ENV`], or `None` when the variable is unset.
    pub fn from_env() -> Result<Option<Self>, TokenError> {
        Self::from_env_var(TOKEN_ENV)
    }

    /// The token in the environment variable `var`, or `None` when it is unset.
    pub fn from_env_var(var: &str) -> Result<Option<Self>, TokenError> {
        match std::env::var(var) {
            Ok(value) => Self::new(&value, TokenSource::Env(var.to_owned())).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(TokenError::NotHeaderSafe {
                origin: TokenSource::Env(var.to_owned()),
            }),
        }
    }

    /// The token in a file (its only content, surrounding white space ignored). Warns when
    /// others than its owner may read the file.
    pub fn from_file(path: &Path) -> Result<Self, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        warn_if_shared(path);
        Self::new(&text, TokenSource::File(path.to_path_buf()))
    }

    /// Where it came from.
    pub fn source(&self) -> &TokenSource {
        &self.source
    }

    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }
}

#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "the token file may be read by other users; `chmod 600` it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_trimmed_checked_and_never_shown() {
        let token = Token::new("  s3cret\n", TokenSource::Given).unwrap();
        assert_eq!(token.secret(), "s3cret");
        assert!(!format!("{token:?}").contains("s3cret"));
        let err = Token::new(" \n", TokenSource::Env(TOKEN_ENV.into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "$EDGE_AGENT_TOKEN is empty: put the agent's admin token in it"
        );
        let err = Token::new("a\nb", TokenSource::File("t.txt".into())).unwrap_err();
        assert!(
            err.to_string().starts_with("the token file `t.txt` holds"),
            "{err}"
        );
    }

    #[test]
    fn a_token_file_is_read_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc123\n").unwrap();
        let token = Token::from_file(&path).unwrap();
        assert_eq!(token.secret(), "abc123");
        assert_eq!(token.source(), &TokenSource::File(path.clone()));
        let missing = dir.path().join("nope");
        let err = Token::from_file(&missing).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
