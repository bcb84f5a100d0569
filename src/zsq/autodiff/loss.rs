//! The BN-statistics loss of one layer and its gradient in closed form.
//!
//! For a BN input X (N×C×H×W) with statistics over groups of M elements (per image
//! and channel: M = H·W; per channel over the batch: M = N·H·W):
//!
//! ```text
//! m = mean(X),  d = X − m,  s = sqrt(mean(d²) + STD_EPSILON)
//! L_l = c · Σ_groups [ w_mean·(m − μ)² + w_std·(s − σ) ² ],   σ = sqrt(var + eps)
//! dL_l/dX = d·a + b,   a = 2·c·w_std·(s − σ)/(M·s),   b = 2·c·w_mean·(m − μ)/M
//! ```
//!
//! with c = 1/(layers · groups): the loss is a mean over layers, channels and (per
//! image) images, so its size does not depend on the model's width, depth or the
//! batch. Emitting dX directly (two elementwise ops per layer) instead of
//! differentiating the ReduceMean/Sub/Sqrt chain op by op keeps the graph small.

use ndarray::ArrayD;

use super::emit::Emitter;
use super::{LossSpec, Statistics};
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
    let (axes, group, groups): (&[i64], usize, usize) = match spec.statistics {
        Statistics::PerImage => (&[2, 3], h * w, n * c),
        Statistics::Batch => (&[0, 2, 3], n * h * w, c),
    };
    let scale = 1.0 / (layers * groups) as f64;
    let (w_mean, w_std) = spec.terms.weights();
    let per_channel = |values: Vec<f32>| {
        ArrayD::from_shape_vec(vec![1, c, 1, 1], values)
            .map_err(|e| ZsqError::Model(format!("BatchNormalization layer '{}': {e}", layer.name)))
    };
    let mu = emit.tensor("bn_mean", &per_channel(layer.mean.clone())?);
    let sigma = emit.tensor("bn_std", &per_channel(layer.std())?);

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

    let slope = 2.0 * scale / group as f64;
    let dx = if w_std > 0.0 {
        let ratio = emit.op("Div", &[&std_error, &std], vec![]);
        let a = emit.scale(&ratio, (slope * w_std as f64) as f32);
        let spread = emit.mul(&centred, &a);
        if w_mean > 0.0 {
            let b = emit.scale(&mean_error, (slope * w_mean as f64) as f32);
            emit.add(&spread, &b)
        } else {
            spread
        }
    } else {
        let b = emit.scale(&mean_error, (slope * w_mean as f64) as f32);
        let dims = emit.ints(&[n as i64, c as i64, h as i64, w as i64]);
        emit.op("Expand", &[&b, &dims], vec![])
    };
    Ok(LayerTerm {
        loss,
        dx,
        mean,
        std,
    })
}
