//! Graph surgery on a [`GraphProto`]: new names, initializers and nodes, rewiring,
//! removal, pruning, and new outputs. Every edit keeps the node list topologically
//! sorted (ONNX Runtime requires it) or says why it cannot.

use std::collections::HashSet;

use super::error::{OnnxError, Result};
use super::proto::{
    DataType, GraphProto, NodeProto, TensorProto, TypeProto, TypeValue, ValueInfoProto,
};
use super::view::{captured_names, defined_names, node_inputs};

/// Hands out names not used anywhere in a graph (values, nodes, subgraphs included).
#[derive(Debug, Clone, Default)]
pub struct UniqueNames {
    taken: HashSet<String>,
}

impl UniqueNames {
    pub fn new(graph: &GraphProto) -> Self {
        let mut names = UniqueNames::default();
        names.collect(graph);
        names
    }

    fn collect(&mut self, graph: &GraphProto) {
        let values = graph
            .input
            .iter()
            .chain(&graph.output)
            .chain(&graph.value_info)
            .map(|v| v.name());
        self.taken.extend(values.map(str::to_string));
        self.taken
            .extend(graph.initializer.iter().map(|t| t.name().to_string()));
        for node in &graph.node {
            self.taken
                .extend(node.input.iter().chain(&node.output).cloned());
            self.taken.insert(node.name().to_string());
            for g in node.subgraphs() {
                self.collect(g);
            }
        }
        self.taken
            .extend(defined_names(graph).into_iter().map(str::to_string));
    }

    /// `base` itself if free, else `base_1`, `base_2`, ...; the name is then taken.
    pub fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut n = 0;
        while name.is_empty() || self.taken.contains(&name) {
            n += 1;
            name = format!("{base}_{n}");
        }
        self.taken.insert(name.clone());
        name
    }

    pub fn is_taken(&self, name: &str) -> bool {
        self.taken.contains(name)
    }
}

impl GraphProto {
    /// Adds a constant tensor; its name must not already name a value of the graph.
    pub fn add_initializer(&mut self, tensor: TensorProto) -> Result<()> {
        let name = tensor.name();
        if name.is_empty() {
            return Err(OnnxError::Graph("an initializer needs a name".into()));
        }
        if defined_names(self).contains(name) {
            return Err(OnnxError::Graph(format!(
                "cannot add initializer '{name}': the graph already has a value of that name"
            )));
        }
        self.initializer.push(tensor);
        Ok(())
    }

    /// Inserts `node` right after the last producer of its inputs, and checks that no
    /// node before that point already consumes its outputs; returns its index.
    pub fn insert_node(&mut self, node: NodeProto) -> Result<usize> {
        let view = self.view();
        let label = || format!("'{}' ({})", node.name(), node.op_type());
        for output in node.output.iter().filter(|o| !o.is_empty()) {
            if let Some(p) = view.producer(output) {
                return Err(OnnxError::Graph(format!(
                    "cannot insert node {}: its output '{output}' is already produced by node '{}'",
                    label(),
                    self.node[p].name()
                )));
            }
        }
        let after = node_inputs(&node)
            .filter_map(|(name, _)| view.producer(name))
            .max()
            .map_or(0, |p| p + 1);
        let first_use = node
            .output
            .iter()
            .flat_map(|o| view.consumers(o).iter().map(move |u| (u.node, o)))
            .min_by_key(|(i, _)| *i);
        if let Some((consumer, value)) = first_use.filter(|(i, _)| *i < after) {
            return Err(OnnxError::Graph(format!(
                "cannot insert node {}: node '{}' consumes its output '{value}' before the node's own \
                 inputs are computed",
                label(),
                self.node[consumer].name()
            )));
        }
        self.node.insert(after, node);
        Ok(after)
    }

    /// Makes every node that reads `old` read `new` instead, except the nodes that
    /// compute `new` (its producer and everything upstream of it, which would
    /// otherwise form a cycle). Subgraphs that capture `old` from this scope follow.
    /// Graph outputs keep their names. Returns how many references changed.
    pub fn rewire(&mut self, old: &str, new: &str) -> usize {
        let upstream = self.view().ancestors(&[new]);
        let mut changed = 0;
        for (node, _) in self.node.iter_mut().zip(upstream).filter(|(_, up)| !up) {
            changed += replace_input(node, old, new);
        }
        changed
    }

    /// Removes the nodes at `indices` (references to their outputs are left as they
    /// are; [`GraphProto::prune_to`] is the edit that keeps a graph whole).
    pub fn remove_nodes(&mut self, indices: &[usize]) {
        let doomed: HashSet<usize> = indices.iter().copied().collect();
        let mut i = 0;
        self.node.retain(|_| {
            i += 1;
            !doomed.contains(&(i - 1))
        });
    }

    /// Declares `name` a graph output of element type `elem_type`; its shape comes
    /// from the graph's `value_info` when known. Already an output: nothing to do.
    pub fn add_output(&mut self, name: &str, elem_type: DataType) -> Result<()> {
        if self.output.iter().any(|o| o.name() == name) {
            return Ok(());
        }
        if !defined_names(self).contains(name) {
            return Err(OnnxError::Graph(format!(
                "cannot add output '{name}': no node, input or initializer makes it"
            )));
        }
        let mut r#type = TypeProto::tensor(elem_type, None);
        if let Some(TypeValue::Tensor(t)) = &mut r#type.value {
            t.shape = self.view().shape(name).cloned();
        }
        let info = ValueInfoProto {
            name: Some(name.to_string()),
            r#type: Some(r#type),
            ..ValueInfoProto::default()
        };
        self.output.push(info);
        Ok(())
    }

    /// Keeps only what computing `outputs` needs: the graph's outputs become exactly
    /// `outputs` (each must already be an output, see [`GraphProto::add_output`]),
    /// nodes that do not contribute to them are removed, then unused initializers and
    /// stale `value_info` go too (see [`GraphProto::remove_unused`]). Inputs fed at run
    /// time stay, used or not, so the model's signature does not change under the caller.
    pub fn prune_to<S: AsRef<str>>(&mut self, outputs: &[S]) -> Result<()> {
        let names: Vec<&str> = outputs.iter().map(AsRef::as_ref).collect();
        let mut kept_outputs = Vec::with_capacity(names.len());
        for name in &names {
            let info = self.output.iter().find(|o| o.name() == *name).ok_or_else(|| {
                OnnxError::Graph(format!("cannot prune to '{name}': it is not a graph output (add it with add_output)"))
            })?;
            kept_outputs.push(info.clone());
        }
        let needed = self.view().ancestors(&names);
        let mut needed = needed.into_iter();
        self.node.retain(|_| needed.next().unwrap_or(false));
        self.output = kept_outputs;
        self.remove_unused();
        Ok(())
    }

    /// Drops initializers (and their input entries), sparse initializers, `value_info`
    /// and quantization annotations that nothing in the graph refers to any more.
    pub fn remove_unused(&mut self) {
        let mut used: HashSet<String> = HashSet::new();
        for node in &self.node {
            used.extend(node_inputs(node).map(|(name, _)| name.to_string()));
        }
        used.extend(self.output.iter().map(|o| o.name().to_string()));
        let produced: HashSet<String> = self
            .node
            .iter()
            .flat_map(|n| n.output.iter().cloned())
            .collect();
        let initializers: HashSet<String> = self
            .initializer
            .iter()
            .map(|t| t.name().to_string())
            .collect();
        self.initializer.retain(|t| used.contains(t.name()));
        self.sparse_initializer
            .retain(|s| s.values.as_ref().is_some_and(|v| used.contains(v.name())));
        self.input
            .retain(|i| !initializers.contains(i.name()) || used.contains(i.name()));
        let live = |name: &str| produced.contains(name) || used.contains(name);
        self.value_info.retain(|v| live(v.name()));
        self.quantization_annotation
            .retain(|a| live(a.tensor_name.as_deref().unwrap_or("")));
    }
}

/// Replaces `old` by `new` among a node's inputs and in what its subgraphs capture;
/// returns the number of replacements.
fn replace_input(node: &mut NodeProto, old: &str, new: &str) -> usize {
    let mut changed = 0;
    for input in node.input.iter_mut().filter(|i| *i == old) {
        *input = new.to_string();
        changed += 1;
    }
    for g in node.subgraphs_mut() {
        changed += replace_captured(g, old, new);
    }
    changed
}

/// Inside a subgraph, `old` refers to the outer value only where the subgraph does
/// not define a value of that name itself.
fn replace_captured(graph: &mut GraphProto, old: &str, new: &str) -> usize {
    let mut captured = Vec::new();
    captured_names(graph, &mut captured);
    if !captured.contains(&old) {
        return 0;
    }
    let mut changed = 0;
    for node in &mut graph.node {
        changed += replace_input(node, old, new);
    }
    for output in graph.output.iter_mut().filter(|o| o.name() == old) {
        output.name = Some(new.to_string());
        changed += 1;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::NodeBuilder;

    fn chain() -> GraphProto {
        // x -> Relu(a) -> Sigmoid(b) -> Neg(c)
        GraphProto {
            node: vec![
                NodeBuilder::new("Relu")
                    .name("relu")
                    .input("x")
                    .output("a")
                    .build(),
                NodeBuilder::new("Sigmoid")
                    .name("sig")
                    .input("a")
                    .output("b")
                    .build(),
                NodeBuilder::new("Neg")
                    .name("neg")
                    .input("b")
                    .output("c")
                    .build(),
            ],
            input: vec![ValueInfoProto::tensor("x", DataType::Float, Some(&[1]))],
            output: vec![ValueInfoProto::tensor("c", DataType::Float, Some(&[1]))],
            ..GraphProto::default()
        }
    }

    #[test]
    fn fresh_names_avoid_every_existing_name() {
        let mut names = UniqueNames::new(&chain());
        assert_eq!(names.fresh("a"), "a_1");
        assert_eq!(names.fresh("a"), "a_2");
        assert_eq!(names.fresh("relu"), "relu_1");
        assert_eq!(names.fresh("new"), "new");
        assert!(names.is_taken("new"));
    }

    #[test]
    fn insert_goes_after_the_producers_and_rewire_skips_upstream() {
        let mut g = chain();
        // Identity on `a`, then every other reader of `a` reads its copy.
        let at = g
            .insert_node(
                NodeBuilder::new("Identity")
                    .name("copy")
                    .input("a")
                    .output("a2")
                    .build(),
            )
            .unwrap();
        assert_eq!(at, 1);
        assert_eq!(g.rewire("a", "a2"), 1);
        assert_eq!(g.node[2].input, ["a2"]);
        assert_eq!(g.node[1].input, ["a"], "the copy itself still reads a");
        assert_eq!(g.view().topological_order().unwrap(), [0, 1, 2, 3]);
    }

    #[test]
    fn insert_refuses_clashes_and_impossible_orders() {
        let mut g = chain();
        let err = g
            .insert_node(NodeBuilder::new("Relu").input("x").output("b").build())
            .unwrap_err();
        assert!(
            err.to_string().contains("already produced by node 'sig'"),
            "{err}"
        );
        // A node reading c (last) whose output `a`-like value is read by sig: impossible.
        g.node[1].input[0] = "early".into();
        let err = g
            .insert_node(NodeBuilder::new("Neg").input("c").output("early").build())
            .unwrap_err();
        assert!(
            err.to_string().contains("consumes its output 'early'"),
            "{err}"
        );
    }

    #[test]
    fn prune_keeps_what_the_outputs_need() {
        let mut g = chain();
        g.initializer.push(TensorProto::scalar("unused", 1.0f32));
        g.value_info
            .push(ValueInfoProto::tensor("b", DataType::Float, Some(&[1])));
        g.add_output("a", DataType::Float).unwrap();
        g.prune_to(&["a"]).unwrap();
        assert_eq!(g.node.len(), 1);
        assert_eq!(g.output.len(), 1);
        assert!(g.initializer.is_empty() && g.value_info.is_empty());
        assert!(g.prune_to(&["c"]).is_err(), "no longer an output");
    }

    #[test]
    fn topological_order_sorts_and_finds_cycles() {
        let mut g = chain();
        g.node.swap(0, 2);
        assert_eq!(g.view().topological_order().unwrap(), [2, 1, 0]);
        g.node[2].input[0] = "c".into();
        let err = g.view().topological_order().unwrap_err().to_string();
        assert!(err.contains("cycle"), "{err}");
    }
}
