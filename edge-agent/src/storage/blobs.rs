//! Content-addressed blobs: `<dir>/<sha256>`, written to a temp file, fsynced, then renamed, so
//! a crash leaves either the whole blob or none.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::StoreError;

/// Model or module bytes on disk, named by their SHA-256.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl BlobStore {
    /// Opens (creating) the blob directory, clearing temp files a crash left behind.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Self { dir })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256)
    }

    /// Stores the bytes durably and returns their hex SHA-256.
    pub fn put(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let sha = sha256_hex(bytes);
        let path = self.path(&sha);
        if path.exists() {
            return Ok(sha);
        }
        let tmp = self.dir.join(format!(".tmp-{sha}-{}", std::process::id()));
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        Ok(sha)
    }

    /// Reads a blob and checks it still has its digest.
    pub fn get(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.path(sha256);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        if sha256_hex(&bytes) != sha256 {
            return Err(StoreError::Io {
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "blob does not match its sha256",
                ),
            });
        }
        Ok(bytes)
    }

    /// Removes every blob whose digest `keep` does not hold (a crash between writing a blob and
    /// recording it leaves one that nothing refers to); returns how many files and bytes went.
    /// Only files named like a blob are considered.
    pub fn retain(
        &self,
        keep: &std::collections::HashSet<String>,
    ) -> Result<(usize, u64), StoreError> {
        let mut removed = (0, 0);
        for entry in std::fs::read_dir(&self.dir)
            .map_err(io(&self.dir))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_blob = name.len() == 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !is_blob || keep.contains(&name) {
                continue;
            }
            let size = entry.metadata().map_or(0, |m| m.len());
            let path = entry.path();
            std::fs::remove_file(&path).map_err(io(&path))?;
            removed = (removed.0 + 1, removed.1 + size);
        }
        Ok(removed)
    }

    /// Removes a blob; a missing one is fine.
    pub fn remove(&self, sha256: &str) -> Result<(), StoreError> {
        let path = self.path(sha256);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
            _ => Ok(()),
        }
    }
}

/// The hex SHA-256 of `bytes`: the name of a blob, and a version's `sha256`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_and_detect_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let sha = store.put(b"hello").unwrap();
        assert_eq!(store.put(b"hello").unwrap(), sha);
        assert_eq!(store.get(&sha).unwrap(), b"hello");
        std::fs::write(dir.path().join(&sha), b"tampered").unwrap();
        assert!(store.get(&sha).is_err());
        store.remove(&sha).unwrap();
        store.remove(&sha).unwrap();
    }

    #[test]
    fn retain_removes_only_unreferenced_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let kept = store.put(b"kept").unwrap();
        let orphan = store.put(b"orphan").unwrap();
        std::fs::write(dir.path().join("README"), b"not a blob").unwrap();
        std::fs::write(dir.path().join(".tmp-abc-1"), b"crash leftover").unwrap();
        let keep = [kept.clone()].into_iter().collect();
        assert_eq!(store.retain(&keep).unwrap(), (1, 6));
        assert_eq!(store.get(&kept).unwrap(), b"kept");
        assert!(store.get(&orphan).is_err());
        assert!(dir.path().join("README").exists());
        drop(store);
        BlobStore::open(dir.path()).unwrap();
        assert!(!dir.path().join(".tmp-abc-1").exists());
    }
}
