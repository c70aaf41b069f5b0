//! A versioned registry of named artifacts (models, functions): stored versions with an
//! activation history, each loaded for serving; push, activate, roll back, delete, and the
//! blobs no version refers to any more removed.
//!
//! What differs between the kinds of artifact is in [`Hooks`]: how bytes load into something
//! that serves, which configs may serve together (function routes), what to clean up with a
//! blob (compiled artifacts), and what to report (metrics). Requests take an `Arc` of a loaded
//! version, so a swap sends new requests to the new version while in-flight ones finish on
//! the old. Changes are serialized by one lock per registry.

mod error;
mod failures;
mod mutate;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use error::{validate_name, Conflict, Rejection, RepositoryError};
pub(crate) use failures::reason as load_failure_reason;
pub use failures::Unready;
pub(crate) use mutate::NewVersion;

use crate::storage::{BlobStore, Kind, VersionRecord, VersionStore};

/// What differs between the kinds of artifact a [`Registry`] holds.
pub(crate) trait Hooks: Send + Sync + 'static {
    /// A version loaded and ready to serve.
    type Loaded: Send + Sync + 'static;
    /// How a version serves (a model config, a function manifest), stored as JSON with it.
    type Config: Serialize + DeserializeOwned + Default + Clone + Send + 'static;
    /// What the registry holds, for errors and logs.
    const KIND: Kind;

    /// The config a loaded version serves with.
    fn config(loaded: &Self::Loaded) -> &Self::Config;

    /// Checks a config before anything else happens to an upload.
    fn validate(&self, _config: &Self::Config) -> Result<(), RepositoryError> {
        Ok(())
    }

    /// Loads bytes into a version that can serve (off the reactor); refuses what cannot.
    fn load(
        &self,
        name: &str,
        version: u64,
        bytes: Vec<u8>,
        config: Self::Config,
    ) -> impl Future<Output = Result<Arc<Self::Loaded>, RepositoryError>> + Send;

    /// Refuses to let `name` serve with `config` while `serving` (every other entry's active
    /// loaded version) serve, e.g. for overlapping routes.
    fn check_serving(
        &self,
        _name: &str,
        _config: &Self::Config,
        _serving: &mut dyn Iterator<Item = (&str, &Self::Loaded)>,
    ) -> Result<(), RepositoryError> {
        Ok(())
    }

    /// A stored version was loaded (at start-up, or pushed and stored).
    fn loaded(&self, _name: &str, _loaded: &Self::Loaded) {}

    /// The blob `sha256` was removed: drop what was derived from it.
    fn blob_removed(&self, _sha256: &str) {}

    /// The loaded versions changed; `count` are loaded now.
    fn loaded_changed(&self, _count: usize) {}
}

/// One name: its loaded versions and which one serves.
struct Entry<K: Hooks> {
    active: Option<u64>,
    loaded: BTreeMap<u64, Arc<K::Loaded>>,
    /// Why versions that were to load did not: the load error's text, by version.
    failed: BTreeMap<u64, String>,
    /// Why the entry as a whole cannot serve (a `--model-dir` model without a version, or
    /// with an invalid config).
    problem: Option<String>,
    /// The versions of an entry that is not in the store (a `--model-dir` model): read-only.
    read_only: Option<Vec<(VersionRecord, K::Config)>>,
}

impl<K: Hooks> Entry<K> {
    fn stored(active: Option<u64>) -> Self {
        Self {
            active,
            loaded: BTreeMap::new(),
            failed: BTreeMap::new(),
            problem: None,
            read_only: None,
        }
    }

    fn serving(&self) -> Option<&Arc<K::Loaded>> {
        self.active.and_then(|v| self.loaded.get(&v))
    }
}

/// An entry as listed: its versions, oldest first, with their configs and whether each is
/// loaded.
pub(crate) struct Listing<C> {
    /// Its name.
    pub name: String,
    /// Whether it is read-only (not in the store).
    pub read_only: bool,
    /// The version requests go to.
    pub active: Option<u64>,
    /// Why requests without a version cannot be served, if they cannot.
    pub reason: Option<String>,
    /// Its versions.
    pub versions: Vec<ListedVersion<C>>,
}

/// A version as listed.
pub(crate) struct ListedVersion<C> {
    /// What is stored of it.
    pub record: VersionRecord,
    /// Its config (the default if the stored one no longer parses).
    pub config: C,
    /// Whether it is loaded and can serve.
    pub ready: bool,
    /// Why it is not loaded (the load error), if it is not.
    pub reason: Option<String>,
}

/// An entry that is not in the store (a `--model-dir` model), with what loaded and what
/// did not.
pub(crate) struct ReadOnly<K: Hooks> {
    /// The version requests go to.
    pub active: Option<u64>,
    /// Every version found, loaded or not.
    pub versions: Vec<(VersionRecord, K::Config)>,
    /// The versions that loaded.
    pub loaded: BTreeMap<u64, Arc<K::Loaded>>,
    /// Why the others did not, by version.
    pub failed: BTreeMap<u64, String>,
    /// Why the entry as a whole cannot serve, if it cannot.
    pub problem: Option<String>,
}

/// Stored and loaded versions of one kind of artifact.
pub(crate) struct Registry<K: Hooks> {
    store: Arc<dyn VersionStore>,
    blobs: BlobStore,
    hooks: K,
    entries: RwLock<HashMap<String, Entry<K>>>,
    mutations: tokio::sync::Mutex<()>,
}

impl<K: Hooks> Registry<K> {
    /// Opens the registry and loads every stored version. A version that no longer loads
    /// (say, ONNX Runtime is gone) is logged, left unloaded with the reason recorded (see
    /// [`Self::unready`]); it stays stored.
    pub async fn open(
        store: Arc<dyn VersionStore>,
        blobs: BlobStore,
        hooks: K,
    ) -> Result<Self, RepositoryError> {
        let registry = Self {
            store,
            blobs,
            hooks,
            entries: RwLock::new(HashMap::new()),
            mutations: tokio::sync::Mutex::new(()),
        };
        for record in registry.store.entries()? {
            let mut entry = Entry::stored(record.active_version);
            for v in &record.versions {
                match registry.load_stored(&record.name, v).await {
                    Ok(loaded) => {
                        registry.hooks.loaded(&record.name, &loaded);
                        entry.loaded.insert(v.version, loaded);
                    }
                    Err(e) => {
                        tracing::error!(
                            kind = %K::KIND,
                            name = %record.name,
                            version = v.version,
                            error = %inference::error_chain(&e),
                            "stored version failed to load"
                        );
                        entry.failed.insert(v.version, failures::reason(&e));
                    }
                }
            }
            registry.write().insert(record.name, entry);
        }
        registry.loaded_changed();
        Ok(registry)
    }

    /// What differs for this kind.
    pub fn hooks(&self) -> &K {
        &self.hooks
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Entry<K>>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Entry<K>>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }

    fn loaded_changed(&self) {
        self.hooks.loaded_changed(self.loaded_count());
    }

    async fn load_stored(
        &self,
        name: &str,
        v: &VersionRecord,
    ) -> Result<Arc<K::Loaded>, RepositoryError> {
        let config: K::Config =
            serde_json::from_str(&v.config_json).map_err(|source| Rejection::StoredConfig {
                name: name.to_owned(),
                version: v.version,
                source,
            })?;
        let blobs = self.blobs.clone();
        let sha = v.sha256.clone();
        let bytes = tokio::task::spawn_blocking(move || blobs.get(&sha))
            .await
            .map_err(|e| RepositoryError::Internal {
                context: "reading a stored blob failed",
                source: e.into(),
            })??;
        self.hooks.load(name, v.version, bytes, config).await
    }

    /// Adds an entry that is not in the store and cannot change (a `--model-dir` model).
    pub fn insert_read_only(&self, name: String, entry: ReadOnly<K>) {
        let entry = Entry {
            active: entry.active,
            loaded: entry.loaded,
            failed: entry.failed,
            problem: entry.problem,
            read_only: Some(entry.versions),
        };
        self.write().insert(name, entry);
        self.loaded_changed();
    }

    /// Whether an entry of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.read().contains_key(name)
    }

    /// The loaded version that serves `name`: `version`, or the active one.
    pub fn resolve(
        &self,
        name: &str,
        version: Option<u64>,
    ) -> Result<Arc<K::Loaded>, RepositoryError> {
        let entries = self.read();
        let entry = entries.get(name).ok_or_else(|| RepositoryError::NotFound {
            kind: K::KIND,
            name: name.to_owned(),
            version: None,
        })?;
        let not_ready = |version: Option<u64>| RepositoryError::NotReady {
            kind: K::KIND,
            name: name.to_owned(),
            version,
            reason: version
                .and_then(|v| entry.failed.get(&v))
                .or(entry.problem.as_ref())
                .cloned(),
        };
        let v = version.or(entry.active).ok_or_else(|| not_ready(None))?;
        entry
            .loaded
            .get(&v)
            .cloned()
            .ok_or_else(|| not_ready(Some(v)))
    }

    /// A loaded version, if it is loaded.
    pub fn loaded(&self, name: &str, version: u64) -> Option<Arc<K::Loaded>> {
        self.read().get(name)?.loaded.get(&version).cloned()
    }

    /// Calls `f` with every entry's active loaded version, by name (in no order).
    pub fn with_serving<R>(
        &self,
        f: impl FnOnce(&mut dyn Iterator<Item = (&str, &Arc<K::Loaded>)>) -> R,
    ) -> R {
        let entries = self.read();
        let mut serving = entries
            .iter()
            .filter_map(|(n, e)| Some((n.as_str(), e.serving()?)));
        f(&mut serving)
    }

    /// Loaded versions, of every entry.
    pub fn loaded_count(&self) -> usize {
        self.read().values().map(|e| e.loaded.len()).sum()
    }

    /// One entry with its versions.
    pub fn listing(&self, name: &str) -> Result<Listing<K::Config>, RepositoryError> {
        let (loaded, failed, problem, read_only) = {
            let entries = self.read();
            match entries.get(name) {
                Some(e) => (
                    e.loaded.keys().copied().collect::<Vec<_>>(),
                    e.failed.clone(),
                    e.problem.clone(),
                    e.read_only.clone().map(|v| (e.active, v)),
                ),
                None => (Vec::new(), BTreeMap::new(), None, None),
            }
        };
        let listed = |record: VersionRecord, config| {
            let ready = loaded.contains(&record.version);
            ListedVersion {
                ready,
                reason: if ready {
                    None
                } else {
                    failed.get(&record.version).cloned()
                },
                record,
                config,
            }
        };
        let reason =
            |active: Option<u64>| failures::entry_reason(&loaded, &failed, &problem, active);
        if let Some((active, versions)) = read_only {
            return Ok(Listing {
                name: name.to_owned(),
                read_only: true,
                active,
                reason: reason(active),
                versions: versions.into_iter().map(|(r, c)| listed(r, c)).collect(),
            });
        }
        let record = self.store.entry(name)?;
        Ok(Listing {
            name: record.name,
            read_only: false,
            active: record.active_version,
            reason: reason(record.active_version),
            versions: record
                .versions
                .into_iter()
                .map(|r| {
                    let config = serde_json::from_str(&r.config_json).unwrap_or_default();
                    listed(r, config)
                })
                .collect(),
        })
    }

    /// Every entry, by name. An entry deleted while this lists is left out.
    pub fn listings(&self) -> Result<Vec<Listing<K::Config>>, RepositoryError> {
        let mut names: Vec<String> = self.read().keys().cloned().collect();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match self.listing(&name) {
                Ok(l) => out.push(l),
                Err(RepositoryError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

impl<K: Hooks> std::fmt::Debug for Registry<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("kind", &K::KIND)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
