//! Talking to a space's broker over its management API: pushing the configuration it should serve
//! (`PUT /config`) and reading back what it really serves (`GET /report`).
//!
//! The operator reaches the broker's pod directly, by its IP: the Service routes only to ready
//! pods, and a broker is ready only once it has a configuration, which it can only get from here.

use std::{net::IpAddr, time::Duration};

use enmasse_types::broker_config::{BrokerConfig, BrokerReport};
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Method, Request, StatusCode,
    body::Bytes,
    header::{AUTHORIZATION, CONTENT_TYPE, HOST},
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::workload::MANAGEMENT_PORT;

/// How long one request to a broker may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read from a broker.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

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
}

impl BrokerEndpoint {
    /// The management API of pod `pod` at `ip`, on the broker's management port.
    pub fn new(pod: String, ip: IpAddr, token: String) -> Self {
        Self {
            pod,
            ip,
            port: MANAGEMENT_PORT,
            token,
        }
    }
}

impl std::fmt::Debug for BrokerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerEndpoint")
            .field("pod", &self.pod)
            .field("ip", &self.ip)
            .field("port", &self.port)
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

    /// What the broker really serves.
    fn report<'a>(&'a self, broker: &'a BrokerEndpoint) -> BoxFuture<'a, Result<BrokerReport, BrokerError>>;
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
        Box::pin(async move {
            let body = serde_json::to_vec(config).map_err(|source| BrokerError::Encode {
                pod: broker.pod.clone(),
                source,
            })?;
            request(broker, Method::PUT, "/config", body).await.map(drop)
        })
    }

    fn report<'a>(&'a self, broker: &'a BrokerEndpoint) -> BoxFuture<'a, Result<BrokerReport, BrokerError>> {
        Box::pin(async move {
            let body = request(broker, Method::GET, "/report", Vec::new()).await?;
            serde_json::from_slice(&body).map_err(|source| BrokerError::InvalidReport {
                pod: broker.pod.clone(),
                source,
            })
        })
    }
}

/// One request; the answer's body when the status is 2xx.
async fn request(
    broker: &BrokerEndpoint,
    method: Method,
    path: &'static str,
    body: Vec<u8>,
) -> Result<Bytes, BrokerError> {
    let exchange = exchange(broker, method, path, body);
    let (status, answer) =
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| BrokerError::Timeout {
                pod: broker.pod.clone(),
                path,
            })??;
    if status.is_success() {
        return Ok(answer);
    }
    Err(BrokerError::Refused {
        pod: broker.pod.clone(),
        path,
        status: status.as_u16(),
        answer: String::from_utf8_lossy(&answer).trim().to_owned(),
    })
}

async fn exchange(
    broker: &BrokerEndpoint,
    method: Method,
    path: &'static str,
    body: Vec<u8>,
) -> Result<(StatusCode, Bytes), BrokerError> {
    let http = |source: Box<dyn std::error::Error + Send + Sync>| BrokerError::Http {
        pod: broker.pod.clone(),
        path,
        source,
    };
    let stream = TcpStream::connect((broker.ip, broker.port))
        .await
        .map_err(|source| BrokerError::Unreachable {
            pod: broker.pod.clone(),
            ip: broker.ip,
            port: broker.port,
            source,
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http(e.into()))?;
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, broker.pod.as_str())
        .header(AUTHORIZATION, format!("Bearer {}", broker.token.trim()))
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| http(e.into()))?;
    let exchange = async {
        let response = sender.send_request(request).await.map_err(|e| http(e.into()))?;
        let status = response.status();
        let answer = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(http)?
            .to_bytes();
        Ok((status, answer))
    };
    tokio::pin!(connection);
    tokio::select! {
        result = exchange => result,
        // The connection ends first only when it failed; `exchange` then reports it too.
        Err(err) = &mut connection => Err(http(err.into())),
    }
}

#[cfg(test)]
mod tests;
