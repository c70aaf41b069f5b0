//! Changes to a registry, one at a time: add a version, activate, roll back, delete. Each
//! either happens whole or leaves the registry as it was.

use super::{Conflict, Entry, Hooks, Registry, Rejection, RepositoryError};
use crate::storage::VersionRecord;

/// A new version to add.
#[derive(Debug)]
pub(crate) struct NewVersion<C> {
    /// The entry's name.
    pub name: String,
    /// Its number; `None` for one past the newest stored.
    pub version: Option<u64>,
    /// The bytes (ONNX, wasm).
    pub bytes: Vec<u8>,
    /// How it serves.
    pub config: C,
    /// The sha256 the client computed; the upload is refused if the bytes differ.
    pub expected_sha256: Option<String>,
    /// Make it the active version (an entry's first version always is).
    pub activate: bool,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl<K: Hooks> Registry<K> {
    fn conflict(&self, name: &str, conflict: Conflict) -> RepositoryError {
        RepositoryError::Conflict {
            kind: K::KIND,
            name: name.to_owned(),
            conflict,
        }
    }

    fn ensure_mutable(&self, name: &str) -> Result<(), RepositoryError> {
        match self.read().get(name) {
            Some(e) if e.read_only.is_some() => Err(self.conflict(name, Conflict::ReadOnly)),
            _ => Ok(()),
        }
    }

    /// Refuses `config` for `name` if it cannot serve beside the other entries' active
    /// versions.
    fn check_serving(&self, name: &str, config: &K::Config) -> Result<(), RepositoryError> {
        self.with_serving(|serving| {
            let mut others = serving
                .filter(|(n, _)| *n != name)
                .map(|(n, l)| (n, l.as_ref()));
            self.hooks.check_serving(name, config, &mut others)
        })
    }

    /// [`Self::check_serving`] for a version that is loaded; one that is not has nothing to
    /// check (it cannot serve).
    fn check_serving_version(&self, name: &str, version: u64) -> Result<(), RepositoryError> {
        match self.loaded(name, version) {
            Some(loaded) => self.check_serving(name, K::config(&loaded)),
            None => Ok(()),
        }
    }

    /// Checks, loads, stores and (if asked, or if it is the first) activates a new version;
    /// returns its number. On any failure the registry is unchanged.
    pub async fn add(&self, new: NewVersion<K::Config>) -> Result<u64, RepositoryError> {
        super::validate_name(K::KIND, &new.name)?;
        if new.version == Some(0) {
            return Err(Rejection::VersionZero.into());
        }
        self.hooks.validate(&new.config)?;
        let _guard = self.mutations.lock().await;
        self.ensure_mutable(&new.name)?;
        let sha = crate::storage::sha256_hex(&new.bytes);
        if let Some(declared) = &new.expected_sha256 {
            if !declared.eq_ignore_ascii_case(&sha) {
                return Err(Rejection::ShaMismatch {
                    declared: declared.clone(),
                    actual: sha,
                }
                .into());
            }
        }
        self.check_serving(&new.name, &new.config)?;
        let version = self.version_for(&new.name, new.version)?;
        let size = new.bytes.len() as u64;
        let config_json = serde_json::to_string(&new.config).expect("configs serialize");
        let loaded = self
            .hooks
            .load(&new.name, version, new.bytes.clone(), new.config)
            .await?;
        let record = VersionRecord {
            version,
            sha256: sha.clone(),
            size,
            config_json,
            created_at: now(),
        };
        if let Err(e) = self.store_version(&new.name, new.bytes, &record).await {
            // Nothing refers to bytes that were never recorded, nor to what derives from them.
            self.drop_blob_if_unused(&sha);
            return Err(e);
        }
        self.hooks.loaded(&new.name, &loaded);
        let activate = new.activate || self.read().get(&new.name).and_then(|e| e.active).is_none();
        if activate {
            self.store.activate(&new.name, version)?;
        }
        {
            let mut entries = self.write();
            let entry = entries
                .entry(new.name.clone())
                .or_insert_with(|| Entry::stored(None));
            entry.loaded.insert(version, loaded);
            if activate {
                entry.active = Some(version);
            }
        }
        self.loaded_changed();
        tracing::info!(kind = %K::KIND, name = %new.name, version, sha256 = %sha, activate, "version added");
        Ok(version)
    }

    /// The number of a new version: the one asked for if it is free, else one past the newest.
    fn version_for(&self, name: &str, asked: Option<u64>) -> Result<u64, RepositoryError> {
        let stored = match self.store.entry(name) {
            Ok(e) => e.versions.iter().map(|v| v.version).collect(),
            Err(crate::storage::StoreError::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        match asked {
            None => Ok(stored.iter().max().map_or(1, |v| v + 1)),
            Some(v) if stored.contains(&v) || self.loaded(name, v).is_some() => {
                Err(self.conflict(name, Conflict::VersionExists(v)))
            }
            Some(v) => Ok(v),
        }
    }

    /// Writes the bytes as a blob and records the version.
    async fn store_version(
        &self,
        name: &str,
        bytes: Vec<u8>,
        record: &VersionRecord,
    ) -> Result<(), RepositoryError> {
        let blobs = self.blobs.clone();
        tokio::task::spawn_blocking(move || blobs.put(&bytes))
            .await
            .map_err(|e| RepositoryError::Internal {
                context: "storing the upload failed",
                source: e.into(),
            })??;
        self.store.insert_version(name, record)?;
        Ok(())
    }

    /// Makes `version` the one requests go to.
    pub async fn activate(&self, name: &str, version: u64) -> Result<(), RepositoryError> {
        let _guard = self.mutations.lock().await;
        self.ensure_mutable(name)?;
        self.check_serving_version(name, version)?;
        self.store.activate(name, version)?;
        if let Some(e) = self.write().get_mut(name) {
            e.active = Some(version);
        }
        tracing::info!(kind = %K::KIND, name = %name, version, "version activated");
        Ok(())
    }

    /// Goes back to the previously active version; returns it.
    pub async fn rollback(&self, name: &str) -> Result<u64, RepositoryError> {
        let _guard = self.mutations.lock().await;
        self.ensure_mutable(name)?;
        let target = self.store.rollback_target(name)?;
        self.check_serving_version(name, target)?;
        let version = self.store.rollback(name)?;
        if let Some(e) = self.write().get_mut(name) {
            e.active = Some(version);
        }
        tracing::info!(kind = %K::KIND, name = %name, version, "rolled back");
        Ok(version)
    }

    /// Deletes one version that is not active; requests in flight on it finish first.
    pub async fn delete_version(&self, name: &str, version: u64) -> Result<(), RepositoryError> {
        let _guard = self.mutations.lock().await;
        self.ensure_mutable(name)?;
        let record = self.store.delete_version(name, version)?;
        if let Some(e) = self.write().get_mut(name) {
            e.loaded.remove(&version);
            e.failed.remove(&version);
        }
        self.drop_blob_if_unused(&record.sha256);
        self.loaded_changed();
        tracing::info!(kind = %K::KIND, name = %name, version, "version deleted");
        Ok(())
    }

    /// Deletes an entry and every version.
    pub async fn delete(&self, name: &str) -> Result<(), RepositoryError> {
        let _guard = self.mutations.lock().await;
        self.ensure_mutable(name)?;
        let record = self.store.delete_entry(name)?;
        self.write().remove(name);
        for v in record.versions {
            self.drop_blob_if_unused(&v.sha256);
        }
        self.loaded_changed();
        tracing::info!(kind = %K::KIND, name = %name, "deleted");
        Ok(())
    }

    /// Removes a blob (and, through the hooks, what derives from it) once no version refers
    /// to it.
    fn drop_blob_if_unused(&self, sha: &str) {
        match self.store.blob_in_use(sha) {
            Ok(false) => {
                if let Err(e) = self.blobs.remove(sha) {
                    tracing::warn!(kind = %K::KIND, sha256 = %sha, error = %e, "failed to remove an unused blob");
                }
                self.hooks.blob_removed(sha);
            }
            Ok(true) => {}
            Err(e) => {
                tracing::warn!(kind = %K::KIND, sha256 = %sha, error = %e, "could not check blob use")
            }
        }
    }
}
