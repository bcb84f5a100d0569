//! The quantizer: BatchNormalization folded into the preceding Conv, then
//! QuantizeLinear/DequantizeLinear (QDQ) pairs placed so that ONNX Runtime fuses the
//! network body into integer kernels while the detection tail stays float.
//!
//! Placement rules (docs/quantize.md says why):
//!
//! - **Layers.** Conv, Gemm and MatMul with a constant weight are quantized: the
//!   activation input gets a QDQ pair, the weight becomes int8 (symmetric, per output
//!   channel) behind a DequantizeLinear, the bias int32 with scale `s_in·s_w` (u8s8).
//! - **Cheap ops between layers** (Sigmoid, Mul, Add, Concat, MaxPool, Resize, Split,
//!   Reshape, ... see [`op_class`]) get QDQ on their inputs and outputs, so ONNX Runtime
//!   turns `DQ → op → Q` into QLinearSigmoid, QLinearMul, QLinearConcat, ... and
//!   activations stay int8 from one layer to the next. Ops that only move data
//!   (MaxPool, Resize, Split, Reshape, Transpose, Slice, ...) share the quantization
//!   parameters of their input, as ONNX Runtime requires to drop their QDQ pairs.
//! - **Relu / Clip** right after a quantized op are folded into that op's output range
//!   (no QDQ between them), the pattern ONNX Runtime's Relu/Clip-Quantize fusion removes.
//! - **The tail stays float.** Every node with no learned layer downstream of it is in
//!   the tail; the learned layers with none downstream (the head's last convolutions)
//!   keep quantized inputs but a float output. A weighted op fed by a Softmax through
//!   layout ops only (YOLOv8's DFL: a fixed 1×1 Conv computing the expectation of a
//!   distribution) is decoding, not a learned layer, so it belongs to the tail.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use ndarray::{ArrayD, Axis};

use super::calibrate::Range;
use crate::onnx::{
    DataType, GraphProto, Model, NodeBuilder, NodeProto, OnnxError, TensorProto, UniqueNames,
};

/// Everything that can go wrong while quantizing a model, as one line a user can act on.
#[derive(Debug)]
pub enum QuantizeError {
    /// The model cannot be read or edited.
    Onnx(OnnxError),
    /// ONNX Runtime failed (loading or running a model).
    Runtime(String),
    /// The model is not one the quantizer can handle; the text says what and why.
    Model(String),
    /// Calibration images are missing, unreadable or not images.
    Images(String),
    /// A setting is invalid.
    Settings(String),
    /// The cache cannot be used (e.g. its directory is not writable).
    Cache(String),
    /// A file cannot be written.
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    /// Distillation failed (the text says why).
    Distill(String),
    /// The caller raised the cancel flag.
    Cancelled,
}

impl fmt::Display for QuantizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantizeError::Onnx(e) => write!(f, "{e}"),
            QuantizeError::Runtime(m) => write!(f, "ONNX Runtime: {m}"),
            QuantizeError::Model(m)
            | QuantizeError::Images(m)
            | QuantizeError::Settings(m)
            | QuantizeError::Distill(m)
            | QuantizeError::Cache(m) => f.write_str(m),
            QuantizeError::Cancelled => f.write_str("quantization cancelled"),
            QuantizeError::Io {
                path,
                action,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for QuantizeError {}

impl From<crate::zsq::ZsqError> for QuantizeError {
    fn from(e: crate::zsq::ZsqError) -> Self {
        use crate::zsq::ZsqError;
        match e {
            ZsqError::Cancelled => QuantizeError::Cancelled,
            // The model's fault: no BN, an op without a gradient rule, an odd graph.
            ZsqError::NoBatchNorm | ZsqError::NoGradientRule { .. } | ZsqError::Model(_) => {
                QuantizeError::Model(e.to_string())
            }
            other => QuantizeError::Distill(other.to_string()),
        }
    }
}

impl From<OnnxError> for QuantizeError {
    fn from(e: OnnxError) -> Self {
        QuantizeError::Onnx(e)
    }
}

impl From<crate::runtime::RuntimeError> for QuantizeError {
    fn from(e: crate::runtime::RuntimeError) -> Self {
        QuantizeError::Runtime(e.0)
    }
}

impl From<ort::Error> for QuantizeError {
    fn from(e: ort::Error) -> Self {
        QuantizeError::Runtime(e.to_string())
    }
}

/// Which integer types the quantized model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Precision {
    /// CPU default: asymmetric uint8 activations, int8 symmetric per-channel weights,
    /// int32 bias. ONNX Runtime's CPU kernels (MLAS, VNNI) are built for this pair.
    #[default]
    U8S8,
    /// TensorRT: symmetric int8 everywhere, every zero point 0, bias left float (TensorRT
    /// quantizes it itself and takes no int32 DequantizeLinear). ONNX Runtime's CPU EP
    /// does not fuse it on x86 (it runs slower than fp32 there).
    S8S8,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::U8S8 => "u8s8",
            Precision::S8S8 => "s8s8",
        }
    }

    /// Activations quantized symmetrically (zero point 0).
    pub fn symmetric(self) -> bool {
        self == Precision::S8S8
    }

    fn activation_type(self) -> DataType {
        match self {
            Precision::U8S8 => DataType::Uint8,
            Precision::S8S8 => DataType::Int8,
        }
    }

    fn quantizes_bias(self) -> bool {
        self == Precision::U8S8
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = QuantizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "u8s8" => Ok(Precision::U8S8),
            "s8s8" => Ok(Precision::S8S8),
            _ => Err(QuantizeError::Settings(format!(
                "unknown precision `{s}` (expected u8s8 for CPUs or s8s8 for TensorRT)"
            ))),
        }
    }
}

/// Scale and zero point of one quantized tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    pub scale: f32,
    pub zero_point: i32,
}

impl QParams {
    /// The parameters covering `range` for this precision's activations: uint8 over
    /// `[min(lo, 0), max(hi, 0)]` (zero exactly representable), or int8 over
    /// `[-a, a]` with `a = max(|lo|, |hi|)` and zero point 0.
    pub fn for_range(range: Range, precision: Precision) -> QParams {
        let (lo, hi) = (f64::from(range.min.min(0.0)), f64::from(range.max.max(0.0)));
        match precision {
            Precision::U8S8 => {
                let scale = (hi - lo) / 255.0;
                if !(scale > 0.0 && scale.is_finite()) {
                    return QParams {
                        scale: 1.0,
                        zero_point: 0,
                    };
                }
                let zero_point = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as i32;
                QParams {
                    scale: scale as f32,
                    zero_point,
                }
            }
            Precision::S8S8 => {
                let amax = lo.abs().max(hi.abs());
                let scale = amax / 127.0;
                QParams {
                    scale: if scale > 0.0 && scale.is_finite() {
                        scale as f32
                    } else {
                        1.0
                    },
                    zero_point: 0,
                }
            }
        }
    }

    /// The real values the quantized type can represent with these parameters.
    pub fn representable(&self, precision: Precision) -> (f32, f32) {
        let (qmin, qmax) = match precision {
            Precision::U8S8 => (0, 255),
            Precision::S8S8 => (-128, 127),
        };
        (
            (qmin - self.zero_point) as f32 * self.scale,
            (qmax - self.zero_point) as f32 * self.scale,
        )
    }
}

// ---------------------------------------------------------------------------------
// BatchNormalization folding

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
pub fn fold_batch_norms(model: &mut Model) -> Result<FoldSummary, QuantizeError> {
    struct Fold {
        conv: usize,
        bn: usize,
        weight: ArrayD<f32>,
        bias: ArrayD<f32>,
    }
    let mut summary = FoldSummary::default();
    let mut folds = Vec::new();
    {
        let graph = model.graph();
        let view = graph.view();
        let outputs: HashSet<&str> = graph.output.iter().map(|o| o.name()).collect();
        for (b, bn) in graph.node.iter().enumerate() {
            if bn.op_type() != "BatchNormalization" || !is_default_domain(bn) {
                continue;
            }
            let label = format!("BatchNormalization '{}'", bn.name());
            let why = |reason: &str| format!("{label}: {reason}");
            if bn.attr_int("training_mode") == Some(1)
                || bn.output.iter().skip(1).any(|o| !o.is_empty())
            {
                summary.kept.push(why("in training mode"));
                continue;
            }
            let x = bn.input[0].as_str();
            let Some(c) = view.producer(x) else {
                summary.kept.push(why("its input is a graph input"));
                continue;
            };
            let conv = &graph.node[c];
            if conv.op_type() != "Conv" || !is_default_domain(conv) {
                summary.kept.push(why(&format!(
                    "it follows a {} node, not a Conv",
                    conv.op_type()
                )));
                continue;
            }
            if view.consumers(x).len() != 1 || outputs.contains(x) {
                summary
                    .kept
                    .push(why("the Conv's output is also read elsewhere"));
                continue;
            }
            let constant = |slot: usize| -> Option<ArrayD<f64>> {
                let name = bn.input.get(slot).filter(|n| !n.is_empty())?;
                model.tensor_array::<f64>(&*view.tensor(name)?).ok()
            };
            let (Some(gamma), Some(beta), Some(mean), Some(var)) =
                (constant(1), constant(2), constant(3), constant(4))
            else {
                summary
                    .kept
                    .push(why("its parameters are not constant tensors"));
                continue;
            };
            let Some(w_tensor) = conv.input.get(1).and_then(|w| view.tensor(w)) else {
                summary.kept.push(why("the Conv's weight is not constant"));
                continue;
            };
            if w_tensor.data_type() != Some(DataType::Float) {
                summary.kept.push(why("the Conv's weight is not float32"));
                continue;
            }
            let w = model.tensor_array::<f64>(&w_tensor)?;
            let channels = w.shape().first().copied().unwrap_or(0);
            let bias = match conv.input.get(2).filter(|n| !n.is_empty()) {
                Some(name) => match view.tensor(name) {
                    Some(t) => model.tensor_array::<f64>(&t)?,
                    None => {
                        summary.kept.push(why("the Conv's bias is not constant"));
                        continue;
                    }
                },
                None => ArrayD::zeros(ndarray::IxDyn(&[channels])),
            };
            let per_channel = [&gamma, &beta, &mean, &var, &bias];
            if per_channel.iter().any(|a| a.len() != channels) {
                summary.kept.push(why(
                    "its parameters do not have one value per Conv output channel",
                ));
                continue;
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
            folds.push(Fold {
                conv: c,
                bn: b,
                weight,
                bias,
            });
        }
    }
    let mut names = UniqueNames::new(model.graph());
    let graph = model.graph_mut();
    let mut removed = vec![false; graph.node.len()];
    for fold in &folds {
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
    summary.folded = folds.len();
    Ok(summary)
}

fn is_default_domain(node: &NodeProto) -> bool {
    matches!(node.domain(), "" | "ai.onnx")
}

// ---------------------------------------------------------------------------------
// Placement

/// How the quantizer treats an operator type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpClass {
    /// Conv / Gemm / MatMul: a layer when its weight is constant.
    Layer,
    /// Gets QDQ on its data inputs and outputs; ONNX Runtime has an integer version.
    Quantized,
    /// Moves or selects data: QDQ on input and output with the same parameters.
    SameParams,
    /// Relu, Clip: folded into the range of the quantized op before them.
    Activation,
    /// Runs in float (QDQ only where its neighbours want it).
    Float,
}

/// The class of an operator type (default ONNX domain).
pub fn op_class(op_type: &str) -> OpClass {
    match op_type {
        "Conv" | "Gemm" | "MatMul" => OpClass::Layer,
        "Sigmoid" | "Mul" | "Add" | "Concat" | "AveragePool" | "GlobalAveragePool"
        | "LeakyRelu" | "Softmax" => OpClass::Quantized,
        "MaxPool" | "Resize" | "Split" | "Reshape" | "Flatten" | "Transpose" | "Squeeze"
        | "Unsqueeze" | "Slice" | "Gather" | "Expand" | "Tile" | "Identity" => OpClass::SameParams,
        "Relu" | "Clip" => OpClass::Activation,
        _ => OpClass::Float,
    }
}

/// Ops through which a Softmax's output is still "a distribution" (for the DFL rule).
fn is_layout_op(op_type: &str) -> bool {
    matches!(
        op_type,
        "Reshape"
            | "Transpose"
            | "Flatten"
            | "Squeeze"
            | "Unsqueeze"
            | "Identity"
            | "Slice"
            | "Split"
            | "Gather"
    )
}

/// Input slots of a node that carry data (the others are shapes, indices, scales...).
fn data_slots(node: &NodeProto) -> std::ops::Range<usize> {
    match node.op_type() {
        "Concat" => 0..node.input.len(),
        "Add" | "Mul" | "MatMul" => 0..2,
        _ => 0..1,
    }
}

/// A layer's weight: which input, and the axis of its output channels.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerInfo {
    pub node: usize,
    pub name: String,
    pub op_type: String,
    /// Its output stays float (the head's last layers).
    pub float_output: bool,
    pub weight_axis: usize,
}

/// Where the quantizer puts QDQ pairs, computed from the graph alone (before
/// calibration, which needs the list of tensors to observe).
#[derive(Debug, Clone, Default)]
pub struct QdqPlan {
    /// Activation tensors that get a Q→DQ pair, in graph order.
    pub activations: Vec<String>,
    /// For tensors that must share another's scale and zero point (outputs of MaxPool,
    /// Resize, Split, Reshape... and their inputs): the tensor whose parameters they use.
    pub shared_with: BTreeMap<String, String>,
    /// Quantized layers (Conv/Gemm/MatMul with constant weights) outside the tail.
    pub layers: Vec<LayerInfo>,
    /// Constant float inputs of quantized ops (node, slot) quantized like activations.
    pub constants: Vec<(usize, usize)>,
    /// Nodes of the float tail.
    pub tail: Vec<usize>,
}

impl QdqPlan {
    /// The tensor whose quantization parameters `tensor` uses (itself if it leads).
    pub fn leader<'a>(&'a self, tensor: &'a str) -> &'a str {
        self.shared_with
            .get(tensor)
            .map(String::as_str)
            .unwrap_or(tensor)
    }

    /// The last layers, whose outputs stay float.
    pub fn float_layers(&self) -> impl Iterator<Item = &LayerInfo> {
        self.layers.iter().filter(|l| l.float_output)
    }
}

/// Decides the QDQ placement of a (BN-folded) float32 graph; see the module doc for the
/// rules. Fails on a graph with no layer to quantize.
pub fn plan_qdq(graph: &GraphProto) -> Result<QdqPlan, QuantizeError> {
    let view = graph.view();
    let order = view.topological_order()?;
    let types = elem_types(graph, &order);
    let n = graph.node.len();
    let is_const = |name: &str| view.tensor(name).is_some();
    let is_float = |name: &str| types.get(name) == Some(&DataType::Float);

    // Weighted layers and where their weight's output channels are.
    let mut weight_axis: Vec<Option<usize>> = vec![None; n];
    for (i, node) in graph.node.iter().enumerate() {
        if !is_default_domain(node) || op_class(node.op_type()) != OpClass::Layer {
            continue;
        }
        let Some(w) = node.input.get(1).filter(|w| is_const(w)) else {
            continue;
        };
        let Some(t) = view.tensor(w) else { continue };
        if t.data_type() != Some(DataType::Float) || !is_float(&node.input[0]) {
            continue;
        }
        let rank = t.dims.len();
        weight_axis[i] = match node.op_type() {
            "Conv" if rank >= 3 => Some(0),
            "Gemm" if rank == 2 => Some(if node.attr_int("transB") == Some(1) {
                0
            } else {
                1
            }),
            "MatMul" if rank >= 2 => Some(rank - 1),
            _ => None,
        };
    }

    // Values derived from a Softmax through layout ops only: a layer reading one is
    // decoding (DFL's expectation), not learned.
    let mut distribution: HashSet<&str> = HashSet::new();
    for &i in &order {
        let node = &graph.node[i];
        let from_softmax = matches!(node.op_type(), "Softmax" | "LogSoftmax")
            || (is_layout_op(node.op_type())
                && node
                    .input
                    .first()
                    .is_some_and(|x| distribution.contains(x.as_str())));
        if from_softmax {
            distribution.extend(node.output.iter().map(String::as_str));
        }
    }
    let learned: Vec<bool> = (0..n)
        .map(|i| {
            weight_axis[i].is_some() && !distribution.contains(graph.node[i].input[0].as_str())
        })
        .collect();
    if !learned.iter().any(|&l| l) {
        return Err(QuantizeError::Model(
            "the model has no Conv, Gemm or MatMul layer with constant float32 weights to quantize"
                .into(),
        ));
    }

    // Learned layers downstream of each node (reverse topological order).
    let mut below = vec![false; n];
    for &i in order.iter().rev() {
        below[i] = graph.node[i].output.iter().any(|o| {
            view.consumers(o)
                .iter()
                .any(|u| learned[u.node] || below[u.node])
        });
    }
    let tail: Vec<bool> = (0..n).map(|i| !learned[i] && !below[i]).collect();

    // Values computed from the image (not constant subexpressions such as a Resize's
    // scales built with Concat): only those are activations.
    let mut dynamic: HashSet<&str> = view.data_inputs().map(|v| v.name()).collect();
    let mut reads_image = vec![false; n];
    for &i in &order {
        let node = &graph.node[i];
        if node.input.iter().any(|x| dynamic.contains(x.as_str())) {
            reads_image[i] = true;
            dynamic.extend(node.output.iter().map(String::as_str));
        }
    }

    let class = |i: usize| -> OpClass {
        let node = &graph.node[i];
        if tail[i] || !reads_image[i] || !is_default_domain(node) {
            return OpClass::Float;
        }
        match op_class(node.op_type()) {
            OpClass::Layer if weight_axis[i].is_some() => OpClass::Layer,
            // MatMul of two activations is quantized too; Conv/Gemm without constant
            // weights are not.
            OpClass::Layer if node.op_type() == "MatMul" => OpClass::Quantized,
            OpClass::Layer => OpClass::Float,
            OpClass::Activation
                if node.op_type() == "Clip"
                    && node
                        .input
                        .iter()
                        .skip(1)
                        .any(|m| !m.is_empty() && !is_const(m)) =>
            {
                OpClass::Float
            }
            other => other,
        }
    };
    let quantized = |i: usize| class(i) != OpClass::Float;

    // Which activations get a QDQ pair.
    let graph_outputs: HashSet<&str> = graph.output.iter().map(|o| o.name()).collect();
    let mut candidates: Vec<&str> = view.data_inputs().map(|v| v.name()).collect();
    for &i in &order {
        candidates.extend(graph.node[i].output.iter().map(String::as_str));
    }
    let mut seen = HashSet::new();
    let mut activations = Vec::new();
    for t in candidates {
        if t.is_empty() || !seen.insert(t) || !is_float(t) || !dynamic.contains(t) {
            continue;
        }
        let uses = view.consumers(t);
        if !uses.iter().any(|u| !tail[u.node]) {
            continue;
        }
        let producer = view.producer(t);
        let produced_quantized = producer.is_some_and(quantized);
        let read_quantized = uses.iter().any(|u| {
            quantized(u.node)
                && u.input
                    .is_some_and(|s| data_slots(&graph.node[u.node]).contains(&s))
        });
        if !(produced_quantized || read_quantized) {
            continue;
        }
        // Conv → Relu/Clip: the activation's output carries the range, ONNX Runtime
        // folds the activation into the Quantize after it.
        let folded_activation = producer
            .is_some_and(|p| matches!(class(p), OpClass::Layer | OpClass::Quantized))
            && uses.len() == 1
            && class(uses[0].node) == OpClass::Activation
            && !graph_outputs.contains(t);
        if folded_activation {
            continue;
        }
        activations.push(t.to_string());
    }

    // Data-moving ops share their input's parameters.
    let in_plan: HashSet<&str> = activations.iter().map(String::as_str).collect();
    let mut parent: HashMap<String, String> = HashMap::new();
    fn find(parent: &HashMap<String, String>, t: &str) -> String {
        let mut t = t.to_string();
        while let Some(p) = parent.get(&t) {
            t = p.clone();
        }
        t
    }
    for &i in &order {
        let node = &graph.node[i];
        if class(i) != OpClass::SameParams {
            continue;
        }
        let Some(x) = node.input.first().filter(|x| in_plan.contains(x.as_str())) else {
            continue;
        };
        let root = find(&parent, x);
        for y in node.output.iter().filter(|y| in_plan.contains(y.as_str())) {
            let other = find(&parent, y);
            if other != root {
                parent.insert(other, root.clone());
            }
        }
    }
    let shared_with = activations
        .iter()
        .filter_map(|t| {
            let root = find(&parent, t);
            (root != *t).then(|| (t.clone(), root))
        })
        .collect();

    let mut constants = Vec::new();
    for &i in &order {
        let node = &graph.node[i];
        if !matches!(class(i), OpClass::Quantized) || node.op_type() == "MatMul" {
            continue;
        }
        for s in data_slots(node) {
            if node
                .input
                .get(s)
                .is_some_and(|x| is_const(x) && is_float(x))
            {
                constants.push((i, s));
            }
        }
    }

    let layers = order
        .iter()
        .filter(|&&i| class(i) == OpClass::Layer)
        .map(|&i| LayerInfo {
            node: i,
            name: graph.node[i].name().to_string(),
            op_type: graph.node[i].op_type().to_string(),
            float_output: !below[i],
            weight_axis: weight_axis[i].unwrap_or(0),
        })
        .collect();
    Ok(QdqPlan {
        activations,
        shared_with,
        layers,
        constants,
        tail: (0..n).filter(|&i| tail[i]).collect(),
    })
}

/// The element type of every value, from declarations, initializers and a forward pass
/// of simple per-op rules (exporters rarely declare intermediate types).
fn elem_types(graph: &GraphProto, order: &[usize]) -> HashMap<String, DataType> {
    let view = graph.view();
    let mut types: HashMap<String, DataType> = HashMap::new();
    for t in &graph.initializer {
        if let Some(dt) = t.data_type() {
            types.insert(t.name().to_string(), dt);
        }
    }
    for v in graph
        .input
        .iter()
        .chain(&graph.value_info)
        .chain(&graph.output)
    {
        if let Some(dt) = v.r#type.as_ref().and_then(|t| t.elem_type()) {
            types.insert(v.name().to_string(), dt);
        }
    }
    for &i in order {
        let node = &graph.node[i];
        let input = |slot: usize| {
            node.input
                .get(slot)
                .and_then(|name| types.get(name.as_str()))
                .copied()
        };
        let from_attr = |name: &str| {
            node.attr_int(name)
                .and_then(|v| DataType::from_i32(v as i32))
        };
        let first = input(0);
        let outs: Vec<Option<DataType>> = if !is_default_domain(node) {
            vec![]
        } else {
            match node.op_type() {
                "Shape" | "Size" | "NonZero" | "ArgMax" | "ArgMin" | "NonMaxSuppression" => {
                    vec![Some(DataType::Int64)]
                }
                "Cast" => vec![from_attr("to")],
                "CastLike" => vec![input(1)],
                "Equal" | "Greater" | "Less" | "GreaterOrEqual" | "LessOrEqual" | "And" | "Or"
                | "Xor" | "Not" | "IsNaN" | "IsInf" => vec![Some(DataType::Bool)],
                "Constant" => vec![
                    node.output
                        .first()
                        .and_then(|o| view.constant(o))
                        .and_then(|t| t.data_type()),
                ],
                "ConstantOfShape" => vec![Some(
                    node.attr_tensor("value")
                        .and_then(|t| t.data_type())
                        .unwrap_or(DataType::Float),
                )],
                "QuantizeLinear" => vec![input(2).or(Some(DataType::Uint8))],
                "DequantizeLinear" => vec![input(1).or(Some(DataType::Float))],
                "Where" => vec![input(1)],
                "TopK" | "MaxPool" => vec![first, Some(DataType::Int64)],
                "Unique" => vec![
                    first,
                    Some(DataType::Int64),
                    Some(DataType::Int64),
                    Some(DataType::Int64),
                ],
                "RandomNormal" | "RandomUniform" | "RandomNormalLike" | "RandomUniformLike"
                | "EyeLike" => vec![from_attr("dtype").or(Some(DataType::Float))],
                "If" | "Loop" | "Scan" => vec![],
                _ => vec![first; node.output.len()],
            }
        };
        for (o, dt) in node.output.iter().zip(outs) {
            if let (false, Some(dt)) = (o.is_empty(), dt) {
                types.entry(o.clone()).or_insert(dt);
            }
        }
    }
    types
}

// ---------------------------------------------------------------------------------
// QDQ insertion

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
) -> Result<QdqSummary, QuantizeError> {
    insert_qdq_with_weights(model, plan, ranges, precision, &mut |_, _| None)
}

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
) -> Result<QdqSummary, QuantizeError> {
    let opset = model.opset_version("").unwrap_or(0);
    if opset < 13 {
        return Err(QuantizeError::Model(format!(
            "the model uses opset {opset}; per-channel int8 weights need opset 13 or later \
             (re-export it with opset_version=13 or higher)"
        )));
    }
    // Parameters per group leader.
    let mut group_range: BTreeMap<&str, Range> = BTreeMap::new();
    for t in &plan.activations {
        let r = *ranges.get(t).ok_or_else(|| {
            QuantizeError::Model(format!("no calibration range for tensor '{t}'"))
        })?;
        group_range
            .entry(plan.leader(t))
            .and_modify(|g| {
                g.min = g.min.min(r.min);
                g.max = g.max.max(r.max);
            })
            .or_insert(r);
    }
    let params: BTreeMap<&str, QParams> = group_range
        .iter()
        .map(|(t, r)| (*t, QParams::for_range(*r, precision)))
        .collect();

    let mut names = UniqueNames::new(model.graph());
    let act_type = precision.activation_type();
    let mut summary = QdqSummary {
        qdq_tensors: plan.activations.len(),
        parameter_groups: params.len(),
        ..QdqSummary::default()
    };
    let graph = model.graph_mut();
    for &i in &plan.tail {
        *summary
            .tail_ops
            .entry(graph.node[i].op_type().to_string())
            .or_default() += 1;
    }

    // Scale / zero-point initializers per group.
    let mut param_names: HashMap<&str, (String, String)> = HashMap::new();
    for (leader, p) in &params {
        let s = names.fresh(&format!("{leader}_scale"));
        let z = names.fresh(&format!("{leader}_zero_point"));
        graph.add_initializer(TensorProto::scalar(&s, p.scale))?;
        graph.add_initializer(zero_point_tensor(&z, act_type, &[p.zero_point], None))?;
        param_names.insert(leader, (s, z));
    }

    // Weights and biases (DQ nodes reading initializers go first in the node list).
    let mut front: Vec<NodeProto> = Vec::new();
    for layer in &plan.layers {
        let node = graph.node[layer.node].clone();
        let view = graph.view();
        let w_name = &node.input[1];
        let w_tensor = view
            .tensor(w_name)
            .ok_or_else(|| QuantizeError::Model(format!("weight '{w_name}' is not constant")))?
            .into_owned();
        let w = w_tensor.to_array::<f32>()?;
        let x = &node.input[0];
        let s_in = params
            .get(plan.leader(x))
            .ok_or_else(|| {
                QuantizeError::Model(format!(
                    "layer '{}': its input '{x}' is not quantized",
                    node.name()
                ))
            })?
            .scale;
        let bias = match node.input.get(2).filter(|b| !b.is_empty()) {
            Some(b) => view.tensor(b).map(|t| t.to_array::<f32>()).transpose()?,
            None => None,
        };
        let channels = w.shape()[layer.weight_axis];
        // Only a per-channel bias (Conv's, Gemm's 1-D) becomes int32.
        let gemm_scaled = node.op_type() == "Gemm"
            && (node.attr_float("alpha").is_some_and(|a| a != 1.0)
                || node.attr_float("beta").is_some_and(|b| b != 1.0));
        let int_bias = bias.as_ref().filter(|b| {
            precision.quantizes_bias() && b.ndim() == 1 && b.len() == channels && !gemm_scaled
        });
        let (mut wq, mut w_scale, grid) = match weights(layer, &w) {
            Some(chosen) => {
                if chosen.values.shape() != w.shape() || chosen.scales.len() != channels {
                    return Err(QuantizeError::Model(format!(
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
                let (q, s) = quantize_weight(&w, layer.weight_axis);
                (q, s, (-127, 127))
            }
        };
        let mut bq = None;
        if let Some(b) = int_bias {
            let (q, clamped) = quantize_bias(b, s_in, &mut w_scale);
            if !clamped.is_empty() {
                summary.bias_clamped_channels += clamped.len();
                wq = requantize_channels(&w, layer.weight_axis, &w_scale, &clamped, grid, wq);
            }
            bq = Some(q);
        }
        drop(view);
        let base = if node.name().is_empty() {
            w_name.clone()
        } else {
            node.name().to_string()
        };
        let wq_name = names.fresh(&format!("{w_name}_quantized"));
        let ws_name = names.fresh(&format!("{w_name}_scale"));
        let wz_name = names.fresh(&format!("{w_name}_zero_point"));
        let wdq_name = names.fresh(&format!("{w_name}_dequantized"));
        graph.add_initializer(TensorProto::from_array(&wq_name, &wq))?;
        graph.add_initializer(TensorProto::from_array(
            &ws_name,
            &ndarray::Array1::from_vec(w_scale.clone()),
        ))?;
        graph.add_initializer(zero_point_tensor(
            &wz_name,
            DataType::Int8,
            &vec![0; channels],
            Some(channels),
        ))?;
        front.push(
            NodeBuilder::new("DequantizeLinear")
                .name(&names.fresh(&format!("{base}_weight_DequantizeLinear")))
                .inputs([&wq_name, &ws_name, &wz_name])
                .output(&wdq_name)
                .attr_int("axis", layer.weight_axis as i64)
                .build(),
        );
        let target = &mut graph.node[layer.node];
        target.input[1] = wdq_name;
        if let Some(bq) = bq {
            let b_name = target.input[2].clone();
            let bq_name = names.fresh(&format!("{b_name}_quantized"));
            let bs_name = names.fresh(&format!("{b_name}_scale"));
            let bz_name = names.fresh(&format!("{b_name}_zero_point"));
            let bdq_name = names.fresh(&format!("{b_name}_dequantized"));
            let b_scale: Vec<f32> = w_scale.iter().map(|s| s * s_in).collect();
            graph.add_initializer(TensorProto::from_array(
                &bq_name,
                &ndarray::Array1::from_vec(bq),
            ))?;
            graph.add_initializer(TensorProto::from_array(
                &bs_name,
                &ndarray::Array1::from_vec(b_scale),
            ))?;
            graph.add_initializer(zero_point_tensor(
                &bz_name,
                DataType::Int32,
                &vec![0; channels],
                Some(channels),
            ))?;
            front.push(
                NodeBuilder::new("DequantizeLinear")
                    .name(&names.fresh(&format!("{base}_bias_DequantizeLinear")))
                    .inputs([&bq_name, &bs_name, &bz_name])
                    .output(&bdq_name)
                    .attr_int("axis", 0)
                    .build(),
            );
            graph.node[layer.node].input[2] = bdq_name;
        }
        summary.int8_layers += 1;
        if layer.float_output {
            summary.float_output_layers.push(if node.name().is_empty() {
                node.output[0].clone()
            } else {
                node.name().to_string()
            });
        }
    }

    // Constant inputs of quantized ops, per tensor in the activation type.
    for &(i, slot) in &plan.constants {
        let c_name = graph.node[i].input[slot].clone();
        let Some(c) = graph
            .view()
            .tensor(&c_name)
            .map(|t| t.to_array::<f32>())
            .transpose()?
        else {
            continue;
        };
        let lo = c.iter().copied().fold(0.0f32, f32::min);
        let hi = c.iter().copied().fold(0.0f32, f32::max);
        let p = QParams::for_range(Range { min: lo, max: hi }, precision);
        let q_name = names.fresh(&format!("{c_name}_quantized"));
        let s_name = names.fresh(&format!("{c_name}_scale"));
        let z_name = names.fresh(&format!("{c_name}_zero_point"));
        let dq_name = names.fresh(&format!("{c_name}_dequantized"));
        graph.add_initializer(quantize_constant(&q_name, &c, p, precision))?;
        graph.add_initializer(TensorProto::scalar(&s_name, p.scale))?;
        graph.add_initializer(zero_point_tensor(&z_name, act_type, &[p.zero_point], None))?;
        front.push(
            NodeBuilder::new("DequantizeLinear")
                .name(&names.fresh(&format!("{c_name}_DequantizeLinear")))
                .inputs([&q_name, &s_name, &z_name])
                .output(&dq_name)
                .build(),
        );
        graph.node[i].input[slot] = dq_name;
        summary.quantized_constants += 1;
    }

    // Activations: Q and DQ right after each producer (graph inputs: at the front),
    // every reader then reads the DQ output. Graph outputs keep their float values.
    let planned: HashSet<&str> = plan.activations.iter().map(String::as_str).collect();
    let mut renamed: HashMap<String, String> = HashMap::new();
    let mut pairs: HashMap<String, [NodeProto; 2]> = HashMap::new();
    for t in &plan.activations {
        let (s, z) = &param_names[plan.leader(t)];
        let q_out = names.fresh(&format!("{t}_quantized"));
        let dq_out = names.fresh(&format!("{t}_dequantized"));
        let q = NodeBuilder::new("QuantizeLinear")
            .name(&names.fresh(&format!("{t}_QuantizeLinear")))
            .inputs([t, s, z])
            .output(&q_out)
            .build();
        let dq = NodeBuilder::new("DequantizeLinear")
            .name(&names.fresh(&format!("{t}_DequantizeLinear")))
            .inputs([&q_out, s, z])
            .output(&dq_out)
            .build();
        renamed.insert(t.clone(), dq_out);
        pairs.insert(t.clone(), [q, dq]);
    }
    let old_nodes = std::mem::take(&mut graph.node);
    let mut nodes = Vec::with_capacity(old_nodes.len() + front.len() + 2 * pairs.len());
    nodes.append(&mut front);
    let inputs: Vec<String> = graph.input.iter().map(|v| v.name().to_string()).collect();
    for name in &inputs {
        if let Some(pair) = pairs.remove(name) {
            nodes.extend(pair);
        }
    }
    for mut node in old_nodes {
        for input in node.input.iter_mut() {
            if planned.contains(input.as_str()) {
                *input = renamed[input.as_str()].clone();
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
        return Err(QuantizeError::Model(format!(
            "tensor '{left}' is planned for quantization but nothing produces it"
        )));
    }
    graph.node = nodes;
    graph.remove_unused();
    Ok(summary)
}

fn zero_point_tensor(name: &str, dt: DataType, values: &[i32], dims: Option<usize>) -> TensorProto {
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

fn quantize_constant(name: &str, c: &ArrayD<f32>, p: QParams, precision: Precision) -> TensorProto {
    let q = |v: f32| (v / p.scale).round_ties_even() + p.zero_point as f32;
    match precision {
        Precision::U8S8 => TensorProto::from_array(name, &c.mapv(|v| q(v).clamp(0.0, 255.0) as u8)),
        Precision::S8S8 => {
            TensorProto::from_array(name, &c.mapv(|v| q(v).clamp(-128.0, 127.0) as i8))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_parameters_cover_the_range_and_zero() {
        let p = QParams::for_range(Range { min: 0.0, max: 1.0 }, Precision::U8S8);
        assert_eq!(p.zero_point, 0);
        assert!((p.scale - 1.0 / 255.0).abs() < 1e-9);
        let p = QParams::for_range(
            Range {
                min: -1.0,
                max: 3.0,
            },
            Precision::U8S8,
        );
        assert_eq!(p.zero_point, 64);
        let (lo, hi) = p.representable(Precision::U8S8);
        assert!(lo <= -0.99 && hi >= 2.99, "{lo} {hi}");
        // Positive-only ranges still contain zero.
        let p = QParams::for_range(Range { min: 2.0, max: 4.0 }, Precision::U8S8);
        assert_eq!(p.zero_point, 0);
        let p = QParams::for_range(
            Range {
                min: -0.3,
                max: 6.0,
            },
            Precision::S8S8,
        );
        assert_eq!(p.zero_point, 0);
        assert!((p.scale - 6.0 / 127.0).abs() < 1e-7);
        // Degenerate ranges do not divide by zero.
        let p = QParams::for_range(Range { min: 0.0, max: 0.0 }, Precision::U8S8);
        assert_eq!((p.scale, p.zero_point), (1.0, 0));
    }

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

    #[test]
    fn precision_names_parse() {
        assert_eq!("U8S8".parse::<Precision>().unwrap(), Precision::U8S8);
        assert_eq!("s8s8".parse::<Precision>().unwrap(), Precision::S8S8);
        let err = "int4".parse::<Precision>().unwrap_err().to_string();
        assert!(err.contains("u8s8"), "{err}");
    }
}
