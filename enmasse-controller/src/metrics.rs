//! The operator's Prometheus metrics: reconciles, failures by reason, reconcile duration, and
//! whether this replica leads.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

/// Upper bounds of the duration histogram, in seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Counters, updated by every reconcile.
#[derive(Debug, Default)]
pub struct Metrics {
    reconciles: AtomicU64,
    failures: Mutex<BTreeMap<&'static str, u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    duration_micros: AtomicU64,
    leader: AtomicBool,
}

impl Metrics {
    /// Counts one reconcile that took `elapsed`; `failure` is its reason when it failed.
    pub fn reconciled(&self, elapsed: Duration, failure: Option<&'static str>) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        for (bound, count) in BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.duration_micros.fetch_add(micros, Ordering::Relaxed);
        if let Some(reason) = failure
            && let Ok(mut failures) = self.failures.lock()
        {
            *failures.entry(reason).or_default() += 1;
        }
    }

    /// Records whether this replica holds the lease.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let total = self.reconciles.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP enmasse_operator_reconciles_total Address space reconciles."
        );
        let _ = writeln!(out, "# TYPE enmasse_operator_reconciles_total counter");
        let _ = writeln!(out, "enmasse_operator_reconciles_total {total}");
        let _ = writeln!(
            out,
            "# HELP enmasse_operator_reconcile_failures_total Reconciles that failed, by reason."
        );
        let _ = writeln!(out, "# TYPE enmasse_operator_reconcile_failures_total counter");
        if let Ok(failures) = self.failures.lock() {
            for (reason, count) in failures.iter() {
                let _ = writeln!(
                    out,
                    "enmasse_operator_reconcile_failures_total{{reason=\"{reason}\"}} {count}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP enmasse_operator_reconcile_duration_seconds How long a reconcile took."
        );
        let _ = writeln!(
            out,
            "# TYPE enmasse_operator_reconcile_duration_seconds histogram"
        );
        for (bound, count) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "enmasse_operator_reconcile_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "enmasse_operator_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {total}"
        );
        let sum = self.duration_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "enmasse_operator_reconcile_duration_seconds_sum {sum}");
        let _ = writeln!(out, "enmasse_operator_reconcile_duration_seconds_count {total}");
        let _ = writeln!(
            out,
            "# HELP enmasse_operator_leader 1 while this replica holds the lease."
        );
        let _ = writeln!(out, "# TYPE enmasse_operator_leader gauge");
        let _ = writeln!(
            out,
            "enmasse_operator_leader {}",
            u8::from(self.leader.load(Ordering::Relaxed))
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_are_counted_with_failures_by_reason_and_durations_in_buckets() {
        let metrics = Metrics::default();
        metrics.reconciled(Duration::from_millis(3), None);
        metrics.reconciled(Duration::from_millis(300), Some("api"));
        metrics.set_leader(true);
        let text = metrics.render();
        assert!(text.contains("enmasse_operator_reconciles_total 2\n"), "{text}");
        assert!(
            text.contains("enmasse_operator_reconcile_failures_total{reason=\"api\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("enmasse_operator_reconcile_duration_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("enmasse_operator_reconcile_duration_seconds_bucket{le=\"0.5\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("enmasse_operator_leader 1\n"), "{text}");
    }
}
