//! The broker's Prometheus metrics (`GET /metrics`), through the `prometheus-client` crate, in the
//! OpenMetrics text format: connections, authentication failures and refused attaches; per
//! address (labels `address`, `type`) depth, links, messages in and out, expired, dead-lettered
//! and dropped; the memory the queues hold against `globalMaxSize`; and how long the journal's
//! syncs take.
//!
//! Everything is read from the broker's state when Prometheus scrapes, so that the text is what the
//! broker holds at that moment, and an address that went is gone from it.

use std::sync::{Arc, atomic::Ordering};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric, text::encode},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

use crate::{address::table::Entry, broker::Broker};

/// The content type of [`render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The name of the journal's sync durations.
pub const JOURNAL_SYNC_SECONDS: &str = "enmasse_broker_journal_sync_seconds";

/// The broker's metrics now.
pub fn render(broker: &Arc<Broker>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(BrokerCollector {
        broker: broker.clone(),
    }));
    if let Some(syncs) = broker.store().sync_seconds() {
        registry.register(
            JOURNAL_SYNC_SECONDS,
            "How long a journal write and its sync took, for writes that durable messages wait for.",
            syncs,
        );
    }
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

/// Reads the broker's state at each scrape.
#[derive(Debug)]
struct BrokerCollector {
    broker: Arc<Broker>,
}

/// A family with a sample per address: name, help, type, and how to read it.
type PerAddress = (&'static str, &'static str, MetricType, fn(&Entry) -> u64);

/// A counter or gauge of the broker as a whole.
enum Single {
    Counter(u64),
    Gauge(u64),
}

impl Collector for BrokerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let counters = self.broker.counters();
        let budget = self.broker.table().budget();
        let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        let mut singles = vec![
            (
                "enmasse_broker_connections",
                "Connections accepted since start.",
                Single::Counter(load(&counters.connections_total)),
            ),
            (
                "enmasse_broker_connections_open",
                "Connections open now.",
                Single::Gauge(load(&counters.connections_open)),
            ),
            (
                "enmasse_broker_authentication_failures",
                "Connections refused by authentication.",
                Single::Counter(load(&counters.authentication_failures)),
            ),
            (
                "enmasse_broker_attaches_refused",
                "Links refused at attach.",
                Single::Counter(load(&counters.attaches_refused)),
            ),
            (
                "enmasse_broker_memory_used_bytes",
                "Bytes of message the broker's queues hold in memory, against globalMaxSize.",
                Single::Gauge(budget.used()),
            ),
        ];
        if budget.max() != u64::MAX {
            singles.push((
                "enmasse_broker_global_max_size_bytes",
                "The space's globalMaxSize: the bytes of message all queues may hold in memory.",
                Single::Gauge(budget.max()),
            ));
        }
        for (name, help, value) in singles {
            match value {
                Single::Counter(value) => {
                    let counter = ConstCounter::new(value);
                    counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
                }
                Single::Gauge(value) => {
                    let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
                    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
                }
            }
        }

        let entries = self.broker.table().entries();
        let per_address: [PerAddress; 8] = [
            (
                "enmasse_broker_address_depth",
                "Messages held by an address.",
                MetricType::Gauge,
                |e| e.depth(),
            ),
            (
                "enmasse_broker_address_senders",
                "Sender links attached to an address.",
                MetricType::Gauge,
                |e| e.senders.load(Ordering::Relaxed),
            ),
            (
                "enmasse_broker_address_receivers",
                "Receiver links attached to an address.",
                MetricType::Gauge,
                |e| e.receivers.load(Ordering::Relaxed),
            ),
            (
                "enmasse_broker_address_messages_in",
                "Messages taken in by an address.",
                MetricType::Counter,
                |e| e.messages_in(),
            ),
            (
                "enmasse_broker_address_messages_out",
                "Messages settled by consumers of an address.",
                MetricType::Counter,
                |e| e.messages_out.load(Ordering::Relaxed),
            ),
            (
                "enmasse_broker_address_messages_expired",
                "Messages that expired at an address (moved to its expiry address, or dropped).",
                MetricType::Counter,
                |e| e.messages_expired.load(Ordering::Relaxed),
            ),
            (
                "enmasse_broker_address_messages_dead_lettered",
                "Messages an address gave up, rejected or past their delivery attempts.",
                MetricType::Counter,
                |e| e.messages_dead_lettered.load(Ordering::Relaxed),
            ),
            (
                "enmasse_broker_address_messages_dropped",
                "Messages a full address dropped to make room (addressFullPolicy DROP).",
                MetricType::Counter,
                |e| e.messages_dropped.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, kind, value) in per_address {
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for entry in &entries {
                let type_ = entry.type_.to_string();
                let labels = [("address", entry.address.as_str()), ("type", type_.as_str())];
                let sample = family.encode_family(&labels)?;
                match kind {
                    MetricType::Counter => ConstCounter::new(value(entry)).encode(sample)?,
                    _ => ConstGauge::new(i64::try_from(value(entry)).unwrap_or(i64::MAX)).encode(sample)?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use enmasse_auth::authenticator::AcceptAll;

    use super::*;
    use crate::{
        broker::Settings,
        journal::{Journal, JournalOptions},
        message::testing::durable,
        store::{MessageStore, Persisted},
    };

    #[tokio::test]
    async fn the_journals_syncs_and_the_memory_held_are_in_the_metrics() {
        let dir = std::env::temp_dir().join(format!("enmasse-metrics-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (journal, _) = Journal::open(&dir, JournalOptions::default()).unwrap();
        let broker = Broker::with_store(Settings::default(), Arc::new(AcceptAll), journal.clone());
        if let Persisted::Later(safe) = journal.persist("orders", &durable("orders", 10)) {
            safe.await.unwrap();
        }
        let text = render(&broker);
        assert!(
            text.contains("# TYPE enmasse_broker_journal_sync_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("enmasse_broker_journal_sync_seconds_count 1\n"),
            "{text}"
        );
        assert!(text.contains("enmasse_broker_memory_used_bytes 0\n"), "{text}");
        assert!(text.contains("enmasse_broker_connections_total 0\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        journal.close();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
