//! What a full queue does, as the space's `addressFullPolicy` says. A queue is full when one more
//! message would pass its `maxDepth` or `maxBytes`, or the broker's queues together would pass
//! `globalMaxSize`.
//!
//! - `BLOCK` (the default): senders get no credit while the queue is full (see
//!   [`Queue::reserve`]); nothing that arrives is refused for want of room.
//! - `FAIL`: credit is not withheld; a message that arrives at a full queue is refused, and the
//!   sender hears `amqp:resource-limit-exceeded` naming the bound.
//! - `DROP`: credit is not withheld; a message that arrives at a full queue is taken, and the
//!   oldest waiting messages are dropped until the queue is within its bounds again (the new one
//!   itself when nothing older waits: those in flight are a consumer's). Dropped messages are
//!   counted and handed to the broker's housekeeping, which forgets them in the journal.
//! - `PAGE`: credit is not withheld; what passes the queue's share of memory goes to its page on
//!   disk (see [`super::page`]). Without a paging directory, and for anycast queues, it withholds
//!   credit as `BLOCK` does.

use std::sync::atomic::Ordering;

use enmasse_types::{broker_config::AddressLimits, resources::infra_config::AddressFullPolicy};

use super::{PushError, Queue, State};
use crate::message::Message;

/// The bound a full queue met.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FullLimit {
    /// Its `maxDepth`.
    #[error("it holds its maximum of {0} messages")]
    Depth(u64),
    /// Its `maxBytes`.
    #[error("it holds its maximum of {0} bytes")]
    Bytes(u64),
    /// The broker's `globalMaxSize`.
    #[error("the broker's queues hold the space's globalMaxSize")]
    Global,
    /// Under `PAGE`, its page on disk failed to take a message (the disk is full, say).
    #[error("its page on disk cannot take more")]
    Paging,
}

impl Queue {
    /// What the queue does when full.
    pub(super) fn policy(&self) -> AddressFullPolicy {
        self.budget
            .get()
            .map_or(AddressFullPolicy::Block, |budget| budget.policy())
    }

    /// Whether fullness withholds credit: under `BLOCK`, and under `PAGE` for a queue that cannot
    /// page (no paging directory, or an anycast queue).
    pub(super) fn bounds_credit(&self) -> bool {
        match self.policy() {
            AddressFullPolicy::Block => true,
            AddressFullPolicy::Page => !self.pages(),
            AddressFullPolicy::Fail | AddressFullPolicy::Drop => false,
        }
    }

    /// Whether the queue pages what passes its memory share (`PAGE`).
    pub(super) fn pages(&self) -> bool {
        self.policy() == AddressFullPolicy::Page
            && self.pageable.load(Ordering::Relaxed)
            && self.budget.get().is_some_and(|budget| budget.paging_enabled())
    }

    /// Makes the queue one that never pages: its senders wait for each delivery (anycast).
    pub fn never_page(&self) {
        self.pageable.store(false, Ordering::Relaxed);
    }

    /// Whether a message of `size` bytes may be taken in now: not too large and, under `FAIL`, with
    /// room for it. For a message that is made safe before it is queued
    /// ([`Queue::push_admitted`]).
    pub fn admit(&self, size: usize) -> Result<(), PushError> {
        self.check_size(size)?;
        let policy = self.policy();
        let limits = self.limits();
        let state = self.state();
        self.refuse_when_full(&state, &limits, policy, size)
    }

    /// Under `FAIL`, refuses a message of `size` bytes that the queue has no room for.
    pub(super) fn refuse_when_full(
        &self,
        state: &State,
        limits: &AddressLimits,
        policy: AddressFullPolicy,
        size: usize,
    ) -> Result<(), PushError> {
        if policy != AddressFullPolicy::Fail {
            return Ok(());
        }
        match self.first_bound_passed(state, limits, size as u64, 1) {
            Some(limit) => Err(PushError::Full(limit)),
            None => Ok(()),
        }
    }

    /// The first bound `more` messages of `bytes` would pass.
    fn first_bound_passed(
        &self,
        state: &State,
        limits: &AddressLimits,
        bytes: u64,
        more: u64,
    ) -> Option<FullLimit> {
        if state.depth() + more > limits.max_depth {
            return Some(FullLimit::Depth(limits.max_depth));
        }
        if state.bytes + bytes > limits.max_bytes {
            return Some(FullLimit::Bytes(limits.max_bytes));
        }
        match self.budget.get() {
            Some(budget) if !budget.has_room_for(bytes) => Some(FullLimit::Global),
            _ => None,
        }
    }

    /// Under `DROP`: drops the oldest waiting messages while the queue (or the broker's queues
    /// together) are over their bounds.
    pub(super) fn shed(&self, state: &mut State) {
        let limits = self.limits();
        let over = |queue: &Self, state: &State| {
            state.depth() > limits.max_depth
                || state.bytes > limits.max_bytes
                || queue.budget.get().is_some_and(|budget| budget.over())
        };
        while over(self, state) {
            let Some(oldest) = state.ready.pop_front() else {
                break;
            };
            if let Some(at) = oldest.expires_at() {
                state.expiring.remove(&(at, oldest.id));
            }
            state.bytes = state.bytes.saturating_sub(oldest.size as u64);
            self.account(state, oldest.size as u64, false);
            state.dropped_total += 1;
            state.dropped.push(oldest);
            self.timed.store(true, Ordering::Relaxed);
        }
    }

    /// The messages dropped to make room since the last call, for the caller to forget in the
    /// journal (and to tell an anycast sender).
    pub fn take_dropped(&self) -> Vec<Message> {
        std::mem::take(&mut self.state().dropped)
    }
}

#[cfg(test)]
mod tests;
