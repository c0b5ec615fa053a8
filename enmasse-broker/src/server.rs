//! The AMQP listeners: `amqp` and `amqps` (TLS from the first byte, as clients open port 5671).
//! Each accepts connections until shutdown, then closes them and waits for them.

use std::{
    path::PathBuf,
    sync::{Arc, RwLock, atomic::Ordering},
    time::Duration,
};

use enmasse_auth::tls::ServerIdentity;
use enmasse_types::error::one_line;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{info, warn};

use crate::{broker::Broker, connection};

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

    fn acceptor(&self) -> Option<TlsAcceptor> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// How often [`follow_certificate_files`] looks at the files.
const CERTIFICATE_POLL: Duration = Duration::from_secs(1);

/// Serves the certificate in `dir` (see [`ServerIdentity::from_files`]) on `tls` until `shutdown`,
/// and follows it: a changed certificate (a renewal, a rotated Secret) is served to new
/// connections. A certificate that cannot be read or used leaves the last good one in place.
pub async fn follow_certificate_files(dir: PathBuf, tls: Arc<Tls>, shutdown: CancellationToken) {
    let mut served: Option<ServerIdentity> = None;
    let mut reported: Option<String> = None;
    loop {
        let read = ServerIdentity::from_files(&dir)
            .and_then(|identity| identity.server_config().map(|config| (identity, config)));
        match read {
            Ok((identity, config)) if served.as_ref() != Some(&identity) => {
                tls.set(config);
                info!(dir = %dir.display(), "amqps serves the certificate in the directory");
                served = Some(identity);
                reported = None;
            }
            Ok(_) => {}
            Err(err) => {
                let problem = one_line(&err);
                if reported.as_ref() != Some(&problem) {
                    warn!(dir = %dir.display(), kept = served.is_some(), "{problem}");
                    reported = Some(problem);
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(CERTIFICATE_POLL) => {}
        }
    }
}

/// Accepts plain AMQP connections on `listener` until `shutdown` is cancelled; then closes every
/// connection (they are told the broker is shutting down) and waits for them, at most
/// [`DRAIN_TIMEOUT`].
pub async fn run(listener: TcpListener, broker: Arc<Broker>, shutdown: CancellationToken) {
    accept(listener, broker, None, shutdown).await;
}

/// Accepts AMQP connections over TLS on `listener`, like [`run`]. Until a certificate is set,
/// connections are closed at once.
pub async fn run_tls(listener: TcpListener, broker: Arc<Broker>, tls: Arc<Tls>, shutdown: CancellationToken) {
    accept(listener, broker, Some(tls), shutdown).await;
}

async fn accept(
    listener: TcpListener,
    broker: Arc<Broker>,
    tls: Option<Arc<Tls>>,
    shutdown: CancellationToken,
) {
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
                let counters = broker.counters();
                counters.connections_total.fetch_add(1, Ordering::Relaxed);
                counters.connections_open.fetch_add(1, Ordering::Relaxed);
                let broker = broker.clone();
                let shutdown = shutdown.clone();
                let acceptor = tls.as_ref().map(|tls| tls.acceptor());
                connections.spawn(async move {
                    match acceptor {
                        None => connection::serve(stream, false, peer, broker.clone(), shutdown).await,
                        Some(None) => {
                            info!(%peer, "connection refused: no TLS certificate is configured yet")
                        }
                        Some(Some(acceptor)) => {
                            let handshake =
                                tokio::time::timeout(connection::HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                            match handshake.await {
                                Ok(Ok(stream)) => {
                                    connection::serve(stream, true, peer, broker.clone(), shutdown).await
                                }
                                Ok(Err(err)) => info!(%peer, error = %err, "TLS handshake failed"),
                                Err(_) => info!(%peer, "TLS handshake timed out"),
                            }
                        }
                    }
                    broker.counters().connections_open.fetch_sub(1, Ordering::Relaxed);
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
