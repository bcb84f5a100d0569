//! Activations: the gradient is the output gradient times the local slope, written
//! with the forward values (the input X or the output Y, whichever is cheaper) and
//! Where masks for the piecewise-linear ones.

use super::{Ctx, Grad, Grads, axis};
use crate::zsq::ZsqError;

/// Relu and LeakyRelu: dy where X > 0, else 0 (Relu) or alpha·dy (LeakyRelu).
pub(super) fn relu(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    g.unary(ctx, |ctx, x, dy| {
        let zero = ctx.emit.scalar(0.0);
        let positive = ctx.emit.op("Greater", &[x, &zero], vec![]);
        let negative_side = if g.node.op_type() == "LeakyRelu" {
            let alpha = g.node.attr_float("alpha").unwrap_or(0.01);
            ctx.emit.scale(dy, alpha)
        } else {
            zero
        };
        Ok(ctx
            .emit
            .op("Where", &[&positive, dy, &negative_side], vec![]))
    })
}

/// Sigmoid: dy · Y · (1 − Y).
pub(super) fn sigmoid(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    g.unary(ctx, |ctx, _, dy| {
        let y = g.output(0);
        let one = ctx.emit.scalar(1.0);
        let complement = ctx.emit.sub(&one, y);
        let slope = ctx.emit.mul(y, &complement);
        Ok(ctx.emit.mul(dy, &slope))
    })
}

/// Tanh: dy · (1 − Y²).
pub(super) fn tanh(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    g.unary(ctx, |ctx, _, dy| {
        let y = g.output(0);
        let one = ctx.emit.scalar(1.0);
        let square = ctx.emit.mul(y, y);
        let slope = ctx.emit.sub(&one, &square);
        Ok(ctx.emit.mul(dy, &slope))
    })
}

/// HardSigmoid Y = clip(αX + β, 0, 1): α·dy where 0 < Y < 1.
pub(super) fn hard_sigmoid(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    g.unary(ctx, |ctx, _, dy| {
        let alpha = g.node.attr_float("alpha").unwrap_or(0.2);
        let y = g.output(0);
        let (zero, one) = (ctx.emit.scalar(0.0), ctx.emit.scalar(1.0));
        let above = ctx.emit.op("Greater", &[y, &zero], vec![]);
        let below = ctx.emit.op("Less", &[y, &one], vec![]);
        let inside = ctx.emit.op("And", &[&above, &below], vec![]);
        let scaled = ctx.emit.scale(dy, alpha);
        Ok(ctx.emit.op("Where", &[&inside, &scaled, &zero], vec![]))
    })
}

/// HardSwish Y = X·clip(X/6 + 1/2, 0, 1): slope 0 below −3, 1 above 3, X/3 + 1/2 between.
pub(super) fn hard_swish(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    g.unary(ctx, |ctx, x, dy| {
        let (zero, one) = (ctx.emit.scalar(0.0), ctx.emit.scalar(1.0));
        let (minus3, plus3, half) = (
            ctx.emit.scalar(-3.0),
            ctx.emit.scalar(3.0),
            ctx.emit.scalar(0.5),
        );
        let third = ctx.emit.scale(x, 1.0 / 3.0);
        let ramp = ctx.emit.add(&third, &half);
        let high = ctx.emit.op("Greater", &[x, &plus3], vec![]);
        let upper = ctx.emit.op("Where", &[&high, &one, &ramp], vec![]);
        let low = ctx.emit.op("Less", &[x, &minus3], vec![]);
        let slope = ctx.emit.op("Where", &[&low, &zero, &upper], vec![]);
        Ok(ctx.emit.mul(dy, &slope))
    })
}

/// Clip: dy strictly between the bounds (constant inputs `min`/`max`, either optional).
pub(super) fn clip(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    g.only_active(ctx, &[0], "a bound")?;
    g.unary(ctx, |ctx, x, dy| {
        let (lo, hi) = (g.input(1), g.input(2));
        let mut masks = Vec::new();
        if !lo.is_empty() {
            masks.push(ctx.emit.op("Greater", &[x, lo], vec![]));
        }
        if !hi.is_empty() {
            masks.push(ctx.emit.op("Less", &[x, hi], vec![]));
        }
        let inside = match masks.len() {
            2 => Some(ctx.emit.op("And", &[&masks[0], &masks[1]], vec![])),
            _ => masks.pop(),
        };
        Ok(match inside {
            Some(mask) => {
                let zero = ctx.emit.scalar(0.0);
                ctx.emit.op("Where", &[&mask, dy, &zero], vec![])
            }
            None => dy.to_string(),
        })
    })
}

/// Softmax along one axis (opset 13 semantics): Y · (dy − Σ_axis dy·Y).
pub(super) fn softmax(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    g.unary(ctx, |ctx, _, dy| {
        let y = g.output(0);
        let rank = ctx.shape(y)?.len();
        let a = axis(g, g.node.attr_int("axis").unwrap_or(-1), rank)?;
        let weighted = ctx.emit.mul(dy, y);
        let total = ctx.emit.reduce("ReduceSum", &weighted, &[a as i64], true);
        let centred = ctx.emit.sub(dy, &total);
        Ok(ctx.emit.mul(y, &centred))
    })
}
