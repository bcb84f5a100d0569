//! Typed field codecs shared by every ONNX message, and the decode loop.
//!
//! Each message in [`super::proto`] says, per field number, which typed reader to use
//! ([`Field`]) and writes its fields back in field-number order ([`Encoder`]). That is
//! the order every protobuf library serializes in, which is what makes decode → encode
//! reproduce a file byte for byte. Two proto2 rules matter for exactness:
//!
//! - optional scalars are written when *present*, even when zero, so they are kept as
//!   `Option`;
//! - repeated numbers are packed only where onnx.proto says `[packed = true]`
//!   (`TensorProto.float_data`...); `TensorProto.dims` and `AttributeProto.ints` are not.
//!   Reading accepts both forms, as protobuf requires.

use super::error::{OnnxError, Result};
use super::wire::{Counter, Key, Reader, Sink, WireType, put_key, put_varint, varint_len};

/// A protobuf message of onnx.proto: how to read one field and write them all.
pub(crate) trait Message: Default {
    /// The message name in onnx.proto, for error messages.
    const NAME: &'static str;

    /// Reads the field the reader stands on into `self` (protobuf merge semantics:
    /// scalars overwrite, repeated fields append, embedded messages merge).
    fn merge_field(&mut self, field: Field<'_, '_>) -> Result<()>;

    /// Writes every present field in field-number order, unknown fields last.
    fn encode_fields<S: Sink>(&self, out: &mut Encoder<S>);
}

/// Reads a whole buffer as one message.
pub(crate) fn decode<M: Message>(bytes: &[u8]) -> Result<M> {
    let mut message = M::default();
    merge(&mut message, &mut Reader::new(bytes))?;
    Ok(message)
}

fn merge<M: Message>(message: &mut M, reader: &mut Reader<'_>) -> Result<()> {
    while let Some(key) = reader.key()? {
        message.merge_field(Field {
            reader,
            key,
            message: M::NAME,
        })?;
    }
    Ok(())
}

/// The size of a message's encoding (without key and length prefix).
pub(crate) fn encoded_len<M: Message>(message: &M) -> usize {
    let mut counter = Encoder(Counter::default());
    message.encode_fields(&mut counter);
    counter.0.0
}

pub(crate) fn encode<M: Message>(message: &M) -> Vec<u8> {
    let mut out = Encoder(Vec::with_capacity(encoded_len(message)));
    message.encode_fields(&mut out);
    out.0
}

/// One field of a message being decoded, positioned after its key. Each reader method
/// checks the wire type, reads the payload and names `Message.field` in any error.
pub(crate) struct Field<'r, 'a> {
    reader: &'r mut Reader<'a>,
    key: Key,
    message: &'static str,
}

impl<'a> Field<'_, 'a> {
    pub(crate) fn number(&self) -> u32 {
        self.key.number
    }

    /// Runs `read` on the payload, after checking the wire type is `wire`.
    fn read<T>(
        self,
        name: &str,
        wire: WireType,
        read: impl FnOnce(&mut Reader<'a>) -> Result<T>,
    ) -> Result<T> {
        let result = if self.key.wire == wire {
            read(self.reader)
        } else {
            Err(self.wrong_wire_type(wire))
        };
        result.map_err(|e| e.within(self.message, name))
    }

    fn wrong_wire_type(&self, expected: WireType) -> OnnxError {
        OnnxError::decode(
            self.key.start,
            format!(
                "wire type {} where {} was expected",
                self.key.wire.name(),
                expected.name()
            ),
        )
    }

    pub(crate) fn int64(self, name: &str, out: &mut Option<i64>) -> Result<()> {
        *out = Some(self.read(name, WireType::Varint, |r| r.varint())? as i64);
        Ok(())
    }

    /// An `int32` (or enum) field. Negative values arrive sign-extended to 64 bits;
    /// protobuf truncates, and so do we.
    pub(crate) fn int32(self, name: &str, out: &mut Option<i32>) -> Result<()> {
        *out = Some(self.read(name, WireType::Varint, |r| r.varint())? as i32);
        Ok(())
    }

    pub(crate) fn float(self, name: &str, out: &mut Option<f32>) -> Result<()> {
        let bytes = self.read(name, WireType::Fixed32, |r| r.fixed32())?;
        *out = Some(f32::from_le_bytes(bytes));
        Ok(())
    }

    pub(crate) fn bytes(self, name: &str, out: &mut Option<Vec<u8>>) -> Result<()> {
        *out = Some(self.read(name, WireType::Len, read_bytes)?);
        Ok(())
    }

    pub(crate) fn string(self, name: &str, out: &mut Option<String>) -> Result<()> {
        *out = Some(self.read(name, WireType::Len, read_string)?);
        Ok(())
    }

    pub(crate) fn strings(self, name: &str, out: &mut Vec<String>) -> Result<()> {
        self.read(name, WireType::Len, |r| {
            let s = read_string(r)?;
            r.push(out, s)
        })
    }

    pub(crate) fn bytes_list(self, name: &str, out: &mut Vec<Vec<u8>>) -> Result<()> {
        self.read(name, WireType::Len, |r| {
            let b = read_bytes(r)?;
            r.push(out, b)
        })
    }

    /// An embedded message; a second occurrence merges into the first.
    pub(crate) fn message<M: Message>(self, name: &str, out: &mut Option<M>) -> Result<()> {
        let message = out.get_or_insert_with(M::default);
        self.read(name, WireType::Len, |r| r.nested(|r| merge(message, r)))
    }

    /// An embedded message kept in a box (large and rarely set: inline, it would make
    /// every element of the vector holding its parent that much larger).
    pub(crate) fn boxed<M: Message>(self, name: &str, out: &mut Option<Box<M>>) -> Result<()> {
        self.read(name, WireType::Len, |r| {
            let message = match out {
                Some(message) => message,
                None => {
                    r.charge(size_of::<M>())?;
                    out.insert(Box::default())
                }
            };
            r.nested(|r| merge(message.as_mut(), r))
        })
    }

    /// A member of a oneof: merges into `current` if that variant is already set,
    /// otherwise starts a fresh one (the last variant read wins, as in protobuf).
    pub(crate) fn oneof<M: Message>(
        self,
        name: &str,
        current: Option<&mut M>,
    ) -> Result<Option<M>> {
        match current {
            Some(message) => self
                .read(name, WireType::Len, |r| r.nested(|r| merge(message, r)))
                .map(|()| None),
            None => {
                let mut message = M::default();
                self.read(name, WireType::Len, |r| {
                    r.nested(|r| merge(&mut message, r))
                })?;
                Ok(Some(message))
            }
        }
    }

    pub(crate) fn messages<M: Message>(self, name: &str, out: &mut Vec<M>) -> Result<()> {
        self.read(name, WireType::Len, |r| {
            let mut message = M::default();
            r.nested(|r| merge(&mut message, r))?;
            r.push(out, message)
        })
    }

    pub(crate) fn int64s(self, name: &str, out: &mut Vec<i64>) -> Result<()> {
        self.varints(name, out, |v| v as i64)
    }

    pub(crate) fn int32s(self, name: &str, out: &mut Vec<i32>) -> Result<()> {
        self.varints(name, out, |v| v as i32)
    }

    pub(crate) fn uint64s(self, name: &str, out: &mut Vec<u64>) -> Result<()> {
        self.varints(name, out, |v| v)
    }

    pub(crate) fn floats(self, name: &str, out: &mut Vec<f32>) -> Result<()> {
        self.fixed(name, out, WireType::Fixed32, |b| {
            f32::from_le_bytes([b[0], b[1], b[2], b[3]])
        })
    }

    pub(crate) fn doubles(self, name: &str, out: &mut Vec<f64>) -> Result<()> {
        self.fixed(name, out, WireType::Fixed64, |b| {
            f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
        })
    }

    /// A repeated varint field, one element or a packed run.
    fn varints<T>(self, name: &str, out: &mut Vec<T>, convert: impl Fn(u64) -> T) -> Result<()> {
        let wire = if self.key.wire == WireType::Len {
            WireType::Len
        } else {
            WireType::Varint
        };
        self.read(name, wire, |r| {
            if wire == WireType::Varint {
                let value = convert(r.varint()?);
                return r.push(out, value);
            }
            r.nested(|r| {
                // Each varint ends in a byte below 0x80: that many values at most.
                let count = r.rest().iter().filter(|&&b| b < 0x80).count();
                r.reserve(out, count)?;
                while !r.at_end() {
                    let value = convert(r.varint()?);
                    r.push(out, value)?;
                }
                Ok(())
            })
        })
    }

    /// A repeated fixed-size field, one element or a packed run.
    fn fixed<T>(
        self,
        name: &str,
        out: &mut Vec<T>,
        element: WireType,
        convert: impl Fn(&[u8]) -> T,
    ) -> Result<()> {
        let size = if element == WireType::Fixed32 { 4 } else { 8 };
        let wire = if self.key.wire == WireType::Len {
            WireType::Len
        } else {
            element
        };
        self.read(name, wire, |r| {
            let start = r.pos();
            let bytes = if wire == WireType::Len {
                r.len_delimited()?
            } else {
                r.take(size)?
            };
            if bytes.len() % size != 0 {
                return Err(OnnxError::decode(
                    start,
                    format!(
                        "packed field of {} bytes is not a whole number of {size}-byte values",
                        bytes.len()
                    ),
                ));
            }
            r.reserve(out, bytes.len() / size)?;
            out.extend(bytes.chunks_exact(size).map(convert));
            Ok(())
        })
    }

    /// A field this crate does not model: kept verbatim, key included.
    pub(crate) fn unknown(self, out: &mut Vec<u8>) -> Result<()> {
        let Field {
            reader,
            key,
            message,
        } = self;
        let within = |e: OnnxError| e.within(message, &format!("<unknown field {}>", key.number));
        reader.skip(key.wire).map_err(within)?;
        let bytes = reader.since(key.start);
        reader.reserve(out, bytes.len()).map_err(within)?;
        out.extend_from_slice(bytes);
        Ok(())
    }
}

fn read_bytes(r: &mut Reader<'_>) -> Result<Vec<u8>> {
    let bytes = r.len_delimited()?;
    r.copy(bytes)
}

fn read_string(r: &mut Reader<'_>) -> Result<String> {
    let start = r.pos();
    let bytes = r.len_delimited()?;
    match std::str::from_utf8(bytes) {
        Ok(s) => {
            r.charge(s.len())?;
            Ok(s.to_owned())
        }
        Err(e) => Err(OnnxError::decode(
            start,
            format!("string is not valid UTF-8 ({e})"),
        )),
    }
}

/// Writes fields to a sink (a buffer, or a [`Counter`] that measures).
pub(crate) struct Encoder<S>(S);

impl<S: Sink> Encoder<S> {
    fn varint_field(&mut self, number: u32, value: u64) {
        put_key(&mut self.0, number, WireType::Varint);
        put_varint(&mut self.0, value);
    }

    fn len_field(&mut self, number: u32, bytes: &[u8]) {
        put_key(&mut self.0, number, WireType::Len);
        put_varint(&mut self.0, bytes.len() as u64);
        self.0.put(bytes);
    }

    pub(crate) fn int64(&mut self, number: u32, value: Option<i64>) {
        if let Some(v) = value {
            self.varint_field(number, v as u64);
        }
    }

    /// Negative int32 values are sign-extended to 10 bytes, as protobuf writes them.
    pub(crate) fn int32(&mut self, number: u32, value: Option<i32>) {
        if let Some(v) = value {
            self.varint_field(number, i64::from(v) as u64);
        }
    }

    pub(crate) fn float(&mut self, number: u32, value: Option<f32>) {
        if let Some(v) = value {
            put_key(&mut self.0, number, WireType::Fixed32);
            self.0.put(&v.to_le_bytes());
        }
    }

    pub(crate) fn string(&mut self, number: u32, value: Option<&str>) {
        if let Some(s) = value {
            self.len_field(number, s.as_bytes());
        }
    }

    pub(crate) fn bytes(&mut self, number: u32, value: Option<&[u8]>) {
        if let Some(b) = value {
            self.len_field(number, b);
        }
    }

    pub(crate) fn strings(&mut self, number: u32, values: &[String]) {
        for s in values {
            self.len_field(number, s.as_bytes());
        }
    }

    pub(crate) fn bytes_list(&mut self, number: u32, values: &[Vec<u8>]) {
        for b in values {
            self.len_field(number, b);
        }
    }

    pub(crate) fn message<M: Message>(&mut self, number: u32, value: Option<&M>) {
        if let Some(m) = value {
            let len = encoded_len(m);
            put_key(&mut self.0, number, WireType::Len);
            put_varint(&mut self.0, len as u64);
            if !self.0.counted(len) {
                m.encode_fields(self);
            }
        }
    }

    pub(crate) fn messages<M: Message>(&mut self, number: u32, values: &[M]) {
        for m in values {
            self.message(number, Some(m));
        }
    }

    /// A repeated int64 field that onnx.proto does not declare packed: one key each.
    pub(crate) fn int64s_unpacked(&mut self, number: u32, values: &[i64]) {
        for &v in values {
            self.varint_field(number, v as u64);
        }
    }

    pub(crate) fn floats_unpacked(&mut self, number: u32, values: &[f32]) {
        for &v in values {
            self.float(number, Some(v));
        }
    }

    fn packed_varints(&mut self, number: u32, values: impl Iterator<Item = u64> + Clone) {
        let len: usize = values.clone().map(varint_len).sum();
        if len == 0 {
            return;
        }
        put_key(&mut self.0, number, WireType::Len);
        put_varint(&mut self.0, len as u64);
        for v in values {
            put_varint(&mut self.0, v);
        }
    }

    pub(crate) fn packed_int64s(&mut self, number: u32, values: &[i64]) {
        self.packed_varints(number, values.iter().map(|&v| v as u64));
    }

    pub(crate) fn packed_int32s(&mut self, number: u32, values: &[i32]) {
        self.packed_varints(number, values.iter().map(|&v| i64::from(v) as u64));
    }

    pub(crate) fn packed_uint64s(&mut self, number: u32, values: &[u64]) {
        self.packed_varints(number, values.iter().copied());
    }

    pub(crate) fn packed_floats(&mut self, number: u32, values: &[f32]) {
        if values.is_empty() {
            return;
        }
        put_key(&mut self.0, number, WireType::Len);
        put_varint(&mut self.0, 4 * values.len() as u64);
        for v in values {
            self.0.put(&v.to_le_bytes());
        }
    }

    pub(crate) fn packed_doubles(&mut self, number: u32, values: &[f64]) {
        if values.is_empty() {
            return;
        }
        put_key(&mut self.0, number, WireType::Len);
        put_varint(&mut self.0, 8 * values.len() as u64);
        for v in values {
            self.0.put(&v.to_le_bytes());
        }
    }

    /// Unknown fields, verbatim.
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.0.put(bytes);
    }
}

/// Gives each message type the public `decode`, `encode_to_vec` and `encoded_len`.
macro_rules! public_codec {
    ($($message:ty),* $(,)?) => {$(
        impl $message {
            /// Decodes this message from protobuf bytes; never panics on bad input.
            pub fn decode(bytes: &[u8]) -> $crate::onnx::Result<Self> {
                $crate::onnx::codec::decode(bytes)
            }

            /// Encodes this message: known fields in field-number order, unknown
            /// fields after them.
            pub fn encode_to_vec(&self) -> Vec<u8> {
                $crate::onnx::codec::encode(self)
            }

            /// The length of [`Self::encode_to_vec`]'s output, without encoding.
            pub fn encoded_len(&self) -> usize {
                $crate::onnx::codec::encoded_len(self)
            }
        }
    )*};
}
pub(crate) use public_codec;
