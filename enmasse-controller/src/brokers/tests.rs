use std::{net::Ipv4Addr, sync::Arc};

use enmasse_auth::authenticator::AcceptAll;
use enmasse_broker::{
    broker::{Broker, Settings},
    management::{self, Guard, Pushed},
};
use enmasse_types::{
    broker_config::{Authentication, BrokerAddress, BrokerConfig, SpaceConfig},
    resources::{
        address::AddressType, address_space::AddressSpaceType,
        authentication_service::AuthenticationServiceType,
    },
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::*;

/// A real broker's management API on a free loopback port, guarded by `token`.
async fn broker(token: &str) -> (u16, CancellationToken) {
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
        shutdown.clone(),
    ));
    (port, shutdown)
}

fn endpoint(port: u16, token: &str) -> BrokerEndpoint {
    BrokerEndpoint {
        port,
        ..BrokerEndpoint::new("broker-app-0".into(), Ipv4Addr::LOCALHOST.into(), token.into())
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
        addresses: vec![BrokerAddress::new(
            "app.orders",
            "orders",
            AddressType::Queue,
            "standard-small-queue",
        )],
        users: vec![],
    }
}

#[tokio::test]
async fn a_pushed_config_comes_back_in_the_brokers_report() {
    let (port, _shutdown) = broker("t0ken").await;
    let broker = endpoint(port, "t0ken");
    let before = HttpBrokers.report(&broker).await.unwrap();
    assert_eq!(before.revision, "");
    HttpBrokers.push(&broker, &config()).await.unwrap();
    let after = HttpBrokers.report(&broker).await.unwrap();
    assert_eq!(after.revision, config().revision());
    let orders = after.address("orders").unwrap();
    assert!(orders.ready);
    assert_eq!(orders.depth, 0);
}

#[tokio::test]
async fn a_wrong_token_is_refused_with_the_brokers_reason() {
    let (port, _shutdown) = broker("t0ken").await;
    let err = HttpBrokers
        .push(&endpoint(port, "guess"), &config())
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
    let err = HttpBrokers.report(&endpoint(port, "t0ken")).await.unwrap_err();
    assert!(matches!(err, BrokerError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("broker-app-0"), "{err}");
}
