//! A bounded decoder for the AMQP 1.0 type system (AMQP 1.0, part 1).
//!
//! Every byte it reads comes from a peer, so it trusts nothing the bytes declare: a size or a
//! count is checked against the bytes actually present before anything is read past it, nothing
//! is allocated by a declared length, and nesting (described values, lists, maps, arrays) is bounded
//! by [`MAX_DEPTH`]. Skipping a value costs at most one step per byte it spans, whatever it
//! declares. It reads borrowed slices: strings and binaries point into the frame.

use super::DecodeError;

/// How deep compound and described values may nest. Performatives nest three or four levels
/// (attach → source → filter map → described filter); message sections a few more.
pub const MAX_DEPTH: usize = 32;

/// Format codes (AMQP 1.0, 1.6).
pub mod code {
    #![allow(missing_docs, reason = "the names are the spec's")]
    pub const DESCRIBED: u8 = 0x00;
    pub const NULL: u8 = 0x40;
    pub const TRUE: u8 = 0x41;
    pub const FALSE: u8 = 0x42;
    pub const UINT0: u8 = 0x43;
    pub const ULONG0: u8 = 0x44;
    pub const LIST0: u8 = 0x45;
    pub const UBYTE: u8 = 0x50;
    pub const BYTE: u8 = 0x51;
    pub const SMALLUINT: u8 = 0x52;
    pub const SMALLULONG: u8 = 0x53;
    pub const SMALLINT: u8 = 0x54;
    pub const SMALLLONG: u8 = 0x55;
    pub const BOOLEAN: u8 = 0x56;
    pub const USHORT: u8 = 0x60;
    pub const SHORT: u8 = 0x61;
    pub const UINT: u8 = 0x70;
    pub const INT: u8 = 0x71;
    pub const FLOAT: u8 = 0x72;
    pub const CHAR: u8 = 0x73;
    pub const DECIMAL32: u8 = 0x74;
    pub const ULONG: u8 = 0x80;
    pub const LONG: u8 = 0x81;
    pub const DOUBLE: u8 = 0x82;
    pub const TIMESTAMP: u8 = 0x83;
    pub const DECIMAL64: u8 = 0x84;
    pub const DECIMAL128: u8 = 0x94;
    pub const UUID: u8 = 0x98;
    pub const VBIN8: u8 = 0xa0;
    pub const STR8: u8 = 0xa1;
    pub const SYM8: u8 = 0xa3;
    pub const VBIN32: u8 = 0xb0;
    pub const STR32: u8 = 0xb1;
    pub const SYM32: u8 = 0xb3;
    pub const LIST8: u8 = 0xc0;
    pub const MAP8: u8 = 0xc1;
    pub const LIST32: u8 = 0xd0;
    pub const MAP32: u8 = 0xd1;
    pub const ARRAY8: u8 = 0xe0;
    pub const ARRAY32: u8 = 0xf0;
}

/// How many bytes the value of a fixed-width format code takes, or `None` for a code that is not
/// fixed-width (or not a code at all).
fn fixed_width(format: u8) -> Option<usize> {
    use code::*;
    Some(match format {
        NULL | TRUE | FALSE | UINT0 | ULONG0 | LIST0 => 0,
        UBYTE | BYTE | SMALLUINT | SMALLULONG | SMALLINT | SMALLLONG | BOOLEAN => 1,
        USHORT | SHORT => 2,
        UINT | INT | FLOAT | CHAR | DECIMAL32 => 4,
        ULONG | LONG | DOUBLE | TIMESTAMP | DECIMAL64 => 8,
        DECIMAL128 | UUID => 16,
        _ => return None,
    })
}

/// A descriptor: a described type's name (AMQP 1.0, 1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Descriptor<'a> {
    /// A numeric descriptor (domain and id).
    Code(u64),
    /// A symbolic descriptor.
    Symbol(&'a str),
}

impl Descriptor<'_> {
    /// Whether this is `code` or its symbolic name `name`.
    pub fn is(&self, code: u64, name: &str) -> bool {
        match self {
            Self::Code(c) => *c == code,
            Self::Symbol(s) => *s == name,
        }
    }
}

/// A value of one of the primitive types messages carry in their properties, as read by
/// [`Decoder::scalar`]; compound and described values are skipped and read as [`Scalar::Other`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar<'a> {
    /// Null.
    Null,
    /// A boolean.
    Bool(bool),
    /// Any signed integer, or an unsigned one up to `i64::MAX`.
    Long(i64),
    /// An unsigned integer above `i64::MAX`.
    Ulong(u64),
    /// A float or double.
    Double(f64),
    /// A string.
    Str(&'a str),
    /// A symbol.
    Symbol(&'a str),
    /// A binary.
    Binary(&'a [u8]),
    /// A UUID.
    Uuid([u8; 16]),
    /// A timestamp, milliseconds since the Unix epoch.
    Timestamp(i64),
    /// A char, decimal, compound or described value.
    Other,
}

/// Reads values from a slice of peer bytes.
#[derive(Clone, Debug)]
pub struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// How many bytes were read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// The next byte, not consumed.
    pub fn peek(&self) -> Result<u8, DecodeError> {
        self.bytes.get(self.pos).copied().ok_or(DecodeError::Truncated)
    }

    /// The next `n` bytes, consumed; an error if fewer are present.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let slice = self.bytes.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = self.peek()?;
        self.pos += 1;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Reads a size or count of the width the format code implies (1 or 4 bytes).
    fn length(&mut self, four: bool) -> Result<usize, DecodeError> {
        Ok(if four {
            u32::from_be_bytes(self.array()?) as usize
        } else {
            usize::from(self.byte()?)
        })
    }

    /// Consumes a null if one is next, and says whether it did.
    pub fn null(&mut self) -> Result<bool, DecodeError> {
        if self.peek()? == code::NULL {
            self.pos += 1;
            return Ok(true);
        }
        Ok(false)
    }

    /// Reads a boolean.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.byte()? {
            code::TRUE => Ok(true),
            code::FALSE => Ok(false),
            code::BOOLEAN => match self.byte()? {
                0 => Ok(false),
                1 => Ok(true),
                other => Err(DecodeError::Invalid(format!("boolean byte {other:#04x}"))),
            },
            other => Err(unexpected("boolean", other)),
        }
    }

    /// Reads a ubyte.
    pub fn ubyte(&mut self) -> Result<u8, DecodeError> {
        match self.byte()? {
            code::UBYTE => self.byte(),
            other => Err(unexpected("ubyte", other)),
        }
    }

    /// Reads a ushort.
    pub fn ushort(&mut self) -> Result<u16, DecodeError> {
        match self.byte()? {
            code::USHORT => Ok(u16::from_be_bytes(self.array()?)),
            other => Err(unexpected("ushort", other)),
        }
    }

    /// Reads a uint (also accepting the narrower unsigned encodings a peer may choose).
    pub fn uint(&mut self) -> Result<u32, DecodeError> {
        match self.byte()? {
            code::UINT0 => Ok(0),
            code::SMALLUINT | code::UBYTE => Ok(u32::from(self.byte()?)),
            code::USHORT => Ok(u32::from(u16::from_be_bytes(self.array()?))),
            code::UINT => Ok(u32::from_be_bytes(self.array()?)),
            other => Err(unexpected("uint", other)),
        }
    }

    /// Reads a ulong (also accepting the narrower unsigned encodings).
    pub fn ulong(&mut self) -> Result<u64, DecodeError> {
        match self.peek()? {
            code::ULONG0 => {
                self.pos += 1;
                Ok(0)
            }
            code::SMALLULONG => {
                self.pos += 1;
                Ok(u64::from(self.byte()?))
            }
            code::ULONG => {
                self.pos += 1;
                Ok(u64::from_be_bytes(self.array()?))
            }
            _ => Ok(u64::from(self.uint()?)),
        }
    }

    /// Reads a timestamp (milliseconds since the Unix epoch).
    pub fn timestamp(&mut self) -> Result<i64, DecodeError> {
        match self.byte()? {
            code::TIMESTAMP => Ok(i64::from_be_bytes(self.array()?)),
            other => Err(unexpected("timestamp", other)),
        }
    }

    /// Reads one value of any type: a primitive as its [`Scalar`], anything else skipped (checked
    /// for structure) and read as [`Scalar::Other`].
    pub fn scalar(&mut self) -> Result<Scalar<'a>, DecodeError> {
        use code::*;
        let format = self.peek()?;
        let long = |value: u64| i64::try_from(value).map_or(Scalar::Ulong(value), Scalar::Long);
        Ok(match format {
            NULL => {
                self.pos += 1;
                Scalar::Null
            }
            TRUE | FALSE | BOOLEAN => Scalar::Bool(self.bool()?),
            UBYTE | USHORT | UINT | UINT0 | SMALLUINT | ULONG | ULONG0 | SMALLULONG => long(self.ulong()?),
            BYTE | SMALLINT | SMALLLONG => {
                self.pos += 1;
                Scalar::Long(i64::from(i8::from_be_bytes(self.array()?)))
            }
            SHORT => {
                self.pos += 1;
                Scalar::Long(i64::from(i16::from_be_bytes(self.array()?)))
            }
            INT => {
                self.pos += 1;
                Scalar::Long(i64::from(i32::from_be_bytes(self.array()?)))
            }
            LONG => {
                self.pos += 1;
                Scalar::Long(i64::from_be_bytes(self.array()?))
            }
            FLOAT => {
                self.pos += 1;
                Scalar::Double(f64::from(f32::from_be_bytes(self.array()?)))
            }
            DOUBLE => {
                self.pos += 1;
                Scalar::Double(f64::from_be_bytes(self.array()?))
            }
            TIMESTAMP => Scalar::Timestamp(self.timestamp()?),
            UUID => {
                self.pos += 1;
                Scalar::Uuid(self.array()?)
            }
            VBIN8 | VBIN32 => Scalar::Binary(self.binary()?),
            STR8 | STR32 => Scalar::Str(self.string()?),
            SYM8 | SYM32 => Scalar::Symbol(self.symbol()?),
            _ => {
                self.skip()?;
                Scalar::Other
            }
        })
    }

    /// Reads a binary.
    pub fn binary(&mut self) -> Result<&'a [u8], DecodeError> {
        let four = match self.byte()? {
            code::VBIN8 => false,
            code::VBIN32 => true,
            other => return Err(unexpected("binary", other)),
        };
        let len = self.length(four)?;
        self.take(len)
    }

    /// Reads a string.
    pub fn string(&mut self) -> Result<&'a str, DecodeError> {
        let four = match self.byte()? {
            code::STR8 => false,
            code::STR32 => true,
            other => return Err(unexpected("string", other)),
        };
        let len = self.length(four)?;
        std::str::from_utf8(self.take(len)?)
            .map_err(|_| DecodeError::Invalid("a string that is not UTF-8".into()))
    }

    /// Reads a symbol.
    pub fn symbol(&mut self) -> Result<&'a str, DecodeError> {
        let four = match self.byte()? {
            code::SYM8 => false,
            code::SYM32 => true,
            other => return Err(unexpected("symbol", other)),
        };
        let len = self.length(four)?;
        let bytes = self.take(len)?;
        if !bytes.is_ascii() {
            return Err(DecodeError::Invalid("a symbol that is not ASCII".into()));
        }
        std::str::from_utf8(bytes).map_err(|_| DecodeError::Invalid("a symbol that is not ASCII".into()))
    }

    /// Reads a descriptor if a described value is next: the constructor `0x00` and the descriptor.
    pub fn descriptor(&mut self) -> Result<Option<Descriptor<'a>>, DecodeError> {
        if self.peek()? != code::DESCRIBED {
            return Ok(None);
        }
        self.pos += 1;
        match self.peek()? {
            code::SYM8 | code::SYM32 => Ok(Some(Descriptor::Symbol(self.symbol()?))),
            _ => Ok(Some(Descriptor::Code(self.ulong()?))),
        }
    }

    /// Reads the header of a list and returns a reader over its items. Its declared size and count
    /// are checked against the bytes present.
    pub fn list(&mut self) -> Result<Fields<'a>, DecodeError> {
        let (four, format) = match self.byte()? {
            code::LIST0 => {
                return Ok(Fields {
                    items: Decoder::new(&[]),
                    remaining: 0,
                });
            }
            code::LIST8 => (false, code::LIST8),
            code::LIST32 => (true, code::LIST32),
            other => return Err(unexpected("list", other)),
        };
        let (items, count) = self.compound(four, format)?;
        Ok(Fields {
            items,
            remaining: count,
        })
    }

    /// Reads the header of a map and returns a reader over its keys and values, in turn.
    pub fn map(&mut self) -> Result<Fields<'a>, DecodeError> {
        let (four, format) = match self.byte()? {
            code::MAP8 => (false, code::MAP8),
            code::MAP32 => (true, code::MAP32),
            other => return Err(unexpected("map", other)),
        };
        let (items, count) = self.compound(four, format)?;
        if count % 2 != 0 {
            return Err(DecodeError::Invalid(format!(
                "a map of {count} items (an odd number)"
            )));
        }
        Ok(Fields {
            items,
            remaining: count,
        })
    }

    /// The items of a list or map: its size bytes, then a count no larger than those bytes allow
    /// (every item takes at least one byte, its constructor).
    fn compound(&mut self, four: bool, format: u8) -> Result<(Decoder<'a>, usize), DecodeError> {
        let size = self.length(four)?;
        let body = self.take(size)?;
        let width = if four { 4 } else { 1 };
        if body.len() < width {
            return Err(DecodeError::Invalid(format!(
                "a compound {format:#04x} of {size} bytes"
            )));
        }
        let mut inner = Decoder::new(body);
        let count = inner.length(four)?;
        if count > inner.rest().len() {
            return Err(DecodeError::Invalid(format!(
                "{count} items declared in {} bytes",
                inner.rest().len()
            )));
        }
        Ok((Decoder::new(inner.rest()), count))
    }

    /// Reads an array of symbols, or a single symbol (which the spec allows where an array of
    /// symbols is expected, for multiple="true" fields), calling `each` for each.
    pub fn symbols(&mut self, mut each: impl FnMut(&'a str)) -> Result<(), DecodeError> {
        match self.peek()? {
            code::SYM8 | code::SYM32 => {
                each(self.symbol()?);
                Ok(())
            }
            code::ARRAY8 | code::ARRAY32 => {
                let four = self.byte()? == code::ARRAY32;
                let size = self.length(four)?;
                let mut body = Decoder::new(self.take(size)?);
                let count = body.length(four)?;
                let element = body.byte()?;
                let four = match element {
                    code::SYM8 => false,
                    code::SYM32 => true,
                    other => return Err(unexpected("symbol array", other)),
                };
                // Each symbol takes at least its length prefix, so `count` steps are bounded by bytes.
                for _ in 0..count {
                    let len = body.length(four)?;
                    let bytes = body.take(len)?;
                    let symbol = std::str::from_utf8(bytes)
                        .ok()
                        .filter(|s| s.is_ascii())
                        .ok_or_else(|| DecodeError::Invalid("a symbol that is not ASCII".into()))?;
                    each(symbol);
                }
                Ok(())
            }
            other => Err(unexpected("symbols", other)),
        }
    }

    /// Skips one value of any type, checking its structure on the way.
    pub fn skip(&mut self) -> Result<(), DecodeError> {
        self.skip_at(0)
    }

    fn skip_at(&mut self, depth: usize) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        let format = self.byte()?;
        if format == code::DESCRIBED {
            self.skip_at(depth + 1)?;
            return self.skip_at(depth + 1);
        }
        self.skip_body(format, depth)
    }

    /// Skips the value after its format code.
    fn skip_body(&mut self, format: u8, depth: usize) -> Result<(), DecodeError> {
        if let Some(width) = fixed_width(format) {
            self.take(width)?;
            return Ok(());
        }
        let four = format & 0x10 != 0;
        match format & 0xef {
            // Variable width: binary, string, symbol.
            code::VBIN8 | code::STR8 | code::SYM8 => {
                let len = self.length(four)?;
                self.take(len)?;
                Ok(())
            }
            code::LIST8 | code::MAP8 => {
                let (mut items, count) = self.compound(four, format)?;
                for _ in 0..count {
                    items.skip_at(depth + 1)?;
                }
                Ok(())
            }
            code::ARRAY8 => self.skip_array(four, depth),
            _ => Err(DecodeError::Invalid(format!("unknown format code {format:#04x}"))),
        }
    }

    fn skip_array(&mut self, four: bool, depth: usize) -> Result<(), DecodeError> {
        if depth + 1 > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        let size = self.length(four)?;
        let mut body = Decoder::new(self.take(size)?);
        let count = body.length(four)?;
        let mut element = body.byte()?;
        if element == code::DESCRIBED {
            body.skip_at(depth + 1)?;
            element = body.byte()?;
        }
        if let Some(width) = fixed_width(element) {
            // Elements of a fixed width: the bytes must hold them all. A zero-width element (null,
            // true, list0) takes no byte, and is never looped over.
            let needed = width
                .checked_mul(count)
                .ok_or_else(|| DecodeError::Invalid(format!("an array of {count} elements")))?;
            body.take(needed)?;
            return Ok(());
        }
        // Every other element takes at least one byte (its size), so the loop is bounded by bytes.
        for _ in 0..count {
            body.skip_body(element, depth + 1)?;
        }
        Ok(())
    }
}

/// The items of a list (or the keys and values of a map), read in order. A list may end before its
/// last fields: those read as absent.
#[derive(Clone, Debug)]
pub struct Fields<'a> {
    items: Decoder<'a>,
    remaining: usize,
}

impl<'a> Fields<'a> {
    /// How many items are left.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// The next item as the bytes it is encoded in (checked for structure), to copy unread;
    /// `None` once the items have ended.
    pub fn next_raw(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let rest = self.items.rest();
        let start = self.items.position();
        self.items.skip()?;
        Ok(rest.get(..self.items.position() - start))
    }

    /// Reads the next field with `read`; `None` if the list has ended or the field is null.
    pub fn next<T>(
        &mut self,
        read: impl FnOnce(&mut Decoder<'a>) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        if self.items.null()? {
            return Ok(None);
        }
        read(&mut self.items).map(Some)
    }

    /// Skips the next field, checking its structure.
    pub fn skip(&mut self) -> Result<(), DecodeError> {
        self.next(Decoder::skip).map(|_| ())
    }

    /// Checks the fields not read (newer versions may add some) and ends the list.
    pub fn finish(mut self) -> Result<(), DecodeError> {
        while self.remaining > 0 {
            self.skip()?;
        }
        Ok(())
    }
}

fn unexpected(wanted: &str, format: u8) -> DecodeError {
    DecodeError::Invalid(format!("expected a {wanted}, found format code {format:#04x}"))
}

#[cfg(test)]
mod tests;
