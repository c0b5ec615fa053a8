//! A message as the broker holds it: the AMQP message, its size, and where it is in its life.

use std::{
    borrow::Cow,
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    sync::{Arc, Mutex},
};

use fe2o3_amqp::{
    Sendable,
    types::{
        definitions,
        messaging::{Body, Message as AmqpMessage},
        primitives::LazyValue,
    },
};
use tokio::sync::oneshot;

use crate::address::queue::Settlement;

/// The AMQP message as received: sections decoded, the body kept as its encoded bytes, so that it
/// is forwarded without being decoded.
pub type Content = AmqpMessage<Body<LazyValue>>;

/// The message as it goes out to consumers. Kept ready to send, so that a first delivery is
/// encoded straight from it, without a copy.
pub type Outgoing = Sendable<Body<LazyValue>>;

/// One message held by the broker.
#[derive(Clone, Debug)]
pub struct Message {
    /// Unique within the broker process; orders messages of one sender.
    pub id: u64,
    /// The message itself, shared between the queues of a fan-out.
    pub content: Arc<Outgoing>,
    /// Its encoded size in bytes.
    pub size: usize,
    /// Whether its sender marked it durable.
    pub durable: bool,
    /// Deliveries that did not end in a settlement (raised on release, modify or a lost consumer).
    pub delivery_count: u32,
    /// The address it was sent to; on a topic, the full `/`-separated name receivers filter on.
    pub address: Arc<str>,
    /// For anycast: where the final settlement goes back to the sender.
    pub reply: Option<SettleBack>,
}

/// A consumer's final word on an anycast message: its settlement, and for a rejection the
/// consumer's reason, which goes back to the sender with it.
pub type Settled = (Settlement, Option<definitions::Error>);

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
    pub fn settle_with(&self, settlement: Settlement, reason: Option<definitions::Error>) {
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
    /// A message with the given id and content, as sent to `address`; `presettled` if it goes out
    /// to consumers pre-settled.
    pub fn new(id: u64, content: Content, size: usize, address: Arc<str>, presettled: bool) -> Self {
        let header = content.header.as_ref();
        let durable = header.is_some_and(|h| h.durable);
        let delivery_count = header.map_or(0, |h| h.delivery_count);
        Self {
            id,
            content: Arc::new(Sendable::builder().message(content).settled(presettled).build()),
            size,
            durable,
            delivery_count,
            address,
            reply: None,
        }
    }

    /// What to send to a consumer: the message as received, or, once it has been delivered before,
    /// a copy with the delivery count the broker has recorded.
    pub fn outgoing(&self, presettled: bool) -> Cow<'_, Outgoing> {
        if self.delivery_count == 0 && self.content.settled == Some(presettled) {
            return Cow::Borrowed(&self.content);
        }
        let mut content = self.content.message.clone();
        if self.delivery_count > 0 {
            let header = content.header.get_or_insert_with(Default::default);
            header.delivery_count = self.delivery_count;
            header.first_acquirer = false;
        }
        Cow::Owned(Sendable::builder().message(content).settled(presettled).build())
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

    use fe2o3_amqp::types::messaging::Body;

    use super::*;

    static NEXT: AtomicU64 = AtomicU64::new(1);

    /// A message of `size` bytes sent to `address`.
    pub(crate) fn message(address: &str, size: usize) -> Message {
        let content: Content = AmqpMessage::from(Body::Empty);
        Message::new(
            NEXT.fetch_add(1, Ordering::Relaxed),
            content,
            size,
            Arc::from(address),
            false,
        )
    }

    /// A message of `size` bytes sent to `address`, marked durable by its sender.
    pub(crate) fn durable(address: &str, size: usize) -> Message {
        let mut message = message(address, size);
        message.durable = true;
        message
    }
}
