//! The BN-statistics loss of one layer and its gradient in closed form.
//!
//! For a BN input X (N×C×H×W) with statistics over groups of M elements (per image
//! and channel: M = H·W; per channel over the batch: M = N·H·W):
//!
//! ```text
//! m = mean(X),  s = sqrt(mean((X − m)²) + STD_EPSILON)
//! L_l = c · Σ_groups [ w_mean·(m − μ)² + w_std·(s − σ)² ],   σ = sqrt(var + eps)
//! dL_l/dX = (X − m)·a + b,   a = 2·c·w_std·(s − σ)/(M·s),   b = 2·c·w_mean·(m − μ)/M
//! ```
//!
//! with c = 1/(layers · groups): the loss is a mean over layers, channels and (per
//! image) images, so its size does not depend on the model's width, depth or the
//! batch. Emitting dX directly (one pass over X, as a BatchNormalization node)
//! instead of differentiating the ReduceMean/Sqrt chain op by op keeps the graph
//! small and fast.

use ndarray::ArrayD;

use super::emit::Emitter;
use super::{LossSpec, Statistics};
use crate::onnx::AttributeProto;
use crate::zsq::ZsqError;
use crate::zsq::bn::BnLayer;

/// Added to the variance before the square root, so that the std and its gradient
/// stay finite for a channel that is constant.
pub const STD_EPSILON: f32 = 1e-10;

/// What one layer adds to the graph.
pub(super) struct LayerTerm {
    /// Scalar: this layer's share of the loss.
    pub(super) loss: String,
    /// Its gradient w.r.t. X, shaped like X.
    pub(super) dx: String,
    /// Per-group mean and std (N×C×1×1 per image, 1×C×1×1 over the batch).
    pub(super) mean: String,
    pub(super) std: String,
}

pub(super) fn layer_term(
    emit: &mut Emitter,
    layer: &BnLayer,
    x: &str,
    shape: &[usize],
    spec: &LossSpec,
    layers: usize,
) -> Result<LayerTerm, ZsqError> {
    let &[n, c, h, w] = shape else {
        return Err(ZsqError::Model(format!(
            "BatchNormalization layer '{}': its input has shape {shape:?}; statistics need N×C×H×W",
            layer.name
        )));
    };
    if c != layer.channels() {
        return Err(ZsqError::Model(format!(
            "BatchNormalization layer '{}': its input has {c} channels but it holds statistics for {}",
            layer.name,
            layer.channels()
        )));
    }
    emit.set_scope(&format!("loss/{}", layer.name));
    let (axes, group, groups, stat_shape): (&[i64], usize, usize, [usize; 4]) =
        match spec.statistics {
            Statistics::PerImage => (&[2, 3], h * w, n * c, [n, c, 1, 1]),
            Statistics::Batch => (&[0, 2, 3], n * h * w, c, [1, c, 1, 1]),
        };
    let scale = 1.0 / (layers * groups) as f64;
    let (w_mean, w_std) = spec.terms.weights();
    let per_channel = |values: Vec<f32>| {
        ArrayD::from_shape_vec(vec![1, c, 1, 1], values)
            .map_err(|e| ZsqError::Model(format!("BatchNormalization layer '{}': {e}", layer.name)))
    };
    let mu = emit.tensor("bn_mean", &per_channel(layer.mean.clone())?);
    let sigma = emit.tensor("bn_std", &per_channel(layer.std())?);

    // Two passes (the mean, then the centred squares): E[X²] − m² in float32 loses
    // digits where |m| ≫ std, and measured no faster.
    let mean = emit.reduce("ReduceMean", x, axes, true);
    let centred = emit.sub(x, &mean);
    let square_sum = emit.reduce("ReduceSumSquare", &centred, axes, true);
    let var = emit.scale(&square_sum, (1.0 / group as f64) as f32);
    let eps = emit.scalar(STD_EPSILON);
    let var = emit.add(&var, &eps);
    let std = emit.op("Sqrt", &[&var], vec![]);
    let mean_error = emit.sub(&mean, &mu);
    let std_error = emit.sub(&std, &sigma);

    let mut parts = Vec::new();
    for (error, weight) in [(&mean_error, w_mean), (&std_error, w_std)] {
        if weight > 0.0 {
            let total = emit.reduce("ReduceSumSquare", error, &[], false);
            parts.push(emit.scale(&total, (scale * weight as f64) as f32));
        }
    }
    let loss = emit.sum(&parts);

    // dX = (X − m)·a + b per group, in one pass: a BatchNormalization node (mean 0,
    // variance 1, epsilon 0) is exactly a per-channel affine map; per-image groups are
    // the channels of X − m seen as 1×(N·C)×H×W.
    let slope = 2.0 * scale / group as f64;
    let a = if w_std > 0.0 {
        let ratio = emit.op("Div", &[&std_error, &std], vec![]);
        emit.scale(&ratio, (slope * w_std as f64) as f32)
    } else {
        emit.zeros(&stat_shape)
    };
    let b = if w_mean > 0.0 {
        emit.scale(&mean_error, (slope * w_mean as f64) as f32)
    } else {
        emit.zeros(&stat_shape)
    };
    let scale_g = emit.reshape(&a, &[groups]);
    let bias_g = emit.reshape(&b, &[groups]);
    let zeros = emit.tensor("zeros", &ArrayD::zeros(vec![groups]));
    let ones = emit.tensor("ones", &ArrayD::ones(vec![groups]));
    let affine = |emit: &mut Emitter, input: &str| {
        emit.op(
            "BatchNormalization",
            &[input, &scale_g, &bias_g, &zeros, &ones],
            vec![AttributeProto::float("epsilon", 0.0)],
        )
    };
    let dx = match spec.statistics {
        Statistics::Batch => affine(emit, &centred),
        Statistics::PerImage => {
            let channels = emit.reshape(&centred, &[1, groups, h, w]);
            let dx = affine(emit, &channels);
            emit.reshape(&dx, &[n, c, h, w])
        }
    };
    Ok(LayerTerm {
        loss,
        dx,
        mean,
        std,
    })
}
