//! AttributeProto: a node's named parameter, of one of fifteen types.

use super::super::codec::{Encoder, Field, Message};
use super::super::error::Result;
use super::super::wire::Sink;
use super::{GraphProto, SparseTensorProto, TensorProto, TypeProto};

/// The `type` discriminator of an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeType {
    Undefined = 0,
    Float = 1,
    Int = 2,
    String = 3,
    Tensor = 4,
    Graph = 5,
    Floats = 6,
    Ints = 7,
    Strings = 8,
    Tensors = 9,
    Graphs = 10,
    SparseTensor = 11,
    SparseTensors = 12,
    TypeProto = 13,
    TypeProtos = 14,
}

impl AttributeType {
    pub fn from_i32(value: i32) -> Option<Self> {
        use AttributeType::*;
        Some(match value {
            0 => Undefined,
            1 => Float,
            2 => Int,
            3 => String,
            4 => Tensor,
            5 => Graph,
            6 => Floats,
            7 => Ints,
            8 => Strings,
            9 => Tensors,
            10 => Graphs,
            11 => SparseTensor,
            12 => SparseTensors,
            13 => TypeProto,
            14 => TypeProtos,
            _ => return None,
        })
    }
}

/// A named attribute. Exactly one value field is meant to be used, the one `type`
/// names; inside a function body `ref_attr_name` may refer to the caller's instead.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttributeProto {
    pub name: Option<String>,
    pub f: Option<f32>,
    pub i: Option<i64>,
    pub s: Option<Vec<u8>>,
    // The message-valued fields are boxed: inline they made every attribute 1.9 kB,
    // though at most one of them is ever set (see wire.rs on memory per input byte).
    pub t: Option<Box<TensorProto>>,
    pub g: Option<Box<GraphProto>>,
    pub floats: Vec<f32>,
    pub ints: Vec<i64>,
    pub strings: Vec<Vec<u8>>,
    pub tensors: Vec<TensorProto>,
    pub graphs: Vec<GraphProto>,
    pub doc_string: Option<String>,
    pub tp: Option<Box<TypeProto>>,
    pub type_protos: Vec<TypeProto>,
    /// The [`AttributeType`] as stored (kept raw so unknown values survive).
    pub r#type: Option<i32>,
    pub ref_attr_name: Option<String>,
    pub sparse_tensor: Option<Box<SparseTensorProto>>,
    pub sparse_tensors: Vec<SparseTensorProto>,
    pub unknown_fields: Vec<u8>,
}

impl AttributeProto {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// The declared type, if it is one ONNX defines.
    pub fn attribute_type(&self) -> Option<AttributeType> {
        self.r#type.and_then(AttributeType::from_i32)
    }
}

impl Message for AttributeProto {
    const NAME: &'static str = "AttributeProto";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => f.string("name", &mut self.name),
            2 => f.float("f", &mut self.f),
            3 => f.int64("i", &mut self.i),
            4 => f.bytes("s", &mut self.s),
            5 => f.boxed("t", &mut self.t),
            6 => f.boxed("g", &mut self.g),
            7 => f.floats("floats", &mut self.floats),
            8 => f.int64s("ints", &mut self.ints),
            9 => f.bytes_list("strings", &mut self.strings),
            10 => f.messages("tensors", &mut self.tensors),
            11 => f.messages("graphs", &mut self.graphs),
            13 => f.string("doc_string", &mut self.doc_string),
            14 => f.boxed("tp", &mut self.tp),
            15 => f.messages("type_protos", &mut self.type_protos),
            20 => f.int32("type", &mut self.r#type),
            21 => f.string("ref_attr_name", &mut self.ref_attr_name),
            22 => f.boxed("sparse_tensor", &mut self.sparse_tensor),
            23 => f.messages("sparse_tensors", &mut self.sparse_tensors),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        out.string(1, self.name.as_deref());
        out.float(2, self.f);
        out.int64(3, self.i);
        out.bytes(4, self.s.as_deref());
        out.message(5, self.t.as_deref());
        out.message(6, self.g.as_deref());
        out.floats_unpacked(7, &self.floats);
        out.int64s_unpacked(8, &self.ints);
        out.bytes_list(9, &self.strings);
        out.messages(10, &self.tensors);
        out.messages(11, &self.graphs);
        out.string(13, self.doc_string.as_deref());
        out.message(14, self.tp.as_deref());
        out.messages(15, &self.type_protos);
        out.int32(20, self.r#type);
        out.string(21, self.ref_attr_name.as_deref());
        out.message(22, self.sparse_tensor.as_deref());
        out.messages(23, &self.sparse_tensors);
        out.raw(&self.unknown_fields);
    }
}
