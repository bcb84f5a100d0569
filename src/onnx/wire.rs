//! The protobuf wire format, the little of it ONNX needs: varints, fixed 32/64-bit
//! values and length-delimited fields (groups, long deprecated, are refused).
//!
//! Reading never trusts a length or count in the input: every read is checked against
//! the end of the enclosing message first, so truncated or corrupted bytes give an
//! error naming the offset, never a panic or a huge allocation.

use super::error::{OnnxError, Result};

/// How deeply messages may nest (graphs in attributes in nodes in graphs...). The
/// protobuf libraries use the same limit; it keeps hostile input off the stack.
const MAX_DEPTH: u32 = 100;

/// The encoding of a field's payload, from the low 3 bits of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireType {
    Varint,
    Fixed64,
    Len,
    Fixed32,
}

impl WireType {
    fn from_bits(bits: u64, offset: usize) -> Result<Self> {
        match bits {
            0 => Ok(WireType::Varint),
            1 => Ok(WireType::Fixed64),
            2 => Ok(WireType::Len),
            5 => Ok(WireType::Fixed32),
            3 | 4 => Err(OnnxError::decode(
                offset,
                "unsupported protobuf group (wire type 3/4)",
            )),
            other => Err(OnnxError::decode(
                offset,
                format!("invalid protobuf wire type {other}"),
            )),
        }
    }

    fn bits(self) -> u64 {
        match self {
            WireType::Varint => 0,
            WireType::Fixed64 => 1,
            WireType::Len => 2,
            WireType::Fixed32 => 5,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            WireType::Varint => "varint",
            WireType::Fixed64 => "fixed64",
            WireType::Len => "length-delimited",
            WireType::Fixed32 => "fixed32",
        }
    }
}

/// A field key: number, wire type, and where the key starts (to keep unknown fields
/// verbatim, key included).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    pub number: u32,
    pub wire: WireType,
    pub start: usize,
}

/// A cursor over one protobuf buffer. Offsets are absolute in the buffer, also inside
/// nested messages, so an error points at the same byte a hex dump shows.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// End of the message being read (nested messages narrow it).
    end: usize,
    depth: u32,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            end: buf.len(),
            depth: 0,
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.end
    }

    /// The bytes between two offsets this reader has already passed.
    pub(crate) fn since(&self, start: usize) -> &'a [u8] {
        &self.buf[start..self.pos]
    }

    pub(crate) fn varint(&mut self) -> Result<u64> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.buf[..self.end].get(self.pos) else {
                return Err(OnnxError::decode(
                    start,
                    "truncated protobuf (varint runs past the end)",
                ));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(OnnxError::decode(
            start,
            "malformed varint (more than 10 bytes)",
        ))
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let left = self.end - self.pos;
        if n > left {
            return Err(OnnxError::decode(
                self.pos,
                format!("truncated protobuf (field of {n} bytes, only {left} left)"),
            ));
        }
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    pub(crate) fn fixed32(&mut self) -> Result<[u8; 4]> {
        let mut out = [0; 4];
        out.copy_from_slice(self.take(4)?);
        Ok(out)
    }

    fn length(&mut self) -> Result<usize> {
        let start = self.pos;
        let len = self.varint()?;
        usize::try_from(len)
            .map_err(|_| OnnxError::decode(start, format!("length {len} does not fit in memory")))
    }

    /// The payload of a length-delimited field, borrowed from the input.
    pub(crate) fn len_delimited(&mut self) -> Result<&'a [u8]> {
        let len = self.length()?;
        self.take(len)
    }

    /// The next field key, or `None` at the end of the current message.
    pub(crate) fn key(&mut self) -> Result<Option<Key>> {
        if self.at_end() {
            return Ok(None);
        }
        let start = self.pos;
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > (1 << 29) - 1 {
            return Err(OnnxError::decode(
                start,
                format!("invalid protobuf field number {number}"),
            ));
        }
        let wire = WireType::from_bits(key & 7, start)?;
        // `number` < 2^29 was just checked.
        Ok(Some(Key {
            number: number as u32,
            wire,
            start,
        }))
    }

    /// Passes over a field's payload.
    pub(crate) fn skip(&mut self, wire: WireType) -> Result<()> {
        match wire {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.take(8).map(drop),
            WireType::Len => self.len_delimited().map(drop),
            WireType::Fixed32 => self.take(4).map(drop),
        }
    }

    /// Runs `read` over an embedded message (a length-delimited payload) and checks it
    /// stopped exactly at the message's end.
    pub(crate) fn nested<T>(&mut self, read: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let len = self.length()?;
        let left = self.end - self.pos;
        if len > left {
            return Err(OnnxError::decode(
                self.pos,
                format!("truncated protobuf (message of {len} bytes, only {left} left)"),
            ));
        }
        if self.depth >= MAX_DEPTH {
            return Err(OnnxError::decode(
                self.pos,
                format!("messages nested deeper than {MAX_DEPTH}"),
            ));
        }
        let outer_end = std::mem::replace(&mut self.end, self.pos + len);
        self.depth += 1;
        let result = read(self);
        self.depth -= 1;
        self.end = outer_end;
        result
    }
}

/// Where encoded bytes go: a buffer, or a counter that only measures (embedded
/// messages are length-prefixed, so their size is needed before their bytes).
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);

    /// Takes an embedded message of `len` bytes, already measured, as counted if this
    /// sink only counts, and says whether it did; a buffer needs the bytes written.
    /// (Measuring a message by writing it into the counter after measuring it would
    /// measure every level twice over: 2^depth work.)
    fn counted(&mut self, len: usize) -> bool;
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn counted(&mut self, _len: usize) -> bool {
        false
    }
}

/// A sink that counts bytes.
#[derive(Default)]
pub(crate) struct Counter(pub usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }

    fn counted(&mut self, len: usize) -> bool {
        self.0 += len;
        true
    }
}

/// The encoded length of a varint.
pub(crate) fn varint_len(value: u64) -> usize {
    // 1 byte per started group of 7 bits, at least one.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

pub(crate) fn put_varint(sink: &mut impl Sink, mut value: u64) {
    let mut buf = [0u8; 10];
    let mut n = 0;
    while value >= 0x80 {
        buf[n] = (value as u8) | 0x80;
        value >>= 7;
        n += 1;
    }
    buf[n] = value as u8;
    sink.put(&buf[..=n]);
}

pub(crate) fn put_key(sink: &mut impl Sink, number: u32, wire: WireType) {
    put_varint(sink, (u64::from(number) << 3) | wire.bits());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_every_length() {
        for value in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
            (-1i64) as u64,
        ] {
            let mut buf = Vec::new();
            put_varint(&mut buf, value);
            assert_eq!(buf.len(), varint_len(value), "{value}");
            let mut r = Reader::new(&buf);
            assert_eq!(r.varint().unwrap(), value);
            assert!(r.at_end());
        }
    }

    #[test]
    fn negative_int64_takes_ten_bytes() {
        assert_eq!(varint_len((-1i64) as u64), 10);
    }

    #[test]
    fn truncated_and_overlong_varints_are_errors() {
        let err = Reader::new(&[0x80, 0x80]).varint().unwrap_err().to_string();
        assert_eq!(
            err,
            "truncated protobuf (varint runs past the end) at byte 0"
        );
        let err = Reader::new(&[0xff; 11]).varint().unwrap_err().to_string();
        assert!(err.starts_with("malformed varint"), "{err}");
    }

    #[test]
    fn nested_lengths_are_checked_against_the_enclosing_message() {
        // A message claiming 5 bytes with 2 left.
        let mut r = Reader::new(&[5, 1, 2]);
        let err = r.nested(|_| Ok(())).unwrap_err().to_string();
        assert_eq!(
            err,
            "truncated protobuf (message of 5 bytes, only 2 left) at byte 1"
        );
    }

    #[test]
    fn keys_reject_field_zero_and_groups() {
        assert!(Reader::new(&[0x00]).key().is_err());
        let err = Reader::new(&[0x0b]).key().unwrap_err().to_string();
        assert!(err.contains("group"), "{err}");
    }
}
