//! Ops that move values without arithmetic: their gradients move the output gradient
//! back (Concat ↔ Split/Slice, Slice ↔ Pad, Reshape/Transpose inverted) or, for
//! nearest upsampling, sum the copies (Reshape + ReduceSum).

use super::{Ctx, Grad, Grads, axis};
use crate::onnx::AttributeProto;
use crate::zsq::ZsqError;

/// Concat: each input's slice of the output gradient (one Split, or a Slice when only
/// one input depends on the image).
pub(super) fn concat(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    let mut dx = g.none();
    let dy = g.dy0()?;
    let ys = ctx.shape(g.output(0))?;
    let a = axis(g, g.node.attr_int("axis").unwrap_or(0), ys.len())?;
    let mut sizes = Vec::with_capacity(g.node.input.len());
    for input in &g.node.input {
        sizes.push(ctx.shape(input)?[a] as i64);
    }
    let active: Vec<usize> = (0..g.node.input.len())
        .filter(|&i| ctx.active(g.input(i)))
        .collect();
    match active.as_slice() {
        [] => {}
        &[only] => {
            let start: i64 = sizes[..only].iter().sum();
            dx[only] = Some(slice_axis(ctx, dy, a, start, start + sizes[only]));
        }
        _ => {
            let split = ctx.emit.ints(&sizes);
            let parts = ctx.emit.op_n(
                "Split",
                &[dy, &split],
                sizes.len(),
                vec![AttributeProto::int("axis", a as i64)],
            );
            for slot in active {
                dx[slot] = Some(parts[slot].clone());
            }
        }
    }
    Ok(dx)
}

/// Split: the outputs' gradients concatenated (zeros for outputs nothing used).
pub(super) fn split(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    g.only_active(ctx, &[0], "split sizes")?;
    g.first_input(ctx, |ctx, x| {
        let rank = ctx.shape(x)?.len();
        let a = axis(g, g.node.attr_int("axis").unwrap_or(0), rank)?;
        let mut parts = Vec::with_capacity(g.node.output.len());
        for (slot, dy) in g.dy.iter().enumerate() {
            parts.push(match dy {
                Some(d) => d.clone(),
                None => {
                    let shape = ctx.shape(g.output(slot))?;
                    ctx.emit.zeros(&shape)
                }
            });
        }
        let inputs: Vec<&str> = parts.iter().map(String::as_str).collect();
        Ok(ctx.emit.op(
            "Concat",
            &inputs,
            vec![AttributeProto::int("axis", a as i64)],
        ))
    })
}

/// Slice (positive steps): the gradient is scattered back into a tensor of zeros. Steps
/// above 1 interleave zeros (Unsqueeze, Concat with zeros, Reshape); then a Pad puts
/// the block at its offset.
pub(super) fn slice(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    g.only_active(ctx, &[0], "starts, ends, axes or steps")?;
    g.unary(ctx, |ctx, x, dy| {
        let xs = ctx.shape(x)?;
        let ys = ctx.shape(g.output(0))?;
        let constant = |slot: usize| -> Result<Option<Vec<i64>>, ZsqError> {
            match g.input(slot) {
                "" => Ok(None),
                name => ctx
                    .ints(name)
                    .map(Some)
                    .ok_or_else(|| g.fail(format!("its input '{name}' is not a constant"))),
            }
        };
        let starts = constant(1)?.unwrap_or_default();
        let axes = constant(3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = constant(4)?.unwrap_or_else(|| vec![1; starts.len()]);
        if axes.len() != starts.len() || steps.len() != starts.len() {
            return Err(g.fail("starts, axes and steps differ in length"));
        }
        if ys.iter().product::<usize>() == 0 {
            return Ok(ctx.emit.zeros(&xs));
        }
        let mut offsets = vec![0usize; xs.len()];
        let mut current = dy.to_string();
        let mut shape = ys.clone();
        for ((&start, &ax), &step) in starts.iter().zip(&axes).zip(&steps) {
            let a = axis(g, ax, xs.len())?;
            if step < 1 {
                return Err(g.fail(format!(
                    "step {step} on axis {a}: only positive steps are supported"
                )));
            }
            let dim = xs[a] as i64;
            let start = if start < 0 { start + dim } else { start }.clamp(0, dim) as usize;
            offsets[a] = start;
            let step = step as usize;
            if step > 1 {
                let n = shape[a];
                let axes_after = ctx.emit.ints(&[a as i64 + 1]);
                let column = ctx.emit.op("Unsqueeze", &[&current, &axes_after], vec![]);
                let mut gap = shape.clone();
                gap.insert(a + 1, step - 1);
                let zeros = ctx.emit.zeros(&gap);
                let spaced = ctx.emit.op(
                    "Concat",
                    &[&column, &zeros],
                    vec![AttributeProto::int("axis", a as i64 + 1)],
                );
                shape[a] = n * step;
                current = ctx.emit.reshape(&spaced, &shape);
                // The last block's trailing zeros may run past the input's end.
                let room = xs[a] - start;
                if shape[a] > room {
                    current = slice_axis(ctx, &current, a, 0, room as i64);
                    shape[a] = room;
                }
            }
        }
        let mut pads = vec![0i64; 2 * xs.len()];
        for a in 0..xs.len() {
            pads[a] = offsets[a] as i64;
            pads[xs.len() + a] = (xs[a] - offsets[a] - shape[a]) as i64;
        }
        Ok(if pads.iter().all(|&p| p == 0) {
            current
        } else {
            let pads = ctx.emit.ints(&pads);
            ctx.emit.op("Pad", &[&current, &pads], vec![])
        })
    })
}

/// Pad (constant mode): the gradient is the output gradient without the padding
/// (Slice), and with zeros where the forward Pad cropped (negative pads).
pub(super) fn pad(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    g.only_active(ctx, &[0], "pads, value or axes")?;
    g.unary(ctx, |ctx, x, dy| {
        let mode = g.node.attr_str("mode").unwrap_or("constant");
        if mode != "constant" {
            return Err(g.fail(format!("mode '{mode}': only constant padding is supported")));
        }
        let xs = ctx.shape(x)?;
        let rank = xs.len();
        let listed = ctx
            .ints(g.input(1))
            .ok_or_else(|| g.fail("its pads are not a constant"))?;
        let axes: Vec<usize> = match g.input(3) {
            "" => (0..rank).collect(),
            name => ctx
                .ints(name)
                .ok_or_else(|| g.fail("its axes are not a constant"))?
                .iter()
                .map(|&v| axis(g, v, rank))
                .collect::<Result<_, _>>()?,
        };
        if listed.len() != 2 * axes.len() {
            return Err(g.fail(format!("{} pads for {} axes", listed.len(), axes.len())));
        }
        let mut pads = vec![0i64; 2 * rank];
        for (i, &a) in axes.iter().enumerate() {
            pads[a] = listed[i];
            pads[rank + a] = listed[axes.len() + i];
        }
        let mut current = dy.to_string();
        let crops: Vec<i64> = pads.iter().map(|&p| (-p).max(0)).collect();
        if crops.iter().any(|&c| c > 0) {
            let crops = ctx.emit.ints(&crops);
            current = ctx.emit.op("Pad", &[&current, &crops], vec![]);
        }
        let sliced: Vec<usize> = (0..rank)
            .filter(|&a| pads[a] > 0 || pads[rank + a] > 0)
            .collect();
        if !sliced.is_empty() {
            let starts: Vec<i64> = sliced.iter().map(|&a| pads[a].max(0)).collect();
            let ends: Vec<i64> = sliced
                .iter()
                .zip(&starts)
                .map(|(&a, s)| s + xs[a] as i64)
                .collect();
            let axes: Vec<i64> = sliced.iter().map(|&a| a as i64).collect();
            let (starts, ends, axes) = (
                ctx.emit.ints(&starts),
                ctx.emit.ints(&ends),
                ctx.emit.ints(&axes),
            );
            current = ctx
                .emit
                .op("Slice", &[&current, &starts, &ends, &axes], vec![]);
        }
        Ok(current)
    })
}

/// Reshape, Flatten, Squeeze, Unsqueeze: the gradient takes the input's shape back.
pub(super) fn reshape(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    g.only_active(ctx, &[0], "a shape or axes")?;
    g.unary(ctx, |ctx, x, dy| {
        let xs = ctx.shape(x)?;
        Ok(ctx.emit.reshape(dy, &xs))
    })
}

/// Transpose: the inverse permutation.
pub(super) fn transpose(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    g.unary(ctx, |ctx, x, dy| {
        let rank = ctx.shape(x)?.len();
        let perm: Vec<usize> = match g.node.attr_ints("perm") {
            Some(p) => p
                .iter()
                .map(|&v| axis(g, v, rank))
                .collect::<Result<_, _>>()?,
            None => (0..rank).rev().collect(),
        };
        let mut inverse = vec![0i64; rank];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i as i64;
        }
        Ok(ctx.emit.op(
            "Transpose",
            &[dy],
            vec![AttributeProto::ints("perm", inverse)],
        ))
    })
}

/// Identity, and Dropout in inference mode: the gradient passes through.
pub(super) fn identity(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    if g.node.op_type() == "Dropout" && !g.input(2).is_empty() {
        let training = ctx.ints(g.input(2));
        if training.as_deref() != Some(&[0]) {
            return Err(g.fail("training_mode is not a constant false"));
        }
    }
    g.unary(ctx, |_, _, dy| Ok(dy.to_string()))
}

/// Resize that repeats each element k times per axis (nearest, integer
/// factors; checked on the values of the forward run): the gradient sums each k-block.
pub(super) fn resize(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    g.only_active(ctx, &[0], "roi, scales or sizes")?;
    g.unary(ctx, |ctx, x, dy| {
        let y = g.output(0);
        if !ctx.fwd.known.nearest_repeats.contains(y) {
            return Err(g.fail(format!(
                "only nearest upsampling by integer factors is supported; this one (mode={}, \
                 coordinate_transformation_mode={}) does not repeat its input",
                g.node.attr_str("mode").unwrap_or("nearest"),
                g.node
                    .attr_str("coordinate_transformation_mode")
                    .unwrap_or("half_pixel")
            )));
        }
        let xs = ctx.shape(x)?;
        let ys = ctx.shape(y)?;
        let mut blocks = Vec::new();
        let mut summed = Vec::new();
        for (&d, &e) in xs.iter().zip(&ys) {
            blocks.push(d);
            if e != d {
                summed.push(blocks.len() as i64);
                blocks.push(e / d);
            }
        }
        Ok(if summed.is_empty() {
            dy.to_string()
        } else {
            let split = ctx.emit.reshape(dy, &blocks);
            ctx.emit.reduce("ReduceSum", &split, &summed, false)
        })
    })
}

/// `value[start..end]` along `axis`.
fn slice_axis(ctx: &mut Ctx, value: &str, axis: usize, start: i64, end: i64) -> String {
    let (starts, ends, axes) = (
        ctx.emit.ints(&[start]),
        ctx.emit.ints(&[end]),
        ctx.emit.ints(&[axis as i64]),
    );
    ctx.emit
        .op("Slice", &[value, &starts, &ends, &axes], vec![])
}
