//! The nodes and initializers static quantization adds: a QuantizeLinear/DequantizeLinear
//! pair per activation tensor, an integer initializer with a DequantizeLinear per weight, an
//! INT32 initializer with a DequantizeLinear per bias.

use inference::onnx::{self, proto::NodeProto, AttributeValue, DataLayout, FormatError};
use inference::Tensor;

use super::super::names::Names;
use super::super::params::{QuantParams, QuantType};
use super::super::weights::{integer_tensor, quantize_weights, QuantizedWeights, WeightConfig};

/// Nodes and initializers being added to a graph, with fresh names.
pub(super) struct Emitter<'n> {
    pub(super) names: &'n mut Names,
    pub(super) nodes: Vec<NodeProto>,
    pub(super) initializers: Vec<onnx::proto::TensorProto>,
}

impl Emitter<'_> {
    fn initializer(&mut self, base: &str, tensor: &Tensor) -> String {
        let name = self.names.fresh(base);
        self.initializers
            .push(onnx::tensor_to_proto(&name, tensor, DataLayout::Raw));
        name
    }

    /// `QuantizeLinear(input) → DequantizeLinear → output`, with `params` as scalars (the
    /// zero point of `qtype`); the names it adds start with `base`.
    pub(super) fn activation_pair(
        &mut self,
        input: &str,
        output: &str,
        base: &str,
        params: QuantParams,
        qtype: QuantType,
    ) {
        let scale = self.initializer(
            &format!("{base}_scale"),
            &Tensor::from_shape_vec(&[], vec![params.scale]).expect("scalar"),
        );
        let zero_point = self.initializer(
            &format!("{base}_zero_point"),
            &integer_tensor(qtype, &[], &[params.zero_point]),
        );
        let quantized = self.names.fresh(&format!("{base}_QuantizeLinear_Output"));
        let q_name = self.names.fresh(&format!("{base}_QuantizeLinear"));
        let dq_name = self.names.fresh(&format!("{base}_DequantizeLinear"));
        self.nodes.push(onnx::make_node(
            "QuantizeLinear",
            &q_name,
            &[input, &scale, &zero_point],
            &[&quantized],
        ));
        self.nodes.push(onnx::make_node(
            "DequantizeLinear",
            &dq_name,
            &[&quantized, &scale, &zero_point],
            &[output],
        ));
    }

    /// The integer form of weight `name` and a DequantizeLinear writing its float view;
    /// returns the name of that view and the weight's parameters.
    pub(super) fn weight(
        &mut self,
        name: &str,
        weights: &Tensor,
        config: &WeightConfig,
    ) -> Result<(String, QuantizedWeights), super::super::weights::WeightError> {
        let quantized = quantize_weights(weights, config)?;
        let data = self.initializer(&format!("{name}_quantized"), &quantized.data);
        let scale = self.initializer(&format!("{name}_scale"), &quantized.scale_tensor());
        let zero_point = self.initializer(
            &format!("{name}_zero_point"),
            &quantized.zero_point_tensor(),
        );
        let view = self.names.fresh(&format!("{name}_DequantizeLinear_Output"));
        let node_name = self.names.fresh(&format!("{name}_DequantizeLinear"));
        let mut node = onnx::make_node(
            "DequantizeLinear",
            &node_name,
            &[&data, &scale, &zero_point],
            &[&view],
        );
        if let Some(axis) = quantized.axis {
            onnx::set_attribute(&mut node, "axis", AttributeValue::Int(axis as i64));
        }
        self.nodes.push(node);
        Ok((view, quantized))
    }

    /// Bias `name` (1-D float32) as INT32 with the scale `input_scale · weight_scale` (per
    /// output channel when the weight has one scale per channel) and zero point 0, and a
    /// DequantizeLinear writing its float view; `None` (the bias stays float) when a scale
    /// is 0 or a value does not fit INT32.
    pub(super) fn bias(
        &mut self,
        name: &str,
        bias: &Tensor,
        input_scale: f32,
        weights: &QuantizedWeights,
    ) -> Result<Option<String>, FormatError> {
        let Some(values) = bias.as_array::<f32>() else {
            return Ok(None);
        };
        let weight_scales = weights.scales();
        let channels = values.len();
        let per_channel = weight_scales.len() > 1;
        if per_channel && weight_scales.len() != channels {
            return Ok(None);
        }
        let scales: Vec<f32> = (0..if per_channel { channels } else { 1 })
            .map(|c| input_scale * weight_scales[c])
            .collect();
        if scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Ok(None);
        }
        let mut quantized = Vec::with_capacity(channels);
        for (c, &b) in values.iter().enumerate() {
            let q = (f64::from(b) / f64::from(scales[if per_channel { c } else { 0 }])).round();
            if !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&q) {
                return Ok(None);
            }
            quantized.push(q as i32);
        }
        let data = self.initializer(
            &format!("{name}_quantized"),
            &Tensor::from_shape_vec(&[channels], quantized).expect("1-D"),
        );
        let scale_shape: &[usize] = if per_channel { &[channels] } else { &[] };
        let scale = self.initializer(
            &format!("{name}_quantized_scale"),
            &Tensor::from_shape_vec(scale_shape, scales).expect("scales"),
        );
        let view = self.names.fresh(&format!("{name}_DequantizeLinear_Output"));
        let node_name = self.names.fresh(&format!("{name}_DequantizeLinear"));
        let mut node = onnx::make_node("DequantizeLinear", &node_name, &[&data, &scale], &[&view]);
        if per_channel {
            onnx::set_attribute(&mut node, "axis", AttributeValue::Int(0));
        }
        self.nodes.push(node);
        Ok(Some(view))
    }
}
