//! BatchNormalization folded into the Conv before it, so the quantizer sees one layer
//! with one weight (and ONNX Runtime one integer kernel) where the export has two ops.

use std::collections::HashSet;

use ndarray::{ArrayD, Axis};

use crate::onnx::{DataType, GraphView, Model, NodeProto, TensorProto, UniqueNames};
use crate::zsq::ZsqError;
use crate::zsq::bn::constant as bn_constant;

/// What [`fold_batch_norms`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FoldSummary {
    /// BatchNormalization nodes folded into their Conv.
    pub folded: usize,
    /// BatchNormalization nodes left in the graph, each with the reason.
    pub kept: Vec<String>,
}

/// Folds every inference-mode BatchNormalization that directly follows a Conv (whose
/// output nothing else reads) into that Conv's weight and bias:
/// `W' = W·γ/√(σ²+ε)` per output channel, `b' = (b − μ)·γ/√(σ²+ε) + β`, computed in
/// float64. The Conv then outputs the BN's output value, so names downstream do not
/// change. Other BatchNormalization nodes stay (and run in float).
pub fn fold_batch_norms(model: &mut Model) -> Result<FoldSummary, ZsqError> {
    let mut summary = FoldSummary::default();
    let folds = find_folds(model, &mut summary.kept)?;
    apply_folds(model, &folds)?;
    summary.folded = folds.len();
    Ok(summary)
}

/// One BatchNormalization node to fold into one Conv, with the Conv's new parameters.
struct Fold {
    conv: usize,
    bn: usize,
    weight: ArrayD<f32>,
    bias: ArrayD<f32>,
}

/// The folds to make; every BatchNormalization that stays gets its reason in `kept`.
fn find_folds(model: &Model, kept: &mut Vec<String>) -> Result<Vec<Fold>, ZsqError> {
    let graph = model.graph();
    let view = graph.view();
    let outputs: HashSet<&str> = graph.output.iter().map(|o| o.name()).collect();
    let mut folds = Vec::new();
    for (b, bn) in graph.node.iter().enumerate() {
        if bn.op_type() != "BatchNormalization" || !bn.is_default_domain() {
            continue;
        }
        match fold_into_conv(model, &view, &outputs, b, bn)? {
            Ok(fold) => folds.push(fold),
            Err(reason) => kept.push(format!("BatchNormalization '{}': {reason}", bn.name())),
        }
    }
    Ok(folds)
}

/// The fold of BatchNormalization node `b` into the Conv that produces its input, or
/// why it cannot be folded.
fn fold_into_conv(
    model: &Model,
    view: &GraphView,
    outputs: &HashSet<&str>,
    b: usize,
    bn: &NodeProto,
) -> Result<Result<Fold, String>, ZsqError> {
    let graph = model.graph();
    let keep = |reason: &str| Ok(Err(reason.to_string()));
    if bn.attr_int("training_mode") == Some(1) || bn.output.iter().skip(1).any(|o| !o.is_empty()) {
        return keep("in training mode");
    }
    let x = bn.input[0].as_str();
    let Some(c) = view.producer(x) else {
        return keep("its input is a graph input");
    };
    let conv = &graph.node[c];
    if conv.op_type() != "Conv" || !conv.is_default_domain() {
        return keep(&format!("it follows a {} node, not a Conv", conv.op_type()));
    }
    if view.consumers(x).len() != 1 || outputs.contains(x) {
        return keep("the Conv's output is also read elsewhere");
    }
    // Also behind Identity nodes: the TorchScript exporter shares equal parameters
    // (a fresh BN's γ = 1, β = 0) through them.
    let constant = |slot: usize| -> Option<ArrayD<f64>> {
        let name = bn.input.get(slot).filter(|n| !n.is_empty())?;
        model.tensor_array::<f64>(&*bn_constant(view, name)?).ok()
    };
    let (Some(gamma), Some(beta), Some(mean), Some(var)) =
        (constant(1), constant(2), constant(3), constant(4))
    else {
        return keep("its parameters are not constant tensors");
    };
    let Some(w_tensor) = conv.input.get(1).and_then(|w| view.tensor(w)) else {
        return keep("the Conv's weight is not constant");
    };
    if w_tensor.data_type() != Some(DataType::Float) {
        return keep("the Conv's weight is not float32");
    }
    let w = model.tensor_array::<f64>(&w_tensor)?;
    let channels = w.shape().first().copied().unwrap_or(0);
    let bias = match conv.input.get(2).filter(|n| !n.is_empty()) {
        Some(name) => match view.tensor(name) {
            Some(t) => model.tensor_array::<f64>(&t)?,
            None => return keep("the Conv's bias is not constant"),
        },
        None => ArrayD::zeros(ndarray::IxDyn(&[channels])),
    };
    let per_channel = [&gamma, &beta, &mean, &var, &bias];
    if per_channel.iter().any(|a| a.len() != channels) {
        return keep("its parameters do not have one value per Conv output channel");
    }
    let eps = f64::from(bn.attr_float("epsilon").unwrap_or(1e-5));
    let factor: Vec<f64> = var
        .iter()
        .zip(&gamma)
        .map(|(v, g)| g / (v + eps).sqrt())
        .collect();
    let mut weight = w.mapv(|v| v as f32);
    for (o, mut plane) in weight.axis_iter_mut(Axis(0)).enumerate() {
        let f = factor[o];
        let src = w.index_axis(Axis(0), o);
        plane.zip_mut_with(&src, |dst, &v| *dst = (v * f) as f32);
    }
    let bias: ArrayD<f32> = ArrayD::from_shape_fn(ndarray::IxDyn(&[channels]), |i| {
        let o = i[0];
        ((bias[o] - mean[o]) * factor[o] + beta[o]) as f32
    });
    Ok(Ok(Fold {
        conv: c,
        bn: b,
        weight,
        bias,
    }))
}

/// Gives each Conv its folded weight and bias and the BN's output, and removes the
/// folded BatchNormalization nodes.
fn apply_folds(model: &mut Model, folds: &[Fold]) -> Result<(), ZsqError> {
    let mut names = UniqueNames::new(model.graph());
    let graph = model.graph_mut();
    let mut removed = vec![false; graph.node.len()];
    for fold in folds {
        let bn_out = graph.node[fold.bn].output[0].clone();
        let conv = &graph.node[fold.conv];
        let base = if conv.name().is_empty() {
            conv.input[1].clone()
        } else {
            conv.name().to_string()
        };
        let w_name = names.fresh(&format!("{base}.weight_bn_folded"));
        let b_name = names.fresh(&format!("{base}.bias_bn_folded"));
        graph.add_initializer(TensorProto::from_array(&w_name, &fold.weight))?;
        graph.add_initializer(TensorProto::from_array(&b_name, &fold.bias))?;
        let conv = &mut graph.node[fold.conv];
        conv.input.truncate(1);
        conv.input.push(w_name);
        conv.input.push(b_name);
        conv.output[0] = bn_out;
        removed[fold.bn] = true;
    }
    let mut removed = removed.into_iter();
    graph.node.retain(|_| !removed.next().unwrap_or(false));
    graph.remove_unused();
    Ok(())
}
