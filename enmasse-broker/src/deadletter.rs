//! Where a message goes when its address gives up on it: past its expiry time, to the address's
//! `expiry` address; rejected by a consumer or past its delivery attempts, to its `deadletter`
//! address. Either is a queue the space configures (type `deadletter`), consumed like any queue.
//! The message goes with annotations saying where it came from and why, as Artemis annotates;
//! without such an address it is dropped. Either way the origin counts it.
//!
//! A durable message moves as the journal allows: its copy is journaled under the dead-letter
//! address before it is queued there and before the original is forgotten, so a crash in between
//! leaves the original, never neither.

use std::sync::{Arc, atomic::Ordering};

use tracing::{debug, warn};

use crate::{
    address::{
        policy::now_millis,
        table::{Engine, Entry},
    },
    amqp::performative::ErrorInfo,
    broker::Broker,
    message::{
        Message,
        annotate::{Annotation, annotate},
    },
    store::Persisted,
};

/// Why an address gives a message up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Its expiry time passed before a consumer took it.
    Expired,
    /// A consumer rejected it, perhaps saying why.
    Rejected(Option<ErrorInfo>),
    /// It failed as many deliveries as the address allows.
    Exhausted(u32),
}

impl Reason {
    fn describe(&self) -> String {
        match self {
            Self::Expired => "expired".to_owned(),
            Self::Rejected(None) => "rejected".to_owned(),
            Self::Rejected(Some(error)) => format!("rejected: {error}"),
            Self::Exhausted(attempts) => format!("delivery attempts exhausted: {attempts}"),
        }
    }
}

/// Drops `message`, which a full queue of `from` let go to make room (`DROP`): counts it, forgets
/// it in the journal, and tells an anycast sender that still waits.
pub fn drop_for_room(broker: &Arc<Broker>, from: &Entry, message: Message) {
    from.messages_dropped.fetch_add(1, Ordering::Relaxed);
    if let Some(sender) = &message.reply {
        let why = ErrorInfo::new(
            "amqp:resource-limit-exceeded",
            format!("address {:?} is full and dropped the message", from.address),
        );
        sender.settle_with(crate::address::queue::Settlement::Rejected, Some(why));
        return;
    }
    debug!(address = %from.address, id = message.id, "dropped to make room");
    if message.durable && !from.temporary && matches!(from.engine, Engine::Queue(_)) {
        broker.store().forget(&from.address, message.id);
    }
}

/// Gives up `message`, taken out of a queue of `from`: counts it, and moves it to the address
/// that takes such messages, or drops it.
pub fn give_up(broker: &Arc<Broker>, from: &Entry, message: Message, reason: Reason) {
    if let Some(sender) = &message.reply {
        // Anycast: the sender still waits for its delivery's outcome, which says why.
        let why = ErrorInfo::new(
            "amqp:message:expired",
            format!("the message {}", reason.describe()),
        );
        sender.settle_with(crate::address::queue::Settlement::Rejected, Some(why));
        from.messages_expired
            .fetch_add(u64::from(reason == Reason::Expired), Ordering::Relaxed);
        return;
    }
    let counter = match reason {
        Reason::Expired => &from.messages_expired,
        Reason::Rejected(_) | Reason::Exhausted(_) => &from.messages_dead_lettered,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let config = from.config();
    let target = match reason {
        Reason::Expired => config.expiry,
        Reason::Rejected(_) | Reason::Exhausted(_) => config.deadletter,
    };
    let queue = target
        .as_deref()
        .and_then(|name| broker.table().get(name))
        .and_then(|entry| match &entry.engine {
            Engine::Queue(queue) => Some((entry.address.clone(), queue.clone())),
            _ => None,
        });
    let forget_original = |broker: &Broker| {
        if message.durable {
            broker.store().forget(&from.address, message.id);
        }
    };
    let Some((target, queue)) = queue else {
        match target {
            Some(target) => warn!(
                address = %from.address, %target, id = message.id, reason = %reason.describe(),
                "dropped: the address meant to take it is not a queue the space serves"
            ),
            None => {
                debug!(address = %from.address, id = message.id, reason = %reason.describe(), "dropped, no address takes it")
            }
        }
        forget_original(broker);
        return;
    };
    let mut annotations = vec![
        (
            "x-opt-ORIG-ADDRESS",
            Annotation::Text(message.address.to_string()),
        ),
        ("x-opt-ORIG-QUEUE", Annotation::Text(from.address.clone())),
        ("x-opt-DEAD-LETTER-REASON", Annotation::Text(reason.describe())),
    ];
    if reason == Reason::Expired {
        annotations.push((
            "x-opt-ACTUAL-EXPIRY",
            Annotation::Timestamp(i64::try_from(now_millis()).unwrap_or(i64::MAX)),
        ));
    }
    let moved = annotate(&message.outgoing(), &annotations)
        .map_err(|err| err.to_string())
        .and_then(|bytes| {
            Message::decode(
                broker.next_message_id(),
                Arc::from(bytes),
                Arc::from(target.as_str()),
            )
            .map_err(|err| err.to_string())
        });
    let moved = match moved {
        Ok(moved) => moved,
        Err(err) => {
            warn!(address = %from.address, id = message.id, error = %err, "failed to annotate a dead letter; dropped");
            forget_original(broker);
            return;
        }
    };
    if queue.reserve(1) == 0 {
        warn!(address = %from.address, %target, id = message.id, "the dead-letter address is full; dropped");
        forget_original(broker);
        return;
    }
    if !moved.durable {
        // Taken in as a recovered message is: its size was allowed where it came from.
        queue.unreserve(1);
        queue.restore(moved);
        return;
    }
    let persisted = broker.store().persist(&target, &moved);
    let (store, origin, original) = (broker.store_handle(), from.address.clone(), message.id);
    let finish = move |safe: bool| {
        // Unsafe, the original stays in the journal and comes back after a restart: at least
        // once, never lost. Safe, the copy is queued whatever its size (it was allowed where it
        // came from), and only then is the original forgotten.
        queue.unreserve(1);
        if queue.is_closed() {
            store.forget(&target, moved.id);
            return;
        }
        queue.restore(moved);
        if safe {
            store.forget(&origin, original);
        }
    };
    match persisted {
        Persisted::Now => finish(true),
        Persisted::Later(future) => {
            broker.tasks().spawn(async move { finish(future.await.is_ok()) });
        }
    }
}
