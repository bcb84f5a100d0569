//! TypeProto (tensor, sequence, map, optional, sparse tensor, opaque) and shapes.

use super::super::codec::{Encoder, Field, Message};
use super::super::error::Result;
use super::super::wire::Sink;
use super::DataType;

/// The type of a value: one of the `value` variants, and an optional denotation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypeProto {
    pub value: Option<TypeValue>,
    pub denotation: Option<String>,
    pub unknown_fields: Vec<u8>,
}

/// The `value` oneof of TypeProto.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeValue {
    Tensor(TensorType),
    Sequence(SequenceType),
    Map(MapType),
    Opaque(OpaqueType),
    SparseTensor(SparseTensorType),
    Optional(OptionalType),
}

impl TypeProto {
    pub fn tensor_type(&self) -> Option<&TensorType> {
        match &self.value {
            Some(TypeValue::Tensor(t)) => Some(t),
            _ => None,
        }
    }

    /// The element type of a tensor type.
    pub fn elem_type(&self) -> Option<DataType> {
        self.tensor_type()
            .and_then(|t| DataType::from_i32(t.elem_type?))
    }

    /// The shape of a tensor type, if it has one (absent means any rank).
    pub fn shape(&self) -> Option<&TensorShapeProto> {
        self.tensor_type().and_then(|t| t.shape.as_ref())
    }

    /// [`TypeProto::shape`], to edit.
    pub fn shape_mut(&mut self) -> Option<&mut TensorShapeProto> {
        match &mut self.value {
            Some(TypeValue::Tensor(t)) => t.shape.as_mut(),
            _ => None,
        }
    }
}

/// Reads a oneof member into `$slot`, merging with the same variant if already set.
macro_rules! read_oneof {
    ($field:expr, $name:literal, $slot:expr, $variant:path) => {{
        let current = match &mut $slot {
            Some($variant(v)) => Some(v),
            _ => None,
        };
        if let Some(fresh) = $field.oneof($name, current)? {
            $slot = Some($variant(fresh));
        }
        Ok(())
    }};
}

impl Message for TypeProto {
    const NAME: &'static str = "TypeProto";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => read_oneof!(f, "tensor_type", self.value, TypeValue::Tensor),
            4 => read_oneof!(f, "sequence_type", self.value, TypeValue::Sequence),
            5 => read_oneof!(f, "map_type", self.value, TypeValue::Map),
            6 => f.string("denotation", &mut self.denotation),
            7 => read_oneof!(f, "opaque_type", self.value, TypeValue::Opaque),
            8 => read_oneof!(f, "sparse_tensor_type", self.value, TypeValue::SparseTensor),
            9 => read_oneof!(f, "optional_type", self.value, TypeValue::Optional),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        // Field-number order puts the denotation (6) between the variants 1, 4, 5 and 7, 8, 9.
        match &self.value {
            Some(TypeValue::Tensor(t)) => out.message(1, Some(t)),
            Some(TypeValue::Sequence(s)) => out.message(4, Some(s)),
            Some(TypeValue::Map(m)) => out.message(5, Some(m)),
            _ => {}
        }
        out.string(6, self.denotation.as_deref());
        match &self.value {
            Some(TypeValue::Opaque(o)) => out.message(7, Some(o)),
            Some(TypeValue::SparseTensor(s)) => out.message(8, Some(s)),
            Some(TypeValue::Optional(o)) => out.message(9, Some(o)),
            _ => {}
        }
        out.raw(&self.unknown_fields);
    }
}

/// A dense tensor type: element type and (optional) shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TensorType {
    /// The [`DataType`] as stored.
    pub elem_type: Option<i32>,
    pub shape: Option<TensorShapeProto>,
    pub unknown_fields: Vec<u8>,
}

impl Message for TensorType {
    const NAME: &'static str = "TypeProto.Tensor";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => f.int32("elem_type", &mut self.elem_type),
            2 => f.message("shape", &mut self.shape),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        out.int32(1, self.elem_type);
        out.message(2, self.shape.as_ref());
        out.raw(&self.unknown_fields);
    }
}

/// A sparse tensor type: element type and (optional) shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseTensorType {
    pub elem_type: Option<i32>,
    pub shape: Option<TensorShapeProto>,
    pub unknown_fields: Vec<u8>,
}

impl Message for SparseTensorType {
    const NAME: &'static str = "TypeProto.SparseTensor";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => f.int32("elem_type", &mut self.elem_type),
            2 => f.message("shape", &mut self.shape),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        out.int32(1, self.elem_type);
        out.message(2, self.shape.as_ref());
        out.raw(&self.unknown_fields);
    }
}

/// A sequence of values of one type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SequenceType {
    pub elem_type: Option<Box<TypeProto>>,
    pub unknown_fields: Vec<u8>,
}

impl Message for SequenceType {
    const NAME: &'static str = "TypeProto.Sequence";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => f.boxed("elem_type", &mut self.elem_type),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        out.message(1, self.elem_type.as_deref());
        out.raw(&self.unknown_fields);
    }
}

/// A map from a scalar key type to values of one type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MapType {
    pub key_type: Option<i32>,
    pub value_type: Option<Box<TypeProto>>,
    pub unknown_fields: Vec<u8>,
}

impl Message for MapType {
    const NAME: &'static str = "TypeProto.Map";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => f.int32("key_type", &mut self.key_type),
            2 => f.boxed("value_type", &mut self.value_type),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        out.int32(1, self.key_type);
        out.message(2, self.value_type.as_deref());
        out.raw(&self.unknown_fields);
    }
}

/// A value that may be absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OptionalType {
    pub elem_type: Option<Box<TypeProto>>,
    pub unknown_fields: Vec<u8>,
}

impl Message for OptionalType {
    const NAME: &'static str = "TypeProto.Optional";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => f.boxed("elem_type", &mut self.elem_type),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        out.message(1, self.elem_type.as_deref());
        out.raw(&self.unknown_fields);
    }
}

/// A type known only to a runtime, by domain and name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpaqueType {
    pub domain: Option<String>,
    pub name: Option<String>,
    pub unknown_fields: Vec<u8>,
}

impl Message for OpaqueType {
    const NAME: &'static str = "TypeProto.Opaque";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => f.string("domain", &mut self.domain),
            2 => f.string("name", &mut self.name),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        out.string(1, self.domain.as_deref());
        out.string(2, self.name.as_deref());
        out.raw(&self.unknown_fields);
    }
}

/// A tensor shape: one entry per axis.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TensorShapeProto {
    pub dim: Vec<Dimension>,
    pub unknown_fields: Vec<u8>,
}

impl TensorShapeProto {
    /// The dimensions, if every one is a known number.
    pub fn static_dims(&self) -> Option<Vec<i64>> {
        self.dim
            .iter()
            .map(|d| match d.value {
                Some(DimValue::Value(v)) => Some(v),
                _ => None,
            })
            .collect()
    }
}

impl Message for TensorShapeProto {
    const NAME: &'static str = "TensorShapeProto";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => f.messages("dim", &mut self.dim),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        out.messages(1, &self.dim);
        out.raw(&self.unknown_fields);
    }
}

/// One axis of a shape: a number, a symbolic name, or unknown (`value` absent).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dimension {
    pub value: Option<DimValue>,
    pub denotation: Option<String>,
    pub unknown_fields: Vec<u8>,
}

/// The `value` oneof of a dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DimValue {
    Value(i64),
    Param(String),
}

impl Message for Dimension {
    const NAME: &'static str = "TensorShapeProto.Dimension";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => {
                let mut v = None;
                f.int64("dim_value", &mut v)?;
                self.value = v.map(DimValue::Value);
                Ok(())
            }
            2 => {
                let mut p = None;
                f.string("dim_param", &mut p)?;
                self.value = p.map(DimValue::Param);
                Ok(())
            }
            3 => f.string("denotation", &mut self.denotation),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        match &self.value {
            Some(DimValue::Value(v)) => out.int64(1, Some(*v)),
            Some(DimValue::Param(p)) => out.string(2, Some(p)),
            None => {}
        }
        out.string(3, self.denotation.as_deref());
        out.raw(&self.unknown_fields);
    }
}
