//! A message's sections (AMQP 1.0, 3.2), checked as they arrive: each section must be a described
//! value of a known section type and well formed. The broker reads the header at once and notes
//! where the properties and application properties lie, to read them when it needs them (routing
//! an anonymous sender's message, a selector, an expiry time); everything is forwarded as the
//! bytes it arrived in.

use std::ops::Range;

use super::{
    DecodeError,
    decode::{Decoder, Scalar},
    encode::Encoder,
};

/// Section descriptor codes, header (0x70) to footer (0x78).
const HEADER: u64 = 0x70;
const PROPERTIES: u64 = 0x73;
const APPLICATION_PROPERTIES: u64 = 0x74;
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The header, or the defaults if it has none.
    pub header: MessageHeader,
    /// How many bytes at the start are the header section (0 without one).
    pub header_len: usize,
    /// Where the properties section's list lies, if it has one.
    pub properties: Option<Range<usize>>,
    /// Where the application properties' map lies, if it has them.
    pub application_properties: Option<Range<usize>>,
}

/// The properties section's fields (AMQP 1.0, 3.2.4) the broker reads, borrowed from the message.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Properties<'a> {
    /// The message id: a ulong, UUID, binary or string.
    pub message_id: Option<Scalar<'a>>,
    /// Who the sender says created it.
    pub user_id: Option<&'a [u8]>,
    /// The address it is sent to.
    pub to: Option<&'a str>,
    /// Its subject.
    pub subject: Option<&'a str>,
    /// Where replies go.
    pub reply_to: Option<&'a str>,
    /// The id of the message it answers.
    pub correlation_id: Option<Scalar<'a>>,
    /// The MIME type of its body.
    pub content_type: Option<&'a str>,
    /// When it expires, milliseconds since the Unix epoch.
    pub absolute_expiry_time: Option<i64>,
    /// When it was created, milliseconds since the Unix epoch.
    pub creation_time: Option<i64>,
    /// The group it belongs to.
    pub group_id: Option<&'a str>,
    /// Its place in its group.
    pub group_sequence: Option<u32>,
}

impl<'a> Properties<'a> {
    /// Reads the properties list at `range` of `message` (as [`parse`] found it).
    pub fn read(message: &'a [u8], range: Range<usize>) -> Result<Self, DecodeError> {
        let bytes = message.get(range).ok_or(DecodeError::Truncated)?;
        let mut f = Decoder::new(bytes).list()?;
        let id = |d: &mut Decoder<'a>| d.scalar();
        let properties = Self {
            message_id: f.next(id)?,
            user_id: f.next(Decoder::binary)?,
            to: f.next(Decoder::string)?,
            subject: f.next(Decoder::string)?,
            reply_to: f.next(Decoder::string)?,
            correlation_id: f.next(id)?,
            content_type: f.next(Decoder::symbol)?,
            absolute_expiry_time: {
                f.skip()?; // content-encoding
                f.next(Decoder::timestamp)?
            },
            creation_time: f.next(Decoder::timestamp)?,
            group_id: f.next(Decoder::string)?,
            group_sequence: f.next(Decoder::uint)?,
        };
        f.finish()?;
        Ok(properties)
    }
}

/// How many application properties a lookup goes through: a selector looks up a property for
/// every message, so the work per lookup is bounded whatever a message carries.
pub const MAX_LOOKED_UP_PROPERTIES: usize = 1024;

/// Looks up one application property of `message`, its map at `range` (as [`parse`] found it),
/// among its first [`MAX_LOOKED_UP_PROPERTIES`]. Keys that are not strings are passed over.
pub fn application_property<'a>(
    message: &'a [u8],
    range: Range<usize>,
    name: &str,
) -> Result<Option<Scalar<'a>>, DecodeError> {
    let bytes = message.get(range).ok_or(DecodeError::Truncated)?;
    let mut map = Decoder::new(bytes).map()?;
    for _ in 0..MAX_LOOKED_UP_PROPERTIES {
        if map.remaining() == 0 {
            break;
        }
        let key = map.next(Decoder::scalar)?;
        let value = map.next(Decoder::scalar)?;
        if key == Some(Scalar::Str(name)) {
            return Ok(value);
        }
    }
    Ok(None)
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
            let start = d.position();
            d.skip()?;
            let range = Some(start..d.position());
            match code {
                PROPERTIES => parsed.properties = range,
                APPLICATION_PROPERTIES => parsed.application_properties = range,
                _ => {}
            }
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
