//! Putting what the journal recovered back into the queues.
//!
//! At start, before any config is applied, every recovered message is decoded and set aside by
//! address. Each config applied then puts the messages of every address it serves as a queue (or
//! subscription) back into that queue, in their place by id, so the survivors of a queue keep
//! their order. Messages whose address the config does not serve wait, counted in the status,
//! and stay in the journal: a broker restarted before its operator pushed a config, or with an
//! address missing from its manifests, drops nothing silently.
//!
//! Pages a previous run left (`addressFullPolicy: PAGE`) are found again too: the durable messages
//! whose only copy is a page's wait with it, and follow the journal's messages into their queue.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex, MutexGuard},
};

use serde::Serialize;
use tracing::{info, warn};

use crate::{
    address::table::{ClientSubscription, SUBSCRIPTION_DEFINITION_PREFIX},
    address::{
        queue::{LeftPage, Queue, recover_page},
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
    /// Durable messages found again in pages, whose only copy they are.
    pub paged: u64,
    /// Pages kept on disk unserved: unreadable, or a second one for a queue.
    pub kept_pages: Vec<String>,
    /// The highest message id in those: new ids are higher.
    #[serde(skip)]
    pub kept_last_id: u64,
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
    /// Pages found again, by the address of their queue: their messages follow the waiting ones.
    pages: BTreeMap<String, LeftPage>,
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
        let state = self.state();
        let mut waiting: BTreeMap<String, u64> = state
            .waiting
            .iter()
            .map(|(address, messages)| (address.clone(), messages.len() as u64))
            .collect();
        for (address, page) in &state.pages {
            *waiting.entry(address.clone()).or_default() += page.messages;
        }
        waiting
    }

    /// Sets the recovered messages aside, to be placed by [`Recovered::place`].
    pub(crate) fn set(
        &self,
        restored: Restored,
        waiting: BTreeMap<String, Vec<Message>>,
        pages: BTreeMap<String, LeftPage>,
    ) {
        let mut state = self.state();
        state.restored = Some(Arc::new(restored));
        state.waiting = waiting;
        state.pages = pages;
    }

    /// Puts the waiting messages of every address the table now serves as a queue into it. A
    /// client's durable subscription whose topic the table now serves is made again first, from
    /// its latest journaled definition (older ones the store forgets).
    pub(crate) fn place(&self, table: &AddressTable, store: &dyn MessageStore) {
        let mut state = self.state();
        if state.waiting.is_empty() && state.pages.is_empty() {
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
        let addresses: std::collections::BTreeSet<&String> =
            state.waiting.keys().chain(state.pages.keys()).collect();
        let placeable: Vec<(String, Arc<Queue>)> = addresses
            .into_iter()
            .filter_map(|address| Some((address.clone(), queue_of(table, address)?)))
            .collect();
        for (address, queue) in placeable {
            let messages = state.waiting.remove(&address).unwrap_or_default();
            let count = messages.len();
            match state.pages.remove(&address) {
                Some(page) => {
                    let paged = page.messages;
                    match queue.restore_left(messages, page) {
                        Ok(()) => {
                            info!(%address, messages = count, paged, "recovered messages and a page are back in their queue");
                        }
                        Err(page) => {
                            warn!(%address, paged, "the queue has a page of its own already: the page left before waits on disk");
                            state.pages.insert(address, page);
                        }
                    }
                }
                None => {
                    for message in messages {
                        queue.restore(message);
                    }
                    info!(%address, messages = count, "recovered messages are back in their queue");
                }
            }
        }
        for (address, messages) in &state.waiting {
            warn!(
                %address,
                messages = messages.len(),
                "recovered messages wait in the journal: the config serves no such queue"
            );
        }
        for (address, page) in &state.pages {
            warn!(
                %address,
                messages = page.messages,
                "a page's messages wait on disk: the config serves no such queue"
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

/// Finds again the pages the previous run left (`dirs`), by the address of their queue, given the
/// ids of the messages the journal holds. A page that cannot be read stays on disk, named in
/// `restored`.
fn find_pages(
    mut dirs: Vec<std::path::PathBuf>,
    journaled: &HashSet<u64>,
    restored: &mut Restored,
) -> BTreeMap<String, LeftPage> {
    let mut pages = BTreeMap::new();
    // Oldest first: pages are numbered as they are made.
    dirs.sort_by_key(|dir| dir.file_name().and_then(|n| n.to_str()?.parse::<u64>().ok()));
    for dir in dirs {
        match recover_page(&dir, journaled) {
            Ok(None) => {}
            Ok(Some(page)) if pages.contains_key(&page.queue) => {
                warn!(dir = %dir.display(), queue = %page.queue, "a second page of one queue stays on disk, unserved");
                restored.kept_pages.push(dir.display().to_string());
                restored.kept_last_id = restored.kept_last_id.max(page.last_id);
            }
            Ok(Some(page)) => {
                restored.paged += page.messages;
                pages.insert(page.queue.clone(), page);
            }
            Err(err) => {
                warn!(dir = %dir.display(), error = %err, "failed to read a page a previous run left; it stays on disk");
                restored.kept_pages.push(dir.display().to_string());
            }
        }
    }
    pages
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
    // What a page may also hold is known by id: the recovered bytes can go now.
    let left = broker.table().budget().take_left_pages();
    let journaled: HashSet<u64> = match left.is_empty() {
        true => HashSet::new(),
        false => recovery.messages.iter().map(|message| message.id).collect(),
    };
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
    let pages = find_pages(left, &journaled, &mut restored);
    let last_page_id = pages
        .values()
        .map(|page| page.last_id)
        .max()
        .unwrap_or(0)
        .max(restored.kept_last_id);
    broker.skip_ids_through(recovery.last_id.max(last_page_id));
    broker.recovered().set(restored.clone(), waiting, pages);
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
