//! Conv: the gradient w.r.t. the input is a transposed convolution with the same
//! weights. At stride 1 it is emitted as a plain Conv with flipped, transposed
//! weights (ONNX Runtime's blocked NCHWc kernels apply to Conv, not ConvTranspose);
//! strided convolutions get a ConvTranspose with explicit pads and output_padding
//! (never `output_shape`: ONNX Runtime then puts the extra row first).

use ndarray::{Array4, ArrayD, Ix4};

use super::{Ctx, Grad, Grads};
use crate::onnx::{AttributeProto, NodeProto};
use crate::zsq::ZsqError;

/// Strides, dilations, kernel and resolved pads of a 2-D window op (Conv or a pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Window {
    pub(super) kernel: [usize; 2],
    pub(super) strides: [usize; 2],
    pub(super) dilations: [usize; 2],
    /// Padding before each spatial axis.
    pub(super) begin: [usize; 2],
    /// Padding after each spatial axis.
    pub(super) end: [usize; 2],
}

impl Window {
    /// Reads the attributes of `node`; `auto_pad` is resolved with the shapes the
    /// forward run produced (`x` input, `y` output, both N×C×H×W).
    pub(super) fn of(
        g: &Grad,
        node: &NodeProto,
        kernel: [usize; 2],
        x: &[usize],
        y: &[usize],
    ) -> Result<Window, ZsqError> {
        let pair = |name: &str| -> Result<[usize; 2], ZsqError> {
            match node.attr_ints(name) {
                None => Ok([1, 1]),
                Some(&[a, b]) if a > 0 && b > 0 => Ok([a as usize, b as usize]),
                Some(v) => Err(g.fail(format!("{name} {v:?} is not two positive numbers"))),
            }
        };
        let strides = pair("strides")?;
        let dilations = pair("dilations")?;
        let (mut begin, mut end) = ([0usize; 2], [0usize; 2]);
        match node.attr_str("auto_pad").unwrap_or("NOTSET") {
            "NOTSET" => {
                if let Some(p) = node.attr_ints("pads") {
                    let &[b0, b1, e0, e1] = p else {
                        return Err(g.fail(format!("pads {p:?} is not four numbers")));
                    };
                    if p.iter().any(|&v| v < 0) {
                        return Err(g.fail(format!("negative pads {p:?}")));
                    }
                    begin = [b0 as usize, b1 as usize];
                    end = [e0 as usize, e1 as usize];
                }
            }
            "VALID" => {}
            mode @ ("SAME_UPPER" | "SAME_LOWER") => {
                for i in 0..2 {
                    let span =
                        (y[2 + i].max(1) - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1;
                    let total = span.saturating_sub(x[2 + i]);
                    let small = total / 2;
                    let (b, e) = if mode == "SAME_UPPER" {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                    begin[i] = b;
                    end[i] = e;
                }
            }
            other => return Err(g.fail(format!("auto_pad {other} is not an ONNX mode"))),
        }
        Ok(Window {
            kernel,
            strides,
            dilations,
            begin,
            end,
        })
    }

    /// Pads and output_padding of the ConvTranspose that maps an output-sized
    /// gradient back onto the `x`-sized input: the rows past the input (the end
    /// padding, or a ceil-mode window hanging over the edge) are cropped, and rows
    /// no window reaches get output_padding (zero gradient).
    pub(super) fn transpose_pads(&self, x: &[usize], y: &[usize]) -> ([i64; 4], [i64; 2]) {
        let mut pads = [0i64; 4];
        let mut output_padding = [0i64; 2];
        for i in 0..2 {
            let reach = (y[2 + i] as i64 - 1) * self.strides[i] as i64
                + (self.dilations[i] * (self.kernel[i] - 1)) as i64
                + 1;
            let extra = reach - self.begin[i] as i64 - x[2 + i] as i64;
            pads[i] = self.begin[i] as i64;
            if extra >= 0 {
                pads[2 + i] = extra;
            } else {
                output_padding[i] = -extra;
            }
        }
        (pads, output_padding)
    }

    pub(super) fn attrs(&self) -> Vec<AttributeProto> {
        vec![
            AttributeProto::ints("kernel_shape", self.kernel.map(|k| k as i64)),
            AttributeProto::ints("strides", self.strides.map(|s| s as i64)),
            AttributeProto::ints("dilations", self.dilations.map(|d| d as i64)),
        ]
    }
}

pub(super) fn conv(ctx: &mut Ctx, g: &Grad) -> Result<Grads, ZsqError> {
    g.only_active(ctx, &[0], "weights or bias")?;
    g.unary(ctx, |ctx, x, dy| {
        let w = g.input(1);
        let xs = ctx.shape(x)?;
        let ys = ctx.shape(g.output(0))?;
        let ws = ctx.shape(w)?;
        if xs.len() != 4 || ws.len() != 4 {
            return Err(g.fail(format!(
                "only 2-D convolutions are supported (input shape {xs:?})"
            )));
        }
        let group = g.node.attr_int("group").unwrap_or(1);
        if group < 1 || ws[0] % group as usize != 0 {
            return Err(g.fail(format!("group {group} does not divide {} filters", ws[0])));
        }
        let win = Window::of(g, g.node, [ws[2], ws[3]], &xs, &ys)?;
        let group_attr = AttributeProto::int("group", group);

        // Stride 1: correlate with the flipped kernel, padded by d(k-1) - p.
        let conv_pads: Vec<i64> = (0..4)
            .map(|i| {
                let axis = i % 2;
                let p = if i < 2 {
                    win.begin[axis]
                } else {
                    win.end[axis]
                };
                (win.dilations[axis] * (win.kernel[axis] - 1)) as i64 - p as i64
            })
            .collect();
        if win.strides == [1, 1]
            && conv_pads.iter().all(|&p| p >= 0)
            && let Some(flipped) = flipped_weights(ctx, w, group as usize)
        {
            let mut attrs = win.attrs();
            attrs.push(AttributeProto::ints("pads", conv_pads));
            attrs.push(group_attr);
            return Ok(ctx.emit.op("Conv", &[dy, &flipped], attrs));
        }
        let (pads, output_padding) = win.transpose_pads(&xs, &ys);
        let mut attrs = win.attrs();
        attrs.push(AttributeProto::ints("pads", pads));
        attrs.push(AttributeProto::ints("output_padding", output_padding));
        attrs.push(group_attr);
        Ok(ctx.emit.op("ConvTranspose", &[dy, w], attrs))
    })
}

/// W [Co, Ci/G, kh, kw] → W' [Ci, Co/G, kh, kw] with W'[g·Cig + i, j] = flip(W[g·Cog + j, i]):
/// the weights of the stride-1 Conv that computes the input gradient. `None` when the
/// weights are not a constant we can read (the ConvTranspose rule takes them as they are).
fn flipped_weights(ctx: &mut Ctx, w: &str, group: usize) -> Option<String> {
    if let Some(name) = ctx.flipped_weights.get(w) {
        return Some(name.clone());
    }
    let weights = ctx.floats(w)?.into_dimensionality::<Ix4>().ok()?;
    let (co, cig, kh, kw) = weights.dim();
    let cog = co / group;
    let flipped = Array4::from_shape_fn((cig * group, cog, kh, kw), |(i, j, a, b)| {
        let (grp, i) = (i / cig, i % cig);
        weights[(grp * cog + j, i, kh - 1 - a, kw - 1 - b)]
    });
    let name = ctx
        .emit
        .tensor("flipped_weights", &ArrayD::from(flipped.into_dyn()));
    ctx.flipped_weights.insert(w.to_string(), name.clone());
    Some(name)
}
