//! What a queue does as time passes: messages past their expiry time leave it (for the caller
//! to move to the expiry address), and messages whose redelivery delay is over wait again. The
//! broker's housekeeping calls [`Queue::tick`] on every queue that has such messages; expired
//! ones are found through an index by expiry time, never by a scan of the queue, and taken out
//! one by one, or, when many are due at once, in a single pass rather than a shift per message.

use std::sync::atomic::Ordering;

use super::Queue;
use crate::{address::policy::Redelivery, message::Message};

/// Expired messages taken out one by one in a tick; more are taken out in one pass over the queue.
const ONE_BY_ONE: usize = 64;

impl Queue {
    /// Changes the redelivery rules (a config change); they apply from the next settlement.
    pub fn set_redelivery(&self, rules: Redelivery) {
        *self
            .redelivery
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = rules;
    }

    /// Whether [`Queue::tick`] may have work: the queue holds messages that expire or wait out a
    /// delay. Cheap, for a pass over every queue.
    pub fn has_timed(&self) -> bool {
        self.timed.load(Ordering::Relaxed)
    }

    /// Moves on to `now` (milliseconds since the Unix epoch): messages whose redelivery delay is
    /// over wait again, and messages past their expiry time leave the queue and are returned,
    /// for the caller to move to the expiry address or drop.
    pub fn tick(&self, now: u64) -> Vec<Message> {
        let mut state = self.state();
        let mut expired = std::mem::take(&mut state.expired);
        while let Some(entry) = state.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let message = entry.remove();
            state.requeue(message);
        }
        let mut due = Vec::new();
        while let Some(&(at, id)) = state.expiring.first() {
            if at > now {
                break;
            }
            state.expiring.pop_first();
            due.push(id);
        }
        if due.len() <= ONE_BY_ONE {
            // A few: each found by id (the waiting messages are ordered by it) and taken out.
            for id in due {
                let index = state.ready.partition_point(|message| message.id < id);
                if state.ready.get(index).is_some_and(|message| message.id == id)
                    && let Some(message) = state.ready.remove(index)
                {
                    expired.push(message);
                }
            }
        } else {
            // Many: one pass keeps the others, rather than a shift of the queue for each.
            let due: std::collections::HashSet<u64> = due.into_iter().collect();
            let ready = std::mem::take(&mut state.ready);
            for message in ready {
                match due.contains(&message.id) {
                    true => expired.push(message),
                    false => state.ready.push_back(message),
                }
            }
        }
        let gone: u64 = expired.iter().map(|m| m.size as u64).sum();
        state.bytes = state.bytes.saturating_sub(gone);
        self.account(&state, gone, false);
        state.expired_total += expired.len() as u64;
        let idle = state.expiring.is_empty()
            && state.delayed.is_empty()
            && state.expired.is_empty()
            && state.dropped.is_empty();
        if idle {
            self.timed.store(false, Ordering::Relaxed);
        }
        // Expired messages that leave make room for a page's messages to come back.
        let woke = !state.ready.is_empty() || (!expired.is_empty() && state.paged > 0);
        if woke {
            self.ready_again(state);
        } else {
            drop(state);
        }
        if !expired.is_empty() {
            self.room.notify_waiters();
        }
        expired
    }
}
