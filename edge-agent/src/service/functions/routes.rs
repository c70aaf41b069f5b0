//! Which function a manifest route sends a request to, and route conflicts between
//! functions.

use std::sync::Arc;

use super::{Functions, LoadedFunction};
use crate::service::manifest::FunctionManifest;
use crate::service::RepositoryError;

/// How a matching route ranks (higher wins): longer prefix, then one that names a host, then
/// the function whose name sorts first.
fn route_rank(
    prefix_len: usize,
    named_host: bool,
    function: &str,
) -> (usize, bool, std::cmp::Reverse<&str>) {
    (prefix_len, named_host, std::cmp::Reverse(function))
}

impl Functions {
    /// Refuses a manifest whose route overlaps one that another function's active version
    /// serves: the same prefix, and the same host (case-insensitively) or no host on either
    /// (a route without a host takes every host).
    pub(super) fn check_routes(
        &self,
        name: &str,
        manifest: &FunctionManifest,
    ) -> Result<(), RepositoryError> {
        let entries = self.read();
        for (other, entry) in entries.iter().filter(|(n, _)| n.as_str() != name) {
            let Some(f) = entry.active.and_then(|v| entry.loaded.get(&v)) else {
                continue;
            };
            for mine in &manifest.routes {
                if f.manifest.routes.iter().any(|r| r.overlaps(mine)) {
                    return Err(RepositoryError::Conflict(format!(
                        "route prefix `{}`{} is already served by function `{other}`",
                        mine.prefix,
                        mine.host
                            .as_ref()
                            .map_or_else(String::new, |h| format!(" (host `{h}`)"))
                    )));
                }
            }
        }
        Ok(())
    }

    /// The manifest of a loaded version, if it is loaded.
    pub(super) fn manifest_of(&self, name: &str, version: u64) -> Option<FunctionManifest> {
        self.read()
            .get(name)
            .and_then(|e| e.loaded.get(&version))
            .map(|f| f.manifest.clone())
    }

    /// The active function whose manifest route takes this request, with `PATH_INFO` and the
    /// matched prefix. The longest prefix wins; on a tie, a route that names a host, then the
    /// function whose name sorts first.
    pub fn route(
        &self,
        host: Option<&str>,
        method: &str,
        path: &str,
    ) -> Option<(Arc<LoadedFunction>, String, String)> {
        let entries = self.read();
        let mut best: Option<(Arc<LoadedFunction>, String, String, bool)> = None;
        for entry in entries.values() {
            let Some(f) = entry.active.and_then(|v| entry.loaded.get(&v)) else {
                continue;
            };
            for r in &f.manifest.routes {
                if let Some(rest) = r.matches(host, method, path) {
                    let prefix = r.prefix.trim_end_matches('/').to_owned();
                    let named = r.host.is_some();
                    let better = best.as_ref().is_none_or(|(g, p, _, h)| {
                        route_rank(prefix.len(), named, &f.name) > route_rank(p.len(), *h, &g.name)
                    });
                    if better {
                        best = Some((f.clone(), prefix, rest, named));
                    }
                }
            }
        }
        best.map(|(f, prefix, rest, _)| (f, prefix, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_prefer_a_named_host_then_the_first_name() {
        assert!(route_rank(3, false, "z") > route_rank(2, true, "a"));
        assert!(route_rank(2, true, "z") > route_rank(2, false, "a"));
        assert!(route_rank(2, false, "a") > route_rank(2, false, "b"));
    }
}
