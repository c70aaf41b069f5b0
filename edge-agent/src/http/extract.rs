//! Extractors whose rejections are [`ApiError`]s: every refused request gets the same
//! `{"error": "..."}` body, whichever extractor refused it.
//!
//! [`Path`], [`Query`] and [`Multipart`] wrap axum's extractors of the same names; [`Version`]
//! is the `{version}` segment of a path, an integer of 1 or more on every route.

use std::fmt;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;

use super::error::ApiError;

/// A version number from a path: an integer of 1 or more (`0`, `-1`, `1.5`, `x` are `400`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version(pub u64);

impl Version {
    /// Parses a path segment; the error is the sentence a `400` carries.
    pub fn parse(text: &str) -> Result<Self, String> {
        text.parse::<u64>()
            .ok()
            .filter(|v| *v >= 1)
            .map(Version)
            .ok_or_else(|| format!("version `{text}` is not an integer of 1 or more"))
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Segment;
        impl Visitor<'_> for Segment {
            type Value = Version;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a version: an integer of 1 or more")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Version, E> {
                Version::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Segment)
    }
}

/// `axum::extract::Path`, refusing with an [`ApiError`]: `400` naming the segment for a value
/// that does not parse.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(t)| Path(t))
            .map_err(path_rejection)
    }
}

/// A path that does not deserialize. Our own parsers ([`Version`]) write whole sentences, so
/// their message is the body; axum's other kinds keep axum's text and status (a `500` there
/// means a handler and its route disagree, a bug).
fn path_rejection(rejection: PathRejection) -> ApiError {
    use axum::extract::path::ErrorKind;
    if let PathRejection::FailedToDeserializePathParams(e) = &rejection {
        if let ErrorKind::DeserializeError { message, .. } | ErrorKind::Message(message) = e.kind()
        {
            return ApiError::bad_request(message.clone());
        }
    }
    let (status, text) = (rejection.status(), rejection.body_text());
    if status.is_server_error() {
        return ApiError::internal(text);
    }
    ApiError::new(status, text)
}

/// `axum::extract::Query`, refusing with a `400` [`ApiError`] (an unknown or malformed
/// parameter).
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(t)| Query(t))
            .map_err(|r: QueryRejection| ApiError::new(r.status(), r.body_text()))
    }
}

/// `axum::extract::Multipart`, refusing with an [`ApiError`] when the request is not
/// `multipart/form-data` with a boundary.
#[derive(Debug)]
pub struct Multipart(pub axum::extract::Multipart);

impl<S: Send + Sync> FromRequest<S> for Multipart {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        axum::extract::Multipart::from_request(request, state)
            .await
            .map(Multipart)
            .map_err(|r| {
                let status = match r.status() {
                    s if s.is_server_error() => StatusCode::BAD_REQUEST,
                    s => s,
                };
                ApiError::new(
                    status,
                    format!(
                        "{}; send multipart/form-data with the parts /v1/openapi.json lists",
                        r.body_text()
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_an_integer_of_one_or_more() {
        assert_eq!(Version::parse("1"), Ok(Version(1)));
        assert_eq!(
            Version::parse("18446744073709551615"),
            Ok(Version(u64::MAX))
        );
        for bad in ["0", "-1", "1.5", "x", "", "18446744073709551616", "+1 "] {
            assert_eq!(
                Version::parse(bad),
                Err(format!("version `{bad}` is not an integer of 1 or more"))
            );
        }
    }
}
