//! The members kept from pass to pass follow the stores.

use kube::runtime::watcher;
use serde_json::json;

use super::*;

fn address(namespace: &str, name: &str, uid: &str, version: &str, plan: &str) -> Address {
    serde_json::from_value(json!({
        "apiVersion": "enmasse.io/v1beta1",
        "kind": "Address",
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "resourceVersion": version},
        "spec": {"address": name, "type": "queue", "plan": plan}
    }))
    .unwrap()
}

fn plans(members: &Members) -> Vec<(String, String)> {
    members
        .addresses
        .iter()
        .map(|a| (a.metadata.name.clone().unwrap(), a.spec.plan.clone()))
        .collect()
}

#[test]
fn refreshed_members_follow_the_store_by_resource_version_and_uid_and_only_of_their_space() {
    let (stores, mut writers) = MemberStores::new();
    let apply = |writers: &mut MemberWriters, a: Address| {
        writers.addresses.apply_watcher_event(&watcher::Event::Apply(a));
    };
    apply(&mut writers, address("team1", "app.b", "u1", "1", "small"));
    apply(&mut writers, address("team1", "app.a", "u2", "2", "small"));
    apply(&mut writers, address("team1", "other.c", "u3", "3", "small"));
    apply(&mut writers, address("team2", "app.d", "u4", "4", "small"));
    let mut members = Members::default();
    stores.refresh("team1", "app", &mut members);
    assert_eq!(
        plans(&members),
        [("app.a".into(), "small".into()), ("app.b".into(), "small".into())]
    );

    // A new version, an object made again under its name, one added and one gone.
    apply(&mut writers, address("team1", "app.a", "u2", "5", "large"));
    writers
        .addresses
        .apply_watcher_event(&watcher::Event::Delete(address(
            "team1", "app.b", "u1", "1", "small",
        )));
    apply(&mut writers, address("team1", "app.b", "u6", "6", "medium"));
    apply(&mut writers, address("team1", "app.0", "u7", "7", "small"));
    stores.refresh("team1", "app", &mut members);
    assert_eq!(
        plans(&members),
        [
            ("app.0".into(), "small".into()),
            ("app.a".into(), "large".into()),
            ("app.b".into(), "medium".into()),
        ]
    );

    writers
        .addresses
        .apply_watcher_event(&watcher::Event::Delete(address(
            "team1", "app.a", "u2", "5", "large",
        )));
    stores.refresh("team1", "app", &mut members);
    assert_eq!(
        plans(&members),
        [
            ("app.0".into(), "small".into()),
            ("app.b".into(), "medium".into())
        ]
    );
}

#[test]
fn a_member_of_the_same_version_is_kept_as_it_was_not_copied_again() {
    let (stores, mut writers) = MemberStores::new();
    writers
        .addresses
        .apply_watcher_event(&watcher::Event::Apply(address(
            "team1", "app.a", "u1", "1", "small",
        )));
    let mut members = Members::default();
    stores.refresh("team1", "app", &mut members);
    // What is kept is trusted while the version is the same: a mark left on it stays.
    members.addresses[0].spec.plan = "kept".into();
    stores.refresh("team1", "app", &mut members);
    assert_eq!(members.addresses[0].spec.plan, "kept");
}
