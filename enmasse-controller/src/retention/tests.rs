//! The delete policy, address by address.

use enmasse_types::broker_config::AddressReport;

use super::*;

fn address(name: &str, deleting: bool, guarded: bool) -> Address {
    let mut address: Address = serde_json::from_value(serde_json::json!({
        "apiVersion": "enmasse.io/v1beta1",
        "kind": "Address",
        "metadata": {"name": format!("app.{name}"), "namespace": "team1"},
        "spec": {"address": name, "type": "queue", "plan": "standard-small-queue"},
    }))
    .unwrap();
    if deleting {
        address.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(100).unwrap(),
        ));
    }
    if guarded {
        address.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
    }
    address
}

fn report(depths: &[(&str, u64)]) -> BrokerReport {
    BrokerReport {
        revision: "r1".into(),
        addresses: depths
            .iter()
            .map(|(address, depth)| AddressReport::serving(*address, *depth))
            .collect(),
        problems: vec![],
    }
}

fn names(addresses: &[Address]) -> Vec<String> {
    addresses
        .iter()
        .map(|a| a.metadata.name.clone().unwrap())
        .collect()
}

#[test]
fn under_delete_a_deleted_address_leaves_the_broker_whatever_it_holds() {
    let addresses = [address("orders", false, false), address("audit", true, false)];
    let out = retention(
        &addresses,
        &addresses,
        Some(&report(&[("audit", 9)])),
        true,
        DeletePolicy::Delete,
    );
    assert_eq!(names(&out.served), ["app.orders"]);
    assert!(out.guard.is_empty() && out.retained.is_empty() && out.release.is_empty());
}

#[test]
fn under_delete_a_finalizer_left_from_retain_is_released() {
    let addresses = [address("audit", true, true)];
    let out = retention(
        &addresses,
        &addresses,
        Some(&report(&[("audit", 9)])),
        true,
        DeletePolicy::Delete,
    );
    assert!(out.served.is_empty());
    assert_eq!(out.release, ["app.audit"]);
}

#[test]
fn under_retain_every_live_address_is_guarded_once() {
    let addresses = [address("orders", false, false), address("audit", false, true)];
    let out = retention(&addresses, &addresses, None, false, DeletePolicy::Retain);
    assert_eq!(out.guard, ["app.orders"]);
    assert_eq!(names(&out.served), ["app.orders", "app.audit"]);
}

#[test]
fn under_retain_a_deleted_address_with_messages_stays_served_until_drained() {
    let addresses = [address("audit", true, true)];
    let out = retention(
        &addresses,
        &addresses,
        Some(&report(&[("audit", 9)])),
        true,
        DeletePolicy::Retain,
    );
    assert_eq!(names(&out.served), ["app.audit"]);
    assert_eq!(out.retained, [("app.audit".to_owned(), Some(9))]);
    assert!(retained_message(Some(9)).contains("holds 9 messages"));

    let drained = retention(
        &addresses,
        &addresses,
        Some(&report(&[("audit", 0)])),
        true,
        DeletePolicy::Retain,
    );
    assert!(drained.served.is_empty());
    assert_eq!(drained.release, ["app.audit"]);
}

#[test]
fn under_retain_an_address_the_broker_no_longer_serves_is_released() {
    let addresses = [address("audit", true, true)];
    let out = retention(
        &addresses,
        &addresses,
        Some(&report(&[])),
        true,
        DeletePolicy::Retain,
    );
    assert_eq!(out.release, ["app.audit"]);
}

#[test]
fn under_retain_a_silent_broker_holds_the_address_but_a_missing_one_lets_go() {
    let addresses = [address("audit", true, true)];
    let silent = retention(&addresses, &addresses, None, true, DeletePolicy::Retain);
    assert_eq!(silent.retained, [("app.audit".to_owned(), None)]);
    assert!(silent.release.is_empty());

    let gone = retention(&addresses, &addresses, None, false, DeletePolicy::Retain);
    assert_eq!(
        gone.release,
        ["app.audit"],
        "a broker that is gone holds nothing: never wedge"
    );
    assert!(gone.served.is_empty());
}

#[test]
fn while_nothing_is_being_deleted_the_served_addresses_are_borrowed_not_copied() {
    let addresses = [address("orders", false, false), address("audit", false, true)];
    let out = retention(&addresses, &addresses, None, true, DeletePolicy::Delete);
    assert!(matches!(out.served, Cow::Borrowed(_)));
    let deleting = [address("orders", false, false), address("audit", true, false)];
    let out = retention(&deleting, &deleting, None, true, DeletePolicy::Delete);
    assert!(matches!(out.served, Cow::Owned(_)));
    assert_eq!(names(&out.served), ["app.orders"]);
}

#[test]
fn looking_only_at_the_notable_addresses_gives_what_looking_at_all_gives() {
    let addresses = [
        address("audit", true, true),
        address("billing", false, true),
        address("orders", false, false),
        address("returns", true, false),
    ];
    let report = report(&[("audit", 3)]);
    for policy in [DeletePolicy::Delete, DeletePolicy::Retain] {
        let mut notable = BTreeSet::new();
        track_notable(&mut notable, &addresses.iter().cloned().collect(), None, policy);
        let looked_at = addresses
            .iter()
            .filter(|a| notable.contains(a.metadata.name.as_deref().unwrap()));
        let some = retention(&addresses, looked_at, Some(&report), true, policy);
        let all = retention(&addresses, &addresses, Some(&report), true, policy);
        assert_eq!(some, all, "under {policy:?}");
    }
}

#[test]
fn the_notable_addresses_follow_the_members_that_changed() {
    let mut addresses = vec![address("audit", false, true), address("orders", false, true)];
    let mut notable = BTreeSet::new();
    track_notable(
        &mut notable,
        &addresses.iter().cloned().collect(),
        None,
        DeletePolicy::Retain,
    );
    assert!(notable.is_empty());
    addresses[1] = address("orders", true, true);
    addresses.push(address("returns", false, false));
    let changed: HashSet<String> = ["app.orders".to_owned(), "app.returns".to_owned()].into();
    track_notable(
        &mut notable,
        &addresses.iter().cloned().collect(),
        Some(&changed),
        DeletePolicy::Retain,
    );
    assert_eq!(
        notable,
        BTreeSet::from(["app.orders".to_owned(), "app.returns".to_owned()])
    );
    addresses.remove(1);
    let changed: HashSet<String> = ["app.orders".to_owned()].into();
    track_notable(
        &mut notable,
        &addresses.iter().cloned().collect(),
        Some(&changed),
        DeletePolicy::Retain,
    );
    assert_eq!(notable, BTreeSet::from(["app.returns".to_owned()]));
}
