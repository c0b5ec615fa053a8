//! Talking to a space's broker over its management API: pushing the configuration it should serve
//! (`PUT /config`) and reading back what it really serves (`GET /report`).
//!
//! The operator reaches the broker's pod directly, by its IP: the Service routes only to ready
//! pods, and a broker is ready only once it has a configuration, which it can only get from here.
//! It talks TLS, trusting only the space's CA, and verifies that the certificate names the pod
//! (see [`InfraNames::management_host`](crate::names::InfraNames::management_host)).

use std::{net::IpAddr, time::Duration};

use enmasse_client::management::{Management, ManagementError, ManagementTls};
use enmasse_types::{broker_config::BrokerConfig, config_patch::ConfigPatch, report_changes::ReportChanges};
use futures_util::future::BoxFuture;
use hyper::{Method, body::Bytes};

use crate::workload::MANAGEMENT_PORT;

/// How long one request to a broker may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Where a broker's management API is, and the token it asks for.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    /// The broker pod's name, for messages.
    pub pod: String,
    /// The pod's IP.
    pub ip: IpAddr,
    /// The management port.
    pub port: u16,
    /// The management token.
    pub token: String,
    /// The space's CA (PEM), the only one the broker's certificate is trusted from.
    pub ca_pem: String,
    /// The name the broker's certificate must carry.
    pub server_name: String,
}

impl BrokerEndpoint {
    /// The management API of pod `pod` at `ip`, on the broker's management port, with a
    /// certificate for `server_name` from the CA `ca_pem`.
    pub fn new(pod: String, ip: IpAddr, token: String, ca_pem: String, server_name: String) -> Self {
        Self {
            pod,
            ip,
            port: MANAGEMENT_PORT,
            token,
            ca_pem,
            server_name,
        }
    }
}

impl std::fmt::Debug for BrokerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerEndpoint")
            .field("pod", &self.pod)
            .field("ip", &self.ip)
            .field("port", &self.port)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Why a broker could not be asked or told something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// No connection could be made.
    #[error("failed to reach the broker {pod} at {ip}:{port}")]
    Unreachable {
        /// The broker pod.
        pod: String,
        /// Its IP.
        ip: IpAddr,
        /// The management port.
        port: u16,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The broker did not answer in time.
    #[error("the broker {pod} did not answer {path} within {TIMEOUT:?}")]
    Timeout {
        /// The broker pod.
        pod: String,
        /// The request's path.
        path: &'static str,
    },
    /// The broker's certificate is not one the space's CA issued for it, or the CA is unusable.
    #[error("failed to verify the management certificate of the broker {pod}")]
    Untrusted {
        /// The broker pod.
        pod: String,
        /// The cause.
        #[source]
        source: ManagementError,
    },
    /// The HTTP exchange failed.
    #[error("the broker {pod} broke off {path}")]
    Http {
        /// The broker pod.
        pod: String,
        /// The request's path.
        path: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The broker refused the request; its answer says why.
    #[error("the broker {pod} refused {path} ({status}): {answer}")]
    Refused {
        /// The broker pod.
        pod: String,
        /// The request's path.
        path: &'static str,
        /// The HTTP status.
        status: u16,
        /// The broker's answer.
        answer: String,
    },
    /// The config could not be encoded.
    #[error("failed to encode the config for the broker {pod}")]
    Encode {
        /// The broker pod.
        pod: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The broker's report could not be read.
    #[error("the broker {pod} sent a report that cannot be read")]
    InvalidReport {
        /// The broker pod.
        pod: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// The brokers' management API, behind a trait so that reconcile scenarios can stand a broker in.
pub trait Brokers: Send + Sync + 'static {
    /// Applies `config` on the broker.
    fn push<'a>(
        &'a self,
        broker: &'a BrokerEndpoint,
        config: &'a BrokerConfig,
    ) -> BoxFuture<'a, Result<(), BrokerError>>;

    /// Changes the config the broker serves by `patch`; refused (409) unless it serves the
    /// patch's base.
    fn patch<'a>(
        &'a self,
        broker: &'a BrokerEndpoint,
        patch: &'a ConfigPatch,
    ) -> BoxFuture<'a, Result<(), BrokerError>>;

    /// What the broker really serves, as changes since the point `since` an earlier answer gave
    /// (`None`: all of it, with a point to ask from).
    fn report<'a>(
        &'a self,
        broker: &'a BrokerEndpoint,
        since: Option<&'a str>,
    ) -> BoxFuture<'a, Result<ReportChanges, BrokerError>>;
}

/// The management API over HTTP/1.1, one connection per request.
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpBrokers;

impl Brokers for HttpBrokers {
    fn push<'a>(
        &'a self,
        broker: &'a BrokerEndpoint,
        config: &'a BrokerConfig,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(send_config(broker, Method::PUT, config))
    }

    fn patch<'a>(
        &'a self,
        broker: &'a BrokerEndpoint,
        patch: &'a ConfigPatch,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(send_config(broker, Method::PATCH, patch))
    }

    fn report<'a>(
        &'a self,
        broker: &'a BrokerEndpoint,
        since: Option<&'a str>,
    ) -> BoxFuture<'a, Result<ReportChanges, BrokerError>> {
        Box::pin(async move {
            let query = format!("?since={}", since.unwrap_or_default());
            let body = request(broker, Method::GET, "/report", &query, Vec::new()).await?;
            serde_json::from_slice(&body).map_err(|source| BrokerError::InvalidReport {
                pod: broker.pod.clone(),
                source,
            })
        })
    }
}

/// Sends `body` as JSON to `/config` with `method`: a whole config or a patch.
async fn send_config(
    broker: &BrokerEndpoint,
    method: Method,
    body: &impl serde::Serialize,
) -> Result<(), BrokerError> {
    let body = serde_json::to_vec(body).map_err(|source| BrokerError::Encode {
        pod: broker.pod.clone(),
        source,
    })?;
    request(broker, method, "/config", "", body).await.map(drop)
}

/// One request through the management client; its errors are told with the broker's pod.
async fn request(
    broker: &BrokerEndpoint,
    method: Method,
    path: &'static str,
    query: &str,
    body: Vec<u8>,
) -> Result<Bytes, BrokerError> {
    let pod = broker.pod.clone();
    let tls =
        ManagementTls::new(&broker.ca_pem, &broker.server_name).map_err(|source| BrokerError::Untrusted {
            pod: pod.clone(),
            source,
        })?;
    let management = Management {
        address: std::net::SocketAddr::new(broker.ip, broker.port).to_string(),
        token: Some(broker.token.clone()),
        timeout: TIMEOUT,
        tls: Some(tls),
    };
    management
        .request(method, &format!("{path}{query}"), body)
        .await
        .map_err(|err| match err {
            ManagementError::Unreachable(_, source) => BrokerError::Unreachable {
                pod,
                ip: broker.ip,
                port: broker.port,
                source,
            },
            ManagementError::Timeout(..) => BrokerError::Timeout { pod, path },
            ManagementError::Refused { status, answer, .. } => BrokerError::Refused {
                pod,
                path,
                status,
                answer,
            },
            ManagementError::Http(_, source) => BrokerError::Http { pod, path, source },
            err @ (ManagementError::Tls(..) | ManagementError::Ca(_)) => {
                BrokerError::Untrusted { pod, source: err }
            }
            other => BrokerError::Http {
                pod,
                path,
                source: Box::new(other),
            },
        })
}

#[cfg(test)]
mod tests;
