//! The ONNX Runtime backend: the library is loaded at run time, and sessions are pooled because
//! `Session::run` needs `&mut`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use ort::environment::Environment;
use ort::logging::LogLevel;
use ort::session::{OutputSelector, RunOptions, Session, SessionInputValue};
use ort::value::{DynValue, TensorElementType, ValueType};

use super::{guard, Backend, BackendKind};
use crate::error::Error;
use crate::metadata::ModelMetadata;
use crate::tensor::Tensor;
use crate::LoadOptions;

/// The environment variable naming the ONNX Runtime shared library.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// The process-wide ONNX Runtime: the loaded library and its one environment.
#[derive(Debug)]
pub struct OrtRuntime {
    environment: Environment,
    library: PathBuf,
    version: String,
}

static RUNTIME: OnceLock<Arc<OrtRuntime>> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

impl OrtRuntime {
    /// Returns the runtime, loading the library on first use from `library`, or else from
    /// `ORT_DYLIB_PATH`. A failure is not remembered: a later call may succeed.
    ///
    /// One library serves the whole process: once loaded, a different path is ignored with a
    /// warning.
    pub fn get(library: Option<&Path>) -> Result<Arc<OrtRuntime>, Error> {
        if let Some(rt) = RUNTIME.get() {
            if let Some(wanted) = library {
                if !same_file(wanted, &rt.library) {
                    tracing::warn!(
                        wanted = %wanted.display(),
                        loaded = %rt.library.display(),
                        "ONNX Runtime is already loaded from another path; one library serves the process"
                    );
                }
            }
            return Ok(rt.clone());
        }
        let _lock = LOADING.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rt) = RUNTIME.get() {
            return Ok(rt.clone());
        }
        let path = resolve_library(library)?;
        let rt = Arc::new(load_runtime(&path)?);
        tracing::info!(library = %rt.library.display(), version = %rt.version, "loaded ONNX Runtime");
        Ok(RUNTIME.get_or_init(|| rt).clone())
    }

    /// Path of the loaded shared library.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// Version string the library reports, e.g. `1.32.0`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The process's ONNX Runtime environment, for building `ort` sessions directly (the
    /// benchmarks compare the backend with a bare session on it).
    pub fn environment(&self) -> &Environment {
        &self.environment
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn resolve_library(configured: Option<&Path>) -> Result<PathBuf, Error> {
    let path = match configured {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os(ORT_DYLIB_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => {
                return Err(Error::OrtUnavailable {
                    reason: format!(
                        "no library configured; set {ORT_DYLIB_ENV} to the path of libonnxruntime.so.1.* \
                         (for example from `pip install onnxruntime`, in site-packages/onnxruntime/capi/), \
                         or use the tract backend"
                    ),
                })
            }
        },
    };
    if !path.is_file() {
        return Err(Error::OrtUnavailable {
            reason: format!("`{}` does not exist or is not a file", path.display()),
        });
    }
    Ok(path)
}

/// The environment variables that keep ONNX Runtime's own telemetry from starting, with the
/// value that does it.
///
/// On Linux and macOS the official ONNX Runtime builds (the PyPI wheels among them, 1.31 and
/// later) carry Microsoft's 1DS telemetry SDK. When the library's environment initializes it
/// creates `~/.cache/Microsoft/DeveloperTools/.onnxruntime/` with a persistent `deviceid` and an
/// SQLite event cache `onnxruntime.db`, writes a session file in the temp directory, logs a
/// `ProcessInfo` event, and a background thread uploads to
/// `mobile.events.data.microsoft.com` (DNS queries from then on). `DisableTelemetryEvents`
/// (what `with_telemetry(false)` calls) only mutes later events: the uploader, the files and
/// `ProcessInfo` remain. Only `ORT_DISABLE_TELEMETRY=1`, read when the telemetry provider is
/// created, keeps all of it from starting; later sources spell it `ORT_TELEMETRY_DISABLED`,
/// so both are set.
pub const TELEMETRY_OFF_ENV: [(&str, &str); 2] = [
    ("ORT_DISABLE_TELEMETRY", "1"),
    ("ORT_TELEMETRY_DISABLED", "1"),
];

/// The environment variable with which ONNX Runtime reads session options from a model's own
/// `ort_config` metadata, profiling (which writes a file in the working directory) among them.
/// A pushed model must not choose its session options: [`harden_ort_environment`] removes it.
pub const LOAD_CONFIG_FROM_MODEL_ENV: &str = "ORT_LOAD_CONFIG_FROM_MODEL";

/// Prepares this process's environment for ONNX Runtime: sets [`TELEMETRY_OFF_ENV`]
/// (overriding other values), so that the library, once loaded, neither phones home nor writes
/// under `$HOME` or the temp dir, and removes [`LOAD_CONFIG_FROM_MODEL_ENV`], so that a model
/// cannot set its own session options.
///
/// Call it at the top of `main`, before any thread starts: changing the environment while
/// other threads may read it (say, C code calling `getenv`) is a data race. Loading the
/// library ([`OrtRuntime::get`]) calls it again as a fallback, which changes nothing when
/// `main` already did.
pub fn harden_ort_environment() {
    for (var, value) in TELEMETRY_OFF_ENV {
        if std::env::var_os(var).is_none_or(|v| v != value) {
            std::env::set_var(var, value);
        }
    }
    if std::env::var_os(LOAD_CONFIG_FROM_MODEL_ENV).is_some() {
        std::env::remove_var(LOAD_CONFIG_FROM_MODEL_ENV);
        tracing::warn!(
            "{LOAD_CONFIG_FROM_MODEL_ENV} was set and is ignored: models do not choose their own session options"
        );
    }
}

fn load_runtime(path: &Path) -> Result<OrtRuntime, Error> {
    let unavailable = |reason: String| Error::OrtUnavailable { reason };
    harden_ort_environment();
    let builder = ort::init_from(path)
        .map_err(|e| unavailable(format!("{e}; ONNX Runtime 1.31 or newer is required")))?;
    let environment = builder
        .with_name("edge-ml")
        .with_telemetry(false)
        .build()
        .map_err(|e| unavailable(format!("creating the environment failed: {e}")))?;
    // With its `tracing` feature, `ort` creates the environment at the VERBOSE level and
    // forwards every message to `tracing`: ONNX Runtime then formats its verbose messages on
    // every run, a fixed cost per call that showed most on the smallest models. Warning is
    // python onnxruntime's default level.
    environment.set_log_level(LogLevel::Warning);
    // The build info names the release branch (`git-branch=rel-1.32.0`); wheels name the file
    // after the version (`libonnxruntime.so.1.32.0`).
    let version = ort::info()
        .split(|c: char| c == ',' || c.is_whitespace())
        .find_map(|part| part.strip_prefix("git-branch=rel-"))
        .or_else(|| {
            path.file_name()?
                .to_str()?
                .split_once(".so.")
                .map(|(_, v)| v)
        })
        .unwrap_or("unknown")
        .to_owned();
    Ok(OrtRuntime {
        environment,
        library: path.to_path_buf(),
        version,
    })
}

/// A model loaded into ONNX Runtime, with a pool of sessions for concurrent callers.
pub struct OrtBackend {
    runtime: Arc<OrtRuntime>,
    bytes: Arc<[u8]>,
    intra_op_threads: usize,
    max_sessions: usize,
    pool: Mutex<Pool>,
    available: Condvar,
    input_names: Vec<String>,
    output_names: Vec<String>,
}

struct Pool {
    idle: Vec<Session>,
    created: usize,
    /// Callers blocked in [`OrtBackend::acquire`]; a returned session wakes one only when
    /// there is one (a `Condvar` notification is a system call even with nobody waiting).
    waiting: usize,
}

impl std::fmt::Debug for OrtBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtBackend")
            .field("library", &self.runtime.library)
            .field("intra_op_threads", &self.intra_op_threads)
            .field("max_sessions", &self.max_sessions)
            .finish_non_exhaustive()
    }
}

impl OrtBackend {
    /// Loads the model into a first session, which also validates it.
    pub(crate) fn load(
        bytes: Arc<[u8]>,
        metadata: &ModelMetadata,
        options: &LoadOptions,
    ) -> Result<Self, Error> {
        let runtime = OrtRuntime::get(options.ort_library.as_deref())?;
        let backend = Self {
            runtime,
            bytes,
            intra_op_threads: options.intra_op_threads.max(1),
            max_sessions: options.max_concurrency.max(1),
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                created: 0,
                waiting: 0,
            }),
            available: Condvar::new(),
            input_names: metadata.inputs.iter().map(|i| i.name.clone()).collect(),
            output_names: metadata.outputs.iter().map(|o| o.name.clone()).collect(),
        };
        let first = guard(BackendKind::Ort, "loading", || backend.new_session())?;
        let mut pool = backend.lock();
        pool.idle.push(first);
        pool.created = 1;
        drop(pool);
        Ok(backend)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_session(&self) -> Result<Session, Error> {
        let refused = |e: ort::Error| Error::Unsupported {
            backend: BackendKind::Ort,
            reason: e.to_string(),
            source: Some(Box::new(e)),
        };
        let builder = Session::builder(&self.runtime.environment).map_err(refused)?;
        let mut builder = builder
            .with_intra_threads(self.intra_op_threads)
            .map_err(|e| refused(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| refused(e.into()))?;
        builder.commit_from_memory(&self.bytes).map_err(refused)
    }

    /// Takes an idle session, creates one if the pool may grow, or waits for one to come back.
    fn acquire(&self) -> Result<PooledSession<'_>, Error> {
        let mut pool = self.lock();
        loop {
            if let Some(session) = pool.idle.pop() {
                return Ok(PooledSession {
                    backend: self,
                    session: Some(session),
                });
            }
            if pool.created < self.max_sessions {
                pool.created += 1;
                drop(pool);
                return match self.new_session() {
                    Ok(session) => Ok(PooledSession {
                        backend: self,
                        session: Some(session),
                    }),
                    Err(e) => {
                        let mut pool = self.lock();
                        pool.created -= 1;
                        let wake = pool.waiting > 0;
                        drop(pool);
                        if wake {
                            self.available.notify_one();
                        }
                        Err(e)
                    }
                };
            }
            pool.waiting += 1;
            pool = self.available.wait(pool).unwrap_or_else(|p| p.into_inner());
            pool.waiting -= 1;
        }
    }

    /// Puts a session back and wakes one waiting caller, if any.
    fn release(&self, session: Session) {
        let mut pool = self.lock();
        pool.idle.push(session);
        let wake = pool.waiting > 0;
        drop(pool);
        if wake {
            self.available.notify_one();
        }
    }

    /// Number of sessions created so far (at most the configured concurrency).
    pub fn sessions(&self) -> usize {
        self.lock().created
    }
}

/// A session on loan from the pool; it goes back when dropped, even on a panic.
struct PooledSession<'a> {
    backend: &'a OrtBackend,
    session: Option<Session>,
}

impl Drop for PooledSession<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.backend.release(session);
        }
    }
}

impl Backend for OrtBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Ort
    }

    fn run(&self, inputs: Vec<Tensor>, outputs: &[usize]) -> Result<Vec<Tensor>, Error> {
        guard(BackendKind::Ort, "running", || {
            let run_err = |e: ort::Error| Error::Run {
                backend: BackendKind::Ort,
                reason: e.to_string(),
            };
            let values = inputs
                .into_iter()
                .zip(&self.input_names)
                .map(|(t, name)| {
                    Ok((
                        name.as_str(),
                        SessionInputValue::from(to_ort(t).map_err(run_err)?),
                    ))
                })
                .collect::<Result<Vec<_>, Error>>()?;
            // All outputs in declared order (what `Model::run` asks for) need no run options:
            // ONNX Runtime returns every output. A subset is selected with per-call options.
            let all = outputs.len() == self.output_names.len()
                && outputs.iter().enumerate().all(|(i, &o)| i == o);
            let options = if all {
                None
            } else {
                let selector = outputs.iter().fold(OutputSelector::no_default(), |s, &o| {
                    s.with(self.output_names[o].as_str())
                });
                Some(RunOptions::new().map_err(run_err)?.with_outputs(selector))
            };
            let mut lease = self.acquire()?;
            let session = lease.session.as_mut().expect("a leased session is present");
            let mut results = match &options {
                None => session.run(values),
                Some(options) => session.run_with_options(values, options),
            }
            .map_err(run_err)?;
            outputs
                .iter()
                .map(|&o| {
                    let name = &self.output_names[o];
                    let value = results.remove(name.as_str()).ok_or_else(|| Error::Output {
                        name: name.clone(),
                        reason: "ONNX Runtime did not return it".to_owned(),
                    })?;
                    from_ort(&value, name)
                })
                .collect()
        })
    }
}

fn to_ort(tensor: Tensor) -> ort::Result<DynValue> {
    use ort::value::Tensor as T;
    Ok(match tensor {
        Tensor::F16(a) => T::from_array(a)?.into_dyn(),
        Tensor::F32(a) => T::from_array(a)?.into_dyn(),
        Tensor::F64(a) => T::from_array(a)?.into_dyn(),
        Tensor::I8(a) => T::from_array(a)?.into_dyn(),
        Tensor::I16(a) => T::from_array(a)?.into_dyn(),
        Tensor::I32(a) => T::from_array(a)?.into_dyn(),
        Tensor::I64(a) => T::from_array(a)?.into_dyn(),
        Tensor::U8(a) => T::from_array(a)?.into_dyn(),
        Tensor::U16(a) => T::from_array(a)?.into_dyn(),
        Tensor::U32(a) => T::from_array(a)?.into_dyn(),
        Tensor::U64(a) => T::from_array(a)?.into_dyn(),
        Tensor::Bool(a) => T::from_array(a)?.into_dyn(),
        Tensor::String(a) => T::from_string_array(&a)?.into_dyn(),
    })
}

fn from_ort(value: &DynValue, name: &str) -> Result<Tensor, Error> {
    let err = |reason: String| Error::Output {
        name: name.to_owned(),
        reason,
    };
    let ty = match value.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        other => return Err(err(format!("ONNX Runtime returned {other}, not a tensor"))),
    };
    macro_rules! arr {
        ($t:ty, $v:ident) => {
            Tensor::$v(
                value
                    .try_extract_array::<$t>()
                    .map_err(|e| err(e.to_string()))?
                    .to_owned(),
            )
        };
    }
    Ok(match ty {
        TensorElementType::Float16 => arr!(half::f16, F16),
        TensorElementType::Float32 => arr!(f32, F32),
        TensorElementType::Float64 => arr!(f64, F64),
        TensorElementType::Int8 => arr!(i8, I8),
        TensorElementType::Int16 => arr!(i16, I16),
        TensorElementType::Int32 => arr!(i32, I32),
        TensorElementType::Int64 => arr!(i64, I64),
        TensorElementType::Uint8 => arr!(u8, U8),
        TensorElementType::Uint16 => arr!(u16, U16),
        TensorElementType::Uint32 => arr!(u32, U32),
        TensorElementType::Uint64 => arr!(u64, U64),
        TensorElementType::Bool => arr!(bool, Bool),
        TensorElementType::String => Tensor::String(
            value
                .try_extract_string_array()
                .map_err(|e| err(e.to_string()))?,
        ),
        other => return Err(err(format!("element type {other} is not supported"))),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    use crate::test_support::{model_bytes, ort_library};
    use crate::{BackendKind, LoadOptions, Model, Tensor};

    /// Records the level of every event that `ort` forwards from ONNX Runtime's logger.
    #[derive(Clone, Default)]
    struct OrtEvents(Arc<Mutex<Vec<(Level, String)>>>);

    impl Subscriber for OrtEvents {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let meta = event.metadata();
            // ONNX Runtime's own messages come through `ort::logging`; `ort`'s Rust-side
            // events (library loading, value lifetimes at TRACE) are not what is measured.
            if meta.target() == "ort::logging" {
                let mut message = String::new();
                event.record(
                    &mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                        if field.name() == "message" {
                            message = format!("{value:?}");
                        }
                    },
                );
                self.0.lock().unwrap().push((*meta.level(), message));
            }
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    /// Before issue 13 the environment logged at VERBOSE (what `ort`'s tracing feature
    /// chooses): ONNX Runtime formatted and forwarded its informational messages on session
    /// creation and its verbose ones on every run.
    #[test]
    fn onnx_runtime_logs_only_warnings_and_errors() {
        let Some(lib) = ort_library("onnx_runtime_logs_only_warnings_and_errors") else {
            return;
        };
        // The environment's creation (device discovery) logs before any level can be set;
        // what counts is what sessions and runs log afterwards.
        super::OrtRuntime::get(Some(&lib)).unwrap();
        let events = OrtEvents::default();
        tracing::subscriber::with_default(events.clone(), || {
            let options = LoadOptions::new(BackendKind::Ort).with_ort_library(lib);
            let model = Model::load(model_bytes("digits_cnn.onnx"), &options).unwrap();
            let x = Tensor::from_shape_vec(&[2, 1, 8, 8], vec![0.5f32; 128]).unwrap();
            for _ in 0..3 {
                model.run([("input", x.clone())]).unwrap();
            }
        });
        let quiet: Vec<_> = events
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(level, _)| *level > Level::WARN)
            .cloned()
            .collect();
        assert!(
            quiet.is_empty(),
            "ONNX Runtime logged below WARN: {quiet:?}"
        );
    }
}
