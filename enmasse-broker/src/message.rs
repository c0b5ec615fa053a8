//! A message as the broker holds it: the bytes it arrived in, the few header fields the broker
//! acts on, and where it is in its life.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    num::NonZeroU64,
    ops::Range,
    sync::{Arc, Mutex},
};

use tokio::sync::oneshot;

pub mod annotate;
mod fields;

use crate::{
    address::queue::Settlement,
    amqp::{
        DecodeError,
        decode::Scalar,
        encode::Encoder,
        performative::ErrorInfo,
        sections::{self, MessageHeader, Properties},
    },
};

/// One message held by the broker.
#[derive(Clone, Debug)]
pub struct Message {
    /// Unique within the broker process; orders messages of one sender.
    pub id: u64,
    /// The message as its sender encoded it, every section; shared between the queues of a
    /// fan-out and the journal.
    pub encoded: Arc<[u8]>,
    /// How many bytes at the start of `encoded` are its header section.
    pub header_len: u32,
    /// Its header's fields.
    pub header: MessageHeader,
    /// Where in `encoded` its properties section's list lies.
    properties: Span,
    /// Where in `encoded` its application properties' map lies.
    application_properties: Span,
    /// Its size in bytes, as received.
    pub size: usize,
    /// Whether its sender marked it durable.
    pub durable: bool,
    /// When the broker expires it, in milliseconds since the Unix epoch; never if `None` (a
    /// time of 0 is taken as never: it fits in 8 bytes, and queues hold many messages).
    expiry: Option<NonZeroU64>,
    /// Deliveries that did not end in a settlement (raised on release, modify or a lost consumer).
    pub delivery_count: u32,
    /// The address it was sent to; on a topic, the full `/`-separated name receivers filter on.
    pub address: Arc<str>,
    /// For anycast: where the final settlement goes back to the sender.
    pub reply: Option<SettleBack>,
}

/// Where a section lies in a message's bytes, in 8 bytes; empty for none (no section is empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    const NONE: Self = Self { start: 0, end: 0 };

    /// The span of `range`; none for one beyond 4 GiB, which no message reaches.
    fn of(range: Range<usize>) -> Self {
        match (u32::try_from(range.start), u32::try_from(range.end)) {
            (Ok(start), Ok(end)) => Self { start, end },
            _ => Self::NONE,
        }
    }

    fn range(self) -> Option<Range<usize>> {
        (self.end > self.start).then_some(self.start as usize..self.end as usize)
    }
}

/// A consumer's final word on an anycast message: its settlement, and for a rejection the
/// consumer's reason, which goes back to the sender with it.
pub type Settled = (Settlement, Option<ErrorInfo>);

/// Sends a consumer's settlement back to the sender of an anycast message, once.
#[derive(Clone, Debug)]
pub struct SettleBack(Arc<Mutex<Option<oneshot::Sender<Settled>>>>);

impl SettleBack {
    /// A channel for one message's settlement.
    pub fn channel() -> (Self, oneshot::Receiver<Settled>) {
        let (tx, rx) = oneshot::channel();
        (Self(Arc::new(Mutex::new(Some(tx)))), rx)
    }

    /// Passes the settlement on; later calls do nothing.
    pub fn settle(&self, settlement: Settlement) {
        self.settle_with(settlement, None);
    }

    /// Passes the settlement on with the consumer's reason; later calls do nothing.
    pub fn settle_with(&self, settlement: Settlement, reason: Option<ErrorInfo>) {
        let sender = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(sender) = sender {
            // The sender's link may be gone: then nobody waits for the outcome.
            let _ = sender.send((settlement, reason));
        }
    }
}

impl Message {
    /// The message `encoded`, as sent to `address`, with the given id. Its sections are checked
    /// and its header read.
    pub fn decode(id: u64, encoded: Arc<[u8]>, address: Arc<str>) -> Result<Self, DecodeError> {
        let parsed = sections::parse(&encoded)?;
        let span = |range: Option<Range<usize>>| range.map_or(Span::NONE, Span::of);
        Ok(Self {
            id,
            size: encoded.len(),
            header_len: u32::try_from(parsed.header_len).unwrap_or(0),
            header: parsed.header,
            properties: span(parsed.properties),
            application_properties: span(parsed.application_properties),
            durable: parsed.header.durable,
            expiry: None,
            delivery_count: parsed.header.delivery_count,
            encoded,
            address,
            reply: None,
        })
    }

    /// When the broker expires it, in milliseconds since the Unix epoch; never if `None`.
    pub fn expires_at(&self) -> Option<u64> {
        self.expiry.map(NonZeroU64::get)
    }

    /// Sets when the broker expires it.
    pub fn set_expires_at(&mut self, at: Option<u64>) {
        self.expiry = at.and_then(NonZeroU64::new);
    }

    /// Its properties section, read from its bytes; `None` without one.
    pub fn properties(&self) -> Result<Option<Properties<'_>>, DecodeError> {
        self.properties
            .range()
            .map(|range| Properties::read(&self.encoded, range))
            .transpose()
    }

    /// One of its application properties, by name.
    pub fn application_property(&self, name: &str) -> Result<Option<Scalar<'_>>, DecodeError> {
        match self.application_properties.range() {
            Some(range) => sections::application_property(&self.encoded, range, name),
            None => Ok(None),
        }
    }

    /// Writes the message as it goes to a consumer: as received, or, once it has been delivered
    /// before, with a header carrying the delivery count the broker has recorded. Only the header
    /// is ever written anew; every other section is forwarded as it arrived.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        if self.delivery_count == self.header.delivery_count {
            out.extend_from_slice(&self.encoded);
            return;
        }
        let header = MessageHeader {
            delivery_count: self.delivery_count,
            first_acquirer: false,
            ..self.header
        };
        header.encode(&mut Encoder::new(out));
        let rest = self.encoded.get(self.header_len as usize..).unwrap_or_default();
        out.extend_from_slice(rest);
    }

    /// The message as it is now: its bytes carry the delivery count the broker has recorded, for
    /// the journal to keep.
    pub fn recounted(&self) -> Message {
        let std::borrow::Cow::Owned(bytes) = self.outgoing() else {
            return self.clone();
        };
        match Message::decode(self.id, Arc::from(bytes), self.address.clone()) {
            Ok(mut again) => {
                again.expiry = self.expiry;
                again
            }
            // The header the broker wrote is well formed; were it not, the old bytes are kept.
            Err(_) => self.clone(),
        }
    }

    /// The bytes [`Message::write_to`] writes: the encoded message, or a copy with a new header.
    pub fn outgoing(&self) -> std::borrow::Cow<'_, [u8]> {
        if self.delivery_count == self.header.delivery_count {
            return std::borrow::Cow::Borrowed(&self.encoded);
        }
        let mut out = Vec::with_capacity(self.encoded.len() + 16);
        self.write_to(&mut out);
        std::borrow::Cow::Owned(out)
    }
}

/// Message ids are unique and handed out in sequence: one multiplication spreads them over the
/// whole hash (hashbrown uses its top bits too), far cheaper than SipHash.
#[derive(Debug, Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 << 8) | u64::from(*byte);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A map keyed by message id.
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
pub(crate) mod testing {
    //! Messages for tests.

    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    static NEXT: AtomicU64 = AtomicU64::new(1);

    /// A message sent to `address` whose size counts as `size` bytes.
    pub(crate) fn message(address: &str, size: usize) -> Message {
        build(address, size, false)
    }

    /// A message sent to `address` whose size counts as `size` bytes, marked durable by its sender.
    pub(crate) fn durable(address: &str, size: usize) -> Message {
        build(address, size, true)
    }

    fn build(address: &str, size: usize, durable: bool) -> Message {
        let mut encoded = Vec::new();
        let mut enc = Encoder::new(&mut encoded);
        if durable {
            MessageHeader {
                durable,
                ..MessageHeader::default()
            }
            .encode(&mut enc);
        }
        enc.descriptor(0x75);
        enc.binary(b"body");
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut message = Message::decode(id, encoded.into(), Arc::from(address))
            .unwrap_or_else(|err| panic!("a test message: {err}"));
        message.size = size;
        message
    }
}
