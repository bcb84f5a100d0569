//! Where the QDQ pairs go, decided from the graph alone (calibration then observes
//! exactly the planned tensors). Placement rules (docs/quantize.md says why):
//!
//! - **Layers.** Conv, Gemm and MatMul with a constant weight are quantized: the
//!   activation input gets a QDQ pair, the weight becomes int8 (symmetric, per output
//!   channel) behind a DequantizeLinear, the bias int32 with scale `s_in·s_w` (u8s8).
//! - **Cheap ops between layers** (Sigmoid, Mul, Add, Concat, MaxPool, Resize, Split,
//!   Reshape, ... see [`op_class`](super::op_class)) get QDQ on their inputs and outputs, so ONNX Runtime
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
//! - **Softmax outputs are quantized over [0, 1]** (scale 1/255 in u8s8, the convention
//!   of ONNX Runtime's own quantizer), not over the calibrated range: ONNX Runtime's
//!   QLinearSoftmax multiplies its float exp table by 1/scale, which overflows to inf and
//!   writes zeros once the range is below about 255/(148·N) for N scores, i.e. for the
//!   near-uniform attention (max ≈ 1/N) of a weakly trained or weakly excited attention
//!   block. On the trained attention models of docs/quantize.md it cost no mAP.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::ops::{OpClass, data_slots, is_layout_op, op_class};
use crate::onnx::{DataType, GraphProto, GraphView};
use crate::zsq::ZsqError;
use crate::zsq::qparams::Range;

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
    /// Outputs of quantized Softmax nodes: their group's range is [0, 1] whatever
    /// calibration saw (see the module doc).
    pub probabilities: Vec<String>,
}

impl QdqPlan {
    /// The tensor whose quantization parameters `tensor` uses (itself if it leads).
    pub fn leader<'a>(&'a self, tensor: &'a str) -> &'a str {
        self.shared_with
            .get(tensor)
            .map(String::as_str)
            .unwrap_or(tensor)
    }

    /// The range of each group of tensors sharing parameters, keyed by the group's
    /// leader: the union of its members' `ranges` (calibrated per tensor), widened to
    /// [0, 1] for a Softmax output's group.
    pub fn group_ranges(
        &self,
        ranges: &HashMap<String, Range>,
    ) -> Result<BTreeMap<&str, Range>, ZsqError> {
        let mut groups: BTreeMap<&str, Range> = BTreeMap::new();
        for t in &self.activations {
            let r = *ranges
                .get(t)
                .ok_or_else(|| ZsqError::Model(format!("no calibration range for tensor '{t}'")))?;
            groups
                .entry(self.leader(t))
                .and_modify(|g| *g = g.union(r))
                .or_insert(r);
        }
        for t in &self.probabilities {
            if let Some(g) = groups.get_mut(self.leader(t)) {
                *g = g.union(Range { min: 0.0, max: 1.0 });
            }
        }
        Ok(groups)
    }

    /// The last layers, whose outputs stay float.
    pub fn float_layers(&self) -> impl Iterator<Item = &LayerInfo> {
        self.layers.iter().filter(|l| l.float_output)
    }
}

/// Decides the QDQ placement of a (BN-folded) float32 graph; see the module doc for the
/// rules. Fails on a graph with no layer to quantize.
pub fn plan_qdq(graph: &GraphProto) -> Result<QdqPlan, ZsqError> {
    let planner = Planner::new(graph)?;
    let activations = planner.activations();
    Ok(QdqPlan {
        shared_with: planner.shared_parameters(&activations),
        layers: planner.layers(),
        constants: planner.constant_inputs(),
        tail: planner.tail_nodes(),
        probabilities: planner.probabilities(&activations),
        activations,
    })
}

/// What the placement rules read about every node, computed once per graph.
struct Planner<'g> {
    graph: &'g GraphProto,
    view: GraphView<'g>,
    order: Vec<usize>,
    types: HashMap<String, DataType>,
    /// Per node: the output-channel axis of its weight, for a weighted layer.
    weight_axis: Vec<Option<usize>>,
    /// Per node: a learned layer is downstream of it.
    below: Vec<bool>,
    /// Per node: it is in the float tail.
    tail: Vec<bool>,
    /// Per node: it reads a value computed from the image.
    reads_image: Vec<bool>,
    /// Values computed from the image: the only activations.
    dynamic: HashSet<&'g str>,
}

impl<'g> Planner<'g> {
    /// The quantized Softmax outputs.
    fn probabilities(&self, activations: &[String]) -> Vec<String> {
        let planned: HashSet<&str> = activations.iter().map(String::as_str).collect();
        self.graph
            .node
            .iter()
            .filter(|n| n.op_type() == "Softmax")
            .filter_map(|n| n.output.first())
            .filter(|t| planned.contains(t.as_str()))
            .cloned()
            .collect()
    }

    /// Finds the layers, the learned ones among them, the tail they leave and the
    /// values computed from the image.
    fn new(graph: &'g GraphProto) -> Result<Self, ZsqError> {
        let view = graph.view();
        let order = view.topological_order()?;
        let types = elem_types(graph, &order);
        let weight_axis = weight_axes(graph, &view, &types);
        let learned = learned_layers(graph, &order, &weight_axis);
        if !learned.iter().any(|&l| l) {
            return Err(ZsqError::Model(
                "the model has no Conv, Gemm or MatMul layer with constant float32 weights to quantize"
                    .into(),
            ));
        }
        let below = learned_downstream(graph, &view, &order, &learned);
        let tail = (0..graph.node.len())
            .map(|i| !learned[i] && !below[i])
            .collect();
        let (dynamic, reads_image) = image_values(graph, &view, &order);
        Ok(Planner {
            graph,
            view,
            order,
            types,
            weight_axis,
            below,
            tail,
            reads_image,
            dynamic,
        })
    }

    fn is_const(&self, name: &str) -> bool {
        self.view.tensor(name).is_some()
    }

    fn is_float(&self, name: &str) -> bool {
        self.types.get(name) == Some(&DataType::Float)
    }

    /// How node `i` is quantized here: its op's class, narrowed by where it sits.
    fn class(&self, i: usize) -> OpClass {
        let node = &self.graph.node[i];
        if self.tail[i] || !self.reads_image[i] || !node.is_default_domain() {
            return OpClass::Float;
        }
        match op_class(node.op_type()) {
            OpClass::Layer if self.weight_axis[i].is_some() => OpClass::Layer,
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
                        .any(|m| !m.is_empty() && !self.is_const(m)) =>
            {
                OpClass::Float
            }
            other => other,
        }
    }

    fn quantized(&self, i: usize) -> bool {
        self.class(i) != OpClass::Float
    }

    /// The activations that get a QDQ pair, in graph order: float values from the image,
    /// read outside the tail, produced or read (as data) by a quantized op.
    fn activations(&self) -> Vec<String> {
        let graph = self.graph;
        let graph_outputs: HashSet<&str> = graph.output.iter().map(|o| o.name()).collect();
        let mut candidates: Vec<&str> = self.view.data_inputs().map(|v| v.name()).collect();
        for &i in &self.order {
            candidates.extend(graph.node[i].output.iter().map(String::as_str));
        }
        let mut seen = HashSet::new();
        let mut activations = Vec::new();
        for t in candidates {
            if t.is_empty() || !seen.insert(t) || !self.is_float(t) || !self.dynamic.contains(t) {
                continue;
            }
            let uses = self.view.consumers(t);
            if !uses.iter().any(|u| !self.tail[u.node]) {
                continue;
            }
            let producer = self.view.producer(t);
            let produced_quantized = producer.is_some_and(|p| self.quantized(p));
            let read_quantized = uses.iter().any(|u| {
                self.quantized(u.node)
                    && u.input
                        .is_some_and(|s| data_slots(&graph.node[u.node]).contains(&s))
            });
            if !(produced_quantized || read_quantized) {
                continue;
            }
            // Conv → Relu/Clip: the activation's output carries the range, ONNX Runtime
            // folds the activation into the Quantize after it.
            let folded_activation = producer
                .is_some_and(|p| matches!(self.class(p), OpClass::Layer | OpClass::Quantized))
                && uses.len() == 1
                && self.class(uses[0].node) == OpClass::Activation
                && !graph_outputs.contains(t);
            if folded_activation {
                continue;
            }
            activations.push(t.to_string());
        }
        activations
    }

    /// Data-moving ops share their input's parameters: for each planned tensor in a
    /// group, the group's leader (union-find over the SameParams ops).
    fn shared_parameters(&self, activations: &[String]) -> BTreeMap<String, String> {
        let in_plan: HashSet<&str> = activations.iter().map(String::as_str).collect();
        let mut parent: HashMap<String, String> = HashMap::new();
        fn find(parent: &HashMap<String, String>, t: &str) -> String {
            let mut t = t.to_string();
            while let Some(p) = parent.get(&t) {
                t = p.clone();
            }
            t
        }
        for &i in &self.order {
            let node = &self.graph.node[i];
            if self.class(i) != OpClass::SameParams {
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
        activations
            .iter()
            .filter_map(|t| {
                let root = find(&parent, t);
                (root != *t).then(|| (t.clone(), root))
            })
            .collect()
    }

    /// Constant float data inputs of quantized ops (node, slot), quantized like
    /// activations.
    fn constant_inputs(&self) -> Vec<(usize, usize)> {
        let mut constants = Vec::new();
        for &i in &self.order {
            let node = &self.graph.node[i];
            if !matches!(self.class(i), OpClass::Quantized) || node.op_type() == "MatMul" {
                continue;
            }
            for s in data_slots(node) {
                if node
                    .input
                    .get(s)
                    .is_some_and(|x| self.is_const(x) && self.is_float(x))
                {
                    constants.push((i, s));
                }
            }
        }
        constants
    }

    /// The quantized layers in graph order.
    fn layers(&self) -> Vec<LayerInfo> {
        self.order
            .iter()
            .filter(|&&i| self.class(i) == OpClass::Layer)
            .map(|&i| LayerInfo {
                node: i,
                name: self.graph.node[i].name().to_string(),
                op_type: self.graph.node[i].op_type().to_string(),
                float_output: !self.below[i],
                weight_axis: self.weight_axis[i].unwrap_or(0),
            })
            .collect()
    }

    fn tail_nodes(&self) -> Vec<usize> {
        (0..self.graph.node.len())
            .filter(|&i| self.tail[i])
            .collect()
    }
}

/// Per node: the axis of its weight's output channels, for Conv, Gemm and MatMul with
/// a constant float32 weight and a float32 input.
fn weight_axes(
    graph: &GraphProto,
    view: &GraphView,
    types: &HashMap<String, DataType>,
) -> Vec<Option<usize>> {
    let mut weight_axis: Vec<Option<usize>> = vec![None; graph.node.len()];
    for (i, node) in graph.node.iter().enumerate() {
        if !node.is_default_domain() || op_class(node.op_type()) != OpClass::Layer {
            continue;
        }
        let Some(t) = node.input.get(1).and_then(|w| view.tensor(w)) else {
            continue;
        };
        if t.data_type() != Some(DataType::Float)
            || types.get(&node.input[0]) != Some(&DataType::Float)
        {
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
    weight_axis
}

/// Per node: a learned layer. A weighted layer reading a value derived from a Softmax
/// through layout ops only is decoding (DFL's expectation), not learned.
fn learned_layers(graph: &GraphProto, order: &[usize], weight_axis: &[Option<usize>]) -> Vec<bool> {
    let mut distribution: HashSet<&str> = HashSet::new();
    for &i in order {
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
    (0..graph.node.len())
        .map(|i| {
            weight_axis[i].is_some() && !distribution.contains(graph.node[i].input[0].as_str())
        })
        .collect()
}

/// Per node: a learned layer reads (directly or not) one of its outputs.
fn learned_downstream(
    graph: &GraphProto,
    view: &GraphView,
    order: &[usize],
    learned: &[bool],
) -> Vec<bool> {
    let mut below = vec![false; graph.node.len()];
    for &i in order.iter().rev() {
        below[i] = graph.node[i].output.iter().any(|o| {
            view.consumers(o)
                .iter()
                .any(|u| learned[u.node] || below[u.node])
        });
    }
    below
}

/// The values computed from the image (not constant subexpressions such as a Resize's
/// scales built with Concat), and per node whether it reads one.
fn image_values<'g>(
    graph: &'g GraphProto,
    view: &GraphView<'g>,
    order: &[usize],
) -> (HashSet<&'g str>, Vec<bool>) {
    let mut dynamic: HashSet<&str> = view.data_inputs().map(|v| v.name()).collect();
    let mut reads_image = vec![false; graph.node.len()];
    for &i in order {
        let node = &graph.node[i];
        if node.input.iter().any(|x| dynamic.contains(x.as_str())) {
            reads_image[i] = true;
            dynamic.extend(node.output.iter().map(String::as_str));
        }
    }
    (dynamic, reads_image)
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
        let outs: Vec<Option<DataType>> = if !node.is_default_domain() {
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
