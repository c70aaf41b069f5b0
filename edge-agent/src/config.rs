//! Agent configuration: code defaults, then a TOML file, then `EDGE_AGENT__*` environment
//! variables (`__` nests: `EDGE_AGENT__AUTH__DEV_OPEN=true`), then command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod server;

pub use server::ServerConfig;

/// Everything `edge-agent serve` needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The agent's own state: SQLite database and model blobs.
    pub data_dir: PathBuf,
    /// Optional read-only Triton-style repository `<dir>/<model>/<version>/model.onnx`.
    pub model_dir: Option<PathBuf>,
    /// `text` or `json` logs.
    pub log_format: LogFormat,
    /// Bearer-token authentication.
    pub auth: AuthConfig,
    /// Limits that protect the agent.
    pub limits: LimitsConfig,
    /// Path of libonnxruntime for models on `ort`, `auto-ort` and the fallback of `auto` (else
    /// `ORT_DYLIB_PATH`).
    pub ort_library: Option<PathBuf>,
    /// Edge functions (WebAssembly guests).
    pub functions: FunctionsConfig,
    /// Connection hygiene: timeouts and connection caps.
    pub server: ServerConfig,
    /// What `/v2/health/ready` requires.
    pub readiness: ReadinessConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            data_dir: PathBuf::from("edge-agent-data"),
            model_dir: None,
            log_format: LogFormat::Text,
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            ort_library: None,
            functions: FunctionsConfig::default(),
            server: ServerConfig::default(),
            readiness: ReadinessConfig::default(),
        }
    }
}

/// What `/v2/health/ready` requires (`[readiness]`), like Triton's `--strict-readiness`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ReadinessConfig {
    /// Not ready (503, naming the models and why) while a model the agent was to serve failed
    /// to load: the active version of a pushed model (reloaded at start), or the newest
    /// version of a `--model-dir` model (or the model, when its `config.toml` is invalid or
    /// it has no version). With `false`, readiness ignores failed models (200; the body still
    /// lists them). Default `true`; `EDGE_AGENT__READINESS__STRICT`, `--strict-readiness`.
    pub strict: bool,
}

impl Default for ReadinessConfig {
    fn default() -> Self {
        Self { strict: true }
    }
}

/// Bounds of the WebAssembly runtime. Changing `max_instances` or `max_memory_mib` changes
/// the engine configuration, so cached artifacts are recompiled once.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct FunctionsConfig {
    /// Guest instances that may run at once, across all functions (the pool's size).
    pub max_instances: u32,
    /// The longest wait queue (`max_queue`) a manifest may set, in calls.
    pub max_queue: u32,
    /// The most linear memory a manifest may grant, in MiB.
    pub max_memory_mib: u64,
    /// The longest deadline a manifest may set, in milliseconds.
    pub max_timeout_ms: u64,
    /// Period of the epoch ticker that enforces deadlines, in milliseconds.
    pub epoch_tick_ms: u64,
    /// Largest module upload, in bytes.
    pub max_wasm_bytes: usize,
    /// Most bytes a guest may write to stdout per call.
    pub max_stdout_bytes: usize,
    /// Largest tensor a guest may pass to or get from wasi-nn, in bytes.
    pub max_tensor_bytes: usize,
}

impl Default for FunctionsConfig {
    fn default() -> Self {
        Self {
            max_instances: 64,
            max_queue: 1024,
            max_memory_mib: 256,
            max_timeout_ms: 60_000,
            epoch_tick_ms: 5,
            max_wasm_bytes: 32 << 20,
            max_stdout_bytes: 16 << 20,
            max_tensor_bytes: 64 << 20,
        }
    }
}

impl FunctionsConfig {
    /// Range-checks every number, naming the key (`functions.<key>`) of the first one out of
    /// range. Beyond these bounds the engine's pool, deadlines or buffers would not fit (or
    /// overflow): wasm32 memories stop at 4 GiB, wasi-nn lengths at 4 GiB.
    pub fn validate(&self) -> Result<(), String> {
        fn check(
            key: &str,
            value: u64,
            range: std::ops::RangeInclusive<u64>,
        ) -> Result<(), String> {
            if range.contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "functions.{key} = {value} is outside {}..={}",
                    range.start(),
                    range.end()
                ))
            }
        }
        check("max_instances", u64::from(self.max_instances), 1..=1000)?;
        check("max_queue", u64::from(self.max_queue), 0..=100_000)?;
        check("max_memory_mib", self.max_memory_mib, 1..=4096)?;
        check("max_timeout_ms", self.max_timeout_ms, 1..=3_600_000)?;
        check("epoch_tick_ms", self.epoch_tick_ms, 1..=1000)?;
        if self.epoch_tick_ms > self.max_timeout_ms {
            return Err(format!(
                "functions.epoch_tick_ms = {} is longer than functions.max_timeout_ms = {}",
                self.epoch_tick_ms, self.max_timeout_ms
            ));
        }
        check("max_wasm_bytes", self.max_wasm_bytes as u64, 1..=1 << 30)?;
        check(
            "max_stdout_bytes",
            self.max_stdout_bytes as u64,
            1..=1 << 30,
        )?;
        check(
            "max_tensor_bytes",
            self.max_tensor_bytes as u64,
            1..=u64::from(u32::MAX),
        )?;
        Ok(())
    }
}

/// Log output format (`log_format` in the file, `--log-format` on the command line).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A role a token grants.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Push, delete and activate models, and everything `infer` may do.
    Admin,
    /// Call inference and read model metadata.
    Infer,
}

/// One accepted token, stored as the hex SHA-256 of the token (see `edge-agent hash-token`).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A name for logs, e.g. the client it was issued to.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Lowercase hex SHA-256 of the token.
    pub sha256: String,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("sha256", &"<redacted>")
            .finish()
    }
}

/// Authentication. With no tokens and `dev_open` off, the agent generates an admin token at
/// start and prints it once: there is never a silent open default.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Accepted tokens.
    pub tokens: Vec<TokenConfig>,
    /// Serve every route without authentication (local development only; logged loudly).
    pub dev_open: bool,
}

/// Bounds on what a client can make the agent hold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest inference request body, in bytes.
    pub max_request_bytes: usize,
    /// Largest model upload, in bytes.
    pub max_model_bytes: usize,
    /// Threads that run inference, shared by all models.
    pub inference_threads: usize,
    /// Seconds to let in-flight requests finish at shutdown.
    pub shutdown_grace_secs: u64,
    /// Memory all in-flight infer requests together may make the agent hold while their
    /// tensors are decoded and computed, in bytes. A JSON request counts about 24 times its
    /// body (parsed elements and typed tensors), a binary one about twice its tensor bytes.
    pub max_inflight_request_bytes: usize,
    /// How long a request waits for that memory before it gets 503, in milliseconds.
    pub memory_wait_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 16 << 20,
            max_model_bytes: 512 << 20,
            inference_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            shutdown_grace_secs: 30,
            max_inflight_request_bytes: 1 << 30,
            memory_wait_ms: 1_000,
        }
    }
}

/// Checks that `value` lies in `range`; the error names the key and the allowed range.
pub(crate) fn check_range<T>(
    key: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<(), String>
where
    T: PartialOrd + std::fmt::Display,
{
    if range.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "`{key}` is {value}, but must be between {} and {}",
            range.start(),
            range.end()
        ))
    }
}

impl LimitsConfig {
    /// Checks every number; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        const GIB: usize = 1 << 30;
        check_range(
            "limits.max_request_bytes",
            self.max_request_bytes,
            1024..=4 * GIB,
        )?;
        check_range(
            "limits.max_model_bytes",
            self.max_model_bytes,
            1024..=16 * GIB,
        )?;
        check_range("limits.inference_threads", self.inference_threads, 1..=1024)?;
        check_range(
            "limits.shutdown_grace_secs",
            self.shutdown_grace_secs,
            0..=3600,
        )?;
        check_range(
            "limits.max_inflight_request_bytes",
            self.max_inflight_request_bytes,
            1 << 20..=1 << 40,
        )?;
        check_range("limits.memory_wait_ms", self.memory_wait_ms, 0..=60_000)?;
        Ok(())
    }
}

/// Why a configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("failed to read config file `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML (after environment overrides) does not describe a valid config.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The environment-variable prefix for overrides.
pub const ENV_PREFIX: &str = "EDGE_AGENT__";

impl AgentConfig {
    /// Reads the file (if any) and applies `EDGE_AGENT__*` overrides from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut doc: toml::Table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                text.parse().map_err(|e: toml::de::Error| {
                    ConfigError::Invalid(format!("`{}`: {e}", path.display()))
                })?
            }
            None => toml::Table::new(),
        };
        for (key, value) in env {
            let Some(rest) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            set_path(&mut doc, &path, parse_env_value(&value));
        }
        let config: Self = doc
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate().map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    /// Checks every number of every section; the message names the key and its range.
    pub fn validate(&self) -> Result<(), String> {
        self.limits.validate()?;
        self.functions.validate()?;
        self.server.validate().map_err(|e| match e {
            ConfigError::Invalid(m) => m,
            other => other.to_string(),
        })?;
        Ok(())
    }

    /// A commented example configuration.
    pub fn example() -> &'static str {
        include_str!("../edge-agent.example.toml")
    }
}

/// An environment value is TOML when it parses as a TOML value (numbers, booleans, arrays),
/// and a plain string otherwise.
fn parse_env_value(raw: &str) -> toml::Value {
    let wrapped = format!("v = {raw}");
    match wrapped.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    match path {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(t) = entry {
                set_path(t, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl AgentConfig {
        /// Loads TOML text, with no environment.
        fn load_str(text: &str) -> Result<Self, ConfigError> {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("agent.toml");
            std::fs::write(&path, text).unwrap();
            Self::load(Some(&path), [])
        }
    }

    #[test]
    fn the_example_config_parses_to_the_defaults_it_documents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, AgentConfig::example()).unwrap();
        let config = AgentConfig::load(Some(&path), []).unwrap();
        assert_eq!(config.listen, AgentConfig::default().listen);
        assert_eq!(config.server, ServerConfig::default());
    }

    /// Whoever copies the example must not get an admin token whose secret is public: the
    /// token table is commented out, and its placeholder, uncommented as is, stops the agent
    /// with a message that says how to make a hash.
    #[test]
    fn the_example_config_activates_no_token_and_its_placeholder_is_refused() {
        let example = AgentConfig::example();
        let config = AgentConfig::load_str(example).unwrap();
        assert!(config.auth.tokens.is_empty(), "{:?}", config.auth.tokens);
        let hex_run = example
            .split(|c: char| !c.is_ascii_hexdigit())
            .map(str::len)
            .max()
            .unwrap_or(0);
        assert!(hex_run < 64, "the example holds a token hash");

        let uncommented: String = example
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if rest.starts_with("[[auth.tokens]]")
                        || ["name =", "role =", "sha256 ="]
                            .iter()
                            .any(|key| rest.starts_with(key)) =>
                {
                    format!("{rest}\n")
                }
                _ => format!("{line}\n"),
            })
            .collect();
        let config = AgentConfig::load_str(&uncommented).unwrap();
        assert_eq!(config.auth.tokens.len(), 1, "{uncommented}");
        let refused = crate::http::Auth::new(&config.auth, None).unwrap_err();
        assert!(
            refused.to_string().contains("edge-agent hash-token"),
            "{refused}"
        );
    }

    #[test]
    fn env_overrides_nest_and_parse_values() {
        let env = [
            ("EDGE_AGENT__LISTEN".to_owned(), "0.0.0.0:9000".to_owned()),
            ("EDGE_AGENT__AUTH__DEV_OPEN".to_owned(), "true".to_owned()),
            (
                "EDGE_AGENT__LIMITS__INFERENCE_THREADS".to_owned(),
                "3".to_owned(),
            ),
            ("OTHER".to_owned(), "x".to_owned()),
        ];
        let config = AgentConfig::load(None, env).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert!(config.auth.dev_open);
        assert_eq!(config.limits.inference_threads, 3);
    }

    #[test]
    fn readiness_is_strict_unless_the_file_or_the_environment_says_otherwise() {
        assert!(AgentConfig::default().readiness.strict);
        let config = AgentConfig::load_str("[readiness]\nstrict = false\n").unwrap();
        assert!(!config.readiness.strict);
        let env = [(
            "EDGE_AGENT__READINESS__STRICT".to_owned(),
            "false".to_owned(),
        )];
        assert!(!AgentConfig::load(None, env).unwrap().readiness.strict);
    }

    #[test]
    fn out_of_range_numbers_are_refused_by_key() {
        for (key, value, named) in [
            (
                "EDGE_AGENT__LIMITS__INFERENCE_THREADS",
                "0",
                "limits.inference_threads",
            ),
            (
                "EDGE_AGENT__LIMITS__INFERENCE_THREADS",
                "18446744073709551615",
                "limits.inference_threads",
            ),
            (
                "EDGE_AGENT__LIMITS__MAX_REQUEST_BYTES",
                "0",
                "limits.max_request_bytes",
            ),
            (
                "EDGE_AGENT__LIMITS__MAX_INFLIGHT_REQUEST_BYTES",
                "10",
                "limits.max_inflight_request_bytes",
            ),
            (
                "EDGE_AGENT__LIMITS__MEMORY_WAIT_MS",
                "99999999",
                "limits.memory_wait_ms",
            ),
        ] {
            let err = AgentConfig::load(None, [(key.to_owned(), value.to_owned())])
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{key}={value}: {err}");
        }
        AgentConfig::default().validate().unwrap();
    }

    #[test]
    fn functions_numbers_are_range_checked_naming_the_key() {
        assert_eq!(FunctionsConfig::default().validate(), Ok(()));
        type Tweak = fn(&mut FunctionsConfig);
        let bad: [(&str, Tweak); 11] = [
            ("max_instances", |f| f.max_instances = 0),
            ("max_instances", |f| f.max_instances = u32::MAX),
            ("max_queue", |f| f.max_queue = 100_001),
            ("max_memory_mib", |f| f.max_memory_mib = 0),
            ("max_memory_mib", |f| f.max_memory_mib = u64::MAX),
            ("max_timeout_ms", |f| f.max_timeout_ms = u64::MAX),
            ("epoch_tick_ms", |f| f.epoch_tick_ms = 0),
            ("epoch_tick_ms", |f| f.max_timeout_ms = 2),
            ("max_wasm_bytes", |f| f.max_wasm_bytes = usize::MAX),
            ("max_stdout_bytes", |f| f.max_stdout_bytes = 0),
            ("max_tensor_bytes", |f| f.max_tensor_bytes = usize::MAX),
        ];
        for (key, tweak) in bad {
            let mut config = FunctionsConfig::default();
            tweak(&mut config);
            let err = config.validate().unwrap_err();
            assert!(err.contains(&format!("functions.{key}")), "{key}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_errors_that_name_them() {
        let env = [("EDGE_AGENT__LISTNE".to_owned(), "x".to_owned())];
        let err = AgentConfig::load(None, env).unwrap_err().to_string();
        assert!(err.contains("listne"), "{err}");
    }
}
