//! The read-only `--model-dir`: `<dir>/<name>/<version>/model.onnx`, with an optional
//! `<dir>/<name>/config.toml`, loaded at start-up beside the stored models.
//!
//! What does not load is recorded with its reason, not only logged: a version whose file
//! cannot be read or does not load, every version of a model whose `config.toml` is invalid,
//! and a model directory without a version. They are listed (not ready, with the reason) and
//! make the agent unready while they are the version that serves (see
//! [`crate::service::Repository::unready`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::load::ModelHooks;
use crate::model_config::ModelConfig;
use crate::service::registry::{
    load_failure_reason, validate_name, Hooks, ReadOnly, Registry, RepositoryError,
};
use crate::storage::{Kind, StoreError, VersionRecord};

/// Loads every model of `dir` that no stored model shadows; each serves its newest version.
/// An entry with an invalid name, or shadowed by a pushed model, is logged and skipped.
pub(super) async fn open(
    registry: &Registry<ModelHooks>,
    dir: &Path,
) -> Result<(), RepositoryError> {
    let read_dir = std::fs::read_dir(dir).map_err(|source| {
        RepositoryError::Storage(StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })
    })?;
    let mut names: Vec<PathBuf> = read_dir
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    names.sort();
    for model_path in names {
        let name = model_path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if validate_name(Kind::Model, &name).is_err() {
            tracing::warn!(path = %model_path.display(), "skipping model-dir entry with an invalid name");
            continue;
        }
        if registry.contains(&name) {
            tracing::warn!(model = %name, "a pushed model shadows the model-dir model of the same name");
            continue;
        }
        let entry = open_model(registry, &name, &model_path).await;
        registry.insert_read_only(name, entry);
    }
    Ok(())
}

/// The model's `config.toml`: the default without one, the reason (logged) if it cannot be
/// read or is invalid.
fn read_config(name: &str, model_path: &Path) -> Result<ModelConfig, String> {
    let reason = match std::fs::read_to_string(model_path.join("config.toml")) {
        Ok(text) => match toml::from_str::<ModelConfig>(&text) {
            Ok(c) => return Ok(c),
            Err(e) => format!("invalid `{name}/config.toml`: {}", e.to_string().trim_end()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ModelConfig::default()),
        Err(e) => format!("cannot read `{name}/config.toml`: {e}"),
    };
    tracing::error!(model = %name, error = %reason, "model-dir model not loaded");
    Err(reason)
}

/// The version numbers under a model directory that hold something named `model.onnx`
/// (a file, or anything else there that then fails to read), oldest first.
fn versions(model_path: &Path) -> Vec<u64> {
    let mut versions: Vec<u64> = std::fs::read_dir(model_path)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .filter(|v| {
            *v >= 1
                && std::fs::symlink_metadata(model_path.join(v.to_string()).join("model.onnx"))
                    .is_ok()
        })
        .collect();
    versions.sort();
    versions
}

/// Loads the versions of one model directory; what does not load is recorded with its
/// reason.
async fn open_model(
    registry: &Registry<ModelHooks>,
    name: &str,
    model_path: &Path,
) -> ReadOnly<ModelHooks> {
    let versions = versions(model_path);
    let config = read_config(name, model_path);
    let config_json = serde_json::to_string(config.as_ref().unwrap_or(&ModelConfig::default()))
        .expect("configs serialize");
    let mut entry = ReadOnly {
        active: versions.last().copied(),
        versions: Vec::new(),
        loaded: BTreeMap::new(),
        failed: BTreeMap::new(),
        problem: None,
    };
    if versions.is_empty() {
        let reason =
            format!("no version: expected `{name}/<version>/model.onnx`, version 1 or more");
        tracing::error!(model = %name, error = %reason, "model-dir model not loaded");
        entry.problem = Some(config.err().unwrap_or(reason));
        return entry;
    }
    if let Err(reason) = &config {
        entry.problem = Some(reason.clone());
    }
    for &v in &versions {
        let relative = format!("{name}/{v}/model.onnx");
        let bytes = std::fs::read(model_path.join(v.to_string()).join("model.onnx"));
        let record = VersionRecord {
            version: v,
            sha256: bytes
                .as_ref()
                .map_or_else(|_| String::new(), |b| crate::storage::sha256_hex(b)),
            size: bytes.as_ref().map_or(0, |b| b.len() as u64),
            config_json: config_json.clone(),
            created_at: 0,
        };
        entry
            .versions
            .push((record, config.clone().unwrap_or_default()));
        let loaded = match (&config, bytes) {
            (Err(reason), _) => Err(reason.clone()),
            (Ok(_), Err(e)) => Err(format!("cannot read `{relative}`: {e}")),
            (Ok(config), Ok(bytes)) => registry
                .hooks()
                .load(name, v, bytes, config.clone())
                .await
                .map_err(|e| load_failure_reason(&e)),
        };
        match loaded {
            Ok(m) => {
                entry.loaded.insert(v, m);
            }
            Err(reason) => {
                if config.is_ok() {
                    tracing::error!(model = %name, version = v, error = %reason, "model-dir version failed to load");
                }
                entry.failed.insert(v, reason);
            }
        }
    }
    tracing::info!(model = %name, versions = entry.loaded.len(), failed = entry.failed.len(), "loaded from model dir");
    entry
}
