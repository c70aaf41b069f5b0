//! WAGI conventions: the request becomes a CGI environment (the body goes to stdin), and stdout
//! is optional CGI headers (`Content-Type`, `Status`, `Location`, others), a blank line, then
//! the body.

/// The parts of an HTTP request a guest sees.
#[derive(Debug, Clone, Default)]
pub struct CgiRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The route's prefix (`/fn/{name}` or a manifest route).
    pub script_name: String,
    /// The path after the prefix, starting with `/` (or empty).
    pub path_info: String,
    /// The query string without `?`.
    pub query: String,
    /// Request headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body's length.
    pub content_length: usize,
    /// The request id, as `X_REQUEST_ID`.
    pub request_id: String,
}

/// Headers never passed to a guest.
const HIDDEN: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

impl CgiRequest {
    /// The environment: the manifest's `granted` variables, then the CGI variables (which win).
    pub fn env(&self, granted: &[(String, String)]) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = granted.to_vec();
        let header = |name: &str| {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let cgi = [
            ("GATEWAY_INTERFACE", "CGI/1.1".to_owned()),
            ("SERVER_PROTOCOL", "HTTP/1.1".to_owned()),
            ("SERVER_SOFTWARE", "edge-agent".to_owned()),
            ("REQUEST_METHOD", self.method.clone()),
            ("SCRIPT_NAME", self.script_name.clone()),
            ("PATH_INFO", self.path_info.clone()),
            ("QUERY_STRING", self.query.clone()),
            ("CONTENT_TYPE", header("content-type")),
            ("CONTENT_LENGTH", self.content_length.to_string()),
            ("SERVER_NAME", header("host")),
            ("X_REQUEST_ID", self.request_id.clone()),
        ];
        for (k, v) in cgi {
            set(&mut env, k.to_owned(), v);
        }
        for (name, value) in &self.headers {
            let lower = name.to_ascii_lowercase();
            // `Proxy` would become HTTP_PROXY, which HTTP clients take as their proxy (httpoxy).
            if HIDDEN.contains(&lower.as_str()) || lower == "content-type" || lower == "proxy" {
                continue;
            }
            let key = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
            set(&mut env, key, value.clone());
        }
        env
    }
}

fn set(env: &mut Vec<(String, String)>, key: String, value: String) {
    env.retain(|(k, _)| *k != key);
    env.push((key, value));
}

/// A guest's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiResponse {
    /// The status (default 200, or 302 with a `Location`).
    pub status: u16,
    /// Headers other than `Status`.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Why stdout is not a valid response.
#[derive(Debug, thiserror::Error)]
#[error("the function's output is not a valid CGI response: {0}")]
pub struct BadOutput(pub String);

/// Splits stdout into headers and body. Output that does not begin with a header block (or a
/// blank line) is all body, served as `text/plain`.
pub fn parse_output(stdout: &[u8]) -> Result<CgiResponse, BadOutput> {
    let (head, body) = match split_head(stdout) {
        Some(split) => split,
        None => {
            return Ok(CgiResponse {
                status: 200,
                headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                body: stdout.to_vec(),
            })
        }
    };
    let head = std::str::from_utf8(head).map_err(|_| BadOutput("headers are not UTF-8".into()))?;
    let mut status = None;
    let mut headers = Vec::new();
    for line in head.lines().map(|l| l.trim_end_matches('\r')) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| BadOutput(format!("header line `{line}` has no `:`")))?;
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
        match name.as_str() {
            "status" => {
                let code = value
                    .split_whitespace()
                    .next()
                    .and_then(|c| c.parse::<u16>().ok())
                    .filter(|c| (200..=599).contains(c))
                    .ok_or_else(|| BadOutput(format!("bad `Status: {value}`")))?;
                status = Some(code);
            }
            "content-length" | "transfer-encoding" | "connection" => {}
            _ => headers.push((name, value)),
        }
    }
    let status = status.unwrap_or_else(|| {
        if headers.iter().any(|(k, _)| k == "location") {
            302
        } else {
            200
        }
    });
    Ok(CgiResponse {
        status,
        headers,
        body: body.to_vec(),
    })
}

/// `(head, body)` if stdout starts with a blank line or with `Name: value` lines up to one.
fn split_head(stdout: &[u8]) -> Option<(&[u8], &[u8])> {
    for sep in [&b"\r\n\r\n"[..], b"\n\n"] {
        if stdout.starts_with(&sep[..sep.len() / 2]) {
            return Some((&[], &stdout[sep.len() / 2..]));
        }
    }
    let end = stdout
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    let end_crlf = stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    let (head_end, body_start) = match (end, end_crlf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    let head = &stdout[..head_end];
    let looks_like_headers = head.split(|b| *b == b'\n').all(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        line.iter().position(|b| *b == b':').is_some_and(|i| {
            i > 0
                && line[..i]
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        })
    });
    looks_like_headers.then(|| (head, &stdout[body_start..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_status_and_body() {
        let r =
            parse_output(b"Content-Type: application/json\nStatus: 404 Not Found\n\n{}").unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(
            r.headers,
            [("content-type".to_owned(), "application/json".to_owned())]
        );
        assert_eq!(r.body, b"{}");
        let r = parse_output(b"Location: /x\r\n\r\n").unwrap();
        assert_eq!(r.status, 302);
        assert!(parse_output(b"Status: abc\n\nx").is_err());
        assert!(parse_output(b"Status: 101 Switching Protocols\n\nx").is_err());
        assert!(parse_output(b"Status: 199\n\nx").is_err());
        assert!(parse_output(b"Status: 600\n\nx").is_err());
        assert_eq!(parse_output(b"Status: 599\n\nx").unwrap().status, 599);
    }

    #[test]
    fn output_without_headers_is_body() {
        let r = parse_output(b"hello: world is not a header block").unwrap();
        assert_eq!(r.body, b"hello: world is not a header block");
        let r = parse_output(b"\nbody").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"body"[..]));
        let r = parse_output(b"plain text\n\nmore").unwrap();
        assert_eq!(r.body, b"plain text\n\nmore");
    }

    #[test]
    fn env_has_cgi_variables_and_hides_credentials() {
        let request = CgiRequest {
            method: "POST".into(),
            script_name: "/fn/f".into(),
            path_info: "/a/b".into(),
            query: "x=1".into(),
            headers: vec![
                ("Content-Type".into(), "text/plain".into()),
                ("Authorization".into(), "Bearer s3cret".into()),
                ("X-Custom-Thing".into(), "v".into()),
                ("Proxy".into(), "http://evil:3128".into()),
            ],
            content_length: 3,
            request_id: "id".into(),
        };
        let env = request.env(&[
            ("PATH_INFO".into(), "spoof".into()),
            ("K".into(), "v".into()),
        ]);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("REQUEST_METHOD"), Some("POST"));
        assert_eq!(get("PATH_INFO"), Some("/a/b"));
        assert_eq!(get("QUERY_STRING"), Some("x=1"));
        assert_eq!(get("CONTENT_TYPE"), Some("text/plain"));
        assert_eq!(get("HTTP_X_CUSTOM_THING"), Some("v"));
        assert_eq!(get("K"), Some("v"));
        assert!(env.iter().all(|(_, v)| !v.contains("s3cret")));
        assert_eq!(get("HTTP_PROXY"), None);
    }
}
