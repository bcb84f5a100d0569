//! Weights, biases and constants as integers: int8 per output channel (or values the
//! caller chose, e.g. 4-bit), int32 bias on the scale `s_in·s_w`, and constant inputs
//! of quantized ops per tensor in the activation type.

use ndarray::{ArrayD, Axis};

use super::plan::LayerInfo;
use crate::onnx::{DataType, NodeProto, TensorProto};
use crate::zsq::ZsqError;
use crate::zsq::qparams::{Precision, QParams, Range};

/// A layer's integer weights chosen by the caller instead of the int8 default:
/// values (shaped like the weight) on a per-channel scale along the layer's weight
/// axis, all within `range`.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerWeights {
    pub values: ArrayD<i8>,
    pub scales: Vec<f32>,
    /// The integer grid the values lie on, e.g. `(-8, 7)` for 4-bit weights stored in
    /// int8 (ONNX Runtime's CPU kernels take int8, so narrower weights are int8
    /// values restricted to the narrower grid).
    pub range: (i8, i8),
}

/// A layer's weight and bias as integers.
pub(super) struct EncodedLayer {
    pub weight: ArrayD<i8>,
    /// One scale per output channel.
    pub scales: Vec<f32>,
    /// Int32 bias on the scale `s_in·s_w[c]` (u8s8, per-channel bias only).
    pub bias: Option<Vec<i32>>,
    /// Channels whose weight scale was raised so that the int32 bias fits.
    pub clamped_channels: usize,
}

/// Encodes the float weight `w` and `bias` of `layer` (`node` in the graph) whose input
/// has scale `s_in`: the values `weights` chooses, else int8 symmetric per channel.
pub(super) fn encode_layer(
    node: &NodeProto,
    layer: &LayerInfo,
    w: &ArrayD<f32>,
    bias: Option<&ArrayD<f32>>,
    s_in: f32,
    precision: Precision,
    weights: &mut dyn FnMut(&LayerInfo, &ArrayD<f32>) -> Option<LayerWeights>,
) -> Result<EncodedLayer, ZsqError> {
    let channels = w.shape()[layer.weight_axis];
    // Only a per-channel bias (Conv's, Gemm's 1-D) becomes int32.
    let gemm_scaled = node.op_type() == "Gemm"
        && (node.attr_float("alpha").is_some_and(|a| a != 1.0)
            || node.attr_float("beta").is_some_and(|b| b != 1.0));
    let int_bias = bias.filter(|b| {
        precision.quantizes_bias() && b.ndim() == 1 && b.len() == channels && !gemm_scaled
    });
    let (mut weight, mut scales, grid) = match weights(layer, w) {
        Some(chosen) => {
            if chosen.values.shape() != w.shape() || chosen.scales.len() != channels {
                return Err(ZsqError::Model(format!(
                    "layer '{}': chosen weights have shape {:?} and {} scales; the weight is {:?}",
                    node.name(),
                    chosen.values.shape(),
                    chosen.scales.len(),
                    w.shape()
                )));
            }
            (chosen.values, chosen.scales, chosen.range)
        }
        None => {
            let (q, s) = quantize_weight(w, layer.weight_axis);
            (q, s, (-127, 127))
        }
    };
    let mut clamped_channels = 0;
    let bias = match int_bias {
        Some(b) => {
            let (q, clamped) = quantize_bias(b, s_in, &mut scales);
            if !clamped.is_empty() {
                clamped_channels = clamped.len();
                weight = requantize_channels(w, layer.weight_axis, &scales, &clamped, grid, weight);
            }
            Some(q)
        }
        None => None,
    };
    Ok(EncodedLayer {
        weight,
        scales,
        bias,
        clamped_channels,
    })
}
/// Int8 weights, symmetric per channel along `axis`: `s_c = max|w_c| / 127`,
/// `q = round(w / s_c)` (ties to even, as QuantizeLinear rounds) in −127..=127.
pub fn quantize_weight(w: &ArrayD<f32>, axis: usize) -> (ArrayD<i8>, Vec<f32>) {
    let scales: Vec<f32> = w
        .axis_iter(Axis(axis))
        .map(|c| {
            let amax = c.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            if amax > 0.0 && amax.is_finite() {
                amax / 127.0
            } else {
                1.0
            }
        })
        .collect();
    let mut q = ArrayD::<i8>::zeros(w.raw_dim());
    for (c, (mut qc, wc)) in q
        .axis_iter_mut(Axis(axis))
        .zip(w.axis_iter(Axis(axis)))
        .enumerate()
    {
        let s = scales[c];
        qc.zip_mut_with(&wc, |q, &v| {
            *q = (v / s).round_ties_even().clamp(-127.0, 127.0) as i8
        });
    }
    (q, scales)
}
/// Int32 bias with scale `s_in·s_w[c]`, zero point 0. A channel whose bias would not
/// fit in int32 gets a larger weight scale (returned in the list, to requantize).
fn quantize_bias(b: &ArrayD<f32>, s_in: f32, w_scale: &mut [f32]) -> (Vec<i32>, Vec<usize>) {
    let limit = f64::from(i32::MAX);
    let mut clamped = Vec::new();
    let q = b
        .iter()
        .enumerate()
        .map(|(c, &v)| {
            let mut s = f64::from(s_in) * f64::from(w_scale[c]);
            if (f64::from(v) / s).abs() > limit {
                let needed = f64::from(v).abs() / limit / f64::from(s_in);
                w_scale[c] = (needed * 1.0001) as f32;
                s = f64::from(s_in) * f64::from(w_scale[c]);
                clamped.push(c);
            }
            // The scale the model will carry is f32: round with that one.
            let s32 = (s as f32) as f64;
            (f64::from(v) / s32).round_ties_even().clamp(-limit, limit) as i32
        })
        .collect();
    (q, clamped)
}
/// Rounds `channels` of `w` again at their (raised) scales, to the nearest value of
/// the integer grid `(lo, hi)`.
fn requantize_channels(
    w: &ArrayD<f32>,
    axis: usize,
    scales: &[f32],
    channels: &[usize],
    (lo, hi): (i8, i8),
    mut q: ArrayD<i8>,
) -> ArrayD<i8> {
    for &c in channels {
        let s = scales[c];
        let src = w.index_axis(Axis(axis), c);
        q.index_axis_mut(Axis(axis), c).zip_mut_with(&src, |q, &v| {
            *q = (v / s)
                .round_ties_even()
                .clamp(f32::from(lo), f32::from(hi)) as i8
        });
    }
    q
}

/// A constant input of a quantized op, per tensor in the activation type over the
/// range of its values and zero: the integer tensor (named `name`) and its parameters.
pub(super) fn quantize_constant(
    name: &str,
    c: &ArrayD<f32>,
    precision: Precision,
) -> (TensorProto, QParams) {
    let lo = c.iter().copied().fold(0.0f32, f32::min);
    let hi = c.iter().copied().fold(0.0f32, f32::max);
    let p = QParams::for_range(Range { min: lo, max: hi }, precision);
    let q = |v: f32| (v / p.scale).round_ties_even() + p.zero_point as f32;
    let tensor = match precision {
        Precision::U8S8 => TensorProto::from_array(name, &c.mapv(|v| q(v).clamp(0.0, 255.0) as u8)),
        Precision::S8S8 => {
            TensorProto::from_array(name, &c.mapv(|v| q(v).clamp(-128.0, 127.0) as i8))
        }
    };
    (tensor, p)
}

/// A zero-point tensor of type `dt`: a scalar, or (with `dims`) one value per channel.
pub(super) fn zero_point_tensor(
    name: &str,
    dt: DataType,
    values: &[i32],
    dims: Option<usize>,
) -> TensorProto {
    let dims: Vec<usize> = dims.map(|_| vec![values.len()]).unwrap_or_default();
    let shape = ndarray::IxDyn(&dims);
    match dt {
        DataType::Uint8 => TensorProto::from_array(
            name,
            &ArrayD::from_shape_vec(shape, values.iter().map(|&v| v as u8).collect())
                .expect("shape"),
        ),
        DataType::Int8 => TensorProto::from_array(
            name,
            &ArrayD::from_shape_vec(shape, values.iter().map(|&v| v as i8).collect())
                .expect("shape"),
        ),
        _ => TensorProto::from_array(
            name,
            &ArrayD::from_shape_vec(shape, values.to_vec()).expect("shape"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_symmetric_per_channel() {
        let w =
            ndarray::arr2(&[[0.5f32, -1.0, 0.25], [0.0, 0.0, 0.0], [3.0, 1.5, -3.0]]).into_dyn();
        let (q, s) = quantize_weight(&w, 0);
        assert_eq!(s[0], 1.0 / 127.0);
        assert_eq!(s[1], 1.0, "an all-zero channel gets a harmless scale");
        assert_eq!(q.row_view(0), [64, -127, 32]);
        assert_eq!(q.row_view(2), [127, 64, -127]);
        let (_, s) = quantize_weight(&w, 1);
        assert_eq!(s.len(), 3);
        assert_eq!(s[2], 3.0 / 127.0);
    }

    trait RowView {
        fn row_view(&self, r: usize) -> Vec<i8>;
    }
    impl RowView for ArrayD<i8> {
        fn row_view(&self, r: usize) -> Vec<i8> {
            self.index_axis(Axis(0), r).iter().copied().collect()
        }
    }

    #[test]
    fn a_bias_too_large_for_int32_raises_the_weight_scale() {
        let b = ndarray::arr1(&[1.0f32, 1e6]).into_dyn();
        let mut ws = vec![1e-3f32, 1e-6];
        let (q, clamped) = quantize_bias(&b, 1e-4, &mut ws);
        assert_eq!(clamped, [1]);
        assert_eq!(q[0], 10_000_000, "1 / (1e-4 · 1e-3)");
        assert!(q[1] > i32::MAX / 2, "{}", q[1]);
        let back = q[1] as f64 * 1e-4 * f64::from(ws[1]);
        assert!((back - 1e6).abs() / 1e6 < 1e-3, "{back}");
    }
}
