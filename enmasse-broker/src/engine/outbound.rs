//! A link on which the broker sends: messages flow out of an address to the peer.
//!
//! A message is taken from the address's queue only when the link has credit for it, so nothing
//! waits in the link. A message larger than a frame goes out in as many frames as it needs, as
//! the peer's session window allows. A drain sends what is waiting and then gives up the rest of
//! the credit (AMQP 1.0, 2.6.7). A message the peer does not settle before the link ends goes back
//! to the queue for another consumer.
//!
//! A selector on a queue picks among the waiting messages and leaves the rest; on a topic it is the
//! link's own queue's filter, so that what it does not select is never copied to it.

use std::{
    collections::BTreeMap,
    sync::{Arc, atomic::Ordering},
};

use enmasse_types::resources::address::AddressType;
use tracing::debug;

use super::{
    attach::Receiving,
    connection::{Context, Ending, Event, LinkKey},
    session::{Bound, Endpoint, Unsettled},
    subscription::Subscriber,
};
use crate::{
    address::{
        fanout::{Fanout, Filter},
        queue::{AfterSettle, Queue, Scan, Settlement},
        table::{Engine as AddressEngine, Entry},
    },
    amqp::{
        frame,
        performative::{Attach, AttachReply, ErrorInfo, FilterKind, Flow, Role, Terminus, condition},
    },
    broker::Broker,
    deadletter::{self, Reason},
    message::{Message, Settled},
    selector::Selector,
};

/// Bytes a transfer's performative and frame header may take beside its payload.
const TRANSFER_OVERHEAD: usize = 64;

/// The session's state a link's sends advance.
pub(super) struct Window<'a> {
    pub(super) channel: u16,
    /// Transfers the peer still takes.
    pub(super) remote_window: &'a mut u32,
    pub(super) next_outgoing_id: &'a mut u32,
    pub(super) next_delivery_id: &'a mut u32,
    pub(super) unsettled: &'a mut BTreeMap<u32, Unsettled>,
}

/// What a pump did.
pub(super) enum Pumped {
    /// Sent what it could, perhaps nothing.
    Sent,
    /// Completed a drain: a flow must tell the peer its credit is used up.
    Drained,
}

/// A message cut off by the peer's window or a full output, to go on with.
struct Sending {
    delivery_id: u32,
    bytes: Arc<[u8]>,
    offset: usize,
    settled: bool,
}

/// A link on which the broker sends.
pub(super) struct Outbound {
    /// Its name, handle and credit; the delivery count is the broker's deliveries, the credit what
    /// the peer gave and the broker has not used.
    pub(super) end: Endpoint,
    /// The address it takes messages from.
    pub(super) bound: Bound,
    queue: Arc<Queue>,
    membership: Option<(Arc<Fanout>, u64)>,
    drain: bool,
    /// A wait for the queue's next message is under way.
    waiting: bool,
    /// A message the wait brought, to send first.
    ready: Option<Message>,
    presettled: bool,
    /// For a browser (distribution-mode `copy`): the id of the last message it looked at. A
    /// browser gets copies, settled, and the queue keeps the messages for its consumers.
    browsing: Option<u64>,
    /// The selector it picks messages of a shared queue with, and how far it has looked.
    selector: Option<(Arc<Selector>, Scan)>,
    /// The client subscription it consumes, which may go when it does.
    subscriber: Option<Subscriber>,
    peer_max_message_size: Option<u64>,
    in_flight: usize,
    max_in_flight: usize,
    sending: Option<Sending>,
}

impl Outbound {
    /// Accepts the peer's attach: joins the address (a topic gives the link a queue of its own)
    /// and answers with the terminus in force.
    pub(super) fn attach(
        cx: &mut Context<'_>,
        channel: u16,
        local: u32,
        key: LinkKey,
        attach: &Attach,
        receiving: Receiving,
    ) -> Self {
        let Receiving {
            source,
            bound,
            selector,
            reply,
            subscriber,
        } = receiving;
        let entry = source.entry.clone();
        let applied_selector = selector.is_some();
        let (queue, membership, mode, selector) = match &entry.engine {
            AddressEngine::Queue(queue) | AddressEngine::Anycast(queue) => {
                (queue.clone(), None, Some("move"), selector.clone())
            }
            AddressEngine::Fanout(fanout) => {
                let filter = source.filter.clone().unwrap_or(Filter::All);
                let (id, queue) = fanout.join(filter, selector.clone(), entry.config().limits);
                (queue, Some((fanout.clone(), id)), None, None)
            }
        };
        let browsing = attach
            .source
            .as_ref()
            .is_some_and(|s| s.distribution_mode.as_deref() == Some("copy"))
            .then_some(0);
        entry.receivers.fetch_add(1, Ordering::Relaxed);
        match (browsing, &selector) {
            (None, None) => {
                entry.receiver_joined.notify_waiters();
                queue.consumer_joined();
            }
            (None, Some(_)) => {
                entry.receiver_joined.notify_waiters();
                queue.watcher_joined();
            }
            (Some(_), _) => queue.watcher_joined(),
        }
        // Multicast is at-most-once: its deliveries go out pre-settled.
        let presettled =
            entry.type_ == AddressType::Multicast || attach.snd_settle_mode == 1 || browsing.is_some();
        let mode = if browsing.is_some() { Some("copy") } else { mode };
        let mut reply_source = Terminus {
            distribution_mode: mode.map(str::to_owned),
            ..Terminus::named_like(attach.source.as_ref())
        };
        if bound.temporary.is_some() {
            reply_source.address = Some(entry.address.clone());
            reply_source.dynamic = true;
        }
        // The filters in force: the selector, under the key the peer gave it.
        if applied_selector {
            reply_source.filters = attach
                .source
                .iter()
                .flat_map(|s| &s.filters)
                .filter(|f| matches!(f.kind, FilterKind::Selector(_)))
                .cloned()
                .collect();
        }
        let reply_source = reply.unwrap_or(reply_source);
        let reply_target = Terminus::named_like(attach.target.as_ref());
        frame::write_amqp(cx.output, channel, |e| {
            e.attach(&AttachReply {
                name: &attach.name,
                handle: local,
                role: Role::Sender,
                snd_settle_mode: if presettled { 1 } else { 0 },
                source: Some(&reply_source),
                target: Some(&reply_target),
                initial_delivery_count: Some(0),
                max_message_size: None,
            });
        });
        Self {
            end: Endpoint::new(cx, &attach.name, local, key, 0, Some(&bound)),
            bound,
            queue,
            membership,
            drain: false,
            waiting: false,
            ready: None,
            presettled,
            browsing,
            selector: selector.map(|selector| (selector, Scan::default())),
            subscriber,
            peer_max_message_size: attach.max_message_size.filter(|max| *max > 0),
            in_flight: 0,
            max_in_flight: cx.broker.settings().max_in_flight.max(1),
            sending: None,
        }
    }

    /// Whether the link could send now, if the session lets it.
    pub(super) fn wants_pump(&self) -> bool {
        self.sending.is_some() || self.ready.is_some() || (self.end.credit > 0 && !self.waiting)
    }

    /// Messages waiting in the link's queue.
    pub(super) fn available(&self) -> u32 {
        u32::try_from(self.queue.stats().ready).unwrap_or(u32::MAX)
    }

    /// Takes the peer's flow: its credit, counted from the deliveries it has seen, and `drain`.
    pub(super) fn flow(&mut self, flow: &Flow) {
        let credit = flow.link_credit.unwrap_or(0);
        let seen = flow.delivery_count.unwrap_or(0);
        self.end.credit = credit_left(seen, credit, self.end.delivery_count);
        self.drain = flow.drain;
    }

    /// Sends what the link has credit and the session has window for.
    pub(super) fn pump(&mut self, cx: &mut Context<'_>, w: &mut Window<'_>) -> Result<Pumped, ErrorInfo> {
        if let Some(sending) = self.sending.take() {
            let offset = write_frames(cx, w, self.end.local, &sending, sending.offset);
            if offset < sending.bytes.len() {
                self.sending = Some(Sending { offset, ..sending });
                return Ok(Pumped::Sent);
            }
        }
        if self.end.credit == 0
            && let Some(message) = self.ready.take()
        {
            self.queue.give_back(message.id);
        }
        while self.end.credit > 0
            && *w.remote_window > 0
            && cx.output.len() < super::OUTPUT_HIGH_WATER
            && self.in_flight < self.max_in_flight
        {
            let next = match (&mut self.browsing, &mut self.selector) {
                (Some(after), selector) => self.queue.browse(after, selector.as_ref().map(|(s, _)| &**s)),
                (None, Some((selector, scan))) => self
                    .ready
                    .take()
                    .or_else(|| self.queue.try_pop_selected(selector, scan)),
                (None, None) => self.ready.take().or_else(|| self.queue.try_pop()),
            };
            let Some(message) = next else {
                if self.drain {
                    // Everything waiting was sent: the rest of the credit is given up.
                    return Ok(self.give_up_credit());
                }
                self.wait(cx);
                break;
            };
            self.send(cx, w, message)?;
            if self.sending.is_some() {
                break;
            }
        }
        if self.drain && self.end.credit > 0 && self.sending.is_none() && self.in_flight >= self.max_in_flight
        {
            // The peer holds as many unsettled messages as the link sends: a drain cannot wait for
            // it to settle them, so the credit is given up now.
            return Ok(self.give_up_credit());
        }
        Ok(Pumped::Sent)
    }

    /// Completes a drain: the credit left is used up by advancing the delivery count.
    fn give_up_credit(&mut self) -> Pumped {
        self.end.delivery_count = self.end.delivery_count.wrapping_add(self.end.credit);
        self.end.credit = 0;
        Pumped::Drained
    }

    /// Waits for the queue's next message.
    fn wait(&mut self, cx: &mut Context<'_>) {
        if self.waiting {
            return;
        }
        self.waiting = true;
        let (queue, gone, key, browsing) = (
            self.queue.clone(),
            self.end.gone.clone(),
            self.end.key,
            self.browsing,
        );
        let scan = self.selector.as_ref().map(|(_, scan)| *scan);
        cx.waits.push(Box::pin(async move {
            tokio::select! {
                biased;
                () = gone.cancelled() => Event::Ended(key, Ending::Gone),
                message = async {
                    match (browsing, scan) {
                        // A browser takes nothing: it is woken to look again.
                        (Some(after), _) => {
                            queue.wait_browsable(after).await;
                            None
                        }
                        // Nor does a consumer with a selector: it looks again, and takes what
                        // it selects.
                        (None, Some(scan)) => {
                            queue.wait_unscanned(scan).await;
                            None
                        }
                        (None, None) => queue.pop().await,
                    }
                } => Event::Popped(key, queue.clone(), message),
            }
        }));
    }

    /// The queue offered a message (or closed).
    pub(super) fn popped(&mut self, message: Option<Message>) {
        self.waiting = false;
        if let Some(message) = message {
            match self.ready {
                None => self.ready = Some(message),
                Some(_) => self.queue.give_back(message.id),
            }
        }
    }

    fn send(&mut self, cx: &mut Context<'_>, w: &mut Window<'_>, message: Message) -> Result<(), ErrorInfo> {
        if let Some(max) = self.peer_max_message_size
            && message.size as u64 > max
        {
            self.queue.give_back(message.id);
            return Err(ErrorInfo::new(
                condition::MESSAGE_SIZE_EXCEEDED,
                format!(
                    "a message of {} bytes waits on address {:?}, larger than the receiver's max-message-size of {max}",
                    message.size, self.bound.entry.address
                ),
            ));
        }
        let delivery_id = *w.next_delivery_id;
        *w.next_delivery_id = delivery_id.wrapping_add(1);
        self.end.credit -= 1;
        self.end.delivery_count = self.end.delivery_count.wrapping_add(1);
        let settled = self.presettled;
        let bytes: Arc<[u8]> = match message.outgoing() {
            std::borrow::Cow::Borrowed(_) => message.encoded.clone(),
            std::borrow::Cow::Owned(rewritten) => Arc::from(rewritten),
        };
        let sending = Sending {
            delivery_id,
            bytes,
            offset: 0,
            settled,
        };
        let offset = write_frames(cx, w, self.end.local, &sending, 0);
        if offset < sending.bytes.len() {
            self.sending = Some(Sending { offset, ..sending });
        }
        if self.browsing.is_some() {
            // A copy: the queue keeps the message.
        } else if settled {
            settle(
                cx.broker,
                &self.bound.entry,
                &self.queue,
                &message,
                (Settlement::Accepted, None),
            );
        } else {
            self.in_flight += 1;
            w.unsettled.insert(
                delivery_id,
                Unsettled {
                    key: self.end.key,
                    message,
                },
            );
        }
        Ok(())
    }

    /// The peer settled a message sent on this link with an outcome a transaction holds: the link
    /// may send another, and the message stays in flight. Returns where it is.
    pub(super) fn retired(&mut self) -> (Arc<Entry>, Arc<Queue>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        (self.bound.entry.clone(), self.queue.clone())
    }

    /// Applies the peer's outcome for a message sent on this link.
    pub(super) fn settle(&mut self, cx: &mut Context<'_>, message: &Message, settled: Settled) {
        self.in_flight = self.in_flight.saturating_sub(1);
        settle(cx.broker, &self.bound.entry, &self.queue, message, settled);
    }

    /// Lets go of the link: what the peer did not settle goes back to the queue (counted as a
    /// failed delivery), and the link leaves its address. `closed`: the peer closed the link
    /// (rather than detaching it, or going away), which ends a durable subscription.
    pub(super) fn release(
        &mut self,
        cx: &mut Context<'_>,
        unsettled: &mut BTreeMap<u32, Unsettled>,
        closed: bool,
    ) {
        self.end.gone.cancel();
        cx.scope.receivers.fetch_sub(1, Ordering::Relaxed);
        let mine: Vec<u32> = unsettled
            .iter()
            .filter(|(_, u)| u.key == self.end.key)
            .map(|(id, _)| *id)
            .collect();
        for id in mine {
            if let Some(unsettled) = unsettled.remove(&id) {
                let failed = (Settlement::Modified, None);
                settle(
                    cx.broker,
                    &self.bound.entry,
                    &self.queue,
                    &unsettled.message,
                    failed,
                );
            }
        }
        if let Some(message) = self.ready.take() {
            self.queue.give_back(message.id);
        }
        match (self.browsing, &self.selector) {
            (None, None) => self.queue.consumer_left(),
            _ => self.queue.watcher_left(),
        }
        let remaining = self
            .bound
            .entry
            .receivers
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1);
        if let Some(subscriber) = &self.subscriber {
            subscriber.left(closed, remaining);
        }
        if let Some((fanout, id)) = self.membership.take() {
            fanout.leave(id, false);
        } else if matches!(self.bound.entry.engine, AddressEngine::Anycast(_)) && remaining == 0 {
            // Anycast never stores: with nobody left to receive, senders get their messages back.
            for message in self.queue.drain() {
                if let Some(reply) = &message.reply {
                    reply.settle(Settlement::Released);
                }
            }
        }
    }
}

/// Writes as many frames of a delivery as the peer's window and the output allow, from `offset`;
/// returns how far it got.
fn write_frames(
    cx: &mut Context<'_>,
    w: &mut Window<'_>,
    handle: u32,
    sending: &Sending,
    mut offset: usize,
) -> usize {
    let room = cx.max_frame.saturating_sub(TRANSFER_OVERHEAD).max(1);
    let tag = sending.delivery_id.to_be_bytes();
    let bytes = &sending.bytes;
    loop {
        if *w.remote_window == 0 {
            return offset;
        }
        let end = bytes.len().min(offset + room);
        let more = end < bytes.len();
        let first = (offset == 0).then_some((sending.delivery_id, &tag[..]));
        frame::write(
            cx.output,
            frame::AMQP_FRAME,
            w.channel,
            |e| e.transfer(handle, first, sending.settled, more),
            &bytes[offset..end],
        );
        *w.remote_window -= 1;
        *w.next_outgoing_id = w.next_outgoing_id.wrapping_add(1);
        offset = end;
        if !more || cx.output.len() >= super::OUTPUT_HIGH_WATER {
            return offset;
        }
    }
}

/// Applies a consumer's outcome to the message's queue (and, for anycast, to its sender). A
/// failed delivery of a durable message journals its raised delivery count; a message the queue
/// gives up (rejected, or past its delivery attempts) goes to the dead-letter address.
pub(super) fn settle(
    broker: &Arc<Broker>,
    entry: &Entry,
    queue: &Queue,
    message: &Message,
    (settlement, reason): Settled,
) {
    let after = queue.settle(message.id, settlement);
    if matches!(settlement, Settlement::Accepted | Settlement::Rejected) {
        entry.messages_out.fetch_add(1, Ordering::Relaxed);
        if let Some(reply) = &message.reply {
            reply.settle_with(settlement, reason.clone());
        }
    }
    let journaled = message.durable && !entry.temporary && matches!(entry.engine, AddressEngine::Queue(_));
    match after {
        AfterSettle::Done => {
            if settlement == Settlement::Accepted && message.durable {
                broker.store().forget(&entry.address, message.id);
            }
        }
        AfterSettle::Redelivering(again) => {
            if journaled {
                // The journal's copy gets the count, so that a restart keeps it; the journal
                // skips it if the message has gone meanwhile.
                broker.store().recount(&entry.address, &again);
            }
        }
        AfterSettle::GivenUp(given_up) => {
            if message.reply.is_some() {
                // Anycast hands the outcome back to its sender instead.
                return;
            }
            let why = match settlement {
                Settlement::Rejected => Reason::Rejected(reason),
                _ => Reason::Exhausted(given_up.delivery_count),
            };
            deadletter::give_up(broker, entry, given_up, why);
        }
    }
}

/// Puts back a message a queue offered to a link that has gone meanwhile.
pub(super) fn give_back_unlinked(queue: &Queue, message: Message) {
    debug!(
        id = message.id,
        "a message offered to a link that has ended goes back"
    );
    queue.give_back(message.id);
}

/// The credit left of `credit` granted at the receiver's delivery count `seen`, once the broker
/// has sent `sent` deliveries. AMQP 1.0, 2.6.7: the credit counts from the receiver's delivery
/// count, which may lag the broker's by the transfers still on their way; counts are serial
/// numbers (RFC 1982), so a limit the broker has passed leaves none rather than wrapping to all.
fn credit_left(seen: u32, credit: u32, sent: u32) -> u32 {
    let left = seen.wrapping_add(credit).wrapping_sub(sent);
    match left > u32::MAX / 2 {
        true => 0,
        false => left.min(credit),
    }
}

#[cfg(test)]
mod credit_tests {
    use super::credit_left;

    #[test]
    fn credit_counts_from_the_receivers_delivery_count() {
        assert_eq!(credit_left(10, 5, 10), 5, "nothing in flight");
        assert_eq!(credit_left(10, 5, 12), 3, "two on their way count against it");
        assert_eq!(
            credit_left(u32::MAX - 1, 5, 2),
            1,
            "four on their way, across the wrap"
        );
    }

    #[test]
    fn a_limit_the_broker_has_passed_leaves_no_credit() {
        assert_eq!(credit_left(10, 5, 20), 0);
        assert_eq!(credit_left(u32::MAX, 1, 5), 0, "passed across the wrap");
    }

    #[test]
    fn a_receiver_ahead_of_the_broker_gets_no_more_than_it_granted() {
        assert_eq!(credit_left(20, 5, 10), 5);
    }
}
