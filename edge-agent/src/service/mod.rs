//! Domain logic, free of HTTP: the versioned registry that the model and function
//! repositories share, scheduling and batching of inference, and calling functions.

mod batcher;
mod functions;
mod models;
mod infer;
mod manifest;
mod memory;
mod pool;
mod registry;
mod runner;

pub use functions::{
    CallError, DeployRequest, FunctionResponse, FunctionStores, FunctionSummary, FunctionVersion,
    Functions, LoadedFunction,
};
pub use manifest::{FunctionManifest, FunctionRoute};
pub use memory::{MemoryError, RequestMemory, Reservation};
pub use pool::InferencePool;
pub use models::{ModelSource, ModelSummary, PushRequest, Repository, VersionSummary};
pub use registry::{validate_name, Conflict, Rejection, RepositoryError};
pub use infer::{InferError, InferRequest, InferResponse};
pub use runner::LoadedModel;
pub use crate::storage::Kind;
