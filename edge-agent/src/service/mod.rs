//! Domain logic, free of HTTP: the model repository, scheduling and batching.

mod batcher;
mod pool;
mod repository;
mod runner;

pub use pool::InferencePool;
pub use repository::{ModelSource, ModelSummary, PushRequest, Repository, RepositoryError};
pub use runner::{InferError, InferRequest, InferResponse, LoadedModel};
