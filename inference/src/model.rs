//! [`Model`]: a loaded model, its metadata, and checked runs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::backend::{Backend, BackendKind};
use crate::error::Error;
use crate::graph_checks;
use crate::metadata::{self, Dim, ModelMetadata, TensorInfo};
use crate::options::LoadOptions;
use crate::tensor::Tensor;

/// A model loaded on one backend. Cheap to share: wrap it in an `Arc` and call [`Model::run`]
/// from as many threads as you like.
#[derive(Debug)]
pub struct Model {
    metadata: ModelMetadata,
    backend: Box<dyn Backend>,
    fallback: Option<Fallback>,
}

/// Why a model runs on the fallback engine: the engine tried first, and its error.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fallback {
    /// The engine tried first, which could not load the model.
    pub from: BackendKind,
    /// Its error, on one line.
    pub reason: String,
}

/// Named output tensors, in the order they were asked for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outputs(Vec<(String, Tensor)>);

impl Outputs {
    /// The output with this name.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Removes and returns the output with this name.
    pub fn take(&mut self, name: &str) -> Option<Tensor> {
        let i = self.0.iter().position(|(n, _)| n == name)?;
        Some(self.0.remove(i).1)
    }

    /// Iterates over `(name, tensor)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.0.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// Number of outputs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<(String, Tensor)>> for Outputs {
    fn from(named: Vec<(String, Tensor)>) -> Self {
        Self(named)
    }
}

impl IntoIterator for Outputs {
    type Item = (String, Tensor);
    type IntoIter = std::vec::IntoIter<(String, Tensor)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl Model {
    /// Loads a model from ONNX bytes on the backend the options name; when that engine fails
    /// to load it and the options name a [`LoadOptions::fallback`], on the fallback, recording
    /// why ([`Model::fallback`]).
    ///
    /// Malformed bytes, a graph that reads an undefined tensor or defines a name twice, an input
    /// or output of an unsupported type, operators the backend lacks or from a domain it does
    /// not implement, and tensors kept in external files (unless
    /// [`LoadOptions::external_data_dir`] allows them) are all errors that say what is wrong.
    /// When both engines fail, the error ([`Error::NoBackend`]) gives both reasons.
    pub fn load(bytes: impl Into<Arc<[u8]>>, options: &LoadOptions) -> Result<Self, Error> {
        let bytes: Arc<[u8]> = bytes.into();
        let mut parsed = metadata::parse(&bytes, options.external_data_dir.as_deref())?;
        crate::input_shapes::apply(&mut parsed.metadata, &options.input_shapes)?;
        let first = options.backend;
        let (backend, fallback) = match load_on(first, &bytes, &parsed, options) {
            Ok(backend) => (backend, None),
            Err(first_err) => {
                let Some(second) = options.fallback.filter(|&f| f != first) else {
                    return Err(first_err);
                };
                match load_on(second, &bytes, &parsed, options) {
                    Ok(backend) => {
                        let reason = crate::error_chain(&first_err);
                        tracing::info!(
                            from = %first,
                            to = %second,
                            %reason,
                            sha256 = %parsed.metadata.sha256,
                            "model loaded on the fallback backend"
                        );
                        (
                            backend,
                            Some(Fallback {
                                from: first,
                                reason,
                            }),
                        )
                    }
                    Err(second_err) => {
                        return Err(Error::NoBackend {
                            first: Box::new(first_err),
                            fallback: Box::new(second_err),
                        })
                    }
                }
            }
        };
        let metadata = parsed.metadata;
        tracing::debug!(
            backend = %backend.kind(),
            sha256 = %metadata.sha256,
            inputs = metadata.inputs.len(),
            outputs = metadata.outputs.len(),
            "model loaded"
        );
        Ok(Self {
            metadata,
            backend,
            fallback,
        })
    }

    /// Reads and loads a model file.
    pub fn load_file(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Self, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::load(bytes, options)
    }

    /// Reads a model's metadata without loading it on any backend. A model that keeps
    /// tensors in external files is refused, as [`Model::load`] refuses it by default.
    pub fn inspect(bytes: &[u8]) -> Result<ModelMetadata, Error> {
        metadata::parse(bytes, None).map(|p| p.metadata)
    }

    /// What the model declares, with the input shapes of [`LoadOptions::input_shapes`] applied.
    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    /// The engine running it: with a fallback in the options, the one that loaded it.
    pub fn backend(&self) -> BackendKind {
        self.backend.kind()
    }

    /// Why the model runs on the fallback engine rather than the one tried first; `None` when
    /// the first engine loaded it.
    pub fn fallback(&self) -> Option<&Fallback> {
        self.fallback.as_ref()
    }

    /// Runs the model and returns every output.
    pub fn run<N: Into<String>>(
        &self,
        inputs: impl IntoIterator<Item = (N, Tensor)>,
    ) -> Result<Outputs, Error> {
        let all: Vec<usize> = (0..self.metadata.outputs.len()).collect();
        self.run_indices(inputs, &all)
    }

    /// Runs the model and returns only the named outputs, in the order given.
    pub fn run_select<N: Into<String>>(
        &self,
        inputs: impl IntoIterator<Item = (N, Tensor)>,
        outputs: &[&str],
    ) -> Result<Outputs, Error> {
        let indices = outputs
            .iter()
            .map(|name| {
                self.metadata
                    .outputs
                    .iter()
                    .position(|o| o.name == *name)
                    .ok_or_else(|| Error::UnknownOutput {
                        name: (*name).to_owned(),
                        known: list_names(&self.metadata.outputs),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.run_indices(inputs, &indices)
    }

    fn run_indices<N: Into<String>>(
        &self,
        inputs: impl IntoIterator<Item = (N, Tensor)>,
        outputs: &[usize],
    ) -> Result<Outputs, Error> {
        let ordered = self.check_inputs(inputs.into_iter().map(|(n, t)| (n.into(), t)))?;
        let tensors = self.backend.run(ordered, outputs)?;
        Ok(Outputs(
            outputs
                .iter()
                .map(|&i| self.metadata.outputs[i].name.clone())
                .zip(tensors)
                .collect(),
        ))
    }

    /// Matches named inputs to the declared ones and checks element types, ranks, fixed
    /// dimensions, and that a symbolic dimension has one size across all inputs (an unknown
    /// or placeholder dimension, see [`Dim`], takes any size).
    fn check_inputs(
        &self,
        inputs: impl Iterator<Item = (String, Tensor)>,
    ) -> Result<Vec<Tensor>, Error> {
        let declared = &self.metadata.inputs;
        let mut slots: Vec<Option<Tensor>> = vec![None; declared.len()];
        for (name, tensor) in inputs {
            let i = declared
                .iter()
                .position(|d| d.name == name)
                .ok_or_else(|| Error::UnknownInput {
                    name: name.clone(),
                    known: list_names(declared),
                })?;
            if slots[i].is_some() {
                return Err(Error::DuplicateInput { name });
            }
            slots[i] = Some(tensor);
        }
        let mut symbols = Bindings::new();
        let mut ordered = Vec::with_capacity(declared.len());
        for (info, slot) in declared.iter().zip(slots) {
            let tensor = slot.ok_or_else(|| Error::MissingInput {
                name: info.name.clone(),
                expected: info.to_string(),
            })?;
            check_one(info, &tensor, &mut symbols)?;
            ordered.push(tensor);
        }
        Ok(ordered)
    }
}

/// Loads the parsed model on one engine.
fn load_on(
    kind: BackendKind,
    bytes: &Arc<[u8]>,
    parsed: &metadata::Parsed,
    options: &LoadOptions,
) -> Result<Box<dyn Backend>, Error> {
    if !kind.is_built() {
        return Err(Error::NotBuilt { backend: kind });
    }
    graph_checks::check_domains(&parsed.proto, kind)?;
    // Only ONNX Runtime reads the bytes, the options and whether external data was inlined.
    #[cfg(not(feature = "ort"))]
    let _ = (bytes, options, parsed.inlined);
    Ok(match kind {
        #[cfg(feature = "tract")]
        BackendKind::Tract => Box::new(crate::backend::TractBackend::load(
            &parsed.proto,
            &parsed.metadata,
        )?),
        #[cfg(feature = "ort")]
        BackendKind::Ort => {
            // ONNX Runtime gets the model with its external data inlined, never a location.
            let bytes = if parsed.inlined {
                Arc::from(crate::onnx::encode_model(&parsed.proto))
            } else {
                bytes.clone()
            };
            Box::new(crate::backend::OrtBackend::load(
                bytes,
                &parsed.metadata,
                options,
            )?)
        }
        #[allow(unreachable_patterns, reason = "one arm per engine this build lacks")]
        _ => return Err(Error::NotBuilt { backend: kind }),
    })
}

/// Where a named dimension got its size in this call: the size, the input and the axis.
type Bindings<'a> = HashMap<&'a str, (usize, &'a str, usize)>;

/// Checks one input against its declaration. A symbolic dimension is bound by the first
/// input (in declaration order) that has it, and must agree everywhere else; an unknown
/// dimension takes any size and binds nothing.
fn check_one<'a>(
    info: &'a TensorInfo,
    tensor: &Tensor,
    symbols: &mut Bindings<'a>,
) -> Result<(), Error> {
    let mismatch = |note: String| Error::InputMismatch {
        input: info.name.clone(),
        expected: format!("{info}{note}"),
        got: describe(tensor),
    };
    if tensor.element_type() != info.element_type {
        return Err(mismatch(String::new()));
    }
    let Some(dims) = &info.shape else {
        return Ok(());
    };
    let shape = tensor.shape();
    if dims.len() != shape.len() {
        return Err(mismatch(format!(" (rank {})", dims.len())));
    }
    for (axis, (dim, &size)) in dims.iter().zip(shape).enumerate() {
        match dim {
            Dim::Fixed(n) if *n != size => return Err(mismatch(String::new())),
            Dim::Symbolic(s) => match symbols.get(s.as_str()) {
                Some(&(bound, by, by_axis)) if bound != size => {
                    return Err(mismatch(format!(
                        " with {s} = {bound}, as dimension {by_axis} of input `{by}` sets it"
                    )))
                }
                Some(_) => {}
                None => {
                    symbols.insert(s, (size, &info.name, axis));
                }
            },
            Dim::Fixed(_) | Dim::Unknown => {}
        }
    }
    Ok(())
}

/// Describes a tensor as `type[d0, d1, ...]`.
pub fn describe(tensor: &Tensor) -> String {
    let dims: Vec<String> = tensor.shape().iter().map(usize::to_string).collect();
    format!("{}[{}]", tensor.element_type(), dims.join(", "))
}

fn list_names(infos: &[TensorInfo]) -> String {
    let names: Vec<String> = infos.iter().map(|i| format!("`{}`", i.name)).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}
