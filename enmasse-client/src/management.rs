//! A client of a broker's management API: `enmasse status` reads `GET /status` with it, and the
//! operator pushes `PUT /config` and reads `GET /report` with it. One HTTP/1.1 request per
//! connection, with the bearer token the broker asks for, bounded in time and in size; in TLS,
//! verifying the broker's certificate, when given a [`ManagementTls`].

use std::{sync::Arc, time::Duration};

use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Method, Request,
    body::Bytes,
    header::{AUTHORIZATION, CONTENT_TYPE, HOST},
};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};

/// The largest answer read.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// Why a request to the management API failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagementError {
    /// No connection could be made.
    #[error("failed to reach the management API at {0}")]
    Unreachable(String, #[source] std::io::Error),
    /// It did not answer in time.
    #[error("the management API at {0} did not answer within {1:?}")]
    Timeout(String, Duration),
    /// The HTTP exchange failed.
    #[error("the management API at {0} broke off the request")]
    Http(String, #[source] Box<dyn std::error::Error + Send + Sync>),
    /// It refused the request.
    #[error("the management API at {address} answered {path} with {status}: {answer}")]
    Refused {
        /// `host:port`.
        address: String,
        /// The path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// What it said.
        answer: String,
    },
    /// The answer is not JSON.
    #[error("the management API at {0} answered with something other than JSON")]
    NotJson(String, #[source] serde_json::Error),
    /// The TLS handshake failed: the certificate is not the one expected, say.
    #[error("failed to establish TLS with the management API at {0}")]
    Tls(String, #[source] std::io::Error),
    /// The CA to verify the broker with cannot be read.
    #[error("failed to read the CA certificate that verifies the management API")]
    Ca(#[source] rustls::Error),
}

/// How to reach a management API in TLS: whom to trust, and the name its certificate must carry.
#[derive(Clone, Debug)]
pub struct ManagementTls {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
}

impl ManagementTls {
    /// Trusts only `ca_pem` (PEM, one or more certificates), for a certificate that names
    /// `server_name`, whatever address the connection goes to.
    pub fn new(ca_pem: &str, server_name: &str) -> Result<Self, ManagementError> {
        let invalid = |what: &str| ManagementError::Ca(rustls::Error::General(what.to_owned()));
        let mut roots = rustls::RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let certificate = certificate.map_err(|_| invalid("the CA is not PEM"))?;
            roots.add(certificate).map_err(ManagementError::Ca)?;
        }
        if roots.is_empty() {
            return Err(invalid("the CA holds no certificate"));
        }
        let config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(ManagementError::Ca)?
                .with_root_certificates(roots)
                .with_no_client_auth();
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| invalid("the server name is not a DNS name"))?;
        Ok(Self {
            config: Arc::new(config),
            server_name,
        })
    }
}

/// A broker's management API at `host:port`, with the token it asks for, if any.
#[derive(Clone, Debug)]
pub struct Management {
    /// `host:port`.
    pub address: String,
    /// The bearer token.
    pub token: Option<String>,
    /// How long a request may take, connecting included.
    pub timeout: Duration,
    /// TLS, if the API serves it.
    pub tls: Option<ManagementTls>,
}

impl Management {
    /// `GET path`, read as JSON.
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value, ManagementError> {
        let answer = self.request(Method::GET, path, Vec::new()).await?;
        serde_json::from_slice(&answer).map_err(|e| ManagementError::NotJson(self.address.clone(), e))
    }

    /// `method path` with a JSON `body` (none if empty); the answer's body when the status is 2xx.
    pub async fn request(&self, method: Method, path: &str, body: Vec<u8>) -> Result<Bytes, ManagementError> {
        tokio::time::timeout(self.timeout, self.exchange(method, path, body))
            .await
            .map_err(|_| ManagementError::Timeout(self.address.clone(), self.timeout))?
    }

    async fn exchange(&self, method: Method, path: &str, body: Vec<u8>) -> Result<Bytes, ManagementError> {
        let stream = TcpStream::connect(self.address.as_str())
            .await
            .map_err(|e| ManagementError::Unreachable(self.address.clone(), e))?;
        match &self.tls {
            None => self.exchange_on(stream, method, path, body).await,
            Some(tls) => {
                let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
                let stream = connector
                    .connect(tls.server_name.clone(), stream)
                    .await
                    .map_err(|e| ManagementError::Tls(self.address.clone(), e))?;
                self.exchange_on(stream, method, path, body).await
            }
        }
    }

    async fn exchange_on<S>(
        &self,
        stream: S,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<Bytes, ManagementError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let http =
            |e: Box<dyn std::error::Error + Send + Sync>| ManagementError::Http(self.address.clone(), e);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| http(e.into()))?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.address.as_str());
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {}", token.trim()));
        }
        if !body.is_empty() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
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
            if !status.is_success() {
                return Err(ManagementError::Refused {
                    address: self.address.clone(),
                    path: path.to_owned(),
                    status: status.as_u16(),
                    answer: String::from_utf8_lossy(&answer).trim().to_owned(),
                });
            }
            Ok(answer)
        };
        tokio::pin!(connection);
        tokio::select! {
            result = exchange => result,
            // The connection ends first only when it failed; `exchange` then reports it too.
            Err(err) = &mut connection => Err(http(err.into())),
        }
    }
}
