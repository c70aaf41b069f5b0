//! The read-only `--model-dir`: `<dir>/<name>/<version>/model.onnx`, with an optional
//! `<dir>/<name>/config.toml`, loaded at start-up beside the stored models.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::load::ModelHooks;
use crate::model_config::ModelConfig;
use crate::service::registry::{validate_name, Hooks, Registry, RepositoryError};
use crate::storage::{Kind, StoreError, VersionRecord};

/// Loads every model of `dir` that no stored model shadows; each serves its newest version.
/// An entry that cannot be read is logged and skipped.
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
        let Some(config) = read_config(&name, &model_path) else {
            continue;
        };
        open_model(registry, name, &model_path, config).await;
    }
    Ok(())
}

/// The model's `config.toml`, the default without one, `None` (logged) if it is invalid.
fn read_config(name: &str, model_path: &Path) -> Option<ModelConfig> {
    match std::fs::read_to_string(model_path.join("config.toml")) {
        Ok(text) => match toml::from_str::<ModelConfig>(&text) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(model = %name, error = %e, "invalid config.toml; skipping the model");
                None
            }
        },
        Err(_) => Some(ModelConfig::default()),
    }
}

/// Loads the versions of one model directory into the registry.
async fn open_model(
    registry: &Registry<ModelHooks>,
    name: String,
    model_path: &Path,
    config: ModelConfig,
) {
    let mut versions: Vec<u64> = std::fs::read_dir(model_path)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .filter(|v| *v >= 1 && model_path.join(v.to_string()).join("model.onnx").is_file())
        .collect();
    versions.sort();
    let config_json = serde_json::to_string(&config).expect("configs serialize");
    let mut listed = Vec::new();
    let mut loaded = BTreeMap::new();
    for &v in &versions {
        let file = model_path.join(v.to_string()).join("model.onnx");
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(path = %file.display(), error = %e, "unreadable model file");
                continue;
            }
        };
        let record = VersionRecord {
            version: v,
            sha256: inference::Model::inspect(&bytes)
                .map(|m| m.sha256)
                .unwrap_or_default(),
            size: bytes.len() as u64,
            config_json: config_json.clone(),
            created_at: 0,
        };
        listed.push((record, config.clone()));
        match registry.hooks().load(&name, v, bytes, config.clone()).await {
            Ok(m) => {
                loaded.insert(v, m);
            }
            Err(e) => {
                tracing::error!(model = %name, version = v, error = %e, "model-dir version failed to load")
            }
        }
    }
    tracing::info!(model = %name, versions = loaded.len(), "loaded from model dir");
    registry.insert_read_only(name, versions.last().copied(), listed, loaded);
}
