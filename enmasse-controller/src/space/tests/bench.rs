//! The operator's side of the GitOps bench: its reconcile of a space of many addresses, settled
//! and with one address added, against the fake API server and the stand-in broker. Ignored by
//! the test runs; `cargo xtask bench-gitops` runs it on a release build and prints its figures.

use std::time::Instant;

use enmasse_types::resources::plans::AddressSpacePlan;
use serde_json::json;

use super::*;

fn address(name: &str) -> Value {
    json!({
        "apiVersion": "enmasse.io/v1beta1",
        "kind": "Address",
        "metadata": {"name": format!("app.{name}"), "namespace": "team1"},
        "spec": {"address": name, "type": "queue", "plan": "standard-small-queue"}
    })
}

/// The median of `durations`, which is not empty.
fn median(mut durations: Vec<Duration>) -> Duration {
    durations.sort_unstable();
    durations[durations.len() / 2]
}

/// Milliseconds, to a tenth.
fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 10_000.0).round() / 10.0
}

/// A number from the environment variable `name`, or `default`.
fn from_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// The scenario's space on a plan that takes `count` queues more, and those queues.
fn large_space(policy: DeletePolicy, count: usize) -> Scenario {
    let mut s = scenario(policy);
    let plan: AddressSpacePlan = serde_json::from_value(json!({
        "apiVersion": "admin.enmasse.io/v1beta2",
        "kind": "AddressSpacePlan",
        "metadata": {"name": "bench", "namespace": INFRA},
        "spec": {
            "addressSpaceType": "standard",
            "infraConfigRef": "default-minimal",
            "resourceLimits": {"router": 100000, "broker": 100000, "aggregate": 200000},
            "addressPlans": ["standard-small-queue"]
        }
    }))
    .unwrap();
    s._writers
        .space_plans
        .apply_watcher_event(&watcher::Event::Apply(plan));
    s.api.edit(SPACE, |space| space["spec"]["plan"] = json!("bench"));
    for n in 0..count {
        s.api
            .put(&format!("{ADDRESSES}/app.q{n}"), address(&format!("q{n}")));
    }
    s
}

#[tokio::test]
#[ignore = "a benchmark: cargo xtask bench-gitops runs it"]
async fn reconcile_of_a_large_space_and_of_one_address_added_to_it() {
    let count = from_env("ENMASSE_BENCH_ADDRESSES", 10_000);
    let adds = from_env("ENMASSE_BENCH_ADDS", 5).max(1);
    let s = large_space(DeletePolicy::Delete, count);
    let started = Instant::now();
    s.bring_up().await;
    let brought_up = started.elapsed();
    // The statuses the last pass wrote are read back once, as the watch brings them: settled.
    s.reconcile().await.unwrap();
    // Each pass is timed alone: what its watches brought is in the stores before it starts, as
    // a watch event reaches the store before it triggers the pass.
    s.sync_members().await;
    let settled = Instant::now();
    s.pass().await.unwrap();
    let settled = settled.elapsed();
    // Each added address is timed in its own pass, and then the pass that finds it Active; the
    // time the stand-in broker spent answering is taken off, leaving the operator's own.
    let mut added = Vec::new();
    let mut active = Vec::new();
    let mut own = Vec::new();
    for n in 0..adds {
        let name = format!("added{n}");
        s.api.put(&format!("{ADDRESSES}/app.{name}"), address(&name));
        s.sync_members().await;
        let (started, busy) = (Instant::now(), s.broker.busy());
        s.pass().await.unwrap();
        added.push(started.elapsed());
        own.push(started.elapsed().saturating_sub(s.broker.busy() - busy));
        assert!(s.broker.served().contains(&name), "the added address is pushed");
        s.sync_members().await;
        let started = Instant::now();
        s.pass().await.unwrap();
        active.push(started.elapsed());
    }
    let (added, active, own) = (median(added), median(active), median(own));
    println!(
        "{}",
        json!({
            "operator": {
                "addresses": count,
                "brought_up_ms (4 passes)": ms(brought_up),
                "settled_pass_ms": ms(settled),
                "added_addresses": adds,
                "added_address_pass_ms (median)": ms(added),
                "of_which_the_operators_own_ms (median)": ms(own),
                "next_pass_ms (the added address Active, median)": ms(active),
            }
        })
    );
}

#[tokio::test]
#[ignore = "a benchmark: cargo xtask bench-gitops runs it"]
async fn reconcile_of_a_large_space_holding_a_deleted_address_for_its_messages() {
    let count = from_env("ENMASSE_BENCH_ADDRESSES", 10_000);
    let s = large_space(DeletePolicy::Retain, count);
    s.bring_up().await;
    s.reconcile().await.unwrap();
    // One address deleted while it holds messages: under `retain` it stays on the broker.
    let deleted = format!("{ADDRESSES}/app.q0");
    s.broker.depths.lock().unwrap().insert("q0".into(), 3);
    s.api.edit(&deleted, |a| {
        a["metadata"]["deletionTimestamp"] = json!("2026-11-25T00:00:00Z")
    });
    s.sync_members().await;
    let started = Instant::now();
    s.pass().await.unwrap();
    let retained = started.elapsed();
    assert!(s.broker.served().contains(&"q0".to_owned()), "retained");
    // Passes while it is held: a settled one, and one adding an address.
    s.sync_members().await;
    let started = Instant::now();
    s.pass().await.unwrap();
    let settled = started.elapsed();
    s.api.put(&format!("{ADDRESSES}/app.added"), address("added"));
    s.sync_members().await;
    let started = Instant::now();
    s.pass().await.unwrap();
    let added = started.elapsed();
    assert!(
        s.broker.served().contains(&"added".to_owned()),
        "the added address is pushed"
    );
    // Drained: it is let go, and the next pass leaves it off the broker.
    s.broker.depths.lock().unwrap().insert("q0".into(), 0);
    s.sync_members().await;
    let started = Instant::now();
    s.pass().await.unwrap();
    let released = started.elapsed();
    assert_eq!(s.api.get(&deleted).unwrap()["metadata"]["finalizers"], json!([]));
    println!(
        "{}",
        json!({
            "operator, one deleted address retained": {
                "addresses": count,
                "retaining_pass_ms": ms(retained),
                "settled_pass_while_retained_ms": ms(settled),
                "added_address_pass_while_retained_ms": ms(added),
                "releasing_pass_ms": ms(released),
            }
        })
    );
}
