//! Float32 to float16: weights, constants and compute, with Casts where a value crosses between
//! the float16 part of the graph and nodes kept in float32.
//!
//! Every float32 value gets a *home* precision, the one its definition produces: float16 for
//! the outputs of converted nodes, float32 for the outputs of nodes kept in float; a graph
//! input's home is float16 unless the graph io keeps its types; an initializer or a `Constant`
//! is stored in float16 when any reader wants float16, else it stays float32. Every read
//! *wants* a precision: float16 for a converted node, float32 for a node kept in float and for
//! the inputs ONNX requires in float32 (`Resize` scales); a `Cast` or `Shape` reads either.
//! Where home and want differ, one shared `Cast` per value and precision is inserted right
//! after the value's definition. Subgraphs (`If`, `Loop`, `Scan`) are converted the same way,
//! entirely in float32 when their node is kept in float.
//!
//! Values are clamped into float16's range as onnxruntime's `float16.py` converter does:
//! finite magnitudes above 65504 become ±65504, non-zero magnitudes below 5.96e-8 (the
//! smallest subnormal) become ±5.96e-8; zero, infinities and NaN are kept.

use std::collections::{HashMap, HashSet};

use inference::half::f16;
use inference::onnx::proto::{GraphProto, NodeProto, TensorProto};
use inference::onnx::{self, AttributeValue, DataLayout};
use inference::Tensor;
use serde::Serialize;

use super::fp16_block_list::DEFAULT_FP16_BLOCK_OPS;
use super::graph_edit::{
    collect_names, copy_declaration, insert_nodes, outer_reads, rename_definition, set_elem_type,
};
use super::types::{self, Types, FLOAT, FLOAT16};
use super::ConvertError;

/// Options of [`convert_fp16`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fp16Options {
    /// Keep the graph's float32 inputs and outputs in float32, with Casts to and from float16
    /// at the boundary, so that callers feed and read the same types as before.
    pub keep_io_types: bool,
    /// Operator types to keep in float32, on top of the default block list: `LayerNormalization`,
    /// or `domain.Op` for an operator of another domain.
    pub block_ops: Vec<String>,
    /// Also keep the operators of [`DEFAULT_FP16_BLOCK_OPS`] in float32 (default: yes).
    pub default_block_list: bool,
    /// Leave float32 the initializers that only nodes kept in float32 read, as onnxruntime's
    /// converter does. By default they are stored in float16 too, behind a Cast to float32
    /// (which ONNX Runtime and tract fold when they load the model), so that the model halves
    /// even when most of its compute stays float32.
    pub keep_float_weights: bool,
}

impl Default for Fp16Options {
    fn default() -> Self {
        Self {
            keep_io_types: false,
            block_ops: Vec::new(),
            default_block_list: true,
            keep_float_weights: false,
        }
    }
}

/// Why a node stayed in float32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepReason {
    /// Its operator is in [`DEFAULT_FP16_BLOCK_OPS`].
    DefaultBlockList,
    /// Its operator is in [`Fp16Options::block_ops`].
    BlockOps,
    /// Its operator belongs to another domain than ONNX's (`com.microsoft`, `ai.onnx.ml`, ...),
    /// whose float16 support is unknown.
    CustomDomain,
}

/// A node of the main graph kept in float32.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptFloatNode {
    /// The node, as [`inference::onnx::node_label`] names it.
    pub node: String,
    /// Its operator, with the domain when not ONNX's.
    pub op: String,
    /// Why.
    pub reason: KeepReason,
}

/// What [`convert_fp16`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Fp16Report {
    /// Initializers and constant tensors (`Constant`, `ConstantOfShape` values and other tensor
    /// attributes) now stored in float16.
    pub tensors_converted: usize,
    /// Float32 initializers left in float32: only inputs that ONNX requires in float32
    /// (`Resize` scales) read them, or only nodes kept in float32 and
    /// [`Fp16Options::keep_float_weights`] is set.
    pub initializers_kept_float: Vec<String>,
    /// Values clamped into float16's range (magnitudes above 65504 or below 5.96e-8).
    pub values_clamped: usize,
    /// Nodes kept in float32, in graph order (subgraph nodes are not listed).
    pub kept_float: Vec<KeptFloatNode>,
    /// Cast nodes inserted, at the graph io and around nodes kept in float32.
    pub casts_inserted: usize,
    /// Size of the model given, in bytes.
    pub input_bytes: usize,
    /// Size of the converted model, in bytes.
    pub output_bytes: usize,
}

/// Converts a float32 ONNX model to float16: float32 initializers, constants and the compute
/// of every node become float16, except the nodes kept in float32 (operators of the block
/// list and of other domains), which get Casts around them; declared types (graph inputs,
/// outputs, `value_info`) follow. Returns the converted model's bytes and a report.
///
/// ```no_run
/// use model_tools::{convert_fp16, Fp16Options};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fp32 = std::fs::read("models/digits_cnn.onnx")?;
/// let options = Fp16Options { keep_io_types: true, ..Fp16Options::default() };
/// let (fp16, report) = convert_fp16(&fp32, &options)?;
/// std::fs::write("digits_cnn_fp16.onnx", &fp16)?;
/// println!("{} tensors converted, {} nodes kept in float32", report.tensors_converted, report.kept_float.len());
/// # Ok(())
/// # }
/// ```
pub fn convert_fp16(
    model_bytes: &[u8],
    options: &Fp16Options,
) -> Result<(Vec<u8>, Fp16Report), ConvertError> {
    let mut model = onnx::decode_model(model_bytes)?;
    let opset = onnx::opset_version(&model, "").unwrap_or(1);
    let graph = onnx::graph_mut(&mut model)?;
    if !types::infer(graph, &Types::new())
        .values()
        .any(|&t| t == FLOAT)
    {
        return Err(ConvertError::NoFloat32);
    }
    let mut names = HashSet::new();
    collect_names(graph, &mut names);
    let mut pass = Pass {
        names,
        user_block: options.block_ops.iter().cloned().collect(),
        default_block: options.default_block_list,
        keep_io_types: options.keep_io_types,
        keep_float_weights: options.keep_float_weights,
        opset,
        report: Fp16Report {
            input_bytes: model_bytes.len(),
            ..Fp16Report::default()
        },
    };
    pass.graph(graph, &Types::new(), &Homes::new(), Mode::Top)?;
    let bytes = onnx::encode_model(&model);
    let mut report = pass.report;
    report.output_bytes = bytes.len();
    tracing::debug!(
        converted = report.tensors_converted,
        kept_float = report.kept_float.len(),
        casts = report.casts_inserted,
        "converted to float16"
    );
    Ok((bytes, report))
}

/// The precision a float value has after conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Prec {
    F16,
    F32,
}

impl Prec {
    fn code(self) -> i32 {
        match self {
            Prec::F16 => FLOAT16,
            Prec::F32 => FLOAT,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Prec::F16 => "fp16",
            Prec::F32 => "fp32",
        }
    }
}

type Homes = HashMap<String, Prec>;

/// Which graph is converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The main graph.
    Top,
    /// A subgraph; `float` when its node is kept in float32, and so is everything in it.
    Sub { float: bool },
}

/// What happens to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Computes in float16.
    Convert,
    /// A `Constant`: stored in the precision its readers want.
    Source,
    /// Kept in float32, for a reason to report (`None` inside a float32 subgraph).
    Keep(Option<KeepReason>),
}

struct Pass {
    names: HashSet<String>,
    user_block: HashSet<String>,
    default_block: bool,
    keep_io_types: bool,
    keep_float_weights: bool,
    opset: i64,
    report: Fp16Report,
}

impl Pass {
    fn fate(&self, node: &NodeProto, mode: Mode) -> Fate {
        let op = onnx::qualified_op(node);
        if mode == (Mode::Sub { float: true }) {
            Fate::Keep(None)
        } else if self.user_block.contains(&op) {
            Fate::Keep(Some(KeepReason::BlockOps))
        } else if self.default_block && DEFAULT_FP16_BLOCK_OPS.contains(&op.as_str()) {
            Fate::Keep(Some(KeepReason::DefaultBlockList))
        } else if !onnx::is_default_domain(&node.domain) {
            Fate::Keep(Some(KeepReason::CustomDomain))
        } else if node.op_type == "Constant"
            && !node.attribute.iter().any(|a| a.name == "sparse_value")
        {
            Fate::Source
        } else {
            Fate::Convert
        }
    }

    /// The precision input `k` of `node` wants; `None` when it reads either.
    fn want(&self, node: &NodeProto, fate: Fate, k: usize) -> Option<Prec> {
        match fate {
            Fate::Keep(_) => Some(Prec::F32),
            Fate::Source => None,
            Fate::Convert if self.float_only_input(node, k) => Some(Prec::F32),
            Fate::Convert => match (node.op_type.as_str(), k) {
                ("Cast" | "Shape" | "Size", _) | ("CastLike", 0) => None,
                _ => Some(Prec::F16),
            },
        }
    }

    /// Whether ONNX requires input `k` of `node` in float32 whatever the node computes in.
    fn float_only_input(&self, node: &NodeProto, k: usize) -> bool {
        match (node.op_type.as_str(), k) {
            ("Resize", 2) => self.opset >= 11,
            ("Resize" | "Upsample", 1) => self.opset <= 10,
            _ => false,
        }
    }

    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_owned();
        let mut i = 1;
        while self.names.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.names.insert(name.clone());
        name
    }

    fn cast(&mut self, from: &str, to: Prec) -> (NodeProto, String) {
        let out = self.fresh(&format!("{from}_{}", to.suffix()));
        let node_name = self.fresh(&format!("{out}_cast"));
        let mut node = onnx::make_node("Cast", &node_name, &[from], &[&out]);
        onnx::set_attribute(&mut node, "to", AttributeValue::Int(to.code().into()));
        self.report.casts_inserted += 1;
        (node, out)
    }

    fn graph(
        &mut self,
        graph: &mut GraphProto,
        outer_types: &Types,
        outer_homes: &Homes,
        mode: Mode,
    ) -> Result<(), ConvertError> {
        let mut types = types::infer(graph, outer_types);
        let fates: Vec<Fate> = graph.node.iter().map(|n| self.fate(n, mode)).collect();
        if mode == Mode::Top {
            for (node, fate) in graph.node.iter().zip(&fates) {
                if let Fate::Keep(Some(reason)) = fate {
                    self.report.kept_float.push(KeptFloatNode {
                        node: onnx::node_label(node),
                        op: onnx::qualified_op(node),
                        reason: *reason,
                    });
                }
            }
        }
        let io_want = match mode {
            Mode::Top if self.keep_io_types => Prec::F32,
            Mode::Sub { float: true } => Prec::F32,
            _ => Prec::F16,
        };
        let is_float = |types: &Types, name: &str| types.get(name) == Some(&FLOAT);

        // What each float value's readers want.
        let mut wants: HashMap<&str, HashSet<Prec>> = HashMap::new();
        for (node, &fate) in graph.node.iter().zip(&fates) {
            for (k, input) in node.input.iter().enumerate() {
                if let Some(w) = self.want(node, fate, k) {
                    wants.entry(input.as_str()).or_default().insert(w);
                }
            }
        }
        let mut sub_reads = Vec::new();
        for (node, &fate) in graph.node.iter().zip(&fates) {
            let want = match fate {
                Fate::Keep(_) => Prec::F32,
                _ => Prec::F16,
            };
            for a in &node.attribute {
                for g in a.g.iter().chain(&a.graphs) {
                    sub_reads.extend(outer_reads(g).into_iter().map(|name| (name, want)));
                }
            }
        }
        for (name, want) in &sub_reads {
            wants.entry(name.as_str()).or_default().insert(*want);
        }
        for out in &graph.output {
            wants.entry(out.name.as_str()).or_default().insert(io_want);
        }
        // Values read as float32 only where ONNX requires it: they keep full precision.
        let mut exact: HashSet<&str> = HashSet::new();
        for (node, &fate) in graph.node.iter().zip(&fates) {
            for (k, input) in node.input.iter().enumerate() {
                if fate == Fate::Convert && self.float_only_input(node, k) {
                    exact.insert(input.as_str());
                }
            }
        }
        let wants_f16 = |name: &str| wants.get(name).is_some_and(|w| w.contains(&Prec::F16));
        // A weight only float32 nodes read is stored in float16 all the same (behind a Cast),
        // unless asked not to or required exact.
        let stored_f16 = |name: &str| {
            wants_f16(name)
                || (!self.keep_float_weights
                    && !exact.contains(name)
                    && wants.get(name).is_some_and(|w| w.contains(&Prec::F32)))
        };

        // Where each float value lives.
        let mut homes = outer_homes.clone();
        let inputs: HashSet<String> = graph.input.iter().map(|i| i.name.clone()).collect();
        for name in inputs.iter().filter(|i| is_float(&types, i)) {
            homes.insert(name.clone(), io_want);
        }
        let mut kept_initializers = Vec::new();
        for t in &graph.initializer {
            if t.data_type == FLOAT && !inputs.contains(&t.name) {
                let home = if stored_f16(&t.name) {
                    Prec::F16
                } else {
                    Prec::F32
                };
                if home == Prec::F32 && mode == Mode::Top {
                    kept_initializers.push(t.name.clone());
                }
                homes.insert(t.name.clone(), home);
            }
        }
        self.report
            .initializers_kept_float
            .extend(kept_initializers);
        for s in &graph.sparse_initializer {
            if let Some(v) = &s.values {
                homes.insert(v.name.clone(), Prec::F32);
            }
        }
        for (node, &fate) in graph.node.iter().zip(&fates) {
            for out in node.output.iter().filter(|o| is_float(&types, o)) {
                let home = match fate {
                    Fate::Convert => Prec::F16,
                    Fate::Keep(_) => Prec::F32,
                    Fate::Source if wants_f16(out) => Prec::F16,
                    Fate::Source => Prec::F32,
                };
                homes.insert(out.clone(), home);
            }
        }
        drop((wants, exact));

        // Definitions change precision.
        for t in &mut graph.initializer {
            if t.data_type == FLOAT && homes.get(&t.name) == Some(&Prec::F16) {
                self.tensor(t)?;
            }
        }
        for (node, &fate) in graph.node.iter_mut().zip(&fates) {
            let to_f16 = match fate {
                Fate::Convert => true,
                Fate::Source => node.output.iter().any(|o| homes.get(o) == Some(&Prec::F16)),
                Fate::Keep(_) => false,
            };
            if to_f16 {
                self.node_attributes(node)?;
            }
        }

        let mut new_casts = Vec::new();
        // Graph outputs read in another precision than their home.
        for k in 0..graph.output.len() {
            let name = graph.output[k].name.clone();
            let Some(&home) = homes.get(&name).filter(|_| is_float(&types, &name)) else {
                continue;
            };
            if home == io_want || inputs.contains(&name) {
                continue;
            }
            if mode == Mode::Top {
                // Keep the output's name: its definition is renamed, and a Cast writes it.
                let renamed = self.fresh(&format!("{name}_{}", home.suffix()));
                rename_definition(graph, &name, &renamed);
                let mut node = onnx::make_node(
                    "Cast",
                    &self.fresh(&format!("{name}_cast")),
                    &[&renamed],
                    &[&name],
                );
                onnx::set_attribute(&mut node, "to", AttributeValue::Int(io_want.code().into()));
                self.report.casts_inserted += 1;
                let after = graph.node.iter().position(|n| n.output.contains(&renamed));
                new_casts.push((after, node));
                copy_declaration(graph, &name, &renamed, home.code());
                types.insert(renamed.clone(), FLOAT);
                homes.insert(renamed, home);
                homes.insert(name, io_want);
            } else {
                // A subgraph's outputs are matched by position: a Cast writes a new one.
                let (node, out) = self.cast(&name, io_want);
                new_casts.push((Some(usize::MAX), node));
                graph.output[k].name = out;
            }
        }

        // Reads in another precision than the value's home: one Cast per value and precision.
        let producers: HashMap<String, usize> = onnx::producers(graph)
            .into_iter()
            .map(|(n, i)| (n.to_owned(), i))
            .collect();
        let mut casts: HashMap<(String, Prec), String> = HashMap::new();
        #[allow(
            clippy::needless_range_loop,
            reason = "the body rewrites `graph.node[j].input[k]` while it reads `fates[j]` and the rest of `graph`"
        )]
        for j in 0..graph.node.len() {
            for k in 0..graph.node[j].input.len() {
                let input = graph.node[j].input[k].clone();
                if !is_float(&types, &input) {
                    continue;
                }
                let (Some(want), Some(&home)) =
                    (self.want(&graph.node[j], fates[j], k), homes.get(&input))
                else {
                    continue;
                };
                if want == home {
                    continue;
                }
                let key = (input.clone(), want);
                let cast_out = match casts.get(&key) {
                    Some(out) => out.clone(),
                    None => {
                        let (node, out) = self.cast(&input, want);
                        new_casts.push((producers.get(&input).copied(), node));
                        copy_declaration(graph, &input, &out, want.code());
                        casts.insert(key, out.clone());
                        out
                    }
                };
                graph.node[j].input[k] = cast_out;
            }
        }

        // Subgraphs, with this graph's values in scope.
        for (node, &fate) in graph.node.iter_mut().zip(&fates) {
            let float = mode == (Mode::Sub { float: true }) || matches!(fate, Fate::Keep(_));
            for a in &mut node.attribute {
                for g in a.g.iter_mut().chain(a.graphs.iter_mut()) {
                    self.graph(g, &types, &homes, Mode::Sub { float })?;
                }
            }
        }

        // Declared types.
        for vi in graph.input.iter_mut().chain(graph.value_info.iter_mut()) {
            if let Some(&home) = homes.get(&vi.name) {
                set_elem_type(vi, home.code());
            }
        }
        for vi in &mut graph.output {
            set_elem_type(vi, io_want.code());
        }

        insert_nodes(graph, new_casts);
        Ok(())
    }

    /// Stores a float32 tensor in float16.
    fn tensor(&mut self, t: &mut TensorProto) -> Result<(), ConvertError> {
        let values = onnx::tensor_from_proto(t)?;
        let Tensor::F32(values) = values else {
            return Ok(());
        };
        let clamped = &mut self.report.values_clamped;
        let halves = values.mapv(|x| to_f16(x, clamped));
        onnx::set_tensor_data(t, &Tensor::F16(halves), DataLayout::Raw);
        self.report.tensors_converted += 1;
        Ok(())
    }

    /// Turns the float32 attributes of a node computing in float16 into float16 ones.
    fn node_attributes(&mut self, node: &mut NodeProto) -> Result<(), ConvertError> {
        let op = node.op_type.clone();
        let dtype_op = matches!(
            op.as_str(),
            "EyeLike"
                | "Multinomial"
                | "RandomNormal"
                | "RandomNormalLike"
                | "RandomUniform"
                | "RandomUniformLike"
                | "Bernoulli"
        );
        let mut scalar = None;
        for a in &mut node.attribute {
            if ((op == "Cast" && a.name == "to") || (dtype_op && a.name == "dtype"))
                && a.i == i64::from(FLOAT)
            {
                a.i = FLOAT16.into();
            }
            if op == "Constant" && (a.name == "value_float" || a.name == "value_floats") {
                scalar = Some(if a.name == "value_float" {
                    Tensor::from_shape_vec(&[], vec![a.f])
                } else {
                    Tensor::from_shape_vec(&[a.floats.len()], a.floats.clone())
                });
            }
            for t in a.t.iter_mut().chain(a.tensors.iter_mut()) {
                if t.data_type == FLOAT {
                    self.tensor(t)?;
                }
            }
        }
        if let Some(Ok(value)) = scalar {
            node.attribute
                .retain(|a| a.name != "value_float" && a.name != "value_floats");
            let mut t = onnx::tensor_to_proto("", &value, DataLayout::Raw);
            self.tensor(&mut t)?;
            onnx::set_attribute(node, "value", AttributeValue::Tensor(t));
        }
        let has = |node: &NodeProto, name: &str| node.attribute.iter().any(|a| a.name == name);
        if matches!(op.as_str(), "RandomNormal" | "RandomUniform") && !has(node, "dtype") {
            onnx::set_attribute(node, "dtype", AttributeValue::Int(FLOAT16.into()));
        }
        if op == "ConstantOfShape" && !has(node, "value") {
            let zero = Tensor::F16(inference::ndarray::arr1(&[f16::ZERO]).into_dyn());
            let t = onnx::tensor_to_proto("", &zero, DataLayout::Raw);
            onnx::set_attribute(node, "value", AttributeValue::Tensor(t));
        }
        Ok(())
    }
}

/// `x` in float16, clamped into its range as onnxruntime's converter does; counts clamps.
fn to_f16(x: f32, clamped: &mut usize) -> f16 {
    const MIN_POSITIVE: f32 = 5.96e-8;
    const MAX_FINITE: f32 = 65504.0;
    let a = x.abs();
    let y = if x == 0.0 || !x.is_finite() {
        x
    } else if a < MIN_POSITIVE {
        *clamped += 1;
        MIN_POSITIVE.copysign(x)
    } else if a > MAX_FINITE {
        *clamped += 1;
        MAX_FINITE.copysign(x)
    } else {
        x
    };
    f16::from_f32(y)
}

#[cfg(test)]
#[path = "fp16_tests.rs"]
mod tests;
