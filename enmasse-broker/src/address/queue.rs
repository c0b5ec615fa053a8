//! A bounded store-and-forward queue: the engine behind `queue`, `subscription` and `deadletter`
//! addresses, and behind each receiver of a topic.
//!
//! Flow control, not buffering: under the `BLOCK` full policy (the default) a sender gets credit
//! only by *reserving* room first, so the queue never holds more messages than its depth bound, and
//! stops granting credit once its bytes bound is reached. Under `FAIL` and `DROP` credit is not
//! bounded by fullness; a message that arrives at a full queue is refused, or makes room by
//! dropping the oldest waiting ones (see [`full`]). Consumers compete: each message goes to one consumer, in the order they asked, and stays
//! *in flight* until that consumer settles it. A released message comes back in its place; a
//! modified one (a failed delivery) too, with its delivery count raised, after the address's
//! redelivery delay; one rejected, or past its delivery attempts, is given up for the caller to
//! dead-letter. A message past its expiry time is never delivered: it is set aside for the caller
//! to move to the expiry address (see [`Queue::tick`]).
//!
//! A consumer with a selector takes the first waiting message its selector selects; what it
//! passes over stays, in order, for the others. It scans each waiting message once: it remembers
//! how far it looked, and starts again from the front only when a message came back before that
//! point.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    sync::{
        Arc, Mutex, MutexGuard, OnceLock, Weak,
        atomic::{AtomicBool, Ordering},
    },
};

use enmasse_types::{broker_config::AddressLimits, resources::infra_config::AddressFullPolicy};
use tokio::sync::Notify;

use super::policy::{Redelivery, now_millis};
use crate::limits::MemoryBudget;
use crate::message::{IdMap, Message};

mod full;
mod page;
pub use page::{LeftPage, PageWait, recover as recover_page};
mod timed;
mod watch;

pub use full::FullLimit;

pub use watch::Scan;

/// How a consumer settled a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// Processed: forget it.
    Accepted,
    /// Not processed, deliver it again (to anyone); the attempt does not count.
    Released,
    /// Not processed and the attempt counts as failed: deliver it again, unless it has failed as
    /// often as the address allows.
    Modified,
    /// Cannot be processed: never deliver it again.
    Rejected,
}

/// Why a message was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The message is larger than the address accepts.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The message's size.
        size: usize,
        /// The limit.
        limit: u64,
    },
    /// The queue was removed.
    #[error("the address was removed")]
    Closed,
    /// The queue is full and its policy (`FAIL`) refuses what does not fit.
    #[error("the address is full: {0}")]
    Full(FullLimit),
}

/// What a settlement did to a message, for the caller to act on.
#[derive(Debug)]
pub enum AfterSettle {
    /// Nothing more to do: accepted, released, or not known (settled already).
    Done,
    /// A failed delivery: the message waits to be delivered again, with this delivery count.
    Redelivering(Message),
    /// Given up: rejected, or as many failed deliveries as allowed. It is no longer in the queue;
    /// the caller moves it to the dead-letter address.
    GivenUp(Message),
}

/// What a queue holds, for status and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages waiting for a consumer, in memory and paged.
    pub ready: u64,
    /// Messages delivered and not settled yet.
    pub in_flight: u64,
    /// Messages waiting out a redelivery delay.
    pub delayed: u64,
    /// Messages that expired since the queue was created.
    pub expired: u64,
    /// Messages dropped to make room (`DROP`) since the queue was created.
    pub dropped: u64,
    /// Of the messages waiting, those in the queue's page (`PAGE`).
    pub paged: u64,
    /// Bytes of message held (waiting and in flight).
    pub bytes: u64,
    /// Messages taken in since the queue was created.
    pub messages_in: u64,
    /// Messages settled as accepted or rejected since the queue was created.
    pub messages_out: u64,
}

impl QueueStats {
    /// Messages held: waiting, in flight, and waiting out a redelivery delay.
    pub fn depth(&self) -> u64 {
        self.ready + self.in_flight + self.delayed
    }
}

/// How far senders may run ahead of consumers: while consumers are attached, senders get credit
/// only while at most this many messages wait or are reserved beyond the backlog the consumers
/// found (which shrinks as they drain it). A producer faster than its consumers then waits instead
/// of building a backlog every later message queues behind, yet a backlog already there (a
/// restart's recovered messages) does not stop producers. Without consumers, a queue fills to its
/// bounds (store and forward).
pub const PACE: u64 = 2048;

/// How many epochs back a consumer with a selector can rewind exactly; one further behind looks
/// again from the front.
const REWINDS: usize = 64;

#[derive(Debug, Default)]
struct State {
    ready: VecDeque<Message>,
    in_flight: IdMap<Message>,
    bytes: u64,
    reserved: u64,
    messages_in: u64,
    messages_out: u64,
    closed: bool,
    /// Consumers attached: while there are any, the queue is paced.
    consumers: u32,
    /// The backlog the consumers found when they attached, lowered as they drain it: senders are
    /// paced beyond it.
    backlog: u64,
    /// A sender waits for the pace to let it send again.
    paced_senders: bool,
    /// Browsers and consumers with selectors attached: while there are any, arrivals are announced
    /// to them all.
    watchers: u32,
    /// Raised whenever a message waits again that is older than the newest taken in (released,
    /// given back, or queued late once safe), so that consumers with selectors look again from
    /// the front.
    epoch: u64,
    /// The id of the newest message taken in.
    newest: u64,
    /// For the latest epochs, the id of the message that raised each: a consumer with a selector
    /// looks again from just before the lowest of those it has not seen, not from the front.
    rewinds: VecDeque<(u64, u64)>,
    /// Waiting messages that expire, by expiry time: expiry finds them without a scan.
    expiring: BTreeSet<(u64, u64)>,
    /// Messages waiting out a redelivery delay, by the time they may go again.
    delayed: BTreeMap<(u64, u64), Message>,
    /// Expired messages found on the way to a consumer, for [`Queue::tick`] to hand over.
    expired: Vec<Message>,
    /// Messages expired since the queue was created.
    expired_total: u64,
    /// Messages dropped to make room (`DROP`), for [`Queue::take_dropped`] to hand over.
    dropped: Vec<Message>,
    /// Messages dropped since the queue was created.
    dropped_total: u64,
    /// The queue's page (`PAGE`): its newest waiting messages, on disk.
    page: Option<page::PageFile>,
    /// Messages in the page.
    paged: u64,
    /// Bytes of the messages in the page.
    paged_bytes: u64,
    /// The highest message id the page was given: a message queued late (safe in the journal
    /// only now) with a lower id was sent before messages in the page, and goes to memory.
    page_last_id: u64,
    /// Durable messages on their way through the journal, not paged: while any is, those queued
    /// late go to memory, so that the page never holds a message sent after one not queued yet.
    journaling: BTreeSet<u64>,
    /// The page failed to take a message: senders are refused until it is read back empty.
    page_failed: bool,
    /// Messages read back from the page with only copies among them, waiting for the journal to
    /// have them before consumers do.
    depaging: Option<Vec<Message>>,
}

impl State {
    /// Puts a message among the waiting ones in the order it first arrived (ids grow with
    /// arrival), so that the survivors of a queue keep their order however they come back, and a
    /// durable message queued once it is safe, after a later one, still takes its place. Most
    /// messages are the newest and go to the back without a search.
    fn requeue(&mut self, message: Message) {
        if let Some(at) = message.expires_at() {
            self.expiring.insert((at, message.id));
        }
        if message.id <= self.newest {
            // Back from a consumer, or queued late once safe: a consumer with a selector may have
            // looked past it.
            self.epoch += 1;
            if self.rewinds.len() == REWINDS {
                self.rewinds.pop_front();
            }
            self.rewinds.push_back((self.epoch, message.id));
        }
        self.newest = self.newest.max(message.id);
        match self.ready.back() {
            Some(last) if last.id > message.id => {
                let at = self.ready.partition_point(|waiting| waiting.id < message.id);
                self.ready.insert(at, message);
            }
            _ => self.ready.push_back(message),
        }
    }

    /// Messages held, in memory and paged.
    fn depth(&self) -> u64 {
        self.resident_depth() + self.paged
    }

    /// Messages held in memory.
    fn resident_depth(&self) -> u64 {
        (self.ready.len() + self.in_flight.len() + self.delayed.len() + self.expired.len() + self.depaging())
            as u64
    }

    /// Messages read back from the page and not waiting yet.
    fn depaging(&self) -> usize {
        self.depaging.as_ref().map_or(0, Vec::len)
    }

    /// Messages waiting for a consumer, in memory and paged.
    fn waiting(&self) -> u64 {
        (self.ready.len() + self.depaging()) as u64 + self.paged
    }

    /// Takes the first waiting message that has not expired, setting aside those that have.
    fn pop_live(&mut self, now: u64) -> Option<Message> {
        while let Some(message) = self.ready.pop_front() {
            if let Some(live) = self.leave_ready(message, now) {
                return Some(live);
            }
        }
        None
    }

    /// A message that left the waiting ones: out of the expiry index, and set aside if it has
    /// expired (`None` then).
    fn leave_ready(&mut self, message: Message, now: u64) -> Option<Message> {
        let Some(at) = message.expires_at() else {
            return Some(message);
        };
        self.expiring.remove(&(at, message.id));
        if at <= now {
            self.expired.push(message);
            return None;
        }
        Some(message)
    }

    /// Marks a message as delivered: it stays in flight until settled.
    fn deliver(&mut self, message: Message) -> Message {
        self.in_flight.insert(message.id, message.clone());
        message
    }

    /// Room senders may reserve now: within the bounds when they bound credit (`bounded`, the
    /// `BLOCK` policy) and, with consumers attached, within the pace.
    fn room(&self, limits: &AddressLimits, bounded: bool) -> u64 {
        if self.closed || (bounded && self.bytes >= limits.max_bytes) {
            return 0;
        }
        let room = match bounded {
            true => limits.max_depth.saturating_sub(self.depth() + self.reserved),
            false => u64::MAX,
        };
        match self.consumers {
            0 => room,
            _ => room.min((self.backlog + PACE).saturating_sub(self.waiting() + self.reserved)),
        }
    }

    /// Whether a paced sender should hear that consumers have drained the queue.
    fn pace_opened(&mut self) -> bool {
        self.backlog = self.backlog.min(self.waiting());
        let opened = self.paced_senders && (self.waiting() + self.reserved) < self.backlog + PACE / 2;
        if opened {
            self.paced_senders = false;
        }
        opened
    }
}

/// A bounded queue shared by its senders and consumers.
#[derive(Debug)]
pub struct Queue {
    limits: Mutex<AddressLimits>,
    state: Mutex<State>,
    /// Woken when a message arrives (consumers wait here, first come first served).
    arrivals: Notify,
    /// Woken when room frees up (senders waiting for credit wait here).
    room: Notify,
    /// Woken when a message becomes ready, for browsers and consumers with selectors (all of
    /// them).
    watch: Notify,
    /// The redelivery rules in force.
    redelivery: Mutex<Redelivery>,
    /// Whether it may page (`PAGE`): not an anycast queue, whose senders wait for each delivery.
    pageable: AtomicBool,
    /// The memory all the broker's queues share, if the queue is one of a broker's.
    budget: OnceLock<Arc<MemoryBudget>>,
    /// Whether it may hold messages that expire or wait out a delay: [`Queue::tick`] has work.
    timed: AtomicBool,
    /// The name the broker's store keeps its durable messages under, if it keeps them.
    store_key: OnceLock<Arc<str>>,
    /// The queue itself, for the work it starts ([`page`]).
    me: Weak<Queue>,
}

impl Queue {
    /// An empty queue with these bounds.
    pub fn new(limits: AddressLimits) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            limits: Mutex::new(limits),
            state: Mutex::new(State::default()),
            arrivals: Notify::new(),
            room: Notify::new(),
            watch: Notify::new(),
            redelivery: Mutex::new(Redelivery::default()),
            pageable: AtomicBool::new(true),
            budget: OnceLock::new(),
            timed: AtomicBool::new(false),
            store_key: OnceLock::new(),
            me: me.clone(),
        })
    }

    /// Names the queue as the broker's store keeps its durable messages: it may then page them as
    /// their only copy. Once only.
    pub fn set_store_key(&self, key: &str) {
        let _ = self.store_key.set(Arc::from(key));
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated in a way that matters
        // more than stopping the broker would, so a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The queue's bounds.
    pub fn limits(&self) -> AddressLimits {
        *self
            .limits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes the bounds (a plan change); a lower bound takes effect as messages leave.
    pub fn set_limits(&self, limits: AddressLimits) {
        *self
            .limits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = limits;
        self.room.notify_waiters();
    }

    /// Makes the queue share `budget` with the broker's other queues: while they hold all it
    /// allows, the queue grants no credit. Once only; a queue keeps its first budget.
    pub fn set_budget(&self, budget: Arc<MemoryBudget>) {
        let _ = self.budget.set(budget);
    }

    /// Whether the shared budget is full and that withholds credit (the `BLOCK` policy).
    fn budget_full(&self) -> bool {
        self.budget
            .get()
            .is_some_and(|budget| budget.full() && self.bounds_credit())
    }

    /// Counts `bytes` taken in (or, negative, let go) against the shared budget; a closed queue's
    /// bytes were given back when it closed.
    fn account(&self, state: &State, bytes: u64, taken: bool) {
        if state.closed {
            return;
        }
        if let Some(budget) = self.budget.get() {
            match taken {
                true => budget.charge(bytes),
                false => budget.refund(bytes),
            }
        }
    }

    /// Reserves room for up to `want` messages and returns how many a sender may send now (its
    /// credit). Zero when the queue is full or closed, or the broker's queues hold all their
    /// shared budget allows.
    pub fn reserve(&self, want: u32) -> u32 {
        if self.budget_full() {
            return 0;
        }
        let limits = self.limits();
        let bounded = self.bounds_credit();
        let mut state = self.state();
        let granted = state.room(&limits, bounded).min(u64::from(want));
        state.reserved += granted;
        // `granted` is at most `want`, a u32.
        u32::try_from(granted).unwrap_or(want)
    }

    /// Gives up a message admitted before and not to be queued (its journal write failed):
    /// frees the room reserved for it.
    pub fn give_up_admitted(&self, id: u64) {
        self.state().journaling.remove(&id);
        self.unreserve(1);
    }

    /// Gives back room reserved and not used (a sender detached with credit left).
    pub fn unreserve(&self, count: u32) {
        let mut state = self.state();
        state.reserved = state.reserved.saturating_sub(u64::from(count));
        drop(state);
        self.room.notify_waiters();
    }

    /// Waits until [`Queue::reserve`] may grant credit again (or the queue closes).
    pub async fn wait_for_room(&self) {
        loop {
            if let Some(budget) = self.budget.get()
                && self.budget_full()
            {
                budget.wait_for_room().await;
            }
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let limits = self.limits();
            let bounded = self.bounds_credit();
            {
                let mut state = self.state();
                if state.closed || (state.room(&limits, bounded) > 0 && !self.budget_full()) {
                    return;
                }
                state.paced_senders = true;
            }
            if self.budget_full() {
                continue;
            }
            notified.await;
        }
    }

    /// Refuses a message larger than the queue accepts.
    pub fn check_size(&self, size: usize) -> Result<(), PushError> {
        let limit = self.limits().max_message_size;
        match size as u64 > limit {
            true => Err(PushError::TooLarge { size, limit }),
            false => Ok(()),
        }
    }

    /// Takes in a message sent under a reservation made with [`Queue::reserve`]: refused when it
    /// is too large or, under `FAIL`, when the queue is full; under `DROP` it makes room.
    pub fn push(&self, message: Message) -> Result<(), PushError> {
        self.push_checked(message, true)
    }

    /// Takes in a message admitted before (by [`Queue::admit`]) and made safe since: it is not
    /// refused for want of room now.
    pub fn push_admitted(&self, message: Message) -> Result<(), PushError> {
        self.push_checked(message, false)
    }

    fn push_checked(&self, message: Message, check_room: bool) -> Result<(), PushError> {
        let fits = self.check_size(message.size);
        let policy = self.policy();
        let limits = self.limits();
        let mut state = self.state();
        state.reserved = state.reserved.saturating_sub(1);
        if state.closed {
            return Err(PushError::Closed);
        }
        let fits = fits.and_then(|()| match check_room {
            true if state.page_failed => Err(PushError::Full(FullLimit::Paging)),
            true => self.refuse_when_full(&state, &limits, policy, message.size),
            false => Ok(()),
        });
        if let Err(refused) = fits {
            drop(state);
            self.room.notify_waiters();
            return Err(refused);
        }
        self.take_in(state, message, policy == AddressFullPolicy::Drop, !check_room);
        Ok(())
    }

    /// Takes back a message recovered from the journal, in its place by id among those waiting.
    /// It was accepted before the restart, so no bound refuses it; senders get credit again once
    /// the queue drains below its bounds.
    pub fn restore(&self, message: Message) {
        let mut state = self.state();
        // A recovered message is backlog, not a sender running ahead.
        state.backlog += 1;
        // Nothing recovered is dropped to make room: it was accepted.
        self.take_in(state, message, false, false);
    }

    /// Takes in a message: into the page when the queue pages, otherwise into memory, and then,
    /// if `shed` (`DROP`), drops the oldest waiting ones while the queue is over its bounds. A
    /// message `admitted` before and queued late goes to memory, in its place, if messages sent
    /// after it were queued already, in memory or in the page: memory comes before the page.
    fn take_in(&self, mut state: MutexGuard<'_, State>, message: Message, shed: bool, admitted: bool) {
        state.messages_in += 1;
        let limits = self.limits();
        // Of messages on their way through the journal, one goes to the page only when none other
        // is: one that went while an older one was still on its way would come out first.
        let journaled_late = admitted && state.journaling.remove(&message.id);
        let others_on_their_way = !state.journaling.is_empty();
        let overtaken = admitted
            && (message.id < state.page_last_id
                || message.id < state.newest
                || (journaled_late && others_on_their_way));
        let pages = !overtaken && message.reply.is_none() && self.pages_out(&state, &limits, message.size);
        let message = match pages {
            true => match self.page_out(&mut state, message, 0) {
                Ok(_) => return self.ready_again(state),
                Err(kept) => kept,
            },
            false => message,
        };
        state.bytes += message.size as u64;
        self.account(&state, message.size as u64, true);
        state.requeue(message);
        if shed {
            self.shed(&mut state);
        }
        self.ready_again(state);
    }

    /// Takes the next message for a consumer, waiting for one; `None` once the queue is closed. The
    /// message stays in flight until [`Queue::settle`] is called with its id.
    pub async fn pop(&self) -> Option<Message> {
        loop {
            let notified = self.arrivals.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state();
                if state.closed {
                    return None;
                }
                if let Some(message) = self.take_live(&mut state) {
                    return Some(self.hand_out(state, message));
                }
            }
            notified.await;
        }
    }

    /// Takes the next message if one is waiting, without waiting.
    pub fn try_pop(&self) -> Option<Message> {
        let mut state = self.state();
        if state.closed {
            return None;
        }
        let message = self.take_live(&mut state)?;
        Some(self.hand_out(state, message))
    }

    /// Marks `message` delivered, and passes the wake-up on: what waits (arrived, or read back
    /// from the page) may be for another consumer, and room freed for senders.
    fn hand_out(&self, mut state: MutexGuard<'_, State>, message: Message) -> Message {
        let message = state.deliver(message);
        let more = !state.ready.is_empty();
        let opened = state.pace_opened();
        drop(state);
        if more {
            self.arrivals.notify_one();
        }
        if opened {
            self.room.notify_waiters();
        }
        message
    }

    /// A consumer attached: from now on senders are paced by what consumers drain.
    pub fn consumer_joined(&self) {
        let mut state = self.state();
        if state.consumers == 0 {
            state.backlog = state.waiting();
        }
        state.consumers += 1;
    }

    /// A consumer left; without consumers the queue fills to its bounds again.
    pub fn consumer_left(&self) {
        let mut state = self.state();
        state.consumers = state.consumers.saturating_sub(1);
        drop(state);
        self.room.notify_waiters();
    }

    /// Puts a message that was taken but never delivered back at the front, as it was.
    pub fn give_back(&self, id: u64) {
        let mut state = self.state();
        if let Some(message) = state.in_flight.remove(&id) {
            state.requeue(message);
            self.ready_again(state);
        }
    }

    /// Flags the queue for [`Queue::tick`] when it holds messages that expire, have expired, or
    /// wait out a delay: however they came (arrived, given back, released, set aside on the way to
    /// a consumer).
    fn note_timed(&self, state: &State) {
        if !state.expiring.is_empty() || !state.expired.is_empty() || !state.delayed.is_empty() {
            self.timed.store(true, Ordering::Relaxed);
        }
    }

    /// Announces a message that waits (new, given back, released) to consumers and watchers.
    fn ready_again(&self, state: MutexGuard<'_, State>) {
        self.note_timed(&state);
        let watched = state.watchers > 0;
        drop(state);
        self.arrivals.notify_one();
        if watched {
            self.watch.notify_waiters();
        }
    }

    /// Removes every waiting message (anycast, when its last receiver leaves) and returns them.
    pub fn drain(&self) -> Vec<Message> {
        let mut state = self.state();
        let drained: Vec<Message> = state.ready.drain(..).collect();
        state.expiring.clear();
        let bytes: u64 = drained.iter().map(|m| m.size as u64).sum();
        state.bytes = state.bytes.saturating_sub(bytes);
        self.account(&state, bytes, false);
        drop(state);
        self.room.notify_waiters();
        drained
    }

    /// Settles a message in flight; unknown ids (already settled) are ignored. Says what became of
    /// it, for the caller to act on.
    pub fn settle(&self, id: u64, settlement: Settlement) -> AfterSettle {
        let mut state = self.state();
        let Some(mut message) = state.in_flight.remove(&id) else {
            return AfterSettle::Done;
        };
        let rules = *self
            .redelivery
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let given_up = match settlement {
            Settlement::Accepted => false,
            Settlement::Rejected => true,
            Settlement::Released => {
                state.requeue(message);
                self.ready_again(state);
                return AfterSettle::Done;
            }
            Settlement::Modified => {
                message.delivery_count = message.delivery_count.saturating_add(1);
                rules.exhausted(message.delivery_count)
            }
        };
        if settlement == Settlement::Accepted || given_up {
            state.bytes = state.bytes.saturating_sub(message.size as u64);
            self.account(&state, message.size as u64, false);
            state.messages_out += 1;
            let paged = state.paged > 0;
            drop(state);
            self.room.notify_waiters();
            if paged {
                // Memory freed: a consumer may read the page back now.
                self.arrivals.notify_one();
                self.watch.notify_waiters();
            }
            return match given_up {
                true => AfterSettle::GivenUp(message),
                false => AfterSettle::Done,
            };
        }
        let delay = rules.delay_after(message.delivery_count);
        let again = message.clone();
        if delay.is_zero() {
            state.requeue(message);
            self.ready_again(state);
        } else {
            let due = now_millis().saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
            state.delayed.insert((due, message.id), message);
            self.timed.store(true, Ordering::Relaxed);
        }
        AfterSettle::Redelivering(again)
    }

    /// What the queue holds.
    pub fn stats(&self) -> QueueStats {
        let state = self.state();
        QueueStats {
            ready: (state.ready.len() + state.expired.len() + state.depaging()) as u64 + state.paged,
            paged: state.paged,
            in_flight: state.in_flight.len() as u64,
            delayed: state.delayed.len() as u64,
            expired: state.expired_total,
            dropped: state.dropped_total,
            bytes: state.bytes + state.paged_bytes,
            messages_in: state.messages_in,
            messages_out: state.messages_out,
        }
    }

    /// Closes the queue if it holds no message, in one step with the check, so that no message
    /// arrives in between; otherwise returns what it holds.
    pub fn close_if_empty(&self) -> Result<(), u64> {
        let state = self.state();
        match state.depth() {
            0 => {
                self.close_locked(state);
                Ok(())
            }
            held => Err(held),
        }
    }

    /// Closes the queue: senders get no more credit and consumers no more messages. Returns what it
    /// still held.
    pub fn close(&self) -> u64 {
        self.close_locked(self.state())
    }

    fn close_locked(&self, mut state: MutexGuard<'_, State>) -> u64 {
        // What it held leaves the shared budget with it.
        let bytes = state.bytes;
        self.account(&state, bytes, false);
        state.closed = true;
        let held = state.depth();
        // The page's files go with it.
        if let Some(mut page) = state.page.take() {
            page.discard();
        }
        state.depaging = None;
        state.paged = 0;
        state.paged_bytes = 0;
        drop(state);
        self.arrivals.notify_waiters();
        self.room.notify_waiters();
        self.watch.notify_waiters();
        held
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.state().closed
    }
}

#[cfg(test)]
mod tests;
