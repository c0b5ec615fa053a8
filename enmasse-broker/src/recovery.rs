//! Putting what the journal recovered back into the queues.
//!
//! At start, before any config is applied, every recovered message is decoded and set aside by
//! address. Each config applied then puts the messages of every address it serves as a queue (or
//! subscription) back into that queue, in their place by id, so the survivors of a queue keep
//! their order. Messages whose address the config does not serve wait, counted in the status,
//! and stay in the journal: a broker restarted before its operator pushed a config, or with an
//! address missing from its manifests, drops nothing silently.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

use serde::Serialize;
use tracing::{info, warn};

use crate::{
    address::table::{ClientSubscription, SUBSCRIPTION_DEFINITION_PREFIX},
    address::{
        queue::Queue,
        table::{AddressTable, Engine},
    },
    broker::Broker,
    journal::{RecoveredMessage, Recovery},
    message::Message,
    selector::Selector,
    store::MessageStore,
};

/// What start-up recovered from the journal, for the log and `GET /status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Restored {
    /// Messages recovered.
    pub messages: u64,
    /// Their encoded bytes.
    pub bytes: u64,
    /// Segments read.
    pub segments: usize,
    /// How long reading the journal and decoding its messages took, in milliseconds.
    pub millis: u64,
    /// Messages that could not be decoded, by address: kept in the journal, never served.
    pub undecodable: BTreeMap<String, u64>,
    /// Segments cut off at a torn or corrupt record.
    pub tears: Vec<String>,
}

/// The broker's side of recovery: what was recovered, and the messages still waiting for a queue.
#[derive(Debug, Default)]
pub struct Recovered {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    restored: Option<Arc<Restored>>,
    /// By address, oldest first.
    waiting: BTreeMap<String, Vec<Message>>,
}

/// Decodes the recovered messages on every core, in order; `None` for one that cannot be decoded.
/// Most of recovery is building the messages in memory, and one thread builds them no faster than
/// the kernel hands it zeroed pages.
fn decode_all(recovered: &[RecoveredMessage]) -> Vec<Option<Message>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let chunk = recovered.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = recovered
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(decode).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

fn decode(recovered: &RecoveredMessage) -> Option<Message> {
    let mut message = Message::decode(
        recovered.id,
        Arc::from(recovered.encoded.as_slice()),
        recovered.address.clone(),
    )
    .ok()?;
    message.set_expires_at(recovered.expires_at);
    Some(message)
}

impl Recovered {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What was recovered at start, if there is a journal.
    pub fn restored(&self) -> Option<Arc<Restored>> {
        self.state().restored.clone()
    }

    /// Recovered messages still waiting for their address to be served as a queue, by address.
    pub fn waiting(&self) -> BTreeMap<String, u64> {
        self.state()
            .waiting
            .iter()
            .map(|(address, messages)| (address.clone(), messages.len() as u64))
            .collect()
    }

    /// Sets the recovered messages aside, to be placed by [`Recovered::place`].
    pub(crate) fn set(&self, restored: Restored, waiting: BTreeMap<String, Vec<Message>>) {
        let mut state = self.state();
        state.restored = Some(Arc::new(restored));
        state.waiting = waiting;
    }

    /// Puts the waiting messages of every address the table now serves as a queue into it. A
    /// client's durable subscription whose topic the table now serves is made again first, from
    /// its latest journaled definition (older ones the store forgets).
    pub(crate) fn place(&self, table: &AddressTable, store: &dyn MessageStore) {
        let mut state = self.state();
        if state.waiting.is_empty() {
            return;
        }
        let definitions: Vec<String> = state
            .waiting
            .keys()
            .filter(|address| address.starts_with(SUBSCRIPTION_DEFINITION_PREFIX))
            .cloned()
            .collect();
        for address in definitions {
            let Some(messages) = state.waiting.get(&address) else {
                continue;
            };
            // Ids grow with time: the last definition is the one in force.
            let Some((latest, definition)) = messages
                .iter()
                .rev()
                .find_map(|message| Some((message.id, ClientSubscription::from_definition(message)?)))
            else {
                continue;
            };
            let selector = definition
                .selector
                .as_deref()
                .and_then(|text| Selector::parse(text).ok())
                .map(Arc::new);
            let subscription = definition.address();
            if table.subscribe(definition, selector).is_err() {
                continue;
            }
            // Definitions are not messages to deliver: they stay in the journal, the latest only.
            for message in state.waiting.remove(&address).unwrap_or_default() {
                if message.id != latest {
                    store.forget(&address, message.id);
                }
            }
            info!(%subscription, "a durable subscription is back");
        }
        let placeable: Vec<(String, Arc<Queue>)> = state
            .waiting
            .keys()
            .filter_map(|address| Some((address.clone(), queue_of(table, address)?)))
            .collect();
        for (address, queue) in placeable {
            let Some(messages) = state.waiting.remove(&address) else {
                continue;
            };
            let count = messages.len();
            for message in messages {
                queue.restore(message);
            }
            info!(%address, messages = count, "recovered messages are back in their queue");
        }
        for (address, messages) in &state.waiting {
            warn!(
                %address,
                messages = messages.len(),
                "recovered messages wait in the journal: the config serves no such queue"
            );
        }
    }
}

fn queue_of(table: &AddressTable, address: &str) -> Option<Arc<Queue>> {
    table.get(address).and_then(|entry| match &entry.engine {
        Engine::Queue(queue) => Some(queue.clone()),
        _ => None,
    })
}

/// Decodes what the journal recovered and hands it to the broker: every config applied from then
/// on puts the messages of the queues it serves back into them. Call it before the first config is
/// applied and before anything is served: it also makes every new message id higher than the
/// recovered ones.
pub fn restore(broker: &Broker, recovery: Recovery) -> Restored {
    let started = std::time::Instant::now();
    let mut restored = Restored {
        segments: recovery.segments,
        tears: recovery.tears,
        ..Restored::default()
    };
    let mut waiting: BTreeMap<String, Vec<Message>> = BTreeMap::new();
    let decoded = decode_all(&recovery.messages);
    for (recovered, message) in recovery.messages.iter().zip(decoded) {
        let address = &*recovered.address;
        let Some(message) = message else {
            *restored.undecodable.entry(address.to_owned()).or_default() += 1;
            continue;
        };
        restored.messages += 1;
        restored.bytes += message.size as u64;
        match waiting.get_mut(address) {
            Some(messages) => messages.push(message),
            None => {
                waiting.insert(address.to_owned(), vec![message]);
            }
        }
    }
    drop(recovery.messages);
    restored.millis = (recovery.elapsed + started.elapsed()).as_millis() as u64;
    info!(
        messages = restored.messages,
        bytes = restored.bytes,
        segments = restored.segments,
        millis = restored.millis,
        "recovered the journal"
    );
    for tear in &restored.tears {
        warn!("journal cut off: {tear}");
    }
    for (address, count) in &restored.undecodable {
        warn!(%address, messages = count, "journaled messages that cannot be decoded are kept unserved");
    }
    broker.skip_ids_through(recovery.last_id);
    broker.recovered().set(restored.clone(), waiting);
    restored
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use enmasse_auth::authenticator::AcceptAll;
    use enmasse_types::resources::address::AddressType;

    use super::*;
    use crate::{
        broker::Settings,
        message::testing::durable,
        testing::{address, config},
    };

    fn recovered(id: u64, address: &str, encoded: Vec<u8>) -> RecoveredMessage {
        RecoveredMessage {
            expires_at: None,
            id,
            address: Arc::from(address),
            encoded,
        }
    }

    fn encoded() -> Vec<u8> {
        durable("orders", 1).encoded.to_vec()
    }

    #[test]
    fn a_recovered_message_that_cannot_be_decoded_is_counted_and_the_rest_are_served_in_order() {
        let broker = Broker::new(Settings::default(), Arc::new(AcceptAll));
        let recovery = Recovery {
            messages: vec![
                recovered(3, "orders", encoded()),
                recovered(5, "orders", b"\x00\x53\x70 not a message".to_vec()),
                recovered(7, "orders", encoded()),
                recovered(9, "returns", encoded()),
            ],
            last_id: 12,
            ..Recovery::default()
        };
        let restored = restore(&broker, recovery);
        assert_eq!(restored.messages, 3);
        assert_eq!(restored.undecodable, BTreeMap::from([("orders".to_owned(), 1)]));
        assert_eq!(
            broker.recovered().waiting(),
            BTreeMap::from([("orders".to_owned(), 2), ("returns".to_owned(), 1)]),
            "nothing is served before a config is applied"
        );
        assert!(broker.next_message_id() > 12, "new ids start above the journal's");

        broker.apply(
            config(vec![address("orders", AddressType::Queue, None)]),
            Arc::new(AcceptAll),
        );
        let Some(Engine::Queue(queue)) = broker.table().get("orders").map(|e| e.engine.clone()) else {
            panic!("orders is a queue");
        };
        let ids: Vec<u64> = std::iter::from_fn(|| queue.try_pop()).map(|m| m.id).collect();
        assert_eq!(ids, [3, 7]);
        assert_eq!(
            broker.recovered().waiting(),
            BTreeMap::from([("returns".to_owned(), 1)]),
            "returns waits for a config that serves it"
        );
    }
}
