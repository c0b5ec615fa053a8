//! A link on which the peer sends: messages flow into an address.
//!
//! The link gets credit only for room the address has reserved, so a full address stops its
//! senders instead of buffering. A message of several frames is gathered up to the address's
//! `max-message-size` (announced in the attach) and refused with `amqp:link:message-size-exceeded`
//! at the first frame that crosses it; what follows of it is dropped unread. A delivery is accepted
//! once the address holds it (a durable one once the journal has it); an anycast delivery is
//! settled only when a consumer settles it, with the consumer's outcome.
//!
//! A link without a target address is the anonymous relay: each message goes to the address its
//! `to` names, if the user may send there and the address has room, and is rejected, naming why,
//! otherwise.

use std::sync::{Arc, atomic::Ordering};

use enmasse_types::{broker_config::DEFAULT_MAX_MESSAGE_SIZE, resources::address::MessageTtl};

use super::{
    attach::{self, Target},
    connection::{Context, Ending, Event, GATHERING_BUDGET, LinkKey, Waiting},
    session::{Bound, Endpoint, Outcome},
    transaction::{self, Control},
};
use crate::{
    address::{
        fanout::Held,
        policy,
        queue::{PushError, Settlement},
        table::{Engine as AddressEngine, Entry, ResolveError},
    },
    amqp::{
        frame,
        performative::{Attach, AttachReply, DeliveryState, ErrorInfo, Role, Terminus, Transfer, condition},
    },
    message::{Message, SettleBack, Settled},
    store::{Persisted, Persisting},
};

/// A delivery of several frames, gathered.
struct Partial {
    delivery_id: u32,
    settled: bool,
    format: u32,
    /// The transaction it is sent in, if any.
    txn: Option<Vec<u8>>,
    bytes: Vec<u8>,
    /// Refused for its size: what follows is dropped.
    refused: bool,
}

/// A link on which the peer sends.
pub(super) struct Inbound {
    /// Its name, handle and credit; the delivery count is the peer's deliveries, the credit what the
    /// address holds room for.
    pub(super) end: Endpoint,
    route: Route,
    window: u32,
    max_message_size: u64,
    partial: Option<Partial>,
    waiting_room: bool,
}

/// Where a link's messages go.
enum Route {
    /// Into the link's address.
    Address {
        /// The address messages are routed by (on a topic, the full name sent to).
        routing: Arc<str>,
        bound: Bound,
    },
    /// Each to its own `to`.
    Relay,
    /// Transaction control (declare, discharge) to the coordinator.
    Coordinator,
}

impl Inbound {
    /// Accepts the peer's attach: answers it, announcing the largest message the address takes,
    /// and reserves the first credit.
    pub(super) fn attach(
        cx: &mut Context<'_>,
        channel: u16,
        local: u32,
        key: LinkKey,
        attach: &Attach,
        target: Target,
    ) -> Self {
        let mut reply_target = Terminus::named_like(attach.target.as_ref());
        let (route, max_message_size) = match target {
            Target::Address(target, bound) => {
                let entry = &bound.entry;
                entry.senders.fetch_add(1, Ordering::Relaxed);
                if bound.temporary.is_some() {
                    reply_target.address = Some(entry.address.clone());
                    reply_target.dynamic = true;
                }
                let max = entry.config().limits.max_message_size;
                let routing = target.routing;
                (Route::Address { routing, bound }, max)
            }
            // Each message is also held to its own address's limit as it arrives.
            Target::Relay => (Route::Relay, DEFAULT_MAX_MESSAGE_SIZE),
            Target::Coordinator => {
                reply_target = Terminus {
                    coordinator: true,
                    capabilities: vec![transaction::LOCAL.to_owned()],
                    ..Terminus::default()
                };
                (Route::Coordinator, transaction::MAX_CONTROL_SIZE)
            }
        };
        let source = Terminus::named_like(attach.source.as_ref());
        frame::write_amqp(cx.output, channel, |e| {
            e.attach(&AttachReply {
                name: &attach.name,
                handle: local,
                role: Role::Receiver,
                snd_settle_mode: attach.snd_settle_mode,
                source: Some(&source),
                target: Some(&reply_target),
                initial_delivery_count: None,
                max_message_size: Some(max_message_size),
            });
        });
        let delivery_count = attach.initial_delivery_count.unwrap_or(0);
        let bound = match &route {
            Route::Address { bound, .. } => Some(bound),
            Route::Relay | Route::Coordinator => None,
        };
        let mut link = Self {
            end: Endpoint::new(cx, &attach.name, local, key, delivery_count, bound),
            route,
            window: cx.broker.settings().credit_window.max(1),
            max_message_size,
            partial: None,
            waiting_room: false,
        };
        link.top_up(cx);
        link
    }

    /// The address the link is attached to; none for the anonymous relay.
    pub(super) fn bound(&self) -> Option<&Bound> {
        match &self.route {
            Route::Address { bound, .. } => Some(bound),
            Route::Relay | Route::Coordinator => None,
        }
    }

    /// Takes one transfer frame. Returns the delivery's state to tell the peer, if it is decided
    /// now; an error detaches the link.
    pub(super) fn transfer(
        &mut self,
        cx: &mut Context<'_>,
        transfer: &Transfer<'_>,
        payload: &[u8],
    ) -> Result<Option<(u32, DeliveryState)>, ErrorInfo> {
        if self.partial.is_none() {
            let delivery_id = transfer.delivery_id.ok_or_else(|| {
                ErrorInfo::new(
                    condition::INVALID_FIELD,
                    "the first transfer of a delivery has no delivery-id",
                )
            })?;
            if self.end.credit == 0 {
                return Err(ErrorInfo::new(
                    "amqp:link:transfer-limit-exceeded",
                    "a transfer beyond the credit the broker gave",
                ));
            }
            self.end.credit -= 1;
            self.end.delivery_count = self.end.delivery_count.wrapping_add(1);
            let settled = transfer.settled.unwrap_or(false);
            let format = transfer.message_format.unwrap_or(0);
            let txn = match &transfer.state {
                Some(DeliveryState::Transactional { txn_id, .. }) => Some(txn_id.clone()),
                _ => None,
            };
            if !transfer.more && !transfer.aborted && payload.len() as u64 <= self.max_message_size {
                // One frame, one message: the common case, copied once.
                let state = self.store(cx, delivery_id, settled, format, txn, Arc::from(payload));
                return Ok(state.filter(|_| !settled).map(|state| (delivery_id, state)));
            }
            self.partial = Some(Partial {
                delivery_id,
                settled,
                format,
                txn,
                bytes: Vec::new(),
                refused: false,
            });
        }
        let Some(partial) = self.partial.as_mut() else {
            return Ok(None);
        };
        if transfer.delivery_id.is_some_and(|id| id != partial.delivery_id) {
            return Err(ErrorInfo::new(
                condition::INVALID_FIELD,
                "a new delivery began before the last one ended",
            ));
        }
        partial.settled |= transfer.settled.unwrap_or(false);
        if transfer.aborted {
            // Given up by the peer: nothing to settle, and its credit is spent.
            let refused = partial.refused;
            *cx.gathering = cx.gathering.saturating_sub(partial.bytes.len());
            self.partial = None;
            if !refused {
                self.unreserve(1);
            }
            return Ok(None);
        }
        let crossed =
            !partial.refused && (partial.bytes.len() + payload.len()) as u64 > self.max_message_size;
        if crossed {
            partial.refused = true;
            *cx.gathering = cx.gathering.saturating_sub(partial.bytes.len());
            partial.bytes = Vec::new();
        } else if !partial.refused {
            if *cx.gathering + payload.len() > GATHERING_BUDGET {
                return Err(ErrorInfo::new(
                    condition::RESOURCE_LIMIT_EXCEEDED,
                    format!(
                        "the connection is gathering more than {GATHERING_BUDGET} bytes of incomplete messages"
                    ),
                ));
            }
            *cx.gathering += payload.len();
            partial.bytes.extend_from_slice(payload);
        }
        let (delivery_id, settled) = (partial.delivery_id, partial.settled);
        let mut told = None;
        if crossed {
            self.unreserve(1);
            let description = match self.bound() {
                Some(bound) => format!(
                    "message exceeds the limit of {} bytes of address {:?}",
                    self.max_message_size, bound.entry.address
                ),
                None => format!(
                    "message exceeds the anonymous relay's limit of {} bytes",
                    self.max_message_size
                ),
            };
            let error = ErrorInfo::new(condition::MESSAGE_SIZE_EXCEEDED, description);
            if !settled {
                told = Some((delivery_id, DeliveryState::Rejected(Some(error))));
            }
        }
        if transfer.more {
            return Ok(told);
        }
        let Some(partial) = self.partial.take() else {
            return Ok(told);
        };
        if partial.refused {
            return Ok(told);
        }
        *cx.gathering = cx.gathering.saturating_sub(partial.bytes.len());
        let state = self.store(
            cx,
            partial.delivery_id,
            partial.settled,
            partial.format,
            partial.txn,
            Arc::from(partial.bytes),
        );
        Ok(state
            .filter(|_| !partial.settled)
            .map(|state| (partial.delivery_id, state)))
    }

    /// Hands one whole message to the address's engine. Returns its state if decided now;
    /// otherwise its outcome comes as an [`Outcome`].
    fn store(
        &mut self,
        cx: &mut Context<'_>,
        delivery_id: u32,
        settled: bool,
        format: u32,
        txn: Option<Vec<u8>>,
        bytes: Arc<[u8]>,
    ) -> Option<DeliveryState> {
        if format != 0 {
            self.unreserve(1);
            return Some(DeliveryState::Rejected(Some(ErrorInfo::new(
                condition::NOT_IMPLEMENTED,
                format!("message format {format} is not supported; only standard AMQP messages (0) are"),
            ))));
        }
        let routing = match &self.route {
            Route::Address { routing, .. } => routing.clone(),
            Route::Relay | Route::Coordinator => Arc::from(""),
        };
        let mut message = match Message::decode(cx.broker.next_message_id(), bytes, routing) {
            Ok(message) => message,
            Err(err) => {
                self.unreserve(1);
                return Some(DeliveryState::Rejected(Some(ErrorInfo::new(
                    condition::DECODE_ERROR,
                    format!("failed to decode the message: {err}"),
                ))));
            }
        };
        let entry = match &self.route {
            Route::Address { bound, .. } => bound.entry.clone(),
            Route::Coordinator => {
                return match transaction::control(cx, &message) {
                    Control::Now(state) => Some(state),
                    Control::Later(future) => self.decided(cx, delivery_id, settled, Decided::Later(future)),
                };
            }
            Route::Relay => match relay_to(cx, &message) {
                Ok((entry, routing)) => {
                    message.address = routing;
                    entry
                }
                Err(refused) => return Some(DeliveryState::Rejected(Some(refused))),
            },
        };
        let expires = expiry(&message, entry.ttl().as_ref());
        message.set_expires_at(expires);
        if let Some(txn_id) = txn {
            // Held for the transaction, with the room it reserved, until its discharge.
            return Some(match cx.transactions.post(&txn_id, entry.clone(), message) {
                Ok(()) => DeliveryState::Transactional {
                    txn_id,
                    outcome: Some(Box::new(DeliveryState::Accepted)),
                },
                Err(error) => {
                    unreserve(&entry, 1);
                    DeliveryState::Rejected(Some(error))
                }
            });
        }
        let result = match &entry.engine {
            AddressEngine::Queue(queue) if message.durable && !entry.temporary => {
                match queue.admit(message.size) {
                    Err(refused) => {
                        queue.unreserve(1);
                        Err(refused)
                    }
                    Ok(()) => {
                        let held = Held {
                            address: message.address.clone(),
                            journaled: true,
                            queue: queue.clone(),
                            message,
                        };
                        return self.decided(cx, delivery_id, settled, persist_then_queue(cx, vec![held]));
                    }
                }
            }
            AddressEngine::Queue(queue) => queue.push(message),
            AddressEngine::Fanout(fanout) => match fanout.publish(&message, || cx.broker.next_message_id()) {
                Ok(held) if held.is_empty() => Ok(()),
                Ok(held) => return self.decided(cx, delivery_id, settled, persist_then_queue(cx, held)),
                Err(err) => Err(err),
            },
            AddressEngine::Anycast(queue) => {
                let mut message = message;
                let (reply, settled_back) = SettleBack::channel();
                message.reply = Some(reply);
                match queue.push(message) {
                    Ok(()) => {
                        // A consumer that vanished without settling leaves the message released.
                        let later =
                            Box::pin(
                                async move { settled_back.await.unwrap_or((Settlement::Released, None)) },
                            );
                        return self.decided(cx, delivery_id, settled, Decided::Later(later));
                    }
                    Err(err) => Err(err),
                }
            }
        };
        match result {
            Ok(()) => Some(DeliveryState::Accepted),
            Err(PushError::TooLarge { size, limit }) => Some(DeliveryState::Rejected(Some(ErrorInfo::new(
                condition::MESSAGE_SIZE_EXCEEDED,
                format!(
                    "message of {size} bytes exceeds the limit of {limit} bytes of address {:?}",
                    entry.address
                ),
            )))),
            Err(PushError::Closed) => Some(DeliveryState::Released),
            Err(PushError::Full(limit)) => Some(DeliveryState::Rejected(Some(ErrorInfo::new(
                condition::RESOURCE_LIMIT_EXCEEDED,
                format!("address {:?} is full: {limit}", entry.address),
            )))),
        }
    }

    /// The state to tell the peer now, or none: an outcome decided later is told as an
    /// [`Outcome`] when it comes.
    fn decided(
        &self,
        cx: &mut Context<'_>,
        delivery_id: u32,
        settled: bool,
        decided: Decided,
    ) -> Option<DeliveryState> {
        match decided {
            Decided::Now(state) => Some(state),
            Decided::Later(future) => {
                let key = self.end.key;
                cx.outcomes.push(Box::pin(async move {
                    Outcome {
                        key,
                        delivery_id,
                        tell: !settled,
                        settled: future.await,
                    }
                }));
                None
            }
        }
    }

    /// Tops the peer's credit up to the window once half of it is used. Returns whether the
    /// credit changed (a flow is due).
    pub(super) fn top_up(&mut self, cx: &mut Context<'_>) -> bool {
        if self.end.credit >= self.window / 2 || self.waiting_room {
            return false;
        }
        let Route::Address { bound, .. } = &self.route else {
            // The relay reserves room message by message, at each one's own address; the
            // coordinator holds nothing.
            self.end.credit = self.window;
            return true;
        };
        let got = reserve(&bound.entry, self.window - self.end.credit);
        if got > 0 {
            self.end.credit += got;
            return true;
        }
        if self.end.credit == 0 {
            self.waiting_room = true;
            let entry = bound.entry.clone();
            let gone = self.end.gone.clone();
            let key = self.end.key;
            cx.waits.push(Box::pin(async move {
                tokio::select! {
                    biased;
                    () = gone.cancelled() => Event::Ended(key, Ending::Gone),
                    () = wait_for_room(&entry) => Event::Room(key),
                }
            }));
        }
        false
    }

    /// The address has room again: credit follows. Returns whether a flow is due.
    pub(super) fn room(&mut self, cx: &mut Context<'_>) -> bool {
        self.waiting_room = false;
        self.top_up(cx)
    }

    /// Gives back room reserved for messages that will not arrive, or were refused before the
    /// address took them.
    fn unreserve(&self, count: u32) {
        if let Some(bound) = self.bound() {
            unreserve(&bound.entry, count);
        }
    }

    /// Lets go of the link: the room its credit held goes back to the address.
    pub(super) fn release(&mut self, cx: &mut Context<'_>) {
        self.end.gone.cancel();
        cx.scope.senders.fetch_sub(1, Ordering::Relaxed);
        let held = self.end.credit + u32::from(self.partial.as_ref().is_some_and(|p| !p.refused));
        self.unreserve(held);
        self.end.credit = 0;
        if let Some(partial) = self.partial.take() {
            *cx.gathering = cx.gathering.saturating_sub(partial.bytes.len());
        }
        if let Some(bound) = self.bound() {
            bound.entry.senders.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// When a message arriving now expires, within the address's TTL bounds. Its properties are read
/// only when its header has no TTL.
fn expiry(message: &Message, bounds: Option<&MessageTtl>) -> Option<u64> {
    let absolute = match message.header.ttl {
        Some(_) => None,
        None => message
            .properties()
            .ok()
            .flatten()
            .and_then(|p| p.absolute_expiry_time),
    };
    policy::expiry(message.header.ttl, absolute, bounds, policy::now_millis())
}

/// Finds where the anonymous relay sends a message: the address its `to` names, if the user may
/// send there, with room reserved for it. The error names what stands in the way.
fn relay_to(cx: &Context<'_>, message: &Message) -> Result<(Arc<Entry>, Arc<str>), ErrorInfo> {
    let properties = message.properties().map_err(|err| {
        ErrorInfo::new(
            condition::DECODE_ERROR,
            format!("failed to decode the message's properties: {err}"),
        )
    })?;
    let to = properties.and_then(|p| p.to).ok_or_else(|| {
        ErrorInfo::new(
            condition::NOT_FOUND,
            "a message sent through the anonymous relay needs a `to` address",
        )
    })?;
    let user = &cx.identity.username;
    let shown = attach::shorten(to);
    if !attach::may_send(cx.broker, user, to) {
        return Err(ErrorInfo::new(
            condition::UNAUTHORIZED_ACCESS,
            format!("user {user:?} may not send to address {shown:?}"),
        ));
    }
    let target = cx.broker.table().resolve_target(to).map_err(|err| match err {
        // The name quoted short: a `to` may be megabytes long.
        ResolveError::NotFound(_) => ErrorInfo::new(
            condition::NOT_FOUND,
            format!("address {shown:?} is not served by this address space"),
        ),
        not_allowed => attach::resolve_error(not_allowed),
    })?;
    if reserve(&target.entry, 1) == 0 {
        return Err(ErrorInfo::new(
            condition::RESOURCE_LIMIT_EXCEEDED,
            format!("address {shown:?} has no room for the message now"),
        ));
    }
    Ok((target.entry, target.routing))
}

/// Makes durable copies safe in the store, and queues them only then: the delivery is accepted
/// once every copy is safe and queued. A copy for a queue that pages it now goes to its page as
/// its only copy instead, safe once the page is synced. If the store fails to keep one, the
/// others are not queued, the store forgets those it kept, and the delivery is released for the
/// sender to try again (a paged copy cannot be taken back: it may come twice).
fn persist_then_queue(cx: &Context<'_>, held: Vec<Held>) -> Decided {
    let store = cx.broker.store_handle();
    let mut persisting: Vec<Persisting> = Vec::new();
    let mut to_queue = Vec::with_capacity(held.len());
    for copy in held {
        if !copy.journaled {
            to_queue.push(copy);
            continue;
        }
        let Held {
            address,
            journaled,
            queue,
            message,
        } = copy;
        let message = match queue.page_durable(message) {
            Ok(paged) => {
                persisting.push(Box::pin(paged.safe()));
                continue;
            }
            Err(message) => message,
        };
        let copy = Held {
            address,
            journaled,
            queue,
            message,
        };
        if let Persisted::Later(future) = store.persist(&copy.address, &copy.message) {
            persisting.push(future);
        }
        to_queue.push(copy);
    }
    let finish = move |safe: bool| {
        let mut settlement = match safe {
            true => Settlement::Accepted,
            false => Settlement::Released,
        };
        for copy in to_queue {
            let (address, id, journaled) = (copy.address.clone(), copy.message.id, copy.journaled);
            if !safe {
                if journaled {
                    store.forget(&address, id);
                }
                copy.give_up();
                continue;
            }
            if copy.queue().is_err() && journaled {
                // The address went away meanwhile, and its messages with it.
                store.forget(&address, id);
                settlement = Settlement::Released;
            }
        }
        settlement
    };
    if persisting.is_empty() {
        return Decided::Now(match finish(true) {
            Settlement::Accepted => DeliveryState::Accepted,
            _ => DeliveryState::Released,
        });
    }
    Decided::Later(Box::pin(async move {
        let safe = futures_util::future::join_all(persisting)
            .await
            .iter()
            .all(Result::is_ok);
        (finish(safe), None)
    }))
}

/// A delivery's outcome: known now, or once a consumer or the journal decides it.
enum Decided {
    Now(DeliveryState),
    Later(Waiting<Settled>),
}

/// Reserves room for up to `want` messages of `entry`: the credit a sender may have.
fn reserve(entry: &Entry, want: u32) -> u32 {
    match &entry.engine {
        AddressEngine::Queue(queue) => queue.reserve(want),
        AddressEngine::Fanout(fanout) => fanout.reserve(want),
        AddressEngine::Anycast(queue) if entry.receivers.load(Ordering::Relaxed) > 0 => queue.reserve(want),
        AddressEngine::Anycast(_) => 0,
    }
}

/// Gives back room reserved at `entry` for messages that will not be queued.
pub(super) fn unreserve(entry: &Entry, count: u32) {
    if count == 0 {
        return;
    }
    match &entry.engine {
        AddressEngine::Queue(queue) | AddressEngine::Anycast(queue) => queue.unreserve(count),
        AddressEngine::Fanout(fanout) => fanout.unreserve(count),
    }
}

/// Waits until `entry` may grant credit again: room in a queue, or a receiver on anycast.
async fn wait_for_room(entry: &Entry) {
    match &entry.engine {
        AddressEngine::Queue(queue) => queue.wait_for_room().await,
        AddressEngine::Fanout(fanout) => fanout.wait_for_room().await,
        AddressEngine::Anycast(queue) => {
            let joined = entry.receiver_joined.notified();
            tokio::pin!(joined);
            joined.as_mut().enable();
            if entry.receivers.load(Ordering::Relaxed) == 0 {
                joined.await;
            } else {
                queue.wait_for_room().await;
            }
        }
    }
}
