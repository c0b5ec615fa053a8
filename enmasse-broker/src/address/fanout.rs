//! Fan-out: the engine behind `topic` and `multicast` addresses.
//!
//! Every member (an attached receiver, or a topic's durable subscription) has a queue of its own
//! and a filter. A message is copied into the queue of every member whose filter matches the
//! address it was sent to and whose selector, if it has one, selects it. A sender gets credit only while every member has room, so the slowest
//! member paces the senders instead of growing memory. With no member at all, messages are
//! accepted and dropped, as on a topic nobody listens to.
//!
//! A durable subscription's copy of a durable message is not queued at once: [`Fanout::publish`]
//! hands it back as [`Held`], for the sender's link to make safe in the message store first.

use std::sync::{
    Arc, Mutex, MutexGuard, OnceLock,
    atomic::{AtomicU64, Ordering},
};

use enmasse_types::{broker_config::AddressLimits, patterns::WordPattern};
use tokio::sync::Notify;

use super::queue::{PushError, Queue};
use crate::{limits::MemoryBudget, message::Message, selector::Selector};

/// Which messages a member receives.
#[derive(Clone, Debug)]
pub enum Filter {
    /// Every message of the address.
    All,
    /// Messages whose address matches a `/`-separated pattern with `+` and `#`.
    Pattern(WordPattern),
}

impl Filter {
    fn matches(&self, address: &str) -> bool {
        match self {
            Self::All => true,
            Self::Pattern(pattern) => pattern.matches(address),
        }
    }
}

#[derive(Debug)]
struct Member {
    id: u64,
    filter: Filter,
    selector: Option<Arc<Selector>>,
    queue: Arc<Queue>,
    /// For a durable subscription, its address: durable messages are journaled under it.
    subscription: Option<Arc<str>>,
}

/// A copy of a message held back from its queue: a durable message's copy for a durable queue,
/// to be queued once the store has it, or any copy of a message sent in a transaction, to be
/// queued at its commit. Room for it stays reserved until it is queued with [`Held::queue`] or
/// given up with [`Held::give_up`].
#[derive(Debug)]
pub struct Held {
    /// The address the copy is kept under.
    pub address: Arc<str>,
    /// Whether it is to be made safe in the store before it is queued.
    pub journaled: bool,
    /// Where it goes.
    pub queue: Arc<Queue>,
    /// The copy.
    pub message: Message,
}

impl Held {
    /// Queues the copy, now that it is safe: it was admitted when it was held.
    pub fn queue(self) -> Result<(), PushError> {
        self.queue.push_admitted(self.message)
    }

    /// Gives up the copy (its persistence failed), freeing the room reserved for it.
    pub fn give_up(self) {
        self.queue.give_up_admitted(self.message.id);
    }
}

/// A fan-out address.
#[derive(Debug)]
pub struct Fanout {
    members: Mutex<Vec<Member>>,
    next_member: AtomicU64,
    published: AtomicU64,
    /// Woken when the set of members changes, so waiting senders recompute their credit.
    changed: Notify,
    /// The memory the members' queues share with the broker's other queues.
    budget: OnceLock<Arc<MemoryBudget>>,
}

/// What a fan-out holds, for status and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FanoutStats {
    /// Members (receivers and subscriptions).
    pub members: u64,
    /// Messages held in all member queues.
    pub depth: u64,
    /// Messages published since the address was created.
    pub messages_in: u64,
}

impl Default for Fanout {
    fn default() -> Self {
        Self {
            members: Mutex::new(Vec::new()),
            next_member: AtomicU64::new(1),
            published: AtomicU64::new(0),
            changed: Notify::new(),
            budget: OnceLock::new(),
        }
    }
}

impl Fanout {
    /// A fan-out with no members.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn members(&self) -> MutexGuard<'_, Vec<Member>> {
        self.members
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes the members' queues share `budget` with the broker's other queues. Once only.
    pub fn set_budget(&self, budget: Arc<MemoryBudget>) {
        let _ = self.budget.set(budget);
    }

    /// The queues of the members that are no address of their own (attached receivers): a
    /// subscription's queue is reached through its own address.
    pub fn queues(&self) -> Vec<Arc<Queue>> {
        self.members()
            .iter()
            .filter(|member| member.subscription.is_none())
            .map(|member| member.queue.clone())
            .collect()
    }

    /// Adds a member with a queue of its own bounded by `limits`; returns its id and queue.
    pub fn join(
        &self,
        filter: Filter,
        selector: Option<Arc<Selector>>,
        limits: AddressLimits,
    ) -> (u64, Arc<Queue>) {
        let queue = Queue::new(limits);
        if let Some(budget) = self.budget.get() {
            queue.set_budget(budget.clone());
        }
        let id = self.add(filter, selector, queue.clone(), None);
        (id, queue)
    }

    /// Adds a durable subscription: a member whose queue outlives its receivers, and whose
    /// copies of durable messages are journaled under `address`.
    pub fn join_subscription(
        &self,
        filter: Filter,
        selector: Option<Arc<Selector>>,
        queue: Arc<Queue>,
        address: Option<Arc<str>>,
    ) -> u64 {
        if let Some(address) = &address {
            queue.set_store_key(address);
        }
        self.add(filter, selector, queue, address)
    }

    fn add(
        &self,
        filter: Filter,
        selector: Option<Arc<Selector>>,
        queue: Arc<Queue>,
        subscription: Option<Arc<str>>,
    ) -> u64 {
        let id = self.next_member.fetch_add(1, Ordering::Relaxed);
        self.members().push(Member {
            id,
            filter,
            selector,
            queue,
            subscription,
        });
        self.changed.notify_waiters();
        id
    }

    /// Removes a member. Its queue is closed unless it outlives the membership (`keep_queue`).
    pub fn leave(&self, id: u64, keep_queue: bool) {
        let removed = {
            let mut members = self.members();
            let index = members.iter().position(|m| m.id == id);
            index.map(|i| members.remove(i))
        };
        if let Some(member) = removed
            && !keep_queue
        {
            member.queue.close();
        }
        self.changed.notify_waiters();
    }

    /// Reserves room for up to `want` messages in every member's queue; returns the credit a
    /// sender may use. Without members, any credit is granted: the messages are dropped.
    pub fn reserve(&self, want: u32) -> u32 {
        let members = self.members();
        let mut granted = want;
        let mut taken: Vec<(&Member, u32)> = Vec::with_capacity(members.len());
        for member in members.iter() {
            let got = member.queue.reserve(granted);
            taken.push((member, got));
            granted = granted.min(got);
        }
        for (member, got) in taken {
            if got > granted {
                member.queue.unreserve(got - granted);
            }
        }
        granted
    }

    /// Gives back reserved room a sender did not use.
    pub fn unreserve(&self, count: u32) {
        for member in self.members().iter() {
            member.queue.unreserve(count);
        }
    }

    /// Waits until every member has room (or the members change).
    pub async fn wait_for_room(&self) {
        let changed = self.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let queues: Vec<Arc<Queue>> = self.members().iter().map(|m| m.queue.clone()).collect();
        let all_have_room = async {
            for queue in queues {
                queue.wait_for_room().await;
            }
        };
        tokio::select! {
            () = all_have_room => {}
            () = changed => {}
        }
    }

    /// Copies a message sent under a reservation into every matching member's queue. A durable
    /// message's copies for durable subscriptions are handed back instead, to be made safe first;
    /// each gets an id of `next_id`, so that it is kept and forgotten on its own. A member that
    /// refuses the message (too large) does not stop the others; the first refusal is returned
    /// and nothing is held.
    pub fn publish(&self, message: &Message, next_id: impl FnMut() -> u64) -> Result<Vec<Held>, PushError> {
        self.copy_out(message, next_id, false)
    }

    /// Like [`Fanout::publish`], but queues no copy: every one is handed back, for a transaction
    /// to queue at its commit.
    pub fn hold(&self, message: &Message, next_id: impl FnMut() -> u64) -> Result<Vec<Held>, PushError> {
        self.copy_out(message, next_id, true)
    }

    fn copy_out(
        &self,
        message: &Message,
        mut next_id: impl FnMut() -> u64,
        hold_all: bool,
    ) -> Result<Vec<Held>, PushError> {
        self.published.fetch_add(1, Ordering::Relaxed);
        let members = self.members();
        // A member without room for it (`FAIL`) refuses the message for all: none gets a copy.
        let selected = |member: &Member| {
            member.filter.matches(&message.address)
                && member.selector.as_ref().is_none_or(|s| s.matches(message))
        };
        if let Some(full) = members
            .iter()
            .filter(|member| selected(member))
            .find_map(|member| match member.queue.admit(message.size) {
                Err(full @ PushError::Full(_)) => Some(full),
                _ => None,
            })
        {
            members.iter().for_each(|member| member.queue.unreserve(1));
            return Err(full);
        }
        let mut refused = None;
        let mut held = Vec::new();
        for member in members.iter() {
            if !selected(member) {
                member.queue.unreserve(1);
                continue;
            }
            let mut copy = message.clone();
            copy.reply = None;
            let journaled = member.subscription.is_some() && message.durable;
            if !journaled && !hold_all {
                if let Err(err) = member.queue.push(copy) {
                    refused.get_or_insert(err);
                }
                continue;
            }
            if let Err(too_large) = member.queue.check_size(copy.size) {
                member.queue.unreserve(1);
                refused.get_or_insert(too_large);
                continue;
            }
            if journaled {
                copy.id = next_id();
            }
            held.push(Held {
                address: member
                    .subscription
                    .clone()
                    .unwrap_or_else(|| message.address.clone()),
                journaled,
                queue: member.queue.clone(),
                message: copy,
            });
        }
        match refused {
            None => Ok(held),
            Some(err) => {
                held.into_iter().for_each(Held::give_up);
                Err(err)
            }
        }
    }

    /// What the fan-out holds.
    pub fn stats(&self) -> FanoutStats {
        let members = self.members();
        FanoutStats {
            members: members.len() as u64,
            depth: members.iter().map(|m| m.queue.stats().depth()).sum(),
            messages_in: self.published.load(Ordering::Relaxed),
        }
    }

    /// Closes every member's queue (the address was removed).
    pub fn close(&self) {
        let members = std::mem::take(&mut *self.members());
        for member in members {
            member.queue.close();
        }
        self.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        address::queue::Settlement,
        message::testing::{durable, message},
    };

    fn limits(max_depth: u64) -> AddressLimits {
        AddressLimits {
            max_depth,
            max_bytes: 1_000_000,
            max_message_size: 1_000,
        }
    }

    #[test]
    fn every_member_gets_every_message_it_filters_for() {
        let topic = Fanout::new();
        let (_, all) = topic.join(Filter::All, None, limits(10));
        let (_, temps) = topic.join(
            Filter::Pattern(WordPattern::parse("sensors/+/temp", false).unwrap()),
            None,
            limits(10),
        );
        assert_eq!(topic.reserve(2), 2);
        topic.publish(&message("sensors/room1/temp", 1), || 0).unwrap();
        topic
            .publish(&message("sensors/room1/humidity", 1), || 0)
            .unwrap();
        assert_eq!(all.stats().depth(), 2);
        assert_eq!(temps.stats().depth(), 1);
        assert_eq!(
            temps.reserve(100),
            9,
            "the unmatched message's room was given back"
        );
    }

    #[test]
    fn the_fullest_member_sets_the_credit() {
        let topic = Fanout::new();
        let (_, slow) = topic.join(Filter::All, None, limits(2));
        let (_, _fast) = topic.join(Filter::All, None, limits(10));
        assert_eq!(topic.reserve(5), 2);
        topic.publish(&message("t", 1), || 0).unwrap();
        topic.publish(&message("t", 1), || 0).unwrap();
        assert_eq!(topic.reserve(5), 0, "the slow member is full");
        let m = slow.try_pop().unwrap();
        slow.settle(m.id, Settlement::Accepted);
        assert_eq!(topic.reserve(5), 1);
    }

    #[test]
    fn without_members_messages_are_dropped_and_credit_flows() {
        let topic = Fanout::new();
        assert_eq!(topic.reserve(50), 50);
        topic.publish(&message("t", 1), || 0).unwrap();
        assert_eq!(
            topic.stats(),
            FanoutStats {
                members: 0,
                depth: 0,
                messages_in: 1
            }
        );
    }

    #[test]
    fn a_member_that_leaves_gets_no_more_and_its_queue_closes() {
        let topic = Fanout::new();
        let (id, queue) = topic.join(Filter::All, None, limits(10));
        topic.leave(id, false);
        assert!(queue.is_closed());
        topic.reserve(1);
        topic.publish(&message("t", 1), || 0).unwrap();
        assert_eq!(queue.stats().depth(), 0);
    }

    #[test]
    fn a_durable_message_is_held_for_durable_subscriptions_and_queued_at_once_for_receivers() {
        let topic = Fanout::new();
        let (_, receiver) = topic.join(Filter::All, None, limits(10));
        let subscription = Queue::new(limits(10));
        topic.join_subscription(Filter::All, None, subscription.clone(), Some(Arc::from("audit")));
        assert_eq!(topic.reserve(1), 1);
        let mut ids = 100..;
        let mut held = topic
            .publish(&durable("t", 1), || ids.next().unwrap_or_default())
            .unwrap();
        assert_eq!(receiver.stats().depth(), 1);
        assert_eq!(subscription.stats().depth(), 0, "not queued before it is safe");
        assert_eq!(held.len(), 1);
        assert_eq!((&*held[0].address, held[0].message.id), ("audit", 100));
        assert_eq!(subscription.reserve(100), 9, "its room stays reserved meanwhile");
        subscription.unreserve(9);
        held.remove(0).queue().unwrap();
        assert_eq!(subscription.stats().depth(), 1);
    }

    #[test]
    fn a_refused_durable_message_holds_nothing_and_frees_its_room() {
        let topic = Fanout::new();
        let subscription = Queue::new(limits(10));
        topic.join_subscription(Filter::All, None, subscription.clone(), Some(Arc::from("audit")));
        let (_, small) = topic.join(
            Filter::All,
            None,
            AddressLimits {
                max_message_size: 10,
                ..limits(10)
            },
        );
        assert_eq!(topic.reserve(1), 1);
        let refused = topic.publish(&durable("t", 100), || 1);
        assert!(matches!(
            refused,
            Err(PushError::TooLarge { size: 100, limit: 10 })
        ));
        assert_eq!(small.stats().depth(), 0);
        assert_eq!(
            subscription.reserve(100),
            10,
            "the held copy's room is free again"
        );
    }

    #[test]
    fn a_durable_subscription_keeps_its_queue_when_it_leaves() {
        let topic = Fanout::new();
        let queue = Queue::new(limits(10));
        let id = topic.join_subscription(Filter::All, None, queue.clone(), Some(Arc::from("sub")));
        topic.reserve(1);
        topic.publish(&message("t", 1), || 0).unwrap();
        topic.leave(id, true);
        assert!(!queue.is_closed());
        assert_eq!(queue.stats().depth(), 1);
    }
}
