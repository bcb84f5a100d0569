//! Arithmetic: BatchNormalization (inference: a per-channel scale), Add/Sub/Mul/Div
//! with numpy broadcasting undone by ReduceSum, Neg and MatMul.

use ndarray::ArrayD;

use super::{Ctx, Grad, Grads, unbroadcast};
use crate::onnx::AttributeProto;
use crate::zsq::ZsqError;

/// BatchNormalization in inference mode is Y = X·γ/√(var+ε) + const per channel.
pub(super) fn batch_norm(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    g.only_active(ctx, &[0], "scale, bias, mean or variance")?;
    g.unary(ctx, |ctx, x, dy| {
        let xs = ctx.shape(x)?;
        let read = |slot: usize| {
            ctx.floats(g.input(slot))
                .ok_or_else(|| g.fail(format!("its input '{}' is not a constant", g.input(slot))))
        };
        let (gamma, var) = (read(1)?, read(4)?);
        let eps = g.node.attr_float("epsilon").unwrap_or(1e-5);
        let channels = xs.get(1).copied().unwrap_or(0);
        if gamma.len() != channels || var.len() != channels {
            return Err(g.fail(format!(
                "scale and variance have {} and {} values for {channels} channels",
                gamma.len(),
                var.len()
            )));
        }
        let mut shape = vec![1usize; xs.len().saturating_sub(1)];
        shape[0] = channels;
        let slope: Vec<f32> = gamma
            .iter()
            .zip(var.iter())
            .map(|(g, v)| g / (v + eps).sqrt())
            .collect();
        let slope = ArrayD::from_shape_vec(shape, slope)
            .map_err(|e| g.fail(format!("cannot shape its scale: {e}")))?;
        let slope = ctx.emit.tensor("bn_slope", &slope);
        Ok(ctx.emit.mul(dy, &slope))
    })
}

/// Add and Sub: the output gradient, summed over broadcast axes (negated for Sub's B).
pub(super) fn add_sub(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    let mut dx = g.none();
    let dy = g.dy0()?;
    let ys = ctx.shape(g.output(0))?;
    for (slot, d_input) in dx.iter_mut().enumerate().take(2) {
        let input = g.input(slot);
        if !ctx.active(input) {
            continue;
        }
        let shape = ctx.shape(input)?;
        let d = unbroadcast(&mut ctx.emit, dy, &ys, &shape);
        *d_input = Some(if slot == 1 && g.node.op_type() == "Sub" {
            ctx.emit.op("Neg", &[&d], vec![])
        } else {
            d
        });
    }
    Ok(dx)
}

/// Mul: dA = dy·B, dB = dy·A, each summed over its broadcast axes.
pub(super) fn mul(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    let mut dx = g.none();
    let dy = g.dy0()?;
    let ys = ctx.shape(g.output(0))?;
    if let Some((x_slot, s_slot)) = silu(ctx, g, &ys)? {
        // Y = X·s, s = σ(X): dX = dy·s·(1 + X − Y), in four ops where the Mul and
        // Sigmoid rules would emit six (SiLU is most of a YOLO's activations).
        let (x, s, y) = (g.input(x_slot), g.input(s_slot), g.output(0));
        let one = ctx.emit.scalar(1.0);
        let diff = ctx.emit.sub(x, y);
        let shifted = ctx.emit.add(&diff, &one);
        let slope = ctx.emit.mul(s, &shifted);
        dx[x_slot] = Some(ctx.emit.mul(dy, &slope));
        return Ok(dx);
    }
    for (slot, d_input) in dx.iter_mut().enumerate().take(2) {
        let input = g.input(slot);
        if !ctx.active(input) {
            continue;
        }
        let other = g.input(1 - slot);
        let product = ctx.emit.mul(dy, other);
        let shape = ctx.shape(input)?;
        *d_input = Some(unbroadcast(&mut ctx.emit, &product, &ys, &shape));
    }
    Ok(dx)
}

/// The slots (X, σ(X)) when this Mul is a SiLU, X·Sigmoid(X), whose Sigmoid feeds
/// nothing else (its rule is then not needed: no gradient reaches it).
fn silu(ctx: &Ctx, g: &Grad, ys: &[usize]) -> Result<Option<(usize, usize)>, ZsqError> {
    for s_slot in 0..2 {
        let (s, x) = (g.input(s_slot), g.input(1 - s_slot));
        let is_sigmoid_of_x = ctx.view.producer_node(s).is_some_and(|p| {
            p.op_type() == "Sigmoid" && p.input.first().map(String::as_str) == Some(x)
        });
        if is_sigmoid_of_x && ctx.view.consumers(s).len() == 1 && ctx.shape(x)? == ys {
            return Ok(Some((1 - s_slot, s_slot)));
        }
    }
    Ok(None)
}

/// Div Y = A/B: dA = dy/B; dB = −dy·Y/B.
pub(super) fn div(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    let mut dx = g.none();
    let dy = g.dy0()?;
    let ys = ctx.shape(g.output(0))?;
    let (a, b) = (g.input(0), g.input(1));
    if ctx.active(a) {
        let quotient = ctx.emit.op("Div", &[dy, b], vec![]);
        let shape = ctx.shape(a)?;
        dx[0] = Some(unbroadcast(&mut ctx.emit, &quotient, &ys, &shape));
    }
    if ctx.active(b) {
        let y_over_b = ctx.emit.op("Div", &[g.output(0), b], vec![]);
        let product = ctx.emit.mul(dy, &y_over_b);
        let negated = ctx.emit.op("Neg", &[&product], vec![]);
        let shape = ctx.shape(b)?;
        dx[1] = Some(unbroadcast(&mut ctx.emit, &negated, &ys, &shape));
    }
    Ok(dx)
}

pub(super) fn neg(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    g.unary(ctx, |ctx, _, dy| Ok(ctx.emit.op("Neg", &[dy], vec![])))
}

/// MatMul (rank ≥ 2, batched with broadcasting): dA = dy·Bᵀ, dB = Aᵀ·dy.
pub(super) fn matmul(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    let mut dx = g.none();
    let dy = g.dy0()?;
    let (a, b) = (g.input(0), g.input(1));
    let (as_, bs) = (ctx.shape(a)?, ctx.shape(b)?);
    if as_.len() < 2 || bs.len() < 2 {
        return Err(g.fail(format!(
            "1-D operands are not supported (shapes {as_:?} and {bs:?})"
        )));
    }
    let ys = ctx.shape(g.output(0))?;
    if ctx.active(a) {
        let bt = swap_last_axes(ctx, b, bs.len());
        let product = ctx.emit.op("MatMul", &[dy, &bt], vec![]);
        let mut from = ys.clone();
        let n = from.len();
        from[n - 1] = as_[as_.len() - 1];
        dx[0] = Some(unbroadcast(&mut ctx.emit, &product, &from, &as_));
    }
    if ctx.active(b) {
        let at = swap_last_axes(ctx, a, as_.len());
        let product = ctx.emit.op("MatMul", &[&at, dy], vec![]);
        let mut from = ys.clone();
        let n = from.len();
        from[n - 2] = bs[bs.len() - 2];
        dx[1] = Some(unbroadcast(&mut ctx.emit, &product, &from, &bs));
    }
    Ok(dx)
}

fn swap_last_axes(ctx: &mut Ctx, value: &str, rank: usize) -> String {
    let mut perm: Vec<i64> = (0..rank as i64).collect();
    perm.swap(rank - 2, rank - 1);
    ctx.emit.op(
        "Transpose",
        &[value],
        vec![AttributeProto::ints("perm", perm)],
    )
}
