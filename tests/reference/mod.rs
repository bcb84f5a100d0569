//! A float64 reference of the forward ops the gradient rules cover, and of the
//! BN-statistics loss: the ground truth of the gradient checks.
//!
//! float32 finite differences are useless for checking gradients (4–40 % error on
//! these graphs), and ONNX Runtime has no float64 Conv, so the checks differentiate
//! this interpreter numerically (central differences, h ≈ 1e-5) and compare with the
//! gradient graph ONNX Runtime runs in float32. It is written for clarity, not speed,
//! and follows the ONNX operator specs (and ONNX Runtime where the spec leaves room,
//! e.g. AveragePool counts in ceil mode).

#![allow(dead_code)]

use std::collections::HashMap;

use ndarray::{Array4, ArrayD, Axis, IxDyn, Slice, s};
use thermalzsq::onnx::{DataType, Model, NodeProto, TensorProto};
use thermalzsq::zsq::autodiff::{LossSpec, STD_EPSILON, Statistics};
use thermalzsq::zsq::bn::BnLayer;

#[derive(Debug, Clone)]
pub enum Value {
    F(ArrayD<f64>),
    I(ArrayD<i64>),
}

impl Value {
    pub fn f(&self) -> &ArrayD<f64> {
        match self {
            Value::F(a) => a,
            Value::I(_) => panic!("expected a float tensor"),
        }
    }

    pub fn ints(&self) -> Vec<i64> {
        match self {
            Value::I(a) => a.iter().copied().collect(),
            Value::F(a) => a.iter().map(|&v| v as i64).collect(),
        }
    }

    pub fn floats(&self) -> Vec<f64> {
        match self {
            Value::F(a) => a.iter().copied().collect(),
            Value::I(a) => a.iter().map(|&v| v as f64).collect(),
        }
    }
}

fn tensor_value(t: &TensorProto) -> Value {
    match t.data_type() {
        Some(DataType::Float | DataType::Double | DataType::Float16) => {
            Value::F(t.to_array::<f64>().expect("float tensor"))
        }
        _ => Value::I(t.to_array::<i64>().expect("integer tensor")),
    }
}

/// Evaluates the nodes of `graph` needed for `wanted`, in float64.
pub struct Reference<'m> {
    input: String,
    /// Nodes needed, in order.
    nodes: Vec<&'m NodeProto>,
    constants: HashMap<String, Value>,
}

impl<'m> Reference<'m> {
    pub fn new(model: &'m Model, input: &str, wanted: &[&str]) -> Self {
        let graph = model.graph();
        let needed = graph.view().ancestors(wanted);
        let nodes = graph
            .node
            .iter()
            .zip(needed)
            .filter(|(_, n)| *n)
            .map(|(node, _)| node)
            .collect();
        let constants = graph
            .initializer
            .iter()
            .map(|t| (t.name().to_string(), tensor_value(t)))
            .collect();
        Reference {
            input: input.to_string(),
            nodes,
            constants,
        }
    }

    pub fn run(&self, x: &ArrayD<f64>) -> HashMap<String, Value> {
        let mut values: HashMap<String, Value> = self.constants.clone();
        values.insert(self.input.clone(), Value::F(x.clone()));
        for node in &self.nodes {
            let inputs: Vec<Option<&Value>> = node
                .input
                .iter()
                .map(|i| if i.is_empty() { None } else { values.get(i) })
                .collect();
            let outputs = eval(node, &inputs);
            for (name, v) in node.output.iter().zip(outputs) {
                values.insert(name.clone(), v);
            }
        }
        values
    }
}

fn attr_ints(node: &NodeProto, name: &str, default: &[i64]) -> Vec<i64> {
    node.attr_ints(name)
        .map_or_else(|| default.to_vec(), <[i64]>::to_vec)
}

fn eval(node: &NodeProto, inputs: &[Option<&Value>]) -> Vec<Value> {
    let x = || inputs[0].expect("input 0").f();
    let input = |i: usize| inputs.get(i).copied().flatten();
    let unary = |f: &dyn Fn(f64) -> f64| vec![Value::F(x().mapv(f))];
    match node.op_type() {
        "Constant" => vec![tensor_value(
            node.attr_tensor("value").expect("Constant value"),
        )],
        "Identity" | "Dropout" => vec![inputs[0].expect("input").clone()],
        "Relu" => unary(&|v| v.max(0.0)),
        "LeakyRelu" => {
            let a = f64::from(node.attr_float("alpha").unwrap_or(0.01));
            unary(&|v| if v > 0.0 { v } else { a * v })
        }
        "Sigmoid" => unary(&|v| 1.0 / (1.0 + (-v).exp())),
        "Tanh" => unary(&f64::tanh),
        "Neg" => unary(&|v| -v),
        "HardSigmoid" => {
            let a = f64::from(node.attr_float("alpha").unwrap_or(0.2));
            let b = f64::from(node.attr_float("beta").unwrap_or(0.5));
            unary(&|v| (a * v + b).clamp(0.0, 1.0))
        }
        "HardSwish" => unary(&|v| v * (v / 6.0 + 0.5).clamp(0.0, 1.0)),
        "Clip" => {
            let lo = input(1).map_or(f64::NEG_INFINITY, |v| v.floats()[0]);
            let hi = input(2).map_or(f64::INFINITY, |v| v.floats()[0]);
            unary(&|v| v.max(lo).min(hi))
        }
        "Add" | "Sub" | "Mul" | "Div" => {
            let (a, b) = (x(), input(1).expect("B").f());
            vec![Value::F(match node.op_type() {
                "Add" => a + b,
                "Sub" => a - b,
                "Mul" => a * b,
                _ => a / b,
            })]
        }
        "BatchNormalization" => {
            let p = |i: usize| input(i).expect("BN parameter").floats();
            let (gamma, beta, mean, var) = (p(1), p(2), p(3), p(4));
            let eps = f64::from(node.attr_float("epsilon").unwrap_or(1e-5));
            let mut y = x().clone();
            for (c, mut plane) in y.axis_iter_mut(Axis(1)).enumerate() {
                let k = gamma[c] / (var[c] + eps).sqrt();
                plane.mapv_inplace(|v| (v - mean[c]) * k + beta[c]);
            }
            vec![Value::F(y)]
        }
        "Conv" => vec![Value::F(conv(
            node,
            x(),
            input(1).expect("W").f(),
            input(2),
        ))],
        "MaxPool" => vec![Value::F(pool(node, x(), true))],
        "AveragePool" => vec![Value::F(pool(node, x(), false))],
        "GlobalAveragePool" => {
            let m = x()
                .mean_axis(Axis(3))
                .expect("W")
                .mean_axis(Axis(2))
                .expect("H");
            let shape = m.shape().to_vec();
            vec![Value::F(
                m.into_shape_with_order(IxDyn(&[shape[0], shape[1], 1, 1]))
                    .expect("reshape"),
            )]
        }
        "ReduceMean" => {
            let rank = x().ndim();
            let axes: Vec<usize> = node
                .attr_ints("axes")
                .map(<[i64]>::to_vec)
                .or_else(|| input(1).map(Value::ints))
                .unwrap_or_else(|| (0..rank as i64).collect())
                .iter()
                .map(|&a| norm_axis(a, rank))
                .collect();
            let keep = node.attr_int("keepdims").unwrap_or(1) != 0;
            let mut y = x().clone();
            let mut sorted = axes.clone();
            sorted.sort_unstable_by(|a, b| b.cmp(a));
            for a in sorted {
                y = y.mean_axis(Axis(a)).expect("mean");
                if keep {
                    y.insert_axis_inplace(Axis(a));
                }
            }
            vec![Value::F(y)]
        }
        "Softmax" => {
            let rank = x().ndim();
            let a = norm_axis(node.attr_int("axis").unwrap_or(-1), rank);
            let mut y = x().clone();
            for mut lane in y.lanes_mut(Axis(a)) {
                let m = lane.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                lane.mapv_inplace(|v| (v - m).exp());
                let s = lane.sum();
                lane.mapv_inplace(|v| v / s);
            }
            vec![Value::F(y)]
        }
        "MatMul" => vec![Value::F(matmul(x(), input(1).expect("B").f()))],
        "Concat" => {
            let rank = match inputs[0].expect("input") {
                Value::F(a) => a.ndim(),
                Value::I(a) => a.ndim(),
            };
            let a = Axis(norm_axis(node.attr_int("axis").expect("axis"), rank));
            match inputs[0].expect("input") {
                Value::F(_) => {
                    let views: Vec<_> = inputs
                        .iter()
                        .map(|v| v.expect("input").f().view())
                        .collect();
                    vec![Value::F(ndarray::concatenate(a, &views).expect("concat"))]
                }
                Value::I(_) => {
                    let all: Vec<i64> = inputs
                        .iter()
                        .flat_map(|v| v.expect("input").ints())
                        .collect();
                    vec![Value::I(
                        ArrayD::from_shape_vec(IxDyn(&[all.len()]), all).expect("ints"),
                    )]
                }
            }
        }
        "Split" => {
            let xa = x();
            let a = norm_axis(node.attr_int("axis").unwrap_or(0), xa.ndim());
            let n = node.output.len();
            let sizes: Vec<usize> = match input(1) {
                Some(v) => v.ints().iter().map(|&s| s as usize).collect(),
                None => vec![xa.shape()[a] / n; n],
            };
            let mut start = 0;
            sizes
                .iter()
                .map(|&len| {
                    let part = xa
                        .slice_axis(Axis(a), Slice::from(start..start + len))
                        .to_owned();
                    start += len;
                    Value::F(part)
                })
                .collect()
        }
        "Slice" => vec![Value::F(slice(x(), inputs))],
        "Pad" => vec![Value::F(pad(x(), inputs))],
        "Reshape" => {
            let xa = x();
            let mut shape: Vec<i64> = input(1).expect("shape").ints();
            for (i, d) in shape.iter_mut().enumerate() {
                if *d == 0 {
                    *d = xa.shape()[i] as i64;
                }
            }
            vec![Value::F(reshape(xa, &shape))]
        }
        "Flatten" => {
            let xa = x();
            let a = norm_axis(node.attr_int("axis").unwrap_or(1), xa.ndim() + 1);
            let outer: usize = xa.shape()[..a].iter().product();
            vec![Value::F(reshape(xa, &[outer as i64, -1]))]
        }
        "Squeeze" | "Unsqueeze" => {
            let axes = input(1).map(Value::ints).unwrap_or_default();
            let mut shape: Vec<usize> = match inputs[0].expect("input") {
                Value::F(a) => a.shape().to_vec(),
                Value::I(a) => a.shape().to_vec(),
            };
            if node.op_type() == "Squeeze" {
                let rank = shape.len();
                let mut drop: Vec<usize> = axes.iter().map(|&a| norm_axis(a, rank)).collect();
                drop.sort_unstable_by(|a, b| b.cmp(a));
                for a in drop {
                    shape.remove(a);
                }
            } else {
                let rank = shape.len() + axes.len();
                let mut add: Vec<usize> = axes.iter().map(|&a| norm_axis(a, rank)).collect();
                add.sort_unstable();
                for a in add {
                    shape.insert(a, 1);
                }
            }
            match inputs[0].expect("input") {
                // Shape arithmetic (e.g. an attention's view sizes) in int64.
                Value::I(a) => vec![Value::I(
                    a.clone()
                        .into_shape_with_order(IxDyn(&shape))
                        .expect("unsqueezed ints"),
                )],
                Value::F(a) => {
                    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
                    vec![Value::F(reshape(a, &dims))]
                }
            }
        }
        "Transpose" => {
            let xa = x();
            let perm: Vec<usize> = attr_ints(
                node,
                "perm",
                &(0..xa.ndim() as i64).rev().collect::<Vec<_>>(),
            )
            .iter()
            .map(|&p| p as usize)
            .collect();
            vec![Value::F(
                xa.clone()
                    .permuted_axes(perm)
                    .as_standard_layout()
                    .to_owned(),
            )]
        }
        "Resize" | "Upsample" => {
            let xa = x();
            let out: Vec<usize> = match (input(2), input(3)) {
                (_, Some(sizes)) => sizes.ints().iter().map(|&s| s as usize).collect(),
                (Some(scales), _) if !scales.floats().is_empty() => scales
                    .floats()
                    .iter()
                    .zip(xa.shape())
                    .map(|(s, &d)| (s * d as f64).floor() as usize)
                    .collect(),
                _ => input(1)
                    .expect("scales")
                    .floats()
                    .iter()
                    .zip(xa.shape())
                    .map(|(s, &d)| (s * d as f64) as usize)
                    .collect(),
            };
            assert_eq!(node.attr_str("mode").unwrap_or("nearest"), "nearest");
            let mut y = xa.clone();
            for (a, (&d, &o)) in xa.shape().iter().zip(&out).enumerate() {
                assert_eq!(o % d, 0, "the reference only upsamples by integer factors");
                let picks: Vec<usize> = (0..o).map(|i| i / (o / d)).collect();
                y = y.select(Axis(a), &picks);
            }
            vec![Value::F(y)]
        }
        other => panic!("the float64 reference has no op {other}"),
    }
}

fn norm_axis(a: i64, rank: usize) -> usize {
    if a < 0 {
        (a + rank as i64) as usize
    } else {
        a as usize
    }
}

fn reshape(x: &ArrayD<f64>, shape: &[i64]) -> ArrayD<f64> {
    let known: i64 = shape.iter().filter(|&&d| d >= 0).product();
    let dims: Vec<usize> = shape
        .iter()
        .map(|&d| {
            if d < 0 {
                x.len() / known as usize
            } else {
                d as usize
            }
        })
        .collect();
    x.as_standard_layout()
        .to_owned()
        .into_shape_with_order(IxDyn(&dims))
        .expect("reshape")
}

/// Pads (top, left, bottom, right) for a window op: explicit or from auto_pad.
fn window_pads(
    node: &NodeProto,
    h: usize,
    w: usize,
    k: [usize; 2],
    s: [usize; 2],
    d: [usize; 2],
) -> [usize; 4] {
    match node.attr_str("auto_pad").unwrap_or("NOTSET") {
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut p = [0; 4];
            for (i, len) in [h, w].into_iter().enumerate() {
                let out = len.div_ceil(s[i]);
                let total = ((out - 1) * s[i] + d[i] * (k[i] - 1) + 1).saturating_sub(len);
                let small = total / 2;
                let upper = node.attr_str("auto_pad") == Some("SAME_UPPER");
                p[i] = if upper { small } else { total - small };
                p[i + 2] = total - p[i];
            }
            p
        }
        "VALID" => [0; 4],
        _ => {
            let p = attr_ints(node, "pads", &[0, 0, 0, 0]);
            [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]
        }
    }
}

fn pair(node: &NodeProto, name: &str) -> [usize; 2] {
    let v = attr_ints(node, name, &[1, 1]);
    [v[0] as usize, v[1] as usize]
}

fn conv(node: &NodeProto, x: &ArrayD<f64>, w: &ArrayD<f64>, bias: Option<&Value>) -> ArrayD<f64> {
    let x = x.as_standard_layout();
    let w = w.as_standard_layout();
    let (xs, ws) = (x.shape(), w.shape());
    let (n, ci, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
    let (co, cig, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    let group = node.attr_int("group").unwrap_or(1) as usize;
    let (s, d) = (pair(node, "strides"), pair(node, "dilations"));
    let p = window_pads(node, h, wd, [kh, kw], s, d);
    let oh = (h + p[0] + p[2] - d[0] * (kh - 1) - 1) / s[0] + 1;
    let ow = (wd + p[1] + p[3] - d[1] * (kw - 1) - 1) / s[1] + 1;
    let b = bias.map(Value::floats);
    let cog = co / group;
    let (xv, wv) = (
        x.as_slice().expect("contiguous"),
        w.as_slice().expect("contiguous"),
    );
    let mut y = vec![0.0f64; n * co * oh * ow];
    for img in 0..n {
        for o in 0..co {
            let out = &mut y[(img * co + o) * oh * ow..][..oh * ow];
            if let Some(b) = &b {
                out.iter_mut().for_each(|v| *v = b[o]);
            }
            let grp = o / cog;
            for c in 0..cig {
                let plane = &xv[(img * ci + grp * cig + c) * h * wd..][..h * wd];
                for a in 0..kh {
                    for e in 0..kw {
                        let k = wv[((o * cig + c) * kh + a) * kw + e];
                        for i in 0..oh {
                            let r = (i * s[0] + a * d[0]) as i64 - p[0] as i64;
                            if r < 0 || r >= h as i64 {
                                continue;
                            }
                            let row = &plane[r as usize * wd..][..wd];
                            for (j, v) in out[i * ow..][..ow].iter_mut().enumerate() {
                                let q = (j * s[1] + e * d[1]) as i64 - p[1] as i64;
                                if q >= 0 && q < wd as i64 {
                                    *v += k * row[q as usize];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(&[n, co, oh, ow]), y).expect("conv output")
}

fn pool(node: &NodeProto, x: &ArrayD<f64>, max: bool) -> ArrayD<f64> {
    let x = x
        .view()
        .into_dimensionality::<ndarray::Ix4>()
        .expect("NCHW");
    let (n, c, h, w) = x.dim();
    let k = attr_ints(node, "kernel_shape", &[]);
    let k = [k[0] as usize, k[1] as usize];
    let (s, d) = (pair(node, "strides"), pair(node, "dilations"));
    let p = window_pads(node, h, w, k, s, d);
    let ceil = node.attr_int("ceil_mode").unwrap_or(0) != 0;
    let out = |len: usize, i: usize| {
        let span = len + p[i] + p[i + 2] - d[i] * (k[i] - 1) - 1;
        let mut o = if ceil {
            span.div_ceil(s[i])
        } else {
            span / s[i]
        } + 1;
        // A last window that would start in the end padding is dropped (PyTorch, ORT).
        if ceil && (o - 1) * s[i] >= len + p[i] {
            o -= 1;
        }
        o
    };
    let (oh, ow) = (out(h, 0), out(w, 1));
    let include_pad = node.attr_int("count_include_pad").unwrap_or(0) != 0;
    let y = Array4::from_shape_fn((n, c, oh, ow), |(b, ch, i, j)| {
        let hs = (i * s[0]) as i64 - p[0] as i64;
        let ws = (j * s[1]) as i64 - p[1] as i64;
        if max {
            let mut m = f64::NEG_INFINITY;
            for a in 0..k[0] {
                for e in 0..k[1] {
                    let (r, q) = (hs + (a * d[0]) as i64, ws + (e * d[1]) as i64);
                    if r >= 0 && r < h as i64 && q >= 0 && q < w as i64 {
                        m = m.max(x[(b, ch, r as usize, q as usize)]);
                    }
                }
            }
            m
        } else {
            let he = (hs + k[0] as i64).min((h + p[2]) as i64);
            let we = (ws + k[1] as i64).min((w + p[3]) as i64);
            let padded = (he - hs) * (we - ws);
            let (h0, h1) = (hs.max(0), he.min(h as i64));
            let (w0, w1) = (ws.max(0), we.min(w as i64));
            let mut sum = 0.0;
            for r in h0..h1 {
                for q in w0..w1 {
                    sum += x[(b, ch, r as usize, q as usize)];
                }
            }
            let count = if include_pad {
                padded
            } else {
                (h1 - h0) * (w1 - w0)
            };
            sum / count as f64
        }
    });
    y.into_dyn()
}

fn slice(x: &ArrayD<f64>, inputs: &[Option<&Value>]) -> ArrayD<f64> {
    let get = |i: usize| inputs.get(i).copied().flatten().map(Value::ints);
    let starts = get(1).expect("starts");
    let ends = get(2).expect("ends");
    let axes = get(3).unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = get(4).unwrap_or_else(|| vec![1; starts.len()]);
    let mut y = x.view();
    for i in 0..starts.len() {
        let a = norm_axis(axes[i], x.ndim());
        let dim = x.shape()[a] as i64;
        let fix = |v: i64| if v < 0 { v + dim } else { v }.clamp(0, dim);
        let (st, en) = (fix(starts[i]), fix(ends[i]));
        assert!(steps[i] > 0);
        y.slice_axis_inplace(
            Axis(a),
            Slice::new(st as isize, Some(en.max(st) as isize), steps[i] as isize),
        );
    }
    y.to_owned()
}

fn pad(x: &ArrayD<f64>, inputs: &[Option<&Value>]) -> ArrayD<f64> {
    let rank = x.ndim();
    let listed = inputs[1].expect("pads").ints();
    let value = inputs
        .get(2)
        .copied()
        .flatten()
        .map_or(0.0, |v| v.floats()[0]);
    let axes: Vec<usize> = inputs
        .get(3)
        .copied()
        .flatten()
        .map(|v| v.ints().iter().map(|&a| norm_axis(a, rank)).collect())
        .unwrap_or_else(|| (0..rank).collect());
    let mut pads = vec![0i64; 2 * rank];
    for (i, &a) in axes.iter().enumerate() {
        pads[a] = listed[i];
        pads[rank + a] = listed[axes.len() + i];
    }
    let out: Vec<usize> = (0..rank)
        .map(|a| (x.shape()[a] as i64 + pads[a] + pads[rank + a]) as usize)
        .collect();
    ArrayD::from_shape_fn(IxDyn(&out), |idx| {
        let mut src = Vec::with_capacity(rank);
        for a in 0..rank {
            let i = idx[a] as i64 - pads[a];
            if i < 0 || i >= x.shape()[a] as i64 {
                return value;
            }
            src.push(i as usize);
        }
        x[IxDyn(&src)]
    })
}

fn matmul(a: &ArrayD<f64>, b: &ArrayD<f64>) -> ArrayD<f64> {
    let (ra, rb) = (a.ndim(), b.ndim());
    let rank = ra.max(rb);
    let pad = |x: &ArrayD<f64>| {
        let mut shape = vec![1usize; rank - x.ndim()];
        shape.extend_from_slice(x.shape());
        x.as_standard_layout()
            .to_owned()
            .into_shape_with_order(IxDyn(&shape))
            .expect("reshape")
    };
    let (a, b) = (pad(a), pad(b));
    let (n, k, m) = (
        a.shape()[rank - 2],
        a.shape()[rank - 1],
        b.shape()[rank - 1],
    );
    let batch: Vec<usize> = (0..rank - 2)
        .map(|i| a.shape()[i].max(b.shape()[i]))
        .collect();
    let mut shape = batch.clone();
    shape.extend([n, m]);
    ArrayD::from_shape_fn(IxDyn(&shape), |idx| {
        let pick = |x: &ArrayD<f64>, r: usize, c: usize| {
            let mut i: Vec<usize> = (0..rank - 2)
                .map(|d| if x.shape()[d] == 1 { 0 } else { idx[d] })
                .collect();
            i.extend([r, c]);
            x[IxDyn(&i)]
        };
        (0..k)
            .map(|t| pick(&a, idx[rank - 2], t) * pick(&b, t, idx[rank - 1]))
            .sum()
    })
}

/// The BN-statistics loss of `layers` at the values `run` computed, as the gradient
/// graph defines it (see `zsq::autodiff::loss`).
pub fn bn_loss(values: &HashMap<String, Value>, layers: &[BnLayer], spec: &LossSpec) -> f64 {
    let (w_mean, w_std) = spec.terms.weights();
    let (w_mean, w_std) = (f64::from(w_mean), f64::from(w_std));
    let mut total = 0.0;
    for layer in layers {
        let x = values[&layer.input].f();
        let x = x
            .view()
            .into_dimensionality::<ndarray::Ix4>()
            .expect("NCHW");
        let (n, c, _, _) = x.dim();
        let sigma = layer.std();
        let groups: Vec<(usize, Vec<f64>)> = match spec.statistics {
            Statistics::PerImage => (0..n)
                .flat_map(|i| (0..c).map(move |ch| (i, ch)))
                .map(|(i, ch)| (ch, x.slice(s![i, ch, .., ..]).iter().copied().collect()))
                .collect(),
            Statistics::Batch => (0..c)
                .map(|ch| (ch, x.slice(s![.., ch, .., ..]).iter().copied().collect()))
                .collect(),
        };
        let mut sum = 0.0;
        for (ch, v) in &groups {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64;
            let sd = (var + f64::from(STD_EPSILON)).sqrt();
            let mu = f64::from(layer.mean[*ch]);
            let sigma = f64::from(sigma[*ch]);
            sum += w_mean * (m - mu).powi(2) + w_std * (sd - sigma).powi(2);
        }
        total += sum / groups.len() as f64;
    }
    total / layers.len() as f64
}
