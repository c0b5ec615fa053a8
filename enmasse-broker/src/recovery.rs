//! Putting what the journal recovered back into the queues, at start, before clients connect.
//!
//! Each message goes back to the queue of its address, in its place by id, so the survivors of a
//! queue keep their order. A message whose address the config no longer has as a queue stays in
//! the journal, unserved, and is counted by address: nothing is dropped silently.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use fe2o3_amqp::types::messaging::message::__private::Deserializable;
use serde::Serialize;
use tracing::{info, warn};

use crate::{
    address::table::Engine,
    broker::Broker,
    journal::Recovery,
    message::{Content, Message},
};

/// What start-up recovered from the journal, for the log and `GET /status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Restored {
    /// Messages put back into their queues.
    pub messages: u64,
    /// Their encoded bytes.
    pub bytes: u64,
    /// Segments read.
    pub segments: usize,
    /// How long reading the journal and refilling the queues took, in milliseconds.
    pub millis: u64,
    /// Messages kept in the journal whose address is not a queue of the current config, by
    /// address.
    pub unplaced: BTreeMap<String, u64>,
    /// Messages that could not be decoded, by address: kept in the journal, never served.
    pub undecodable: BTreeMap<String, u64>,
    /// Segments cut off at a torn or corrupt record.
    pub tears: Vec<String>,
}

/// Puts `recovery`'s messages back into the broker's queues, after its config was applied.
pub fn restore(broker: &Broker, recovery: Recovery, read_in: Duration) -> Restored {
    let started = std::time::Instant::now();
    let mut restored = Restored {
        segments: recovery.segments,
        tears: recovery.tears,
        ..Restored::default()
    };
    for recovered in recovery.messages {
        let queue = broker
            .table()
            .get(&recovered.address)
            .and_then(|entry| match &entry.engine {
                Engine::Queue(queue) => Some(queue.clone()),
                _ => None,
            });
        let Some(queue) = queue else {
            *restored.unplaced.entry(recovered.address).or_default() += 1;
            continue;
        };
        let content: Content = match serde_amqp::from_slice::<Deserializable<Content>>(&recovered.encoded) {
            Ok(Deserializable(content)) => content,
            Err(_) => {
                *restored.undecodable.entry(recovered.address).or_default() += 1;
                continue;
            }
        };
        let size = recovered.encoded.len();
        restored.messages += 1;
        restored.bytes += size as u64;
        queue.restore(Message::new(
            recovered.id,
            content,
            size,
            Arc::from(recovered.address.as_str()),
            false,
        ));
    }
    restored.millis = (read_in + started.elapsed()).as_millis() as u64;
    broker.set_recovered(restored.clone(), recovery.last_id);
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
    for (address, count) in &restored.unplaced {
        warn!(%address, messages = count, "journaled messages kept unserved: the config has no such queue");
    }
    for (address, count) in &restored.undecodable {
        warn!(%address, messages = count, "journaled messages that cannot be decoded are kept unserved");
    }
    restored
}
