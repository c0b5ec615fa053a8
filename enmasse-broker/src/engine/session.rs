//! The session state machine (AMQP 1.0, 2.5): its transfer windows, delivery ids and links.
//!
//! The broker's incoming window is enforced: a transfer beyond it ends the session with
//! `amqp:session:window-violation`. Its outgoing transfers stop when the peer's incoming window
//! is used up, mid-message if need be, and go on when the peer opens it again.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, atomic::Ordering},
};

use futures_util::{StreamExt, stream::FuturesUnordered};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{
    attach,
    connection::{Context, Ending, Event, LinkKey, Waiting},
    inbound::Inbound,
    outbound::Outbound,
};
use crate::{
    address::{queue::Settlement, table::Entry},
    amqp::{
        frame,
        performative::{
            Attach, Begin, DeliveryState, Detach, Disposition, ErrorInfo, Flow, Performative, Role, Transfer,
            condition,
        },
    },
    broker::Grant,
    limits,
    message::{Message, Settled},
};

/// Transfers the broker takes before it re-advertises its window.
const INCOMING_WINDOW: u32 = 4096;

/// The highest link handle a peer may use.
const HANDLE_MAX: u32 = 1023;

/// The outcome of a delivery from the peer, once a consumer or the journal decided it.
pub(super) struct Outcome {
    pub(super) key: LinkKey,
    pub(super) delivery_id: u32,
    /// Whether the peer waits to be told (it did not settle the delivery itself).
    pub(super) tell: bool,
    pub(super) settled: Settled,
}

/// What every link has, whichever way its messages flow.
pub(super) struct Endpoint {
    /// The link's name.
    pub(super) name: String,
    /// The broker's handle.
    pub(super) local: u32,
    /// The link's identity in events.
    pub(super) key: LinkKey,
    /// Deliveries sent on it.
    pub(super) delivery_count: u32,
    /// Credit the receiving side has given and the sending side has not used.
    pub(super) credit: u32,
    /// Cancelled when the link ends: what it waits for stops waiting.
    pub(super) gone: CancellationToken,
}

impl Endpoint {
    /// A link's end. Bound to an address, it is watched from outside: the address removed or its
    /// user's right revoked ends it with an [`Event::Ended`].
    pub(super) fn new(
        cx: &mut Context<'_>,
        name: &str,
        local: u32,
        key: LinkKey,
        delivery_count: u32,
        bound: Option<&Bound>,
    ) -> Self {
        let gone = CancellationToken::new();
        if let Some(bound) = bound {
            let (watched, revoked, stop) = (bound.entry.clone(), bound.grant.revoked().clone(), gone.clone());
            cx.waits.push(Box::pin(async move {
                tokio::select! {
                    biased;
                    () = stop.cancelled() => Event::Ended(key, Ending::Gone),
                    () = watched.removed.cancelled() => Event::Ended(key, Ending::Removed),
                    () = revoked.cancelled() => Event::Ended(key, Ending::Revoked),
                }
            }));
        }
        Self {
            name: name.to_owned(),
            local,
            key,
            delivery_count,
            credit: 0,
            gone,
        }
    }
}

/// The address a link is attached to, and the right it was attached with.
pub(super) struct Bound {
    /// The address.
    pub(super) entry: Arc<Entry>,
    /// The right the link was attached with.
    pub(super) grant: Grant,
    /// For a link that created its address (a dynamic node): the address, removed when the link
    /// ends.
    pub(super) temporary: Option<attach::Temporary>,
}

/// A link of the session.
pub(super) enum Link {
    /// The peer sends; the broker receives into an address.
    In(Box<Inbound>),
    /// The broker sends from an address; the peer receives.
    Out(Box<Outbound>),
}

impl Link {
    fn end(&self) -> &Endpoint {
        match self {
            Self::In(inbound) => &inbound.end,
            Self::Out(outbound) => &outbound.end,
        }
    }

    /// The error the link is detached with when its address is removed or its user loses the
    /// right it was attached with.
    fn ended_error(&self, ending: Ending) -> Option<ErrorInfo> {
        let bound = match self {
            Self::In(inbound) => inbound.bound()?,
            Self::Out(outbound) => &outbound.bound,
        };
        let address = &bound.entry.address;
        match ending {
            Ending::Gone => None,
            Ending::Removed => Some(ErrorInfo::new(
                condition::NOT_FOUND,
                format!("address {address:?} was removed from the address space"),
            )),
            Ending::Revoked => {
                let action = match self {
                    Self::In(_) => "send to",
                    Self::Out(_) => "receive from",
                };
                Some(ErrorInfo::new(
                    condition::UNAUTHORIZED_ACCESS,
                    format!(
                        "user {:?} may no longer {action} address {address:?}",
                        bound.grant.username()
                    ),
                ))
            }
        }
    }
}

/// A delivery the broker sent and the peer has not settled.
pub(super) struct Unsettled {
    /// The link it went out on.
    pub(super) key: LinkKey,
    pub(super) message: Message,
}

/// One session.
pub(super) struct Session {
    local: u16,
    remote: u16,
    /// Unique within the connection: a session begun later on the same channel is another.
    serial: u64,
    /// The broker sent its end and waits for the peer's.
    ending: bool,
    next_incoming_id: u32,
    /// Transfers the peer may still send before the broker re-advertises.
    incoming_left: u32,
    next_outgoing_id: u32,
    /// Transfers the broker may still send.
    pub(super) remote_window: u32,
    /// The highest handle the broker may use.
    remote_handle_max: u32,
    /// Links by the peer's handle.
    links: HashMap<u32, Link>,
    /// The broker's handles in use.
    locals: BTreeSet<u32>,
    /// Peer handles the broker detached, whose detach the peer has not answered yet.
    detaching: Vec<u32>,
    /// The id of the broker's next delivery.
    pub(super) next_delivery_id: u32,
    /// The broker's deliveries the peer has not settled, by delivery id.
    pub(super) unsettled: BTreeMap<u32, Unsettled>,
    /// Deliveries from the peer accepted and not yet told: a range of ids, told in one disposition.
    accepted: Option<(u32, u32)>,
}

impl Session {
    /// Answers the peer's begin on `remote`, with the broker's channel `local`.
    pub(super) fn begin(local: u16, remote: u16, serial: u64, begin: &Begin, output: &mut Vec<u8>) -> Self {
        frame::write_amqp(output, local, |e| e.begin(remote, 0, INCOMING_WINDOW, HANDLE_MAX));
        Self {
            local,
            remote,
            serial,
            ending: false,
            next_incoming_id: begin.next_outgoing_id,
            incoming_left: INCOMING_WINDOW,
            next_outgoing_id: 0,
            remote_window: begin.incoming_window,
            remote_handle_max: begin.handle_max,
            links: HashMap::new(),
            locals: BTreeSet::new(),
            detaching: Vec::new(),
            next_delivery_id: 0,
            unsettled: BTreeMap::new(),
            accepted: None,
        }
    }

    /// The session's serial number within its connection.
    pub(super) fn serial(&self) -> u64 {
        self.serial
    }

    /// The broker's channel for the session.
    pub(super) fn local_channel(&self) -> u16 {
        self.local
    }

    /// Handles a frame on the session's channel. `Ok(false)` once the session has ended both
    /// ways; an error closes the connection.
    pub(super) fn frame(
        &mut self,
        cx: &mut Context<'_>,
        performative: Performative<'_>,
        payload: &[u8],
    ) -> Result<bool, ErrorInfo> {
        if self.ending {
            // Until the peer answers the broker's end, only its end counts.
            return Ok(!matches!(performative, Performative::End(_)));
        }
        let result = match performative {
            Performative::Attach(attach) => self.attach(cx, *attach),
            Performative::Flow(flow) => self.flow(cx, &flow),
            Performative::Transfer(transfer) => self.transfer(cx, &transfer, payload),
            Performative::Disposition(disposition) => {
                self.disposition(cx, &disposition);
                Ok(())
            }
            Performative::Detach(detach) => self.detach(cx, &detach),
            Performative::End(error) => {
                if let Some(error) = error {
                    debug!(%error, "the peer ended a session");
                }
                self.release(cx);
                frame::write_amqp(cx.output, self.local, |e| e.end(None));
                return Ok(false);
            }
            Performative::Open(_) | Performative::Begin(_) | Performative::Close(_) => unreachable_here(),
        };
        if let Err(error) = result {
            self.end(cx, error);
        }
        self.tell_accepted(cx);
        Ok(true)
    }

    /// Ends the session with `error`; it is kept until the peer's end arrives.
    pub(super) fn end(&mut self, cx: &mut Context<'_>, error: ErrorInfo) {
        debug!(%error, "ending a session");
        self.release(cx);
        frame::write_amqp(cx.output, self.local, |e| e.end(Some(&error)));
        self.ending = true;
    }

    /// Lets go of every link: credit, unsettled messages, memberships.
    pub(super) fn release(&mut self, cx: &mut Context<'_>) {
        self.tell_accepted(cx);
        self.locals.clear();
        for (_, link) in self.links.drain() {
            match link {
                Link::In(mut inbound) => inbound.release(cx),
                Link::Out(mut outbound) => outbound.release(cx, &mut self.unsettled, false),
            }
        }
    }

    fn key(&self, handle: u32, serial: u64) -> LinkKey {
        LinkKey {
            channel: self.remote,
            session: self.serial,
            handle,
            serial,
        }
    }

    fn attach(&mut self, cx: &mut Context<'_>, attach: Attach) -> Result<(), ErrorInfo> {
        if attach.handle > HANDLE_MAX {
            return Err(ErrorInfo::new(
                condition::NOT_ALLOWED,
                format!("handle {} is above the handle-max of {HANDLE_MAX}", attach.handle),
            ));
        }
        if self.links.contains_key(&attach.handle) || self.detaching.contains(&attach.handle) {
            return Err(ErrorInfo::new(
                condition::HANDLE_IN_USE,
                format!("handle {} is in use", attach.handle),
            ));
        }
        // The lowest handle not in use: the first gap in the ordered set.
        let local = self
            .locals
            .iter()
            .zip(0u32..)
            .find(|(used, candidate)| **used != *candidate)
            .map_or(self.locals.len() as u32, |(_, candidate)| candidate);
        if local > self.remote_handle_max.min(HANDLE_MAX) {
            return Err(ErrorInfo::new(
                condition::RESOURCE_LIMIT_EXCEEDED,
                "no link handle is free",
            ));
        }
        // A link's name is unique per direction (AMQP 1.0, 2.6.1): a sender and a receiver may
        // share one.
        let taken = self.links.values().any(|link| {
            let same_direction = matches!(
                (link, attach.role),
                (Link::In(_), Role::Sender) | (Link::Out(_), Role::Receiver)
            );
            same_direction && link.end().name == attach.name
        });
        *cx.serial += 1;
        let key = self.key(attach.handle, *cx.serial);
        let policy = cx.broker.connection_policy();
        let within = match attach.role {
            Role::Sender => limits::within(
                policy.and_then(|p| p.max_senders_per_connection),
                cx.scope.senders.load(Ordering::Relaxed),
                "senders",
            ),
            Role::Receiver => limits::within(
                policy.and_then(|p| p.max_receivers_per_connection),
                cx.scope.receivers.load(Ordering::Relaxed),
                "receivers",
            ),
        };
        let decision = if taken {
            Err(ErrorInfo::new(
                condition::NOT_ALLOWED,
                format!(
                    "a link named {:?} is already attached in this direction",
                    attach.name
                ),
            ))
        } else {
            within.and_then(|()| attach::decide(cx, &attach))
        };
        match decision {
            Ok(attach::Decision::Inbound(target)) => {
                self.locals.insert(local);
                cx.scope.senders.fetch_add(1, Ordering::Relaxed);
                let link = Inbound::attach(cx, self.local, local, key, &attach, target);
                self.links.insert(attach.handle, Link::In(Box::new(link)));
                self.flow_link(cx, attach.handle, false);
            }
            Ok(attach::Decision::Outbound(receiving)) => {
                self.locals.insert(local);
                cx.scope.receivers.fetch_add(1, Ordering::Relaxed);
                let link = Outbound::attach(cx, self.local, local, key, &attach, receiving);
                self.links.insert(attach.handle, Link::Out(Box::new(link)));
            }
            Err(error) => {
                cx.broker
                    .counters()
                    .attaches_refused
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(user = %cx.identity.username, link = %attach.name, %error, "attach refused");
                attach::refuse(cx, self.local, local, &attach, &error);
                self.detaching.push(attach.handle);
            }
        }
        Ok(())
    }

    /// The session's own flow fields: its windows and transfer ids.
    fn flow_fields(&self) -> Flow {
        Flow {
            next_incoming_id: Some(self.next_incoming_id),
            incoming_window: self.incoming_left,
            next_outgoing_id: self.next_outgoing_id,
            outgoing_window: u32::MAX,
            ..Flow::default()
        }
    }

    /// Sends a link's flow: its credit and delivery count (and `drain`, to complete a drain).
    pub(super) fn flow_link(&mut self, cx: &mut Context<'_>, handle: u32, drain: bool) {
        let Some(link) = self.links.get(&handle) else {
            return;
        };
        let end = link.end();
        let mut flow = Flow {
            handle: Some(end.local),
            delivery_count: Some(end.delivery_count),
            link_credit: Some(end.credit),
            ..self.flow_fields()
        };
        if let Link::Out(outbound) = link {
            flow.available = Some(outbound.available());
            flow.drain = drain;
        }
        frame::write_amqp(cx.output, self.local, |e| e.flow(&flow));
    }

    fn flow(&mut self, cx: &mut Context<'_>, flow: &Flow) -> Result<(), ErrorInfo> {
        // The peer's window, counted from the id of the broker's next transfer.
        let next_incoming = flow.next_incoming_id.unwrap_or(0);
        self.remote_window = next_incoming
            .wrapping_add(flow.incoming_window)
            .wrapping_sub(self.next_outgoing_id)
            .min(flow.incoming_window);
        let Some(handle) = flow.handle else {
            if flow.echo {
                let fields = self.flow_fields();
                frame::write_amqp(cx.output, self.local, |e| e.flow(&fields));
            }
            return Ok(());
        };
        let echo = match self.links.get_mut(&handle) {
            Some(Link::Out(outbound)) => {
                outbound.flow(flow);
                flow.echo
            }
            Some(Link::In(_)) => flow.echo,
            None if self.detaching.contains(&handle) => false,
            None => return Err(unattached(handle)),
        };
        self.pump_link(cx, handle);
        if echo {
            self.flow_link(cx, handle, false);
        }
        Ok(())
    }

    fn transfer(
        &mut self,
        cx: &mut Context<'_>,
        transfer: &Transfer<'_>,
        payload: &[u8],
    ) -> Result<(), ErrorInfo> {
        if self.incoming_left == 0 {
            return Err(ErrorInfo::new(
                condition::WINDOW_VIOLATION,
                format!("a transfer beyond the session's incoming window of {INCOMING_WINDOW}"),
            ));
        }
        self.incoming_left -= 1;
        self.next_incoming_id = self.next_incoming_id.wrapping_add(1);
        let handle = transfer.handle;
        let result = match self.links.get_mut(&handle) {
            Some(Link::In(inbound)) => inbound.transfer(cx, transfer, payload),
            Some(Link::Out(_)) => Err(ErrorInfo::new(
                condition::NOT_ALLOWED,
                "a transfer on a link on which the broker is the sender",
            )),
            // The peer had not yet seen the broker's detach: the transfer still counts against
            // the window, which is re-advertised below.
            None if self.detaching.contains(&handle) => Ok(None),
            None => return Err(unattached(handle)),
        };
        match result {
            Ok(Some((delivery_id, DeliveryState::Accepted))) => self.accept(cx, delivery_id),
            Ok(Some((delivery_id, state))) => self.tell(cx, delivery_id, state),
            Ok(None) => {}
            Err(error) => self.detach_with(cx, handle, error),
        }
        if self.incoming_left < INCOMING_WINDOW / 2 {
            self.incoming_left = INCOMING_WINDOW;
            let fields = self.flow_fields();
            frame::write_amqp(cx.output, self.local, |e| e.flow(&fields));
        }
        if let Some(Link::In(inbound)) = self.links.get_mut(&handle)
            && inbound.top_up(cx)
        {
            self.flow_link(cx, handle, false);
        }
        Ok(())
    }

    /// Accepts a delivery from the peer: contiguous ids are told in one disposition.
    fn accept(&mut self, cx: &mut Context<'_>, delivery_id: u32) {
        match &mut self.accepted {
            Some((_, last)) if last.wrapping_add(1) == delivery_id => *last = delivery_id,
            _ => {
                self.tell_accepted(cx);
                self.accepted = Some((delivery_id, delivery_id));
            }
        }
    }

    fn tell_accepted(&mut self, cx: &mut Context<'_>) {
        if let Some((first, last)) = self.accepted.take() {
            let disposition = Disposition {
                role: Role::Receiver,
                first,
                last: (last != first).then_some(last),
                settled: true,
                state: Some(DeliveryState::Accepted),
            };
            frame::write_amqp(cx.output, self.local, |e| e.disposition(&disposition));
        }
    }

    /// Settles a delivery from the peer with `state`.
    fn tell(&mut self, cx: &mut Context<'_>, delivery_id: u32, state: DeliveryState) {
        self.tell_accepted(cx);
        let disposition = Disposition {
            role: Role::Receiver,
            first: delivery_id,
            last: None,
            settled: true,
            state: Some(state),
        };
        frame::write_amqp(cx.output, self.local, |e| e.disposition(&disposition));
    }

    fn detach(&mut self, cx: &mut Context<'_>, detach: &Detach) -> Result<(), ErrorInfo> {
        if let Some(at) = self.detaching.iter().position(|h| *h == detach.handle) {
            // The answer to the broker's own detach.
            self.detaching.swap_remove(at);
            return Ok(());
        }
        let Some(local) = self.remove_link(cx, detach.handle, detach.closed) else {
            return Err(unattached(detach.handle));
        };
        if let Some(error) = &detach.error {
            debug!(%error, "the peer detached a link");
        }
        frame::write_amqp(cx.output, self.local, |e| e.detach(local, detach.closed, None));
        Ok(())
    }

    /// Removes the link the peer calls `handle` and lets go of what it holds; returns the
    /// broker's handle for it.
    fn remove_link(&mut self, cx: &mut Context<'_>, handle: u32, closed: bool) -> Option<u32> {
        let local = match self.links.remove(&handle)? {
            Link::In(mut inbound) => {
                inbound.release(cx);
                inbound.end.local
            }
            Link::Out(mut outbound) => {
                outbound.release(cx, &mut self.unsettled, closed);
                outbound.end.local
            }
        };
        self.locals.remove(&local);
        Some(local)
    }

    /// Detaches a link with `error`; the peer's answer is awaited.
    fn detach_with(&mut self, cx: &mut Context<'_>, handle: u32, error: ErrorInfo) {
        // Detached by the broker: a subscription the link held is kept.
        let Some(local) = self.remove_link(cx, handle, false) else {
            return;
        };
        debug!(%error, "detaching a link");
        frame::write_amqp(cx.output, self.local, |e| e.detach(local, true, Some(&error)));
        self.detaching.push(handle);
    }

    /// Offers waiting messages on every receiving link with credit.
    pub(super) fn pump(&mut self, cx: &mut Context<'_>) {
        if self.ending {
            return;
        }
        let handles: Vec<u32> = self
            .links
            .iter()
            .filter(|(_, link)| matches!(link, Link::Out(outbound) if outbound.wants_pump()))
            .map(|(handle, _)| *handle)
            .collect();
        for handle in handles {
            self.pump_link(cx, handle);
        }
    }

    fn pump_link(&mut self, cx: &mut Context<'_>, handle: u32) {
        let Some(Link::Out(outbound)) = self.links.get_mut(&handle) else {
            return;
        };
        let mut window = super::outbound::Window {
            channel: self.local,
            remote_window: &mut self.remote_window,
            next_outgoing_id: &mut self.next_outgoing_id,
            next_delivery_id: &mut self.next_delivery_id,
            unsettled: &mut self.unsettled,
        };
        match outbound.pump(cx, &mut window) {
            Ok(super::outbound::Pumped::Sent) => {}
            Ok(super::outbound::Pumped::Drained) => self.flow_link(cx, handle, true),
            Err(error) => self.detach_with(cx, handle, error),
        }
    }

    /// Handles what one of the session's links waited for.
    pub(super) fn on_event(&mut self, cx: &mut Context<'_>, event: Event) {
        match event {
            Event::Popped(key, queue, message) => match self.links.get_mut(&key.handle) {
                Some(Link::Out(outbound)) if outbound.end.key == key => {
                    outbound.popped(message);
                    self.pump_link(cx, key.handle);
                }
                _ => {
                    if let Some(message) = message {
                        super::outbound::give_back_unlinked(&queue, message);
                    }
                }
            },
            Event::Room(key) => {
                if let Some(Link::In(inbound)) = self.links.get_mut(&key.handle)
                    && inbound.end.key == key
                    && inbound.room(cx)
                {
                    self.flow_link(cx, key.handle, false);
                }
            }
            Event::Ended(key, ending) => {
                let error = match self.links.get(&key.handle) {
                    Some(link) if link.end().key == key => link.ended_error(ending),
                    _ => None,
                };
                let Some(error) = error else {
                    return;
                };
                self.detach_with(cx, key.handle, error);
            }
        }
    }

    /// Tells the peer the outcome of a delivery that waited for a consumer or the journal.
    pub(super) fn on_outcome(&mut self, cx: &mut Context<'_>, outcome: Outcome) {
        if self.ending || !outcome.tell {
            return;
        }
        let (settlement, reason) = outcome.settled;
        let state = match settlement {
            Settlement::Accepted => DeliveryState::Accepted,
            Settlement::Rejected => DeliveryState::Rejected(reason),
            Settlement::Released => DeliveryState::Released,
            Settlement::Modified => DeliveryState::Modified {
                delivery_failed: true,
                undeliverable_here: false,
            },
        };
        self.tell(cx, outcome.delivery_id, state);
    }
}

fn unattached(handle: u32) -> ErrorInfo {
    ErrorInfo::new(
        condition::UNATTACHED_HANDLE,
        format!("handle {handle} is not attached"),
    )
}

/// Connection-level performatives never reach a session: the connection handles them.
fn unreachable_here() -> Result<(), ErrorInfo> {
    Err(ErrorInfo::new(
        condition::INTERNAL_ERROR,
        "a connection frame reached a session",
    ))
}

mod settle;

/// Drives outcomes left by a connection that went away: a durable message being written is
/// queued once it is safe, whether or not its sender is still there to hear of it.
pub(super) async fn finish_outcomes(mut outcomes: FuturesUnordered<Waiting<Outcome>>) {
    while outcomes.next().await.is_some() {}
}
