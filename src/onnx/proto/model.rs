//! ModelProto and the messages that hang off it directly.

use super::super::codec::{Encoder, Field, Message};
use super::super::error::Result;
use super::super::wire::Sink;
use super::{AttributeProto, GraphProto, NodeProto, ValueInfoProto};

/// A whole model: graph, opsets, metadata, functions and training information.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelProto {
    pub ir_version: Option<i64>,
    pub producer_name: Option<String>,
    pub producer_version: Option<String>,
    pub domain: Option<String>,
    pub model_version: Option<i64>,
    pub doc_string: Option<String>,
    pub graph: Option<GraphProto>,
    pub opset_import: Vec<OperatorSetIdProto>,
    /// Free-form metadata, e.g. a detector's `names`.
    pub metadata_props: Vec<StringStringEntryProto>,
    pub training_info: Vec<TrainingInfoProto>,
    pub functions: Vec<FunctionProto>,
    /// Fields not modelled here (e.g. `configuration`, 26), verbatim.
    pub unknown_fields: Vec<u8>,
}

impl ModelProto {
    /// The opset version imported for `domain`; `""` and `"ai.onnx"` both name the
    /// default domain.
    pub fn opset_version(&self, domain: &str) -> Option<i64> {
        let default = |d: &str| d.is_empty() || d == "ai.onnx";
        self.opset_import
            .iter()
            .find(|o| {
                let d = o.domain.as_deref().unwrap_or("");
                d == domain || (default(d) && default(domain))
            })
            .map(|o| o.version.unwrap_or(0))
    }
}

impl Message for ModelProto {
    const NAME: &'static str = "ModelProto";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => f.int64("ir_version", &mut self.ir_version),
            2 => f.string("producer_name", &mut self.producer_name),
            3 => f.string("producer_version", &mut self.producer_version),
            4 => f.string("domain", &mut self.domain),
            5 => f.int64("model_version", &mut self.model_version),
            6 => f.string("doc_string", &mut self.doc_string),
            7 => f.message("graph", &mut self.graph),
            8 => f.messages("opset_import", &mut self.opset_import),
            14 => f.messages("metadata_props", &mut self.metadata_props),
            20 => f.messages("training_info", &mut self.training_info),
            25 => f.messages("functions", &mut self.functions),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        out.int64(1, self.ir_version);
        out.string(2, self.producer_name.as_deref());
        out.string(3, self.producer_version.as_deref());
        out.string(4, self.domain.as_deref());
        out.int64(5, self.model_version);
        out.string(6, self.doc_string.as_deref());
        out.message(7, self.graph.as_ref());
        out.messages(8, &self.opset_import);
        out.messages(14, &self.metadata_props);
        out.messages(20, &self.training_info);
        out.messages(25, &self.functions);
        out.raw(&self.unknown_fields);
    }
}

/// An operator set the model uses: domain (`""` is the default ONNX domain) and version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperatorSetIdProto {
    pub domain: Option<String>,
    pub version: Option<i64>,
    pub unknown_fields: Vec<u8>,
}

impl Message for OperatorSetIdProto {
    const NAME: &'static str = "OperatorSetIdProto";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => f.string("domain", &mut self.domain),
            2 => f.int64("version", &mut self.version),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        out.string(1, self.domain.as_deref());
        out.int64(2, self.version);
        out.raw(&self.unknown_fields);
    }
}

/// A key/value pair (metadata, external-data locations, bindings).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StringStringEntryProto {
    pub key: Option<String>,
    pub value: Option<String>,
    pub unknown_fields: Vec<u8>,
}

impl StringStringEntryProto {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        StringStringEntryProto {
            key: Some(key.into()),
            value: Some(value.into()),
            unknown_fields: Vec::new(),
        }
    }

    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or("")
    }

    pub fn value(&self) -> &str {
        self.value.as_deref().unwrap_or("")
    }
}

impl Message for StringStringEntryProto {
    const NAME: &'static str = "StringStringEntryProto";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => f.string("key", &mut self.key),
            2 => f.string("value", &mut self.value),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        out.string(1, self.key.as_deref());
        out.string(2, self.value.as_deref());
        out.raw(&self.unknown_fields);
    }
}

/// Training information: an initialization graph and an algorithm (training step) graph.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingInfoProto {
    // Boxed: two inline graphs made each (repeated) training info 600 bytes.
    pub initialization: Option<Box<GraphProto>>,
    pub algorithm: Option<Box<GraphProto>>,
    pub initialization_binding: Vec<StringStringEntryProto>,
    pub update_binding: Vec<StringStringEntryProto>,
    pub unknown_fields: Vec<u8>,
}

impl Message for TrainingInfoProto {
    const NAME: &'static str = "TrainingInfoProto";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => f.boxed("initialization", &mut self.initialization),
            2 => f.boxed("algorithm", &mut self.algorithm),
            3 => f.messages("initialization_binding", &mut self.initialization_binding),
            4 => f.messages("update_binding", &mut self.update_binding),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        out.message(1, self.initialization.as_deref());
        out.message(2, self.algorithm.as_deref());
        out.messages(3, &self.initialization_binding);
        out.messages(4, &self.update_binding);
        out.raw(&self.unknown_fields);
    }
}

/// A model-local function: an operator defined by a body of nodes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FunctionProto {
    pub name: Option<String>,
    pub input: Vec<String>,
    pub output: Vec<String>,
    /// Names of attributes without defaults.
    pub attribute: Vec<String>,
    pub node: Vec<NodeProto>,
    pub doc_string: Option<String>,
    pub opset_import: Vec<OperatorSetIdProto>,
    pub domain: Option<String>,
    /// Attributes with default values.
    pub attribute_proto: Vec<AttributeProto>,
    pub value_info: Vec<ValueInfoProto>,
    pub overload: Option<String>,
    pub metadata_props: Vec<StringStringEntryProto>,
    pub unknown_fields: Vec<u8>,
}

impl Message for FunctionProto {
    const NAME: &'static str = "FunctionProto";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => f.string("name", &mut self.name),
            4 => f.strings("input", &mut self.input),
            5 => f.strings("output", &mut self.output),
            6 => f.strings("attribute", &mut self.attribute),
            7 => f.messages("node", &mut self.node),
            8 => f.string("doc_string", &mut self.doc_string),
            9 => f.messages("opset_import", &mut self.opset_import),
            10 => f.string("domain", &mut self.domain),
            11 => f.messages("attribute_proto", &mut self.attribute_proto),
            12 => f.messages("value_info", &mut self.value_info),
            13 => f.string("overload", &mut self.overload),
            14 => f.messages("metadata_props", &mut self.metadata_props),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        out.string(1, self.name.as_deref());
        out.strings(4, &self.input);
        out.strings(5, &self.output);
        out.strings(6, &self.attribute);
        out.messages(7, &self.node);
        out.string(8, self.doc_string.as_deref());
        out.messages(9, &self.opset_import);
        out.string(10, self.domain.as_deref());
        out.messages(11, &self.attribute_proto);
        out.messages(12, &self.value_info);
        out.string(13, self.overload.as_deref());
        out.messages(14, &self.metadata_props);
        out.raw(&self.unknown_fields);
    }
}
