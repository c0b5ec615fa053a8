//! The typed resource client against a fake Kubernetes API server: apply, wait until the operator
//! says ready (never on a status of an older generation), say why not, and read the export.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::time::Duration;

use enmasse_client::resources::{ResourceError, Resources, TenantResource};
use enmasse_types::{
    manifests::Manifest,
    resources::{
        address::Address, address_space::AddressSpace, common::Phase, messaging_user::MessagingUser,
    },
};
use serde_json::json;
use tests::kube_api::{FakeApi, example};

const SPACE: &str = "/apis/enmasse.io/v1beta1/namespaces/team1/addressspaces/app";
const ORDERS: &str = "/apis/enmasse.io/v1beta1/namespaces/team1/addresses/app.orders";

/// The post's address space, as committed.
fn space() -> AddressSpace {
    example("team1/address-space.yaml")
        .into_iter()
        .find_map(|m| match m {
            Manifest::AddressSpace(space) => Some(*space),
            _ => None,
        })
        .unwrap()
}

fn orders() -> Address {
    example("team1/addresses.yaml")
        .into_iter()
        .find_map(|m| match m {
            Manifest::Address(address) if address.metadata.name.as_deref() == Some("app.orders") => {
                Some(*address)
            }
            _ => None,
        })
        .unwrap()
}

#[tokio::test]
async fn apply_puts_the_resource_in_the_namespace_with_server_side_apply() {
    let api = FakeApi::default();
    let resources = Resources::new(api.client(), "team1");
    let applied = resources.apply(&space()).await.unwrap();
    assert_eq!(applied.metadata.namespace.as_deref(), Some("team1"));
    assert!(
        applied.metadata.resource_version.is_some(),
        "what the server holds"
    );
    assert_eq!(api.take_requests(), [format!("PATCH {SPACE}")]);
    assert_eq!(api.get(SPACE).unwrap()["spec"]["plan"], "standard-small");
}

#[tokio::test]
async fn wait_ready_returns_once_the_operator_writes_a_ready_status() {
    let api = FakeApi::default();
    let resources = Resources::new(api.client(), "team1");
    resources.apply(&orders()).await.unwrap();
    let waiting = {
        let resources = resources.clone();
        tokio::spawn(async move {
            resources
                .wait_ready::<Address>("app.orders", Duration::from_secs(20))
                .await
        })
    };
    api.edit(ORDERS, |address| {
        address["status"] = json!({"isReady": false, "phase": "Configuring"});
    });
    api.edit(ORDERS, |address| {
        address["status"] = json!({"isReady": true, "phase": "Active", "depth": 0});
    });
    let ready = waiting.await.unwrap().unwrap();
    assert_eq!(ready.status.unwrap().phase, Some(Phase::Active));
}

#[tokio::test]
async fn a_resource_that_never_gets_ready_fails_with_its_phase_and_the_operators_messages() {
    let api = FakeApi::default();
    let resources = Resources::new(api.client(), "team1");
    resources.apply(&orders()).await.unwrap();
    api.edit(ORDERS, |address| {
        address["status"] = json!({
            "isReady": false,
            "phase": "Pending",
            "messages": ["address plan standard-small-queue not found"],
        });
    });
    let error = resources
        .wait_ready::<Address>("app.orders", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(
        &error,
        ResourceError::NotReady {
            phase: Some(Phase::Pending),
            ..
        }
    ));
    assert_eq!(
        error.to_string(),
        "Address team1/app.orders is not ready after 300ms: phase Pending: address plan standard-small-queue not found"
    );

    let missing = resources
        .wait_ready::<MessagingUser>("app.nobody", Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(
        missing
            .to_string()
            .ends_with("no status yet (is the operator running?): it does not exist"),
        "{missing}"
    );
}

#[tokio::test]
async fn a_ready_status_of_an_older_generation_does_not_count() {
    let api = FakeApi::default();
    let resources = Resources::new(api.client(), "team1");
    resources.apply(&space()).await.unwrap();
    // The spec changed (generation 2); the status is the operator's verdict on generation 1.
    api.edit(SPACE, |space| {
        space["metadata"]["generation"] = json!(2);
        space["status"] = json!({"isReady": true, "phase": "Active", "observedGeneration": 1});
    });
    let stale: AddressSpace = resources.get("app").await.unwrap();
    assert!(!stale.readiness().ready);
    assert!(
        resources
            .wait_ready::<AddressSpace>("app", Duration::from_millis(200))
            .await
            .is_err()
    );
    api.edit(SPACE, |space| {
        space["status"]["observedGeneration"] = json!(2);
    });
    resources
        .wait_ready::<AddressSpace>("app", Duration::from_secs(20))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_messaging_user_is_ready_when_active() {
    let user: MessagingUser = serde_json::from_value(json!({
        "apiVersion": "user.enmasse.io/v1beta1",
        "kind": "MessagingUser",
        "metadata": {"name": "app.developer", "namespace": "team1"},
        "spec": {"username": "developer", "authentication": {"type": "password", "password": "ZGV2ZWxvcGVy"}},
        "status": {"phase": "Failed", "message": "password is not base64"},
    }))
    .unwrap();
    let readiness = user.readiness();
    assert!(!readiness.ready);
    assert_eq!(readiness.messages, ["password is not base64"]);
}

#[tokio::test]
async fn the_export_is_read_from_the_configmap_or_secret_the_space_names() {
    let api = FakeApi::default();
    let resources = Resources::new(api.client(), "team1");
    resources.apply(&space()).await.unwrap();
    let missing = resources.export("app").await.unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with("failed to read ConfigMap team1/messaging-config"),
        "{missing}"
    );

    api.put(
        "/api/v1/namespaces/team1/configmaps/messaging-config",
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "messaging-config", "namespace": "team1"},
            "data": {
                "service.host": "messaging-app.enmasse-infra.svc",
                "service.port.amqps": "5671",
                "ca.crt": "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n",
            },
        }),
    );
    let config = resources.export("app").await.unwrap();
    assert_eq!(config.host, "messaging-app.enmasse-infra.svc");
    assert_eq!(config.port, 5671);
    assert!(config.tls_ca.is_some());

    // A Secret export, and one that lacks the CA.
    let mut secret_space = space();
    secret_space.spec.endpoints[0].exports =
        serde_json::from_value(json!([{"kind": "Secret", "name": "messaging-secret"}])).unwrap();
    resources.apply(&secret_space).await.unwrap();
    api.put(
        "/api/v1/namespaces/team1/secrets/messaging-secret",
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "messaging-secret", "namespace": "team1"},
            "data": {"service.host": "aG9zdA==", "service.port.amqps": "NTY3MQ=="},
        }),
    );
    let error = resources.export("app").await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "the export Secret team1/messaging-secret cannot be used"
    );
    assert!(
        std::error::Error::source(&error)
            .unwrap()
            .to_string()
            .contains("ca.crt"),
        "the cause names the missing key"
    );
}

#[tokio::test]
async fn statuses_list_every_space_address_and_user_of_the_namespace() {
    let api = FakeApi::default();
    api.put_example("team1", "team1/address-space.yaml");
    api.put_example("team1", "team1/addresses.yaml");
    api.put_example("team1", "team1/messaging-users.yaml");
    api.put_example("elsewhere", "team1/address-space.yaml");
    api.edit(ORDERS, |address| {
        address["status"] = json!({"isReady": true, "phase": "Active", "depth": 3});
    });
    let statuses = Resources::new(api.client(), "team1").statuses().await.unwrap();
    let rows: Vec<(String, String, bool, Option<u64>)> = statuses
        .into_iter()
        .map(|s| (s.kind, s.name, s.readiness.ready, s.depth))
        .collect();
    let row = |kind: &str, name: &str, ready, depth| (kind.to_owned(), name.to_owned(), ready, depth);
    assert_eq!(
        rows,
        [
            row("AddressSpace", "app", false, None),
            row("Address", "app.confirmations", false, None),
            row("Address", "app.orders", true, Some(3)),
            row("MessagingUser", "app.app", false, None),
            row("MessagingUser", "app.developer", false, None),
        ]
    );
}
