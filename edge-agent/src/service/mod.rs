//! Domain logic, free of HTTP: the model repository, scheduling and batching, and the
//! function repository.

mod batcher;
mod functions;
mod infer;
mod manifest;
mod memory;
mod pool;
mod repository;
mod runner;

pub use functions::{
    CallError, DeployRequest, FunctionResponse, FunctionSummary, FunctionVersion, Functions,
    LoadedFunction,
};
pub use manifest::{FunctionManifest, FunctionRoute};
pub use memory::{MemoryError, RequestMemory, Reservation};
pub use pool::InferencePool;
pub use repository::{
    validate_name, validate_name_of, ModelSource, ModelSummary, PushRequest, Repository,
    RepositoryError,
};
pub use infer::{InferError, InferRequest, InferResponse};
pub use runner::LoadedModel;
