//! [`GraphView`]: who produces and who consumes each value of a graph, and lookups by
//! name, computed once so that queries on large graphs stay cheap.

use std::borrow::Cow;
use std::collections::{BinaryHeap, HashMap, HashSet};

use super::error::{OnnxError, Result};
use super::proto::{
    DataType, GraphProto, NodeProto, TensorProto, TensorShapeProto, ValueInfoProto,
};

/// One use of a value by a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Use {
    /// Index of the consuming node in `GraphProto::node`.
    pub node: usize,
    /// The input slot, or `None` when a subgraph of the node (If/Loop/Scan body)
    /// refers to the value from the outer scope.
    pub input: Option<usize>,
}

/// Indexes over a graph. Node numbers are indices into `GraphProto::node`.
pub struct GraphView<'g> {
    graph: &'g GraphProto,
    producers: HashMap<&'g str, usize>,
    consumers: HashMap<&'g str, Vec<Use>>,
    initializers: HashMap<&'g str, &'g TensorProto>,
    value_infos: HashMap<&'g str, &'g ValueInfoProto>,
}

impl GraphProto {
    /// Indexes the graph for queries.
    pub fn view(&self) -> GraphView<'_> {
        GraphView::new(self)
    }
}

impl<'g> GraphView<'g> {
    pub fn new(graph: &'g GraphProto) -> Self {
        let mut producers = HashMap::new();
        let mut consumers: HashMap<&str, Vec<Use>> = HashMap::new();
        for (i, node) in graph.node.iter().enumerate() {
            for output in node.output.iter().filter(|o| !o.is_empty()) {
                producers.entry(output.as_str()).or_insert(i);
            }
            for (name, input) in node_inputs(node) {
                consumers
                    .entry(name)
                    .or_default()
                    .push(Use { node: i, input });
            }
        }
        let initializers = graph.initializer.iter().map(|t| (t.name(), t)).collect();
        // Later entries win: value_info, then outputs, then inputs are the most specific.
        let value_infos = graph
            .value_info
            .iter()
            .chain(&graph.output)
            .chain(&graph.input)
            .map(|v| (v.name(), v))
            .collect();
        GraphView {
            graph,
            producers,
            consumers,
            initializers,
            value_infos,
        }
    }

    pub fn graph(&self) -> &'g GraphProto {
        self.graph
    }

    /// The index of the node that outputs `value`.
    pub fn producer(&self, value: &str) -> Option<usize> {
        self.producers.get(value).copied()
    }

    pub fn producer_node(&self, value: &str) -> Option<&'g NodeProto> {
        self.producer(value).map(|i| &self.graph.node[i])
    }

    /// Every use of `value` by a node, in node order.
    pub fn consumers(&self, value: &str) -> &[Use] {
        self.consumers.get(value).map_or(&[], Vec::as_slice)
    }

    pub fn initializer(&self, name: &str) -> Option<&'g TensorProto> {
        self.initializers.get(name).copied()
    }

    pub fn is_initializer(&self, name: &str) -> bool {
        self.initializers.contains_key(name)
    }

    /// The graph inputs that are fed at run time, i.e. not initializers (older IR
    /// versions list initializers among the inputs too).
    pub fn data_inputs(&self) -> impl Iterator<Item = &'g ValueInfoProto> + '_ {
        self.graph
            .input
            .iter()
            .filter(|v| !self.is_initializer(v.name()))
    }

    /// The value of `value` if a `Constant` node produces it. `value_float(s)`,
    /// `value_int(s)` and `value_string(s)` are turned into tensors; a sparse
    /// constant gives `None`.
    pub fn constant(&self, value: &str) -> Option<Cow<'g, TensorProto>> {
        let node = self
            .producer_node(value)
            .filter(|n| n.op_type() == "Constant" && n.is_default_domain())?;
        constant_value(node, value)
    }

    /// A constant tensor by name: an initializer or the output of a `Constant` node.
    pub fn tensor(&self, name: &str) -> Option<Cow<'g, TensorProto>> {
        match self.initializer(name) {
            Some(t) => Some(Cow::Borrowed(t)),
            None => self.constant(name),
        }
    }

    /// The declared type of a value: from the graph inputs, outputs or `value_info`.
    pub fn value_info(&self, name: &str) -> Option<&'g ValueInfoProto> {
        self.value_infos.get(name).copied()
    }

    /// The declared shape of a value, if any.
    pub fn shape(&self, name: &str) -> Option<&'g TensorShapeProto> {
        self.value_info(name)?.r#type.as_ref()?.shape()
    }

    /// The element type of a value, from its declared type or its initializer.
    pub fn elem_type(&self, name: &str) -> Option<DataType> {
        self.value_info(name)
            .and_then(|v| v.r#type.as_ref()?.elem_type())
            .or_else(|| self.initializer(name)?.data_type())
    }

    /// Node indices in an order where every node comes after the producers of its
    /// inputs. A graph already in order keeps its order; a cycle is an error.
    pub fn topological_order(&self) -> Result<Vec<usize>> {
        let n = self.graph.node.len();
        let mut waiting_on = vec![0usize; n];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, node) in self.graph.node.iter().enumerate() {
            let producers: HashSet<usize> = node_inputs(node)
                .filter_map(|(name, _)| self.producer(name))
                .collect();
            waiting_on[i] = producers.len();
            for p in producers {
                dependents[p].push(i);
            }
        }
        // Min-heap on the index: among ready nodes the earliest goes first.
        let mut ready: BinaryHeap<std::cmp::Reverse<usize>> = (0..n)
            .filter(|&i| waiting_on[i] == 0)
            .map(std::cmp::Reverse)
            .collect();
        let mut order = Vec::with_capacity(n);
        while let Some(std::cmp::Reverse(i)) = ready.pop() {
            order.push(i);
            for &d in &dependents[i] {
                waiting_on[d] -= 1;
                if waiting_on[d] == 0 {
                    ready.push(std::cmp::Reverse(d));
                }
            }
        }
        if let Some(stuck) = (0..n).find(|&i| waiting_on[i] > 0) {
            let node = &self.graph.node[stuck];
            return Err(OnnxError::Graph(format!(
                "the graph has a cycle: node '{}' ({}) depends on its own output",
                node.name(),
                node.op_type()
            )));
        }
        Ok(order)
    }

    /// Marks the nodes needed to compute `values` (their producers and everything
    /// upstream), indexed like `GraphProto::node`.
    pub fn ancestors(&self, values: &[&str]) -> Vec<bool> {
        let mut needed = vec![false; self.graph.node.len()];
        let mut stack: Vec<usize> = values.iter().filter_map(|v| self.producer(v)).collect();
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut needed[i], true) {
                continue;
            }
            stack.extend(
                node_inputs(&self.graph.node[i]).filter_map(|(name, _)| self.producer(name)),
            );
        }
        needed
    }
}

/// The values a node reads: its inputs (with their slot) and, for nodes with
/// subgraphs, the outer values those subgraphs refer to (slot `None`).
pub(crate) fn node_inputs(node: &NodeProto) -> impl Iterator<Item = (&str, Option<usize>)> {
    let explicit = node
        .input
        .iter()
        .enumerate()
        .filter(|(_, name)| !name.is_empty())
        .map(|(slot, name)| (name.as_str(), Some(slot)));
    let mut captured = Vec::new();
    for g in node.subgraphs() {
        captured_names(g, &mut captured);
    }
    captured.sort_unstable();
    captured.dedup();
    explicit.chain(captured.into_iter().map(|name| (name, None)))
}

/// Names a graph reads without defining them (outer-scope references), recursively.
pub(crate) fn captured_names<'g>(graph: &'g GraphProto, out: &mut Vec<&'g str>) {
    let defined = defined_names(graph);
    let mut inner = Vec::new();
    for node in &graph.node {
        out.extend(
            node.input
                .iter()
                .map(String::as_str)
                .filter(|n| !n.is_empty() && !defined.contains(n)),
        );
        for g in node.subgraphs() {
            inner.clear();
            captured_names(g, &mut inner);
            out.extend(inner.iter().filter(|n| !defined.contains(*n)));
        }
    }
    out.extend(
        graph
            .output
            .iter()
            .map(|o| o.name())
            .filter(|n| !defined.contains(n)),
    );
}

/// Names a graph defines: inputs, initializers and node outputs.
pub(crate) fn defined_names(graph: &GraphProto) -> HashSet<&str> {
    let sparse = graph
        .sparse_initializer
        .iter()
        .filter_map(|s| s.values.as_deref())
        .map(|t| t.name());
    graph
        .input
        .iter()
        .map(|v| v.name())
        .chain(graph.initializer.iter().map(|t| t.name()))
        .chain(sparse)
        .chain(
            graph
                .node
                .iter()
                .flat_map(|n| n.output.iter().map(String::as_str)),
        )
        .collect()
}

fn constant_value<'g>(node: &'g NodeProto, value: &str) -> Option<Cow<'g, TensorProto>> {
    let attr = node.attribute.first()?;
    let tensor = |data_type: DataType, dims: Vec<i64>| TensorProto {
        name: Some(value.to_string()),
        data_type: Some(data_type as i32),
        dims,
        ..TensorProto::default()
    };
    Some(match attr.name() {
        "value" => Cow::Borrowed(attr.t.as_deref()?),
        "value_float" => Cow::Owned(TensorProto {
            float_data: vec![attr.f?],
            ..tensor(DataType::Float, vec![])
        }),
        "value_floats" => {
            let dims = vec![attr.floats.len() as i64];
            Cow::Owned(TensorProto {
                float_data: attr.floats.clone(),
                ..tensor(DataType::Float, dims)
            })
        }
        "value_int" => Cow::Owned(TensorProto {
            int64_data: vec![attr.i?],
            ..tensor(DataType::Int64, vec![])
        }),
        "value_ints" => {
            let dims = vec![attr.ints.len() as i64];
            Cow::Owned(TensorProto {
                int64_data: attr.ints.clone(),
                ..tensor(DataType::Int64, dims)
            })
        }
        "value_string" => Cow::Owned(TensorProto {
            string_data: vec![attr.s.clone()?],
            ..tensor(DataType::String, vec![])
        }),
        "value_strings" => {
            let dims = vec![attr.strings.len() as i64];
            Cow::Owned(TensorProto {
                string_data: attr.strings.clone(),
                ..tensor(DataType::String, dims)
            })
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::{AttributeProto, NodeBuilder};

    #[test]
    fn constants_of_every_attribute_form_read_as_tensors() {
        let graph = GraphProto {
            node: vec![
                NodeBuilder::new("Constant")
                    .output("f")
                    .attr_float("value_float", 0.5)
                    .build(),
                NodeBuilder::new("Constant")
                    .output("is")
                    .attr_ints("value_ints", [1, -1])
                    .build(),
                NodeBuilder::new("Constant")
                    .output("t")
                    .attr_tensor("value", TensorProto::scalar("t", 3i64))
                    .build(),
            ],
            ..GraphProto::default()
        };
        let view = graph.view();
        let f = view.constant("f").unwrap().to_array::<f32>().unwrap();
        assert_eq!((f.ndim(), f.sum()), (0, 0.5));
        let is = view.tensor("is").unwrap().to_array::<i64>().unwrap();
        assert_eq!(is.as_slice().unwrap(), &[1, -1]);
        assert!(matches!(view.constant("t"), Some(Cow::Borrowed(_))));
        assert!(view.constant("missing").is_none());
    }

    /// `a` -> If(cond) whose branch reads `a` from the outer scope; the other branch
    /// defines its own `a`.
    fn graph_with_subgraphs() -> GraphProto {
        let reads_outer = GraphProto {
            node: vec![NodeBuilder::new("Neg").input("a").output("y").build()],
            output: vec![ValueInfoProto::tensor("y", DataType::Float, None)],
            ..GraphProto::default()
        };
        let shadows = GraphProto {
            node: vec![
                NodeBuilder::new("Constant")
                    .output("a")
                    .attr_float("value_float", 1.0)
                    .build(),
                NodeBuilder::new("Neg").input("a").output("y").build(),
            ],
            output: vec![ValueInfoProto::tensor("y", DataType::Float, None)],
            ..GraphProto::default()
        };
        GraphProto {
            node: vec![
                NodeBuilder::new("Relu").input("x").output("a").build(),
                NodeBuilder::new("Relu").input("x").output("b").build(),
                NodeBuilder::new("If")
                    .input("cond")
                    .output("out")
                    .attr(AttributeProto::graph("then_branch", reads_outer))
                    .attr(AttributeProto::graph("else_branch", shadows))
                    .build(),
            ],
            output: vec![ValueInfoProto::tensor("out", DataType::Float, None)],
            ..GraphProto::default()
        }
    }

    #[test]
    fn subgraph_references_count_as_uses() {
        let graph = graph_with_subgraphs();
        let view = graph.view();
        assert_eq!(
            view.consumers("a"),
            [Use {
                node: 2,
                input: None
            }]
        );
        assert_eq!(view.ancestors(&["out"]), [true, false, true]);
        assert_eq!(view.topological_order().unwrap(), [0, 1, 2]);
    }

    #[test]
    fn rewire_follows_captures_but_not_shadowed_names() {
        let mut graph = graph_with_subgraphs();
        assert_eq!(graph.rewire("a", "b"), 1);
        let branches: Vec<&str> = graph.node[2]
            .subgraphs()
            .map(|g| g.node.last().map_or("", |n| n.input[0].as_str()))
            .collect();
        assert_eq!(branches, ["b", "a"]);
        graph.prune_to(&["out"]).unwrap();
        assert_eq!(
            graph.node.len(),
            2,
            "the Relu making `a` is no longer needed"
        );
    }
}
