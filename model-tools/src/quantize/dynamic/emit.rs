//! Writing the integer form of a planned node: `DynamicQuantizeLinear`, the quantized weight
//! initializers, `MatMulInteger` / `ConvInteger`, `Cast`, the rescaling `Mul`s and the bias.

use inference::onnx::proto::NodeProto;
use inference::onnx::{self, AttributeValue, DataLayout};
use inference::{ElementType, Tensor};

use super::plan::{Bias, Plan, QuantizedActivation, Rewrite, WeightNames};
use super::DynamicOp;
use crate::quantize::report::QuantizedNode;
use crate::quantize::weights::{
    integer_tensor, quantize_weights, Granularity, QuantizedWeights, WeightConfig,
};

impl Rewrite<'_> {
    /// Emits the integer form of `node` (see the module documentation).
    pub(super) fn emit(&mut self, node: NodeProto, plan: Plan) {
        let output = node.output[0].clone();
        let base = if node.name.is_empty() {
            output.clone()
        } else {
            node.name.clone()
        };
        let mut activation = plan.activation.clone();
        if plan.transpose_activation {
            let transposed = self.names.fresh(&format!("{activation}_transposed"));
            let mut t = onnx::make_node(
                "Transpose",
                &self.names.fresh(&format!("{base}_transpose_a")),
                &[activation.as_str()],
                &[transposed.as_str()],
            );
            onnx::set_attribute(&mut t, "perm", AttributeValue::Ints(vec![1, 0]));
            self.nodes.push(t);
            activation = transposed;
        }
        // ONNX Runtime fuses DynamicQuantizeLinear into its MatMul (DynamicQuantizeMatMul)
        // only when the quantized activation has no other reader: each MatMul gets its own.
        // ConvInteger has no such fusion, so Convs share one.
        let x = self.activation(&activation, plan.op == DynamicOp::Conv);
        let w = self.weight(&plan);

        let combined = self.names.fresh(&format!("{base}_combined_scale"));
        let scales_mul = self.names.fresh(&format!("{base}_scales_mul"));
        self.nodes.push(onnx::make_node(
            "Mul",
            &scales_mul,
            &[x.scale.as_str(), w.scale.as_str()],
            &[combined.as_str()],
        ));

        let integer_op = match plan.op {
            DynamicOp::Conv => "ConvInteger",
            DynamicOp::MatMul | DynamicOp::Gemm => "MatMulInteger",
        };
        let int32 = self.names.fresh(&format!("{output}_int32"));
        let mut integer = onnx::make_node(
            integer_op,
            &self.names.fresh(&format!("{base}_quant")),
            &[
                x.data.as_str(),
                w.data.as_str(),
                x.zero_point.as_str(),
                w.zero_point.as_str(),
            ],
            &[int32.as_str()],
        );
        integer.attribute = plan.attributes.clone();
        self.nodes.push(integer);

        let float = self.names.fresh(&format!("{output}_float"));
        let mut cast = onnx::make_node(
            "Cast",
            &self.names.fresh(&format!("{base}_cast")),
            &[int32.as_str()],
            &[float.as_str()],
        );
        onnx::set_attribute(
            &mut cast,
            "to",
            AttributeValue::Int(i64::from(ElementType::F32.onnx_code())),
        );
        self.nodes.push(cast);

        let scaled = match plan.bias {
            Bias::None => output.clone(),
            _ => self.names.fresh(&format!("{output}_unbiased")),
        };
        let rescale = self.names.fresh(&format!("{base}_rescale"));
        self.nodes.push(onnx::make_node(
            "Mul",
            &rescale,
            &[float.as_str(), combined.as_str()],
            &[scaled.as_str()],
        ));

        let bias = match plan.bias {
            Bias::None => None,
            Bias::Value(name) => Some(name),
            Bias::Scaled(name, beta) => {
                let beta_name = self.names.fresh(&format!("{base}_beta"));
                let beta_tensor = Tensor::from_shape_vec(&[], vec![beta]).expect("a scalar");
                self.initializers.push(onnx::tensor_to_proto(
                    &beta_name,
                    &beta_tensor,
                    DataLayout::Raw,
                ));
                let times_beta = self.names.fresh(&format!("{name}_times_beta"));
                self.nodes.push(onnx::make_node(
                    "Mul",
                    &self.names.fresh(&format!("{base}_beta_mul")),
                    &[name.as_str(), beta_name.as_str()],
                    &[times_beta.as_str()],
                ));
                Some(times_beta)
            }
            Bias::Constant { replaces, tensor } => {
                let suffix = match plan.op {
                    DynamicOp::Conv => "reshaped",
                    DynamicOp::MatMul | DynamicOp::Gemm => "times_beta",
                };
                let name = self.names.fresh(&format!("{replaces}_{suffix}"));
                self.initializers
                    .push(onnx::tensor_to_proto(&name, &tensor, DataLayout::Raw));
                // Dropped at the end unless something else still reads it.
                self.replaced.insert(replaces);
                Some(name)
            }
        };
        if let Some(bias) = bias {
            let add = self.names.fresh(&format!("{base}_bias_add"));
            self.nodes.push(onnx::make_node(
                "Add",
                &add,
                &[scaled.as_str(), bias.as_str()],
                &[output.as_str()],
            ));
        }

        self.quantized.push(QuantizedNode {
            node: node.name.clone(),
            output,
            op_type: node.op_type.clone(),
            weight: plan.weight_name.clone(),
            weight_type: self.options.weight_type,
            stored_as: w.stored_as,
            per_channel: w.per_channel,
            integer_op: integer_op.to_owned(),
        });
    }

    /// `DynamicQuantizeLinear` of `name`, emitted before its reader; with `share`, once for
    /// all the readers that share.
    fn activation(&mut self, name: &str, share: bool) -> QuantizedActivation {
        if let Some(q) = self.activations.get(name).filter(|_| share) {
            return q.clone();
        }
        let q = QuantizedActivation {
            data: self.names.fresh(&format!("{name}_quantized")),
            scale: self.names.fresh(&format!("{name}_scale")),
            zero_point: self.names.fresh(&format!("{name}_zero_point")),
        };
        self.nodes.push(onnx::make_node(
            "DynamicQuantizeLinear",
            &self.names.fresh(&format!("{name}_QuantizeLinear")),
            &[name],
            &[q.data.as_str(), q.scale.as_str(), q.zero_point.as_str()],
        ));
        if share {
            self.activations.insert(name.to_owned(), q.clone());
        }
        q
    }

    /// The quantized initializers of the plan's weight, made at its first use.
    fn weight(&mut self, plan: &Plan) -> WeightNames {
        let key = format!("{}|{}", plan.op, plan.weight_key);
        if let Some(w) = self.weights.get(&key) {
            return w.clone();
        }
        let rank = plan.weight.shape().len();
        let options = self.options;
        let axis = match plan.op {
            DynamicOp::Conv => Some(0),
            // Per column of B; a batched B (rank > 2) keeps one scale.
            DynamicOp::MatMul | DynamicOp::Gemm => (rank == 2).then_some(1),
        };
        let mut config = match axis.filter(|_| options.per_channel) {
            Some(axis) => WeightConfig::per_channel(options.weight_type, axis),
            None => WeightConfig::per_tensor(options.weight_type),
        };
        config.params.reduce_range = options.reduce_range;
        if plan.op == DynamicOp::Conv && config.granularity != Granularity::PerTensor {
            // ONNX Runtime's ConvInteger takes one weight zero point for all channels
            // ("Non per-tensor quantization is not supported"): symmetric quantization gives
            // every channel the same one, while the scales stay per channel.
            config.params.symmetric = true;
        }
        let mut quantized: QuantizedWeights =
            quantize_weights(&plan.weight, &config).expect("checked finite float32 and axis");
        if plan.op == DynamicOp::Conv {
            quantized = quantized.to_unsigned();
        }
        let per_channel = quantized.axis.is_some();
        let mut scale = quantized.scale_tensor();
        if per_channel && plan.op == DynamicOp::Conv {
            // [M] → [M, 1, …] to broadcast over the output's channel axis.
            let mut shape = vec![1; rank - 1];
            shape[0] = quantized.params.len();
            scale = scale.reshape(&shape).expect("same element count");
        }
        let zero_point = match quantized.shared_zero_point() {
            Some(z) => integer_tensor(quantized.qtype, &[], &[z]),
            None => quantized.zero_point_tensor(),
        };
        let base = &plan.weight_name;
        let names = WeightNames {
            data: self.names.fresh(&format!("{base}_quantized")),
            scale: self.names.fresh(&format!("{base}_scale")),
            zero_point: self.names.fresh(&format!("{base}_zero_point")),
            per_channel,
            stored_as: quantized.qtype,
        };
        for (name, tensor) in [
            (&names.data, &quantized.data),
            (&names.scale, &scale),
            (&names.zero_point, &zero_point),
        ] {
            self.initializers
                .push(onnx::tensor_to_proto(name, tensor, DataLayout::Raw));
        }
        self.replaced.insert(plan.weight_name.clone());
        self.weights.insert(key, names.clone());
        names
    }
}
