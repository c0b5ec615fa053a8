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
    Sendable, Sender,
    link::SendError,
    types::messaging::{Modified, Outcome},
};
use futures_util::{StreamExt, stream::FuturesUnordered};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{CLOSE_TIMEOUT, Exit, removed_error, revoked_error};
use crate::{
    address::{
        fanout::{Fanout, Filter},
        queue::{Queue, Settlement},
        table::{Engine, Entry, ReceiveSource},
    },
    broker::{Broker, Grant},
    message::Message,
};

/// How long a link that ended waits for the outcomes its client already sent.
const LAST_OUTCOMES: Duration = Duration::from_millis(200);

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
                let Some(message) = next else { break Exit::Removed };
                let sendable = Sendable::builder().message(message.to_send()).settled(presettled).build();
                let others = entry.receivers.load(Ordering::Relaxed) > 1;
                tokio::select! {
                    biased;
                    sent = sender.send_batchable(sendable) => match sent {
                        Ok(delivery) => {
                            unsettled.insert(message.id);
                            in_flight.push(Box::pin(async move { (message, delivery.await) }));
                        }
                        Err(err) => {
                            debug!(address = %entry.address, error = %err, "receiver link ended");
                            queue.give_back(message.id);
                            break Exit::Peer;
                        }
                    },
                    () = shutdown.cancelled() => { queue.give_back(message.id); break Exit::Shutdown }
                    () = entry.removed.cancelled() => { queue.give_back(message.id); break Exit::Removed }
                    () = tokio::time::sleep(HOLD_LIMIT), if others => {
                        // No credit: let another receiver have it, and try again a little later.
                        queue.give_back(message.id);
                        backoff = HOLD_LIMIT * 2;
                    }
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
    let _ = tokio::time::timeout(LAST_OUTCOMES, settling).await;
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
    if let Some(error) = error {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sender.close_with_error(error)).await;
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
    let settlement = match outcome {
        Ok(Outcome::Accepted(_)) => Settlement::Accepted,
        Ok(Outcome::Rejected(_)) => Settlement::Rejected,
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
            reply.settle(settlement);
        }
    }
}
