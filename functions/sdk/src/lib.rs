//! Guest SDK for edge-agent functions (target `wasm32-wasip1`).
//!
//! The agent calls a function as a WAGI command: the request body is stdin, the request line
//! and headers are environment variables (`REQUEST_METHOD`, `PATH_INFO`, `QUERY_STRING`,
//! `CONTENT_TYPE`, `HTTP_*`), and stdout is CGI headers, a blank line, then the body.
//!
//! ```no_run
//! use edge_fn::{Request, Response};
//!
//! fn main() {
//!     edge_fn::run(|req: Request| Response::text(200, format!("hello from {}", req.path)));
//! }
//! ```
//!
//! [`nn`] wraps the `wasi-nn` 0.6 crate: load a model the manifest grants, run it on `f32`
//! tensors, and rank the scores.
#![deny(missing_docs)]

pub mod nn;

use std::io::{Read, Write};

/// An HTTP request as the agent passes it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path after the function's prefix (`PATH_INFO`).
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Headers, lowercase names with `-` (from `HTTP_*` and `CONTENT_TYPE`).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// Reads the request from the WAGI environment and stdin.
    pub fn from_env() -> std::io::Result<Self> {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        let mut headers: Vec<(String, String)> = std::env::vars()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("HTTP_")?;
                Some((name.to_ascii_lowercase().replace('_', "-"), v))
            })
            .collect();
        let content_type = var("CONTENT_TYPE");
        if !content_type.is_empty() {
            headers.push(("content-type".into(), content_type));
        }
        let mut body = Vec::new();
        std::io::stdin().read_to_end(&mut body)?;
        Ok(Self {
            method: var("REQUEST_METHOD"),
            path: var("PATH_INFO"),
            query: var("QUERY_STRING"),
            headers,
            body,
        })
    }

    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a query parameter (no percent-decoding beyond `+` as space).
    pub fn query_param(&self, key: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == key).then(|| v.replace('+', " "))
        })
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// A response: status, headers and body.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers (`Content-Type` among them).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with this status, content type and body.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body.into())
    }

    /// An `application/json` response.
    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
        Self::new(status, "application/json", body)
    }

    /// `{"error": message}` with this status.
    pub fn error(status: u16, message: impl std::fmt::Display) -> Self {
        Self::json(status, &serde_json::json!({ "error": message.to_string() }))
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Writes the CGI response to stdout. A header name that is empty or holds `:`, or a
    /// name or value with CR or LF (which would inject headers or end the header block), is an
    /// `InvalidInput` error and nothing is written.
    pub fn send(&self) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        self.write_to(&mut out)
    }

    /// Writes the CGI response to `out`; refuses bad headers as [`Response::send`] does.
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        let bad = |s: &str| s.contains(['\r', '\n']);
        if let Some((k, _)) = self
            .headers
            .iter()
            .find(|(k, v)| k.is_empty() || k.contains(':') || bad(k) || bad(v))
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "header `{}` has a bad name or a CR/LF in its value",
                    k.escape_debug()
                ),
            ));
        }
        let mut head = format!("Status: {}\n", self.status);
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\n"));
        }
        head.push('\n');
        out.write_all(head.as_bytes())?;
        out.write_all(&self.body)?;
        out.flush()
    }
}

/// Reads the request, calls `handler`, sends its response.
pub fn run(handler: impl FnOnce(Request) -> Response) {
    let response = match Request::from_env() {
        Ok(request) => handler(request),
        Err(e) => Response::error(400, format!("cannot read the request: {e}")),
    };
    if let Err(e) = response.send() {
        eprintln!("cannot write the response: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_with_cr_or_lf_are_refused() {
        let mut out = Vec::new();
        Response::text(200, "ok")
            .with_header("X-A", "b")
            .write_to(&mut out)
            .unwrap();
        assert_eq!(
            out,
            b"Status: 200\nContent-Type: text/plain; charset=utf-8\nX-A: b\n\nok"
        );
        for (k, v) in [
            ("X-A", "b\r\nSet-Cookie: x=1"),
            ("X-A", "b\n\nbody"),
            ("X-A\n", "b"),
            ("X:A", "b"),
            ("", "b"),
        ] {
            let mut out = Vec::new();
            let err = Response::text(200, "ok")
                .with_header(k, v)
                .write_to(&mut out)
                .unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
            assert!(out.is_empty());
        }
    }
}
