//! The forward half of the gradient graph: the model cut down to what computes the BN
//! inputs, with a static input shape, and every value's shape learnt by running it
//! once (shape discovery by execution: no shape inference of our own to get wrong).

use std::collections::{HashMap, HashSet};

use ndarray::{ArrayD, ArrayViewD, Axis};
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::session::NO_SPINNING;
use crate::onnx::{DataType, DimValue, GraphProto, Model, OperatorSetIdProto, ValueInfoProto};
use crate::runtime::{ProviderOptions, load_session_with_config};
use crate::zsq::ZsqError;
use crate::zsq::bn::BnLayer;
use crate::zsq::noise::SplitMix64;

/// The model's image input, as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInput {
    pub name: String,
    /// Declared batch size, `None` when symbolic.
    pub batch: Option<usize>,
    pub channels: usize,
    /// Declared height and width, `None` when symbolic.
    pub height: Option<usize>,
    pub width: Option<usize>,
}

impl ImageInput {
    /// The one input fed at run time, which must be a float tensor N×C×H×W with C known.
    pub fn of(model: &Model) -> Result<ImageInput, ZsqError> {
        let view = model.graph().view();
        let inputs: Vec<&ValueInfoProto> = view.data_inputs().collect();
        let [input] = inputs.as_slice() else {
            let names: Vec<&str> = inputs.iter().map(|v| v.name()).collect();
            return Err(ZsqError::Model(format!(
                "the model has {} inputs ({}); distillation needs a model with one image input",
                inputs.len(),
                names.join(", ")
            )));
        };
        let name = input.name().to_string();
        let r#type = input.r#type.as_ref();
        if r#type.and_then(|t| t.elem_type()) != Some(DataType::Float) {
            return Err(ZsqError::Model(format!(
                "input '{name}' is not a float32 tensor; distillation needs a float image input"
            )));
        }
        let dims: Vec<Option<usize>> = r#type
            .and_then(|t| t.shape())
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(DimValue::Value(v)) if v > 0 => Some(v as usize),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        match dims.as_slice() {
            [batch, Some(channels), height, width] => Ok(ImageInput {
                name,
                batch: *batch,
                channels: *channels,
                height: *height,
                width: *width,
            }),
            _ => Err(ZsqError::Model(format!(
                "input '{name}' is not an image: expected N×C×H×W with a known channel count, \
                 found {} axes {dims:?}",
                dims.len()
            ))),
        }
    }
}

/// The pruned forward graph and what running it taught us.
pub(super) struct Forward {
    /// Pruned to the BN inputs, topologically sorted, input shape static, external
    /// data inlined, opset at least 16.
    pub(super) model: Model,
    pub(super) input: String,
    /// Values that depend on the input through differentiable ops.
    pub(super) active: HashSet<String>,
    pub(super) known: Known,
    pub(super) opset: i64,
}

/// Shapes of every value, and the values of the small constant ones (shapes, axes,
/// scales, pads...) that gradient rules need as numbers.
#[derive(Default)]
pub(super) struct Known {
    pub(super) shapes: HashMap<String, Vec<usize>>,
    pub(super) floats: HashMap<String, ArrayD<f32>>,
    pub(super) ints: HashMap<String, ArrayD<i64>>,
    /// Resize outputs that were checked, by their values, to repeat their
    /// input an integer number of times along each axis (nearest upsampling).
    pub(super) nearest_repeats: HashSet<String>,
}

/// Ops whose outputs carry no gradient (integers, booleans, shapes).
const NON_DIFFERENTIABLE: [&str; 16] = [
    "Shape",
    "Size",
    "Equal",
    "Greater",
    "GreaterOrEqual",
    "Less",
    "LessOrEqual",
    "And",
    "Or",
    "Xor",
    "Not",
    "ArgMax",
    "ArgMin",
    "NonZero",
    "IsNaN",
    "IsInf",
];

/// Constant values up to this many elements are kept for the rules that read them.
const MAX_KEPT_VALUES: usize = 1 << 16;

/// The lowest default-domain opset the gradient graph supports (Split, ReduceSum,
/// Squeeze/Unsqueeze take their sizes and axes as inputs from 13 on).
const MIN_OPSET: i64 = 13;
/// ScatterElements has `reduction` from opset 16; nothing the rules read changed
/// meaning between 13 and 16, so older graphs are raised to it.
const SCATTER_OPSET: i64 = 16;

/// Prunes, fixes the input shape to `input_shape` and runs the forward graph once.
pub(super) fn prepare(
    model: &Model,
    layers: &[BnLayer],
    input_shape: [usize; 4],
    provider: &ProviderOptions,
) -> Result<Forward, ZsqError> {
    let image = ImageInput::of(model)?;
    if input_shape[1] != image.channels {
        return Err(ZsqError::Options(format!(
            "input '{}' has {} channels, not {}",
            image.name, image.channels, input_shape[1]
        )));
    }
    let opset = model.opset_version("").unwrap_or(0);
    if opset < MIN_OPSET {
        return Err(ZsqError::Model(format!(
            "the model uses ONNX opset {opset}; distillation needs opset {MIN_OPSET} or newer \
             (re-export with opset_version=17)"
        )));
    }
    let mut work = model.clone();
    work.inline_external_data()?;
    // Training info is not needed to compute BN inputs.
    work.proto.training_info.clear();
    let opset = opset.max(SCATTER_OPSET);
    set_default_opset(&mut work, opset);

    let graph = work.graph_mut();
    let dims: Vec<i64> = input_shape.iter().map(|&d| d as i64).collect();
    for input in graph.input.iter_mut().filter(|i| i.name() == image.name) {
        *input = ValueInfoProto::tensor(&image.name, DataType::Float, Some(&dims));
    }
    // Declared shapes may pin the old batch size or resolution: ONNX Runtime infers
    // them again from the new input.
    graph.value_info.clear();
    graph.output.clear();
    let mut targets: Vec<&str> = Vec::new();
    for layer in layers {
        if !targets.contains(&layer.input.as_str()) {
            targets.push(&layer.input);
        }
    }
    for t in &targets {
        graph.add_output(t, DataType::Float)?;
    }
    graph.prune_to(&targets)?;
    let order = graph.view().topological_order()?;
    let mut nodes: Vec<_> = std::mem::take(&mut graph.node)
        .into_iter()
        .map(Some)
        .collect();
    graph.node = order.iter().filter_map(|&i| nodes[i].take()).collect();

    let active = active_values(graph, &image.name);
    let known = discover(&mut work, &image.name, input_shape, &active, provider)?;
    Ok(Forward {
        model: work,
        input: image.name,
        active,
        known,
        opset,
    })
}

fn set_default_opset(model: &mut Model, version: i64) {
    let imports = &mut model.proto.opset_import;
    match imports
        .iter_mut()
        .find(|o| matches!(o.domain.as_deref().unwrap_or(""), "" | "ai.onnx"))
    {
        Some(import) => import.version = Some(version),
        None => imports.push(OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(version),
            ..OperatorSetIdProto::default()
        }),
    }
    // Opset 16 needs IR version 8.
    let ir = model.proto.ir_version.unwrap_or(0);
    model.proto.ir_version = Some(ir.max(8));
}

/// Values that depend on `input` through ops that can carry a gradient.
fn active_values(graph: &GraphProto, input: &str) -> HashSet<String> {
    let mut active = HashSet::from([input.to_string()]);
    for node in &graph.node {
        if NON_DIFFERENTIABLE.contains(&node.op_type()) {
            continue;
        }
        if node.input.iter().any(|i| active.contains(i)) {
            active.extend(node.output.iter().filter(|o| !o.is_empty()).cloned());
        }
    }
    active
}

/// Runs the forward graph with every value exposed as an output and records shapes,
/// small constant values and which Resize nodes repeat their input.
///
/// Exposing every value makes a run slow and memory-hungry (nothing is freed or
/// computed in place), so for batches above 2 the graph runs at batches 1 and 2 and
/// shapes are extrapolated linearly in the batch size; where that is not sound (a
/// constant that changes with the batch) it runs at the full batch.
fn discover(
    model: &mut Model,
    input: &str,
    input_shape: [usize; 4],
    active: &HashSet<String>,
    provider: &ProviderOptions,
) -> Result<Known, ZsqError> {
    let graph = model.graph_mut();
    let kept_outputs = graph.output.clone();
    let kept_inputs = graph.input.clone();
    let mut exposed: Vec<String> = Vec::new();
    for node in &graph.node {
        for o in node.output.iter().filter(|o| !o.is_empty()) {
            if !exposed.contains(o) {
                exposed.push(o.clone());
            }
        }
    }
    graph.output = exposed
        .iter()
        .map(|name| ValueInfoProto {
            name: Some(name.clone()),
            ..ValueInfoProto::default()
        })
        .collect();
    let resizes: Vec<(String, String)> = graph
        .node
        .iter()
        .filter(|n| n.op_type() == "Resize" && n.input.first().is_some_and(|x| active.contains(x)))
        .filter_map(|n| Some((n.input.first()?.clone(), n.output.first()?.clone())))
        .collect();
    let mut dims: Vec<i64> = input_shape.iter().map(|&d| d as i64).collect();
    dims[0] = -1;
    for i in graph.input.iter_mut().filter(|i| i.name() == input) {
        *i = ValueInfoProto::tensor(input, DataType::Float, Some(&dims));
    }
    let bytes = model.to_bytes();
    let graph = model.graph_mut();
    graph.output = kept_outputs;
    graph.input = kept_inputs;

    let fails = |shape: [usize; 4], e: &dyn std::fmt::Display| {
        ZsqError::Model(format!(
            "the forward graph with input shape {shape:?} does not run: {e}"
        ))
    };
    let mut loaded = load_session_with_config(&bytes, provider, &NO_SPINNING)
        .map_err(|e| fails(input_shape, &e))?;
    let mut probe = |batch: usize| {
        let shape = [batch, input_shape[1], input_shape[2], input_shape[3]];
        probe(&mut loaded.session, input, shape, active, &resizes).map_err(|e| fails(shape, &e))
    };
    let batch = input_shape[0];
    if batch <= 2 {
        return probe(batch);
    }
    let (one, two) = (probe(1)?, probe(2)?);
    match extrapolate(one, &two, batch) {
        Some(known) => Ok(known),
        None => probe(batch),
    }
}

/// One run at input `shape`: every value's shape, the small constants, and which of
/// the Resize nodes `resizes` (input, output) repeat their input.
fn probe(
    session: &mut ort::session::Session,
    input: &str,
    shape: [usize; 4],
    active: &HashSet<String>,
    resizes: &[(String, String)],
) -> Result<Known, ZsqError> {
    let mut rng = SplitMix64::new(0x5EED);
    let count: usize = shape.iter().product();
    let image: Vec<f32> = (0..count).map(|_| rng.uniform() as f32).collect();
    let tensor = TensorRef::from_array_view((shape, image.as_slice()))?;
    let outputs = session.run(ort::inputs![input => tensor])?;

    let mut known = Known::default();
    known.shapes.insert(input.to_string(), shape.to_vec());
    for (name, value) in outputs.iter() {
        let ValueType::Tensor { ty, shape, .. } = value.dtype() else {
            continue;
        };
        let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        let len: usize = dims.iter().product();
        if !active.contains(name) && len <= MAX_KEPT_VALUES {
            match ty {
                TensorElementType::Float32 => {
                    let v = value.try_extract_array::<f32>()?;
                    known.floats.insert(name.to_string(), v.to_owned());
                }
                TensorElementType::Int64 => {
                    let v = value.try_extract_array::<i64>()?;
                    known.ints.insert(name.to_string(), v.to_owned());
                }
                _ => {}
            }
        }
        known.shapes.insert(name.to_string(), dims);
    }

    let input_view = ArrayViewD::from_shape(&shape[..], image.as_slice())
        .map_err(|e| ZsqError::Model(e.to_string()))?;
    let value_of = |name: &str| -> Option<ArrayViewD<'_, f32>> {
        if name == input {
            return Some(input_view.view());
        }
        outputs.get(name)?.try_extract_array::<f32>().ok()
    };
    for (x, y) in resizes {
        if let (Some(xv), Some(yv)) = (value_of(x), value_of(y))
            && repeats(&xv, &yv)
        {
            known.nearest_repeats.insert(y.clone());
        }
    }
    Ok(known)
}

/// Shapes at `batch` from the shapes at batches 1 and 2, when every dimension is
/// linear in the batch and no constant changed with it.
fn extrapolate(one: Known, two: &Known, batch: usize) -> Option<Known> {
    if one.floats != two.floats
        || one.ints != two.ints
        || one.nearest_repeats != two.nearest_repeats
    {
        return None;
    }
    let mut known = one;
    for (name, dims) in known.shapes.iter_mut() {
        let at_two = two.shapes.get(name).filter(|d| d.len() == dims.len())?;
        for (d, &e) in dims.iter_mut().zip(at_two) {
            let step = e.checked_sub(*d)?;
            *d += (batch - 1) * step;
        }
    }
    Some(known)
}

/// Whether `y` is `x` with each element repeated k_i times along axis i (integer k_i).
fn repeats(x: &ArrayViewD<f32>, y: &ArrayViewD<f32>) -> bool {
    if x.ndim() != y.ndim()
        || x.shape()
            .iter()
            .zip(y.shape())
            .any(|(&a, &b)| a == 0 || b % a != 0)
    {
        return false;
    }
    let mut expanded = x.to_owned();
    for (axis, (&a, &b)) in x.shape().iter().zip(y.shape()).enumerate() {
        let k = b / a;
        if k > 1 {
            let picks: Vec<usize> = (0..b).map(|i| i / k).collect();
            expanded = expanded.select(Axis(axis), &picks);
        }
    }
    expanded == *y
}
