//! Appending nodes and constants to the gradient graph: fresh names, shared scalar and
//! shape constants, and the few ops whose signature changed between opsets.

use std::collections::HashMap;

use ndarray::ArrayD;

use crate::onnx::{AttributeProto, GraphProto, NodeBuilder, NodeProto, TensorProto, UniqueNames};

/// Collects the nodes and initializers of the loss and backward parts.
pub(super) struct Emitter {
    names: UniqueNames,
    pub(super) nodes: Vec<NodeProto>,
    pub(super) initializers: Vec<TensorProto>,
    /// Default-domain opset of the graph; reductions take `axes` as an input from 18
    /// (ReduceSum from 13, the minimum the gradient graph supports).
    opset: i64,
    /// Prefix of the names given to new nodes and values (the forward node they serve).
    scope: String,
    scalars: HashMap<u32, String>,
    int_vectors: HashMap<Vec<i64>, String>,
}

impl Emitter {
    pub(super) fn new(graph: &GraphProto, opset: i64) -> Self {
        Emitter {
            names: UniqueNames::new(graph),
            nodes: Vec::new(),
            initializers: Vec::new(),
            opset,
            scope: String::from("grad"),
            scalars: HashMap::new(),
            int_vectors: HashMap::new(),
        }
    }

    /// New nodes are named after `scope` (the forward node being differentiated).
    pub(super) fn set_scope(&mut self, scope: &str) {
        self.scope = format!("grad/{scope}");
    }

    pub(super) fn fresh(&mut self, base: &str) -> String {
        self.names.fresh(base)
    }

    /// One node with one output; returns the output's name.
    pub(super) fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        self.op_n(op, inputs, 1, attrs).remove(0)
    }

    /// One node with `outputs` outputs.
    pub(super) fn op_n(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: usize,
        attrs: Vec<AttributeProto>,
    ) -> Vec<String> {
        let name = self.names.fresh(&format!("{}/{op}", self.scope));
        let outs: Vec<String> = (0..outputs)
            .map(|i| self.names.fresh(&format!("{name}_output_{i}")))
            .collect();
        let node = NodeBuilder::new(op)
            .name(&name)
            .inputs(inputs)
            .outputs(&outs)
            .attrs(attrs);
        self.nodes.push(node.build());
        outs
    }

    /// A float32 constant holding `array`.
    pub(super) fn tensor(&mut self, base: &str, array: &ArrayD<f32>) -> String {
        let name = self.names.fresh(&format!("{}/{base}", self.scope));
        self.initializers
            .push(TensorProto::from_array(&name, array));
        name
    }

    /// A float32 scalar constant (shared between all nodes that use the same value).
    pub(super) fn scalar(&mut self, value: f32) -> String {
        if let Some(name) = self.scalars.get(&value.to_bits()) {
            return name.clone();
        }
        let name = self.names.fresh(&format!("grad/const/{value}"));
        self.initializers.push(TensorProto::scalar(&name, value));
        self.scalars.insert(value.to_bits(), name.clone());
        name
    }

    /// A 1-D int64 constant (axes, shapes, pads), shared like scalars.
    pub(super) fn ints(&mut self, values: &[i64]) -> String {
        if let Some(name) = self.int_vectors.get(values) {
            return name.clone();
        }
        let name = self.names.fresh("grad/const/ints");
        let array = ndarray::Array1::from(values.to_vec());
        self.initializers
            .push(TensorProto::from_array(&name, &array));
        self.int_vectors.insert(values.to_vec(), name.clone());
        name
    }

    pub(super) fn mul(&mut self, a: &str, b: &str) -> String {
        self.op("Mul", &[a, b], vec![])
    }

    pub(super) fn add(&mut self, a: &str, b: &str) -> String {
        self.op("Add", &[a, b], vec![])
    }

    pub(super) fn sub(&mut self, a: &str, b: &str) -> String {
        self.op("Sub", &[a, b], vec![])
    }

    /// `x` scaled by a constant.
    pub(super) fn scale(&mut self, x: &str, factor: f32) -> String {
        let k = self.scalar(factor);
        self.mul(x, &k)
    }

    pub(super) fn reshape(&mut self, x: &str, shape: &[usize]) -> String {
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let shape = self.ints(&dims);
        self.op("Reshape", &[x, &shape], vec![])
    }

    /// A float32 tensor of zeros (ConstantOfShape: nothing stored in the model).
    pub(super) fn zeros(&mut self, shape: &[usize]) -> String {
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let shape = self.ints(&dims);
        let zero = TensorProto::from_array("value", &ndarray::arr1(&[0.0f32]));
        self.op(
            "ConstantOfShape",
            &[&shape],
            vec![AttributeProto::tensor("value", zero)],
        )
    }

    /// A reduction over `axes` (all axes when empty). `axes` is an attribute before
    /// opset 18 and an input from 18 on, except for ReduceSum (an input from 13).
    pub(super) fn reduce(&mut self, op: &str, x: &str, axes: &[i64], keepdims: bool) -> String {
        let keep = AttributeProto::int("keepdims", i64::from(keepdims));
        let axes_as_input = op == "ReduceSum" || self.opset >= 18;
        if axes.is_empty() {
            self.op(op, &[x], vec![keep])
        } else if axes_as_input {
            let axes = self.ints(axes);
            self.op(op, &[x, &axes], vec![keep])
        } else {
            self.op(
                op,
                &[x],
                vec![keep, AttributeProto::ints("axes", axes.iter().copied())],
            )
        }
    }

    /// The sum of several gradient contributions (the value itself when there is one).
    pub(super) fn sum(&mut self, terms: &[String]) -> String {
        match terms {
            [one] => one.clone(),
            _ => {
                let inputs: Vec<&str> = terms.iter().map(String::as_str).collect();
                self.op("Sum", &inputs, vec![])
            }
        }
    }
}
