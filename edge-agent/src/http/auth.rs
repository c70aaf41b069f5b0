//! Bearer tokens with roles. Tokens are configured as SHA-256 hashes and compared in constant
//! time; a missing or unknown token is 401, a token without the role is 403.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;
use crate::config::{AuthConfig, Role};

/// The accepted tokens.
#[derive(Debug, Clone)]
pub struct Auth {
    tokens: Vec<([u8; 32], Role, String)>,
    open: bool,
}

/// Why an auth configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum BadTokenHash {
    /// The hash is not 32 bytes of hex.
    #[error(
        "token `{name}`: sha256 must be 64 hex digits (make one with `edge-agent hash-token`)"
    )]
    NotHex {
        /// The token's name.
        name: String,
    },
    /// The hash is that of a secret published in our own examples.
    #[error(
        "token `{name}`: its sha256 is the hash of `{secret}`, a secret published in an earlier \
         example config; choose a secret of your own and hash it with `edge-agent hash-token`"
    )]
    Published {
        /// The token's name.
        name: String,
        /// The published secret.
        secret: &'static str,
    },
}

/// Secrets that appeared in the example configuration we shipped: a config that still carries
/// their hash would let anyone who read the example in.
const PUBLISHED_SECRETS: &[&str] = &["test"];

/// The hex SHA-256 of a token, as the config stores it.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Auth {
    /// Builds from config; `extra` adds a generated token (admin) when the agent made one.
    pub fn new(config: &AuthConfig, extra: Option<&str>) -> Result<Self, BadTokenHash> {
        let mut tokens = Vec::new();
        for t in &config.tokens {
            let bytes = hex::decode(&t.sha256)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok());
            let bytes = bytes.ok_or_else(|| BadTokenHash::NotHex {
                name: t.name.clone(),
            })?;
            if let Some(secret) = PUBLISHED_SECRETS
                .iter()
                .find(|s| <[u8; 32]>::from(Sha256::digest(s.as_bytes())) == bytes)
            {
                return Err(BadTokenHash::Published {
                    name: t.name.clone(),
                    secret,
                });
            }
            tokens.push((bytes, t.role, t.name.clone()));
        }
        if let Some(token) = extra {
            tokens.push((
                Sha256::digest(token.as_bytes()).into(),
                Role::Admin,
                "generated".to_owned(),
            ));
        }
        Ok(Self {
            tokens,
            open: config.dev_open,
        })
    }

    /// The role a bearer token grants, if it is known. Every stored hash is compared, in
    /// constant time, whatever matches.
    fn role_of(&self, token: &str) -> Option<(Role, &str)> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (hash, role, name) in &self.tokens {
            if bool::from(hash.ct_eq(&digest)) {
                found = Some((*role, name.as_str()));
            }
        }
        found
    }

    /// Whether the request's bearer token grants `needed`.
    pub(crate) fn check(
        &self,
        headers: &axum::http::HeaderMap,
        needed: Role,
    ) -> Result<(), ApiError> {
        if self.open {
            return Ok(());
        }
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "missing bearer token: send `Authorization: Bearer <token>`",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let Some((role, name)) = token.and_then(|t| self.role_of(t)) else {
            return Err(ApiError::unauthorized("invalid bearer token"));
        };
        if role == needed || role == Role::Admin {
            tracing::debug!(token = name, "authorized");
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("token `{name}` has the `infer` role; this route needs `admin`"),
            ))
        }
    }
}

/// Middleware: the route needs the `infer` role (or `admin`).
pub async fn require_infer(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match state.auth.check(request.headers(), Role::Infer) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// Middleware: the route needs the `admin` role.
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match state.auth.check(request.headers(), Role::Admin) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TokenConfig;

    #[test]
    fn roles_come_from_hashed_tokens() {
        let config = AuthConfig {
            tokens: vec![TokenConfig {
                name: "app".into(),
                role: Role::Infer,
                sha256: hash_token("s3cret"),
            }],
            dev_open: false,
        };
        let auth = Auth::new(&config, Some("gen")).unwrap();
        assert_eq!(auth.role_of("s3cret").map(|r| r.0), Some(Role::Infer));
        assert_eq!(auth.role_of("gen").map(|r| r.0), Some(Role::Admin));
        assert!(auth.role_of("nope").is_none());
        let bad = AuthConfig {
            tokens: vec![TokenConfig {
                name: "x".into(),
                role: Role::Admin,
                sha256: "abc".into(),
            }],
            dev_open: false,
        };
        assert!(Auth::new(&bad, None).is_err());
    }

    /// The example config once shipped an active admin token whose secret was `test`; an
    /// agent started from a copy of it must refuse to start rather than let anyone in.
    #[test]
    fn the_hash_of_the_formerly_published_example_secret_is_refused() {
        let config = AuthConfig {
            tokens: vec![TokenConfig {
                name: "ci".into(),
                role: Role::Admin,
                sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            }],
            dev_open: false,
        };
        let err = Auth::new(&config, None).unwrap_err().to_string();
        assert!(
            err.contains("token `ci`") && err.contains("`test`") && err.contains("hash-token"),
            "{err}"
        );
    }
}
