//! The AMQP listener: accepts connections until shutdown, then closes them and waits for them.

use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{info, warn};

use crate::{broker::Broker, connection};

/// How long open connections get to close once shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts AMQP connections on `listener` until `shutdown` is cancelled; then closes every
/// connection (they are told the broker is shutting down) and waits for them, at most
/// [`DRAIN_TIMEOUT`].
pub async fn run(listener: TcpListener, broker: Arc<Broker>, shutdown: CancellationToken) {
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
                connections.spawn(async move {
                    connection::serve(stream, peer, broker.clone(), shutdown).await;
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
