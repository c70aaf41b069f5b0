//! What the registry needs to know about models: how ONNX bytes load into a serving
//! [`LoadedModel`], and the loaded-models gauge.

use std::path::PathBuf;
use std::sync::Arc;

use inference::Model;

use crate::metrics::Metrics;
use crate::model_config::ModelConfig;
use crate::service::pool::InferencePool;
use crate::service::registry::{Hooks, Rejection, RepositoryError};
use crate::service::runner::LoadedModel;
use crate::storage::Kind;

/// The model side of the registry.
pub(crate) struct ModelHooks {
    /// The ONNX Runtime library for models on `ort`, and for the fallback of `auto`.
    pub ort_library: Option<PathBuf>,
    /// Where inference computes.
    pub pool: InferencePool,
    /// The agent's metrics.
    pub metrics: Metrics,
}

impl Hooks for ModelHooks {
    type Loaded = LoadedModel;
    type Config = ModelConfig;
    const KIND: Kind = Kind::Model;

    fn config(loaded: &LoadedModel) -> &ModelConfig {
        &loaded.config
    }

    /// Loads the bytes with the config's backend off the reactor; refuses a config that does
    /// not validate, and batching for a model without a variable batch axis.
    async fn load(
        &self,
        name: &str,
        version: u64,
        bytes: Vec<u8>,
        config: ModelConfig,
    ) -> Result<Arc<LoadedModel>, RepositoryError> {
        let refuse = |reason| Rejection::Config {
            kind: Kind::Model,
            reason,
        };
        config.validate().map_err(refuse)?;
        let options = config.load_options(self.ort_library.as_deref());
        let model = tokio::task::spawn_blocking(move || Model::load(bytes, &options))
            .await
            .map_err(|e| RepositoryError::Internal {
                context: "loading the model failed",
                source: e.into(),
            })?
            .map_err(Rejection::Model)?;
        if config.batching.is_some() {
            LoadedModel::check_batchable(model.metadata()).map_err(refuse)?;
        }
        Ok(Arc::new(LoadedModel::new(
            name.to_owned(),
            version,
            config,
            model,
            self.pool.clone(),
            self.metrics.clone(),
        )))
    }

    fn loaded_changed(&self, count: usize) {
        self.metrics.set_loaded_models(count);
    }
}
