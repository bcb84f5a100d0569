//! Reverse-mode rules, one per ONNX op: given the gradients of a node's outputs, emit
//! the nodes that compute the gradients of its inputs.
//!
//! Every rule only differentiates the inputs that depend on the image (the "active"
//! ones); weights, shapes, scales and bounds are constants. A rule that meets a form
//! of its op it does not cover (an attribute value, an active weight) fails with the
//! op and node named rather than emit a wrong gradient.

mod arith;
mod conv;
mod layout;
mod pool;
mod unary;

use std::collections::HashMap;

use ndarray::ArrayD;

use super::emit::Emitter;
use super::forward::Forward;
use crate::onnx::{GraphView, NodeProto};
use crate::zsq::ZsqError;

/// The ops with a gradient rule.
pub const SUPPORTED_OPS: [&str; 32] = [
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Clip",
    "Concat",
    "Conv",
    "Div",
    "Dropout",
    "Flatten",
    "GlobalAveragePool",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "LeakyRelu",
    "MatMul",
    "MaxPool",
    "Mul",
    "Neg",
    "Pad",
    "ReduceMean",
    "Relu",
    "Reshape",
    "Resize",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Split",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Unsqueeze",
];

/// What the rules work with: the forward graph, what running it taught, and where new
/// nodes go.
pub(super) struct Ctx<'f> {
    pub(super) fwd: &'f Forward,
    view: GraphView<'f>,
    pub(super) emit: Emitter,
    /// MaxPool nodes (index into the forward graph) that must also output their
    /// argmax Indices, and the name of that output.
    pub(super) pool_indices: HashMap<usize, String>,
    /// Conv weights already flipped and transposed for a stride-1 gradient Conv.
    flipped_weights: HashMap<String, String>,
}

impl<'f> Ctx<'f> {
    pub(super) fn new(fwd: &'f Forward) -> Self {
        Ctx {
            emit: Emitter::new(fwd.model.graph(), fwd.opset),
            view: fwd.model.graph().view(),
            fwd,
            pool_indices: HashMap::new(),
            flipped_weights: HashMap::new(),
        }
    }

    pub(super) fn active(&self, value: &str) -> bool {
        self.fwd.active.contains(value)
    }

    /// The shape of a value, learnt by running the forward graph (or an
    /// initializer's declared dims).
    pub(super) fn shape(&self, value: &str) -> Result<Vec<usize>, ZsqError> {
        if let Some(s) = self.fwd.known.shapes.get(value) {
            return Ok(s.clone());
        }
        match self.view.initializer(value) {
            Some(t) => Ok(t.dims.iter().map(|&d| d.max(0) as usize).collect()),
            None => Err(ZsqError::Model(format!(
                "the shape of '{value}' is unknown after running the forward graph"
            ))),
        }
    }

    /// The integer values of a constant (initializer, Constant node or a value
    /// computed from constants only).
    pub(super) fn ints(&self, value: &str) -> Option<Vec<i64>> {
        if let Some(v) = self.fwd.known.ints.get(value) {
            return Some(v.iter().copied().collect());
        }
        let t = self.view.tensor(value)?;
        t.to_array::<i64>().ok().map(|a| a.into_iter().collect())
    }

    /// The float values of a constant.
    pub(super) fn floats(&self, value: &str) -> Option<ArrayD<f32>> {
        if let Some(v) = self.fwd.known.floats.get(value) {
            return Some(v.clone());
        }
        let t = self.view.tensor(value)?;
        t.to_array::<f32>().ok()
    }
}

/// The gradient of each input (or output) of a node, by slot; `None` where no
/// gradient flows.
pub(super) type Grads = Vec<Option<String>>;

/// One node being differentiated, with the gradients of its outputs.
pub(super) struct Grad<'a> {
    pub(super) node: &'a NodeProto,
    /// Index of the node in the forward graph.
    pub(super) index: usize,
    /// Gradient of each output; `None` where nothing downstream needs it.
    pub(super) dy: Grads,
}

impl Grad<'_> {
    pub(super) fn fail(&self, why: impl Into<String>) -> ZsqError {
        ZsqError::no_rule(self.node.op_type(), self.name(), why)
    }

    pub(super) fn name(&self) -> &str {
        match self.node.name() {
            "" => self.node.output.first().map_or("", String::as_str),
            n => n,
        }
    }

    pub(super) fn input(&self, slot: usize) -> &str {
        self.node.input.get(slot).map_or("", String::as_str)
    }

    pub(super) fn output(&self, slot: usize) -> &str {
        self.node.output.get(slot).map_or("", String::as_str)
    }

    /// The gradient of the first output (the driver only calls a rule when some
    /// output has one; single-output ops always have this one).
    pub(super) fn dy0(&self) -> Result<&str, ZsqError> {
        self.dy
            .first()
            .and_then(Option::as_deref)
            .ok_or_else(|| self.fail("its first output has no gradient"))
    }

    /// No gradient for any input yet, one slot per input.
    pub(super) fn none(&self) -> Grads {
        vec![None; self.node.input.len()]
    }

    /// The rule of an op whose only input that can depend on the image is the first
    /// (the others are weights, shapes or bounds): `rule` turns X into dX, and runs only
    /// when X depends on the image; no other input gets a gradient.
    pub(super) fn first_input(
        &self,
        ctx: &mut Ctx,
        rule: impl FnOnce(&mut Ctx, &str) -> Result<String, ZsqError>,
    ) -> Result<Grads, ZsqError> {
        let mut dx = self.none();
        let x = self.input(0);
        if ctx.active(x) {
            dx[0] = Some(rule(ctx, x)?);
        }
        Ok(dx)
    }

    /// [`Grad::first_input`] for the usual rule, which needs X and dY (the gradient of
    /// the first output). dY is looked up only when X depends on the image: an inactive
    /// X never fails for want of it.
    pub(super) fn unary(
        &self,
        ctx: &mut Ctx,
        rule: impl FnOnce(&mut Ctx, &str, &str) -> Result<String, ZsqError>,
    ) -> Result<Grads, ZsqError> {
        self.first_input(ctx, |ctx, x| rule(ctx, x, self.dy0()?))
    }

    /// Fails when an input other than those in `slots` depends on the image.
    pub(super) fn only_active(
        &self,
        ctx: &Ctx,
        slots: &[usize],
        what: &str,
    ) -> Result<(), ZsqError> {
        for (slot, name) in self.node.input.iter().enumerate() {
            if !slots.contains(&slot) && !name.is_empty() && ctx.active(name) {
                return Err(self.fail(format!(
                    "its input '{name}' ({what}) depends on the image; only constants are supported there"
                )));
            }
        }
        Ok(())
    }
}

/// The gradients of `g.node`'s inputs.
pub(super) fn backward(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    if !matches!(g.node.domain(), "" | "ai.onnx") {
        return Err(g.fail(format!(
            "ops of domain '{}' have no gradient rules",
            g.node.domain()
        )));
    }
    match g.node.op_type() {
        "Conv" => conv::conv(ctx, g),
        "BatchNormalization" => arith::batch_norm(ctx, g),
        "Add" | "Sub" => arith::add_sub(ctx, g),
        "Mul" => arith::mul(ctx, g),
        "Div" => arith::div(ctx, g),
        "Neg" => arith::neg(ctx, g),
        "MatMul" => arith::matmul(ctx, g),
        "Relu" | "LeakyRelu" => unary::relu(ctx, g),
        "Sigmoid" => unary::sigmoid(ctx, g),
        "Tanh" => unary::tanh(ctx, g),
        "HardSigmoid" => unary::hard_sigmoid(ctx, g),
        "HardSwish" => unary::hard_swish(ctx, g),
        "Clip" => unary::clip(ctx, g),
        "Softmax" => unary::softmax(ctx, g),
        "MaxPool" => pool::max_pool(ctx, g),
        "AveragePool" => pool::average_pool(ctx, g),
        "GlobalAveragePool" => pool::global_average_pool(ctx, g),
        "ReduceMean" => pool::reduce_mean(ctx, g),
        "Concat" => layout::concat(ctx, g),
        "Split" => layout::split(ctx, g),
        "Slice" => layout::slice(ctx, g),
        "Pad" => layout::pad(ctx, g),
        "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => layout::reshape(ctx, g),
        "Transpose" => layout::transpose(ctx, g),
        "Identity" | "Dropout" => layout::identity(ctx, g),
        "Resize" => layout::resize(ctx, g),
        _ => Err(g.fail(format!(
            "the op has no gradient rule (ops with one: {})",
            SUPPORTED_OPS.join(", ")
        ))),
    }
}

/// Sums `grad` (shaped `from`, a broadcast of `to`) back down to shape `to`: the
/// gradient of numpy-style broadcasting.
pub(super) fn unbroadcast(emit: &mut Emitter, grad: &str, from: &[usize], to: &[usize]) -> String {
    if from == to {
        return grad.to_string();
    }
    let lead = from.len().saturating_sub(to.len());
    let axes: Vec<i64> = (0..from.len())
        .filter(|&i| i < lead || (to[i - lead] == 1 && from[i] != 1))
        .map(|i| i as i64)
        .collect();
    let summed = if axes.is_empty() {
        grad.to_string()
    } else {
        emit.reduce("ReduceSum", grad, &axes, true)
    };
    emit.reshape(&summed, to)
}

/// Normalises a possibly negative axis for a tensor of rank `rank`.
pub(super) fn axis(g: &Grad, axis: i64, rank: usize) -> Result<usize, ZsqError> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    usize::try_from(a)
        .ok()
        .filter(|&a| a < rank)
        .ok_or_else(|| g.fail(format!("axis {axis} is out of range for rank {rank}")))
}
