//! A standalone broker on real sockets, for the end-to-end tests of this crate and of the client.

#![allow(clippy::unwrap_used, reason = "a test fixture fails by panicking")]

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use enmasse_auth::{
    authenticator::RefuseAll,
    tokens::{TokenFile, TokenReviewer},
};
use enmasse_broker::{
    broker::{Broker, Settings},
    management, server,
    standalone::{Options, Standalone},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A broker serving manifests; stopped when dropped.
pub struct Running {
    /// The plain AMQP listener.
    pub addr: SocketAddr,
    /// The amqps listener.
    pub tls_addr: SocketAddr,
    /// The management API.
    pub management_addr: SocketAddr,
    /// Where the exports are.
    pub data_dir: PathBuf,
    /// The standalone control, to refresh by hand.
    pub standalone: Arc<Standalone>,
    /// The broker.
    pub broker: Arc<Broker>,
    shutdown: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The standalone broker on `manifests`, on free ports, with a token file and a certificate
/// directory if given; asserts that it serves `addresses` addresses.
pub async fn standalone(
    manifests: Vec<PathBuf>,
    addresses: usize,
    token_file: Option<PathBuf>,
    tls_dir: Option<PathBuf>,
) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls_addr = tls_listener.local_addr().unwrap();
    let management_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let management_addr = management_listener.local_addr().unwrap();
    let broker = Broker::new(
        Settings::default(),
        Arc::new(RefuseAll::new("not configured".into())),
    );
    let data_dir = std::env::temp_dir().join(format!("enmasse-interop-{}", addr.port()));
    let tls = Arc::new(server::Tls::default());
    let options = Options {
        manifests,
        data_dir: data_dir.clone(),
        namespace: "default".into(),
        address_space: None,
        amqp: Some(addr),
        amqps: Some((tls_addr, tls.clone())),
        tokens: token_file.map(|path| Arc::new(TokenFile::new(path)) as Arc<dyn TokenReviewer>),
        tls_dir,
    };
    let standalone = Standalone::new(options, broker.clone());
    assert!(standalone.refresh(), "the fixture was applied");
    assert_eq!(broker.table().entries().len(), addresses);
    let shutdown = CancellationToken::new();
    tokio::spawn(server::run(listener, broker.clone(), shutdown.clone()));
    tokio::spawn(server::run_tls(
        tls_listener,
        broker.clone(),
        tls,
        shutdown.clone(),
    ));
    tokio::spawn(management::run(
        management_listener,
        broker.clone(),
        standalone.clone(),
        management::Guard::open(),
        shutdown.clone(),
    ));
    Running {
        addr,
        tls_addr,
        management_addr,
        data_dir,
        standalone,
        broker,
        shutdown,
    }
}

/// The CA certificate the export of a running broker tells clients to trust, written to a file.
pub fn exported_ca(broker: &Running) -> PathBuf {
    exported_ca_of(broker, "messaging-config")
}

/// The CA certificate the export `name` of a running broker tells clients to trust, written to a
/// file.
pub fn exported_ca_of(broker: &Running, name: &str) -> PathBuf {
    let export = std::fs::read_to_string(broker.data_dir.join(format!("exports/{name}.yaml"))).unwrap();
    let value: serde_json::Value = serde_saphyr::from_str(&export).unwrap();
    assert_eq!(
        value["data"]["service.port.amqps"],
        broker.tls_addr.port().to_string()
    );
    let path = broker.data_dir.join(format!("exported-{name}-ca.crt"));
    std::fs::write(&path, value["data"]["ca.crt"].as_str().unwrap()).unwrap();
    path
}
