//! The monitoring bundle (`deploy/monitoring/`) against what the project emits: every metric the
//! alert rules and the Grafana dashboard query is one the operator or a broker exports, the rules
//! pass `promtool check rules`, and `promtool test rules` fires the alerts on the series they are
//! about. promtool comes from Debian's `prometheus`, which `cargo xtask test` installs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::{collections::BTreeSet, path::PathBuf, process::Command, sync::Arc};

use enmasse_auth::authenticator::AcceptAll;
use enmasse_broker::{
    broker::{Broker, Settings},
    journal::{Journal, JournalOptions},
};
use enmasse_controller::metrics::Metrics;
use serde_json::Value;

fn monitoring() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring")
}

fn read_yaml(file: &str) -> Value {
    let path = monitoring().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rule groups of the bundle's PrometheusRule.
fn rule_groups() -> Value {
    read_yaml("prometheus-rules.yaml")["spec"].clone()
}

/// Every expression of the rules and of the dashboard's panels.
fn expressions() -> Vec<String> {
    let mut found = Vec::new();
    for group in rule_groups()["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            found.push(rule["expr"].as_str().unwrap().to_owned());
        }
    }
    let dashboard = read_yaml("grafana-dashboard.yaml");
    let dashboard: Value = serde_json::from_str(dashboard["data"]["enmasse.json"].as_str().unwrap()).unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            found.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    found
}

/// The metric names `expr` mentions: its identifiers that begin with `enmasse_`, but the labels
/// the PodMonitor makes of the brokers' pod labels (`enmasse_io_...`).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut current = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            current.push(c);
        } else {
            if current.starts_with("enmasse_") && !current.starts_with("enmasse_io_") {
                names.push(std::mem::take(&mut current));
            }
            current.clear();
        }
    }
    names
}

/// The sample names of OpenMetrics `text`, from its `# TYPE` lines, whether or not a sample is
/// there now.
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let mut words = line.split(' ');
        if (words.next(), words.next()) != (Some("#"), Some("TYPE")) {
            continue;
        }
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                names.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_count", "_sum"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// What the operator (with a space and an address counted, and a failed reconcile) and a broker
/// with a journal and a `globalMaxSize` export; `name` keeps each test's files apart.
fn everything_exported(name: &str) -> BTreeSet<String> {
    let metrics = Metrics::default();
    metrics.reconciled(std::time::Duration::from_millis(5), Some("api"));
    let space = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "app", "namespace": "team1"},
        "spec": {"type": "standard", "plan": "standard-small"}
    }))
    .unwrap();
    let address = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "app.orders", "namespace": "team1"},
        "spec": {"address": "orders", "type": "queue", "plan": "standard-small-queue"}
    }))
    .unwrap();
    metrics.census(&[space], &[address]);
    let operator = metrics.render();
    let dir = std::env::temp_dir().join(format!("enmasse-monitoring-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (journal, _) = Journal::open(&dir, JournalOptions::default()).unwrap();
    let broker = Broker::with_store(Settings::default(), Arc::new(AcceptAll), journal.clone());
    broker.table().budget().set_max(Some(64 << 20));
    let broker_text = enmasse_broker::metrics::render(&broker);
    journal.close();
    let _ = std::fs::remove_dir_all(&dir);
    let mut all = exported(&operator);
    all.extend(exported(&broker_text));
    all
}

#[test]
fn every_metric_the_rules_and_the_dashboard_query_is_exported() {
    let exported = everything_exported("queried");
    assert!(
        exported.contains("enmasse_broker_journal_sync_seconds_bucket"),
        "{exported:?}"
    );
    let mut queried = 0;
    for expr in expressions() {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "{expr} queries no EnMasse metric");
        for name in names {
            assert!(exported.contains(&name), "{expr}: {name} is not exported");
            queried += 1;
        }
    }
    assert!(queried >= 20, "{queried} metrics queried");
}

#[test]
fn a_metric_nobody_exports_is_caught() {
    let exported = everything_exported("missing");
    let names = metric_names("rate(enmasse_broker_messages_lost_total[5m]) > 0");
    assert_eq!(names, ["enmasse_broker_messages_lost_total"]);
    assert!(!exported.contains(&names[0]));
}

/// Runs promtool with `args`, failing the test with its output unless it succeeds.
fn promtool(args: &[&str], dir: &std::path::Path) {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs (cargo xtask test installs Debian's prometheus)");
    assert!(
        output.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_accepts_the_rules_and_fires_them_on_the_series_they_watch() {
    let dir = std::env::temp_dir().join(format!("enmasse-promtool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // JSON is YAML: the PrometheusRule's spec is a rules file.
    std::fs::write(dir.join("rules.json"), rule_groups().to_string()).unwrap();
    promtool(&["check", "rules", "rules.json"], &dir);

    let tests = serde_json::json!({
        "rule_files": ["rules.json"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": "enmasse_address_space_status_not_ready{name=\"app\",namespace=\"team1\"}", "values": "1x30"},
                {"series": "enmasse_broker_memory_used_bytes{pod=\"broker-0\"}", "values": "95x30"},
                {"series": "enmasse_broker_global_max_size_bytes{pod=\"broker-0\"}", "values": "100x30"}
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "EnMasseAddressSpaceNotReady", "exp_alerts": []},
                {"eval_time": "15m", "alertname": "EnMasseAddressSpaceNotReady", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "name": "app", "namespace": "team1"},
                    "exp_annotations": {
                        "summary": "Address space team1/app is not ready",
                        "description": "The space has not been ready for 10 minutes; its status.messages say why."
                    }
                }]},
                {"eval_time": "15m", "alertname": "EnMasseBrokerMemoryNearGlobalMaxSize", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "pod": "broker-0"},
                    "exp_annotations": {
                        "summary": "The broker of / holds over 90% of its globalMaxSize",
                        "description": "Its queues are near the memory they share; full addresses block, fail, drop or page as addressFullPolicy says."
                    }
                }]}
            ]
        }]
    });
    std::fs::write(dir.join("tests.json"), tests.to_string()).unwrap();
    promtool(&["test", "rules", "tests.json"], &dir);
    let _ = std::fs::remove_dir_all(&dir);
}
