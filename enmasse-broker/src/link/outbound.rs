//! A client's receiver link: messages flow out of an address.
//!
//! Up to `max_in_flight` deliveries are outstanding at once; each stays in flight in its queue until
//! the client settles it. Accepted and rejected messages leave the queue; released and modified
//! ones go back to its front with their delivery count raised, as do those still unsettled when the
//! link goes away. On a topic or multicast address the link gets a queue of its own for as long as
//! it is attached.
//!
//! fe2o3-amqp does not show a sender link's credit: a message is taken and then waits in `send`
//! for credit. So that a receiver without credit does not keep a message from the others, a
//! message that waits longer than [`HOLD_LIMIT`] while other receivers are attached is put back.

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use enmasse_types::resources::address::AddressType;
use fe2o3_amqp::{
    Sender,
    link::{SendError, delivery::DeliveryFut},
    types::messaging::{Modified, Outcome},
};
use futures_util::{StreamExt, stream::FuturesUnordered};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{CLOSE_TIMEOUT, Exit, Kept, removed_error, revoked_error};
use crate::{
    address::{
        fanout::{Fanout, Filter},
        queue::{Queue, Settlement},
        table::{Engine, Entry, ReceiveSource},
    },
    broker::{Broker, Grant},
    message::Message,
};

/// Messages offered to the client at most per wake-up.
const MAX_BATCH: usize = 64;

/// How long a link that ended waits for the outcomes its client already sent.
const LAST_OUTCOMES: Duration = Duration::from_millis(200);
/// The same, when the connection is closing: the wait ends as soon as the session has stopped.
const CLOSING_OUTCOMES: Duration = Duration::from_secs(1);

/// How long a message may wait for a receiver's credit while other receivers could take it.
pub const HOLD_LIMIT: Duration = Duration::from_millis(50);

type InFlight = Pin<Box<dyn Future<Output = (Message, Result<Outcome, SendError>)> + Send>>;

/// Runs a client's receiver link until the peer detaches, the address is removed or the broker
/// stops.
pub async fn run(
    mut sender: Sender,
    source: ReceiveSource,
    grant: Grant,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
    kept: Kept,
) {
    let entry = source.entry.clone();
    let (queue, membership) = match &entry.engine {
        Engine::Queue(queue) | Engine::Anycast(queue) => (queue.clone(), None),
        Engine::Fanout(fanout) => {
            let filter = source.filter.clone().unwrap_or(Filter::All);
            let (id, queue) = fanout.join(filter, entry.config().limits);
            (queue, Some((fanout.clone(), id)))
        }
    };
    entry.receivers.fetch_add(1, Ordering::Relaxed);
    entry.receiver_joined.notify_waiters();

    let max_in_flight = broker.settings().max_in_flight;
    // Multicast is at-most-once: its deliveries go out pre-settled.
    let presettled = entry.type_ == AddressType::Multicast;
    let mut in_flight: FuturesUnordered<InFlight> = FuturesUnordered::new();
    let mut unsettled: HashSet<u64> = HashSet::new();
    let mut backoff = Duration::ZERO;
    let exit = loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break Exit::Shutdown,
            () = entry.removed.cancelled() => break Exit::Removed,
            () = grant.revoked().cancelled() => break Exit::Revoked,
            Some((message, outcome)) = in_flight.next(), if !in_flight.is_empty() => {
                unsettled.remove(&message.id);
                settle(&broker, &entry, &queue, &message, outcome);
            }
            () = tokio::time::sleep(backoff), if !backoff.is_zero() => backoff = Duration::ZERO,
            next = queue.pop(), if in_flight.len() < max_in_flight && backoff.is_zero() => {
                let Some(first) = next else { break Exit::Removed };
                // Offer what else is waiting too, so that one wake-up sends a batch.
                let mut next = Some(first);
                let mut offered = 0;
                let mut ended = None;
                while let Some(message) = next.take() {
                    match offer(&mut sender, message, presettled, &entry, &queue, &shutdown).await {
                        Offer::Sent(message, delivery) => {
                            unsettled.insert(message.id);
                            in_flight.push(Box::pin(async move { (message, delivery.await) }));
                        }
                        Offer::HeldBack => {
                            // No credit: another receiver may have it; try again a little later.
                            backoff = HOLD_LIMIT * 2;
                            break;
                        }
                        Offer::Ended(exit) => {
                            ended = Some(exit);
                            break;
                        }
                    }
                    offered += 1;
                    if offered < MAX_BATCH && in_flight.len() < max_in_flight {
                        next = queue.try_pop();
                    }
                }
                if let Some(exit) = ended {
                    break exit;
                }
            }
            _ = sender.on_detach() => break Exit::Peer,
        }
    };

    // Outcomes the client sent just before it went away may not have been taken yet: take those
    // that arrive in a moment, so that accepted messages are not delivered again.
    let settling = async {
        while let Some((message, outcome)) = in_flight.next().await {
            unsettled.remove(&message.id);
            settle(&broker, &entry, &queue, &message, outcome);
        }
    };
    // Once the session has stopped, every outcome it received has been applied.
    let stopped = async {
        if matches!(exit, Exit::Shutdown) {
            let _ = sender.on_detach().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    // A peer's detach comes after the outcomes it sent before it: those are ready now.
    // A link the broker ends itself is told why without much delay; a connection that is going
    // away is waited for until its session has taken in what the client sent.
    let grace = match exit {
        Exit::Peer => Duration::ZERO,
        Exit::Removed | Exit::Revoked => LAST_OUTCOMES,
        Exit::Shutdown => CLOSING_OUTCOMES,
    };
    let _ = tokio::time::timeout(grace, async {
        // Biased: outcomes that arrived with the session's stop are taken before it is noticed.
        tokio::select! {
            biased;
            () = settling => {}
            () = stopped => {}
        }
    })
    .await;
    // Whatever the client did not settle goes back for another receiver.
    for id in unsettled {
        queue.settle(id, Settlement::Modified);
    }
    let remaining = entry.receivers.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
    if let Some((fanout, id)) = membership {
        leave(&fanout, id);
    } else if matches!(entry.engine, Engine::Anycast(_)) && remaining == 0 {
        // Anycast never stores: with nobody left to receive, senders get their messages back.
        for message in queue.drain() {
            if let Some(reply) = &message.reply {
                reply.settle(Settlement::Released);
            }
        }
    }
    let error = match exit {
        Exit::Revoked => Some(revoked_error(&grant, "receive from", &entry.address)),
        Exit::Removed => Some(removed_error(&entry.address)),
        Exit::Shutdown | Exit::Peer => None,
    };
    match error {
        Some(error) => {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, sender.close_with_error(error)).await;
        }
        None => kept.keep(sender),
    }
}

/// What became of a message offered to the client.
enum Offer {
    /// Sent; its outcome is on the way.
    Sent(Message, DeliveryFut<Result<Outcome, SendError>>),
    /// The client gave no credit in time while others could take it: put back.
    HeldBack,
    /// The link ended; the message was put back.
    Ended(Exit),
}

/// Sends one message, unless the link ends first or the client has no credit for it in time.
async fn offer(
    sender: &mut Sender,
    message: Message,
    presettled: bool,
    entry: &Entry,
    queue: &Queue,
    shutdown: &CancellationToken,
) -> Offer {
    let others = entry.receivers.load(Ordering::Relaxed) > 1;
    let sendable = message.outgoing(presettled);
    let offer = tokio::select! {
        biased;
        sent = sender.send_batchable_ref(&sendable) => match sent {
            Ok(delivery) => Ok(delivery),
            Err(err) => {
                debug!(address = %entry.address, error = %err, "receiver link ended");
                Err(Offer::Ended(Exit::Peer))
            }
        },
        () = shutdown.cancelled() => Err(Offer::Ended(Exit::Shutdown)),
        () = entry.removed.cancelled() => Err(Offer::Ended(Exit::Removed)),
        () = tokio::time::sleep(HOLD_LIMIT), if others => Err(Offer::HeldBack),
    };
    drop(sendable);
    match offer {
        Ok(delivery) => Offer::Sent(message, delivery),
        Err(offer) => {
            queue.give_back(message.id);
            offer
        }
    }
}

fn leave(fanout: &Fanout, id: u64) {
    fanout.leave(id, false);
}

/// Applies a client's outcome to the message's queue (and, for anycast, to its sender).
fn settle(
    broker: &Broker,
    entry: &Entry,
    queue: &Queue,
    message: &Message,
    outcome: Result<Outcome, SendError>,
) {
    let mut reason = None;
    let settlement = match outcome {
        Ok(Outcome::Accepted(_)) => Settlement::Accepted,
        Ok(Outcome::Rejected(rejected)) => {
            reason = rejected.error;
            Settlement::Rejected
        }
        Ok(Outcome::Released(_)) => Settlement::Released,
        Ok(Outcome::Modified(Modified { .. })) => Settlement::Modified,
        #[allow(
            unreachable_patterns,
            reason = "other outcomes exist with fe2o3's transaction feature"
        )]
        Ok(_) => Settlement::Released,
        Err(err) => {
            debug!(address = %entry.address, error = %err, "a delivery ended without an outcome");
            Settlement::Modified
        }
    };
    queue.settle(message.id, settlement);
    if matches!(settlement, Settlement::Accepted | Settlement::Rejected) {
        entry.messages_out.fetch_add(1, Ordering::Relaxed);
        if message.durable {
            broker.store().forget(&entry.address, message.id);
        }
        if let Some(reply) = &message.reply {
            reply.settle_with(settlement, reason);
        }
    }
}
