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
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// A broker serving manifests; stopped when dropped.
pub struct Running {
    /// The plain AMQP listener.
    pub addr: SocketAddr,
    /// The amqps listener.
    pub tls_addr: SocketAddr,
    /// The AMQP over WebSocket listener (TLS, the amqps certificate).
    pub wss_addr: SocketAddr,
    /// The management API.
    pub management_addr: SocketAddr,
    /// Where the exports are.
    pub data_dir: PathBuf,
    /// The standalone control, to refresh by hand.
    pub standalone: Arc<Standalone>,
    /// The broker.
    pub broker: Arc<Broker>,
    setup: Setup,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// The broker runs on a runtime of its own, so that [`Running::crash`] can drop it at once.
    runtime: Option<tokio::runtime::Runtime>,
}

/// A broker that was stopped, to be started again on the same ports.
pub struct Stopped {
    addrs: [SocketAddr; 4],
    setup: Setup,
}

/// What a broker serves, kept to start it again.
#[derive(Clone)]
struct Setup {
    manifests: Vec<PathBuf>,
    addresses: usize,
    token_file: Option<PathBuf>,
    tls_dir: Option<PathBuf>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Running {
    /// What the broker reports about its addresses, as its management API would.
    pub fn report(&self) -> enmasse_types::broker_config::BrokerReport {
        management::report(&self.broker)
    }

    /// Stops the broker as a restart does: its listeners close and its connections are closed.
    /// What it held in memory is gone.
    pub async fn stop(self) -> Stopped {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        Stopped {
            addrs: [self.addr, self.tls_addr, self.wss_addr, self.management_addr],
            setup: self.setup.clone(),
        }
    }

    /// Stops the broker as `kill -9` does: every task of it is dropped where it stands, and its
    /// sockets close without a word. What it held in memory is gone.
    pub fn crash(mut self) -> Stopped {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        Stopped {
            addrs: [self.addr, self.tls_addr, self.wss_addr, self.management_addr],
            setup: self.setup.clone(),
        }
    }

    /// Stops the broker and starts it again on the same ports.
    pub async fn restart(self) -> Running {
        self.stop().await.start().await
    }
}

impl Stopped {
    /// Starts the broker again on the ports it had.
    pub async fn start(self) -> Running {
        let mut listeners = Vec::new();
        for addr in self.addrs {
            listeners.push(bind_again(addr).await);
        }
        serve(listeners, self.setup).await
    }
}

/// Binds `addr`, waiting out a listener of the previous run that is still closing.
async fn bind_again(addr: SocketAddr) -> std::net::TcpListener {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match std::net::TcpListener::bind(addr) {
            Ok(listener) => return listener,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("cannot bind {addr} again: {e}"),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
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
    let mut listeners = Vec::new();
    for _ in 0..4 {
        listeners.push(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    }
    let setup = Setup {
        manifests,
        addresses,
        token_file,
        tls_dir,
    };
    serve(listeners, setup).await
}

/// Serves `setup` on the AMQP, amqps, WebSocket and management listeners, in that order.
async fn serve(listeners: Vec<std::net::TcpListener>, setup: Setup) -> Running {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _context = runtime.enter();
    let listeners: Vec<TcpListener> = listeners
        .into_iter()
        .map(|listener| {
            listener.set_nonblocking(true).unwrap();
            TcpListener::from_std(listener).unwrap()
        })
        .collect();
    let [listener, tls_listener, wss_listener, management_listener]: [TcpListener; 4] =
        listeners.try_into().map_err(|_| "four listeners").unwrap();
    let addr = listener.local_addr().unwrap();
    let tls_addr = tls_listener.local_addr().unwrap();
    let wss_addr = wss_listener.local_addr().unwrap();
    let management_addr = management_listener.local_addr().unwrap();
    let broker = Broker::new(
        Settings::default(),
        Arc::new(RefuseAll::new("not configured".into())),
    );
    let data_dir = std::env::temp_dir().join(format!("enmasse-interop-{}", addr.port()));
    let tls = Arc::new(server::Tls::default());
    let options = Options {
        manifests: setup.manifests.clone(),
        data_dir: data_dir.clone(),
        namespace: "default".into(),
        address_space: None,
        amqp: Some(addr),
        amqps: Some((tls_addr, tls.clone())),
        wss: Some(wss_addr),
        tokens: setup
            .token_file
            .clone()
            .map(|path| Arc::new(TokenFile::new(path)) as Arc<dyn TokenReviewer>),
        tls_dir: setup.tls_dir.clone(),
        watch: Default::default(),
    };
    let standalone = Standalone::new(options, broker.clone());
    assert!(standalone.refresh(), "the fixture was applied");
    assert_eq!(broker.table().entries().len(), setup.addresses);
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    tasks.spawn(server::run(listener, broker.clone(), shutdown.clone()));
    tasks.spawn(enmasse_broker::housekeeping::run(
        broker.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(server::run_tls(
        tls_listener,
        broker.clone(),
        tls.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(server::run_websocket(
        wss_listener,
        broker.clone(),
        tls,
        shutdown.clone(),
    ));
    tasks.spawn(management::run(
        management_listener,
        broker.clone(),
        standalone.clone(),
        management::Guard::open(),
        None,
        shutdown.clone(),
    ));
    Running {
        addr,
        tls_addr,
        wss_addr,
        management_addr,
        data_dir,
        standalone,
        broker,
        setup,
        shutdown,
        tasks,
        runtime: Some(runtime),
    }
}

/// The CA certificate the export of a running broker tells clients to trust, written to a file.
pub fn exported_ca(broker: &Running) -> PathBuf {
    exported_ca_of(broker, "messaging-config")
}

/// The CA certificate the export `name` of a running broker tells clients to trust, written to a
/// file. The export must name the port its endpoint really listens on.
pub fn exported_ca_of(broker: &Running, name: &str) -> PathBuf {
    let export = std::fs::read_to_string(broker.data_dir.join(format!("exports/{name}.yaml"))).unwrap();
    let value: serde_json::Value = serde_saphyr::from_str(&export).unwrap();
    let data = &value["data"];
    let port = |addr: SocketAddr| serde_json::Value::from(addr.port().to_string());
    assert!(
        data["service.port.amqps"] == port(broker.tls_addr)
            || data["service.port.https"] == port(broker.wss_addr),
        "{name} names neither the amqps nor the WebSocket port: {data}"
    );
    let path = broker.data_dir.join(format!("exported-{name}-ca.crt"));
    std::fs::write(&path, data["ca.crt"].as_str().unwrap()).unwrap();
    path
}
