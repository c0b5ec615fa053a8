//! One client connection's handshake: the protocol header and SASL, before the AMQP engine
//! ([`crate::engine`]) takes the connection over.

use std::{net::SocketAddr, sync::Arc, sync::atomic::Ordering, time::Duration};

use enmasse_auth::authenticator::{AuthError, Identity};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::{
    broker::Broker,
    engine,
    sasl::{self, AMQP_HEADER, SASL_HEADER},
    throttle::Admission,
    transport::Prefixed,
};

/// How long a client has to send its protocol header, finish SASL and open its connection.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection ended before it was open.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The client was too slow to open.
    #[error("the client did not open the connection within {0:?}")]
    HandshakeTimeout(Duration),
    /// Reading or writing the socket failed.
    #[error("failed to read the protocol header")]
    Io(#[source] std::io::Error),
    /// The client spoke something other than AMQP 1.0 (or TLS on a plain port).
    #[error("unsupported protocol header {0:?}")]
    Protocol([u8; 8]),
    /// The client skipped SASL where it is required.
    #[error("the client skipped SASL, which this address space requires")]
    SaslRequired,
    /// SASL failed.
    #[error("SASL failed")]
    Sasl(#[source] sasl::SaslError),
}

/// Serves one client connection until it closes or the broker shuts down.
/// `encrypted` says whether the stream is TLS: a password is asked for in clear (SASL PLAIN) only
/// over TLS, unless the broker's settings allow it.
pub async fn serve<S>(
    stream: S,
    encrypted: bool,
    peer: SocketAddr,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug + 'static,
{
    // A peer that keeps failing to authenticate waits longer and longer before it may try again,
    // its connections one after the other.
    let delay = match broker.throttle().admit(peer.ip(), std::time::Instant::now()) {
        Admission::After(delay) => delay,
        Admission::Refused => {
            broker
                .counters()
                .authentication_failures
                .fetch_add(1, Ordering::Relaxed);
            info!(%peer, "connection refused: its address failed to authenticate too often of late");
            return;
        }
    };
    if !delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return,
        }
    }
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let mut stream = stream;
    let handshake = tokio::time::timeout_at(deadline, handshake(&mut stream, encrypted, &broker));
    let outcome = handshake
        .await
        .unwrap_or(Err(HandshakeError::HandshakeTimeout(HANDSHAKE_TIMEOUT)));
    let (identity, replay) = match outcome {
        Ok(opened) => opened,
        Err(err) => {
            if let HandshakeError::Sasl(sasl::SaslError::Rejected(reason)) = &err {
                broker
                    .counters()
                    .authentication_failures
                    .fetch_add(1, Ordering::Relaxed);
                // An unavailable service is not the peer's fault; anything else may be guessing.
                if !matches!(reason, AuthError::Unavailable(_)) {
                    broker.throttle().failed(peer.ip(), std::time::Instant::now());
                }
            }
            info!(%peer, error = %enmasse_types::error::one_line(&err), "connection refused");
            return;
        }
    };
    broker.throttle().succeeded(peer.ip());
    debug!(%peer, user = %identity.username, "connection authenticated");
    let stream = Prefixed::new(replay, stream);
    engine::run(stream, Arc::new(identity), peer, broker, shutdown).await;
    debug!(%peer, "connection closed");
}

/// Reads the protocol header and authenticates the client. Returns the identity and the bytes the
/// AMQP engine must read again (the header, when the client skipped SASL).
async fn handshake<S>(
    stream: &mut S,
    encrypted: bool,
    broker: &Broker,
) -> Result<(Identity, Vec<u8>), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await.map_err(HandshakeError::Io)?;
    let authenticator = broker.authenticator();
    if header == SASL_HEADER {
        // Only `none` services, where nobody has a password, offer PLAIN in clear by default.
        let offer_plain =
            encrypted || broker.settings().plain_without_tls || authenticator.anonymous().is_some();
        let identity = sasl::negotiate(stream, authenticator.as_ref(), offer_plain, broker.throttle())
            .await
            .map_err(HandshakeError::Sasl)?;
        return Ok((identity, Vec::new()));
    }
    if header == AMQP_HEADER {
        return match authenticator.anonymous() {
            Some(identity) => Ok((identity, header.to_vec())),
            None => {
                // Tell the client which layer is required, then close (AMQP 1.0, 5.3.1).
                refuse_with_header(stream).await;
                Err(HandshakeError::SaslRequired)
            }
        };
    }
    refuse_with_header(stream).await;
    Err(HandshakeError::Protocol(header))
}

/// Answers with the protocol header the broker requires and closes gracefully: what the client
/// already sent is read and dropped first, so that closing does not reset the connection before
/// the client has read the answer.
async fn refuse_with_header<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    let _ = stream.write_all(&SASL_HEADER).await;
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 1024];
    let drain = async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}
