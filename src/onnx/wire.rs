//! The protobuf wire format, the little of it ONNX needs: varints, fixed 32/64-bit
//! values and length-delimited fields (groups, long deprecated, are refused).
//!
//! Reading never trusts a length or count in the input: every read is checked against
//! the end of the enclosing message first, so truncated or corrupted bytes give an
//! error naming the offset, never a panic or a huge allocation.
//!
//! Nor does it trust the input's *shape*. An empty element of a repeated message is 2
//! bytes on the wire and a whole struct in memory (a default `NodeProto` is 240 bytes),
//! so a file of such elements would decode into hundreds of times its size. Every
//! allocation the decoder makes is therefore charged to a budget of
//! [`MEMORY_PER_INPUT_BYTE`] bytes per input byte plus [`MEMORY_ALLOWANCE`], before it
//! is made; a file that would need more is refused as damaged or hostile.

use super::error::{OnnxError, Result};

/// How deeply messages may nest (graphs in attributes in nodes in graphs...). The
/// protobuf libraries use the same limit; it keeps hostile input off the stack.
const MAX_DEPTH: u32 = 100;

/// The decoder holds at most this many bytes of heap per byte of input (plus
/// [`MEMORY_ALLOWANCE`]). The committed models need 1.1x (weights dominate, copied
/// once) to 17x (`all_fields.onnx`, all structure); a graph's structure alone, as in
/// a model whose weights are in external files, takes 7-17x (every node, attribute
/// and dimension is a struct). 64 leaves about four times the worst as headroom.
pub(crate) const MEMORY_PER_INPUT_BYTE: usize = 64;

/// A fixed allowance on top of the per-byte budget, so that a tiny model (a few
/// hundred bytes, where fixed costs such as a vector's first slots dominate) is never
/// refused.
pub(crate) const MEMORY_ALLOWANCE: usize = 1 << 20;

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
    /// Heap bytes the decoded value may still take (see the module docs).
    budget: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            end: buf.len(),
            depth: 0,
            budget: memory_limit(buf.len()),
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.end
    }

    /// The bytes left in the current message, without reading them.
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..self.end]
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

/// The most heap a decode of `input` bytes may hold.
fn memory_limit(input: usize) -> usize {
    input
        .saturating_mul(MEMORY_PER_INPUT_BYTE)
        .saturating_add(MEMORY_ALLOWANCE)
}

/// The memory budget: every allocation of the decoded value goes through these, and
/// is charged before it is made.
impl Reader<'_> {
    /// Accounts for `bytes` of heap about to be allocated.
    pub(crate) fn charge(&mut self, bytes: usize) -> Result<()> {
        match self.budget.checked_sub(bytes) {
            Some(left) => {
                self.budget = left;
                Ok(())
            }
            None => {
                let input = self.buf.len();
                Err(OnnxError::decode(
                    self.pos,
                    format!(
                        "the model is too large or complex for its size: its {input} bytes \
                         would decode into more than {} bytes of memory ({MEMORY_PER_INPUT_BYTE} \
                         per byte + {MEMORY_ALLOWANCE}), which no well-formed model needs; \
                         the file is damaged or crafted",
                        memory_limit(input)
                    ),
                ))
            }
        }
    }

    /// Makes room for `additional` more elements in `vec`. Capacity at least doubles
    /// (appends stay amortised O(1)), and the new buffer is charged in full while the
    /// old one is still live; the old one is given back once freed, so what is charged
    /// is what is held, at every moment.
    pub(crate) fn reserve<T>(&mut self, vec: &mut Vec<T>, additional: usize) -> Result<()> {
        let capacity = vec.capacity();
        let needed = vec.len().saturating_add(additional);
        if needed <= capacity {
            return Ok(());
        }
        let new_capacity = needed.max(capacity.saturating_mul(2));
        self.charge(new_capacity.saturating_mul(size_of::<T>()))?;
        vec.reserve_exact(new_capacity - vec.len());
        self.budget = self.budget.saturating_add(capacity * size_of::<T>());
        Ok(())
    }

    /// Appends `value` to `vec`, charging any growth.
    pub(crate) fn push<T>(&mut self, vec: &mut Vec<T>, value: T) -> Result<()> {
        self.reserve(vec, 1)?;
        vec.push(value);
        Ok(())
    }

    /// A charged copy of input bytes.
    pub(crate) fn copy(&mut self, bytes: &[u8]) -> Result<Vec<u8>> {
        self.charge(bytes.len())?;
        Ok(bytes.to_vec())
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
    fn the_budget_holds_what_is_allocated_at_every_moment() {
        let mut r = Reader::new(&[0; 10]);
        let limit = 10 * MEMORY_PER_INPUT_BYTE + MEMORY_ALLOWANCE;
        let mut v: Vec<u64> = Vec::new();
        r.push(&mut v, 1).unwrap();
        assert_eq!((v.capacity(), r.budget), (1, limit - 8));
        // Growing to 2 charges the new 16 bytes while the old 8 are live, then gives
        // the 8 back.
        r.push(&mut v, 2).unwrap();
        assert_eq!((v.capacity(), r.budget), (2, limit - 16));
        r.reserve(&mut v, 3).unwrap();
        assert_eq!((v.capacity(), r.budget), (5, limit - 40));
        let left = r.budget;
        let err = r.charge(left + 1).unwrap_err().to_string();
        assert!(err.contains("too large or complex for its size"), "{err}");
        r.charge(left).unwrap();
        assert!(
            r.push(&mut v, 3).is_ok(),
            "no growth needed, nothing charged"
        );
        assert!(r.reserve(&mut v, 3).is_err(), "growth past the budget");
    }

    #[test]
    fn keys_reject_field_zero_and_groups() {
        assert!(Reader::new(&[0x00]).key().is_err());
        let err = Reader::new(&[0x0b]).key().unwrap_err().to_string();
        assert!(err.contains("group"), "{err}");
    }
}
