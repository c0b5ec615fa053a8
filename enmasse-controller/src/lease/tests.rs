//! Who leads, decided from the Lease, and the writes that make it so.

use serde_json::json;

use super::*;
use crate::testing::FakeApi;

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/enmasse-infra/leases/enmasse-operator";

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap()
}

fn lease(holder: &str, renewed: i64, duration: i32) -> Lease {
    Lease {
        metadata: ObjectMeta::default(),
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(at(renewed))),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        }),
    }
}

#[test]
fn a_missing_lease_is_created_and_ours_is_renewed() {
    assert_eq!(decide(None, "a", at(100)), Decision::Create);
    assert_eq!(decide(Some(&lease("a", 10, 15)), "a", at(100)), Decision::Renew);
}

#[test]
fn another_holders_lease_is_taken_over_only_once_it_has_expired() {
    let held = lease("b", 100, 15);
    assert_eq!(
        decide(Some(&held), "a", at(114)),
        Decision::Wait { holder: "b".into() }
    );
    assert_eq!(decide(Some(&held), "a", at(115)), Decision::TakeOver);
    assert_eq!(
        decide(Some(&lease("", 100, 15)), "a", at(101)),
        Decision::TakeOver
    );
}

/// A Lease its holder stopped renewing long ago, after three transitions.
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

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_counted_as_a_transition() {
    let api = FakeApi::default();
    put_expired_lease(&api);
    assert!(elector(&api, "a").try_hold().await.unwrap());
    let spec = api.get(LEASE).unwrap()["spec"].clone();
    assert_eq!(spec["holderIdentity"], "a");
    assert_eq!(spec["leaseTransitions"], 4);
}

#[tokio::test]
async fn of_two_replicas_writing_on_the_same_read_only_one_wins() {
    let api = FakeApi::default();
    put_expired_lease(&api);
    // Both read the same version; the second write names a version that is no longer current.
    let client = api.client();
    let leases: Api<Lease> = Api::namespaced(client, "enmasse-infra");
    let read = leases.get("enmasse-operator").await.unwrap();
    assert!(elector(&api, "a").try_hold().await.unwrap());
    let mut late = read.clone();
    late.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let err = leases
        .replace("enmasse-operator", &PostParams::default(), &late)
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(status) if status.code == 409));
    assert_eq!(api.get(LEASE).unwrap()["spec"]["holderIdentity"], "a");
}
