//! Consumers that look before they take: a consumer with a selector takes the first waiting
//! message it selects and leaves the rest in order; a browser is shown copies and takes nothing.
//! Both are woken on every arrival, and both remember how far they looked, so that each waiting
//! message is looked at once (a selecting consumer looks again from the front only when an older
//! message waits again).

use super::{Queue, State};

/// How many waiting messages one look goes through before it lets the link's connection do other
/// work; the next look goes on from there.
const SCAN_BUDGET: usize = 1024;
use crate::{address::policy::now_millis, message::Message, selector::Selector};

/// How far a consumer with a selector has looked through the waiting messages: it has looked at
/// every one up to the message id `after` and selected none, as long as the queue's epoch is
/// still `epoch`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    epoch: u64,
    after: u64,
}

impl State {
    /// Brings a scan up to the current epoch: back to just before the oldest message that waits
    /// again since the scan's epoch, or to the front if that is further back than remembered.
    fn rewind(&self, scan: &mut Scan) {
        if scan.epoch == self.epoch {
            return;
        }
        let remembered = self
            .rewinds
            .front()
            .is_some_and(|(epoch, _)| *epoch <= scan.epoch + 1);
        scan.after = match remembered {
            true => self
                .rewinds
                .iter()
                .filter(|(epoch, _)| *epoch > scan.epoch)
                .map(|(_, id)| id.saturating_sub(1))
                .fold(scan.after, u64::min),
            false => 0,
        };
        scan.epoch = self.epoch;
    }

    /// The index of the first waiting message after `after` that is alive and `selector` (if
    /// any) selects; expired ones met on the way are set aside. Returns the last id looked at
    /// when none is found within [`SCAN_BUDGET`] messages.
    fn find_selected(&mut self, after: u64, selector: Option<&Selector>, now: u64) -> Result<usize, u64> {
        let mut at = self.ready.partition_point(|message| message.id <= after);
        let mut last = after;
        let mut budget = SCAN_BUDGET;
        while let Some(message) = self.ready.get(at) {
            if budget == 0 {
                break;
            }
            budget -= 1;
            last = message.id;
            if message.expires_at().is_some_and(|expiry| expiry <= now) {
                if let Some(expired) = self.ready.remove(at) {
                    self.leave_ready(expired, now);
                }
                continue;
            }
            if selector.is_none_or(|selector| selector.matches(message)) {
                return Ok(at);
            }
            at += 1;
        }
        Err(last)
    }
}

impl Queue {
    /// Takes the first waiting message `selector` selects, without waiting, for a consumer with a
    /// selector that has looked as far as `scan`; `scan` moves on past what it passed over.
    pub fn try_pop_selected(&self, selector: &Selector, scan: &mut Scan) -> Option<Message> {
        let mut state = self.state();
        if state.closed {
            return None;
        }
        state.rewind(scan);
        let now = now_millis();
        let mut found = state.find_selected(scan.after, Some(selector), now);
        if found.is_err() && self.refill_for_watchers(&mut state) {
            found = state.find_selected(scan.after, Some(selector), now);
        }
        self.note_timed(&state);
        let at = match found {
            Ok(at) => at,
            Err(last) => {
                scan.after = last;
                return None;
            }
        };
        let message = state.ready.remove(at)?;
        let message = state.leave_ready(message, now)?;
        scan.after = message.id;
        let message = state.deliver(message);
        if state.pace_opened() {
            drop(state);
            self.room.notify_waiters();
        }
        Some(message)
    }

    /// Waits until a message a consumer with a selector has not looked at waits in the queue, or
    /// the queue closes.
    pub async fn wait_unscanned(&self, scan: Scan) {
        loop {
            let notified = self.watch.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state();
                let unseen =
                    state.epoch != scan.epoch || state.ready.back().is_some_and(|last| last.id > scan.after);
                if state.closed || unseen || self.can_refill(&mut state) {
                    return;
                }
            }
            notified.await;
        }
    }

    /// The first waiting message after the message id `after` that `selector` (if any) selects,
    /// for a browser: a copy, left in the queue for its consumers. `after` moves on past what was
    /// looked at. Messages in flight to a consumer, and expired ones, are not browsed.
    pub fn browse(&self, after: &mut u64, selector: Option<&Selector>) -> Option<Message> {
        let mut state = self.state();
        let mut found = state.find_selected(*after, selector, now_millis());
        if found.is_err() && self.refill_for_watchers(&mut state) {
            found = state.find_selected(*after, selector, now_millis());
        }
        match found {
            Ok(at) => {
                let message = state.ready.get(at)?.clone();
                *after = message.id;
                Some(message)
            }
            Err(last) => {
                *after = last;
                None
            }
        }
    }

    /// Waits until a message after `after` waits in the queue, or the queue closes.
    pub async fn wait_browsable(&self, after: u64) {
        loop {
            let notified = self.watch.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state();
                let unseen = state.ready.back().is_some_and(|last| last.id > after);
                if state.closed || unseen || self.can_refill(&mut state) {
                    return;
                }
            }
            notified.await;
        }
    }

    /// A browser or a consumer with a selector attached: arrivals are announced to it from now on.
    /// A consumer with a selector does not pace senders: what it passes over may wait for long.
    pub fn watcher_joined(&self) {
        self.state().watchers += 1;
    }

    /// A browser or a consumer with a selector left.
    pub fn watcher_left(&self) {
        let mut state = self.state();
        state.watchers = state.watchers.saturating_sub(1);
    }
}
