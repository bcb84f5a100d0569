//! YOLOv8-family box decoding (DFL) rewritten to reduce over the bins where they
//! already are, so ONNX Runtime no longer transposes the tensor around a Softmax.
//!
//! Ultralytics-style heads (YOLOv8, v10, YOLO11) decode each box side as the
//! expectation of a softmax over `R` distance bins, exported as
//!
//! ```text
//! X (b, 4, R, A) -> Transpose(perm 0,2,1,3) -> Softmax(axis 1) -> Conv 1x1 (1, R, 1, 1) -> (b, 1, 4, A)
//! ```
//!
//! A Softmax on any axis but the last is a transpose, a softmax and a transpose back in
//! ONNX Runtime's CPU kernel: on a 320×320 detector (A = 2100, R = 16) it costs about
//! 1.1 ms of a 9–11 ms run, fp32 and int8 alike (the quantizer keeps this tail float).
//! The same numbers come from element-wise ops and reductions over axis 2 of `X`:
//!
//! ```text
//! m = ReduceMax(X, 2)   e = Exp(X − m)   E = ReduceSum(e·w, 2) / ReduceSum(e, 2)   -> Unsqueeze(E, 1)
//! ```
//!
//! with `w` the Conv's own weights (exported as 0..R−1, read from the model rather than
//! assumed). Measured at about a tenth of the Softmax's time (docs/quantize.md). The
//! result is not bit-identical: `Σ w·e / Σ e` rounds differently from `Σ w·(e / Σ e)`;
//! boxes differ by at most ~5e-6 relative (1.2e-4 px on the bundled detector), scores
//! not at all. Reductions and element-wise ops rather than a MatMul by `w`, which would
//! measure the same: a Conv/Gemm/MatMul with constant weights is a learned layer to the
//! quantizer's tail rule, and a rewritten model quantized again must keep its tail.
//!
//! Anything that does not match exactly (another perm or axis, a Conv with a bias, more
//! than one output channel or a non-unit kernel, a value read elsewhere, opset < 13) is
//! left as it was, with the reason in [`DflRewrite::skipped`]; the rewrite never fails.

use crate::onnx::{
    DataType, GraphProto, GraphView, Model, NodeBuilder, NodeProto, OnnxError, TensorProto,
    UniqueNames,
};

/// What [`rewrite_dfl`] did to a model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DflRewrite {
    /// DFL decodings rewritten (one per YOLOv8-style head).
    pub applied: usize,
    /// Softmax nodes that looked like a DFL but were left as they are, each with why.
    pub skipped: Vec<String>,
}

/// Rewrites every DFL decoding of `model` to reduce over the bins' own axis (see the
/// module docs); returns how many and why others were left alone.
pub fn rewrite_dfl(model: &mut Model) -> DflRewrite {
    let mut summary = DflRewrite::default();
    let opset = model.opset_version("").unwrap_or(0);
    let softmaxes: Vec<String> = model
        .graph()
        .node
        .iter()
        .filter(|n| n.op_type() == "Softmax" && n.is_default_domain())
        .map(|n| n.output[0].clone())
        .collect();
    for softmax in softmaxes {
        let found = {
            let graph = model.graph();
            let view = graph.view();
            view.producer(&softmax)
                .map(|s| find_dfl(model, &view, s, opset))
        };
        match found {
            None | Some(Err(NotDfl::Unrelated)) => {}
            Some(Err(NotDfl::Differs(why))) => {
                summary.skipped.push(format!("Softmax '{softmax}': {why}"))
            }
            Some(Ok(dfl)) => {
                let mut graph = model.graph().clone();
                match replace(&mut graph, &dfl, opset) {
                    Ok(()) => {
                        *model.graph_mut() = graph;
                        summary.applied += 1;
                    }
                    Err(e) => summary
                        .skipped
                        .push(format!("Softmax '{softmax}': the edit failed: {e}")),
                }
            }
        }
    }
    summary
}

/// One matched DFL decoding: the nodes it replaces and what the new form needs.
struct Dfl {
    transpose: usize,
    softmax: usize,
    conv: usize,
    /// `X`, the (b, 4, R, A) input of the Transpose.
    bins: String,
    /// The Conv's output: the rewritten form produces this value, same shape.
    expectation: String,
    /// The Conv weights as (1, 1, R, 1), to broadcast over `X`.
    weights: ndarray::ArrayD<f32>,
}

enum NotDfl {
    /// Not a Transpose–Softmax–Conv chain at all (e.g. attention): not worth a mention.
    Unrelated,
    /// The chain is there but differs from the DFL in a way the rewrite must respect.
    Differs(String),
}

/// The DFL decoding around Softmax node `s`, or why it is not one.
fn find_dfl(model: &Model, view: &GraphView, s: usize, opset: i64) -> Result<Dfl, NotDfl> {
    let graph = model.graph();
    let softmax = &graph.node[s];
    let differs = |why: &str| Err(NotDfl::Differs(why.to_string()));
    let only_reader = |value: &str, op: &str| -> Option<usize> {
        let uses = view.consumers(value);
        let is_output = graph.output.iter().any(|o| o.name() == value);
        match uses {
            [one] if !is_output && one.input == Some(0) => {
                let node = &graph.node[one.node];
                (node.op_type() == op && node.is_default_domain()).then_some(one.node)
            }
            _ => None,
        }
    };
    let Some(t) = view.producer(&softmax.input[0]) else {
        return Err(NotDfl::Unrelated);
    };
    let transpose = &graph.node[t];
    let Some(c) = only_reader(&softmax.output[0], "Conv") else {
        return Err(NotDfl::Unrelated);
    };
    if transpose.op_type() != "Transpose" || !transpose.is_default_domain() {
        return Err(NotDfl::Unrelated);
    }
    if transpose.attr_ints("perm") != Some(&[0, 2, 1, 3]) {
        return differs("its Transpose's perm is not (0, 2, 1, 3)");
    }
    if only_reader(&transpose.output[0], "Softmax") != Some(s) {
        return differs("the transposed bins are also read elsewhere");
    }
    if softmax.attr_int("axis").unwrap_or(-1) != 1 {
        return differs("it is not over axis 1 (the bins)");
    }
    if opset < 13 {
        return differs("opset < 13, where Softmax flattens the axes after `axis`");
    }
    let conv = &graph.node[c];
    let weights = dfl_weights(model, view, conv).map_err(NotDfl::Differs)?;
    Ok(Dfl {
        transpose: t,
        softmax: s,
        conv: c,
        bins: transpose.input[0].clone(),
        expectation: conv.output[0].clone(),
        weights,
    })
}

/// The weights of a DFL Conv, shaped (1, 1, R, 1): one output channel, a 1×1 kernel
/// with unit strides and dilations, no padding, no bias, no groups.
fn dfl_weights(
    model: &Model,
    view: &GraphView,
    conv: &NodeProto,
) -> Result<ndarray::ArrayD<f32>, String> {
    let all_ones = |name: &str| {
        conv.attr_ints(name)
            .is_none_or(|v| v.iter().all(|&x| x == 1))
    };
    if conv.input.get(2).is_some_and(|b| !b.is_empty()) {
        return Err("its Conv has a bias".into());
    }
    if conv.attr_int("group").unwrap_or(1) != 1 || !all_ones("strides") || !all_ones("dilations") {
        return Err("its Conv is grouped, strided or dilated".into());
    }
    if conv
        .attr_ints("pads")
        .is_some_and(|p| p.iter().any(|&x| x != 0))
        || conv
            .attr_str("auto_pad")
            .is_some_and(|a| !matches!(a, "NOTSET" | "VALID"))
    {
        return Err("its Conv pads".into());
    }
    let tensor = conv
        .input
        .get(1)
        .and_then(|w| view.tensor(w))
        .filter(|t| t.data_type() == Some(DataType::Float))
        .ok_or("its Conv's weight is not a constant float tensor")?;
    let w = model
        .tensor_array::<f32>(&tensor)
        .map_err(|e| format!("its Conv's weight cannot be read: {e}"))?;
    match *w.shape() {
        [1, bins, 1, 1] => Ok(w
            .into_shape_with_order(ndarray::IxDyn(&[1, 1, bins, 1]))
            .expect("same number of values")),
        _ => Err(format!(
            "its Conv's weight has shape {:?}, not (1, R, 1, 1)",
            w.shape()
        )),
    }
}

/// Replaces the Transpose, Softmax and Conv of `dfl` by the reductions over axis 2.
fn replace(graph: &mut GraphProto, dfl: &Dfl, opset: i64) -> Result<(), OnnxError> {
    let old_weight = graph.node[dfl.conv].input[1].clone();
    let stale = [
        graph.node[dfl.transpose].output[0].clone(),
        graph.node[dfl.softmax].output[0].clone(),
    ];
    let base = match graph.node[dfl.conv].name() {
        "" => "dfl".to_string(),
        name => name.to_string(),
    };
    graph.remove_nodes(&[dfl.transpose, dfl.softmax, dfl.conv]);
    graph
        .value_info
        .retain(|v| !stale.iter().any(|s| s == v.name()));
    if graph.view().consumers(&old_weight).is_empty() {
        graph.initializer.retain(|t| t.name() != old_weight);
        graph.input.retain(|i| i.name() != old_weight);
    }

    let mut names = UniqueNames::new(graph);
    let mut fresh = |what: &str| names.fresh(&format!("{base}/{what}"));
    let (bins_axis, keep_axis, weights) = (fresh("bins_axis"), fresh("one_axis"), fresh("w"));
    graph.add_initializer(TensorProto::from_array(&bins_axis, &ndarray::arr1(&[2i64])))?;
    graph.add_initializer(TensorProto::from_array(&keep_axis, &ndarray::arr1(&[1i64])))?;
    graph.add_initializer(TensorProto::from_array(&weights, &dfl.weights))?;

    let (max, shifted, exp) = (fresh("max"), fresh("shifted"), fresh("exp"));
    let (weighted, num, den, mean) = (fresh("weighted"), fresh("num"), fresh("den"), fresh("mean"));
    // ReduceMax takes its axes as an input from opset 18, ReduceSum from 13.
    let reduce_max = if opset >= 18 {
        NodeBuilder::new("ReduceMax").inputs([&dfl.bins, &bins_axis])
    } else {
        NodeBuilder::new("ReduceMax")
            .input(&dfl.bins)
            .attr_ints("axes", [2])
    };
    let sum = |input: &str, output: &str| {
        NodeBuilder::new("ReduceSum")
            .name(output)
            .inputs([input, bins_axis.as_str()])
            .output(output)
            .attr_int("keepdims", 0)
            .build()
    };
    let binary = |op: &str, a: &str, b: &str, output: &str| {
        NodeBuilder::new(op)
            .name(output)
            .inputs([a, b])
            .output(output)
            .build()
    };
    let nodes = [
        reduce_max
            .name(&max)
            .output(&max)
            .attr_int("keepdims", 1)
            .build(),
        binary("Sub", &dfl.bins, &max, &shifted),
        NodeBuilder::new("Exp")
            .name(&exp)
            .input(&shifted)
            .output(&exp)
            .build(),
        binary("Mul", &exp, &weights, &weighted),
        sum(&weighted, &num),
        sum(&exp, &den),
        binary("Div", &num, &den, &mean),
        NodeBuilder::new("Unsqueeze")
            .name(&fresh("unsqueeze"))
            .inputs([&mean, &keep_axis])
            .output(&dfl.expectation)
            .build(),
    ];
    for node in nodes {
        graph.insert_node(node)?;
    }
    Ok(())
}
