//! A function's manifest: what it is granted and how it is bounded.

use std::collections::BTreeMap;

use functions_runtime::ModelGrant;
use serde::{Deserialize, Serialize};

use super::registry::{validate_name, Rejection, RepositoryError};
use crate::config::FunctionsConfig;
use crate::storage::Kind;

/// What a function may use, and its limits. Sent as JSON with the module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionManifest {
    /// Models it may load with `load_by_name` (`name` or `name:version`).
    #[serde(default)]
    pub models: Vec<ModelGrant>,
    /// Whether it may pass ONNX bytes of its own to wasi-nn `load` (default false).
    #[serde(default)]
    pub allow_load: bool,
    /// Linear memory cap, in MiB (default 64).
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u64,
    /// Deadline of one call, in milliseconds (default 1000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Fuel of one call (instructions, roughly); unmetered when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Calls that may run at once (default 8); more wait in the queue.
    #[serde(default = "default_max_instances")]
    pub max_instances: usize,
    /// Calls that may wait for an instance when all `max_instances` run (default 64); more
    /// get 503. A queued call waits at most `timeout_ms`, then gets the timeout error.
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
    /// Environment variables granted to the guest (the CGI variables are added per call).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Extra routes that reach the function besides `/fn/{name}/...`.
    #[serde(default)]
    pub routes: Vec<FunctionRoute>,
}

/// A route to a function: a path prefix, optionally only for one host and some methods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionRoute {
    /// Path prefix, e.g. `/api/digits`; matched on whole segments.
    pub prefix: String,
    /// Only requests whose `Host` (without port) is this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Only these methods (any when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
}

fn default_memory_mib() -> u64 {
    64
}

fn default_timeout_ms() -> u64 {
    1000
}

fn default_max_instances() -> usize {
    8
}

fn default_max_queue() -> usize {
    64
}

impl Default for FunctionManifest {
    fn default() -> Self {
        Self {
            models: Vec::new(),
            allow_load: false,
            memory_mib: default_memory_mib(),
            timeout_ms: default_timeout_ms(),
            fuel: None,
            max_instances: default_max_instances(),
            max_queue: default_max_queue(),
            env: BTreeMap::new(),
            routes: Vec::new(),
        }
    }
}

/// Path prefixes of the agent's own API, which routes may not claim.
const RESERVED: [&str; 5] = ["/v1", "/v2", "/fn", "/metrics", "/health"];

impl FunctionRoute {
    /// Whether this route and `other` can take the same request: the same prefix, and the same
    /// host (case-insensitively) or no host on either (a route without one takes every host).
    pub fn overlaps(&self, other: &FunctionRoute) -> bool {
        self.prefix.trim_end_matches('/') == other.prefix.trim_end_matches('/')
            && match (&self.host, &other.host) {
                (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
                _ => true,
            }
    }

    /// Whether the route takes this request; returns `PATH_INFO` (the rest of the path).
    pub fn matches(&self, host: Option<&str>, method: &str, path: &str) -> Option<String> {
        if let Some(want) = &self.host {
            let host = host.map(|h| h.rsplit_once(':').map_or(h, |(h, _)| h));
            if !host.is_some_and(|h| h.eq_ignore_ascii_case(want)) {
                return None;
            }
        }
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
        {
            return None;
        }
        let prefix = self.prefix.trim_end_matches('/');
        let rest = path.strip_prefix(prefix)?;
        (rest.is_empty() || rest.starts_with('/')).then(|| rest.to_owned())
    }
}

/// A manifest refused for `reason`.
fn refuse(reason: String) -> RepositoryError {
    Rejection::Config {
        kind: Kind::Function,
        reason,
    }
    .into()
}

/// Most environment variables a manifest may grant.
const MAX_ENV: usize = 256;
/// Most bytes of names and values in a manifest's `env`, together.
const MAX_ENV_BYTES: usize = 64 << 10;
/// Most routes of one function.
const MAX_ROUTES: usize = 64;
/// Most model grants of one function.
const MAX_MODELS: usize = 64;

impl FunctionManifest {
    /// Parses a manifest from JSON; a field of the wrong type or out of its type's range
    /// (e.g. a negative or 2^64 `memory_mib`) is refused naming its key.
    pub fn from_json(text: &str) -> Result<Self, RepositoryError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let parsed: Result<Self, _> = serde_path_to_error::deserialize(&mut de);
        let manifest = parsed.map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            refuse(if path == "." {
                format!("invalid manifest: {inner}")
            } else {
                format!("invalid manifest `{path}`: {inner}")
            })
        })?;
        de.end()
            .map_err(|e| refuse(format!("invalid manifest: {e}")))?;
        Ok(manifest)
    }

    /// Checks the manifest against the agent's limits.
    pub fn validate(&self, limits: &FunctionsConfig) -> Result<(), RepositoryError> {
        let reject = |m: String| Err(refuse(m));
        if !(1..=limits.max_memory_mib).contains(&self.memory_mib) {
            return reject(format!(
                "manifest `memory_mib` {} is outside 1..={} (functions.max_memory_mib)",
                self.memory_mib, limits.max_memory_mib
            ));
        }
        if !(1..=limits.max_timeout_ms).contains(&self.timeout_ms) {
            return reject(format!(
                "manifest `timeout_ms` {} is outside 1..={} (functions.max_timeout_ms)",
                self.timeout_ms, limits.max_timeout_ms
            ));
        }
        if !(1..=limits.max_instances as usize).contains(&self.max_instances) {
            return reject(format!(
                "manifest `max_instances` {} is outside 1..={} (functions.max_instances)",
                self.max_instances, limits.max_instances
            ));
        }
        if self.max_queue > limits.max_queue as usize {
            return reject(format!(
                "manifest `max_queue` {} is outside 0..={} (functions.max_queue)",
                self.max_queue, limits.max_queue
            ));
        }
        if self.fuel == Some(0) {
            return reject("manifest `fuel` must be at least 1 when set".into());
        }
        if self.env.len() > MAX_ENV {
            return reject(format!(
                "manifest `env` has {} variables; at most {MAX_ENV} are allowed",
                self.env.len()
            ));
        }
        let env_bytes = self.env.iter().fold(0usize, |n, (k, v)| {
            n.saturating_add(k.len()).saturating_add(v.len())
        });
        if env_bytes > MAX_ENV_BYTES {
            return reject(format!(
                "manifest `env` holds {env_bytes} bytes; at most {MAX_ENV_BYTES} are allowed"
            ));
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
                return reject(format!("manifest `env` has an invalid variable `{k}`"));
            }
        }
        if self.models.len() > MAX_MODELS {
            return reject(format!(
                "manifest `models` has {} grants; at most {MAX_MODELS} are allowed",
                self.models.len()
            ));
        }
        for g in &self.models {
            validate_name(Kind::Model, &g.name)?;
            if g.version == Some(0) {
                return reject(format!(
                    "manifest `models` grant of `{}` has `version` 0; versions start at 1",
                    g.name
                ));
            }
        }
        if self.routes.len() > MAX_ROUTES {
            return reject(format!(
                "manifest `routes` has {} routes; at most {MAX_ROUTES} are allowed",
                self.routes.len()
            ));
        }
        for r in &self.routes {
            let p = r.prefix.trim_end_matches('/');
            if !r.prefix.starts_with('/') || p.is_empty() {
                return reject(format!(
                    "route prefix `{}` must start with `/` and not be `/`",
                    r.prefix
                ));
            }
            if RESERVED
                .iter()
                .any(|x| p == *x || p.starts_with(&format!("{x}/")))
            {
                return reject(format!(
                    "route prefix `{}` is under a path the agent serves ({})",
                    r.prefix,
                    RESERVED.join(", ")
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_whole_segments_hosts_and_methods() {
        let r = FunctionRoute {
            prefix: "/api/digits/".into(),
            host: Some("edge.local".into()),
            methods: vec!["POST".into()],
        };
        assert_eq!(
            r.matches(Some("edge.local:8080"), "post", "/api/digits/x"),
            Some("/x".into())
        );
        assert_eq!(
            r.matches(Some("edge.local"), "POST", "/api/digits"),
            Some(String::new())
        );
        assert_eq!(r.matches(Some("edge.local"), "POST", "/api/digitsx"), None);
        assert_eq!(r.matches(Some("other"), "POST", "/api/digits"), None);
        assert_eq!(r.matches(Some("edge.local"), "GET", "/api/digits"), None);
    }

    fn route(prefix: &str, host: Option<&str>) -> FunctionRoute {
        FunctionRoute {
            prefix: prefix.into(),
            host: host.map(Into::into),
            methods: Vec::new(),
        }
    }

    #[test]
    fn routes_overlap_on_the_prefix_unless_both_name_different_hosts() {
        assert!(route("/x/", None).overlaps(&route("/x", Some("edge.local"))));
        assert!(route("/x", Some("Edge.Local")).overlaps(&route("/x", Some("edge.local"))));
        assert!(!route("/x", Some("a")).overlaps(&route("/x", Some("b"))));
        assert!(!route("/x", None).overlaps(&route("/xy", None)));
    }

    #[test]
    fn manifests_are_bounded() {
        let limits = FunctionsConfig::default();
        assert!(FunctionManifest::default().validate(&limits).is_ok());
        let bad = [
            FunctionManifest {
                memory_mib: 0,
                ..Default::default()
            },
            FunctionManifest {
                timeout_ms: 10_000_000,
                ..Default::default()
            },
            FunctionManifest {
                max_instances: 0,
                ..Default::default()
            },
            FunctionManifest {
                max_queue: 1_000_000,
                ..Default::default()
            },
            FunctionManifest {
                routes: vec![FunctionRoute {
                    prefix: "/v2/x".into(),
                    host: None,
                    methods: vec![],
                }],
                ..Default::default()
            },
        ];
        for m in bad {
            assert!(m.validate(&limits).is_err(), "{m:?}");
        }
        let no_queue = FunctionManifest {
            max_queue: 0,
            ..Default::default()
        };
        assert!(no_queue.validate(&limits).is_ok());
    }

    #[test]
    fn a_queue_past_the_agents_bound_is_refused_by_name() {
        let limits = FunctionsConfig {
            max_queue: 16,
            ..Default::default()
        };
        let m = FunctionManifest::from_json(r#"{"max_queue": 17}"#).unwrap();
        let err = m.validate(&limits).unwrap_err().to_string();
        assert!(
            err.contains("`max_queue` 17") && err.contains("functions.max_queue"),
            "{err}"
        );
        let err = FunctionManifest::from_json(r#"{"max_queue": -1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`max_queue`"), "{err}");
        assert_eq!(FunctionManifest::from_json("{}").unwrap().max_queue, 64);
    }
}
