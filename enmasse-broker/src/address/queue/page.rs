//! Paging (`addressFullPolicy: PAGE`): a queue whose messages pass its memory share keeps taking
//! them, at disk speed, and serves them back in order.
//!
//! The waiting messages of a paging queue are its memory-resident ones, then its page: the
//! newest arrivals, appended to a page file in the order they came. While the page holds any
//! message, every arrival goes to its tail, so the page is always the tail of the queue; consumers
//! take from memory, and the queue reads the page's head back into memory as room frees up.
//! A message that comes back (released, modified, given back) goes back into memory, in its place.
//!
//! Only memory-resident messages count against the queue's bounds and the broker's
//! `globalMaxSize`; those bounds become the size of its memory share, and credit is no longer
//! withheld for fullness.
//!
//! What a page keeps through a crash:
//! - A durable message that arrives while the queue pages is not journaled: its record in the page
//!   is its only copy, synced before the sender hears it is safe ([`PageWait`]). When such records
//!   come back into memory they are journaled, and the page's cursor moves past them, before any
//!   consumer sees them ([`depage`]); only then are the segments read past removed. A restart
//!   finds the page again ([`recover`]) and takes back, from the cursor on, the copies the
//!   journal does not hold. The journal, and so the broker's memory, holds only what is in memory.
//! - A durable message journaled before it was paged (queued late once safe, committed by a
//!   transaction, recovered at a start) comes back from the journal.
//! - Non-durable messages are never synced, and a restart forgets them.
//!
//! A page is a directory of segment files ([`file`]); a segment is deleted once read past and safe,
//! and the directory once the page is empty or its queue removed. Expiry is checked as messages
//! come back into memory; selectors and browsers see the page's messages once they are back.

use std::{
    io,
    sync::{Arc, atomic::Ordering},
};

use enmasse_types::broker_config::AddressLimits;
use tracing::{error, warn};

use super::{Queue, State};
use crate::{
    address::policy::now_millis,
    message::Message,
    store::{Persisted, StoreError},
};

mod file;
mod recover;

pub(super) use file::PageFile;
use file::{ONLY_COPY, Position, Synced};
pub use recover::{LeftPage, recover};

/// How many messages a paging queue keeps waiting in memory at most, once it pages: enough for its
/// consumers to take from while the next ones are read back.
const RESIDENT_WAITING: usize = 1024;

/// Read back when fewer than this many wait in memory.
const LOW_WATER: usize = 64;

/// Rounds of reading back a consumer's take goes through when what came back had expired.
const EXPIRED_ROUNDS: usize = 16;

/// Of the broker's `globalMaxSize`, the part arrivals may fill before they page: the rest is for
/// the pages' messages coming back into memory.
const ARRIVALS_SHARE: (u64, u64) = (7, 8);

/// A durable message paged as its only copy: safe once the page's file is synced past it.
#[derive(Debug)]
pub struct PageWait {
    queue: Arc<Queue>,
    synced: Arc<Synced>,
    append: u64,
}

impl PageWait {
    /// Waits until the message is on disk: its page synced past it, or read back and journaled
    /// (or its queue removed, and the message with it).
    pub async fn safe(self) -> Result<(), StoreError> {
        let _turn = self.synced.turn.lock().await;
        if self.synced.upto.load(Ordering::Acquire) >= self.append {
            return Ok(());
        }
        let flushed = {
            let mut state = self.queue.state();
            match state.page.as_mut() {
                Some(page) if Arc::ptr_eq(page.synced(), &self.synced) => Some(page.flush_for_sync()),
                // The page was read back empty, each of its only copies journaled before it went.
                _ => None,
            }
        };
        let Some(flushed) = flushed else {
            return match self.synced.failed.load(Ordering::Acquire) {
                true => Err(StoreError("the page failed before it was synced".to_owned())),
                false => Ok(()),
            };
        };
        let failed = |err: io::Error| StoreError(format!("failed to sync the page: {err}"));
        let (file, upto) = flushed.map_err(failed)?;
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(|err| StoreError(format!("the page's sync stopped: {err}")))?
            .map_err(failed)?;
        self.synced.upto.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }
}

impl Queue {
    /// Whether an arrival of `size` bytes goes to the page: always while the page holds any (the
    /// page is the queue's tail), otherwise when the queue pages and its memory share is used.
    pub(super) fn pages_out(&self, state: &State, limits: &AddressLimits, size: usize) -> bool {
        if state.page.is_some() && (state.paged > 0 || state.depaging.is_some()) {
            return true;
        }
        if !self.pages() {
            return false;
        }
        let size = size as u64;
        state.bytes + size > limits.max_bytes
            || state.resident_depth() + 1 > limits.max_depth
            || self.budget.get().is_some_and(|budget| {
                let (part, whole) = ARRIVALS_SHARE;
                !budget.has_room_below(size, budget.max() / whole * part)
            })
    }

    /// Appends `message` to the page (made now if there is none), flagged with `flags`. Gives it
    /// back if the page cannot take it, for the caller to keep it in memory.
    pub(super) fn page_out(&self, state: &mut State, message: Message, flags: u8) -> Result<u64, Message> {
        if state.page.is_none() {
            let Some(dir) = self.budget.get().and_then(|budget| budget.new_page_dir()) else {
                return Err(message);
            };
            match PageFile::create(dir, self.store_key.get().map(|key| &**key)) {
                Ok(page) => state.page = Some(page),
                Err(err) => {
                    warn!(error = %err, "failed to start a page; the message stays in memory");
                    return Err(message);
                }
            }
        }
        let Some(page) = state.page.as_mut() else {
            return Err(message);
        };
        match page.append(&message, flags) {
            Ok(append) => {
                state.page_last_id = state.page_last_id.max(message.id);
                state.paged += 1;
                state.paged_bytes += message.size as u64;
                Ok(append)
            }
            Err(err) => {
                // A record may be cut short in the file: the page is read back as far as it goes,
                // and senders are refused until it is empty.
                warn!(error = %err, "failed to page a message; it stays in memory, and senders are refused");
                state.page_failed = true;
                Err(message)
            }
        }
    }

    /// Takes in a durable message admitted before (by [`Queue::admit`]) as its page's only copy,
    /// if the queue pages it now and the broker keeps messages: the message is not journaled, and
    /// is safe once the returned wait completes. Gives the message back otherwise, to be
    /// journaled and queued with [`Queue::push_admitted`] (or given up with
    /// [`Queue::give_up_admitted`]); until then no message queued late goes to the page ahead of
    /// it.
    pub fn page_durable(self: &Arc<Self>, message: Message) -> Result<PageWait, Message> {
        if self.store_key.get().is_none() || self.budget.get().and_then(|b| b.store()).is_none() {
            return Err(message);
        }
        let limits = self.limits();
        let mut state = self.state();
        if state.closed || state.page_failed || !self.pages_out(&state, &limits, message.size) {
            state.journaling.insert(message.id);
            return Err(message);
        }
        let append = match self.page_out(&mut state, message, ONLY_COPY) {
            Ok(append) => append,
            Err(message) => {
                state.journaling.insert(message.id);
                return Err(message);
            }
        };
        let synced = state
            .page
            .as_ref()
            .map(|page| page.synced().clone())
            .unwrap_or_default();
        state.reserved = state.reserved.saturating_sub(1);
        state.messages_in += 1;
        self.ready_again(state);
        Ok(PageWait {
            queue: self.clone(),
            synced,
            append,
        })
    }

    /// Takes back a page a previous run left, after `messages` the journal gave back for this
    /// queue (they are older than the page's): they stay in memory, and the page is the tail. A
    /// queue that has a page of its own already takes the messages and gives the page back.
    pub fn restore_left(&self, messages: Vec<Message>, left: LeftPage) -> Result<(), LeftPage> {
        let mut state = self.state();
        if state.page.is_some() {
            drop(state);
            for message in messages {
                self.restore(message);
            }
            return Err(left);
        }
        for message in messages {
            state.backlog += 1;
            state.messages_in += 1;
            state.bytes += message.size as u64;
            self.account(&state, message.size as u64, true);
            state.requeue(message);
        }
        state.backlog += left.messages;
        state.messages_in += left.messages;
        state.paged += left.messages;
        state.paged_bytes += left.bytes;
        state.page_last_id = state.page_last_id.max(left.last_id);
        state.page = Some(*left.page);
        self.ready_again(state);
        Ok(())
    }

    /// The next live message waiting in memory, reading the page back first when few wait there,
    /// and again while what came back had all expired: a consumer does not wait on a page that
    /// holds live messages. Expired messages set aside hold memory until the housekeeping moves
    /// them on, so a few rounds are read at most; the housekeeping wakes the consumers after.
    pub(super) fn take_live(&self, state: &mut State) -> Option<Message> {
        for _ in 0..EXPIRED_ROUNDS {
            if state.ready.len() < LOW_WATER {
                self.read_back(state);
            }
            let live = state.pop_live(now_millis());
            self.note_timed(state);
            if live.is_some() || state.paged == 0 || state.depaging.is_some() {
                return live;
            }
        }
        None
    }

    /// For a consumer with a selector or a browser that found nothing in memory: reads the page's
    /// head back while there is room, however many wait in memory. Whether it read any.
    pub(super) fn refill_for_watchers(&self, state: &mut State) -> bool {
        self.read_back(state) > 0
    }

    /// Whether the page's head could come back into memory now.
    pub(super) fn can_refill(&self, state: &mut State) -> bool {
        if state.paged == 0 || state.depaging.is_some() || state.ready.len() >= RESIDENT_WAITING {
            return false;
        }
        let limits = self.limits();
        let floor = state.ready.is_empty();
        let Some(page) = state.page.as_mut() else {
            return false;
        };
        match page.head_size() {
            Ok(Some(size)) => floor || self.has_room(state, &limits, size as u64, 0),
            Ok(None) => {
                // It says it holds messages and has none: it cannot be trusted.
                let missing = io::Error::new(io::ErrorKind::UnexpectedEof, "the page ended early");
                self.lose_page(state, &missing);
                false
            }
            Err(err) => {
                self.lose_page(state, &err);
                false
            }
        }
    }

    /// Whether a message of `size` bytes fits in memory, with `pending` read back and not queued
    /// yet.
    fn has_room(&self, state: &State, limits: &AddressLimits, size: u64, pending: usize) -> bool {
        state.bytes + size <= limits.max_bytes
            && state.resident_depth() + (pending as u64) < limits.max_depth
            && self.budget.get().is_none_or(|budget| budget.has_room_for(size))
    }

    /// Reads the page's head back into memory while there is room: within the queue's bounds and
    /// the broker's budget, and always one when nothing waits in memory, so that a queue whose
    /// budget others hold still moves. A page that cannot be read is given up. Returns how many
    /// messages came back. Only copies among them are journaled first ([`depage`]): until then
    /// they wait for consumers, and nothing more is read back.
    fn read_back(&self, state: &mut State) -> u64 {
        if state.paged == 0 || state.depaging.is_some() {
            return 0;
        }
        let limits = self.limits();
        let before = state.paged;
        let mut batch = Vec::new();
        let mut only_copies = Vec::new();
        while state.paged > 0 && state.ready.len() + batch.len() < RESIDENT_WAITING {
            let Some(page) = state.page.as_mut() else {
                break;
            };
            let size = match page.head_size() {
                Ok(Some(size)) => size as u64,
                Ok(None) => {
                    // Fewer than counted: records passed over as undecodable. Nothing is left.
                    warn!(missing = state.paged, "a page ended before its count");
                    state.paged = 0;
                    break;
                }
                Err(err) => {
                    self.lose_page(state, &err);
                    break;
                }
            };
            let floor = state.ready.is_empty() && batch.is_empty();
            if !floor && !self.has_room(state, &limits, size, batch.len()) {
                break;
            }
            let Some(page) = state.page.as_mut() else {
                break;
            };
            let (message, only_copy) = match page.take() {
                Ok(Some(taken)) => taken,
                Ok(None) => break,
                Err(err) => {
                    self.lose_page(state, &err);
                    break;
                }
            };
            if only_copy {
                only_copies.push(message.clone());
            }
            state.paged -= 1;
            state.paged_bytes = state.paged_bytes.saturating_sub(size);
            state.bytes += size;
            self.account(state, size, true);
            batch.push(message);
        }
        let came = before - state.paged;
        if batch.is_empty() {
            return came;
        }
        let unsafe_batch = !only_copies.is_empty();
        if unsafe_batch && self.depage(state, only_copies) {
            state.depaging = Some(batch);
            return came;
        }
        if unsafe_batch && let Some(page) = state.page.as_mut() {
            // Served without the journal having them: the page keeps them for a restart.
            error!("messages read back from a page are served without being journaled; the page keeps them");
            page.freeze();
        }
        for message in batch {
            state.requeue(message);
        }
        self.read_past(state);
        // What came back may expire: the housekeeping is told.
        self.note_timed(state);
        came
    }

    /// After what was read back is safe: the segments read past go, and the page too once empty.
    fn read_past(&self, state: &mut State) {
        if state.paged == 0 {
            state.paged_bytes = 0;
            state.page_failed = false;
            if let Some(mut page) = state.page.take() {
                page.discard();
            }
        } else if let Some(page) = state.page.as_mut() {
            let taken = page.taken();
            page.release_before(taken);
        }
    }

    /// Starts journaling `only_copies`, read back from the page in a batch, and moving the page's
    /// cursor past the batch; the batch joins the waiting messages once both are on disk. False
    /// when that cannot start (no store, no runtime): the caller queues the batch as it is.
    fn depage(&self, state: &mut State, only_copies: Vec<Message>) -> bool {
        let (Some(store), Some(key), Some(queue), Ok(runtime)) = (
            self.budget.get().and_then(|budget| budget.store()),
            self.store_key.get().cloned(),
            self.me.upgrade(),
            tokio::runtime::Handle::try_current(),
        ) else {
            return false;
        };
        let Some(page) = state.page.as_mut() else {
            return false;
        };
        let cursor = page.taken();
        // A frozen page's cursor stays where it is: a restart gives back what it passed.
        let slot = (!page.frozen()).then(|| page.cursor_slot());
        let persisting: Vec<_> = only_copies
            .iter()
            .filter_map(|message| match store.persist(&key, message) {
                Persisted::Now => None,
                Persisted::Later(future) => Some(future),
            })
            .collect();
        runtime.spawn(async move {
            let journaled = futures_util::future::join_all(persisting)
                .await
                .into_iter()
                .collect::<Result<Vec<()>, StoreError>>();
            let moved = match (journaled, slot) {
                (Ok(_), Some((cursor_file, seq))) => {
                    tokio::task::spawn_blocking(move || file::write_cursor(&cursor_file, seq, cursor))
                        .await
                        .map_err(|err| err.to_string())
                        .and_then(|written| written.map_err(|err| err.to_string()))
                }
                (Ok(_), None) => Ok(()),
                (Err(err), _) => Err(err.to_string()),
            };
            queue.depaged(cursor, moved);
        });
        true
    }

    /// The batch read back is journaled and the cursor moved past it (or not, `moved` says why):
    /// its messages wait for consumers now.
    fn depaged(&self, cursor: Position, moved: Result<(), String>) {
        let mut state = self.state();
        let Some(batch) = state.depaging.take() else {
            return;
        };
        if state.closed {
            return;
        }
        for message in batch {
            state.requeue(message);
        }
        match moved {
            Ok(()) if state.paged == 0 => self.read_past(&mut state),
            Ok(()) => {
                if let Some(page) = state.page.as_mut() {
                    page.release_before(cursor);
                }
            }
            // The page keeps its files: a restart gives the batch back from the page.
            Err(err) => {
                error!(
                    error = %err,
                    "failed to journal messages read back from a page; they are served, and the page keeps them for a restart"
                );
                if let Some(page) = state.page.as_mut() {
                    page.freeze();
                }
            }
        }
        self.ready_again(state);
    }

    /// Gives up a page that cannot be read. Its files stay for the next start, which gives back
    /// the durable messages it alone holds as far as they can be read; the others are lost, and
    /// the log says how many went.
    fn lose_page(&self, state: &mut State, err: &io::Error) {
        error!(error = %err, lost = state.paged, "failed to read a page back; its messages are given up until a restart");
        state.paged = 0;
        state.paged_bytes = 0;
        if let Some(mut page) = state.page.take() {
            page.give_up();
        }
        state.page_failed = false;
    }
}

#[cfg(test)]
mod tests;
