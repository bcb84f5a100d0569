//! The messages of onnx.proto (IR version up to 13), written by hand.
//!
//! Field names follow onnx.proto so its documentation applies unchanged. Optional
//! scalars and strings are `Option`s because proto2 writes a field that is *set*, even
//! to its default, and a lossless round trip must know which were. Every message keeps
//! the fields it does not model in `unknown_fields`, verbatim; the only ones not
//! modelled are the multi-device sharding messages of IR 11 (`NodeProto` field 10,
//! `ModelProto` field 26), which carry the highest numbers of their messages and so
//! still come back in the right place.

mod attribute;
mod graph;
mod model;
mod tensor;
mod types;

pub use attribute::{AttributeProto, AttributeType};
pub use graph::{GraphProto, NodeProto, TensorAnnotation, ValueInfoProto};
pub use model::{
    FunctionProto, ModelProto, OperatorSetIdProto, StringStringEntryProto, TrainingInfoProto,
};
pub use tensor::{DataLocation, DataType, Segment, SparseTensorProto, TensorProto};
pub use types::{
    DimValue, Dimension, MapType, OpaqueType, OptionalType, SequenceType, SparseTensorType,
    TensorShapeProto, TensorType, TypeProto, TypeValue,
};

use super::codec::public_codec;

public_codec!(
    AttributeProto,
    Dimension,
    FunctionProto,
    GraphProto,
    MapType,
    ModelProto,
    NodeProto,
    OpaqueType,
    OperatorSetIdProto,
    OptionalType,
    Segment,
    SequenceType,
    SparseTensorProto,
    SparseTensorType,
    StringStringEntryProto,
    TensorAnnotation,
    TensorProto,
    TensorShapeProto,
    TensorType,
    TrainingInfoProto,
    TypeProto,
    ValueInfoProto,
);
