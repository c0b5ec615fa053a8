//! Opening a connection to an EnMasse endpoint: TCP, TLS with the config's CA (rustls), SASL with
//! the config's credentials, then one AMQP session on which senders and receivers attach.

use std::sync::Arc;

use fe2o3_amqp::{
    connection::{ConnectionHandle, OpenError},
    sasl_profile::SaslProfile,
    session::SessionHandle,
    types::{
        definitions::{self, ErrorCondition},
        primitives::Symbol,
    },
};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

use crate::{
    config::{Credentials, MessagingConfig, SERVICE_ACCOUNT_USER},
    link::{Receiver, Sender},
    transport::Coalesced,
};

/// Why a messaging operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The TCP connection could not be made.
    #[error("failed to connect to {endpoint}")]
    Connect {
        /// `host:port`.
        endpoint: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// TLS could not be set up.
    #[error("failed to set up TLS with {endpoint}: {reason}")]
    Tls {
        /// `host:port`.
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
    /// The service-account token could not be read.
    #[error("failed to read the service-account token {}", path.display())]
    Token {
        /// The token file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The broker refused the login.
    #[error("{endpoint} refused the login of {user}: {reason}")]
    Login {
        /// `host:port`.
        endpoint: String,
        /// Who tried.
        user: String,
        /// The SASL outcome.
        reason: String,
    },
    /// The AMQP connection could not be opened.
    #[error("failed to open an AMQP connection to {endpoint}")]
    Open {
        /// `host:port`.
        endpoint: String,
        /// The cause.
        #[source]
        source: OpenError,
    },
    /// Opening took longer than the config allows.
    #[error("timed out after {after:?} opening a connection to {endpoint}")]
    Timeout {
        /// `host:port`.
        endpoint: String,
        /// The timeout.
        after: std::time::Duration,
    },
    /// The session could not begin.
    #[error("failed to begin a session with {endpoint}")]
    Session {
        /// `host:port`.
        endpoint: String,
        /// The cause.
        #[source]
        source: fe2o3_amqp::session::BeginError,
    },
    /// The broker refused a link, or closed it.
    #[error("the broker refused to let this client {operation} {address}: {reason}")]
    Refused {
        /// `send to` or `receive from`.
        operation: &'static str,
        /// The address.
        address: String,
        /// The broker's error condition and description.
        reason: String,
    },
    /// A link failed for a reason other than the broker's refusal.
    #[error("failed to {operation} {address}: {reason}")]
    Link {
        /// What was tried: `attach to`, `send to`, `receive from`, `settle a delivery from`.
        operation: &'static str,
        /// The address.
        address: String,
        /// What went wrong.
        reason: String,
    },
    /// The broker stayed unreachable through every attempt a [`crate::Backoff`] allows.
    #[error("gave up reaching {endpoint} after {attempts} attempts")]
    GaveUp {
        /// `host:port`.
        endpoint: String,
        /// How many connections were tried.
        attempts: u32,
        /// Why the last one failed.
        #[source]
        last: Box<ClientError>,
    },
    /// A request got no reply.
    #[error("request {id} to {address} was not answered: {reason}")]
    NotAnswered {
        /// Where the request was sent.
        address: String,
        /// Its message id.
        id: String,
        /// Why: not taken by the broker, or no reply in time.
        reason: String,
    },
    /// A delivery was settled after the connection that brought it was lost. The broker took it
    /// back when the connection went, and delivers it again.
    #[error(
        "failed to settle a delivery from {address}: the connection that brought it is gone, and the broker delivers it again"
    )]
    Stale {
        /// The address.
        address: String,
    },
}

impl ClientError {
    /// Whether trying again on a new connection may succeed: the network or the broker went away,
    /// as opposed to a refusal or a configuration error that would only repeat.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::Open { .. }
            | Self::Timeout { .. }
            | Self::Session { .. }
            | Self::Link { .. } => true,
            Self::Tls { .. }
            | Self::Token { .. }
            | Self::Login { .. }
            | Self::Refused { .. }
            | Self::GaveUp { .. }
            | Self::NotAnswered { .. }
            | Self::Stale { .. } => false,
        }
    }
}

/// An open connection with one session.
pub struct Connection {
    connection: ConnectionHandle<()>,
    session: SessionHandle<()>,
    endpoint: String,
    links: u64,
}

impl Connection {
    /// Connects, logs in and begins a session, within the config's connect timeout.
    pub async fn open(config: &MessagingConfig) -> Result<Self, ClientError> {
        let endpoint = endpoint(config);
        let mut connection = tokio::time::timeout(config.connect_timeout, open_handle(config))
            .await
            .map_err(|_| ClientError::Timeout {
                endpoint: endpoint.clone(),
                after: config.connect_timeout,
            })??;
        let session = fe2o3_amqp::Session::begin(&mut connection)
            .await
            .map_err(|source| ClientError::Session {
                endpoint: endpoint.clone(),
                source,
            })?;
        Ok(Self {
            connection,
            session,
            endpoint,
            links: 0,
        })
    }

    /// Attaches a sender to `address`.
    pub async fn sender(&mut self, address: &str) -> Result<Sender, ClientError> {
        self.links += 1;
        let name = format!("sender-{}", self.links);
        Sender::attach(&mut self.session, name, address).await
    }

    /// Attaches a receiver to `address`, which keeps `credit` messages coming ahead of the
    /// application.
    pub async fn receiver(&mut self, address: &str, credit: u32) -> Result<Receiver, ClientError> {
        self.links += 1;
        let name = format!("receiver-{}", self.links);
        Receiver::attach(&mut self.session, name, address, credit).await
    }

    /// Whether the connection and its session are still up, as far as this client has seen.
    pub fn is_open(&self) -> bool {
        !self.connection.is_closed() && !self.session.is_ended()
    }

    /// `host:port` of the broker.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Ends the session and closes the connection.
    pub async fn close(mut self) -> Result<(), ClientError> {
        let failed = |reason: String| ClientError::Link {
            operation: "close the connection to",
            address: self.endpoint.clone(),
            reason,
        };
        let _ = self.session.end().await;
        self.connection.close().await.map_err(|e| failed(e.to_string()))
    }
}

/// `host:port`, as written in messages.
pub(crate) fn endpoint(config: &MessagingConfig) -> String {
    if config.host.contains(':') {
        format!("[{}]:{}", config.host, config.port)
    } else {
        format!("{}:{}", config.host, config.port)
    }
}

/// Opens the AMQP connection `config` describes, without a session. Nagle's algorithm is off, so
/// small flow and disposition frames never wait for the peer's delayed acknowledgement, and frames
/// are written coalesced.
pub(crate) async fn open_handle(config: &MessagingConfig) -> Result<ConnectionHandle<()>, ClientError> {
    let endpoint = endpoint(config);
    let stream = tokio::net::TcpStream::connect((config.host.as_str(), config.port))
        .await
        .map_err(|source| ClientError::Connect {
            endpoint: endpoint.clone(),
            source,
        })?;
    stream.set_nodelay(true).map_err(|source| ClientError::Connect {
        endpoint: endpoint.clone(),
        source,
    })?;
    let container_id = config
        .container_id
        .clone()
        .unwrap_or_else(|| format!("enmasse-client-{:016x}", rand_id()));
    let (profile, user) = sasl_profile(&config.credentials)?;
    let mut builder = fe2o3_amqp::Connection::builder()
        .container_id(container_id)
        .hostname(config.host.as_str());
    if let Some(profile) = profile {
        builder = builder.sasl_profile(profile);
    }
    let opened = match &config.tls_ca {
        Some(ca) => {
            let connector = tls_connector(ca).map_err(|reason| ClientError::Tls {
                endpoint: endpoint.clone(),
                reason,
            })?;
            let name = ServerName::try_from(config.host.clone()).map_err(|e| ClientError::Tls {
                endpoint: endpoint.clone(),
                reason: e.to_string(),
            })?;
            let stream = connector
                .connect(name, stream)
                .await
                .map_err(|e| ClientError::Tls {
                    endpoint: endpoint.clone(),
                    reason: e.to_string(),
                })?;
            builder.open_with_stream(Coalesced::new(stream)).await
        }
        None => builder.open_with_stream(Coalesced::new(stream)).await,
    };
    opened.map_err(|source| match source {
        OpenError::SaslError { code, .. } => ClientError::Login {
            endpoint,
            user,
            reason: format!("SASL outcome {code:?}"),
        },
        source => ClientError::Open { endpoint, source },
    })
}

/// The SASL profile for `credentials`, and who logs in, for messages.
fn sasl_profile(credentials: &Credentials) -> Result<(Option<SaslProfile>, String), ClientError> {
    Ok(match credentials {
        Credentials::Anonymous => (Some(SaslProfile::Anonymous), "anonymous".to_owned()),
        Credentials::Plain { username, password } => (
            Some(SaslProfile::Plain {
                username: username.clone(),
                password: password.clone(),
            }),
            username.clone(),
        ),
        Credentials::Scram { username, password } => (
            Some(SaslProfile::ScramSha256(
                fe2o3_amqp::sasl_profile::SaslScramSha256::new(username.clone(), password.clone()),
            )),
            username.clone(),
        ),
        Credentials::ServiceAccount { token_file } => {
            let token = std::fs::read_to_string(token_file).map_err(|source| ClientError::Token {
                path: token_file.clone(),
                source,
            })?;
            (
                Some(SaslProfile::Plain {
                    username: SERVICE_ACCOUNT_USER.to_owned(),
                    password: token.trim().to_owned(),
                }),
                "the service account".to_owned(),
            )
        }
    })
}

/// A TLS connector trusting the certificates in `ca_pem`.
fn tls_connector(ca_pem: &[u8]) -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| format!("the CA is not PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("the CA certificate cannot be used: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no CA certificate to trust was given".to_owned());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// An identifier unlikely to repeat, for container ids.
fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// A number in `[0, 1)`, different at every call, for jitter.
pub(crate) fn rand_fraction() -> f64 {
    (rand_id() >> 11) as f64 / (1u64 << 53) as f64
}

/// `condition: description`, as the broker said it.
pub(crate) fn describe(error: &definitions::Error) -> String {
    let condition = match &error.condition {
        ErrorCondition::AmqpError(e) => Symbol::from(e),
        ErrorCondition::ConnectionError(e) => Symbol::from(e),
        ErrorCondition::SessionError(e) => Symbol::from(e),
        ErrorCondition::LinkError(e) => Symbol::from(e),
        ErrorCondition::Custom(symbol) => symbol.clone(),
    };
    let condition = condition.as_str().to_owned();
    match &error.description {
        Some(description) => format!("{condition}: {description}"),
        None => condition,
    }
}
