//! W4A8: 4-bit per-channel weights, 8-bit activations, with the weight rounding
//! reconstructed layer by layer on the calibration images (AdaRound, Nagel et al.
//! 2020, the reconstruction BRECQ and Genie run on distilled images).
//!
//! Why reconstruct: at 8 bits, rounding every weight to its nearest grid point costs
//! little; at 4 bits (15 levels per channel) the rounding errors of one output channel
//! add up coherently in its output and a detector loses a large part of its accuracy.
//! AdaRound picks, per weight, floor or ceiling so that the layer's *output* on the
//! calibration images matches the float layer's. The calibration images may be the
//! zero-shot distilled ones: no real data is needed for 4-bit weights either.
//!
//! How, in ONNX Runtime (the engine's one compute engine):
//!
//! - Each layer's objective is quadratic in its weights. For a Conv with weight W
//!   (Co × D, D = Ci·kh·kw), input patches x_q from the W4A8 model built so far
//!   (AdaRound's "asymmetric" reconstruction: the layers above are already 4-bit and
//!   the activations 8-bit, so the layer learns to correct what they got wrong) and
//!   the float model's output W·x_f as the target:
//!
//!   `E(W̃) = 1/M Σ ‖W̃x_q − Wx_f‖² = 1/M [tr(ΔHΔᵀ) + 2·tr(ΔRᵀ) + c₀]`,
//!   `Δ = W̃ − W`, `H = Σ x_q x_qᵀ`, `R = WH − Σ (Wx_f) x_qᵀ`,
//!
//!   M the number of output positions. H, R and c₀ are sufficient statistics of all
//!   the images: one pass collects them (a Conv with one-hot kernels is im2col, a Gemm
//!   then sums the outer products), and every optimisation step is one Co×D by D×D
//!   MatMul in ONNX Runtime whatever the number of images. The gradients are exact
//!   full-data gradients, so a few hundred Adam steps replace AdaRound's 20,000
//!   mini-batch steps.
//! - The rounding variables V, the rectified sigmoid h(V), the annealed regulariser
//!   `λ·Σ(1 − |2h − 1|^β)` and Adam are elementwise and run on the host (as the
//!   distillation's Adam does).
//! - Layers are reconstructed in waves: a wave holds the layers whose inputs depend
//!   on no layer not yet done, so one run of the W4A8 model per image feeds a whole
//!   wave. That model keeps its 4-bit weights as graph inputs (float values s·q), so
//!   one ONNX Runtime session serves every wave.
//!
//! Scales: symmetric per output channel, `s = α·max|w|/7` with the clipping ratio α
//! chosen per channel to minimise the weight's squared rounding error (the data-free
//! part, identical for round-to-nearest and AdaRound, so that a comparison of the two
//! isolates the rounding). Weights lie in −8..=7 and are stored as int8 values behind
//! the usual DequantizeLinear: ONNX Runtime's CPU EP has no 4-bit convolution, so the
//! model runs on its int8 kernels (the speed of W8A8) and its accuracy is exactly that
//! of 4-bit weights. As in BRECQ and Genie, the first layer (it reads the image) and
//! the last layers (the head's outputs) keep 8-bit weights by default.

use std::collections::HashMap;
use std::time::Instant;

use ndarray::{Array2, ArrayD, ArrayView4, Axis, IxDyn};
use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;

use super::ZsqError;
use super::adam::Adam;
use super::calibrate::{CalibrationOptions, Observer, calibrate};
use super::pipeline::image_input;
use super::qparams::{Precision, Range};
use super::quantize::{
    LayerInfo, LayerWeights, QdqPlan, fold_batch_norms, insert_qdq_with_weights, plan_qdq,
};
use crate::onnx::{
    AttributeProto, DataType, GraphProto, Model, ModelProto, NodeBuilder, NodeProto,
    OperatorSetIdProto, ValueInfoProto,
};
use crate::runtime::{ProviderOptions, load_session_with_config};

/// The signed 4-bit grid.
pub const INT4: (i8, i8) = (-8, 7);

/// How 4-bit weights are rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// Each weight to its nearest grid point (the baseline).
    Nearest,
    /// Floor or ceiling learned per weight on the calibration images (AdaRound).
    AdaRound,
}

impl std::fmt::Display for Rounding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rounding::Nearest => "nearest",
            Rounding::AdaRound => "adaround",
        })
    }
}

/// How to make a W4A8 model.
#[derive(Debug, Clone)]
pub struct W4a8Options {
    pub rounding: Rounding,
    /// Adam steps per layer.
    pub iterations: usize,
    /// Adam's step size on the rounding variables.
    pub learning_rate: f32,
    /// Weight of the rounding regulariser (BRECQ's 0.01; the reconstruction error is
    /// summed over output channels and averaged over positions, as in BRECQ).
    pub lambda: f32,
    /// Fraction of the steps without the regulariser (BRECQ: 0.2).
    pub warmup: f32,
    /// The regulariser's exponent β, annealed linearly from the first value to the
    /// second after the warm-up (BRECQ: 20 → 2).
    pub beta: (f32, f32),
    /// Activation ranges (8-bit, u8s8) from the same images.
    pub observer: Observer,
    /// Keep the first layer and the head's last layers at 8 bits.
    pub keep_ends_8bit: bool,
    pub provider: ProviderOptions,
}

impl Default for W4a8Options {
    fn default() -> Self {
        W4a8Options {
            rounding: Rounding::AdaRound,
            iterations: 200,
            learning_rate: 0.03,
            lambda: 0.01,
            warmup: 0.2,
            beta: (20.0, 2.0),
            observer: Observer::MinMax,
            keep_ends_8bit: true,
            provider: ProviderOptions::default(),
        }
    }
}

/// What happened to one quantized layer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerOutcome {
    pub name: String,
    /// 4 or 8.
    pub bits: u32,
    /// Whether its rounding was reconstructed (4-bit Conv layers without groups).
    pub reconstructed: bool,
    /// Output error relative to the float output's energy, `E / (Σ‖Wx_f‖²/M)`, with
    /// round-to-nearest and with the chosen rounding (reconstructed layers only).
    pub error_nearest: Option<f64>,
    pub error_chosen: Option<f64>,
    /// Share of the weights rounded the other way than to the nearest point.
    pub flipped: Option<f64>,
}

/// A W4A8 model.
#[derive(Debug, Clone)]
pub struct W4a8 {
    pub model: Model,
    pub bytes: Vec<u8>,
    pub layers: Vec<LayerOutcome>,
    /// Whole call, and the reconstruction part of it.
    pub seconds: f64,
    pub reconstruction_seconds: f64,
}

/// Progress: layers reconstructed of the total.
pub type W4a8Progress<'a> = &'a mut dyn FnMut(usize, usize);

/// Quantizes `model` to W4A8 with activation ranges and (for AdaRound) the weight
/// rounding learned on `images` (N×C×H×W in the model's input space: distilled or
/// real).
pub fn quantize_w4a8(
    model: &Model,
    images: ArrayView4<f32>,
    options: &W4a8Options,
    progress: W4a8Progress,
) -> Result<W4a8, ZsqError> {
    let start = Instant::now();
    if images.shape()[0] == 0 {
        return Err(ZsqError::Images("W4A8 needs calibration images".into()));
    }
    let mut folded = model.clone();
    folded.inline_external_data()?;
    let (input_name, ..) = image_input(&folded)?;
    fold_batch_norms(&mut folded)?;
    let plan = plan_qdq(folded.graph())?;
    let calibration = calibrate(
        &folded,
        &plan.activations,
        images,
        &CalibrationOptions {
            observer: options.observer,
            symmetric: false,
            provider: options.provider.clone(),
            cancel: None,
        },
        &mut |_, _| {},
    )?;
    let ranges: HashMap<String, Range> = calibration
        .tensors
        .iter()
        .map(|(t, r)| (t.clone(), r.range))
        .collect();

    let mut layers = four_bit_layers(&folded, &plan, &input_name, options.keep_ends_8bit)?;
    let mut outcomes: HashMap<usize, LayerOutcome> = HashMap::new();
    let mut reconstruction_seconds = 0.0;
    if options.rounding == Rounding::AdaRound {
        let t = Instant::now();
        let mut r = Reconstruction::new(&folded, &plan, &ranges, &layers, options)?;
        outcomes = r.run(&mut layers, images, &input_name, progress)?;
        reconstruction_seconds = t.elapsed().as_secs_f64();
    }

    let mut quantized = folded.clone();
    let chosen: HashMap<usize, LayerWeights> =
        layers.iter().map(|l| (l.node, l.weights())).collect();
    insert_qdq_with_weights(
        &mut quantized,
        &plan,
        &ranges,
        Precision::U8S8,
        &mut |layer: &LayerInfo, _| chosen.get(&layer.node).cloned(),
    )?;
    let stamp = serde_json::json!({
        "precision": "w4a8",
        "rounding": options.rounding.to_string(),
        "observer": options.observer.to_string(),
        "calibration_images": images.shape()[0],
        "thermalzsq": env!("CARGO_PKG_VERSION"),
    });
    quantized.set_metadata("thermalzsq.quantized", &stamp.to_string());
    let bytes = quantized.to_bytes();

    let four: HashMap<usize, &FourBitLayer> = layers.iter().map(|l| (l.node, l)).collect();
    let layers = plan
        .layers
        .iter()
        .map(|info| {
            outcomes.remove(&info.node).unwrap_or_else(|| LayerOutcome {
                name: layer_name(&folded, info.node),
                bits: if four.contains_key(&info.node) { 4 } else { 8 },
                reconstructed: false,
                error_nearest: None,
                error_chosen: None,
                flipped: None,
            })
        })
        .collect();
    Ok(W4a8 {
        model: quantized,
        bytes,
        layers,
        seconds: start.elapsed().as_secs_f64(),
        reconstruction_seconds,
    })
}

fn layer_name(model: &Model, node: usize) -> String {
    let n = &model.graph().node[node];
    if n.name().is_empty() {
        n.output[0].clone()
    } else {
        n.name().to_string()
    }
}

/// A layer with 4-bit weights: its float weight as Co × D rows along the weight axis,
/// per-channel scales, and the current integer values.
#[derive(Debug, Clone)]
struct FourBitLayer {
    node: usize,
    /// The weight's shape, its output-channel axis.
    shape: Vec<usize>,
    axis: usize,
    /// Float weight, channel-major (Co × D).
    w: Array2<f32>,
    scales: Vec<f32>,
    /// Integer values, channel-major like `w`.
    q: Array2<i8>,
    /// A plain Conv (no groups): its rounding can be reconstructed.
    conv: bool,
}

impl FourBitLayer {
    /// The values and scales in the weight's own layout.
    fn weights(&self) -> LayerWeights {
        let mut permuted: Vec<usize> = (0..self.shape.len()).collect();
        permuted.remove(self.axis);
        permuted.insert(0, self.axis);
        let moved: Vec<usize> = permuted.iter().map(|&a| self.shape[a]).collect();
        let values = ArrayD::from_shape_vec(IxDyn(&moved), self.q.iter().copied().collect())
            .expect("Co × D holds the weight");
        // Back from channel-major to the weight's layout.
        let mut inverse = vec![0; permuted.len()];
        for (i, &a) in permuted.iter().enumerate() {
            inverse[a] = i;
        }
        LayerWeights {
            values: values
                .permuted_axes(IxDyn(&inverse))
                .as_standard_layout()
                .into_owned(),
            scales: self.scales.clone(),
            range: INT4,
        }
    }

    /// The dequantized weight in its own layout (what the W4A8 model computes with).
    fn dequantized(&self) -> ArrayD<f32> {
        let lw = self.weights();
        let mut out = lw.values.mapv(f32::from);
        for (c, mut plane) in out.axis_iter_mut(Axis(self.axis)).enumerate() {
            plane.mapv_inplace(|v| v * self.scales[c]);
        }
        out
    }
}

/// The layers that get 4-bit weights, rounded to nearest at MSE-chosen scales.
fn four_bit_layers(
    folded: &Model,
    plan: &QdqPlan,
    input_name: &str,
    keep_ends_8bit: bool,
) -> Result<Vec<FourBitLayer>, ZsqError> {
    let graph = folded.graph();
    let view = graph.view();
    let mut out = Vec::new();
    for info in &plan.layers {
        let node = &graph.node[info.node];
        let first = node.input[0] == input_name;
        if keep_ends_8bit && (first || info.float_output) {
            continue;
        }
        let tensor = view.tensor(&node.input[1]).ok_or_else(|| {
            ZsqError::Model(format!("layer '{}': weight is not constant", node.name()))
        })?;
        let w = tensor.to_array::<f32>()?;
        let shape = w.shape().to_vec();
        let axis = info.weight_axis;
        let channels = shape[axis];
        let rows = w.len() / channels.max(1);
        let moved = w.view().permuted_axes(channel_major(shape.len(), axis));
        let w2 = Array2::from_shape_vec(
            (channels, rows),
            moved.as_standard_layout().iter().copied().collect(),
        )
        .expect("Co × D");
        let scales: Vec<f32> = w2
            .rows()
            .into_iter()
            .map(|r| mse_scale(r.as_slice().expect("row"), INT4))
            .collect();
        let mut q = Array2::<i8>::zeros((channels, rows));
        for ((mut qr, wr), &s) in q.rows_mut().into_iter().zip(w2.rows()).zip(&scales) {
            qr.zip_mut_with(&wr, |q, &v| *q = round_to_grid(v / s, INT4));
        }
        let conv = node.op_type() == "Conv"
            && axis == 0
            && shape.len() == 4
            && node.attr_int("group").unwrap_or(1) == 1;
        out.push(FourBitLayer {
            node: info.node,
            shape,
            axis,
            w: w2,
            scales,
            q,
            conv,
        });
    }
    Ok(out)
}

/// Axis order that puts `axis` first.
fn channel_major(rank: usize, axis: usize) -> IxDyn {
    let mut order: Vec<usize> = (0..rank).collect();
    order.remove(axis);
    order.insert(0, axis);
    IxDyn(&order)
}

fn round_to_grid(x: f32, (lo, hi): (i8, i8)) -> i8 {
    x.round_ties_even().clamp(f32::from(lo), f32::from(hi)) as i8
}

/// The symmetric scale for one channel on the grid `(lo, hi)`: `α·max|w|/hi` with the
/// clipping ratio α in 0.30..=1.00 (steps of 0.01) that minimises the squared
/// rounding error of the channel's weights. An all-zero channel gets scale 1.
pub fn mse_scale(w: &[f32], grid: (i8, i8)) -> f32 {
    let amax = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if !(amax > 0.0 && amax.is_finite()) {
        return 1.0;
    }
    let top = f32::from(grid.1);
    let mut best = (f64::INFINITY, amax / top);
    for i in 30..=100 {
        let s = amax * i as f32 / 100.0 / top;
        let err: f64 = w
            .iter()
            .map(|&v| {
                let e = f64::from(v - s * f32::from(round_to_grid(v / s, grid)));
                e * e
            })
            .sum();
        if err < best.0 {
            best = (err, s);
        }
    }
    best.1
}

// ---------------------------------------------------------------------------------
// Reconstruction

/// A tensor's shape and values.
type ShapedValues = (Vec<usize>, Vec<f32>);

/// Sessions and float references shared by every layer's reconstruction.
struct Reconstruction {
    /// The W4A8 model with the 4-bit Conv weights as float graph inputs and those
    /// layers' (8-bit) inputs as outputs.
    fake: Session,
    /// Per reconstructed layer: the weight input of `fake`, its input tensor there,
    /// its input tensor in the float model.
    names: HashMap<usize, (String, String, String)>,
    /// The float model with the reconstructed layers' inputs as outputs.
    float: Session,
    /// im2col + Gram sessions per Conv attribute set.
    stats: HashMap<String, Session>,
    matmul: Session,
    options: W4a8Options,
    model: Model,
}

const NO_SPINNING: [(&str, &str); 1] = [("session.intra_op.allow_spinning", "0")];

impl Reconstruction {
    fn new(
        folded: &Model,
        plan: &QdqPlan,
        ranges: &HashMap<String, Range>,
        layers: &[FourBitLayer],
        options: &W4a8Options,
    ) -> Result<Self, ZsqError> {
        let targets: HashMap<usize, &FourBitLayer> = layers
            .iter()
            .filter(|l| l.conv)
            .map(|l| (l.node, l))
            .collect();
        let mut fake = folded.clone();
        insert_qdq_with_weights(&mut fake, plan, ranges, Precision::U8S8, &mut |info, _| {
            layers
                .iter()
                .find(|l| l.node == info.node)
                .map(FourBitLayer::weights)
        })?;
        let mut names = HashMap::new();
        let mut float = folded.clone();
        {
            let fg = folded.graph();
            let graph = fake.graph_mut();
            let mut doomed = Vec::new();
            let mut new_inputs = Vec::new();
            let mut new_outputs = Vec::new();
            for (&node, layer) in &targets {
                let conv = &fg.node[node];
                let i = graph
                    .node
                    .iter()
                    .position(|n| n.op_type() == "Conv" && n.output.first() == conv.output.first())
                    .ok_or_else(|| {
                        ZsqError::Model(format!(
                            "layer '{}' is missing from the QDQ model",
                            conv.name()
                        ))
                    })?;
                let (w_name, x_name) = (
                    graph.node[i].input[1].clone(),
                    graph.node[i].input[0].clone(),
                );
                let dq = graph
                    .node
                    .iter()
                    .position(|n| n.output.first() == Some(&w_name))
                    .ok_or_else(|| {
                        ZsqError::Model(format!(
                            "layer '{}': no weight DequantizeLinear",
                            conv.name()
                        ))
                    })?;
                doomed.push(dq);
                let dims: Vec<i64> = layer.shape.iter().map(|&d| d as i64).collect();
                new_inputs.push(ValueInfoProto::tensor(
                    &w_name,
                    DataType::Float,
                    Some(&dims),
                ));
                new_outputs.push(x_name.clone());
                names.insert(node, (w_name, x_name, conv.input[0].clone()));
            }
            graph.remove_nodes(&doomed);
            graph.input.extend(new_inputs);
            new_outputs.sort();
            new_outputs.dedup();
            for x in &new_outputs {
                graph.add_output(x, DataType::Float)?;
            }
            graph.remove_unused();
            let fgraph = float.graph_mut();
            for (_, _, x) in names.values() {
                fgraph.add_output(x, DataType::Float)?;
            }
        }
        let load = |m: &Model| -> Result<Session, ZsqError> {
            Ok(load_session_with_config(&m.to_bytes(), &options.provider, &NO_SPINNING)?.session)
        };
        let mut stats = HashMap::new();
        for &node in targets.keys() {
            let conv = &folded.graph().node[node];
            let key = conv_key(conv);
            if let std::collections::hash_map::Entry::Vacant(e) = stats.entry(key) {
                e.insert(load(&stats_graph(conv))?);
            }
        }
        Ok(Reconstruction {
            fake: load(&fake)?,
            names,
            float: load(&float)?,
            stats,
            matmul: load(&matmul_graph())?,
            options: options.clone(),
            model: folded.clone(),
        })
    }

    /// Reconstructs every plain-Conv 4-bit layer wave by wave; updates their values.
    fn run(
        &mut self,
        layers: &mut [FourBitLayer],
        images: ArrayView4<f32>,
        input_name: &str,
        progress: W4a8Progress,
    ) -> Result<HashMap<usize, LayerOutcome>, ZsqError> {
        let waves = self.waves(layers)?;
        let total: usize = waves.iter().map(Vec::len).sum();
        let n = images.shape()[0];
        let images = images.as_standard_layout();
        let image = |i: usize| {
            let one = images.index_axis(Axis(0), i);
            let s = one.shape();
            (
                [1, s[0], s[1], s[2]],
                one.to_slice().expect("standard layout").to_vec(),
            )
        };
        // The float model's inputs of every reconstructed layer, per image.
        let mut float_inputs: HashMap<String, Vec<ShapedValues>> = HashMap::new();
        for i in 0..n {
            let (shape, data) = image(i);
            let out = self.float.run(
                ort::inputs![input_name => TensorRef::from_array_view((shape, data.as_slice()))?],
            )?;
            for (_, _, x) in self.names.values() {
                if float_inputs.get(x).is_some_and(|v| v.len() > i) {
                    continue;
                }
                let (s, v) = out[x.as_str()].try_extract_tensor::<f32>()?;
                float_inputs
                    .entry(x.clone())
                    .or_default()
                    .push((s.iter().map(|&d| d as usize).collect(), v.to_vec()));
            }
        }
        let mut outcomes = HashMap::new();
        let mut done = 0;
        for wave in waves {
            // The 8-bit inputs of this wave's layers, from the W4A8 model as built so far.
            let mut stats: HashMap<usize, Gram> = HashMap::new();
            let weights: Vec<(String, ArrayD<f32>)> = layers
                .iter()
                .filter_map(|l| {
                    self.names
                        .get(&l.node)
                        .map(|(w, ..)| (w.clone(), l.dequantized()))
                })
                .collect();
            let onehots: HashMap<usize, Vec<f32>> =
                wave.iter().map(|&li| (li, one_hot(&layers[li]))).collect();
            for (i, _) in images.axis_iter(Axis(0)).enumerate() {
                let (shape, data) = image(i);
                let mut inputs = ort::inputs![input_name => TensorRef::from_array_view((shape, data.as_slice()))?];
                for (name, w) in &weights {
                    inputs.push((
                        name.clone().into(),
                        SessionInputValue::from(TensorRef::from_array_view(w.view())?),
                    ));
                }
                let out = self.fake.run(inputs)?;
                for &li in &wave {
                    let layer = &layers[li];
                    let (_, xq_name, xf_name) = &self.names[&layer.node];
                    let (xs, xq) = out[xq_name.as_str()].try_extract_tensor::<f32>()?;
                    let xs: Vec<usize> = xs.iter().map(|&d| d as usize).collect();
                    let (fs, xf) = &float_inputs[xf_name][i];
                    let conv = &self.model.graph().node[layer.node];
                    let session = self
                        .stats
                        .get_mut(&conv_key(conv))
                        .expect("a stats session per key");
                    let g = gram(session, layer, &onehots[&li], (&xs, xq), (fs, xf))?;
                    stats.entry(li).and_modify(|a| a.add(&g)).or_insert(g);
                }
            }
            for &li in &wave {
                let gram = stats.remove(&li).expect("statistics of every wave layer");
                let outcome = self.adaround(&mut layers[li], &gram)?;
                outcomes.insert(layers[li].node, outcome);
                done += 1;
                progress(done, total);
            }
        }
        Ok(outcomes)
    }

    /// Groups the reconstructed layers into waves: a layer's wave is one more than the
    /// latest wave of the 4-bit layers upstream of it.
    fn waves(&self, layers: &[FourBitLayer]) -> Result<Vec<Vec<usize>>, ZsqError> {
        let graph = self.model.graph();
        let view = graph.view();
        let order = view.topological_order()?;
        let position: HashMap<usize, usize> =
            order.iter().enumerate().map(|(p, &i)| (i, p)).collect();
        let mut targets: Vec<usize> = (0..layers.len()).filter(|&i| layers[i].conv).collect();
        targets.sort_by_key(|&i| position[&layers[i].node]);
        let mut level: HashMap<usize, usize> = HashMap::new();
        let mut waves: Vec<Vec<usize>> = Vec::new();
        for &li in &targets {
            let node = layers[li].node;
            let upstream = view.ancestors(&[graph.node[node].input[0].as_str()]);
            let l = targets
                .iter()
                .filter(|&&o| upstream[layers[o].node])
                .filter_map(|o| level.get(o))
                .max()
                .map_or(0, |m| m + 1);
            level.insert(li, l);
            if waves.len() <= l {
                waves.resize(l + 1, Vec::new());
            }
            waves[l].push(li);
        }
        Ok(waves)
    }

    /// Learns the rounding of one layer from its statistics; writes the values.
    fn adaround(&mut self, layer: &mut FourBitLayer, g: &Gram) -> Result<LayerOutcome, ZsqError> {
        let o = self.options.clone();
        let (co, d) = layer.w.dim();
        let (zeta, gamma) = (1.1f32, -0.1f32);
        let (lo, hi) = (f32::from(INT4.0), f32::from(INT4.1));
        let w = layer.w.as_slice().expect("standard layout");
        let scale = |j: usize| layer.scales[j / d];
        let floor: Vec<f32> = w
            .iter()
            .enumerate()
            .map(|(j, &v)| (v / scale(j)).floor())
            .collect();
        let mut v: Vec<f32> = w
            .iter()
            .zip(&floor)
            .enumerate()
            .map(|(j, (&x, &f))| {
                let frac = (x / scale(j) - f).clamp(0.0, 1.0);
                let p = ((frac - gamma) / (zeta - gamma)).clamp(1e-4, 1.0 - 1e-4);
                (p / (1.0 - p)).ln()
            })
            .collect();
        let wh = self.matmul(w, co, &g.h, d)?;
        let r: Vec<f32> = wh.iter().zip(&g.b).map(|(a, b)| a - b).collect();
        let c0 = dot(w, &wh) - 2.0 * dot(w, &g.b) + g.tt;
        let m = g.positions as f64;
        let energy = g.tt / m;
        let error = |delta: &[f32], gd: &[f32]| (dot(delta, gd) + 2.0 * dot(delta, &r) + c0) / m;

        let nearest: Vec<f32> = w
            .iter()
            .enumerate()
            .map(|(j, &x)| scale(j) * f32::from(round_to_grid(x / scale(j), INT4)) - x)
            .collect();
        let gn = self.matmul(&nearest, co, &g.h, d)?;
        let error_nearest = error(&nearest, &gn) / energy;

        let mut adam = Adam::new(v.len());
        let mut delta = vec![0.0f32; v.len()];
        // dh/dV where the rounding is still soft and inside the grid, else 0; and 2h − 1.
        let mut dh = vec![0.0f32; v.len()];
        let mut u = vec![0.0f32; v.len()];
        let mut grad = vec![0.0f32; v.len()];
        let warm = (o.warmup * o.iterations as f32) as usize;
        let k = (2.0 / m) as f32;
        for t in 0..o.iterations {
            for j in 0..v.len() {
                let p = sigmoid(v[j]);
                let raw = p * (zeta - gamma) + gamma;
                let h = raw.clamp(0.0, 1.0);
                let q = floor[j] + h;
                delta[j] = scale(j) * q.clamp(lo, hi) - w[j];
                let soft = raw > 0.0 && raw < 1.0;
                dh[j] = if soft {
                    (zeta - gamma) * p * (1.0 - p)
                } else {
                    0.0
                };
                u[j] = 2.0 * h - 1.0;
                // The reconstruction gradient stops where the grid clips.
                grad[j] = if (lo..=hi).contains(&q) {
                    scale(j) * dh[j]
                } else {
                    0.0
                };
            }
            let gd = self.matmul(&delta, co, &g.h, d)?;
            // The regulariser after the warm-up, its exponent annealed from beta.0 to beta.1.
            let beta = (t >= warm).then(|| {
                let rel = (t - warm) as f32 / (o.iterations - warm).max(1) as f32;
                o.beta.1 + (o.beta.0 - o.beta.1) * (1.0 - rel).max(0.0)
            });
            for j in 0..v.len() {
                let mut gj = k * (gd[j] + r[j]) * grad[j];
                if let Some(beta) = beta {
                    // d/dh of λ(1 − |2h − 1|^β) = −2λβ|2h − 1|^(β−1)·sign(2h − 1)
                    let a = u[j].abs();
                    gj -= 2.0 * o.lambda * beta * a.powf(beta - 1.0) * u[j].signum() * dh[j];
                }
                grad[j] = gj;
            }
            adam.step(&mut v, &grad, o.learning_rate);
        }
        // Hard rounding: up where h(V) ≥ ½, i.e. V ≥ 0.
        let mut flipped = 0usize;
        let mut chosen = vec![0.0f32; v.len()];
        for (j, q) in layer.q.iter_mut().enumerate() {
            let up = v[j] >= 0.0;
            let value = (floor[j] + f32::from(up)).clamp(lo, hi);
            let nearest = round_to_grid(w[j] / scale(j), INT4);
            flipped += usize::from(value as i8 != nearest);
            *q = value as i8;
            chosen[j] = scale(j) * value - w[j];
        }
        let gc = self.matmul(&chosen, co, &g.h, d)?;
        Ok(LayerOutcome {
            name: layer_name(&self.model, layer.node),
            bits: 4,
            reconstructed: true,
            error_nearest: Some(error_nearest),
            error_chosen: Some(error(&chosen, &gc) / energy),
            flipped: Some(flipped as f64 / v.len() as f64),
        })
    }

    /// `a` (rows × d) times `h` (d × d), in ONNX Runtime.
    fn matmul(
        &mut self,
        a: &[f32],
        rows: usize,
        h: &[f32],
        d: usize,
    ) -> Result<Vec<f32>, ZsqError> {
        let out = self.matmul.run(ort::inputs![
            "a" => TensorRef::from_array_view(([rows, d], a))?,
            "b" => TensorRef::from_array_view(([d, d], h))?,
        ])?;
        let (_, c) = out["c"].try_extract_tensor::<f32>()?;
        Ok(c.to_vec())
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum()
}

/// A layer's sufficient statistics over the images: `H = Σ x_q x_qᵀ` (D × D),
/// `B = Σ (Wx_f) x_qᵀ` (Co × D), `tt = Σ ‖Wx_f‖²`, and the output positions M.
struct Gram {
    h: Vec<f32>,
    b: Vec<f32>,
    tt: f64,
    positions: usize,
}

impl Gram {
    fn add(&mut self, other: &Gram) {
        self.h.iter_mut().zip(&other.h).for_each(|(a, b)| *a += b);
        self.b.iter_mut().zip(&other.b).for_each(|(a, b)| *a += b);
        self.tt += other.tt;
        self.positions += other.positions;
    }
}

/// One image's statistics of `layer` from its 8-bit input `xq` and float input `xf`.
fn gram(
    session: &mut Session,
    layer: &FourBitLayer,
    onehot: &[f32],
    (qs, xq): (&[usize], &[f32]),
    (fs, xf): (&[usize], &[f32]),
) -> Result<Gram, ZsqError> {
    let [co, ci, kh, kw] = [
        layer.shape[0],
        layer.shape[1],
        layer.shape[2],
        layer.shape[3],
    ];
    let d = ci * kh * kw;
    let w = layer.w.as_slice().expect("standard layout");
    let out = session.run(ort::inputs![
        "xq" => TensorRef::from_array_view((qs.to_vec(), xq))?,
        "xf" => TensorRef::from_array_view((fs.to_vec(), xf))?,
        "w" => TensorRef::from_array_view(([co, ci, kh, kw], w))?,
        "e" => TensorRef::from_array_view(([d, ci, kh, kw], onehot))?,
    ])?;
    let (_, h) = out["h"].try_extract_tensor::<f32>()?;
    let (_, b) = out["b"].try_extract_tensor::<f32>()?;
    let (ps, _) = out["p"].try_extract_tensor::<f32>()?;
    let (_, tt) = out["tt"].try_extract_tensor::<f32>()?;
    Ok(Gram {
        h: h.to_vec(),
        b: b.to_vec(),
        tt: f64::from(tt[0]),
        positions: ps.iter().skip(2).product::<i64>() as usize * ps[0] as usize,
    })
}

/// Kernels that copy each of a Conv's D = Ci·kh·kw patch elements to its own output
/// channel (D × Ci × kh × kw, identity when flattened): convolving with them is im2col.
fn one_hot(layer: &FourBitLayer) -> Vec<f32> {
    let d = layer.w.ncols();
    let mut e = vec![0.0f32; d * d];
    for k in 0..d {
        e[k * d + k] = 1.0;
    }
    e
}

/// The Conv attributes that decide its patches (everything but `group`, which is 1).
fn conv_attributes(conv: &NodeProto) -> Vec<AttributeProto> {
    conv.attribute
        .iter()
        .filter(|a| a.name() != "group")
        .cloned()
        .collect()
}

fn conv_key(conv: &NodeProto) -> String {
    format!("{:?}", conv_attributes(conv))
}

/// im2col and Gram matrices of one Conv's inputs: inputs `xq`, `xf` (1×Ci×H×W), `w`
/// (the layer's float weight) and `e` (one-hot kernels, D×Ci×kh×kw); outputs `h`
/// (D×D), `b` (Co×D), `tt` (scalar) and `p` (the patches, for their count).
fn stats_graph(conv: &NodeProto) -> Model {
    let attrs = conv_attributes(conv);
    let node = |op: &str, inputs: &[&str], output: &str| {
        NodeBuilder::new(op)
            .inputs(inputs.iter().copied())
            .output(output)
    };
    let with_attrs = |b: NodeBuilder| attrs.iter().fold(b, |b, a| b.attr(a.clone()));
    let nodes = vec![
        with_attrs(node("Conv", &["xq", "e"], "p")).build(),
        with_attrs(node("Conv", &["xf", "w"], "t")).build(),
        node("Flatten", &["p"], "p2").attr_int("axis", 2).build(),
        node("Flatten", &["t"], "t2").attr_int("axis", 2).build(),
        node("Gemm", &["p2", "p2"], "h")
            .attr_int("transB", 1)
            .build(),
        node("Gemm", &["t2", "p2"], "b")
            .attr_int("transB", 1)
            .build(),
        node("ReduceSumSquare", &["t2"], "tt")
            .attr_int("keepdims", 0)
            .build(),
    ];
    let any4 = [-1i64; 4];
    let graph = GraphProto {
        node: nodes,
        input: ["xq", "xf", "w", "e"]
            .iter()
            .map(|n| ValueInfoProto::tensor(n, DataType::Float, Some(&any4)))
            .collect(),
        output: ["h", "b", "tt", "p"]
            .iter()
            .map(|n| ValueInfoProto::tensor(n, DataType::Float, None))
            .collect(),
        name: Some("w4a8_stats".into()),
        ..GraphProto::default()
    };
    small_model(graph)
}

/// `c = a · b` for 2-D float inputs of any size.
fn matmul_graph() -> Model {
    let graph = GraphProto {
        node: vec![
            NodeBuilder::new("MatMul")
                .inputs(["a", "b"])
                .output("c")
                .build(),
        ],
        input: ["a", "b"]
            .iter()
            .map(|n| ValueInfoProto::tensor(n, DataType::Float, Some(&[-1, -1])))
            .collect(),
        output: vec![ValueInfoProto::tensor("c", DataType::Float, None)],
        name: Some("w4a8_matmul".into()),
        ..GraphProto::default()
    };
    small_model(graph)
}

fn small_model(graph: GraphProto) -> Model {
    Model::from_proto(ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
            ..OperatorSetIdProto::default()
        }],
        graph: Some(graph),
        ..ModelProto::default()
    })
}
