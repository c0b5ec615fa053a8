//! A message's sections (AMQP 1.0, 3.2), checked as they arrive: each section must be a described
//! value of a known section type and well formed. The broker reads only the header; everything
//! after it is forwarded as the bytes it arrived in.

use super::{DecodeError, decode::Decoder, encode::Encoder};

/// Section descriptor codes, header (0x70) to footer (0x78).
const HEADER: u64 = 0x70;
const FOOTER: u64 = 0x78;

/// The header section's fields (AMQP 1.0, 3.2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageHeader {
    /// Whether the sender asks for the message to survive the broker.
    pub durable: bool,
    /// Its priority, 4 if absent.
    pub priority: Option<u8>,
    /// Its time to live in milliseconds.
    pub ttl: Option<u32>,
    /// Whether this delivery is the first of the message.
    pub first_acquirer: bool,
    /// Deliveries of the message that did not end in a settlement.
    pub delivery_count: u32,
}

impl MessageHeader {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let mut f = d.list()?;
        let header = Self {
            durable: f.next(Decoder::bool)?.unwrap_or(false),
            priority: f.next(Decoder::ubyte)?,
            ttl: f.next(Decoder::uint)?,
            first_acquirer: f.next(Decoder::bool)?.unwrap_or(false),
            delivery_count: f.next(Decoder::uint)?.unwrap_or(0),
        };
        f.finish()?;
        Ok(header)
    }

    /// Writes the header section.
    pub fn encode(&self, enc: &mut Encoder<'_>) {
        enc.descriptor(HEADER);
        let mut l = enc.list();
        l.flag(self.durable);
        l.optional(self.priority, Encoder::ubyte);
        l.optional(self.ttl, Encoder::uint);
        l.flag(self.first_acquirer);
        l.optional(
            (self.delivery_count > 0).then_some(self.delivery_count),
            Encoder::uint,
        );
        l.end();
    }
}

/// What the broker reads of a message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The header, or the defaults if it has none.
    pub header: MessageHeader,
    /// How many bytes at the start are the header section (0 without one).
    pub header_len: usize,
}

/// Checks every section of an encoded message and reads its header.
pub fn parse(message: &[u8]) -> Result<Parsed, DecodeError> {
    let mut d = Decoder::new(message);
    let mut parsed = Parsed::default();
    let mut first = true;
    if d.is_empty() {
        return Err(DecodeError::Invalid("a message with no section".into()));
    }
    while !d.is_empty() {
        let code = match d.descriptor()? {
            Some(descriptor) => (HEADER..=FOOTER)
                .find(|code| descriptor.is(*code, section_name(*code)))
                .ok_or_else(|| DecodeError::Invalid(format!("unknown message section {descriptor:?}")))?,
            None => {
                return Err(DecodeError::Invalid(
                    "a message section without a descriptor".into(),
                ));
            }
        };
        if code == HEADER {
            if !first {
                return Err(DecodeError::Invalid(
                    "a header section after another section".into(),
                ));
            }
            parsed.header = MessageHeader::decode(&mut d)?;
            parsed.header_len = d.position();
        } else {
            d.skip()?;
        }
        first = false;
    }
    Ok(parsed)
}

fn section_name(code: u64) -> &'static str {
    match code {
        0x70 => "amqp:header:list",
        0x71 => "amqp:delivery-annotations:map",
        0x72 => "amqp:message-annotations:map",
        0x73 => "amqp:properties:list",
        0x74 => "amqp:application-properties:map",
        0x75 => "amqp:data:binary",
        0x76 => "amqp:amqp-sequence:list",
        0x77 => "amqp:amqp-value:*",
        _ => "amqp:footer:map",
    }
}
