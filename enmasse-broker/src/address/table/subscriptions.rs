//! Subscriptions clients make by attaching, as JMS durable and shared subscribers do: a queue fed
//! by a topic, found again by its key (the client's container id and the link name, or the name
//! alone for a `global` shared one), served beside the configured addresses under
//! `$sub/<key>`. A durable one outlives its links and the broker: its definition is journaled as
//! a message of its own address, which recovery reads back before the messages it holds. A
//! volatile (shared, not durable) one lives while consumers are attached.

use std::sync::Arc;

use enmasse_types::resources::address::AddressType;

use super::{AddressTable, Engine, Entry, ResolveError, queue_of, topic_filter};
use crate::{
    address::fanout::Filter,
    amqp::{decode::Scalar, encode::Encoder, sections::MessageHeader},
    message::Message,
    selector::Selector,
};

/// How the addresses of client subscriptions begin. Manifests may not name an address starting
/// with `$`, so one never meets a configured address.
pub const CLIENT_SUBSCRIPTION_PREFIX: &str = "$sub/";

/// How the journal addresses of durable subscriptions' definitions begin: apart from the
/// subscription's messages, so that no message can pass for a definition.
pub const SUBSCRIPTION_DEFINITION_PREFIX: &str = "$subdef/";

/// The application property that marks a journaled subscription definition, with its key.
const DEFINITION: &str = "x-enmasse-subscription";

/// A subscription a client made by attaching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSubscription {
    /// What it is found by.
    pub key: String,
    /// The topic that feeds it.
    pub topic: String,
    /// The address the client attached to: the topic, or a pattern below it.
    pub source: String,
    /// Its selector, if it has one.
    pub selector: Option<String>,
    /// Whether it outlives its links (and is journaled).
    pub durable: bool,
    /// Whether several links may consume it at once.
    pub shared: bool,
}

impl ClientSubscription {
    /// The address it is served under.
    pub fn address(&self) -> String {
        format!("{CLIENT_SUBSCRIPTION_PREFIX}{}", self.key)
    }

    /// The journal address its definition is kept under.
    pub fn definition_address(&self) -> String {
        format!("{SUBSCRIPTION_DEFINITION_PREFIX}{}", self.key)
    }

    /// Its definition as a message, for the journal.
    pub fn definition(&self, id: u64) -> Option<Message> {
        let mut bytes = Vec::new();
        let mut e = Encoder::new(&mut bytes);
        MessageHeader {
            durable: true,
            ..MessageHeader::default()
        }
        .encode(&mut e);
        e.descriptor(0x74);
        e.map(|map| {
            let text = |map: &mut crate::amqp::encode::ListEncoder<'_>, key: &str, value: &str| {
                map.entry(|e| e.string(key), |e| e.string(value));
            };
            text(map, DEFINITION, &self.key);
            text(map, "topic", &self.topic);
            text(map, "source", &self.source);
            if let Some(selector) = &self.selector {
                text(map, "selector", selector);
            }
            map.entry(|e| e.string("shared"), |e| e.bool(self.shared));
        });
        e.descriptor(0x77);
        e.null();
        Message::decode(
            id,
            Arc::from(bytes),
            Arc::from(self.definition_address().as_str()),
        )
        .ok()
    }

    /// The subscription a journaled definition defines; `None` for one that does not hold one, or
    /// holds another key than its journal address says.
    pub fn from_definition(message: &Message) -> Option<Self> {
        let text = |name: &str| match message.application_property(name).ok().flatten() {
            Some(Scalar::Str(value)) => Some(value.to_owned()),
            _ => None,
        };
        let key = text(DEFINITION)?;
        if *message.address != *format!("{SUBSCRIPTION_DEFINITION_PREFIX}{key}") {
            return None;
        }
        Some(Self {
            key,
            topic: text("topic")?,
            source: text("source")?,
            selector: text("selector"),
            durable: true,
            shared: matches!(
                message.application_property("shared"),
                Ok(Some(Scalar::Bool(true)))
            ),
        })
    }
}

impl AddressTable {
    /// The client subscription with this key.
    pub fn client_subscription(&self, key: &str) -> Option<Arc<Entry>> {
        self.read()
            .get(&format!("{CLIENT_SUBSCRIPTION_PREFIX}{key}"))
            .filter(|entry| entry.client.is_some())
            .cloned()
    }

    /// How many client subscriptions have keys starting with `prefix`.
    pub fn client_subscriptions_of(&self, prefix: &str) -> usize {
        self.read()
            .values()
            .filter(|entry| entry.client.as_ref().is_some_and(|c| c.key.starts_with(prefix)))
            .count()
    }

    /// Finds, or creates, a client subscription: a queue with its topic's bounds and settings, fed
    /// by the topic with the messages sent to `source` that `selector` selects. Returns it, and
    /// whether it was made now. A durable one's durable copies are journaled under its address.
    pub fn subscribe(
        &self,
        subscription: ClientSubscription,
        selector: Option<Arc<Selector>>,
    ) -> Result<(Arc<Entry>, bool), ResolveError> {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(existing) = entries.get(&subscription.address())
            && existing.client.as_ref() == Some(&subscription)
        {
            return Ok((existing.clone(), false));
        }
        let topic = entries
            .get(&subscription.topic)
            .filter(|entry| entry.type_ == AddressType::Topic)
            .cloned()
            .ok_or_else(|| ResolveError::NotFound(subscription.topic.clone()))?;
        let Engine::Fanout(fanout) = &topic.engine else {
            return Err(ResolveError::NotFound(subscription.topic.clone()));
        };
        let filter = match subscription.source == subscription.topic {
            true => topic_filter(&subscription.topic),
            false => enmasse_types::patterns::WordPattern::parse(&subscription.source, false)
                .map(Filter::Pattern)
                .map_err(|err| {
                    ResolveError::NotAllowed(format!("invalid topic filter {:?}: {err}", subscription.source))
                })?,
        };
        let address = subscription.address();
        let mut config = topic.config();
        config.address = address.clone();
        config.type_ = AddressType::Subscription;
        config.topic = Some(subscription.topic.clone());
        let queue = queue_of(&config, &self.budget);
        let mut entry = Entry::new(config, Engine::Queue(queue.clone()));
        let journaled = subscription.durable.then(|| Arc::from(address.as_str()));
        let id = fanout.join_subscription(filter, selector, queue, journaled);
        entry.membership = Some((fanout.clone(), id));
        entry.client = Some(subscription);
        let entry = Arc::new(entry);
        if let Some(old) = entries.insert(address, entry.clone()) {
            old.close();
        }
        Ok((entry, true))
    }

    /// Removes a client subscription, if `entry` is still the one served, and what it holds;
    /// returns how many messages it held.
    pub fn unsubscribe(&self, entry: &Arc<Entry>) -> Option<u64> {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let served = entries.get(&entry.address).is_some_and(|e| Arc::ptr_eq(e, entry));
        if !served || entry.client.is_none() {
            return None;
        }
        let entry = entries.remove(&entry.address)?;
        let held = entry.depth();
        entry.close();
        Some(held)
    }
}
