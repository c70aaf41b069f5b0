//! Versions that were to load and did not: the reason each failed, as a user can act on it,
//! and the entries that cannot serve their default route because of one (what readiness
//! reports).

use std::collections::BTreeMap;

use super::{Hooks, Registry, Rejection, RepositoryError};
use crate::storage::StoreError;

/// An entry whose requests without a version cannot be served because a load failed: its
/// active version did not load, or the entry as a whole is broken (a `--model-dir` model
/// with an invalid config, or without a version).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unready {
    /// The entry's name.
    pub name: String,
    /// The version that failed (the active one), if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Why: the load error's text.
    pub reason: String,
}

/// The text of a load failure, for the API: the model's own refusal in full (it says what
/// to change), but for a failure of the agent's storage only what happened, not where (the
/// path is in the log, and readiness is an open route).
pub(crate) fn reason(e: &RepositoryError) -> String {
    match e {
        RepositoryError::Storage(StoreError::Io { source, .. }) => {
            format!("the stored bytes cannot be read: {source} (the agent's log names the file)")
        }
        RepositoryError::Storage(_) | RepositoryError::Internal { .. } => {
            "the agent failed to load it; see the agent's log".to_owned()
        }
        RepositoryError::Rejected(Rejection::StoredConfig { source, .. }) => {
            format!("its stored config no longer parses: {source}")
        }
        other => inference::error_chain(other),
    }
}

/// Why the entry cannot serve requests without a version, if it cannot because of a failure:
/// its `problem`, else the failure of its `active` version.
pub(super) fn entry_reason(
    loaded: &[u64],
    failed: &BTreeMap<u64, String>,
    problem: &Option<String>,
    active: Option<u64>,
) -> Option<String> {
    if problem.is_some() {
        return problem.clone();
    }
    let active = active?;
    if loaded.contains(&active) {
        return None;
    }
    failed.get(&active).cloned()
}

impl<K: Hooks> Registry<K> {
    /// Entries whose requests without a version fail because a load failed, by name: the
    /// active version of each did not load, or the entry as a whole is broken. A failed
    /// version that is not active is listed with its reason but is not here: requests reach
    /// it only by asking for it.
    pub fn unready(&self) -> Vec<Unready> {
        let entries = self.read();
        let mut out: Vec<Unready> = entries
            .iter()
            .filter_map(|(name, e)| {
                let loaded: Vec<u64> = e.loaded.keys().copied().collect();
                let reason = entry_reason(&loaded, &e.failed, &e.problem, e.active)?;
                Some(Unready {
                    name: name.clone(),
                    version: e.active,
                    reason,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}
