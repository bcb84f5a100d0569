//! The gradient of the BN-statistics loss w.r.t. the input image, as one ONNX graph
//! that ONNX Runtime runs: source-to-source reverse mode on the model itself.
//!
//! [`build_gradient_graph`]:
//!
//! 1. cuts the model down to the nodes that compute the BN layers' inputs, fixes the
//!    input shape, and runs it once with every value exposed: shapes (and the values of
//!    small constants such as Resize scales) are learnt by execution ([`forward`]);
//! 2. appends, per BN layer, its statistics, its share of the loss and the closed-form
//!    gradient of that share w.r.t. the BN input ([`loss`]);
//! 3. walks the forward nodes in reverse and emits, per node, the nodes that turn the
//!    gradients of its outputs into gradients of its inputs ([`rules`]), summing where
//!    a value feeds several nodes.
//!
//! The graph's outputs are the scalar loss, the gradient (shaped like the input) and
//! every layer's per-channel mean and std, so one `session.run` per optimisation step
//! gives all the distillation loop needs ([`GradientSession`]).

mod emit;
mod forward;
mod loss;
mod rules;
mod session;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

pub use forward::ImageInput;
pub use loss::STD_EPSILON;
pub use rules::SUPPORTED_OPS;
pub use session::{Evaluation, GradientSession, LayerStats};

use crate::onnx::{DataType, Model, ValueInfoProto};
use crate::runtime::ProviderOptions;
use crate::zsq::ZsqError;
use crate::zsq::bn::BnLayer;
use rules::{Ctx, Grad, Grads};

/// Which statistics the loss matches (the ablation of the ZeroQ paper).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LossTerms {
    Mean,
    Std,
    #[default]
    MeanStd,
}

impl LossTerms {
    /// (w_mean, w_std).
    pub fn weights(self) -> (f32, f32) {
        match self {
            LossTerms::Mean => (1.0, 0.0),
            LossTerms::Std => (0.0, 1.0),
            LossTerms::MeanStd => (1.0, 1.0),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LossTerms::Mean => "mean",
            LossTerms::Std => "std",
            LossTerms::MeanStd => "mean+std",
        }
    }
}

impl fmt::Display for LossTerms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LossTerms {
    type Err = ZsqError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mean" => Ok(LossTerms::Mean),
            "std" => Ok(LossTerms::Std),
            "mean+std" | "both" => Ok(LossTerms::MeanStd),
            other => Err(ZsqError::Options(format!(
                "unknown loss '{other}' (expected mean, std or mean+std)"
            ))),
        }
    }
}

/// Over what the BN inputs' statistics are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Statistics {
    /// Per image and channel, over H×W (ZeroQ): every image must look like the
    /// training data on its own.
    #[default]
    PerImage,
    /// Per channel over N×H×W (DeepInversion, Genie): the batch as a whole must.
    Batch,
}

impl Statistics {
    pub fn as_str(self) -> &'static str {
        match self {
            Statistics::PerImage => "image",
            Statistics::Batch => "batch",
        }
    }
}

impl fmt::Display for Statistics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Statistics {
    type Err = ZsqError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "image" | "per-image" => Ok(Statistics::PerImage),
            "batch" => Ok(Statistics::Batch),
            other => Err(ZsqError::Options(format!(
                "unknown statistics '{other}' (expected image or batch)"
            ))),
        }
    }
}

/// The loss the gradient graph computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LossSpec {
    pub terms: LossTerms,
    pub statistics: Statistics,
}

/// A built gradient graph and the names of its inputs and outputs.
#[derive(Debug, Clone)]
pub struct GradientGraph {
    /// The graph as an ONNX model (forward part, loss, backward part).
    pub model: Model,
    /// The image input, and its static shape N×C×H×W.
    pub input: String,
    pub input_shape: [usize; 4],
    /// Scalar output: the loss.
    pub loss: String,
    /// Output shaped like the input: d(loss)/d(input).
    pub gradient: String,
    /// One entry per BN layer, in the order given.
    pub layers: Vec<LayerOutputs>,
    /// Nodes of the pruned forward part, and of the loss and backward parts.
    pub forward_nodes: usize,
    pub backward_nodes: usize,
}

/// The outputs holding one layer's statistics: N×C×1×1 for per-image statistics,
/// 1×C×1×1 for batch statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerOutputs {
    pub name: String,
    pub mean: String,
    pub std: String,
}

/// Builds the graph that computes the BN-statistics loss of `layers` (all of them
/// [`crate::zsq::bn::find_bn_layers`] found, or a subset) and its gradient w.r.t. the
/// model's image input, for inputs of exactly `input_shape` (N×C×H×W; N, H and W may
/// differ from what the model declares, e.g. a fixed batch of 1).
///
/// Runs the pruned forward graph once on `provider` to learn shapes. Fails, naming
/// the op and node, when a node between the input and a BN layer has no gradient rule.
pub fn build_gradient_graph(
    model: &Model,
    layers: &[BnLayer],
    input_shape: [usize; 4],
    spec: &LossSpec,
    provider: &ProviderOptions,
) -> Result<GradientGraph, ZsqError> {
    if layers.is_empty() {
        return Err(ZsqError::NoBatchNorm);
    }
    if input_shape.contains(&0) {
        return Err(ZsqError::Options(format!(
            "input shape {input_shape:?} has an empty axis"
        )));
    }
    let fwd = forward::prepare(model, layers, input_shape, provider)?;
    let mut ctx = Ctx::new(&fwd);
    let graph = fwd.model.graph();

    // Gradient contributions per value, summed when the value's producer is reached.
    let mut grads: HashMap<String, Vec<String>> = HashMap::new();
    let mut losses = Vec::with_capacity(layers.len());
    let mut layer_outputs = Vec::with_capacity(layers.len());
    let mut stat_shapes = Vec::with_capacity(layers.len());
    for layer in layers {
        if !ctx.active(&layer.input) {
            return Err(ZsqError::Model(format!(
                "BatchNormalization layer '{}' does not depend on input '{}'",
                layer.name, fwd.input
            )));
        }
        let shape = ctx.shape(&layer.input)?;
        let term = loss::layer_term(
            &mut ctx.emit,
            layer,
            &layer.input,
            &shape,
            spec,
            layers.len(),
        )?;
        grads.entry(layer.input.clone()).or_default().push(term.dx);
        losses.push(term.loss);
        stat_shapes.push(match spec.statistics {
            Statistics::PerImage => [shape[0], shape[1], 1, 1],
            Statistics::Batch => [1, shape[1], 1, 1],
        });
        layer_outputs.push(LayerOutputs {
            name: layer.name.clone(),
            mean: term.mean,
            std: term.std,
        });
    }
    ctx.emit.set_scope("loss");
    let loss = ctx.emit.op(
        "Sum",
        &losses.iter().map(String::as_str).collect::<Vec<_>>(),
        vec![],
    );

    for (index, node) in graph.node.iter().enumerate().rev() {
        if !node.input.iter().any(|i| ctx.active(i)) {
            continue;
        }
        let scope = match node.name() {
            "" => node.output.first().map_or("node", String::as_str),
            n => n,
        };
        ctx.emit.set_scope(scope);
        let dy: Grads = node
            .output
            .iter()
            .map(|o| grads.remove(o).map(|terms| ctx.emit.sum(&terms)))
            .collect();
        if dy.iter().all(Option::is_none) {
            continue;
        }
        let dx = rules::backward(&mut ctx, &Grad { node, index, dy })?;
        for (slot, d) in dx.into_iter().enumerate() {
            if let Some(d) = d {
                grads.entry(node.input[slot].clone()).or_default().push(d);
            }
        }
    }
    ctx.emit.set_scope("input");
    let gradient = match grads.remove(&fwd.input) {
        Some(terms) => ctx.emit.sum(&terms),
        None => {
            return Err(ZsqError::Model(format!(
                "the loss does not depend on input '{}'",
                fwd.input
            )));
        }
    };

    let Ctx {
        emit, pool_indices, ..
    } = ctx;
    let forward_nodes = graph.node.len();
    let backward_nodes = emit.nodes.len();
    let input = fwd.input;
    let mut model = fwd.model;
    let graph = model.graph_mut();
    for (index, name) in pool_indices {
        let outputs = &mut graph.node[index].output;
        outputs.resize(2, String::new());
        outputs[1] = name;
    }
    graph.node.extend(emit.nodes);
    graph.initializer.extend(emit.initializers);
    let dims = |d: &[usize]| d.iter().map(|&v| v as i64).collect::<Vec<i64>>();
    graph.output = vec![
        ValueInfoProto::tensor(&loss, DataType::Float, Some(&[])),
        ValueInfoProto::tensor(&gradient, DataType::Float, Some(&dims(&input_shape))),
    ];
    for (layer, shape) in layer_outputs.iter().zip(&stat_shapes) {
        for name in [&layer.mean, &layer.std] {
            graph.output.push(ValueInfoProto::tensor(
                name,
                DataType::Float,
                Some(&dims(shape)),
            ));
        }
    }
    Ok(GradientGraph {
        model,
        input,
        input_shape,
        loss,
        gradient,
        layers: layer_outputs,
        forward_nodes,
        backward_nodes,
    })
}
