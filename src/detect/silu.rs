//! Quantized SiLUs rewritten at load time to the one-pass CPU operator
//! `com.thermalzsq:QLinearSilu` ([`crate::runtime::SILU_OP`]), in memory only: the
//! int8 model on disk stays standard ONNX that any runtime or TensorRT loads.
//!
//! The quantizer leaves every SiLU of a u8s8 model as
//!
//! ```text
//! x_q -> DQ -> Sigmoid -> Q(s) -> DQ -+
//! x_q -> DQ --------------------------+-> Mul -> Q(y) -> y_q
//! ```
//!
//! which ONNX Runtime runs as QLinearSigmoid + QLinearMul, two passes over the tensor.
//! The rewrite puts `QLinearSilu(x_q, x scale/zp, s scale/zp, y scale/zp) -> y_q` in
//! their place; it computes the same bytes (see the operator's docs).
//!
//! Only SiLUs whose output is read by convolutions alone are rewritten. ONNX Runtime
//! runs int8 convolutions channels-last and cannot see through a custom operator, so
//! it puts a Transpose before it and another after it when a QLinearConv reads it;
//! measured on the bundled 320×320 detector (2-core Sapphire Rapids, docs/quantize.md),
//! that costs about half of what the one pass saves. A SiLU read by MaxPool, Concat,
//! Split, Add or Resize drags those back to NCHW too (an NCHW uint8 MaxPool alone cost
//! 1.3 ms more than the channels-last one): rewriting all 53 SiLUs of that model was
//! no faster than none, the 30 read by convolutions alone 0.3–0.6 ms (5–11 %) faster.
//!
//! Anything else (int8 activations, per-channel or non-constant quantization, a value
//! read elsewhere) is left as it was, with the reason in [`SiluRewrite::skipped`]; the
//! rewrite never fails. Use it for sessions on the CPU only: no other provider has the
//! operator.

use crate::onnx::{
    DataType, GraphProto, GraphView, Model, NodeBuilder, NodeProto, OperatorSetIdProto,
};
use crate::runtime::{SILU_DOMAIN, SILU_OP};

/// What [`rewrite_silu`] did to a model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiluRewrite {
    /// SiLUs now one `QLinearSilu` each.
    pub applied: usize,
    /// Quantized SiLUs left as they are, each with why.
    pub skipped: Vec<String>,
}

/// Rewrites every quantized SiLU of `model` that convolutions alone read to
/// `QLinearSilu` (see the module docs); returns how many and why others were left alone.
///
/// One pass over one index of the graph: the SiLUs share no nodes, so all are found
/// first, then each `QLinearSilu` takes the place of its SiLU's last node (after all
/// its inputs, before every reader of its output) and the other nodes go at once.
pub fn rewrite_silu(model: &mut Model) -> SiluRewrite {
    let mut summary = SiluRewrite::default();
    let mut edits = Vec::new();
    let mut doomed = Vec::new();
    {
        let graph = model.graph();
        let view = graph.view();
        for (m, node) in graph.node.iter().enumerate() {
            if node.op_type() != "Mul" || !node.is_default_domain() {
                continue;
            }
            match find_silu(&view, m) {
                Err(NotSilu::Unrelated) => {}
                Err(NotSilu::Differs(why)) => summary
                    .skipped
                    .push(format!("SiLU '{}': {why}", node.output[0])),
                Ok(silu) => {
                    doomed.extend(removed_nodes(&view, &silu));
                    edits.push((silu.nodes[4], replacement(graph, &silu)));
                }
            }
        }
    }
    if edits.is_empty() {
        return summary;
    }
    summary.applied = edits.len();
    let graph = model.graph_mut();
    // Every value a removed node made goes from value_info (`y_q` stays: the new node
    // makes it, in its last node's place, which is not removed).
    let stale: std::collections::HashSet<String> = doomed
        .iter()
        .map(|&n: &usize| graph.node[n].output[0].clone())
        .collect();
    graph.value_info.retain(|v| !stale.contains(v.name()));
    for (at, node) in edits {
        graph.node[at] = node;
    }
    graph.remove_nodes(&doomed);
    if model.opset_version(SILU_DOMAIN).is_none() {
        model.proto.opset_import.push(OperatorSetIdProto {
            domain: Some(SILU_DOMAIN.to_string()),
            version: Some(1),
            ..OperatorSetIdProto::default()
        });
    }
    summary
}

/// One matched SiLU: the nodes it replaces and the new node's inputs and output.
struct Silu {
    /// Sigmoid, Q(s), DQ(s), Mul, Q(y); the DQs of `x` go when nothing else reads them.
    nodes: [usize; 5],
    x_dequantizers: [usize; 2],
    /// x_q, x scale, x zp, s scale, s zp, y scale, y zp.
    inputs: [String; 7],
    output: String,
}

enum NotSilu {
    /// Not a quantized `x·sigmoid(x)`: not worth a mention.
    Unrelated,
    /// A quantized SiLU the rewrite must leave as it is.
    Differs(String),
}

/// The quantized SiLU whose Mul is node `m`, or why it is not one to rewrite.
fn find_silu(view: &GraphView, m: usize) -> Result<Silu, NotSilu> {
    let graph = view.graph();
    let node = |i: usize| &graph.node[i];
    let is = |i: usize, op: &str| node(i).op_type() == op && node(i).is_default_domain();
    let producer = |value: &str, op: &str| view.producer(value).filter(|&p| is(p, op));
    // The one node reading `value`, if it is an `op` and `value` is no graph output.
    let only_reader = |value: &str, op: &str| match view.consumers(value) {
        [one] if !graph.output.iter().any(|o| o.name() == value) && is(one.node, op) => {
            Some(one.node)
        }
        _ => None,
    };
    let mul = node(m);
    let [a, b] = mul.input.as_slice() else {
        return Err(NotSilu::Unrelated);
    };
    // Mul(DQ(x), DQ(Q(Sigmoid(DQ(x))))), in either order.
    let chain = |x: &str, s: &str| {
        let dx = producer(x, "DequantizeLinear")?;
        let ds = producer(s, "DequantizeLinear")?;
        let qs = producer(&node(ds).input[0], "QuantizeLinear")?;
        let sigmoid = producer(&node(qs).input[0], "Sigmoid")?;
        let dx2 = producer(&node(sigmoid).input[0], "DequantizeLinear")?;
        (node(dx).input == node(dx2).input).then_some([dx, dx2, ds, qs, sigmoid])
    };
    let Some([dx, dx2, ds, qs, sigmoid]) = chain(a, b).or_else(|| chain(b, a)) else {
        return Err(NotSilu::Unrelated);
    };
    let Some(qy) = only_reader(&mul.output[0], "QuantizeLinear") else {
        return Err(NotSilu::Unrelated);
    };
    let differs = |why: &str| Err(NotSilu::Differs(why.to_string()));
    let inner = [
        (&node(sigmoid).output[0], "QuantizeLinear", qs),
        (&node(qs).output[0], "DequantizeLinear", ds),
        (&node(ds).output[0], "Mul", m),
    ];
    if inner
        .iter()
        .any(|(value, op, n)| only_reader(value, op) != Some(*n))
    {
        return differs("a value inside it is also read elsewhere");
    }
    let (x_q, y_q) = (&node(dx).input[0], &node(qy).output[0]);
    for io in [&node(dx).input, &node(qs).input, &node(qy).input] {
        if io.len() != 3 || !io[1..].iter().all(|v| is_scalar(view, v)) {
            return differs("a scale or zero point is not one constant (per tensor)");
        }
    }
    // The zero points' type is the quantized values' type.
    let zero_point_types = [&node(dx).input[2], &node(qs).input[2], &node(qy).input[2]]
        .map(|zp| view.tensor(zp).and_then(|t| t.data_type()));
    if zero_point_types != [Some(DataType::Uint8); 3] {
        return differs("it is not uint8 throughout (the operator takes u8s8 activations)");
    }
    if !read_by_convolutions_alone(view, y_q) {
        return differs(
            "its output is read by other than convolutions, which a custom operator would take \
             out of ONNX Runtime's channels-last layout",
        );
    }
    let inputs = [
        x_q.clone(),
        node(dx).input[1].clone(),
        node(dx).input[2].clone(),
        node(qs).input[1].clone(),
        node(qs).input[2].clone(),
        node(qy).input[1].clone(),
        node(qy).input[2].clone(),
    ];
    Ok(Silu {
        nodes: [sigmoid, qs, ds, m, qy],
        x_dequantizers: [dx, dx2],
        inputs,
        output: y_q.clone(),
    })
}

/// Whether `name` is a one-element constant (initializer or Constant node).
fn is_scalar(view: &GraphView, name: &str) -> bool {
    view.tensor(name)
        .is_some_and(|t| t.dims.iter().product::<i64>() == 1)
}

/// Whether every reader of `value` is a DequantizeLinear read by Conv nodes alone.
fn read_by_convolutions_alone(view: &GraphView, value: &str) -> bool {
    let graph = view.graph();
    let is_conv = |n: &NodeProto| n.op_type() == "Conv" && n.is_default_domain();
    let uses = view.consumers(value);
    !uses.is_empty()
        && !graph.output.iter().any(|o| o.name() == value)
        && uses.iter().all(|u| {
            let dq = &graph.node[u.node];
            let readers = view.consumers(&dq.output[0]);
            dq.op_type() == "DequantizeLinear"
                && !readers.is_empty()
                && readers.iter().all(|r| is_conv(&graph.node[r.node]))
        })
}

/// The nodes that go with `silu` besides its last one: Sigmoid, Q(s), DQ(s), Mul, and
/// each DQ of `x` that only the SiLU read.
fn removed_nodes(view: &GraphView, silu: &Silu) -> Vec<usize> {
    let graph = view.graph();
    let mut doomed = silu.nodes[..4].to_vec();
    for &dq in &silu.x_dequantizers {
        let value = &graph.node[dq].output[0];
        let outside = view
            .consumers(value)
            .iter()
            .any(|u| !silu.nodes.contains(&u.node))
            || graph.output.iter().any(|o| o.name() == value);
        if !outside && !doomed.contains(&dq) {
            doomed.push(dq);
        }
    }
    doomed
}

/// The `QLinearSilu` node of `silu`.
fn replacement(graph: &GraphProto, silu: &Silu) -> NodeProto {
    let name = match graph.node[silu.nodes[3]].name() {
        "" => silu.output.clone(),
        mul => format!("{mul}/silu"),
    };
    NodeBuilder::new(SILU_OP)
        .domain(SILU_DOMAIN)
        .name(&name)
        .inputs(&silu.inputs)
        .output(&silu.output)
        .build()
}
