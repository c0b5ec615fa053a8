//! Writes AMQP 1.0 values: what the broker itself says, so it trusts its inputs.

use super::decode::code;

/// Writes values onto the end of a byte vector.
#[derive(Debug)]
pub struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Encoder<'a> {
    /// An encoder appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out }
    }

    /// Writes a null.
    pub fn null(&mut self) {
        self.out.push(code::NULL);
    }

    /// Writes a boolean.
    pub fn bool(&mut self, value: bool) {
        self.out.push(if value { code::TRUE } else { code::FALSE });
    }

    /// Writes a ubyte.
    pub fn ubyte(&mut self, value: u8) {
        self.out.extend_from_slice(&[code::UBYTE, value]);
    }

    /// Writes a ushort.
    pub fn ushort(&mut self, value: u16) {
        self.out.push(code::USHORT);
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    /// Writes a uint in its smallest encoding.
    pub fn uint(&mut self, value: u32) {
        match value {
            0 => self.out.push(code::UINT0),
            1..=255 => self.out.extend_from_slice(&[code::SMALLUINT, value as u8]),
            _ => {
                self.out.push(code::UINT);
                self.out.extend_from_slice(&value.to_be_bytes());
            }
        }
    }

    /// Writes a ulong in its smallest encoding.
    pub fn ulong(&mut self, value: u64) {
        match value {
            0 => self.out.push(code::ULONG0),
            1..=255 => self.out.extend_from_slice(&[code::SMALLULONG, value as u8]),
            _ => {
                self.out.push(code::ULONG);
                self.out.extend_from_slice(&value.to_be_bytes());
            }
        }
    }

    /// Writes a timestamp (milliseconds since the Unix epoch).
    pub fn timestamp(&mut self, at: i64) {
        self.out.push(code::TIMESTAMP);
        self.out.extend_from_slice(&at.to_be_bytes());
    }

    fn variable(&mut self, short: u8, long: u8, bytes: &[u8]) {
        match u8::try_from(bytes.len()) {
            Ok(len) => self.out.extend_from_slice(&[short, len]),
            Err(_) => {
                self.out.push(long);
                // Nothing the broker writes comes near 4 GiB.
                self.out
                    .extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
            }
        }
        self.out.extend_from_slice(bytes);
    }

    /// Writes a binary.
    pub fn binary(&mut self, value: &[u8]) {
        self.variable(code::VBIN8, code::VBIN32, value);
    }

    /// Writes a string.
    pub fn string(&mut self, value: &str) {
        self.variable(code::STR8, code::STR32, value.as_bytes());
    }

    /// Writes a symbol.
    pub fn symbol(&mut self, value: &str) {
        self.variable(code::SYM8, code::SYM32, value.as_bytes());
    }

    /// Writes an array of symbols.
    pub fn symbols(&mut self, values: &[&str]) {
        let start = self.out.len();
        self.out.push(code::ARRAY32);
        self.out.extend_from_slice(&[0; 8]);
        self.out.push(code::SYM32);
        for value in values {
            self.out
                .extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
            self.out.extend_from_slice(value.as_bytes());
        }
        let size = u32::try_from(self.out.len() - start - 5).unwrap_or(u32::MAX);
        self.out[start + 1..start + 5].copy_from_slice(&size.to_be_bytes());
        let count = u32::try_from(values.len()).unwrap_or(u32::MAX);
        self.out[start + 5..start + 9].copy_from_slice(&count.to_be_bytes());
    }

    /// Writes a descriptor with a numeric code; the described value follows.
    pub fn descriptor(&mut self, code: u64) {
        self.out.push(code::DESCRIBED);
        self.ulong(code);
    }

    /// Writes a map of symbols to strings.
    pub fn symbol_string_map(&mut self, entries: &[(&str, &str)]) {
        self.map(|map| {
            for (key, value) in entries {
                map.entry(|e| e.symbol(key), |e| e.string(value));
            }
        });
    }

    /// Writes a map whose entries `write` writes with [`ListEncoder::entry`].
    pub fn map(&mut self, write: impl FnOnce(&mut ListEncoder<'_>)) {
        let mut map = self.compound(code::MAP32);
        write(&mut map);
        map.end();
    }

    /// Begins a list; its fields are written through the returned writer, which drops trailing
    /// nulls when it ends.
    pub fn list(&mut self) -> ListEncoder<'_> {
        self.compound(code::LIST32)
    }

    fn compound(&mut self, format: u8) -> ListEncoder<'_> {
        let start = self.out.len();
        self.out.push(format);
        self.out.extend_from_slice(&[0; 8]);
        ListEncoder {
            start,
            count: 0,
            kept_len: start + 9,
            kept_count: 0,
            enc: Encoder { out: self.out },
        }
    }

    /// Appends bytes already encoded.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }
}

/// Writes the fields of a list, in order.
#[derive(Debug)]
pub struct ListEncoder<'a> {
    start: usize,
    count: u32,
    /// The length and count up to the last field that is not null.
    kept_len: usize,
    kept_count: u32,
    enc: Encoder<'a>,
}

impl<'a> std::ops::Deref for ListEncoder<'a> {
    type Target = Encoder<'a>;
    fn deref(&self) -> &Self::Target {
        &self.enc
    }
}

impl std::ops::DerefMut for ListEncoder<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.enc
    }
}

impl<'a> ListEncoder<'a> {
    fn mark(&mut self) {
        self.kept_len = self.enc.out.len();
        self.kept_count = self.count;
    }

    /// Writes one field with `write`.
    pub fn field(&mut self, write: impl FnOnce(&mut Encoder<'a>)) {
        write(&mut self.enc);
        self.count += 1;
        self.mark();
    }

    /// Writes a field that may be absent (null).
    pub fn optional<T>(&mut self, value: Option<T>, write: impl FnOnce(&mut Encoder<'a>, T)) {
        match value {
            Some(value) => self.field(|enc| write(enc, value)),
            None => self.absent(),
        }
    }

    /// Writes one entry of a map: its key, then its value.
    pub fn entry(&mut self, key: impl FnOnce(&mut Encoder<'a>), value: impl FnOnce(&mut Encoder<'a>)) {
        key(&mut self.enc);
        value(&mut self.enc);
        self.count += 2;
        self.mark();
    }

    /// Leaves a field absent (null).
    pub fn absent(&mut self) {
        self.enc.null();
        self.count += 1;
    }

    /// Writes a boolean field; `false`, the default of every boolean field, is left null.
    pub fn flag(&mut self, value: bool) {
        self.optional(value.then_some(()), |enc, ()| enc.bool(true));
    }

    /// Ends the list: trailing nulls are dropped and the size and count filled in.
    pub fn end(self) {
        let out = self.enc.out;
        out.truncate(self.kept_len);
        let size = u32::try_from(out.len() - self.start - 5).unwrap_or(u32::MAX);
        out[self.start + 1..self.start + 5].copy_from_slice(&size.to_be_bytes());
        out[self.start + 5..self.start + 9].copy_from_slice(&self.kept_count.to_be_bytes());
    }
}
