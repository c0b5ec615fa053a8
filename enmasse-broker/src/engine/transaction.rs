//! Local transactions (AMQP 1.0, part 4), as Qpid JMS transacted sessions and Qpid Proton's
//! `tx_*` examples use them: a sender attaches to the coordinator and declares a transaction;
//! messages sent with its id are held back, and outcomes the client gives with its id are held
//! too; a discharge commits (all of it takes effect) or rolls back (none does).
//!
//! - **Atomic.** At commit, every held message is queued and every held outcome applied only once
//!   the store has the transaction's durable work, written as one journal record: after a crash
//!   all of a committed transaction is there, and nothing of one that was not.
//! - **Rollback** (asked for, or the connection gone) gives back the room held messages reserved
//!   and returns the messages whose outcomes were held to their queues as failed deliveries.
//! - A connection holds at most [`MAX_OPEN`] transactions, each at most [`MAX_WORK`] messages and
//!   outcomes. Transactions are the connection's: any of its sessions may work in any of them.

use std::{collections::HashMap, sync::Arc};

use super::{
    connection::{Context, Waiting},
    inbound::unreserve,
};
use crate::{
    address::{
        fanout::Held,
        queue::{PushError, Queue, Settlement},
        table::{Engine as AddressEngine, Entry},
    },
    amqp::{
        DecodeError,
        decode::Decoder,
        performative::{DeliveryState, ErrorInfo, condition, descriptor},
    },
    broker::Broker,
    message::{Message, Settled},
    store::Persisted,
};

/// Transactions a connection may have open at once.
pub(super) const MAX_OPEN: usize = 64;
/// Messages and outcomes one transaction may hold.
pub(super) const MAX_WORK: usize = 100_000;
/// Bytes of message the open transactions of one connection may hold back.
pub(super) const MAX_HELD_BYTES: usize = 64 << 20;

/// Conditions of the transaction errors (AMQP 1.0, 4.5.7).
pub(super) const UNKNOWN_ID: &str = "amqp:transaction:unknown-id";
pub(super) const ROLLBACK: &str = "amqp:transaction:rollback";

/// The capability of a coordinator of local transactions, the only kind served.
pub(super) const LOCAL: &str = "amqp:local-transactions";

/// The largest control message (declare, discharge) the coordinator takes.
pub(super) const MAX_CONTROL_SIZE: u64 = 64 * 1024;

/// What the coordinator answers a control message with.
pub(super) enum Control {
    /// The state to settle it with now.
    Now(DeliveryState),
    /// A commit's outcome, once the store has it.
    Later(Waiting<Settled>),
}

/// Handles a control message sent to the coordinator: a declare is answered with the new
/// transaction's id, a discharge with `accepted`, or `rejected` with why.
pub(super) fn control(cx: &mut Context<'_>, message: &Message) -> Control {
    let rejected = |error: ErrorInfo| Control::Now(DeliveryState::Rejected(Some(error)));
    match read_control(&message.encoded) {
        Err(error) => rejected(ErrorInfo::new(
            condition::DECODE_ERROR,
            format!("a control message that is neither a declare nor a discharge: {error}"),
        )),
        Ok(Request::Declare { global: true }) => rejected(ErrorInfo::new(
            condition::NOT_IMPLEMENTED,
            "only local transactions are supported, not a global-id",
        )),
        Ok(Request::Declare { global: false }) => match cx.transactions.declare() {
            Ok(id) => Control::Now(DeliveryState::Declared(id)),
            Err(error) => rejected(error),
        },
        Ok(Request::Discharge { txn_id, fail }) => {
            match cx.transactions.discharge(cx.broker, &txn_id, fail) {
                Discharged::Now(Ok(())) => Control::Now(DeliveryState::Accepted),
                Discharged::Now(Err(error)) => rejected(error),
                Discharged::Later(future) => Control::Later(future),
            }
        }
    }
}

/// A control message's request.
enum Request {
    Declare { global: bool },
    Discharge { txn_id: Vec<u8>, fail: bool },
}

/// Reads the declare or discharge in a message's `amqp-value` section (AMQP 1.0, 4.5.2, 4.5.4).
fn read_control(message: &[u8]) -> Result<Request, DecodeError> {
    let mut d = Decoder::new(message);
    while !d.is_empty() {
        let is_value = d
            .descriptor()?
            .is_some_and(|section| section.is(0x77, "amqp:amqp-value:*"));
        if !is_value {
            d.skip()?;
            continue;
        }
        let kind = d
            .descriptor()?
            .ok_or_else(|| DecodeError::Invalid("an amqp-value that is not described".into()))?;
        let mut f = d.list()?;
        let request = if kind.is(descriptor::DECLARE, "amqp:declare:list") {
            Request::Declare {
                global: f.next(Decoder::skip)?.is_some(),
            }
        } else if kind.is(descriptor::DISCHARGE, "amqp:discharge:list") {
            let txn_id = f
                .next(Decoder::binary)?
                .ok_or_else(|| DecodeError::Invalid("a discharge without a txn-id".into()))?
                .to_vec();
            Request::Discharge {
                txn_id,
                fail: f.next(Decoder::bool)?.unwrap_or(false),
            }
        } else {
            return Err(DecodeError::Invalid(format!("{kind:?}")));
        };
        f.finish()?;
        return Ok(request);
    }
    Err(DecodeError::Invalid("no amqp-value section".into()))
}

/// A message sent in a transaction, held back from its address, which holds room for it.
struct Posted {
    entry: Arc<Entry>,
    message: Message,
}

/// A client's outcome for a message the broker sent, held until the transaction ends; the message
/// stays in flight meanwhile.
pub(super) struct Retired {
    pub(super) entry: Arc<Entry>,
    pub(super) queue: Arc<Queue>,
    pub(super) message: Message,
    pub(super) settled: Settled,
}

#[derive(Default)]
struct Transaction {
    posted: Vec<Posted>,
    retired: Vec<Retired>,
    /// Why it can only be rolled back: an outcome it could not hold.
    doomed: Option<ErrorInfo>,
}

impl Transaction {
    fn work(&self) -> usize {
        self.posted.len() + self.retired.len()
    }
}

/// A connection's transactions.
#[derive(Default)]
pub(super) struct Transactions {
    next: u64,
    open: HashMap<Vec<u8>, Transaction>,
    /// Bytes of the messages the open transactions hold back.
    held_bytes: usize,
}

/// How a discharge ended, for the coordinator to tell its sender.
pub(super) enum Discharged {
    /// Done: committed (and safe) or rolled back.
    Now(Result<(), ErrorInfo>),
    /// A commit waiting for the store.
    Later(Waiting<Settled>),
}

impl Transactions {
    /// Declares a transaction; returns its id.
    pub(super) fn declare(&mut self) -> Result<Vec<u8>, ErrorInfo> {
        if self.open.len() >= MAX_OPEN {
            return Err(ErrorInfo::new(
                condition::RESOURCE_LIMIT_EXCEEDED,
                format!("a connection may have {MAX_OPEN} transactions open at once"),
            ));
        }
        self.next += 1;
        let id = self.next.to_be_bytes().to_vec();
        self.open.insert(id.clone(), Transaction::default());
        Ok(id)
    }

    /// Whether `id` names an open transaction.
    pub(super) fn is_open(&self, id: &[u8]) -> bool {
        self.open.contains_key(id)
    }

    fn get(&mut self, id: &[u8]) -> Result<&mut Transaction, ErrorInfo> {
        let transaction = self.open.get_mut(id).ok_or_else(unknown)?;
        if transaction.work() >= MAX_WORK {
            return Err(ErrorInfo::new(
                condition::RESOURCE_LIMIT_EXCEEDED,
                format!("a transaction may hold {MAX_WORK} messages and outcomes"),
            ));
        }
        Ok(transaction)
    }

    /// Holds a message sent in transaction `id` (its address holds room for it).
    pub(super) fn post(&mut self, id: &[u8], entry: Arc<Entry>, message: Message) -> Result<(), ErrorInfo> {
        if matches!(entry.engine, AddressEngine::Anycast(_)) {
            return Err(ErrorInfo::new(
                condition::NOT_IMPLEMENTED,
                format!(
                    "anycast address {:?} hands messages over as they come and cannot hold them for a transaction",
                    entry.address
                ),
            ));
        }
        if let AddressEngine::Queue(queue) = &entry.engine {
            queue.admit(message.size).map_err(|refused| match refused {
                PushError::Full(limit) => ErrorInfo::new(
                    condition::RESOURCE_LIMIT_EXCEEDED,
                    format!("address {:?} is full: {limit}", entry.address),
                ),
                other => ErrorInfo::new(condition::MESSAGE_SIZE_EXCEEDED, other.to_string()),
            })?;
        }
        if self.held_bytes + message.size > MAX_HELD_BYTES {
            return Err(ErrorInfo::new(
                condition::RESOURCE_LIMIT_EXCEEDED,
                format!("a connection's transactions may hold {MAX_HELD_BYTES} bytes of messages back"),
            ));
        }
        let size = message.size;
        self.get(id)?.posted.push(Posted { entry, message });
        self.held_bytes += size;
        Ok(())
    }

    /// Holds a client's outcome for a message in transaction `id`. One a full transaction cannot
    /// hold dooms it to roll back, and its message goes back to its queue now.
    pub(super) fn retire(
        &mut self,
        broker: &Arc<Broker>,
        id: &[u8],
        retired: Retired,
    ) -> Result<(), ErrorInfo> {
        let full = match self.get(id) {
            Ok(transaction) => {
                transaction.retired.push(retired);
                return Ok(());
            }
            Err(error) => error,
        };
        let failed = (Settlement::Modified, None);
        super::outbound::settle(broker, &retired.entry, &retired.queue, &retired.message, failed);
        if let Some(transaction) = self.open.get_mut(id) {
            transaction.doomed.get_or_insert(full.clone());
        }
        Err(full)
    }

    /// Ends transaction `id`: commits it, or rolls it back when `fail`.
    pub(super) fn discharge(&mut self, broker: &Arc<Broker>, id: &[u8], fail: bool) -> Discharged {
        let Some(transaction) = self.open.remove(id) else {
            return Discharged::Now(Err(unknown()));
        };
        let bytes: usize = transaction.posted.iter().map(|p| p.message.size).sum();
        self.held_bytes = self.held_bytes.saturating_sub(bytes);
        match fail {
            true => {
                roll_back(broker, transaction);
                Discharged::Now(Ok(()))
            }
            false => commit(broker, transaction),
        }
    }

    /// Rolls back every open transaction (the connection is gone).
    pub(super) fn roll_back_all(&mut self, broker: &Arc<Broker>) {
        for (_, transaction) in self.open.drain() {
            roll_back(broker, transaction);
        }
        self.held_bytes = 0;
    }
}

fn unknown() -> ErrorInfo {
    ErrorInfo::new(UNKNOWN_ID, "no such transaction is open on this connection")
}

/// Gives back what a transaction held: the room of its messages, and its outcomes' messages to
/// their queues as failed deliveries.
fn roll_back(broker: &Arc<Broker>, transaction: Transaction) {
    for posted in transaction.posted {
        unreserve(&posted.entry, 1);
    }
    for retired in transaction.retired {
        let failed = (Settlement::Modified, None);
        super::outbound::settle(broker, &retired.entry, &retired.queue, &retired.message, failed);
    }
}

/// Commits a transaction: its durable work is made safe as one, then its messages are queued and
/// its outcomes applied.
fn commit(broker: &Arc<Broker>, mut transaction: Transaction) -> Discharged {
    if let Some(doomed) = transaction.doomed.take() {
        roll_back(broker, transaction);
        let error = ErrorInfo::new(ROLLBACK, format!("the transaction was rolled back: {doomed}"));
        return Discharged::Now(Err(error));
    }
    let mut held: Vec<Held> = Vec::with_capacity(transaction.posted.len());
    let mut posted = transaction.posted.into_iter();
    for message in posted.by_ref() {
        match hold(broker, message) {
            Ok(copies) => held.extend(copies),
            Err(error) => {
                held.into_iter().for_each(Held::give_up);
                for rest in posted {
                    unreserve(&rest.entry, 1);
                }
                let rest = Transaction {
                    retired: transaction.retired,
                    ..Transaction::default()
                };
                roll_back(broker, rest);
                return Discharged::Now(Err(error));
            }
        }
    }
    let adds: Vec<(&str, &Message)> = held
        .iter()
        .filter(|copy| copy.journaled)
        .map(|copy| (&*copy.address, &copy.message))
        .collect();
    let removes: Vec<u64> = transaction
        .retired
        .iter()
        // Accepted ones go; a rejected one leaves once its dead-letter copy is safe.
        .filter(|r| journaled(&r.entry, &r.message) && r.settled.0 == Settlement::Accepted)
        .map(|r| r.message.id)
        .collect();
    let persisted = broker.store().commit(&adds, &removes);
    let (broker, retired) = (broker.clone(), transaction.retired);
    let finish = move |safe: bool| -> Settled {
        if !safe {
            held.into_iter().for_each(Held::give_up);
            roll_back(
                &broker,
                Transaction {
                    retired,
                    ..Transaction::default()
                },
            );
            let error = ErrorInfo::new(
                ROLLBACK,
                "the transaction could not be made safe and was rolled back",
            );
            return (Settlement::Rejected, Some(error));
        }
        for copy in held {
            let (address, id, journaled) = (copy.address.clone(), copy.message.id, copy.journaled);
            // An address removed meanwhile took its messages along: the journal forgets them.
            if copy.queue().is_err() && journaled {
                broker.store().forget(&address, id);
            }
        }
        for r in retired {
            super::outbound::settle(&broker, &r.entry, &r.queue, &r.message, r.settled);
        }
        (Settlement::Accepted, None)
    };
    match persisted {
        Persisted::Now => Discharged::Now(match finish(true) {
            (Settlement::Accepted, _) => Ok(()),
            (_, error) => Err(error.unwrap_or_else(unknown)),
        }),
        Persisted::Later(future) => Discharged::Later(Box::pin(async move { finish(future.await.is_ok()) })),
    }
}

/// The copies a held message becomes at commit: one for a queue, one per member for a topic.
fn hold(broker: &Arc<Broker>, posted: Posted) -> Result<Vec<Held>, ErrorInfo> {
    let Posted { entry, message } = posted;
    match &entry.engine {
        AddressEngine::Queue(queue) => {
            queue.check_size(message.size).map_err(|too_large| {
                unreserve(&entry, 1);
                ErrorInfo::new(condition::MESSAGE_SIZE_EXCEEDED, too_large.to_string())
            })?;
            Ok(vec![Held {
                address: Arc::from(entry.address.as_str()),
                journaled: journaled(&entry, &message),
                queue: queue.clone(),
                message,
            }])
        }
        AddressEngine::Fanout(fanout) => fanout
            .hold(&message, || broker.next_message_id())
            .map_err(|refused| ErrorInfo::new(condition::MESSAGE_SIZE_EXCEEDED, refused.to_string())),
        AddressEngine::Anycast(_) => Err(ErrorInfo::new(
            condition::NOT_IMPLEMENTED,
            "anycast cannot hold a message for a transaction",
        )),
    }
}

/// Whether a message of `entry` is in the journal.
fn journaled(entry: &Entry, message: &Message) -> bool {
    message.durable && !entry.temporary && matches!(entry.engine, AddressEngine::Queue(_))
}
