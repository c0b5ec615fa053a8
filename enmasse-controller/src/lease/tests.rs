//! Who leads, decided from the Lease, and the writes that make it so.

use serde_json::json;

use super::*;
use crate::testing::FakeApi;

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/enmasse-infra/leases/enmasse-operator";

fn lease(holder: &str, duration: i32) -> Lease {
    Lease {
        metadata: ObjectMeta::default(),
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        }),
    }
}

#[test]
fn a_missing_lease_is_created_and_ours_is_renewed() {
    assert_eq!(decide(None, "a", Duration::ZERO), Decision::Create);
    assert_eq!(
        decide(Some(&lease("a", 15)), "a", Duration::from_secs(90)),
        Decision::Renew
    );
}

#[test]
fn another_holders_lease_is_taken_over_only_once_seen_unrenewed_for_its_duration() {
    let held = lease("b", 15);
    assert_eq!(
        decide(Some(&held), "a", Duration::from_secs(14)),
        Decision::Wait { holder: "b".into() }
    );
    assert_eq!(
        decide(Some(&held), "a", Duration::from_secs(15)),
        Decision::TakeOver
    );
    assert_eq!(
        decide(Some(&lease("", 15)), "a", Duration::ZERO),
        Decision::TakeOver
    );
}

/// A Lease whose holder has stopped renewing it, after three transitions.
fn put_expired_lease(api: &FakeApi) {
    api.put(
        LEASE,
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "enmasse-operator", "namespace": "enmasse-infra"},
               "spec": {"holderIdentity": "gone", "leaseDurationSeconds": 15,
                        "renewTime": "2020-01-01T00:00:00.000000Z", "leaseTransitions": 3}}),
    );
}

fn elector(api: &FakeApi, identity: &str) -> Elector {
    Elector::new(
        api.client(),
        "enmasse-infra",
        "enmasse-operator",
        identity,
        Duration::from_secs(15),
    )
}

#[tokio::test]
async fn the_first_replica_creates_the_lease_and_a_second_one_waits() {
    let api = FakeApi::default();
    assert!(elector(&api, "a").try_hold().await.unwrap());
    assert_eq!(api.get(LEASE).unwrap()["spec"]["holderIdentity"], "a");
    assert!(!elector(&api, "b").try_hold().await.unwrap());
    assert!(elector(&api, "a").try_hold().await.unwrap(), "renewed");
    assert_eq!(api.get(LEASE).unwrap()["spec"]["holderIdentity"], "a");
}

#[tokio::test(start_paused = true)]
async fn a_lease_left_unrenewed_is_taken_over_after_its_duration_and_counted_as_a_transition() {
    let api = FakeApi::default();
    put_expired_lease(&api);
    let a = elector(&api, "a");
    assert!(
        !a.try_hold().await.unwrap(),
        "first seen now: its holder may still renew it"
    );
    tokio::time::advance(Duration::from_secs(15)).await;
    assert!(a.try_hold().await.unwrap());
    let spec = api.get(LEASE).unwrap()["spec"].clone();
    assert_eq!(spec["holderIdentity"], "a");
    assert_eq!(spec["leaseTransitions"], 4);
}

#[tokio::test(start_paused = true)]
async fn of_two_replicas_writing_on_the_same_read_only_one_wins() {
    let api = FakeApi::default();
    put_expired_lease(&api);
    // Both read the same version; the second write names a version that is no longer current.
    let client = api.client();
    let leases: Api<Lease> = Api::namespaced(client, "enmasse-infra");
    let read = leases.get("enmasse-operator").await.unwrap();
    let a = elector(&api, "a");
    assert!(!a.try_hold().await.unwrap());
    tokio::time::advance(Duration::from_secs(15)).await;
    assert!(a.try_hold().await.unwrap());
    let mut late = read.clone();
    late.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let err = leases
        .replace("enmasse-operator", &PostParams::default(), &late)
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(status) if status.code == 409));
    assert_eq!(api.get(LEASE).unwrap()["spec"]["holderIdentity"], "a");
}
