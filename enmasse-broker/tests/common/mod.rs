//! A broker on a free loopback port, and configs for it.

#![allow(dead_code, reason = "each test file uses a different part")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use enmasse_auth::authenticator::AcceptAll;
use enmasse_broker::broker::{Broker, Settings};
use enmasse_types::{
    broker_config::{Authentication, BrokerAddress, BrokerConfig, SpaceConfig},
    resources::{
        address::AddressType, address_space::AddressSpaceType,
        authentication_service::AuthenticationServiceType,
    },
};
use fe2o3_amqp::{Connection, Session, connection::ConnectionHandle, session::SessionHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub(crate) mod raw;

/// A running broker.
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    pub(crate) broker: Arc<Broker>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub(crate) fn url(&self) -> String {
        format!("amqp://{}", self.addr)
    }

    /// A client connection with one session.
    pub(crate) async fn client(&self) -> (ConnectionHandle<()>, SessionHandle<()>) {
        let mut connection = Connection::open("test-client", self.url().as_str())
            .await
            .unwrap();
        let session = Session::begin(&mut connection).await.unwrap();
        (connection, session)
    }

    pub(crate) fn apply(&self, config: BrokerConfig) {
        self.broker.apply(config, Arc::new(AcceptAll));
    }
}

pub(crate) fn address(name: &str, type_: AddressType) -> BrokerAddress {
    BrokerAddress::new(&format!("app.{name}"), name, type_, "plan")
}

pub(crate) fn config(addresses: impl IntoIterator<Item = BrokerAddress>) -> BrokerConfig {
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
        addresses: addresses.into_iter().collect(),
        users: vec![],
    }
}

/// Starts a broker serving `config` on 127.0.0.1, authenticating everyone.
pub(crate) async fn start(config: BrokerConfig) -> Running {
    let settings = Settings {
        credit_window: 50,
        ..Settings::default()
    };
    start_with(settings, config).await
}

/// Starts a broker with `settings` serving `config` on 127.0.0.1, authenticating everyone.
pub(crate) async fn start_with(settings: Settings, config: BrokerConfig) -> Running {
    let broker = Broker::new(settings, Arc::new(AcceptAll));
    broker.apply(config, Arc::new(AcceptAll));
    serve(broker).await
}

/// Serves `broker` on a free port of 127.0.0.1.
pub(crate) async fn serve(broker: Arc<Broker>) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(enmasse_broker::server::run(
        listener,
        broker.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(enmasse_broker::housekeeping::run(
        broker.clone(),
        shutdown.clone(),
    ));
    Running {
        addr,
        broker,
        shutdown,
        task,
    }
}

/// Fails a test that waits too long.
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}
