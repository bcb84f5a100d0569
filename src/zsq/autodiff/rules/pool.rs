//! Pooling and averaging: MaxPool routes each output's gradient to its argmax
//! (Indices + ScatterElements with reduction=add, so overlapping windows that pick the
//! same input accumulate); AveragePool spreads it evenly over the window (a depthwise
//! ConvTranspose with a kernel of ones, after dividing by each window's count);
//! GlobalAveragePool and ReduceMean broadcast it back.

use ndarray::{Array2, ArrayD};

use super::conv::Window;
use super::{Ctx, Grad, Grads, axis};
use crate::onnx::AttributeProto;
use crate::zsq::ZsqError;

pub(super) fn max_pool(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    g.unary(ctx, |ctx, x, dy| {
        if g.node.attr_int("storage_order").unwrap_or(0) != 0 {
            return Err(g.fail("storage_order=1 (column-major Indices) is not supported"));
        }
        let xs = ctx.shape(x)?;
        let ys = ctx.shape(g.output(0))?;
        // Indices are flat over N·C·H·W (row-major), as the ONNX spec says.
        let indices = match g.node.output.get(1).filter(|o| !o.is_empty()) {
            Some(existing) => existing.clone(),
            None => {
                let name = ctx.emit.fresh(&format!("{}/Indices", g.name()));
                ctx.pool_indices.insert(g.index, name.clone());
                name
            }
        };
        let x_len: usize = xs.iter().product();
        let y_len: usize = ys.iter().product();
        let zeros = ctx.emit.zeros(&[x_len]);
        let flat_dy = ctx.emit.reshape(dy, &[y_len]);
        let flat_indices = ctx.emit.reshape(&indices, &[y_len]);
        let scattered = ctx.emit.op(
            "ScatterElements",
            &[&zeros, &flat_indices, &flat_dy],
            vec![
                AttributeProto::int("axis", 0),
                AttributeProto::string("reduction", "add"),
            ],
        );
        Ok(ctx.emit.reshape(&scattered, &xs))
    })
}

pub(super) fn average_pool(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    g.unary(ctx, |ctx, x, dy| {
        let xs = ctx.shape(x)?;
        let ys = ctx.shape(g.output(0))?;
        let kernel = match g.node.attr_ints("kernel_shape") {
            Some(&[a, b]) if a > 0 && b > 0 && xs.len() == 4 => [a as usize, b as usize],
            other => {
                return Err(g.fail(format!(
                    "only 2-D pooling is supported (kernel_shape {other:?}, input {xs:?})"
                )));
            }
        };
        let win = Window::of(g, g.node, kernel, &xs, &ys)?;
        if win.dilations != [1, 1] {
            return Err(g.fail("dilated average pooling is not supported"));
        }
        let include_pad = g.node.attr_int("count_include_pad").unwrap_or(0) != 0;
        // How many inputs each output averaged, per axis (the count is a product of the
        // two), computed as ONNX Runtime does: windows are clipped to the padded input,
        // and to the input itself unless padding counts.
        let counts = |i: usize| -> Vec<f32> {
            (0..ys[2 + i])
                .map(|o| {
                    let start = (o * win.strides[i]) as i64 - win.begin[i] as i64;
                    let end = (start + kernel[i] as i64).min((xs[2 + i] + win.end[i]) as i64);
                    let n = if include_pad {
                        end - start
                    } else {
                        end.min(xs[2 + i] as i64) - start.max(0)
                    };
                    n.max(1) as f32
                })
                .collect()
        };
        let (rows, cols) = (counts(0), counts(1));
        let inverse =
            Array2::from_shape_fn((rows.len(), cols.len()), |(r, c)| 1.0 / (rows[r] * cols[c]));
        let first = inverse[(0, 0)];
        let weighted = if inverse.iter().all(|&v| v == first) {
            ctx.emit.scale(dy, first)
        } else {
            let inv = ctx.emit.tensor("inverse_counts", &inverse.into_dyn());
            ctx.emit.mul(dy, &inv)
        };
        let channels = xs[1];
        let ones = ArrayD::from_elem(vec![channels, 1, kernel[0], kernel[1]], 1.0f32);
        let ones = ctx.emit.tensor("ones", &ones);
        let (pads, output_padding) = win.transpose_pads(&xs, &ys);
        let mut attrs = win.attrs();
        attrs.push(AttributeProto::ints("pads", pads));
        attrs.push(AttributeProto::ints("output_padding", output_padding));
        attrs.push(AttributeProto::int("group", channels as i64));
        Ok(ctx.emit.op("ConvTranspose", &[&weighted, &ones], attrs))
    })
}

pub(super) fn global_average_pool(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    g.unary(ctx, |ctx, x, dy| {
        let xs = ctx.shape(x)?;
        let area: usize = xs.iter().skip(2).product();
        Ok(spread(ctx, dy, 1.0 / area.max(1) as f32, &xs))
    })
}

/// ReduceMean: the gradient is spread evenly over the reduced axes.
pub(super) fn reduce_mean(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    g.only_active(ctx, &[0], "axes")?;
    g.unary(ctx, |ctx, x, dy| {
        let xs = ctx.shape(x)?;
        let listed = match g.node.attr_ints("axes") {
            Some(a) => Some(a.to_vec()),
            None if !g.input(1).is_empty() => Some(
                ctx.ints(g.input(1))
                    .ok_or_else(|| g.fail("its axes are not a constant"))?,
            ),
            None => None,
        };
        let axes: Vec<usize> = match listed {
            Some(a) if !a.is_empty() => a
                .iter()
                .map(|&v| axis(g, v, xs.len()))
                .collect::<Result<_, _>>()?,
            _ if g.node.attr_int("noop_with_empty_axes") == Some(1) => {
                return Ok(dy.to_string());
            }
            _ => (0..xs.len()).collect(),
        };
        let count: usize = axes.iter().map(|&a| xs[a]).product();
        // With keepdims=0 the reduced axes are gone: put them back as 1s first.
        let kept: Vec<usize> = (0..xs.len())
            .map(|i| if axes.contains(&i) { 1 } else { xs[i] })
            .collect();
        let dy = ctx.emit.reshape(dy, &kept);
        Ok(spread(ctx, &dy, 1.0 / count.max(1) as f32, &xs))
    })
}

/// `dy` (size-1 on the averaged axes) times `factor`, broadcast to `shape`.
fn spread(ctx: &mut Ctx, dy: &str, factor: f32, shape: &[usize]) -> String {
    let scaled = ctx.emit.scale(dy, factor);
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let dims = ctx.emit.ints(&dims);
    ctx.emit.op("Expand", &[&scaled, &dims], vec![])
}
