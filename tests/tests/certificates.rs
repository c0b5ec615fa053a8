//! Where the `amqps` endpoint's certificate comes from, end to end: a `certBundle` given in the
//! AddressSpace, and files laid out as a mounted `kubernetes.io/tls` Secret, followed when they
//! change (a renewal), in standalone mode and as a broker in a cluster runs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::{path::Path, path::PathBuf, sync::Arc, time::Duration};

use enmasse_auth::{
    authenticator::AcceptAll,
    tls::{CA_CRT, ServerIdentity, TLS_CRT, TLS_KEY},
};
use enmasse_broker::{
    broker::{Broker, Settings},
    server,
};
use enmasse_client::bench;
use enmasse_types::{
    base64,
    broker_config::{Authentication, BrokerAddress, BrokerConfig, SpaceConfig},
    resources::{
        address::AddressType, address_space::AddressSpaceType,
        authentication_service::AuthenticationServiceType,
    },
};
use tests::repo_root;
use tests::standalone::{exported_ca_of, standalone};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A fresh directory under the system's temp dir.
fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("enmasse-certs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A server certificate for `localhost` from a CA of its own (kept under `dir/<name>`).
fn identity(dir: &Path, name: &str) -> ServerIdentity {
    ServerIdentity::self_signed(&dir.join(name), name, &["localhost".into()]).unwrap()
}

/// Writes `identity` as a mounted `kubernetes.io/tls` Secret with its CA.
fn write_secret(dir: &Path, identity: &ServerIdentity) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(TLS_CRT), &identity.chain_pem).unwrap();
    std::fs::write(dir.join(TLS_KEY), identity.key_pem()).unwrap();
    std::fs::write(dir.join(CA_CRT), identity.ca_pem.as_deref().unwrap()).unwrap();
}

/// Writes `identity`'s CA to a file a client can be pointed at.
fn ca_file(dir: &Path, name: &str, identity: &ServerIdentity) -> PathBuf {
    let path = dir.join(format!("{name}-ca.crt"));
    std::fs::write(&path, identity.ca_pem.as_deref().unwrap()).unwrap();
    path
}

/// Whether a client trusting `ca` gets ten messages through `orders` over TLS on `port`.
async fn connects(port: u16, ca: PathBuf) -> bool {
    let options = bench::Options {
        url: format!("amqps://localhost:{port}"),
        address: "orders".into(),
        count: 10,
        size: 16,
        producers: 1,
        consumers: 1,
        window: 10,
        credit: 10,
        presettled: false,
        durable: false,
        rate: None,
        ca: Some(ca),
    };
    let run = bench::run(options, Arc::new(bench::Progress::default()));
    matches!(
        tokio::time::timeout(Duration::from_secs(20), run).await,
        Ok(Ok(report)) if report.received == 10
    )
}

/// The interop space (authentication `none`, queue `orders`) with a messaging endpoint whose
/// certificate is `cert` (YAML, indented for the endpoint), written under `dir`.
fn space_with_endpoint(dir: &Path, cert: &str) -> PathBuf {
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let space = format!(
        "apiVersion: enmasse.io/v1beta1
kind: AddressSpace
metadata:
  name: secured
  namespace: tests
spec:
  type: standard
  plan: standard-small
  authenticationService:
    name: none-authservice
  endpoints:
  - name: messaging
    service: messaging
    cert:
{cert}
    exports:
    - kind: ConfigMap
      name: secured-config
---
apiVersion: enmasse.io/v1beta1
kind: Address
metadata:
  name: secured.orders
  namespace: tests
spec:
  address: orders
  type: queue
  plan: standard-small-queue
"
    );
    std::fs::write(manifests.join("space.yaml"), space).unwrap();
    manifests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cert_bundle_in_the_address_space_is_what_clients_are_served() {
    let dir = temp("bundle");
    let bundle = identity(&dir, "bundle");
    let cert = format!(
        "      provider: certBundle\n      tlsKey: {}\n      tlsCert: {}",
        base64::encode(bundle.key_pem().as_bytes()),
        base64::encode(bundle.chain_pem.as_bytes())
    );
    let manifests = space_with_endpoint(&dir, &cert);
    let broker = standalone(
        vec![repo_root().join("examples/gitops/infra"), manifests],
        1,
        None,
        None,
    )
    .await;
    let port = broker.tls_addr.port();

    assert!(
        connects(port, ca_file(&dir, "bundle", &bundle)).await,
        "the bundle's CA is trusted"
    );
    let stranger = identity(&dir, "stranger");
    assert!(
        !connects(port, ca_file(&dir, "stranger", &stranger)).await,
        "no other CA is"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mounted_tls_secret_is_served_exported_and_followed_when_renewed() {
    let dir = temp("files");
    let secret = dir.join("secret");
    let first = identity(&dir, "first");
    write_secret(&secret, &first);
    let manifests = space_with_endpoint(&dir, "      provider: selfsigned");
    let broker = standalone(
        vec![repo_root().join("examples/gitops/infra"), manifests],
        1,
        None,
        Some(secret.clone()),
    )
    .await;
    let port = broker.tls_addr.port();
    let exported = exported_ca_of(&broker, "secured-config");
    assert_eq!(
        std::fs::read_to_string(&exported).unwrap(),
        first.ca_pem.clone().unwrap()
    );
    assert!(
        connects(port, exported).await,
        "the export alone lets a client in"
    );

    // A renewal from another CA: served, and exported, from the next reading of the directory.
    let second = identity(&dir, "second");
    write_secret(&secret, &second);
    assert!(broker.standalone.refresh(), "the renewed files are a change");
    let exported = exported_ca_of(&broker, "secured-config");
    assert_eq!(
        std::fs::read_to_string(&exported).unwrap(),
        second.ca_pem.clone().unwrap()
    );
    assert!(connects(port, exported).await);
    assert!(
        !connects(port, ca_file(&dir, "first", &first)).await,
        "the old CA no longer fits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_in_a_cluster_follows_its_mounted_certificate_and_keeps_the_last_good_one() {
    let dir = temp("cluster");
    let secret = dir.join("secret");
    let first = identity(&dir, "first");
    write_secret(&secret, &first);

    // What the operator runs: configured over the management API, amqps from the mounted Secret.
    let broker = Broker::new(Settings::default(), Arc::new(AcceptAll));
    let config = BrokerConfig {
        space: SpaceConfig::new(
            "tests",
            "secured",
            AddressSpaceType::Standard,
            "standard-small",
            Authentication {
                service: "none-authservice".into(),
                type_: AuthenticationServiceType::None,
            },
        ),
        addresses: vec![BrokerAddress::new(
            "secured.orders",
            "orders",
            AddressType::Queue,
            "plan",
        )],
        users: vec![],
    };
    broker.apply(config, Arc::new(AcceptAll));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = CancellationToken::new();
    let tls = Arc::new(server::Tls::default());
    tokio::spawn(server::follow_certificate_files(
        "amqps",
        secret.clone(),
        tls.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(server::run_tls(listener, broker, tls, shutdown.clone()));
    let first_ca = ca_file(&dir, "first", &first);
    let mut served = false;
    for _ in 0..50 {
        if connects(port, first_ca.clone()).await {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "the mounted certificate is served");

    // A broken file (a half-written Secret) leaves the last good certificate in place.
    std::fs::write(secret.join(TLS_KEY), "not a key").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(connects(port, first_ca).await);

    // A renewal is served within a couple of seconds.
    let second = identity(&dir, "second");
    write_secret(&secret, &second);
    let second_ca = ca_file(&dir, "second", &second);
    let mut renewed = false;
    for _ in 0..30 {
        if connects(port, second_ca.clone()).await {
            renewed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(renewed, "the renewed certificate is served");
    shutdown.cancel();
}
