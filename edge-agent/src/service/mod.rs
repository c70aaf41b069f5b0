//! Domain logic, free of HTTP: the versioned registry that the model and function
//! repositories share, scheduling and batching of inference, and calling functions.

mod batcher;
#[cfg(feature = "functions")]
mod functions;
mod infer;
#[cfg(feature = "functions")]
mod manifest;
mod memory;
mod models;
mod pool;
mod registry;
mod runner;

pub use crate::storage::Kind;
#[cfg(feature = "functions")]
pub use functions::{
    CallError, DeployRequest, FunctionResponse, FunctionStores, FunctionSummary, FunctionVersion,
    Functions, LoadedFunction,
};
pub use infer::{InferError, InferRequest, InferResponse};
#[cfg(feature = "functions")]
pub use manifest::{FunctionManifest, FunctionRoute};
pub use memory::{MemoryError, RequestMemory, Reservation};
pub use models::{ModelSource, ModelSummary, PushRequest, Repository, VersionSummary};
pub use pool::InferencePool;
pub use registry::{validate_name, Conflict, Rejection, RepositoryError, Unready};
pub use runner::LoadedModel;
