//! Which function a manifest route sends a request to, and route conflicts between
//! functions.

use std::sync::Arc;

use super::{Functions, LoadedFunction};
use crate::service::manifest::FunctionManifest;
use crate::service::registry::{Conflict, RepositoryError};
use crate::storage::Kind;

/// How a matching route ranks (higher wins): longer prefix, then one that names a host, then
/// the function whose name sorts first.
fn route_rank(
    prefix_len: usize,
    named_host: bool,
    function: &str,
) -> (usize, bool, std::cmp::Reverse<&str>) {
    (prefix_len, named_host, std::cmp::Reverse(function))
}

/// Refuses a manifest whose route overlaps one that another function's active version
/// (`serving`) serves: the same prefix, and the same host (case-insensitively) or no host on
/// either (a route without a host takes every host).
pub(super) fn check_routes(
    name: &str,
    manifest: &FunctionManifest,
    serving: &mut dyn Iterator<Item = (&str, &LoadedFunction)>,
) -> Result<(), RepositoryError> {
    for (other, f) in serving {
        for mine in &manifest.routes {
            if f.manifest.routes.iter().any(|r| r.overlaps(mine)) {
                return Err(RepositoryError::Conflict {
                    kind: Kind::Function,
                    name: name.to_owned(),
                    conflict: Conflict::RouteTaken {
                        prefix: mine.prefix.clone(),
                        host: mine.host.clone(),
                        by: other.to_owned(),
                    },
                });
            }
        }
    }
    Ok(())
}

impl Functions {
    /// The active function whose manifest route takes this request, with `PATH_INFO` and the
    /// matched prefix. The longest prefix wins; on a tie, a route that names a host, then the
    /// function whose name sorts first.
    pub fn route(
        &self,
        host: Option<&str>,
        method: &str,
        path: &str,
    ) -> Option<(Arc<LoadedFunction>, String, String)> {
        self.registry.with_serving(|serving| {
            let mut best: Option<(Arc<LoadedFunction>, String, String, bool)> = None;
            for (_, f) in serving {
                for r in &f.manifest.routes {
                    if let Some(rest) = r.matches(host, method, path) {
                        let prefix = r.prefix.trim_end_matches('/').to_owned();
                        let named = r.host.is_some();
                        let better = best.as_ref().is_none_or(|(g, p, _, h)| {
                            route_rank(prefix.len(), named, &f.name)
                                > route_rank(p.len(), *h, &g.name)
                        });
                        if better {
                            best = Some((f.clone(), prefix, rest, named));
                        }
                    }
                }
            }
            best.map(|(f, prefix, rest, _)| (f, prefix, rest))
        })
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
