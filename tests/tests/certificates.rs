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
    connects_to("localhost", port, ca).await
}

/// Whether a client trusting `ca` gets ten messages through `orders` over TLS at `host:port`.
async fn connects_to(host: &str, port: u16, ca: PathBuf) -> bool {
    let options = bench::Options {
        url: format!("amqps://{host}:{port}"),
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
        addresses: [BrokerAddress::new(
            "secured.orders",
            "orders",
            AddressType::Queue,
            "plan",
        )]
        .into(),
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

/// The interop space with its messaging endpoint exposed as `expose` (flow YAML).
fn exposed_space(manifests: &Path, expose: &str) {
    let space = std::fs::read_to_string(manifests.join("space.yaml")).unwrap();
    let start = space
        .find("    cert:")
        .or_else(|| space.find("    expose:"))
        .unwrap();
    let end = space.find("    exports:").unwrap();
    let exposed = format!("{}    expose: {expose}\n{}", &space[..start], &space[end..]);
    std::fs::write(manifests.join("space.yaml"), exposed).unwrap();
}

/// The space's status, as the standalone broker reports it.
fn space_status(broker: &tests::standalone::Running) -> serde_json::Value {
    use enmasse_broker::management::Control;
    broker.standalone.status()["statuses"]["addressSpaces"]["secured"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_on_one_machine_listens_on_its_host_with_a_certificate_that_names_it_until_it_is_removed() {
    let dir = temp("route");
    let manifests = space_with_endpoint(&dir, "      provider: selfsigned");
    // Every 127.x address is this machine's, and none but 127.0.0.1 has a listener of its own.
    exposed_space(&manifests, "{type: route, routeHost: 127.0.0.2}");
    let broker = standalone(
        vec![repo_root().join("examples/gitops/infra"), manifests.clone()],
        1,
        None,
        None,
    )
    .await;
    let port = broker.tls_addr.port();
    let status = space_status(&broker);
    let endpoint = &status["endpointStatuses"][0];
    assert_eq!(endpoint["externalHost"], "127.0.0.2", "{status}");
    assert_eq!(endpoint["externalPorts"][0]["name"], "amqps", "{status}");
    assert_eq!(endpoint["externalPorts"][0]["port"], port, "{status}");
    let export = std::fs::read_to_string(broker.data_dir.join("exports/secured-config.yaml")).unwrap();
    assert!(export.contains("external.host: \"127.0.0.2\""), "{export}");
    let ca = exported_ca_of(&broker, "secured-config");
    assert!(
        connects_to("127.0.0.2", port, ca.clone()).await,
        "the route's host is served and named"
    );

    exposed_space(&manifests, "{type: loadbalancer}");
    assert!(broker.standalone.refresh());
    let status = space_status(&broker);
    assert_eq!(
        status["unsupportedFields"][0],
        "endpoints[messaging].expose (type loadbalancer: one machine has no load balancer; use type route with routeHost, the address to listen on)",
        "{status}"
    );
    assert!(
        status["endpointStatuses"][0].get("externalHost").is_none(),
        "{status}"
    );
    // The listener's task stops on its own time, soon after.
    let gone = async {
        while tokio::net::TcpStream::connect(("127.0.0.2", port)).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(1), gone).await.is_ok(),
        "the route's listener is gone"
    );
}
