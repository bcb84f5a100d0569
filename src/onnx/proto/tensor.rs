//! TensorProto (dense), SparseTensorProto and the element data types.

use super::super::codec::{Encoder, Field, Message};
use super::super::error::Result;
use super::super::wire::Sink;
use super::StringStringEntryProto;

/// Element types of `TensorProto.DataType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Undefined = 0,
    Float = 1,
    Uint8 = 2,
    Int8 = 3,
    Uint16 = 4,
    Int16 = 5,
    Int32 = 6,
    Int64 = 7,
    String = 8,
    Bool = 9,
    Float16 = 10,
    Double = 11,
    Uint32 = 12,
    Uint64 = 13,
    Complex64 = 14,
    Complex128 = 15,
    Bfloat16 = 16,
    Float8E4M3FN = 17,
    Float8E4M3FNUZ = 18,
    Float8E5M2 = 19,
    Float8E5M2FNUZ = 20,
    Uint4 = 21,
    Int4 = 22,
    Float4E2M1 = 23,
    Float8E8M0 = 24,
    Uint2 = 25,
    Int2 = 26,
    Float6E2M3 = 27,
    Float6E3M2 = 28,
}

impl DataType {
    const ALL: [DataType; 29] = {
        use DataType::*;
        [
            Undefined,
            Float,
            Uint8,
            Int8,
            Uint16,
            Int16,
            Int32,
            Int64,
            String,
            Bool,
            Float16,
            Double,
            Uint32,
            Uint64,
            Complex64,
            Complex128,
            Bfloat16,
            Float8E4M3FN,
            Float8E4M3FNUZ,
            Float8E5M2,
            Float8E5M2FNUZ,
            Uint4,
            Int4,
            Float4E2M1,
            Float8E8M0,
            Uint2,
            Int2,
            Float6E2M3,
            Float6E3M2,
        ]
    };

    pub fn from_i32(value: i32) -> Option<Self> {
        usize::try_from(value)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// The name onnx.proto gives it, e.g. `FLOAT16`.
    pub fn name(self) -> &'static str {
        use DataType::*;
        match self {
            Undefined => "UNDEFINED",
            Float => "FLOAT",
            Uint8 => "UINT8",
            Int8 => "INT8",
            Uint16 => "UINT16",
            Int16 => "INT16",
            Int32 => "INT32",
            Int64 => "INT64",
            String => "STRING",
            Bool => "BOOL",
            Float16 => "FLOAT16",
            Double => "DOUBLE",
            Uint32 => "UINT32",
            Uint64 => "UINT64",
            Complex64 => "COMPLEX64",
            Complex128 => "COMPLEX128",
            Bfloat16 => "BFLOAT16",
            Float8E4M3FN => "FLOAT8E4M3FN",
            Float8E4M3FNUZ => "FLOAT8E4M3FNUZ",
            Float8E5M2 => "FLOAT8E5M2",
            Float8E5M2FNUZ => "FLOAT8E5M2FNUZ",
            Uint4 => "UINT4",
            Int4 => "INT4",
            Float4E2M1 => "FLOAT4E2M1",
            Float8E8M0 => "FLOAT8E8M0",
            Uint2 => "UINT2",
            Int2 => "INT2",
            Float6E2M3 => "FLOAT6E2M3",
            Float6E3M2 => "FLOAT6E3M2",
        }
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a tensor's data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataLocation {
    /// In the tensor's own data fields.
    Default = 0,
    /// In a file named by `external_data` (`location`, `offset`, `length`).
    External = 1,
}

/// A dense tensor. Data is in `raw_data` (little-endian, what exporters write) or in
/// the typed field for its data type, or in an external file; [`TensorProto::to_array`]
/// reads it whichever it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TensorProto {
    /// Shape; empty for a scalar. (Not packed in onnx.proto, and written so.)
    pub dims: Vec<i64>,
    /// The [`DataType`] as stored.
    pub data_type: Option<i32>,
    /// Boxed: rare, and inline it would grow every tensor.
    pub segment: Option<Box<Segment>>,
    pub float_data: Vec<f32>,
    /// INT32, INT16, INT8, UINT16, UINT8, BOOL, FLOAT16 and BFLOAT16 (as bits) data.
    pub int32_data: Vec<i32>,
    pub string_data: Vec<Vec<u8>>,
    pub int64_data: Vec<i64>,
    pub name: Option<String>,
    pub raw_data: Option<Vec<u8>>,
    pub double_data: Vec<f64>,
    /// UINT32 and UINT64 data.
    pub uint64_data: Vec<u64>,
    pub doc_string: Option<String>,
    /// `location`, `offset`, `length`, `checksum` of external data, kept as written.
    pub external_data: Vec<StringStringEntryProto>,
    /// The [`DataLocation`] as stored.
    pub data_location: Option<i32>,
    pub metadata_props: Vec<StringStringEntryProto>,
    pub unknown_fields: Vec<u8>,
}

impl TensorProto {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// The element type, if it is one ONNX defines.
    pub fn data_type(&self) -> Option<DataType> {
        DataType::from_i32(self.data_type.unwrap_or(0))
    }

    /// Whether the data lives in an external file.
    pub fn is_external(&self) -> bool {
        self.data_location == Some(DataLocation::External as i32)
    }

    /// The value of an `external_data` entry (`location`, `offset`, `length`...).
    pub fn external_entry(&self, key: &str) -> Option<&str> {
        self.external_data
            .iter()
            .find(|e| e.key() == key)
            .map(|e| e.value())
    }
}

impl Message for TensorProto {
    const NAME: &'static str = "TensorProto";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => f.int64s("dims", &mut self.dims),
            2 => f.int32("data_type", &mut self.data_type),
            3 => f.boxed("segment", &mut self.segment),
            4 => f.floats("float_data", &mut self.float_data),
            5 => f.int32s("int32_data", &mut self.int32_data),
            6 => f.bytes_list("string_data", &mut self.string_data),
            7 => f.int64s("int64_data", &mut self.int64_data),
            8 => f.string("name", &mut self.name),
            9 => f.bytes("raw_data", &mut self.raw_data),
            10 => f.doubles("double_data", &mut self.double_data),
            11 => f.uint64s("uint64_data", &mut self.uint64_data),
            12 => f.string("doc_string", &mut self.doc_string),
            13 => f.messages("external_data", &mut self.external_data),
            14 => f.int32("data_location", &mut self.data_location),
            16 => f.messages("metadata_props", &mut self.metadata_props),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        out.int64s_unpacked(1, &self.dims);
        out.int32(2, self.data_type);
        out.message(3, self.segment.as_deref());
        out.packed_floats(4, &self.float_data);
        out.packed_int32s(5, &self.int32_data);
        out.bytes_list(6, &self.string_data);
        out.packed_int64s(7, &self.int64_data);
        out.string(8, self.name.as_deref());
        out.bytes(9, self.raw_data.as_deref());
        out.packed_doubles(10, &self.double_data);
        out.packed_uint64s(11, &self.uint64_data);
        out.string(12, self.doc_string.as_deref());
        out.messages(13, &self.external_data);
        out.int32(14, self.data_location);
        out.messages(16, &self.metadata_props);
        out.raw(&self.unknown_fields);
    }
}

/// The part of a large tensor this TensorProto holds (chunked serialization).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Segment {
    pub begin: Option<i64>,
    pub end: Option<i64>,
    pub unknown_fields: Vec<u8>,
}

impl Message for Segment {
    const NAME: &'static str = "TensorProto.Segment";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => f.int64("begin", &mut self.begin),
            2 => f.int64("end", &mut self.end),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        out.int64(1, self.begin);
        out.int64(2, self.end);
        out.raw(&self.unknown_fields);
    }
}

/// A sparse tensor in COO form: the non-zero `values` and their `indices`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseTensorProto {
    // Boxed: inline, two tensors made each sparse tensor 816 bytes, empty or not.
    pub values: Option<Box<TensorProto>>,
    pub indices: Option<Box<TensorProto>>,
    pub dims: Vec<i64>,
    pub unknown_fields: Vec<u8>,
}

impl Message for SparseTensorProto {
    const NAME: &'static str = "SparseTensorProto";

    fn merge_field(&mut self, f: Field<'_, '_>) -> Result<()> {
        match f.number() {
            1 => f.boxed("values", &mut self.values),
            2 => f.boxed("indices", &mut self.indices),
            3 => f.int64s("dims", &mut self.dims),
            _ => f.unknown(&mut self.unknown_fields),
        }
    }

    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>) {
        out.message(1, self.values.as_deref());
        out.message(2, self.indices.as_deref());
        out.int64s_unpacked(3, &self.dims);
        out.raw(&self.unknown_fields);
    }
}
