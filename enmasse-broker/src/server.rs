//! The AMQP listeners: `amqp`, `amqps` (TLS from the first byte, as clients open port 5671) and
//! `https` (AMQP over WebSocket in TLS, the `messaging-wss` endpoint). Each accepts connections
//! until shutdown, then closes them and waits for them. Where a certificate is configured, the
//! `amqp` listener also accepts the AMQP TLS header (AMQP 1.0, 5.2.1), by which a client asks to
//! turn its plain connection into a TLS one.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, RwLock, atomic::Ordering},
    time::Duration,
};

use enmasse_auth::tls::SecretFiles;
use enmasse_types::error::one_line;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{info, warn};

use crate::{broker::Broker, connection, transport::Prefixed, websocket};

/// Connections the kernel holds for the broker to accept: a burst of clients reconnecting at
/// once (a broker restart, a rolling update of the applications) must not overflow it.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Listens on `addr` with a backlog of [`LISTEN_BACKLOG`] (the kernel caps it at its
/// `somaxconn`).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// How long open connections get to close once shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate an `amqps` listener serves; it can be replaced while the listener runs (a new
/// certificate applies to new connections).
#[derive(Default)]
pub struct Tls(RwLock<Option<TlsAcceptor>>);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("configured", &self.acceptor().is_some())
            .finish()
    }
}

impl Tls {
    /// Serves this configuration from now on.
    pub fn set(&self, config: Arc<rustls::ServerConfig>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(TlsAcceptor::from(config));
    }

    /// The acceptor of the configuration served now, if any.
    pub(crate) fn acceptor(&self) -> Option<TlsAcceptor> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Serves a connection in TLS from its first byte.
async fn serve_tls<S>(
    stream: S,
    peer: SocketAddr,
    tls: &Tls,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug + 'static,
{
    if let Some(stream) = accept_tls(stream, peer, tls).await {
        connection::serve(stream, true, peer, broker, shutdown).await;
    }
}

/// The TLS handshake of a connection; `None`, logged, if there is no certificate or it fails.
async fn accept_tls<S>(stream: S, peer: SocketAddr, tls: &Tls) -> Option<tokio_rustls::server::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(acceptor) = tls.acceptor() else {
        info!(%peer, "connection refused: no TLS certificate is configured yet");
        return None;
    };
    match tokio::time::timeout(connection::HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(err)) => {
            info!(%peer, error = %err, "TLS handshake failed");
            None
        }
        Err(_) => {
            info!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// Serves AMQP over WebSocket in TLS: the TLS handshake, the WebSocket opening, then the
/// connection as on any other listener.
async fn serve_websocket(
    stream: TcpStream,
    peer: SocketAddr,
    tls: &Tls,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) {
    let Some(stream) = accept_tls(stream, peer, tls).await else {
        return;
    };
    match tokio::time::timeout(connection::HANDSHAKE_TIMEOUT, websocket::accept(stream)).await {
        Ok(Ok(stream)) => connection::serve(stream, true, peer, broker, shutdown).await,
        Ok(Err(err)) => info!(%peer, error = %one_line(&err), "WebSocket opening failed"),
        Err(_) => info!(%peer, "the client sent no WebSocket opening in time"),
    }
}

/// Serves a plain connection, or, if it begins with the TLS header, answers it and goes on in TLS.
async fn serve_plain_or_upgrade(
    mut stream: TcpStream,
    peer: SocketAddr,
    tls: &Tls,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) {
    let mut header = [0u8; 8];
    match tokio::time::timeout(connection::HANDSHAKE_TIMEOUT, stream.read_exact(&mut header)).await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => return info!(%peer, error = %err, "failed to read the protocol header"),
        Err(_) => return info!(%peer, "the client sent no protocol header in time"),
    }
    if header != TLS_HEADER || tls.acceptor().is_none() {
        // Not an upgrade (or none possible): the connection's own handshake reads the header again.
        let stream = Prefixed::new(header.to_vec(), stream);
        return connection::serve(stream, false, peer, broker, shutdown).await;
    }
    if let Err(err) = stream.write_all(&TLS_HEADER).await {
        return info!(%peer, error = %err, "failed to answer the TLS header");
    }
    serve_tls(stream, peer, tls, broker, shutdown).await;
}

/// How often [`follow_certificate_files`] looks at the files.
const CERTIFICATE_POLL: Duration = Duration::from_secs(1);

/// Serves the certificate in `dir` (see [`SecretFiles`]) on `tls` (the listener named `what`)
/// until `shutdown`, and follows it: a changed certificate (a renewal, a rotated Secret) is served
/// to new connections. A certificate that cannot be read or used leaves the last good one in place.
pub async fn follow_certificate_files(
    what: &'static str,
    dir: PathBuf,
    tls: Arc<Tls>,
    shutdown: CancellationToken,
) {
    let mut seen: Option<SecretFiles> = None;
    let mut serving = false;
    loop {
        // Only files that changed since the last look are parsed.
        let files = SecretFiles::read(&dir);
        if seen.as_ref() != Some(&files) {
            match files.identity().and_then(|identity| identity.server_config()) {
                Ok(config) => {
                    tls.set(config);
                    serving = true;
                    info!(dir = %dir.display(), "{what} serves the certificate in the directory");
                }
                Err(err) => warn!(dir = %dir.display(), kept = serving, "{what}: {}", one_line(&err)),
            }
            seen = Some(files);
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(CERTIFICATE_POLL) => {}
        }
    }
}

/// Counts a connection as open for as long as it lives: dropped however its task ends, a panic
/// included, so the gauge never keeps a phantom.
struct OpenConnection(Arc<Broker>);

impl OpenConnection {
    fn new(broker: Arc<Broker>) -> Self {
        broker.counters().connections_open.fetch_add(1, Ordering::Relaxed);
        Self(broker)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.counters().connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The protocol header by which a client asks for TLS on a plain connection.
pub const TLS_HEADER: [u8; 8] = *b"AMQP\x02\x01\x00\x00";

/// How a listener's connections begin.
#[derive(Clone)]
enum Layer {
    /// In plain AMQP; with a certificate, a client may ask for TLS with the TLS header.
    Plain(Option<Arc<Tls>>),
    /// In TLS, from the first byte.
    Tls(Arc<Tls>),
    /// AMQP over WebSocket, in TLS.
    WebSocket(Arc<Tls>),
}

/// Accepts plain AMQP connections on `listener` until `shutdown` is cancelled; then closes every
/// connection (they are told the broker is shutting down) and waits for them, at most
/// [`DRAIN_TIMEOUT`].
pub async fn run(listener: TcpListener, broker: Arc<Broker>, shutdown: CancellationToken) {
    accept(listener, broker, Layer::Plain(None), shutdown).await;
}

/// Like [`run`], and a client that sends the TLS header gets TLS with the certificate of `tls`.
pub async fn run_with_upgrade(
    listener: TcpListener,
    broker: Arc<Broker>,
    tls: Arc<Tls>,
    shutdown: CancellationToken,
) {
    accept(listener, broker, Layer::Plain(Some(tls)), shutdown).await;
}

/// Accepts AMQP connections over TLS on `listener`, like [`run`]. Until a certificate is set,
/// connections are closed at once.
pub async fn run_tls(listener: TcpListener, broker: Arc<Broker>, tls: Arc<Tls>, shutdown: CancellationToken) {
    accept(listener, broker, Layer::Tls(tls), shutdown).await;
}

/// Accepts AMQP connections over WebSocket in TLS on `listener` (the `messaging-wss` endpoint),
/// like [`run_tls`].
pub async fn run_websocket(
    listener: TcpListener,
    broker: Arc<Broker>,
    tls: Arc<Tls>,
    shutdown: CancellationToken,
) {
    accept(listener, broker, Layer::WebSocket(tls), shutdown).await;
}

async fn accept(listener: TcpListener, broker: Arc<Broker>, layer: Layer, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(10);
                let _ = stream.set_nodelay(true);
                broker
                    .counters()
                    .connections_total
                    .fetch_add(1, Ordering::Relaxed);
                let open = OpenConnection::new(broker.clone());
                let broker = broker.clone();
                let shutdown = shutdown.clone();
                let layer = layer.clone();
                connections.spawn(async move {
                    match layer {
                        Layer::Plain(None) => {
                            connection::serve(stream, false, peer, broker.clone(), shutdown).await
                        }
                        Layer::Plain(Some(tls)) => {
                            serve_plain_or_upgrade(stream, peer, &tls, broker.clone(), shutdown).await
                        }
                        Layer::Tls(tls) => serve_tls(stream, peer, &tls, broker.clone(), shutdown).await,
                        Layer::WebSocket(tls) => {
                            serve_websocket(stream, peer, &tls, broker.clone(), shutdown).await
                        }
                    }
                    drop(open);
                });
            }
            Err(err) => {
                // Out of file descriptors and the like: wait, do not spin.
                warn!(error = %err, "failed to accept a connection");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    // No new connection while the open ones close: the port is free at once.
    drop(listener);
    connections.close();
    let open = broker.counters().connections_open.load(Ordering::Relaxed);
    info!(open, "closing connections");
    if tokio::time::timeout(DRAIN_TIMEOUT, connections.wait())
        .await
        .is_err()
    {
        warn!("connections did not close within {DRAIN_TIMEOUT:?}");
    }
}
