//! Test support: a seeded random source and a builder of small ONNX networks.

#![allow(dead_code)]

use ndarray::{ArrayD, IxDyn};
use thermalzsq::onnx::{
    AttributeProto, DataType, GraphProto, Model, ModelProto, NodeBuilder, NodeProto,
    OperatorSetIdProto, TensorProto, ValueInfoProto,
};

/// SplitMix64: test data that is the same on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f32 {
        (lo + (hi - lo) * self.next()) as f32
    }

    pub fn array(&mut self, shape: &[usize], lo: f64, hi: f64) -> ArrayD<f32> {
        ArrayD::from_shape_simple_fn(IxDyn(shape), || self.range(lo, hi))
    }
}

/// A small network under construction: input `x`, nodes, initializers.
pub struct Net {
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    pub input_shape: Vec<usize>,
    pub rng: Rng,
    count: usize,
    pub opset: i64,
}

impl Net {
    pub fn new(input_shape: &[usize]) -> Self {
        Net {
            nodes: Vec::new(),
            initializers: Vec::new(),
            input_shape: input_shape.to_vec(),
            rng: Rng(42),
            count: 0,
            opset: 17,
        }
    }

    pub fn fresh(&mut self, base: &str) -> String {
        self.count += 1;
        format!("{base}_{}", self.count)
    }

    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        self.node_n(op, inputs, 1, attrs).remove(0)
    }

    pub fn node_n(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: usize,
        attrs: Vec<AttributeProto>,
    ) -> Vec<String> {
        let name = self.fresh(op);
        let outs: Vec<String> = (0..outputs).map(|i| format!("{name}_out{i}")).collect();
        let b = NodeBuilder::new(op)
            .name(&name)
            .inputs(inputs)
            .outputs(&outs)
            .attrs(attrs);
        self.nodes.push(b.build());
        outs
    }

    pub fn floats(&mut self, array: ArrayD<f32>) -> String {
        let name = self.fresh("const");
        self.initializers
            .push(TensorProto::from_array(&name, &array));
        name
    }

    pub fn ints(&mut self, values: &[i64]) -> String {
        let name = self.fresh("ints");
        self.initializers
            .push(TensorProto::from_array(&name, &ndarray::arr1(values)));
        name
    }

    pub fn scalar(&mut self, value: f32) -> String {
        let name = self.fresh("scalar");
        self.initializers.push(TensorProto::scalar(&name, value));
        name
    }

    /// Conv without bias (`pads` top, left, bottom, right).
    pub fn conv(
        &mut self,
        x: &str,
        cin: usize,
        cout: usize,
        k: usize,
        attrs: Vec<AttributeProto>,
    ) -> String {
        let group = attrs
            .iter()
            .find(|a| a.name() == "group")
            .and_then(|a| a.i)
            .unwrap_or(1) as usize;
        let bound = 1.0 / ((cin / group * k * k) as f64).sqrt();
        let w = self.rng.array(&[cout, cin / group, k, k], -bound, bound);
        let w = self.floats(w);
        self.node("Conv", &[x, &w], attrs)
    }

    /// BatchNormalization with random statistics.
    pub fn bn(&mut self, x: &str, c: usize) -> String {
        let gamma = self.rng.array(&[c], 0.5, 1.5);
        let beta = self.rng.array(&[c], -0.2, 0.2);
        let mean = self.rng.array(&[c], -0.3, 0.3);
        let var = self.rng.array(&[c], 0.2, 1.2);
        let names: Vec<String> = [gamma, beta, mean, var]
            .into_iter()
            .map(|a| self.floats(a))
            .collect();
        let inputs: Vec<&str> = std::iter::once(x)
            .chain(names.iter().map(String::as_str))
            .collect();
        self.node(
            "BatchNormalization",
            &inputs,
            vec![AttributeProto::float("epsilon", 1e-3)],
        )
    }

    pub fn model(self, output: &str) -> Model {
        let dims: Vec<i64> = self.input_shape.iter().map(|&d| d as i64).collect();
        let graph = GraphProto {
            node: self.nodes,
            initializer: self.initializers,
            input: vec![ValueInfoProto::tensor("x", DataType::Float, Some(&dims))],
            output: vec![ValueInfoProto::tensor(output, DataType::Float, None)],
            name: Some("test".into()),
            ..GraphProto::default()
        };
        Model::from_proto(ModelProto {
            ir_version: Some(8),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(self.opset),
                ..OperatorSetIdProto::default()
            }],
            graph: Some(graph),
            ..ModelProto::default()
        })
    }
}

pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto::ints(name, v.iter().copied())
}
