//! BatchNormalization layers and the statistics they remember of the training data.
//!
//! A BN layer in inference mode normalises its input X with running statistics
//! (mean μ, variance σ²) collected during training. Those statistics are all the
//! zero-shot quantizer knows about the data: distillation makes images whose
//! activations at every BN input have that mean and standard deviation.

use std::borrow::Cow;

use crate::onnx::{GraphView, Model, NodeProto, TensorProto};

use super::ZsqError;

/// One BatchNormalization node (inference mode) and its per-channel parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct BnLayer {
    /// The node's name, or its output's name when the node has none.
    pub name: String,
    /// Index of the node in the model's `GraphProto::node`.
    pub node: usize,
    /// The value the layer normalises (X).
    pub input: String,
    /// The layer's output (Y).
    pub output: String,
    /// Running mean μ per channel.
    pub mean: Vec<f32>,
    /// Running variance σ² per channel.
    pub var: Vec<f32>,
    /// Scale γ per channel.
    pub gamma: Vec<f32>,
    /// Shift β per channel.
    pub beta: Vec<f32>,
    pub epsilon: f32,
}

impl BnLayer {
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// The standard deviation the layer expects per channel, sqrt(var + eps): the
    /// target of the std loss term.
    pub fn std(&self) -> Vec<f32> {
        self.var.iter().map(|v| (v + self.epsilon).sqrt()).collect()
    }

    /// The layer's per-channel slope γ / sqrt(var + eps): Y = X·slope + (β − μ·slope).
    pub fn slope(&self) -> Vec<f32> {
        self.gamma
            .iter()
            .zip(self.std())
            .map(|(g, s)| g / s)
            .collect()
    }
}

/// A constant tensor by name: an initializer or a Constant node's output, also behind
/// Identity nodes (the TorchScript exporter shares equal initializers through them).
pub(crate) fn constant<'g>(view: &GraphView<'g>, value: &str) -> Option<Cow<'g, TensorProto>> {
    let mut value = value;
    for _ in 0..16 {
        if let Some(t) = view.tensor(value) {
            return Some(t);
        }
        let node = view.producer_node(value)?;
        if node.op_type() != "Identity" {
            return None;
        }
        value = node.input.first()?;
    }
    None
}

/// ONNX's default epsilon of BatchNormalization.
const DEFAULT_EPSILON: f32 = 1e-5;

/// Every BatchNormalization node of the main graph, in node order.
///
/// Fails with [`ZsqError::NoBatchNorm`] when there is none (the exporter folded them
/// into the convolutions), and names the layer when one cannot be used: training
/// mode, statistics that are not constants, lengths that disagree, a negative or
/// non-finite variance.
pub fn find_bn_layers(model: &Model) -> Result<Vec<BnLayer>, ZsqError> {
    let graph = model.graph();
    let mut layers = Vec::new();
    for (index, node) in graph.node.iter().enumerate() {
        if node.op_type() == "BatchNormalization" && node.is_default_domain() {
            layers.push(read_layer(model, index, node)?);
        }
    }
    if layers.is_empty() {
        return Err(ZsqError::NoBatchNorm);
    }
    Ok(layers)
}

fn read_layer(model: &Model, index: usize, node: &NodeProto) -> Result<BnLayer, ZsqError> {
    let name = match node.name() {
        "" => node.output.first().cloned().unwrap_or_default(),
        n => n.to_string(),
    };
    let fail = |why: String| ZsqError::Model(format!("BatchNormalization layer '{name}': {why}"));
    if node.attr_int("training_mode") == Some(1) || node.output.len() > 1 {
        return Err(fail(
            "it is in training mode (it normalises with batch statistics); export the model \
             with model.eval() and training=torch.onnx.TrainingMode.PRESERVE"
                .into(),
        ));
    }
    if node.input.len() != 5 || node.output.len() != 1 {
        return Err(fail(format!(
            "expected 5 inputs and 1 output, found {} and {}",
            node.input.len(),
            node.output.len()
        )));
    }
    let view = model.graph().view();
    let read = |slot: usize, role: &str| -> Result<Vec<f32>, ZsqError> {
        let value = &node.input[slot];
        let tensor = constant(&view, value).ok_or_else(|| {
            fail(format!(
                "its {role} '{value}' is not a constant (an initializer or a Constant node)"
            ))
        })?;
        let array = model
            .tensor_array::<f32>(&tensor)
            .map_err(|e| fail(format!("cannot read its {role}: {e}")))?;
        if array.ndim() != 1 {
            return Err(fail(format!(
                "its {role} '{value}' has shape {:?}, expected one value per channel",
                array.shape()
            )));
        }
        Ok(array.into_iter().collect())
    };
    let gamma = read(1, "scale")?;
    let beta = read(2, "bias")?;
    let mean = read(3, "running mean")?;
    let var = read(4, "running variance")?;
    let channels = mean.len();
    if [gamma.len(), beta.len(), var.len()] != [channels; 3] {
        return Err(fail(format!(
            "scale, bias, mean and variance have {}, {}, {} and {} values; they must agree",
            gamma.len(),
            beta.len(),
            channels,
            var.len()
        )));
    }
    let epsilon = node.attr_float("epsilon").unwrap_or(DEFAULT_EPSILON);
    if let Some(c) = var.iter().position(|v| !v.is_finite() || *v < 0.0) {
        return Err(fail(format!(
            "channel {c} has running variance {}, which is not a variance",
            var[c]
        )));
    }
    if let Some(c) = (0..channels).find(|&c| !(mean[c].is_finite() && gamma[c].is_finite())) {
        return Err(fail(format!("channel {c} has a non-finite mean or scale")));
    }
    if !(epsilon.is_finite() && epsilon >= 0.0) {
        return Err(fail(format!("epsilon {epsilon} is not a valid epsilon")));
    }
    Ok(BnLayer {
        name,
        node: index,
        input: node.input[0].clone(),
        output: node.output[0].clone(),
        mean,
        var,
        gamma,
        beta,
        epsilon,
    })
}
