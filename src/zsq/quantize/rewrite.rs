//! The graph rewrite: a float model and its [`QdqPlan`] become a QDQ model. Scale and
//! zero-point initializers per parameter group, DequantizeLinear in front of every
//! integer weight, bias and constant, and a QuantizeLinear→DequantizeLinear pair after
//! every planned activation.

use std::collections::{BTreeMap, HashMap};

use ndarray::ArrayD;

use super::plan::{LayerInfo, QdqPlan};
use super::weights::{LayerWeights, encode_layer, quantize_constant, zero_point_tensor};
use crate::onnx::{
    AttributeProto, DataType, GraphProto, Model, NodeBuilder, NodeProto, TensorProto, UniqueNames,
};
use crate::zsq::ZsqError;
use crate::zsq::qparams::{Precision, QParams, Range};

/// What [`insert_qdq`] did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QdqSummary {
    /// Activation tensors with a Q→DQ pair.
    pub qdq_tensors: usize,
    /// Groups of tensors sharing one scale and zero point.
    pub parameter_groups: usize,
    /// Layers with int8 weights.
    pub int8_layers: usize,
    /// Of those, the last layers whose output stays float.
    pub float_output_layers: Vec<String>,
    /// Constant inputs of quantized ops stored as integers.
    pub quantized_constants: usize,
    /// Nodes of the float tail, per op type.
    pub tail_ops: BTreeMap<String, usize>,
    /// Channels whose weight scale was raised so that the int32 bias fits.
    pub bias_clamped_channels: usize,
}

/// Rewrites `model` (BN-folded, float32; `plan` made from it) into a QDQ model: one
/// Q→DQ pair per planned activation with parameters from `ranges` (the union over the
/// tensors sharing parameters), int8 per-channel weights, int32 bias (u8s8). Checks
/// that the default-domain opset is at least 13 (per-axis DequantizeLinear).
pub fn insert_qdq(
    model: &mut Model,
    plan: &QdqPlan,
    ranges: &HashMap<String, Range>,
    precision: Precision,
) -> Result<QdqSummary, ZsqError> {
    insert_qdq_with_weights(model, plan, ranges, precision, &mut |_, _| None)
}

/// [`insert_qdq`] where `weights(layer, w)` may choose a layer's integer weights (the
/// float weight `w` given; `None` keeps the int8 per-channel default). This is how
/// W4A8 models are written: 4-bit values in int8 tensors behind the same
/// DequantizeLinear, so ONNX Runtime runs them on its int8 kernels and their accuracy
/// is measured exactly.
pub fn insert_qdq_with_weights(
    model: &mut Model,
    plan: &QdqPlan,
    ranges: &HashMap<String, Range>,
    precision: Precision,
    weights: &mut dyn FnMut(&LayerInfo, &ArrayD<f32>) -> Option<LayerWeights>,
) -> Result<QdqSummary, ZsqError> {
    check_opset(model)?;
    let params: BTreeMap<&str, QParams> = plan
        .group_ranges(ranges)?
        .into_iter()
        .map(|(leader, range)| (leader, QParams::for_range(range, precision)))
        .collect();
    let mut rewrite = Rewrite::new(model, plan, precision);
    rewrite.summary.parameter_groups = params.len();
    let group_names = rewrite.add_group_parameters(&params)?;
    for layer in &plan.layers {
        rewrite.quantize_layer(layer, &params, weights)?;
    }
    for &(node, slot) in &plan.constants {
        rewrite.quantize_constant_input(node, slot)?;
    }
    rewrite.insert_activation_pairs(&group_names)?;
    Ok(rewrite.summary)
}

/// Per-axis DequantizeLinear (per-channel weights) arrived in opset 13.
fn check_opset(model: &Model) -> Result<(), ZsqError> {
    let opset = model.opset_version("").unwrap_or(0);
    if opset < 13 {
        return Err(ZsqError::Model(format!(
            "the model uses opset {opset}; per-channel int8 weights need opset 13 or later \
             (re-export it with opset_version=13 or higher)"
        )));
    }
    Ok(())
}

/// What a layer's integer weight and bias are computed from.
struct LayerInputs {
    /// The float weight.
    w: ArrayD<f32>,
    /// The scale of the layer's (quantized) input.
    s_in: f32,
    /// The float bias, if constant.
    bias: Option<ArrayD<f32>>,
}

/// Names of one tensor stored quantized.
struct QuantizedNames {
    values: String,
    scale: String,
    zero_point: String,
    /// The float output of its DequantizeLinear, which readers then read.
    dequantized: String,
}

/// The graph being rewritten, and what the rewrite has done so far.
struct Rewrite<'a> {
    graph: &'a mut GraphProto,
    plan: &'a QdqPlan,
    precision: Precision,
    names: UniqueNames,
    /// DequantizeLinear nodes reading initializers: they go first in the node list.
    front: Vec<NodeProto>,
    summary: QdqSummary,
}

impl<'a> Rewrite<'a> {
    fn new(model: &'a mut Model, plan: &'a QdqPlan, precision: Precision) -> Self {
        let names = UniqueNames::new(model.graph());
        let graph = model.graph_mut();
        let mut summary = QdqSummary {
            qdq_tensors: plan.activations.len(),
            ..QdqSummary::default()
        };
        for &i in &plan.tail {
            *summary
                .tail_ops
                .entry(graph.node[i].op_type().to_string())
                .or_default() += 1;
        }
        Rewrite {
            graph,
            plan,
            precision,
            names,
            front: Vec::new(),
            summary,
        }
    }

    /// Scale and zero-point initializers per parameter group; returns their names per
    /// group leader.
    fn add_group_parameters(
        &mut self,
        params: &BTreeMap<&'a str, QParams>,
    ) -> Result<HashMap<&'a str, (String, String)>, ZsqError> {
        let act_type = self.precision.activation_type();
        let mut group_names = HashMap::new();
        for (leader, p) in params {
            let s = self.names.fresh(&format!("{leader}_scale"));
            let z = self.names.fresh(&format!("{leader}_zero_point"));
            self.graph
                .add_initializer(TensorProto::scalar(&s, p.scale))?;
            self.graph
                .add_initializer(zero_point_tensor(&z, act_type, &[p.zero_point], None))?;
            group_names.insert(*leader, (s, z));
        }
        Ok(group_names)
    }

    /// The layer's weight as integers behind a DequantizeLinear (and its bias, int32,
    /// when the precision quantizes bias).
    fn quantize_layer(
        &mut self,
        layer: &LayerInfo,
        params: &BTreeMap<&str, QParams>,
        weights: &mut dyn FnMut(&LayerInfo, &ArrayD<f32>) -> Option<LayerWeights>,
    ) -> Result<(), ZsqError> {
        let node = self.graph.node[layer.node].clone();
        let LayerInputs { w, s_in, bias } = self.layer_inputs(&node, params)?;
        let encoded = encode_layer(
            &node,
            layer,
            &w,
            bias.as_ref(),
            s_in,
            self.precision,
            weights,
        )?;
        self.summary.bias_clamped_channels += encoded.clamped_channels;
        let base = if node.name().is_empty() {
            node.input[1].clone()
        } else {
            node.name().to_string()
        };
        let channels = encoded.scales.len();
        let wn = self.quantized_names(&node.input[1]);
        let tensors = [
            TensorProto::from_array(&wn.values, &encoded.weight),
            TensorProto::from_array(
                &wn.scale,
                &ndarray::Array1::from_vec(encoded.scales.clone()),
            ),
            zero_point_tensor(
                &wn.zero_point,
                DataType::Int8,
                &vec![0; channels],
                Some(channels),
            ),
        ];
        let name = format!("{base}_weight_DequantizeLinear");
        self.add_dequantize(&wn, tensors, &name, Some(layer.weight_axis))?;
        self.graph.node[layer.node].input[1] = wn.dequantized;
        if let Some(bq) = encoded.bias {
            let bn = self.quantized_names(&node.input[2]);
            let b_scale: Vec<f32> = encoded.scales.iter().map(|s| s * s_in).collect();
            let tensors = [
                TensorProto::from_array(&bn.values, &ndarray::Array1::from_vec(bq)),
                TensorProto::from_array(&bn.scale, &ndarray::Array1::from_vec(b_scale)),
                zero_point_tensor(
                    &bn.zero_point,
                    DataType::Int32,
                    &vec![0; channels],
                    Some(channels),
                ),
            ];
            let name = format!("{base}_bias_DequantizeLinear");
            self.add_dequantize(&bn, tensors, &name, Some(0))?;
            self.graph.node[layer.node].input[2] = bn.dequantized;
        }
        self.summary.int8_layers += 1;
        if layer.float_output {
            self.summary
                .float_output_layers
                .push(if node.name().is_empty() {
                    node.output[0].clone()
                } else {
                    node.name().to_string()
                });
        }
        Ok(())
    }

    /// A layer's float weight, the scale of its (quantized) input and its bias, if
    /// constant.
    fn layer_inputs(
        &self,
        node: &NodeProto,
        params: &BTreeMap<&str, QParams>,
    ) -> Result<LayerInputs, ZsqError> {
        let view = self.graph.view();
        let w_name = &node.input[1];
        let w = view
            .tensor(w_name)
            .ok_or_else(|| ZsqError::Model(format!("weight '{w_name}' is not constant")))?
            .to_array::<f32>()?;
        let x = &node.input[0];
        let s_in = params
            .get(self.plan.leader(x))
            .ok_or_else(|| {
                ZsqError::Model(format!(
                    "layer '{}': its input '{x}' is not quantized",
                    node.name()
                ))
            })?
            .scale;
        let bias = match node.input.get(2).filter(|b| !b.is_empty()) {
            Some(b) => view.tensor(b).map(|t| t.to_array::<f32>()).transpose()?,
            None => None,
        };
        Ok(LayerInputs { w, s_in, bias })
    }

    /// A constant float input of a quantized op, stored per tensor in the activation
    /// type behind a DequantizeLinear.
    fn quantize_constant_input(&mut self, node: usize, slot: usize) -> Result<(), ZsqError> {
        let c_name = self.graph.node[node].input[slot].clone();
        let Some(c) = self
            .graph
            .view()
            .tensor(&c_name)
            .map(|t| t.to_array::<f32>())
            .transpose()?
        else {
            return Ok(());
        };
        let cn = self.quantized_names(&c_name);
        let (values, p) = quantize_constant(&cn.values, &c, self.precision);
        let act_type = self.precision.activation_type();
        let tensors = [
            values,
            TensorProto::scalar(&cn.scale, p.scale),
            zero_point_tensor(&cn.zero_point, act_type, &[p.zero_point], None),
        ];
        self.add_dequantize(&cn, tensors, &format!("{c_name}_DequantizeLinear"), None)?;
        self.graph.node[node].input[slot] = cn.dequantized;
        self.summary.quantized_constants += 1;
        Ok(())
    }

    /// Fresh names for `tensor` stored quantized.
    fn quantized_names(&mut self, tensor: &str) -> QuantizedNames {
        QuantizedNames {
            values: self.names.fresh(&format!("{tensor}_quantized")),
            scale: self.names.fresh(&format!("{tensor}_scale")),
            zero_point: self.names.fresh(&format!("{tensor}_zero_point")),
            dequantized: self.names.fresh(&format!("{tensor}_dequantized")),
        }
    }

    /// Adds the initializers of a quantized constant (values, scale, zero point) and the
    /// DequantizeLinear `node` reading them (per `axis` when given).
    fn add_dequantize(
        &mut self,
        names: &QuantizedNames,
        tensors: [TensorProto; 3],
        node: &str,
        axis: Option<usize>,
    ) -> Result<(), ZsqError> {
        for t in tensors {
            self.graph.add_initializer(t)?;
        }
        self.front.push(
            NodeBuilder::new("DequantizeLinear")
                .name(&self.names.fresh(node))
                .inputs([&names.values, &names.scale, &names.zero_point])
                .output(&names.dequantized)
                .attrs(axis.map(|a| AttributeProto::int("axis", a as i64)))
                .build(),
        );
        Ok(())
    }

    /// Activations: Q and DQ right after each producer (graph inputs: at the front),
    /// every reader then reads the DQ output. Graph outputs keep their float values.
    fn insert_activation_pairs(
        &mut self,
        group_names: &HashMap<&str, (String, String)>,
    ) -> Result<(), ZsqError> {
        let mut pairs = self.activation_pairs(group_names);
        let renamed: HashMap<String, String> = pairs
            .iter()
            .map(|(t, [_, dq])| (t.clone(), dq.output[0].clone()))
            .collect();
        let old_nodes = std::mem::take(&mut self.graph.node);
        let mut nodes = Vec::with_capacity(old_nodes.len() + self.front.len() + 2 * pairs.len());
        nodes.append(&mut self.front);
        for input in &self.graph.input {
            if let Some(pair) = pairs.remove(input.name()) {
                nodes.extend(pair);
            }
        }
        for mut node in old_nodes {
            for input in node.input.iter_mut() {
                if let Some(dq) = renamed.get(input.as_str()) {
                    *input = dq.clone();
                }
            }
            let outputs = node.output.clone();
            nodes.push(node);
            for o in &outputs {
                if let Some(pair) = pairs.remove(o) {
                    nodes.extend(pair);
                }
            }
        }
        if let Some(left) = pairs.keys().next() {
            return Err(ZsqError::Model(format!(
                "tensor '{left}' is planned for quantization but nothing produces it"
            )));
        }
        self.graph.node = nodes;
        self.graph.remove_unused();
        Ok(())
    }

    /// The Q→DQ pair of every planned activation, with its group's parameters.
    fn activation_pairs(
        &mut self,
        group_names: &HashMap<&str, (String, String)>,
    ) -> HashMap<String, [NodeProto; 2]> {
        let mut pairs = HashMap::new();
        for t in &self.plan.activations {
            let (s, z) = &group_names[self.plan.leader(t)];
            let q_out = self.names.fresh(&format!("{t}_quantized"));
            let dq_out = self.names.fresh(&format!("{t}_dequantized"));
            let q = NodeBuilder::new("QuantizeLinear")
                .name(&self.names.fresh(&format!("{t}_QuantizeLinear")))
                .inputs([t, s, z])
                .output(&q_out)
                .build();
            let dq = NodeBuilder::new("DequantizeLinear")
                .name(&self.names.fresh(&format!("{t}_DequantizeLinear")))
                .inputs([&q_out, s, z])
                .output(&dq_out)
                .build();
            pairs.insert(t.clone(), [q, dq]);
        }
        pairs
    }
}
