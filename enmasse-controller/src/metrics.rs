//! The operator's Prometheus metrics, through the `prometheus-client` crate: reconciles, failures
//! by reason, reconcile duration, whether this replica leads, and a census of the cluster's
//! address spaces and addresses under EnMasse's names (`enmasse_address_space_status_ready`,
//! `enmasse_address_spaces_total`, `enmasse_addresses_*_total`).

use std::time::Duration;

use enmasse_types::resources::{address::Address, address_space::AddressSpace, common::Phase};
use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Upper bounds of the duration histogram, in seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Labels of one sample.
type Labels = Vec<(String, String)>;

/// The address counts EnMasse's standard controller exported per space, by what they count.
const ADDRESS_COUNTS: [&str; 8] = [
    "total",
    "ready",
    "not_ready",
    "pending",
    "configuring",
    "active",
    "failed",
    "terminating",
];

/// The operator's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    failures: Family<Labels, Counter>,
    duration: Histogram,
    leader: Gauge,
    space_ready: Family<Labels, Gauge>,
    space_not_ready: Family<Labels, Gauge>,
    spaces: Gauge,
    addresses: Vec<Family<Labels, Gauge>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let reconciles = Counter::default();
        registry.register(
            "enmasse_operator_reconciles",
            "Address space reconciles.",
            reconciles.clone(),
        );
        let failures = Family::<Labels, Counter>::default();
        registry.register(
            "enmasse_operator_reconcile_failures",
            "Reconciles that failed, by reason.",
            failures.clone(),
        );
        let duration = Histogram::new(BUCKETS);
        registry.register(
            "enmasse_operator_reconcile_duration_seconds",
            "How long a reconcile took.",
            duration.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "enmasse_operator_leader",
            "1 while this replica holds the lease.",
            leader.clone(),
        );
        let space_ready = Family::<Labels, Gauge>::default();
        registry.register(
            "enmasse_address_space_status_ready",
            "1 while the address space is ready.",
            space_ready.clone(),
        );
        let space_not_ready = Family::<Labels, Gauge>::default();
        registry.register(
            "enmasse_address_space_status_not_ready",
            "1 while the address space is not ready.",
            space_not_ready.clone(),
        );
        let spaces = Gauge::default();
        registry.register(
            "enmasse_address_spaces_total",
            "Address spaces in the cluster.",
            spaces.clone(),
        );
        let addresses = ADDRESS_COUNTS
            .iter()
            .map(|count| {
                let family = Family::<Labels, Gauge>::default();
                let name = match *count {
                    "total" => "enmasse_addresses_total".to_owned(),
                    count => format!("enmasse_addresses_{count}_total"),
                };
                registry.register(
                    name,
                    match *count {
                        "total" => "Addresses of the address space.".to_owned(),
                        count => format!(
                            "Addresses of the address space that are {}.",
                            count.replace('_', " ")
                        ),
                    },
                    family.clone(),
                );
                family
            })
            .collect();
        Self {
            registry,
            reconciles,
            failures,
            duration,
            leader,
            space_ready,
            space_not_ready,
            spaces,
            addresses,
        }
    }
}

impl Metrics {
    /// Counts one reconcile that took `elapsed`; `failure` is its reason when it failed.
    pub fn reconciled(&self, elapsed: Duration, failure: Option<&'static str>) {
        self.reconciles.inc();
        self.duration.observe(elapsed.as_secs_f64());
        if let Some(reason) = failure {
            self.failures
                .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
                .inc();
        }
    }

    /// Records whether this replica holds the lease.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Counts the cluster's address spaces and their addresses, replacing the previous census.
    pub fn census(&self, spaces: &[AddressSpace], addresses: &[Address]) {
        self.space_ready.clear();
        self.space_not_ready.clear();
        for family in &self.addresses {
            family.clear();
        }
        self.spaces.set(i64::try_from(spaces.len()).unwrap_or(i64::MAX));
        for space in spaces {
            let namespace = space.metadata.namespace.clone().unwrap_or_default();
            let name = space.metadata.name.clone().unwrap_or_default();
            let ready = space.status.as_ref().is_some_and(|s| s.is_ready);
            let labels = vec![
                ("name".to_owned(), name.clone()),
                ("namespace".to_owned(), namespace.clone()),
            ];
            self.space_ready.get_or_create(&labels).set(i64::from(ready));
            self.space_not_ready.get_or_create(&labels).set(i64::from(!ready));
            let prefix = format!("{name}.");
            let members = addresses.iter().filter(|a| {
                a.metadata.namespace.as_deref() == Some(namespace.as_str())
                    && a.metadata.name.as_deref().is_some_and(|n| n.starts_with(&prefix))
            });
            let mut counts = [0i64; ADDRESS_COUNTS.len()];
            for address in members {
                let status = address.status.as_ref();
                let ready = status.is_some_and(|s| s.is_ready);
                let phase = status.and_then(|s| s.phase).unwrap_or_default();
                counts[0] += 1;
                counts[1] += i64::from(ready);
                counts[2] += i64::from(!ready);
                let at = match phase {
                    Phase::Pending => 3,
                    Phase::Configuring => 4,
                    Phase::Active => 5,
                    Phase::Failed => 6,
                    Phase::Terminating => 7,
                };
                counts[at] += 1;
            }
            let labels = vec![
                ("addressspace".to_owned(), name),
                ("namespace".to_owned(), namespace),
            ];
            for (family, count) in self.addresses.iter().zip(counts) {
                family.get_or_create(&labels).set(count);
            }
        }
    }

    /// The content type of [`Metrics::render`].
    pub const CONTENT_TYPE: &'static str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests;
