//! One client connection: the protocol header, SASL, the AMQP connection, its sessions, and the
//! decision on every link it attaches.

use std::{net::SocketAddr, sync::Arc, sync::atomic::Ordering, time::Duration};

use enmasse_auth::authenticator::{AuthError, Identity};
use enmasse_client::transport::Coalesced;
use enmasse_types::resources::messaging_user::Operation;
use fe2o3_amqp::{
    acceptor::{
        ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerConnectionHandle, ListenerSessionHandle,
        SessionAcceptor,
    },
    types::{
        definitions::{AmqpError, ConnectionError, Error as AmqpErrorValue, Role},
        messaging::{Source, Target, TargetArchetype},
        performatives::Attach,
    },
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, info, warn};

use crate::{
    address::table::ResolveError,
    broker::{Broker, Grant},
    link::{self, CLOSE_TIMEOUT},
    sasl::{self, AMQP_HEADER, SASL_HEADER},
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
    /// The AMQP open failed.
    #[error("failed to open the AMQP connection")]
    Open(#[source] fe2o3_amqp::connection::OpenError),
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
    // A peer that keeps failing to authenticate waits longer and longer before it may try again.
    let delay = broker.throttle().delay(peer.ip(), std::time::Instant::now());
    if !delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return,
        }
    }
    let (identity, mut connection) = match open(stream, encrypted, &broker).await {
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
    debug!(%peer, user = %identity.username, "connection open");
    let identity = Arc::new(identity);
    let sessions = TaskTracker::new();
    let closing = shutdown.child_token();
    loop {
        tokio::select! {
            () = closing.cancelled() => {
                let error = AmqpErrorValue::new(ConnectionError::ConnectionForced, "the broker is shutting down".to_string(), None);
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, connection.close_with_error(error)).await;
                break;
            }
            incoming = connection.next_incoming_session() => {
                let Some(incoming) = incoming else { break };
                match SessionAcceptor::new().accept_incoming_session(incoming, &mut connection).await {
                    Ok(session) => {
                        sessions.spawn(serve_session(session, identity.clone(), broker.clone(), closing.clone()));
                    }
                    Err(err) => {
                        warn!(%peer, error = %err, "failed to begin a session");
                        break;
                    }
                }
            }
        }
    }
    closing.cancel();
    sessions.close();
    sessions.wait().await;
    debug!(%peer, "connection closed");
}

/// Authenticates the client and opens its AMQP connection, within [`HANDSHAKE_TIMEOUT`].
async fn open<S>(
    mut stream: S,
    encrypted: bool,
    broker: &Broker,
) -> Result<(Identity, ListenerConnectionHandle), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug + 'static,
{
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let timed_out = |_| HandshakeError::HandshakeTimeout(HANDSHAKE_TIMEOUT);
    let (identity, replay) = tokio::time::timeout_at(deadline, handshake(&mut stream, encrypted, broker))
        .await
        .map_err(timed_out)??;
    let acceptor = ConnectionAcceptor::builder()
        .container_id(broker.settings().container_id.clone())
        .max_frame_size(65_536u32)
        .build();
    let stream = Coalesced::new(Prefixed::new(replay, stream));
    let connection = tokio::time::timeout_at(deadline, acceptor.accept(stream))
        .await
        .map_err(timed_out)?
        .map_err(HandshakeError::Open)?;
    Ok((identity, connection))
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
        let identity = sasl::negotiate(stream, authenticator.as_ref(), offer_plain)
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

/// Serves one session: every attach is decided here and its link runs in a task of its own.
async fn serve_session(
    mut session: ListenerSessionHandle,
    identity: Arc<Identity>,
    broker: Arc<Broker>,
    closing: CancellationToken,
) {
    let links = TaskTracker::new();
    let kept = link::Kept::default();
    let acceptor = LinkAcceptor::new();
    loop {
        let attach = tokio::select! {
            () = closing.cancelled() => break,
            attach = session.next_incoming_attach() => match attach {
                Some(attach) => attach,
                None => break,
            },
        };
        let mut attach = attach;
        // Clients may leave the terminus they do not address empty (Qpid Proton leaves a
        // receiver's target null); the link needs both.
        attach.source.get_or_insert_with(Default::default);
        attach
            .target
            .get_or_insert_with(|| Box::new(TargetArchetype::Target(Target::default())));
        let name = attach.name.clone();
        match decide(&attach, &identity, &broker) {
            Ok(Decision::Inbound(target, grant)) => {
                match acceptor.accept_incoming_attach(attach, &mut session).await {
                    Ok(LinkEndpoint::Receiver(receiver)) => {
                        links.spawn(link::inbound::run(
                            receiver,
                            target,
                            grant,
                            broker.clone(),
                            closing.clone(),
                            kept.clone(),
                        ));
                    }
                    Ok(LinkEndpoint::Sender(_)) => warn!("a sender attach became a receiver link"),
                    Err(err) => {
                        end_session(&mut session, &name, &err).await;
                        break;
                    }
                }
            }
            Ok(Decision::Outbound(source, grant)) => {
                match acceptor.accept_incoming_attach(attach, &mut session).await {
                    Ok(LinkEndpoint::Sender(sender)) => {
                        links.spawn(link::outbound::run(
                            sender,
                            source,
                            grant,
                            broker.clone(),
                            closing.clone(),
                            kept.clone(),
                        ));
                    }
                    Ok(LinkEndpoint::Receiver(_)) => warn!("a receiver attach became a sender link"),
                    Err(err) => {
                        end_session(&mut session, &name, &err).await;
                        break;
                    }
                }
            }
            Err(error) => {
                broker.counters().attaches_refused.fetch_add(1, Ordering::Relaxed);
                info!(user = %identity.username, error = ?error.description, condition = ?error.condition, "attach refused");
                refuse(attach, error, &acceptor, &mut session).await;
            }
        }
    }
    links.close();
    links.wait().await;
    drop(kept);
}

/// The link acceptor with default settings (no dynamic termini).
type Links = LinkAcceptor<fn(Source) -> Option<Source>, fn(Target) -> Option<Target>>;

/// Ends a session whose link could not be attached, telling the client why.
///
/// fe2o3-amqp keys a session's links by name alone, while AMQP 1.0 (2.6.1) makes a name unique per
/// direction: a client that names its sender and its receiver on one address alike (Qpid Proton
/// does by default) gets this error for the second link.
async fn end_session(
    session: &mut ListenerSessionHandle,
    name: &str,
    err: &(dyn std::error::Error + Send + Sync),
) {
    let description = format!(
        "failed to attach link {name:?}: {err}; link names must be unique within a session here, \
         whatever the direction of the link"
    );
    info!("{description}");
    let error = AmqpErrorValue::new(AmqpError::NotImplemented, description, None);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, session.end_with_error(error)).await;
}

/// What an attach leads to.
enum Decision {
    /// The client sends: messages flow into this target.
    Inbound(crate::address::table::SendTarget, Grant),
    /// The client receives: messages flow out of this source.
    Outbound(crate::address::table::ReceiveSource, Grant),
}

/// Decides an attach: the address must exist, suit the direction, and be allowed for the user.
fn decide(attach: &Attach, identity: &Identity, broker: &Arc<Broker>) -> Result<Decision, AmqpErrorValue> {
    let table = broker.table();
    match attach.role {
        Role::Sender => {
            let address = match attach.target.as_deref() {
                Some(TargetArchetype::Target(target)) => target.address.clone(),
                #[allow(
                    unreachable_patterns,
                    reason = "coordinators exist with fe2o3's transaction feature"
                )]
                _ => None,
            };
            let address = address.ok_or_else(|| {
                not_implemented("a sender link needs a target address (no anonymous relay)")
            })?;
            let grant = authorize(broker, &identity.username, Operation::Send, &address)?;
            let target = table.resolve_target(&address).map_err(resolve_error)?;
            Ok(Decision::Inbound(target, grant))
        }
        Role::Receiver => {
            let source = attach.source.as_deref();
            if source.is_some_and(|s| s.dynamic) {
                return Err(not_implemented("dynamic sources are not supported"));
            }
            let address = source
                .and_then(|s| s.address.clone())
                .ok_or_else(|| not_implemented("a receiver link needs a source address"))?;
            let grant = authorize(broker, &identity.username, Operation::Recv, &address)?;
            let source = table.resolve_source(&address).map_err(resolve_error)?;
            let config = source.entry.config();
            if let Some(max) = config.max_consumers
                && source.entry.receivers.load(Ordering::Relaxed) >= u64::from(max)
            {
                return Err(AmqpErrorValue::new(
                    AmqpError::ResourceLimitExceeded,
                    format!("subscription {address:?} allows {max} consumer(s) at once"),
                    None,
                ));
            }
            Ok(Decision::Outbound(source, grant))
        }
    }
}

/// Checks the user's current rights and records the grant that a later config can revoke.
fn authorize(
    broker: &Arc<Broker>,
    user: &str,
    operation: Operation,
    address: &str,
) -> Result<Grant, AmqpErrorValue> {
    let allowed = || {
        broker
            .authenticator()
            .policy(user)
            .is_some_and(|p| p.allows(operation, address))
    };
    let action = if operation == Operation::Send {
        "send to"
    } else {
        "receive from"
    };
    if !allowed() {
        return Err(unauthorized(user, action, address));
    }
    let grant = broker.grant(user, operation, address);
    // A config applied meanwhile is seen either here or by its own scan of the grants.
    if !allowed() {
        return Err(unauthorized(user, action, address));
    }
    Ok(grant)
}

/// Answers an attach with a null terminus and detaches it with the error, as AMQP prescribes.
async fn refuse(
    mut attach: Attach,
    error: AmqpErrorValue,
    acceptor: &Links,
    session: &mut ListenerSessionHandle,
) {
    match attach.role {
        Role::Sender => attach.target = None,
        Role::Receiver => attach.source = None,
    }
    let accepted =
        tokio::time::timeout(CLOSE_TIMEOUT, acceptor.accept_incoming_attach(attach, session)).await;
    let closed = match accepted {
        Ok(Ok(LinkEndpoint::Receiver(receiver))) => {
            tokio::time::timeout(CLOSE_TIMEOUT, receiver.close_with_error(error))
                .await
                .map(|r| r.is_ok())
        }
        Ok(Ok(LinkEndpoint::Sender(sender))) => {
            tokio::time::timeout(CLOSE_TIMEOUT, sender.close_with_error(error))
                .await
                .map(|r| r.is_ok())
        }
        Ok(Err(_)) | Err(_) => Ok(false),
    };
    if !matches!(closed, Ok(true)) {
        debug!("the refused link did not close cleanly");
    }
}

fn resolve_error(error: ResolveError) -> AmqpErrorValue {
    let condition = match error {
        ResolveError::NotFound(_) => AmqpError::NotFound,
        ResolveError::NotAllowed(_) => AmqpError::NotAllowed,
    };
    AmqpErrorValue::new(condition, error.to_string(), None)
}

fn unauthorized(user: &str, action: &str, address: &str) -> AmqpErrorValue {
    AmqpErrorValue::new(
        AmqpError::UnauthorizedAccess,
        format!("user {user:?} may not {action} address {address:?}"),
        None,
    )
}

fn not_implemented(what: &str) -> AmqpErrorValue {
    AmqpErrorValue::new(AmqpError::NotImplemented, what.to_owned(), None)
}
