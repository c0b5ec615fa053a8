//! The message store: where a message is made safe before its sender's delivery is accepted.
//!
//! Queues keep their messages in memory; the store is what lets them survive the broker. The
//! inbound path asks the store to persist every durable message taken in by a queue, and accepts the
//! sender's delivery only once the store says the message is safe; a consumer's final settlement
//! tells the store to forget it. [`MemoryStore`] keeps nothing beyond the queues, so its
//! persistence completes at once; a journal completes it after its write reached the disk (and may
//! complete many at once, after one sync).

use std::{fmt::Debug, future::Future, pin::Pin};

use crate::message::Message;

/// Why a message could not be made safe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to store the message: {0}")]
pub struct StoreError(pub String);

/// The future of a persistence that did not complete at once.
pub type Persisting = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// Whether a message is safe yet.
pub enum Persisted {
    /// Safe now.
    Now,
    /// Safe once the future completes successfully.
    Later(Persisting),
}

/// Keeps messages safe across restarts.
pub trait MessageStore: Send + Sync + Debug {
    /// Makes a durable message that `address` takes in safe.
    fn persist(&self, address: &str, message: &Message) -> Persisted;

    /// Forgets a message a consumer settled for good (accepted or rejected).
    fn forget(&self, address: &str, id: u64);

    /// Keeps a message's new delivery count (it failed a delivery), if the store still has the
    /// message; nobody waits for it.
    fn recount(&self, address: &str, message: &Message);

    /// Forgets everything of an address that was removed.
    fn forget_address(&self, address: &str);

    /// Makes a committed transaction's durable work safe at once: the messages it adds, each with
    /// the address that takes it in, and the messages it settles for good. After a crash all of
    /// it is there, or none.
    fn commit(&self, adds: &[(&str, &Message)], removes: &[u64]) -> Persisted;

    /// Whether it keeps messages across restarts at all.
    fn keeps_messages(&self) -> bool {
        true
    }

    /// How long its syncs take, for the broker's metrics; `None` for a store that does not sync.
    fn sync_seconds(&self) -> Option<prometheus_client::metrics::histogram::Histogram> {
        None
    }
}

/// Messages live only in the queues' memory: nothing survives a restart.
#[derive(Debug, Default)]
pub struct MemoryStore;

impl MessageStore for MemoryStore {
    fn persist(&self, _address: &str, _message: &Message) -> Persisted {
        Persisted::Now
    }

    fn forget(&self, _address: &str, _id: u64) {}

    fn recount(&self, _address: &str, _message: &Message) {}

    fn forget_address(&self, _address: &str) {}

    fn commit(&self, _adds: &[(&str, &Message)], _removes: &[u64]) -> Persisted {
        Persisted::Now
    }

    fn keeps_messages(&self) -> bool {
        false
    }
}
