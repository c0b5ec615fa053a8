//! The operator's metrics as Prometheus reads them.

use serde_json::json;

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

#[test]
fn the_census_counts_spaces_by_readiness_and_their_addresses_by_phase_under_enmasses_names() {
    let space = |name: &str, ready: bool| -> AddressSpace {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "team1"},
            "spec": {"type": "standard", "plan": "standard-small"},
            "status": {"isReady": ready, "phase": if ready {"Active"} else {"Configuring"}}
        }))
        .unwrap()
    };
    let address = |name: &str, phase: &str| -> Address {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "team1"},
            "spec": {"address": "a", "type": "queue", "plan": "p"},
            "status": {"isReady": phase == "Active", "phase": phase}
        }))
        .unwrap()
    };
    let metrics = Metrics::default();
    metrics.census(
        &[space("app", true), space("billing", false)],
        &[
            address("app.orders", "Active"),
            address("app.invoices", "Pending"),
            address("billing.x", "Failed"),
        ],
    );
    let text = metrics.render();
    for line in [
        "enmasse_address_spaces_total 2",
        "enmasse_address_space_status_ready{name=\"app\",namespace=\"team1\"} 1",
        "enmasse_address_space_status_not_ready{name=\"billing\",namespace=\"team1\"} 1",
        "enmasse_addresses_total{addressspace=\"app\",namespace=\"team1\"} 2",
        "enmasse_addresses_ready_total{addressspace=\"app\",namespace=\"team1\"} 1",
        "enmasse_addresses_pending_total{addressspace=\"app\",namespace=\"team1\"} 1",
        "enmasse_addresses_failed_total{addressspace=\"billing\",namespace=\"team1\"} 1",
    ] {
        assert!(text.contains(&format!("{line}\n")), "{line} in:\n{text}");
    }

    // A space that went is no longer counted.
    metrics.census(&[space("app", true)], &[]);
    assert!(!metrics.render().contains("billing"));
}
