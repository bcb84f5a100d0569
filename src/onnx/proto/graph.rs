//! GraphProto, NodeProto, ValueInfoProto and TensorAnnotation.

use super::super::codec::{Encoder, Field, Message};
use super::super::error::Result;
use super::super::wire::Sink;
use super::{AttributeProto, SparseTensorProto, StringStringEntryProto, TensorProto, TypeProto};

/// A computation graph: nodes (in topological order, as ONNX requires), its
/// initializers (constant tensors), inputs, outputs and known value types.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GraphProto {
    pub node: Vec<NodeProto>,
    pub name: Option<String>,
    pub initializer: Vec<TensorProto>,
    pub doc_string: Option<String>,
    pub input: Vec<ValueInfoProto>,
    pub output: Vec<ValueInfoProto>,
    /// Types and shapes of intermediate values, where known.
    pub value_info: Vec<ValueInfoProto>,
    /// Which tensors hold the quantization parameters of which (used by some tools).
    pub quantization_annotation: Vec<TensorAnnotation>,
    pub sparse_initializer: Vec<SparseTensorProto>,
    pub metadata_props: Vec<StringStringEntryProto>,
    pub unknown_fields: Vec<u8>,
}

impl Message for GraphProto {
    const NAME: &'static str = "GraphProto";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => f.messages("node", &mut self.node),
            2 => f.string("name", &mut self.name),
            5 => f.messages("initializer", &mut self.initializer),
            10 => f.string("doc_string", &mut self.doc_string),
            11 => f.messages("input", &mut self.input),
            12 => f.messages("output", &mut self.output),
            13 => f.messages("value_info", &mut self.value_info),
            14 => f.messages("quantization_annotation", &mut self.quantization_annotation),
            15 => f.messages("sparse_initializer", &mut self.sparse_initializer),
            16 => f.messages("metadata_props", &mut self.metadata_props),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        out.messages(1, &self.node);
        out.string(2, self.name.as_deref());
        out.messages(5, &self.initializer);
        out.string(10, self.doc_string.as_deref());
        out.messages(11, &self.input);
        out.messages(12, &self.output);
        out.messages(13, &self.value_info);
        out.messages(14, &self.quantization_annotation);
        out.messages(15, &self.sparse_initializer);
        out.messages(16, &self.metadata_props);
        out.raw(&self.unknown_fields);
    }
}

/// One operator application. An empty input name stands for an omitted optional input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeProto {
    pub input: Vec<String>,
    pub output: Vec<String>,
    pub name: Option<String>,
    pub op_type: Option<String>,
    pub attribute: Vec<AttributeProto>,
    pub doc_string: Option<String>,
    /// Operator domain; absent or `""` is the default ONNX domain.
    pub domain: Option<String>,
    /// Selects one of several functions of the same name (IR 10).
    pub overload: Option<String>,
    pub metadata_props: Vec<StringStringEntryProto>,
    /// Fields not modelled here (e.g. `device_configurations`, 10), verbatim.
    pub unknown_fields: Vec<u8>,
}

impl NodeProto {
    pub fn op_type(&self) -> &str {
        self.op_type.as_deref().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    pub fn domain(&self) -> &str {
        self.domain.as_deref().unwrap_or("")
    }

    /// Whether the op is a standard ONNX one (domain `""` or its alias `"ai.onnx"`), not
    /// a contrib or custom op that only shares its name.
    pub fn is_default_domain(&self) -> bool {
        matches!(self.domain(), "" | "ai.onnx")
    }

    /// The attribute called `name`.
    pub fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.attribute.iter().find(|a| a.name() == name)
    }

    pub fn attr_int(&self, name: &str) -> Option<i64> {
        self.attr(name).and_then(|a| a.i)
    }

    pub fn attr_float(&self, name: &str) -> Option<f32> {
        self.attr(name).and_then(|a| a.f)
    }

    pub fn attr_ints(&self, name: &str) -> Option<&[i64]> {
        self.attr(name).map(|a| a.ints.as_slice())
    }

    pub fn attr_floats(&self, name: &str) -> Option<&[f32]> {
        self.attr(name).map(|a| a.floats.as_slice())
    }

    /// A string attribute, if present and valid UTF-8.
    pub fn attr_str(&self, name: &str) -> Option<&str> {
        self.attr(name)
            .and_then(|a| a.s.as_deref())
            .and_then(|s| std::str::from_utf8(s).ok())
    }

    pub fn attr_tensor(&self, name: &str) -> Option<&TensorProto> {
        self.attr(name).and_then(|a| a.t.as_deref())
    }

    /// Subgraphs held by attributes (bodies of If, Loop, Scan...).
    pub fn subgraphs(&self) -> impl Iterator<Item = &GraphProto> {
        self.attribute
            .iter()
            .flat_map(|a| a.g.as_deref().into_iter().chain(a.graphs.iter()))
    }

    pub(crate) fn subgraphs_mut(&mut self) -> impl Iterator<Item = &mut GraphProto> {
        self.attribute
            .iter_mut()
            .flat_map(|a| a.g.as_deref_mut().into_iter().chain(a.graphs.iter_mut()))
    }
}

impl Message for NodeProto {
    const NAME: &'static str = "NodeProto";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => f.strings("input", &mut self.input),
            2 => f.strings("output", &mut self.output),
            3 => f.string("name", &mut self.name),
            4 => f.string("op_type", &mut self.op_type),
            5 => f.messages("attribute", &mut self.attribute),
            6 => f.string("doc_string", &mut self.doc_string),
            7 => f.string("domain", &mut self.domain),
            8 => f.string("overload", &mut self.overload),
            9 => f.messages("metadata_props", &mut self.metadata_props),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        out.strings(1, &self.input);
        out.strings(2, &self.output);
        out.string(3, self.name.as_deref());
        out.string(4, self.op_type.as_deref());
        out.messages(5, &self.attribute);
        out.string(6, self.doc_string.as_deref());
        out.string(7, self.domain.as_deref());
        out.string(8, self.overload.as_deref());
        out.messages(9, &self.metadata_props);
        out.raw(&self.unknown_fields);
    }
}

/// A named value and its type (graph inputs, outputs, `value_info`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValueInfoProto {
    pub name: Option<String>,
    pub r#type: Option<TypeProto>,
    pub doc_string: Option<String>,
    pub metadata_props: Vec<StringStringEntryProto>,
    pub unknown_fields: Vec<u8>,
}

impl ValueInfoProto {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
}

impl Message for ValueInfoProto {
    const NAME: &'static str = "ValueInfoProto";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => f.string("name", &mut self.name),
            2 => f.message("type", &mut self.r#type),
            3 => f.string("doc_string", &mut self.doc_string),
            4 => f.messages("metadata_props", &mut self.metadata_props),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        out.string(1, self.name.as_deref());
        out.message(2, self.r#type.as_ref());
        out.string(3, self.doc_string.as_deref());
        out.messages(4, &self.metadata_props);
        out.raw(&self.unknown_fields);
    }
}

/// Names the tensors holding a tensor's quantization parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TensorAnnotation {
    pub tensor_name: Option<String>,
    pub quant_parameter_tensor_names: Vec<StringStringEntryProto>,
    pub unknown_fields: Vec<u8>,
}

impl Message for TensorAnnotation {
    const NAME: &'static str = "TensorAnnotation";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => f.string("tensor_name", &mut self.tensor_name),
            2 => f.messages(
                "quant_parameter_tensor_names",
                &mut self.quant_parameter_tensor_names,
            ),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        out.string(1, self.tensor_name.as_deref());
        out.messages(2, &self.quant_parameter_tensor_names);
        out.raw(&self.unknown_fields);
    }
}
