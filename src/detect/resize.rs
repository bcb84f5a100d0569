//! Running a YOLO detector exported at a fixed size at another size.
//!
//! Why: a detector trained on letterboxed 320×320 inputs sees a 640×512 camera's people
//! at half size, and a person 15 pixels tall (most people a street camera sees) shrinks
//! to 7. The same weights run at the camera's own 640×512 find them: the bundled
//! `det_thermal_ft` goes from mAP50-95 0.50 to 0.60 on its held-out synth set (small
//! objects 0.29 → 0.58, large ones 0.75 → 0.41) and the demo recording's tracks from
//! 45 % to 85 % of the people and vehicles (README, "Input size").
//!
//! Exporters bake the input size into constants of a YOLOv8-family head (YOLOv8,
//! YOLOv10, YOLO11): the anchor points, a `(…, 2, A)` grid of cell centres, and their
//! strides `(…, A)`; with shape arithmetic folded, also the reshape targets — each
//! level's `(…, h·w)`, the anchor count `(…, A)` of the DFL decoding, and `(…, h, w)`
//! of attention blocks. [`resize_head`] recognises the anchor points by their values
//! (exactly the grid ultralytics' `make_anchors` makes for the model's size and the
//! strides), recomputes them and the strides for the new size, and rewrites the last
//! element(s) of every Reshape target and Resize `sizes` that name a level's size or the
//! anchor count. A model whose head it does not recognise is refused, unchanged: its
//! size may be baked in where a rewrite cannot see, and a wrong grid would move boxes
//! without any error.

use super::DetectError;
use crate::onnx::{DimValue, InputSize, Model, TensorProto};

/// What [`resize_head`] changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeadResize {
    /// The size the model was exported at.
    pub from: Option<InputSize>,
    /// Anchors before and after.
    pub anchors: (usize, usize),
    /// Constants rewritten (anchor points, strides, reshape targets).
    pub constants: usize,
}

/// Gives `model` the input size `size`: fixes a symbolic one
/// ([`Model::fix_input_size`]); rewrites the head of a model exported at another fixed
/// size ([`resize_head`]).
pub fn set_input_size(model: &mut Model, size: InputSize) -> Result<HeadResize, DetectError> {
    let err = |e: crate::onnx::OnnxError| DetectError::new(e.to_string());
    match model.fixed_input_size() {
        Some(from) if from != size => resize_head(model, size),
        _ => {
            model.fix_input_size(size).map_err(err)?;
            Ok(HeadResize::default())
        }
    }
}

/// A constant of the graph: a Constant node's `value`, or an initializer.
#[derive(Clone, Copy)]
enum Slot {
    Node(usize),
    Initializer(usize),
}

/// Rewrites a fixed-size YOLOv8-family model to run at `size` (see the module docs).
pub fn resize_head(model: &mut Model, size: InputSize) -> Result<HeadResize, DetectError> {
    let from = model.fixed_input_size().ok_or_else(|| {
        DetectError::new("the model's image input has no fixed height and width to change")
    })?;
    model
        .check_stride(size)
        .map_err(|e| DetectError::new(e.to_string()))?;
    let refuse = |why: &str| {
        DetectError::new(format!(
            "the model was exported at {from} and cannot run at {size}: {why}; re-export it at {size}"
        ))
    };
    let float_constants = float_constants(model);
    let strides = float_constants
        .iter()
        .find_map(|(_, values, dims)| level_strides(values, dims, from))
        .ok_or_else(|| {
            refuse("no anchor strides of a YOLOv8-family head (a (1, A) constant of 8s, 16s, 32s, one per cell) were found")
        })?;
    let grid_from = Grid::new(from, &strides);
    let grid_to = Grid::new(size, &strides);
    let mut edits: Vec<(Slot, TensorProto)> = Vec::new();
    for (slot, values, dims) in &float_constants {
        let Some((&a, lead)) = dims.split_last() else {
            continue;
        };
        if a as usize != grid_from.anchors() || lead.iter().rev().skip(1).any(|&d| d != 1) {
            continue;
        }
        let new = if lead.last() == Some(&2) {
            if values != &grid_from.points() {
                return Err(refuse(
                    "a (2, A) constant is not the anchor grid of cell centres (another offset or order)",
                ));
            }
            grid_to.points()
        } else if values == &grid_from.strides() {
            grid_to.strides()
        } else {
            continue;
        };
        let mut new_dims = dims.clone();
        *new_dims.last_mut().expect("rank >= 1") = grid_to.anchors() as i64;
        edits.push((*slot, float_tensor(model, *slot, &new_dims, &new)));
    }
    if !edits
        .iter()
        .any(|(_, t)| t.dims.len() >= 2 && t.dims[t.dims.len() - 2] == 2)
    {
        return Err(refuse("no anchor grid constant (…, 2, A) was found"));
    }
    for (slot, tensor) in shape_edits(model, &grid_from, &grid_to) {
        edits.push((slot, tensor));
    }
    let constants = edits.len();
    for (slot, tensor) in edits {
        match slot {
            Slot::Node(i) => {
                let node = &mut model.graph_mut().node[i];
                if let Some(attr) = node.attribute.iter_mut().find(|a| a.name() == "value") {
                    attr.t = Some(Box::new(tensor));
                }
            }
            Slot::Initializer(i) => model.graph_mut().initializer[i] = tensor,
        }
    }
    set_dims(model, size, grid_from.anchors(), grid_to.anchors());
    Ok(HeadResize {
        from: Some(from),
        anchors: (grid_from.anchors(), grid_to.anchors()),
        constants,
    })
}

/// The anchor grid of a head: per stride, `(h/s) × (w/s)` cells, row by row.
struct Grid {
    size: InputSize,
    strides: Vec<usize>,
}

impl Grid {
    fn new(size: InputSize, strides: &[usize]) -> Grid {
        Grid {
            size,
            strides: strides.to_vec(),
        }
    }

    fn level(&self, s: usize) -> (usize, usize) {
        (self.size.height / s, self.size.width / s)
    }

    fn anchors(&self) -> usize {
        self.strides
            .iter()
            .map(|&s| {
                let (h, w) = self.level(s);
                h * w
            })
            .sum()
    }

    /// `(2, A)` flattened: every x, then every y, of the cell centres (offset 0.5).
    fn points(&self) -> Vec<f32> {
        let mut xs = Vec::with_capacity(self.anchors());
        let mut ys = Vec::with_capacity(self.anchors());
        for &s in &self.strides {
            let (h, w) = self.level(s);
            for y in 0..h {
                for x in 0..w {
                    xs.push(x as f32 + 0.5);
                    ys.push(y as f32 + 0.5);
                }
            }
        }
        xs.extend(ys);
        xs
    }

    fn strides(&self) -> Vec<f32> {
        self.strides
            .iter()
            .flat_map(|&s| {
                let (h, w) = self.level(s);
                std::iter::repeat_n(s as f32, h * w)
            })
            .collect()
    }
}

/// Every float32 constant of the graph with its values and dims.
fn float_constants(model: &Model) -> Vec<(Slot, Vec<f32>, Vec<i64>)> {
    let graph = model.graph();
    let read = |t: &TensorProto| -> Option<(Vec<f32>, Vec<i64>)> {
        let array = model.tensor_array::<f32>(t).ok()?;
        Some((array.iter().copied().collect(), t.dims.clone()))
    };
    let is_float = |t: &TensorProto| t.data_type == Some(crate::onnx::DataType::Float as i32);
    let nodes = graph.node.iter().enumerate().filter_map(|(i, n)| {
        let t = (n.op_type() == "Constant").then(|| n.attr_tensor("value"))??;
        let (v, d) = is_float(t).then(|| read(t))??;
        Some((Slot::Node(i), v, d))
    });
    let initializers = graph.initializer.iter().enumerate().filter_map(|(i, t)| {
        let (v, d) = is_float(t).then(|| read(t))??;
        Some((Slot::Initializer(i), v, d))
    });
    nodes.chain(initializers).collect()
}

/// The strides of the head, if `values` (dims `dims`) is its per-anchor stride column
/// for input size `size`: runs of one stride each, as many as the level has cells.
fn level_strides(values: &[f32], dims: &[i64], size: InputSize) -> Option<Vec<usize>> {
    let (&a, lead) = dims.split_last()?;
    if a < 1 || lead.iter().any(|&d| d != 1) || values.len() != a as usize {
        return None;
    }
    let mut strides = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let s = values[i];
        if !(s >= 1.0 && s.fract() == 0.0 && (s as usize).is_power_of_two()) {
            return None;
        }
        let s = s as usize;
        if strides.last().is_some_and(|&last| last >= s) {
            return None;
        }
        let cells = (size.height / s) * (size.width / s);
        if cells == 0
            || values.len() < i + cells
            || values[i..i + cells].iter().any(|&v| v != s as f32)
        {
            return None;
        }
        strides.push(s);
        i += cells;
    }
    (strides.len() >= 2).then_some(strides)
}

/// `tensor` of `slot` with new dims and float values, keeping its name.
fn float_tensor(model: &Model, slot: Slot, dims: &[i64], values: &[f32]) -> TensorProto {
    let name = match slot {
        Slot::Node(i) => model.graph().node[i]
            .attr_tensor("value")
            .map(|t| t.name().to_string()),
        Slot::Initializer(i) => Some(model.graph().initializer[i].name().to_string()),
    }
    .unwrap_or_default();
    let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
    let array = ndarray::ArrayD::from_shape_vec(shape, values.to_vec()).expect("dims match values");
    TensorProto::from_array(&name, &array)
}

/// One element of a shape target: where it comes from, if it is a constant.
#[derive(Clone, Copy)]
struct Element {
    /// The constant and the element's index in it; `None`: computed (Shape, Gather…).
    source: Option<(usize, usize)>,
    value: Option<i64>,
}

/// The int64 shape targets of Reshape nodes (input 1) and `sizes` of Resize nodes
/// (input 3), whether one constant or assembled by a Concat of constants and
/// unsqueezed scalars (how the TorchScript exporter writes `x.view(b, 4, c, a)`), that
/// end in a level's `h, w`, its `h·w`, or the anchor count: the constants holding those
/// elements, rewritten for the new grid.
fn shape_edits(model: &Model, from: &Grid, to: &Grid) -> Vec<(Slot, TensorProto)> {
    let graph = model.graph();
    let view = graph.view();
    // The int64 constants read so far: values, and whether they changed.
    let mut constants: Constants = Vec::new();
    let mut targets: Vec<Vec<Element>> = Vec::new();
    for node in &graph.node {
        let input = match node.op_type() {
            "Reshape" => node.input.get(1),
            "Resize" => node.input.get(3),
            _ => None,
        };
        let Some(value) = input.filter(|v| !v.is_empty()) else {
            continue;
        };
        // The value's constant tensor, if it is one.
        let as_constant = |constants: &mut Constants, value: &str| -> Option<usize> {
            match view.producer(value) {
                Some(p) if graph.node[p].op_type() == "Constant" => read_int_constant(
                    model,
                    constants,
                    Slot::Node(p),
                    graph.node[p].attr_tensor("value")?,
                ),
                Some(_) => None,
                None => {
                    let i = graph.initializer.iter().position(|t| t.name() == value)?;
                    read_int_constant(
                        model,
                        constants,
                        Slot::Initializer(i),
                        &graph.initializer[i],
                    )
                }
            }
        };
        let mut elements = Vec::new();
        let parts: Vec<&str> = match view.producer_node(value) {
            Some(c) if c.op_type() == "Concat" && c.attr_int("axis").unwrap_or(0) == 0 => {
                c.input.iter().map(String::as_str).collect()
            }
            _ => vec![value.as_str()],
        };
        for part in parts {
            if let Some(c) = as_constant(&mut constants, part) {
                let len = constants[c].1.len();
                for i in 0..len {
                    elements.push(Element {
                        source: Some((c, i)),
                        value: Some(constants[c].1[i]),
                    });
                }
                continue;
            }
            let scalar = view
                .producer_node(part)
                .filter(|u| u.op_type() == "Unsqueeze")
                .and_then(|u| as_constant(&mut constants, &u.input[0]))
                .filter(|&c| constants[c].1.len() == 1);
            elements.push(match scalar {
                Some(c) => Element {
                    source: Some((c, 0)),
                    value: Some(constants[c].1[0]),
                },
                None => Element {
                    source: None,
                    value: None,
                },
            });
        }
        targets.push(elements);
    }
    for elements in targets {
        let values: Vec<Option<i64>> = elements.iter().map(|e| e.value).collect();
        let Some(new) = rewrite_shape(&values, from, to) else {
            continue;
        };
        for (element, value) in elements.iter().zip(new) {
            if let (Some((c, i)), Some(value)) = (element.source, value)
                && constants[c].1[i] != value
            {
                constants[c].1[i] = value;
                constants[c].2 = true;
            }
        }
    }
    constants
        .into_iter()
        .filter(|(.., changed)| *changed)
        .map(|(slot, values, _)| {
            let old = match slot {
                Slot::Node(i) => graph.node[i].attr_tensor("value").expect("read above"),
                Slot::Initializer(i) => &graph.initializer[i],
            };
            let shape: Vec<usize> = old.dims.iter().map(|&d| d as usize).collect();
            let array = ndarray::ArrayD::from_shape_vec(shape, values).expect("same length");
            (slot, TensorProto::from_array(old.name(), &array))
        })
        .collect()
}

/// int64 constants of the graph (scalars or 1-D): where, the values, whether changed.
type Constants = Vec<(Slot, Vec<i64>, bool)>;

/// The index in `constants` of the int64 constant `t` at `slot`, read on first use;
/// `None` for another type or rank.
fn read_int_constant(
    model: &Model,
    constants: &mut Constants,
    slot: Slot,
    t: &TensorProto,
) -> Option<usize> {
    if t.data_type != Some(crate::onnx::DataType::Int64 as i32) || t.dims.len() > 1 {
        return None;
    }
    let same = |s: &Slot| match (s, &slot) {
        (Slot::Node(a), Slot::Node(b)) | (Slot::Initializer(a), Slot::Initializer(b)) => a == b,
        _ => false,
    };
    if let Some(i) = constants.iter().position(|(s, ..)| same(s)) {
        return Some(i);
    }
    let values = model.tensor_array::<i64>(t).ok()?.iter().copied().collect();
    constants.push((slot, values, false));
    Some(constants.len() - 1)
}

/// `shape` for the new grid, if its end names the old one's anchor count, a level's
/// cell count or a level's `h, w` (elements `None` are computed, not constants).
fn rewrite_shape(shape: &[Option<i64>], from: &Grid, to: &Grid) -> Option<Vec<Option<i64>>> {
    let n = shape.len();
    let last = (*shape.last()?)?;
    let mut new = shape.to_vec();
    if last == from.anchors() as i64 {
        new[n - 1] = Some(to.anchors() as i64);
        return Some(new);
    }
    // A feature map's (…, h, w) first: its w may equal a coarser level's h·w.
    for &s in &from.strides {
        let ((h, w), (nh, nw)) = (from.level(s), to.level(s));
        if n >= 4 && shape[n - 2..] == [Some(h as i64), Some(w as i64)] {
            new[n - 2] = Some(nh as i64);
            new[n - 1] = Some(nw as i64);
            return Some(new);
        }
    }
    for &s in &from.strides {
        let ((h, w), (nh, nw)) = (from.level(s), to.level(s));
        if n >= 3 && last == (h * w) as i64 {
            new[n - 1] = Some((nh * nw) as i64);
            return Some(new);
        }
    }
    None
}

fn dims(vi: &mut crate::onnx::ValueInfoProto) -> Option<&mut Vec<crate::onnx::Dimension>> {
    vi.r#type
        .as_mut()
        .and_then(|t| t.shape_mut())
        .map(|s| &mut s.dim)
}

/// The input's height and width, and every graph output's anchor axis; the recorded
/// intermediate shapes (hints) are dropped.
fn set_dims(model: &mut Model, size: InputSize, from_anchors: usize, to_anchors: usize) {
    let graph = model.graph_mut();
    let initializers: std::collections::HashSet<String> = graph
        .initializer
        .iter()
        .map(|t| t.name().to_string())
        .collect();
    for input in graph
        .input
        .iter_mut()
        .filter(|i| !initializers.contains(i.name()))
    {
        if let Some(d) = dims(input).filter(|d| d.len() == 4) {
            d[2].value = Some(DimValue::Value(size.height as i64));
            d[3].value = Some(DimValue::Value(size.width as i64));
        }
    }
    for output in graph.output.iter_mut() {
        if let Some(d) = dims(output) {
            for dim in d.iter_mut() {
                if dim.value == Some(DimValue::Value(from_anchors as i64)) {
                    dim.value = Some(DimValue::Value(to_anchors as i64));
                }
            }
        }
    }
    graph.value_info.clear();
}
