use std::{net::Ipv4Addr, sync::Arc};

use enmasse_auth::{authenticator::AcceptAll, tls::CertificateAuthority};
use enmasse_broker::{
    broker::{Broker, Settings},
    management::{self, Guard, Pushed},
    server::Tls,
};
use enmasse_types::{
    broker_config::{Authentication, BrokerAddress, BrokerConfig, BrokerReport, SpaceConfig},
    resources::{
        address::AddressType, address_space::AddressSpaceType,
        authentication_service::AuthenticationServiceType,
    },
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::*;

/// The name the management certificate carries.
const HOST: &str = "broker-app-0.broker-app.enmasse-infra.svc";

/// A real broker's management API on a free loopback port, guarded by `token`, serving a
/// certificate for [`HOST`] from `ca`.
async fn broker_with(token: &str, ca: &CertificateAuthority) -> (u16, CancellationToken) {
    let tls = Arc::new(Tls::default());
    let identity = ca.issue(&[HOST.to_owned()]).unwrap();
    tls.set(identity.server_config().unwrap());
    let broker = Broker::new(Settings::default(), Arc::new(AcceptAll));
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = CancellationToken::new();
    let control = Arc::new(Pushed {
        broker: broker.clone(),
        tokens: None,
        saved: None,
    });
    tokio::spawn(management::run(
        listener,
        broker,
        control,
        Guard::token(token),
        Some(tls),
        shutdown.clone(),
    ));
    (port, shutdown)
}

fn ca() -> CertificateAuthority {
    CertificateAuthority::generate("app").unwrap()
}

/// The space's CA, and a broker with a certificate from it.
async fn broker(token: &str) -> (u16, CancellationToken, String) {
    let ca = ca();
    let (port, shutdown) = broker_with(token, &ca).await;
    (port, shutdown, ca.cert_pem)
}

fn endpoint(port: u16, token: &str, ca_pem: &str) -> BrokerEndpoint {
    BrokerEndpoint {
        port,
        ..BrokerEndpoint::new(
            "broker-app-0".into(),
            Ipv4Addr::LOCALHOST.into(),
            token.into(),
            ca_pem.into(),
            HOST.into(),
        )
    }
}

fn config() -> BrokerConfig {
    BrokerConfig {
        space: SpaceConfig::new(
            "team1",
            "app",
            AddressSpaceType::Standard,
            "standard-small",
            Authentication {
                service: "none-authservice".into(),
                type_: AuthenticationServiceType::None,
            },
        ),
        addresses: [BrokerAddress::new(
            "app.orders",
            "orders",
            AddressType::Queue,
            "standard-small-queue",
        )]
        .into(),
        users: vec![],
    }
}

#[tokio::test]
async fn a_pushed_config_comes_back_in_the_brokers_report() {
    let (port, _shutdown, ca) = broker("t0ken").await;
    let broker = endpoint(port, "t0ken", &ca);
    let before = HttpBrokers.report(&broker, None).await.unwrap();
    assert_eq!(before.revision, "");
    HttpBrokers.push(&broker, &config()).await.unwrap();
    let changes = HttpBrokers.report(&broker, Some(&before.since)).await.unwrap();
    assert!(!changes.whole, "asked since a point of the same broker");
    let mut after = BrokerReport::default();
    after.apply(changes.clone());
    assert_eq!(after.revision, config().revision());
    let orders = after.address("orders").unwrap();
    assert!(orders.ready);
    assert_eq!(orders.depth, 0);
    let unchanged = HttpBrokers.report(&broker, Some(&changes.since)).await.unwrap();
    assert!(unchanged.addresses.is_empty(), "nothing changed since");
}

#[tokio::test]
async fn a_patch_of_the_served_config_is_applied_and_one_of_another_is_refused_with_409() {
    let (port, _shutdown, ca) = broker("t0ken").await;
    let broker = endpoint(port, "t0ken", &ca);
    HttpBrokers.push(&broker, &config()).await.unwrap();
    let mut wanted = config();
    wanted.addresses.insert(BrokerAddress::new(
        "app.audit",
        "audit",
        AddressType::Queue,
        "standard-small-queue",
    ));
    let patch = |base: String| ConfigPatch {
        base,
        space: wanted.space.clone(),
        users: vec![],
        removed: vec![],
        addresses: [wanted.addresses.get("audit").unwrap().clone()].into(),
    };
    let err = HttpBrokers
        .patch(&broker, &patch("other".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Refused { status: 409, .. }), "{err:?}");
    HttpBrokers
        .patch(&broker, &patch(config().revision()))
        .await
        .unwrap();
    let changes = HttpBrokers.report(&broker, None).await.unwrap();
    assert_eq!(changes.revision, wanted.revision());
}

#[tokio::test]
async fn a_wrong_token_is_refused_with_the_brokers_reason() {
    let (port, _shutdown, ca) = broker("t0ken").await;
    let err = HttpBrokers
        .push(&endpoint(port, "guess", &ca), &config())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("refused /config (401)"), "{message}");
    assert!(message.contains("management token"), "{message}");
}

#[tokio::test]
async fn a_broker_that_is_not_there_is_unreachable_and_named() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let err = HttpBrokers
        .report(&endpoint(port, "t0ken", &ca().cert_pem), None)
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("broker-app-0"), "{err}");
}

#[tokio::test]
async fn a_broker_whose_certificate_is_not_from_the_spaces_ca_is_not_trusted() {
    let (port, _shutdown) = broker_with("t0ken", &ca()).await;
    let other = ca();
    let err = HttpBrokers
        .push(&endpoint(port, "t0ken", &other.cert_pem), &config())
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Untrusted { .. }), "{err:?}");
    assert!(err.to_string().contains("broker-app-0"), "{err}");
}

#[tokio::test]
async fn a_certificate_for_another_name_is_not_trusted() {
    let (port, _shutdown, ca) = broker("t0ken").await;
    let mut elsewhere = endpoint(port, "t0ken", &ca);
    elsewhere.server_name = "broker-other-0.broker-other.enmasse-infra.svc".into();
    let err = HttpBrokers.report(&elsewhere, None).await.unwrap_err();
    assert!(matches!(err, BrokerError::Untrusted { .. }), "{err:?}");
}

#[tokio::test]
async fn plain_http_gets_nothing_from_a_management_api_in_tls() {
    let (port, _shutdown, _ca) = broker("t0ken").await;
    let plain = Management {
        address: format!("127.0.0.1:{port}"),
        token: Some("t0ken".into()),
        timeout: Duration::from_secs(5),
        tls: None,
    };
    assert!(plain.get_json("/report").await.is_err());
}
