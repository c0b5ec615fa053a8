//! The space's connection policy (a standard infra config's `router.policy`), enforced: how many
//! connections the broker takes in all, per user and per client host, and, within a connection,
//! how many sessions, senders and receivers. A refusal is an AMQP error that names the limit.
//! And the memory all queues may hold together (`globalMaxSize`), with what a full queue does
//! (`addressFullPolicy`).

use std::{
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, OnceLock, Weak,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
};

use enmasse_types::resources::infra_config::{AddressFullPolicy, RouterPolicy};
use tokio::sync::Notify;

use crate::{
    amqp::performative::{ErrorInfo, condition},
    broker::Broker,
    store::MessageStore,
};

/// Connections open now, in all, by user and by client host.
#[derive(Debug, Default)]
pub struct Connections {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: u32,
    users: HashMap<String, u32>,
    hosts: HashMap<IpAddr, u32>,
}

/// An authenticated connection's place among the open ones; given back when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    broker: Weak<Broker>,
    user: String,
    host: IpAddr,
}

impl Connections {
    /// Takes a place for a connection of `user` from `host`, within `policy`.
    pub fn admit(
        broker: &Arc<Broker>,
        policy: Option<&RouterPolicy>,
        user: &str,
        host: IpAddr,
    ) -> Result<ConnectionSlot, ErrorInfo> {
        let mut counts = broker.connections().lock();
        let users = counts.users.get(user).copied().unwrap_or(0);
        let hosts = counts.hosts.get(&host).copied().unwrap_or(0);
        let exceeded = |what: String| Err(ErrorInfo::new(condition::RESOURCE_LIMIT_EXCEEDED, what));
        if let Some(policy) = policy {
            if let Some(max) = policy.max_connections
                && counts.total >= max
            {
                return exceeded(format!("the address space takes {max} connections at most"));
            }
            if let Some(max) = policy.max_connections_per_user
                && users >= max
            {
                return exceeded(format!("user {user:?} may have {max} connections at most"));
            }
            if let Some(max) = policy.max_connections_per_host
                && hosts >= max
            {
                return exceeded(format!("host {host} may have {max} connections at most"));
            }
        }
        counts.total += 1;
        *counts.users.entry(user.to_owned()).or_default() += 1;
        *counts.hosts.entry(host).or_default() += 1;
        Ok(ConnectionSlot {
            broker: Arc::downgrade(broker),
            user: user.to_owned(),
            host,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let Some(broker) = self.broker.upgrade() else {
            return;
        };
        let mut counts = broker.connections().lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.users.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.users.remove(&self.user);
            }
        }
        if let Some(n) = counts.hosts.get_mut(&self.host) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.hosts.remove(&self.host);
            }
        }
    }
}

/// Whether a connection may have one more of `what` (sessions, senders, receivers), having `now`.
pub fn within(max: Option<u32>, now: usize, what: &str) -> Result<(), ErrorInfo> {
    match max {
        Some(max) if now >= max as usize => Err(ErrorInfo::new(
            condition::RESOURCE_LIMIT_EXCEEDED,
            format!("a connection may have {max} {what} at most"),
        )),
        _ => Ok(()),
    }
}

/// Bytes of message all the broker's queues hold together, within the space's `globalMaxSize`,
/// and what a queue does when it is full, at its own bounds or at this one (`addressFullPolicy`):
/// under `BLOCK` no queue grants senders credit while they hold that much.
#[derive(Debug)]
pub struct MemoryBudget {
    max: AtomicU64,
    used: AtomicU64,
    /// The `addressFullPolicy`, as [`policy_code`] encodes it.
    policy: AtomicU8,
    /// Where paging queues keep their pages (`PAGE`); without it, `PAGE` withholds credit.
    paging: OnceLock<PathBuf>,
    /// Pages made so far: each gets a directory of its own.
    pages: AtomicU64,
    /// The store that keeps durable messages, if the broker keeps them: paging queues journal
    /// what they read back, and page durable messages as their only copy.
    store: OnceLock<Arc<dyn MessageStore>>,
    /// Pages a previous run left, to be found again ([`MemoryBudget::take_left_pages`]).
    left: Mutex<Vec<PathBuf>>,
    /// Woken when the queues go back under the bound.
    freed: Notify,
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Self {
            max: AtomicU64::new(u64::MAX),
            used: AtomicU64::new(0),
            policy: AtomicU8::new(policy_code(AddressFullPolicy::Block)),
            paging: OnceLock::new(),
            pages: AtomicU64::new(0),
            store: OnceLock::new(),
            left: Mutex::new(Vec::new()),
            freed: Notify::new(),
        }
    }
}

fn policy_code(policy: AddressFullPolicy) -> u8 {
    match policy {
        AddressFullPolicy::Block => 0,
        AddressFullPolicy::Fail => 1,
        AddressFullPolicy::Drop => 2,
        AddressFullPolicy::Page => 3,
    }
}

impl MemoryBudget {
    /// Sets what a full queue does (`BLOCK` without a policy).
    pub fn set_policy(&self, policy: Option<AddressFullPolicy>) {
        let code = policy_code(policy.unwrap_or(AddressFullPolicy::Block));
        self.policy.store(code, Ordering::Relaxed);
        self.freed.notify_waiters();
    }

    /// What a full queue does.
    pub fn policy(&self) -> AddressFullPolicy {
        match self.policy.load(Ordering::Relaxed) {
            1 => AddressFullPolicy::Fail,
            2 => AddressFullPolicy::Drop,
            3 => AddressFullPolicy::Page,
            _ => AddressFullPolicy::Block,
        }
    }

    /// Makes `dir` the place of pages. Without a store that keeps messages, pages are scratch and
    /// any a previous run left are removed; with one, they are kept for the journal's recovery to
    /// find again. Once only.
    pub fn set_paging_dir(&self, dir: &Path, store: Option<Arc<dyn MessageStore>>) -> std::io::Result<()> {
        if store.is_none() {
            match std::fs::remove_dir_all(dir) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
                _ => {}
            }
        }
        std::fs::create_dir_all(dir)?;
        let mut left = Vec::new();
        let mut next = 0;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if let Some(n) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u64>().ok())
            {
                next = next.max(n + 1);
                left.push(entry.path());
            }
        }
        self.pages.store(next, Ordering::Relaxed);
        *self.left.lock().unwrap_or_else(|p| p.into_inner()) = left;
        if let Some(store) = store {
            let _ = self.store.set(store);
        }
        let _ = self.paging.set(dir.to_owned());
        Ok(())
    }

    /// The pages a previous run left (once: they are the caller's to find again).
    pub fn take_left_pages(&self) -> Vec<PathBuf> {
        std::mem::take(&mut *self.left.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The store paging queues journal what they read back in, if the broker keeps messages.
    pub(crate) fn store(&self) -> Option<Arc<dyn MessageStore>> {
        self.store.get().cloned()
    }

    /// Whether queues can page.
    pub fn paging_enabled(&self) -> bool {
        self.paging.get().is_some()
    }

    /// A directory for a new page, if queues can page.
    pub(crate) fn new_page_dir(&self) -> Option<PathBuf> {
        let n = self.pages.fetch_add(1, Ordering::Relaxed);
        self.paging.get().map(|dir| dir.join(n.to_string()))
    }

    /// The bound (`u64::MAX` without one).
    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// Whether `bytes` more would leave the queues holding at most `limit`.
    pub fn has_room_below(&self, bytes: u64, limit: u64) -> bool {
        self.used().saturating_add(bytes) <= limit
    }

    /// Whether `bytes` more would still be within the bound.
    pub fn has_room_for(&self, bytes: u64) -> bool {
        self.used().saturating_add(bytes) <= self.max.load(Ordering::Relaxed)
    }

    /// Whether the queues hold more than the bound.
    pub fn over(&self) -> bool {
        self.used() > self.max.load(Ordering::Relaxed)
    }

    /// Sets the bound (none without one).
    pub fn set_max(&self, max: Option<u64>) {
        self.max.store(max.unwrap_or(u64::MAX), Ordering::Relaxed);
        self.freed.notify_waiters();
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether the queues hold as much as they may.
    pub fn full(&self) -> bool {
        self.used() >= self.max.load(Ordering::Relaxed)
    }

    /// A queue took in `bytes`.
    pub(crate) fn charge(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A queue let go of `bytes`.
    pub(crate) fn refund(&self, bytes: u64) {
        let was_full = self.full();
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(bytes))
            });
        if was_full && !self.full() {
            self.freed.notify_waiters();
        }
    }

    /// Waits until the queues are under the bound.
    pub async fn wait_for_room(&self) {
        loop {
            let notified = self.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.full() {
                return;
            }
            notified.await;
        }
    }
}
