//! The address table: which addresses the broker serves, built from the broker config and changed
//! live. Attaching links look their address up here.

use std::{
    collections::{BTreeMap, HashMap},
    hash::{BuildHasher, RandomState},
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use enmasse_types::{
    broker_config::{AddressLimits, BrokerAddress, BrokerConfig, DEFAULT_MAX_MESSAGE_SIZE},
    names::SUBSCRIPTION_SEPARATOR,
    patterns::WordPattern,
    resources::address::{AddressType, MessageTtl},
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{
    fanout::{Fanout, Filter},
    policy::Redelivery,
    queue::Queue,
};
use crate::limits::MemoryBudget;

/// Messages an anycast address holds in hand-over at most, per attached receiver.
const ANYCAST_WINDOW: u64 = 100;

/// How the names of temporary addresses (dynamic nodes) begin. Manifests may not name an address
/// starting with `$`, so a temporary address never meets a configured one.
pub const TEMPORARY_PREFIX: &str = "$temp/";

/// The plan a temporary address reports: it counts against nothing a plan sells.
const TEMPORARY_PLAN: &str = "temporary";

/// What a temporary address may hold: enough for replies, not a second store.
pub const TEMPORARY_LIMITS: AddressLimits = AddressLimits {
    max_depth: 10_000,
    max_bytes: 16 << 20,
    max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
};

/// What a temporary address is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemporaryKind {
    /// A queue: consumers compete (a reply queue, a JMS temporary queue).
    Queue,
    /// A topic: every receiver gets a copy (a JMS temporary topic).
    Topic,
}

/// The engine behind one address.
#[derive(Clone, Debug)]
pub enum Engine {
    /// `queue`, `deadletter`, `subscription`: store and forward, competing consumers.
    Queue(Arc<Queue>),
    /// `topic`, `multicast`: a copy for every member.
    Fanout(Arc<Fanout>),
    /// `anycast`: a hand-over queue that grants credit only while a receiver is attached.
    Anycast(Arc<Queue>),
}

/// One address the broker serves.
#[derive(Debug)]
pub struct Entry {
    /// The address.
    pub address: String,
    /// Its type; a change of type recreates the entry.
    pub type_: AddressType,
    /// For a subscription, its topic; a change of topic recreates the entry.
    pub topic: Option<String>,
    /// A temporary address, made for a dynamic node: it lives as long as the link that created
    /// it, and keeps nothing in the journal.
    pub temporary: bool,
    /// For a temporary address, the connection that created it: the only one that may receive
    /// from it.
    pub owner: Option<u64>,
    /// For a subscription a client made by attaching: what it is.
    pub client: Option<ClientSubscription>,
    /// Its configuration; limits and settings change in place.
    config: RwLock<BrokerAddress>,
    /// Its engine.
    pub engine: Engine,
    /// For a subscription: its membership in the topic.
    membership: Option<(Arc<Fanout>, u64)>,
    /// Attached sender links.
    pub senders: AtomicU64,
    /// Attached receiver links.
    pub receivers: AtomicU64,
    /// Messages delivered to consumers and settled.
    pub messages_out: AtomicU64,
    /// Messages that expired here (moved to the expiry address, or dropped without one).
    pub messages_expired: AtomicU64,
    /// Messages given up here: rejected, or past their delivery attempts (moved to the
    /// dead-letter address, or dropped without one).
    pub messages_dead_lettered: AtomicU64,
    /// Messages dropped here to make room (the `DROP` full policy).
    pub messages_dropped: AtomicU64,
    /// The TTL bounds in force, read for every message that arrives.
    ttl: RwLock<Option<MessageTtl>>,
    /// Woken when a receiver attaches (anycast senders wait for one).
    pub receiver_joined: Notify,
    /// Cancelled when the address is removed: its links detach.
    pub removed: CancellationToken,
}

impl Entry {
    fn new(config: BrokerAddress, engine: Engine) -> Self {
        Self {
            address: config.address.clone(),
            type_: config.type_,
            topic: config.topic.clone(),
            temporary: false,
            owner: None,
            client: None,
            ttl: RwLock::new(config.message_ttl.clone()),
            config: RwLock::new(config),
            engine,
            membership: None,
            senders: AtomicU64::new(0),
            receivers: AtomicU64::new(0),
            messages_out: AtomicU64::new(0),
            messages_expired: AtomicU64::new(0),
            messages_dead_lettered: AtomicU64::new(0),
            messages_dropped: AtomicU64::new(0),
            receiver_joined: Notify::new(),
            removed: CancellationToken::new(),
        }
    }

    /// Its configuration now.
    pub fn config(&self) -> BrokerAddress {
        self.config
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The TTL bounds in force.
    pub fn ttl(&self) -> Option<MessageTtl> {
        self.ttl
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Every queue behind the address: its own, or each member's of a fan-out.
    pub fn queues(&self) -> Vec<Arc<Queue>> {
        match &self.engine {
            Engine::Queue(queue) | Engine::Anycast(queue) => vec![queue.clone()],
            Engine::Fanout(fanout) => fanout.queues(),
        }
    }

    /// Messages held, wherever the engine keeps them.
    pub fn depth(&self) -> u64 {
        match &self.engine {
            Engine::Queue(queue) | Engine::Anycast(queue) => queue.stats().depth(),
            Engine::Fanout(fanout) => fanout.stats().depth,
        }
    }

    /// Messages taken in since the address was created.
    pub fn messages_in(&self) -> u64 {
        match &self.engine {
            Engine::Queue(queue) | Engine::Anycast(queue) => queue.stats().messages_in,
            Engine::Fanout(fanout) => fanout.stats().messages_in,
        }
    }

    /// Closes the entry if it holds no message (for a queue, in one step with the check);
    /// otherwise returns what it holds.
    fn close_if_empty(&self) -> Result<(), u64> {
        match &self.engine {
            Engine::Queue(queue) | Engine::Anycast(queue) => queue.close_if_empty()?,
            Engine::Fanout(fanout) => match fanout.stats().depth {
                0 => {}
                held => return Err(held),
            },
        }
        self.close();
        Ok(())
    }

    fn close(&self) {
        self.removed.cancel();
        if let Some((topic, id)) = &self.membership {
            topic.leave(*id, true);
        }
        match &self.engine {
            Engine::Queue(queue) | Engine::Anycast(queue) => {
                queue.close();
            }
            Engine::Fanout(fanout) => fanout.close(),
        }
    }
}

/// Where a client's sender link delivers.
#[derive(Clone, Debug)]
pub struct SendTarget {
    /// The address entry.
    pub entry: Arc<Entry>,
    /// The address messages are routed by (on a topic, the full name sent to).
    pub routing: Arc<str>,
}

/// Where a client's receiver link takes messages from.
#[derive(Clone, Debug)]
pub struct ReceiveSource {
    /// The address entry.
    pub entry: Arc<Entry>,
    /// For a topic or multicast address, the filter of the receiver's own member queue.
    pub filter: Option<Filter>,
}

/// Why a link cannot attach.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No such address.
    #[error("address {0:?} is not served by this address space")]
    NotFound(String),
    /// The address exists but not for this direction.
    #[error("{0}")]
    NotAllowed(String),
}

/// What applying a config changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Addresses created.
    pub added: Vec<String>,
    /// Addresses whose settings changed in place.
    pub updated: Vec<String>,
    /// Addresses removed, with the messages they still held.
    pub removed: Vec<(String, u64)>,
    /// Addresses recreated because their type or topic changed, with the messages the old one
    /// still held (none, but those that arrived as it was recreated).
    pub recreated: Vec<(String, u64)>,
    /// Addresses whose change of type or topic waits because they hold messages, with how many:
    /// they are served as they were until a config asks for the change once they are empty.
    pub waiting: Vec<(String, u64)>,
}

/// The addresses the broker serves.
#[derive(Debug, Default)]
pub struct AddressTable {
    entries: RwLock<BTreeMap<String, Arc<Entry>>>,
    /// Temporary addresses, by name: apart from the configured ones, which a config replaces.
    temporaries: RwLock<HashMap<String, Arc<Entry>>>,
    /// Makes temporary names unguessable: a name is a capability to send to its address.
    names: TemporaryNames,
    /// The memory all the queues share (`globalMaxSize`).
    budget: Arc<MemoryBudget>,
}

/// Hands out names no client can guess: 128 bits from the operating system's randomness each,
/// or, should that ever fail, a counter hashed with keys the standard library drew from it.
#[derive(Debug, Default)]
struct TemporaryNames {
    fallback: (RandomState, AtomicU64),
}

impl TemporaryNames {
    fn next(&self) -> String {
        let mut bytes = [0u8; 16];
        let random = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
        if random.is_err() {
            let n = self.fallback.1.fetch_add(1, Ordering::Relaxed);
            bytes[..8].copy_from_slice(&self.fallback.0.hash_one((n, 0u8)).to_le_bytes());
            bytes[8..].copy_from_slice(&self.fallback.0.hash_one((n, 1u8)).to_le_bytes());
        }
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("{TEMPORARY_PREFIX}{hex}")
    }
}

impl AddressTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Entry>>> {
        self.entries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The memory all the queues share.
    pub fn budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }

    /// Every address, sorted.
    pub fn entries(&self) -> Vec<Arc<Entry>> {
        self.read().values().cloned().collect()
    }

    /// The address with this name.
    pub fn get(&self, address: &str) -> Option<Arc<Entry>> {
        self.read().get(address).cloned()
    }

    /// Makes the table serve exactly the config's addresses: new ones are created, changed ones
    /// updated in place (or recreated when their type or topic changed and they hold no message),
    /// missing ones removed. Unrelated addresses and their links are untouched. `dropped` is told of every address
    /// whose messages went (removed or recreated) before any new entry can be seen, so that what
    /// it forgets cannot be a message of the new one.
    pub fn apply(&self, config: &BrokerConfig, mut dropped: impl FnMut(&str)) -> Applied {
        let mut applied = Applied::default();
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let wanted: BTreeMap<&str, &BrokerAddress> =
            config.addresses.iter().map(|a| (a.address.as_str(), a)).collect();

        let stale: Vec<String> = entries
            .iter()
            .filter(|(name, entry)| match (&entry.client, wanted.get(name.as_str())) {
                // A client's subscription goes with its topic.
                (Some(client), _) => wanted
                    .get(client.topic.as_str())
                    .is_none_or(|topic| topic.type_ != AddressType::Topic),
                (None, None) => true,
                (None, Some(want)) if want.type_ != entry.type_ || want.topic != entry.topic => {
                    match entry.close_if_empty() {
                        Ok(()) => true,
                        Err(held) => {
                            applied.waiting.push((name.to_string(), held));
                            false
                        }
                    }
                }
                (None, Some(_)) => false,
            })
            .map(|(name, _)| name.clone())
            .collect();
        // Subscriptions first, so a topic is never closed under its subscriptions' feet.
        let mut stale = stale;
        stale.sort_by_key(|name| entries.get(name).map(|e| e.type_ != AddressType::Subscription));
        for name in stale {
            if let Some(entry) = entries.remove(&name) {
                let held = entry.depth();
                entry.close();
                dropped(&name);
                match wanted.contains_key(name.as_str()) {
                    true => applied.recreated.push((name, held)),
                    false => applied.removed.push((name, held)),
                }
            }
        }

        // Topics before subscriptions, so every subscription finds its topic.
        let mut ordered: Vec<&BrokerAddress> = config.addresses.iter().collect();
        ordered.sort_by_key(|a| a.type_ == AddressType::Subscription);
        for want in ordered {
            match entries.get(&want.address) {
                Some(entry) if entry.type_ != want.type_ || entry.topic != want.topic => {}
                Some(entry) => {
                    if entry.config() != *want {
                        update(entry, want);
                        applied.updated.push(want.address.clone());
                    }
                }
                None => {
                    let entry = create(want, &entries, &self.budget);
                    entries.insert(want.address.clone(), Arc::new(entry));
                    applied.added.push(want.address.clone());
                }
            }
        }
        applied
    }

    /// Creates a temporary address under a fresh name, within [`TEMPORARY_LIMITS`], owned by the
    /// connection `owner`. It is served until [`AddressTable::remove_temporary`].
    pub fn create_temporary(&self, kind: TemporaryKind, owner: u64) -> Arc<Entry> {
        let address = self.names.next();
        let (type_, engine) = match kind {
            TemporaryKind::Queue => (
                AddressType::Queue,
                Engine::Queue(bounded(TEMPORARY_LIMITS, &self.budget)),
            ),
            TemporaryKind::Topic => (AddressType::Topic, Engine::Fanout(fanout(&self.budget))),
        };
        let mut config = BrokerAddress::new("", &address, type_, TEMPORARY_PLAN);
        config.limits = TEMPORARY_LIMITS;
        let mut entry = Entry::new(config, engine);
        entry.temporary = true;
        entry.owner = Some(owner);
        let entry = Arc::new(entry);
        self.temporaries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(address, entry.clone());
        entry
    }

    /// Removes a temporary address and what it held; its other links detach.
    pub fn remove_temporary(&self, address: &str) {
        let removed = self
            .temporaries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(address);
        if let Some(entry) = removed {
            entry.close();
        }
    }

    /// The temporary addresses served now.
    pub fn temporary_entries(&self) -> Vec<Arc<Entry>> {
        self.temporaries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Temporary addresses served now.
    pub fn temporaries(&self) -> usize {
        self.temporaries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    /// The temporary address with this name.
    pub fn temporary(&self, address: &str) -> Option<Arc<Entry>> {
        if !address.starts_with(TEMPORARY_PREFIX) {
            return None;
        }
        self.temporaries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(address)
            .cloned()
    }

    /// Resolves the target of a client's sender link.
    pub fn resolve_target(&self, address: &str) -> Result<SendTarget, ResolveError> {
        if let Some(entry) = self.temporary(address) {
            return Ok(SendTarget {
                entry,
                routing: Arc::from(address),
            });
        }
        let entries = self.read();
        if let Some(entry) = entries.get(address) {
            return match entry.type_ {
                AddressType::Subscription => Err(ResolveError::NotAllowed(format!(
                    "address {address:?} is a subscription: send to its topic {:?}",
                    entry.topic.as_deref().unwrap_or_default()
                ))),
                _ => Ok(SendTarget {
                    entry: entry.clone(),
                    routing: Arc::from(address),
                }),
            };
        }
        match topic_of(&entries, address) {
            Some(entry) => Ok(SendTarget {
                entry,
                routing: Arc::from(address),
            }),
            None => Err(ResolveError::NotFound(address.to_owned())),
        }
    }

    /// Resolves the source of a client's receiver link.
    pub fn resolve_source(&self, address: &str) -> Result<ReceiveSource, ResolveError> {
        if let Some(entry) = self.temporary(address) {
            let filter = (entry.type_ == AddressType::Topic).then_some(Filter::All);
            return Ok(ReceiveSource { entry, filter });
        }
        let entries = self.read();
        if let Some((topic, subscription)) = address.split_once(SUBSCRIPTION_SEPARATOR) {
            let entry = entries
                .get(subscription)
                .filter(|e| e.type_ == AddressType::Subscription && e.topic.as_deref() == Some(topic))
                .ok_or_else(|| ResolveError::NotFound(address.to_owned()))?;
            return Ok(ReceiveSource {
                entry: entry.clone(),
                filter: None,
            });
        }
        if let Some(entry) = entries.get(address) {
            let filter = match entry.type_ {
                AddressType::Topic => Some(topic_filter(address)),
                AddressType::Multicast => Some(Filter::All),
                _ => None,
            };
            return Ok(ReceiveSource {
                entry: entry.clone(),
                filter,
            });
        }
        match topic_of(&entries, address) {
            Some(entry) => {
                let pattern = WordPattern::parse(address, false).map_err(|e| {
                    ResolveError::NotAllowed(format!("invalid topic filter {address:?}: {e}"))
                })?;
                Ok(ReceiveSource {
                    entry,
                    filter: Some(Filter::Pattern(pattern)),
                })
            }
            None => Err(ResolveError::NotFound(address.to_owned())),
        }
    }
}

/// A receiver attached to a topic itself gets all of the topic: the topic and every address below.
fn topic_filter(topic: &str) -> Filter {
    WordPattern::parse(&format!("{topic}/#"), false).map_or(Filter::All, Filter::Pattern)
}

/// The topic an address below it (`<topic>/...`) belongs to.
fn topic_of(entries: &BTreeMap<String, Arc<Entry>>, address: &str) -> Option<Arc<Entry>> {
    let mut prefix = address;
    while let Some((head, _)) = prefix.rsplit_once('/') {
        if let Some(entry) = entries.get(head).filter(|e| e.type_ == AddressType::Topic) {
            return Some(entry.clone());
        }
        prefix = head;
    }
    None
}

/// A queue with the address's bounds and redelivery rules, within the broker's shared budget.
fn queue_of(config: &BrokerAddress, budget: &Arc<MemoryBudget>) -> Arc<Queue> {
    let queue = bounded(config.limits, budget);
    queue.set_redelivery(Redelivery::from_settings(config.message_redelivery.as_ref()));
    queue.set_store_key(&config.address);
    queue
}

/// A queue with `limits`, within the broker's shared budget.
fn bounded(limits: AddressLimits, budget: &Arc<MemoryBudget>) -> Arc<Queue> {
    let queue = Queue::new(limits);
    queue.set_budget(budget.clone());
    queue
}

/// A fan-out whose members' queues are within the broker's shared budget.
fn fanout(budget: &Arc<MemoryBudget>) -> Arc<Fanout> {
    let fanout = Fanout::new();
    fanout.set_budget(budget.clone());
    fanout
}

fn create(
    config: &BrokerAddress,
    entries: &BTreeMap<String, Arc<Entry>>,
    budget: &Arc<MemoryBudget>,
) -> Entry {
    match config.type_ {
        AddressType::Queue | AddressType::Deadletter => {
            Entry::new(config.clone(), Engine::Queue(queue_of(config, budget)))
        }
        AddressType::Topic | AddressType::Multicast => {
            Entry::new(config.clone(), Engine::Fanout(fanout(budget)))
        }
        AddressType::Anycast => {
            let mut limits = config.limits;
            limits.max_depth = limits.max_depth.min(ANYCAST_WINDOW);
            let queue = bounded(limits, budget);
            // Its senders wait for each delivery: nothing waits long enough to page.
            queue.never_page();
            Entry::new(config.clone(), Engine::Anycast(queue))
        }
        AddressType::Subscription => {
            let queue = queue_of(config, budget);
            let mut entry = Entry::new(config.clone(), Engine::Queue(queue.clone()));
            let topic = config.topic.as_deref().and_then(|t| entries.get(t));
            if let Some(Engine::Fanout(fanout)) = topic.map(|t| &t.engine) {
                let id = fanout.join_subscription(
                    Filter::All,
                    None,
                    queue,
                    Some(Arc::from(config.address.as_str())),
                );
                entry.membership = Some((fanout.clone(), id));
            }
            entry
        }
    }
}

/// Gives an address new settings in place, keeping its engine, counters and links.
fn update(entry: &Entry, config: &BrokerAddress) {
    match &entry.engine {
        Engine::Queue(queue) => {
            queue.set_limits(config.limits);
            queue.set_redelivery(Redelivery::from_settings(config.message_redelivery.as_ref()));
        }
        Engine::Anycast(queue) => {
            let mut limits = config.limits;
            limits.max_depth = limits.max_depth.min(ANYCAST_WINDOW);
            queue.set_limits(limits);
        }
        Engine::Fanout(_) => {}
    }
    *entry.ttl.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = config.message_ttl.clone();
    *entry
        .config
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = config.clone();
}

mod subscriptions;

pub use subscriptions::{CLIENT_SUBSCRIPTION_PREFIX, ClientSubscription, SUBSCRIPTION_DEFINITION_PREFIX};

#[cfg(test)]
mod tests;
