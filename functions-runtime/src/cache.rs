//! The precompiled-artifact cache: modules are compiled once and serialized to the cache
//! dir, and deserialized only when their bytes hash to the digest recorded when they were
//! written.

use std::path::Path;

use sha2::{Digest, Sha256};
use wasmtime::Module;

use crate::engine::WasmRuntime;
use crate::error::CompileError;

/// A module from [`WasmRuntime::load_verified`] or [`WasmRuntime::load_within`].
pub struct CachedModule {
    /// The module.
    pub module: Module,
    /// Whether it had to be compiled (no trusted artifact).
    pub compiled: bool,
    /// The sha256 of the artifact written now, to record for the next load.
    pub written: Option<String>,
}

/// Serializes `module` to `path` (a temp file, fsynced, then renamed) in `cache_dir` (created
/// with mode 0700); returns the hex sha256 of the bytes written.
fn write_artifact(cache_dir: &Path, path: &Path, module: &Module) -> std::io::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let bytes = module.serialize().map_err(std::io::Error::other)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(cache_dir)?;
    std::fs::set_permissions(cache_dir, std::fs::Permissions::from_mode(0o700))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// Refuses a module whose initial linear memory is larger than `memory_mib` MiB.
pub fn check_initial_memory(module: &Module, memory_mib: u64) -> Result<(), CompileError> {
    let pages = module.resources_required().max_initial_memory_size;
    let bytes = pages.map(|p| p.saturating_mul(64 << 10));
    let cap = memory_mib.saturating_mul(1 << 20);
    match bytes {
        Some(bytes) if bytes > cap => Err(CompileError::InitialMemory {
            bytes,
            limit_mib: memory_mib,
        }),
        _ => Ok(()),
    }
}

impl WasmRuntime {
    /// [`Self::load_verified`] trusting only the artifacts this runtime wrote or verified
    /// since it started; returns the module and whether it had to compile.
    pub fn load_cached(
        &self,
        cache_dir: &Path,
        sha256: &str,
        wasm: &[u8],
    ) -> Result<(Module, bool), CompileError> {
        let cached = self.load_verified(cache_dir, sha256, wasm, None)?;
        Ok((cached.module, cached.compiled))
    }

    /// The module for `wasm` (whose hex sha256 is `sha256`): deserialized from the artifact
    /// cache in `cache_dir` when this engine wrote one whose bytes hash to `trusted` (the
    /// digest recorded when it was written, kept outside the cache dir; else the digest this
    /// runtime remembers writing), else compiled and written back (best effort: a cache that
    /// cannot be written only costs a recompile).
    pub fn load_verified(
        &self,
        cache_dir: &Path,
        sha256: &str,
        wasm: &[u8],
        trusted: Option<&str>,
    ) -> Result<CachedModule, CompileError> {
        self.load_checked(cache_dir, sha256, wasm, trusted, None)
    }

    /// [`Self::load_verified`] for a function whose manifest grants `memory_mib`: a module
    /// whose initial memory is larger is refused before anything is written to the cache.
    pub fn load_within(
        &self,
        cache_dir: &Path,
        sha256: &str,
        wasm: &[u8],
        trusted: Option<&str>,
        memory_mib: u64,
    ) -> Result<CachedModule, CompileError> {
        self.load_checked(cache_dir, sha256, wasm, trusted, Some(memory_mib))
    }

    fn load_checked(
        &self,
        cache_dir: &Path,
        sha256: &str,
        wasm: &[u8],
        trusted: Option<&str>,
        memory_mib: Option<u64>,
    ) -> Result<CachedModule, CompileError> {
        let fits = |module: &Module| match memory_mib {
            Some(mib) => check_initial_memory(module, mib),
            None => Ok(()),
        };
        let path = cache_dir.join(format!("{sha256}-{}.cwasm", self.engine_hash()));
        let remembered = self.digests().get(&path).cloned();
        if let Some(digest) = trusted.or(remembered.as_deref()) {
            match self.read_artifact(&path, digest) {
                Ok(module) => {
                    self.check(&module)?;
                    fits(&module)?;
                    self.digests().insert(path, digest.to_owned());
                    return Ok(CachedModule {
                        module,
                        compiled: false,
                        written: None,
                    });
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cached artifact refused; recompiling")
                }
            }
        }
        let module = self.compile(wasm)?;
        fits(&module)?;
        let written = match write_artifact(cache_dir, &path, &module) {
            Ok(digest) => {
                self.digests().insert(path, digest.clone());
                Some(digest)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot cache the compiled module; it will be compiled again at the next start");
                None
            }
        };
        Ok(CachedModule {
            module,
            compiled: true,
            written,
        })
    }

    /// Removes the artifact of the module whose sha256 is `sha256` from `cache_dir` and
    /// forgets its digest (when its last version is deleted, or its deploy failed).
    pub fn forget_artifact(&self, cache_dir: &Path, sha256: &str) {
        let path = cache_dir.join(format!("{sha256}-{}.cwasm", self.engine_hash()));
        self.digests().remove(&path);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove an artifact");
            }
            _ => {}
        }
    }

    /// Reads an artifact into memory (refusing a symlink or anything but a plain file) and
    /// deserializes it only if its bytes hash to `digest`.
    #[allow(
        unsafe_code,
        reason = "deserializing an artifact that this agent compiled, checked against its digest"
    )]
    fn read_artifact(&self, path: &Path, digest: &str) -> wasmtime::Result<Module> {
        let meta = std::fs::symlink_metadata(path)?;
        if !meta.file_type().is_file() {
            return Err(wasmtime::format_err!("not a plain file"));
        }
        let bytes = std::fs::read(path)?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if !actual.eq_ignore_ascii_case(digest) {
            return Err(wasmtime::format_err!(
                "its sha256 is {actual}, not the {digest} recorded when it was written"
            ));
        }
        // SAFETY: these bytes are exactly the `Module::serialize` output this agent wrote (their
        // sha256 matches the digest recorded outside the cache dir when it wrote them), for an
        // engine with this configuration hash.
        unsafe { Module::deserialize(&self.engine, &bytes) }
    }
}
