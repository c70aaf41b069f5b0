//! The `[server]` section: connection hygiene (timeouts and connection caps).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// How long clients may take and how many connections they may hold.
///
/// The defaults follow common front-end servers (nginx's `client_header_timeout` 60 s and
/// `keepalive_timeout` 75 s, Go's and hyper's 30 s header timeout) tightened for an edge box
/// where a few thousand held sockets are a real cost: a request head has 10 s, an idle
/// kept-alive connection 30 s, a body must not stall for 30 s nor fall under 1 KiB/s, and a
/// client must not leave a response unread for 30 s (nginx's `send_timeout` is 60 s).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Milliseconds a client has to send a complete request head, counted from the
    /// connection's accept (first request) or from the first byte of a later request.
    pub header_read_timeout_ms: u64,
    /// Milliseconds a kept-alive connection may stay idle (no request in flight, no byte of
    /// a next request) before the agent closes it.
    pub keep_alive_timeout_ms: u64,
    /// Milliseconds a request body may stall (no byte received) while a handler reads it;
    /// then the request is answered `408` and the connection closed.
    pub body_read_timeout_ms: u64,
    /// Milliseconds the client may leave a response unread (the agent's writes blocked)
    /// before the agent closes the connection.
    pub send_timeout_ms: u64,
    /// Slowest average rate at which a body may arrive, in bytes per second, after a grace
    /// of `body_read_timeout_ms`; a slower (trickling) body is answered `408`. 0 disables.
    pub min_body_bytes_per_sec: u64,
    /// Milliseconds the agent keeps reading (and discarding) a body it answered without
    /// reading (401, 413, ...) before closing, so the client sees the answer instead of a
    /// reset. 0 closes at once.
    pub linger_ms: u64,
    /// Open connections, all clients together; further connections are closed at once.
    pub max_connections: usize,
    /// Open connections from one client IP address; further ones are closed at once.
    pub max_connections_per_ip: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            keep_alive_timeout_ms: 30_000,
            body_read_timeout_ms: 30_000,
            send_timeout_ms: 30_000,
            min_body_bytes_per_sec: 1024,
            linger_ms: 30_000,
            max_connections: 4096,
            max_connections_per_ip: 256,
        }
    }
}

/// The most milliseconds any server timeout may be set to (one hour).
const MAX_TIMEOUT_MS: u64 = 3_600_000;
/// The fewest milliseconds a timeout may be set to.
const MIN_TIMEOUT_MS: u64 = 100;
/// The most connections the agent may be told to hold.
const MAX_CONNECTIONS: usize = 1_000_000;

fn in_range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::Invalid(format!(
            "{key} = {value} is out of range: it must be between {min} and {max}"
        )));
    }
    Ok(())
}

impl ServerConfig {
    /// Checks every key's range; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("server.header_read_timeout_ms", self.header_read_timeout_ms),
            ("server.keep_alive_timeout_ms", self.keep_alive_timeout_ms),
            ("server.body_read_timeout_ms", self.body_read_timeout_ms),
            ("server.send_timeout_ms", self.send_timeout_ms),
        ] {
            in_range(key, value, MIN_TIMEOUT_MS, MAX_TIMEOUT_MS)?;
        }
        in_range("server.linger_ms", self.linger_ms, 0, MAX_TIMEOUT_MS)?;
        in_range(
            "server.min_body_bytes_per_sec",
            self.min_body_bytes_per_sec,
            0,
            1 << 30,
        )?;
        in_range(
            "server.max_connections",
            self.max_connections,
            1,
            MAX_CONNECTIONS,
        )?;
        in_range(
            "server.max_connections_per_ip",
            self.max_connections_per_ip,
            1,
            self.max_connections,
        )?;
        Ok(())
    }

    /// `header_read_timeout_ms` as a duration.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// `keep_alive_timeout_ms` as a duration.
    pub fn keep_alive_timeout(&self) -> Duration {
        Duration::from_millis(self.keep_alive_timeout_ms)
    }

    /// `body_read_timeout_ms` as a duration.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
    }

    /// `send_timeout_ms` as a duration.
    pub fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms)
    }

    /// `linger_ms` as a duration.
    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentConfig;

    fn load(key: &str, value: &str) -> Result<AgentConfig, ConfigError> {
        AgentConfig::load(
            None,
            [(format!("EDGE_AGENT__SERVER__{key}"), value.to_owned())],
        )
    }

    #[test]
    fn the_defaults_are_valid() {
        ServerConfig::default().validate().unwrap();
    }

    #[test]
    fn out_of_range_server_keys_are_refused_with_the_key_named() {
        for (key, value) in [
            ("HEADER_READ_TIMEOUT_MS", "0"),
            ("KEEP_ALIVE_TIMEOUT_MS", "99"),
            ("BODY_READ_TIMEOUT_MS", "3600001"),
            ("LINGER_MS", "3600001"),
            ("SEND_TIMEOUT_MS", "50"),
            ("MIN_BODY_BYTES_PER_SEC", "1073741825"),
            ("MAX_CONNECTIONS", "0"),
            ("MAX_CONNECTIONS_PER_IP", "0"),
        ] {
            let err = load(key, value).unwrap_err().to_string();
            let name = format!("server.{}", key.to_ascii_lowercase());
            assert!(err.contains(&name), "{key}={value}: {err}");
        }
        let err = AgentConfig::load(
            None,
            [
                (
                    "EDGE_AGENT__SERVER__MAX_CONNECTIONS".to_owned(),
                    "10".into(),
                ),
                (
                    "EDGE_AGENT__SERVER__MAX_CONNECTIONS_PER_IP".to_owned(),
                    "11".into(),
                ),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("server.max_connections_per_ip"), "{err}");
        let ok = load("HEADER_READ_TIMEOUT_MS", "250").unwrap();
        assert_eq!(ok.server.header_read_timeout_ms, 250);
    }
}
