//! A client's sender link: messages flow into an address.
//!
//! The link gets credit only for room the address has reserved, so a full address stops its
//! senders instead of buffering. A delivery is accepted once the address holds it; an anycast
//! delivery is settled only when a receiver settles it, with the receiver's outcome.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll, Waker},
};

use enmasse_types::resources::address::AddressType;
use fe2o3_amqp::{
    Receiver,
    link::{CreditMode, RecvError, delivery::DeliveryInfo},
    types::{
        definitions::{AmqpError, Error as AmqpErrorValue, LinkError},
        messaging::{Body, Modified, message::__private::Serializable},
        primitives::LazyValue,
    },
};
use futures_util::{StreamExt, stream::FuturesUnordered};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{CLOSE_TIMEOUT, Exit, Kept, removed_error, revoked_error};
use crate::{
    address::{
        fanout::Held,
        queue::{PushError, Settlement},
        table::{Engine, Entry, SendTarget},
    },
    broker::{Broker, Grant},
    message::{Content, Message, SettleBack, Settled},
    store::Persisted,
};

type PendingSettlement = Pin<Box<dyn Future<Output = (DeliveryInfo, Settled)> + Send>>;

/// Deliveries taken off the link at once, and settled with one disposition.
const MAX_BATCH: usize = 64;

/// Runs a client's sender link until the peer detaches, the address is removed or the broker stops.
pub async fn run(
    mut receiver: Receiver,
    target: SendTarget,
    grant: Grant,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
    kept: Kept,
) {
    let entry = target.entry.clone();
    entry.senders.fetch_add(1, Ordering::Relaxed);
    let window = broker.settings().credit_window;
    // The acceptor granted 200 credit before handing the link over: cover it with room.
    receiver.set_credit_mode(CreditMode::Manual);
    let mut credit = reserve(&entry, 200);
    let mut pending: FuturesUnordered<PendingSettlement> = FuturesUnordered::new();
    let mut stopped = receiver.set_credit(credit).await.is_err();
    let exit = loop {
        if stopped {
            break Exit::Peer;
        }
        if credit < window / 2 {
            let got = reserve(&entry, window - credit);
            if got > 0 {
                credit += got;
                stopped = receiver.set_credit(credit).await.is_err();
                continue;
            }
        }
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break Exit::Shutdown,
            () = entry.removed.cancelled() => break Exit::Removed,
            () = grant.revoked().cancelled() => break Exit::Revoked,
            Some((info, settled)) = pending.next(), if !pending.is_empty() => {
                settle_upstream(&receiver, info, settled).await;
            }
            () = wait_for_room(&entry), if credit == 0 => {}
            delivery = receiver.recv::<Body<LazyValue>>() => {
                // Take whatever else has already arrived, so that one disposition settles them all.
                let mut batch = vec![delivery];
                // A link that ended answers every further receive at once with its end: stop there.
                while batch.len() < MAX_BATCH && batch.last().is_some_and(is_delivery) {
                    match ready(receiver.recv::<Body<LazyValue>>()) {
                        Some(delivery) => batch.push(delivery),
                        None => break,
                    }
                }
                // Only deliveries used credit; the room the rest of it holds is given back at the end.
                credit = credit.saturating_sub(batch.iter().filter(|d| is_delivery(d)).count() as u32);
                let mut accepted = Vec::with_capacity(batch.len());
                let mut ended = false;
                for delivery in batch {
                    match delivery {
                        Ok(delivery) => {
                            let (info, content) = delivery.into_parts();
                            match store(&target, &broker, info, content) {
                                Stored::Accepted(info) => accepted.push(info),
                                Stored::Waiting(waiting) => pending.push(waiting),
                                Stored::Refused(info, error) => settle_or_log(&entry, receiver.reject(info, error).await),
                                Stored::Released(info) => settle_or_log(&entry, receiver.release(info).await),
                            }
                        }
                        Err(RecvError::MessageDecode(err)) => {
                            let description = format!("cannot decode the message: {}", err.source);
                            let error = AmqpErrorValue::new(AmqpError::DecodeError, description, None);
                            settle_or_log(&entry, receiver.reject(err.info, error).await);
                        }
                        Err(err) => {
                            debug!(address = %entry.address, error = %err, "sender link ended");
                            ended = true;
                            break;
                        }
                    }
                }
                if !accepted.is_empty() {
                    settle_or_log(&entry, receiver.accept_all(accepted).await);
                }
                if ended {
                    break Exit::Peer;
                }
            }
        }
    };
    unreserve(&entry, credit);
    entry.senders.fetch_sub(1, Ordering::Relaxed);
    match exit {
        Exit::Revoked => {
            let error = revoked_error(&grant, "send to", &entry.address);
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, receiver.close_with_error(error)).await;
        }
        Exit::Removed => {
            let _ = tokio::time::timeout(
                CLOSE_TIMEOUT,
                receiver.close_with_error(removed_error(&entry.address)),
            )
            .await;
        }
        Exit::Shutdown | Exit::Peer => kept.keep(receiver),
    }
}

/// What became of one delivery.
enum Stored {
    /// The address holds it: accept it.
    Accepted(DeliveryInfo),
    /// Anycast: settle it once a receiver has.
    Waiting(PendingSettlement),
    /// The address refuses it, for this reason.
    Refused(DeliveryInfo, AmqpErrorValue),
    /// The address went away: the sender may try elsewhere.
    Released(DeliveryInfo),
}

/// Hands one delivery to the address's engine.
fn store(target: &SendTarget, broker: &Broker, info: DeliveryInfo, content: Content) -> Stored {
    let size = serde_amqp::serialized_size(&Serializable(&content)).unwrap_or(usize::MAX);
    // Multicast is at-most-once: its deliveries go out pre-settled.
    let presettled = target.entry.type_ == AddressType::Multicast;
    let mut message = Message::new(
        broker.next_message_id(),
        content,
        size,
        target.routing.clone(),
        presettled,
    );
    let result = match &target.entry.engine {
        Engine::Queue(queue) if message.durable => match queue.check_size(message.size) {
            Err(too_large) => {
                // Its credit's room is given back, as `push` does for a refused message.
                queue.unreserve(1);
                Err(too_large)
            }
            Ok(()) => {
                let held = Held {
                    // A queue is sent to by its own name: the routing address is the queue's.
                    address: message.address.clone(),
                    queue: queue.clone(),
                    message,
                };
                return persist_then_queue(broker, vec![held], info);
            }
        },
        Engine::Queue(queue) => queue.push(message),
        Engine::Fanout(fanout) => match fanout.publish(&message, || broker.next_message_id()) {
            Ok(held) if held.is_empty() => Ok(()),
            Ok(held) => return persist_then_queue(broker, held, info),
            Err(err) => Err(err),
        },
        Engine::Anycast(queue) => {
            let (reply, settled) = SettleBack::channel();
            message.reply = Some(reply);
            match queue.push(message) {
                // A receiver that vanished without settling leaves the message released.
                Ok(()) => {
                    return Stored::Waiting(Box::pin(async move {
                        (info, settled.await.unwrap_or((Settlement::Released, None)))
                    }));
                }
                Err(err) => Err(err),
            }
        }
    };
    match result {
        Ok(()) => Stored::Accepted(info),
        Err(PushError::TooLarge { size, limit }) => {
            let description = format!(
                "message of {size} bytes exceeds the limit of {limit} bytes of address {:?}",
                target.entry.address
            );
            Stored::Refused(
                info,
                AmqpErrorValue::new(LinkError::MessageSizeExceeded, description, None),
            )
        }
        Err(PushError::Closed) => Stored::Released(info),
    }
}

/// Makes durable copies safe in the store, and queues them only then: the delivery is accepted
/// once every copy is safe and queued. If the store fails to keep one, none is queued, the store
/// forgets those it kept, and the delivery is released for the sender to try again.
fn persist_then_queue(broker: &Broker, held: Vec<Held>, info: DeliveryInfo) -> Stored {
    let store = broker.store_handle();
    let mut persisting = Vec::new();
    for copy in &held {
        if let Persisted::Later(future) = store.persist(&copy.address, &copy.message) {
            persisting.push(future);
        }
    }
    let finish = move |safe: bool| {
        let mut settlement = Settlement::Accepted;
        for copy in held {
            if !safe {
                store.forget(&copy.address, copy.message.id);
                copy.give_up();
                settlement = Settlement::Released;
                continue;
            }
            let (address, id) = (copy.address.clone(), copy.message.id);
            if copy.queue().is_err() {
                // The address went away meanwhile, and its messages with it.
                store.forget(&address, id);
                settlement = Settlement::Released;
            }
        }
        settlement
    };
    if persisting.is_empty() {
        return match finish(true) {
            Settlement::Accepted => Stored::Accepted(info),
            _ => Stored::Released(info),
        };
    }
    Stored::Waiting(Box::pin(async move {
        let safe = futures_util::future::join_all(persisting)
            .await
            .iter()
            .all(Result::is_ok);
        (info, (finish(safe), None))
    }))
}

/// Whether what a receive gave is a delivery (which used a credit), decodable or not.
fn is_delivery<T>(received: &Result<T, RecvError>) -> bool {
    matches!(received, Ok(_) | Err(RecvError::MessageDecode(_)))
}

/// The future's output if it is ready at once. Polled where it is built: fe2o3's receive future
/// is a few kilobytes, and moving it for every message showed in profiles.
fn ready<F: Future>(future: F) -> Option<F::Output> {
    let future = std::pin::pin!(future);
    match future.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

fn settle_or_log(entry: &Entry, result: Result<(), impl std::fmt::Display>) {
    if let Err(err) = result {
        warn!(address = %entry.address, error = %err, "failed to settle a delivery");
    }
}

/// Passes a receiver's settlement of an anycast message back to its sender.
async fn settle_upstream(receiver: &Receiver, info: DeliveryInfo, (settlement, reason): Settled) {
    let result = match settlement {
        Settlement::Accepted => receiver.accept(info).await,
        Settlement::Rejected => receiver.reject(info, reason).await,
        Settlement::Released => receiver.release(info).await,
        Settlement::Modified => {
            let modified = Modified {
                delivery_failed: Some(true),
                undeliverable_here: None,
                message_annotations: None,
            };
            receiver.modify(info, modified).await
        }
    };
    if let Err(err) = result {
        debug!(error = %err, "failed to settle an anycast delivery upstream");
    }
}

fn reserve(entry: &Entry, want: u32) -> u32 {
    match &entry.engine {
        Engine::Queue(queue) => queue.reserve(want),
        Engine::Fanout(fanout) => fanout.reserve(want),
        Engine::Anycast(queue) if entry.receivers.load(Ordering::Relaxed) > 0 => queue.reserve(want),
        Engine::Anycast(_) => 0,
    }
}

fn unreserve(entry: &Entry, count: u32) {
    match &entry.engine {
        Engine::Queue(queue) | Engine::Anycast(queue) => queue.unreserve(count),
        Engine::Fanout(fanout) => fanout.unreserve(count),
    }
}

async fn wait_for_room(entry: &Entry) {
    match &entry.engine {
        Engine::Queue(queue) => queue.wait_for_room().await,
        Engine::Fanout(fanout) => fanout.wait_for_room().await,
        Engine::Anycast(queue) => {
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
