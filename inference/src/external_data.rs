//! Models are self-contained: tensors whose data lives in an external file are refused, or, when
//! the caller names a directory for it ([`crate::LoadOptions::external_data_dir`]), read from
//! inside that directory and inlined, so that no backend ever opens a file a model names.
//!
//! ONNX lets any tensor (initializer, sparse initializer, `Constant` value, tensor attribute, in
//! any subgraph, function body or training graph) say `data_location = EXTERNAL` with a
//! `location` path. ONNX Runtime resolves that path against the directory of the model file, and
//! for a model given as bytes against the process's working directory, so a pushed model could
//! make inference return the bytes of any file the agent may read. It also understands a magic
//! location that reads process memory at a given address.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use crate::error::Error;
use crate::onnx::{is_external, proto as pb};

/// Finds every external-data tensor of the model. Without `dir`, the first one is an error;
/// with it, each is read from inside `dir` and inlined as `raw_data`. Returns whether anything
/// was inlined (the model's bytes then no longer match the proto).
pub(crate) fn resolve(proto: &mut pb::ModelProto, dir: Option<&Path>) -> Result<bool, Error> {
    let root = match dir {
        None => None,
        Some(d) => Some(d.canonicalize().map_err(|e| Error::ExternalData {
            tensor: "the model".to_owned(),
            location: d.display().to_string(),
            reason: format!("the external data directory cannot be opened: {e}"),
        })?),
    };
    let mut inlined = false;
    for_each_tensor(proto, &mut |tensor, context| {
        if !is_external(tensor) {
            return Ok(());
        }
        let what = describe(tensor, context);
        let location = entry(tensor, "location").unwrap_or_default().to_owned();
        let Some(root) = &root else {
            return Err(Error::ExternalData {
                tensor: what,
                location,
                reason: "models must be self-contained; save it with its weights inside \
                         (onnx.save_model(model, path, save_as_external_data=False))"
                    .to_owned(),
            });
        };
        let refuse = |reason: String| Error::ExternalData {
            tensor: what.clone(),
            location: location.clone(),
            reason,
        };
        let bytes = read_inside(root, tensor, &location).map_err(refuse)?;
        tensor.raw_data = bytes;
        tensor.external_data.clear();
        tensor.data_location = Some(pb::tensor_proto::DataLocation::Default as i32);
        inlined = true;
        Ok(())
    })?;
    Ok(inlined)
}

fn entry<'a>(t: &'a pb::TensorProto, key: &str) -> Option<&'a str> {
    t.external_data
        .iter()
        .find(|e| e.key == key)
        .map(|e| e.value.as_str())
}

fn describe(t: &pb::TensorProto, context: &str) -> String {
    let name = if t.name.is_empty() {
        String::new()
    } else {
        format!(" `{}`", t.name)
    };
    format!("{context}{name}")
}

/// Reads the bytes a tensor's external data names, from a regular file inside `root` (already
/// canonical), reached without any symlink and within the file's size.
fn read_inside(root: &Path, t: &pb::TensorProto, location: &str) -> Result<Vec<u8>, String> {
    if t.data_type == pb::tensor_proto::DataType::String as i32 {
        return Err("string tensors cannot keep their data externally".to_owned());
    }
    let path = checked_path(root, location)?;
    let number = |key: &str| -> Result<Option<u64>, String> {
        entry(t, key)
            .map(|v| {
                v.trim().parse::<u64>().map_err(|_| {
                    format!("its `{key}` is `{v}`, not a non-negative whole number of bytes")
                })
            })
            .transpose()
    };
    let offset = number("offset")?.unwrap_or(0);
    let length = number("length")?;

    let seen = std::fs::symlink_metadata(&path)
        .map_err(|e| format!("`{}` cannot be read: {e}", path.display()))?;
    let mut file =
        File::open(&path).map_err(|e| format!("`{}` cannot be opened: {e}", path.display()))?;
    let opened = file
        .metadata()
        .map_err(|e| format!("`{}` cannot be read: {e}", path.display()))?;
    if !opened.is_file() || !same_file(&seen, &opened) {
        return Err(format!(
            "`{}` changed while it was opened, or is not a regular file",
            path.display()
        ));
    }
    let size = opened.len();
    let length = match length {
        Some(n) => n,
        None => size.checked_sub(offset).ok_or_else(|| {
            format!("its offset {offset} is past the end of the file ({size} bytes)")
        })?,
    };
    let end = offset
        .checked_add(length)
        .filter(|&end| end <= size)
        .ok_or_else(|| {
            format!("bytes {offset}..{offset}+{length} do not lie within the file ({size} bytes)")
        })?;
    let length = usize::try_from(end - offset)
        .map_err(|_| format!("its length {length} does not fit in memory"))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| format!("seeking to byte {offset} failed: {e}"))?;
    let mut bytes = vec![0u8; length];
    file.read_exact(&mut bytes)
        .map_err(|e| format!("reading {length} bytes at offset {offset} failed: {e}"))?;
    Ok(bytes)
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.len() == b.len() && a.file_type() == b.file_type()
}

/// The file `location` names inside `root`: a relative path of plain names (no `..`, no root,
/// no prefix), none of whose components is a symlink, resolving inside `root`.
fn checked_path(root: &Path, location: &str) -> Result<PathBuf, String> {
    if location.is_empty() {
        return Err("it names no `location`".to_owned());
    }
    let relative = Path::new(location);
    let mut path = root.to_path_buf();
    for component in relative.components() {
        match component {
            Component::Normal(name) => {
                path.push(name);
                let meta = std::fs::symlink_metadata(&path)
                    .map_err(|e| format!("`{}` cannot be read: {e}", path.display()))?;
                if meta.file_type().is_symlink() {
                    return Err(format!(
                        "`{}` is a symbolic link; external data must be a plain file inside the \
                         external data directory",
                        path.display()
                    ));
                }
            }
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(
                    "the location climbs out with `..`; it must be a relative path inside the \
                     external data directory"
                        .to_owned(),
                )
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(
                    "the location is absolute; it must be a relative path inside the external \
                     data directory"
                        .to_owned(),
                )
            }
        }
    }
    if path == root {
        return Err("the location names the directory itself, not a file".to_owned());
    }
    // Belt and braces: the resolved path must still lie inside the directory.
    let canonical = path
        .canonicalize()
        .map_err(|e| format!("`{}` cannot be resolved: {e}", path.display()))?;
    if !canonical.starts_with(root) {
        return Err(format!(
            "`{}` resolves outside the external data directory `{}`",
            canonical.display(),
            root.display()
        ));
    }
    Ok(canonical)
}

type Visit<'f> = dyn FnMut(&mut pb::TensorProto, &str) -> Result<(), Error> + 'f;

/// Calls `f` on every tensor the model holds, with words saying where it is.
fn for_each_tensor(proto: &mut pb::ModelProto, f: &mut Visit<'_>) -> Result<(), Error> {
    if let Some(graph) = proto.graph.as_mut() {
        graph_tensors(graph, "", f)?;
    }
    for (i, info) in proto.training_info.iter_mut().enumerate() {
        for (kind, graph) in [
            ("initialization", info.initialization.as_mut()),
            ("algorithm", info.algorithm.as_mut()),
        ] {
            if let Some(graph) = graph {
                graph_tensors(graph, &format!("in training {kind} graph {i}: "), f)?;
            }
        }
    }
    for function in &mut proto.functions {
        let context = format!(
            "in function `{}`: ",
            function.name.as_deref().unwrap_or("<unnamed>")
        );
        for node in &mut function.node {
            node_tensors(node, &context, f)?;
        }
    }
    Ok(())
}

fn graph_tensors(
    graph: &mut pb::GraphProto,
    context: &str,
    f: &mut Visit<'_>,
) -> Result<(), Error> {
    for t in &mut graph.initializer {
        f(t, &format!("{context}initializer"))?;
    }
    for s in &mut graph.sparse_initializer {
        sparse_tensors(s, &format!("{context}sparse initializer"), f)?;
    }
    for node in &mut graph.node {
        node_tensors(node, context, f)?;
    }
    Ok(())
}

fn sparse_tensors(
    s: &mut pb::SparseTensorProto,
    what: &str,
    f: &mut Visit<'_>,
) -> Result<(), Error> {
    if let Some(values) = s.values.as_mut() {
        f(values, &format!("{what} values"))?;
    }
    if let Some(indices) = s.indices.as_mut() {
        f(indices, &format!("{what} indices"))?;
    }
    Ok(())
}

fn node_tensors(node: &mut pb::NodeProto, context: &str, f: &mut Visit<'_>) -> Result<(), Error> {
    let label = if node.name.is_empty() {
        format!("{context}a {} node", node.op_type)
    } else {
        format!("{context}node `{}` ({})", node.name, node.op_type)
    };
    for attr in &mut node.attribute {
        let what = format!("{label}, attribute `{}`", attr.name);
        if let Some(t) = attr.t.as_mut() {
            f(t, &format!("{what} tensor"))?;
        }
        for t in &mut attr.tensors {
            f(t, &format!("{what} tensor"))?;
        }
        if let Some(s) = attr.sparse_tensor.as_mut() {
            sparse_tensors(s, &format!("{what} sparse tensor"), f)?;
        }
        for s in &mut attr.sparse_tensors {
            sparse_tensors(s, &format!("{what} sparse tensor"), f)?;
        }
        let sub = format!("in subgraph `{}` of {label}: ", attr.name);
        if let Some(g) = attr.g.as_mut() {
            graph_tensors(g, &sub, f)?;
        }
        for g in &mut attr.graphs {
            graph_tensors(g, &sub, f)?;
        }
    }
    Ok(())
}
