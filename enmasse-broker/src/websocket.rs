//! AMQP over WebSocket (OASIS AMQP WebSocket Binding 1.0), the `messaging-wss` endpoint: the
//! opening handshake (RFC 6455, section 4), then the connection as a byte stream
//! ([`WebSocketStream`]) that the AMQP handshake and engine read as they read a socket, SASL
//! included.
//!
//! Any path is accepted (EnMasse's router served `/`; browsers and rhea connect to the root). The
//! client must offer the binding's subprotocol, `amqp` (or a draft's name, `AMQPWSB10` or
//! `binary`), which the answer names. An `Origin` is not checked: a connection authenticates with
//! SASL, not with a browser's cookies (docs/broker.md says what that means for anonymous spaces).

mod stream;

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
};

use http_body_util::Full;
use hyper::{
    HeaderMap, Method, Request, Response, StatusCode, Version,
    body::{Bytes, Incoming},
    header::{self, HeaderValue},
    server::conn::http1,
    service::service_fn,
    upgrade::{OnUpgrade, Upgraded},
};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

pub use self::stream::{FrameError, WebSocketStream};

/// The subprotocol of the AMQP WebSocket binding.
pub const SUBPROTOCOL: &str = "amqp";

/// The subprotocols accepted, in the order preferred: the binding's, then the names its drafts
/// used and that EnMasse's router accepted (its console offered `binary` and `AMQPWSB10`).
const SUBPROTOCOLS: [&str; 3] = [SUBPROTOCOL, "AMQPWSB10", "binary"];

/// The only WebSocket version there is (RFC 6455).
const VERSION: &str = "13";

/// What RFC 6455 (4.2.2) appends to the client's key before hashing it.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The most a client's opening request may take, headers included.
const MAX_REQUEST: usize = 8192;

/// Why a WebSocket connection did not open.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The request was not a WebSocket opening for AMQP; the client was answered with the reason.
    #[error("refused the WebSocket opening: {0}")]
    Refused(Refusal),
    /// The HTTP exchange failed (a malformed or oversized request, a closed socket).
    #[error("failed to read the WebSocket opening request")]
    Http(#[source] hyper::Error),
    /// The client closed before it sent a request.
    #[error("the client sent no WebSocket opening request")]
    NoRequest,
}

/// What is wrong with an opening request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Not a GET.
    #[error("the method is {0}, not GET")]
    Method(String),
    /// No `Upgrade: websocket` and `Connection: Upgrade`.
    #[error("the request does not ask to upgrade to WebSocket")]
    NotUpgrade,
    /// A version other than 13.
    #[error("WebSocket version {0:?} is not 13")]
    Version(String),
    /// HTTP/1.0, which has no upgrade.
    #[error("the request is {0}; a WebSocket opening is HTTP/1.1")]
    HttpVersion(String),
    /// A `Sec-WebSocket-Key` that is not 16 bytes in base64.
    #[error("Sec-WebSocket-Key is missing or not 16 bytes in base64")]
    Key,
    /// The binding's subprotocol was not offered.
    #[error("the subprotocol `amqp` of the AMQP WebSocket binding was not offered")]
    Subprotocol,
}

impl Refusal {
    fn response(&self) -> Response<Full<Bytes>> {
        let status = match self {
            Self::Method(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Version(_) => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut response = Response::new(Full::new(Bytes::from(format!("{self}\n"))));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if matches!(self, Self::Version(_)) {
            headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static(VERSION));
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        }
        response
    }
}

/// The opening's outcome, as the request handler leaves it for [`accept`].
enum Outcome {
    Pending,
    Upgrade(OnUpgrade),
    Refused(Refusal),
}

/// Accepts a WebSocket connection for AMQP on `stream`: reads the opening request, answers it,
/// and returns the connection. A request that is not one is answered with why and refused.
pub async fn accept<S>(stream: S) -> Result<WebSocketStream<TokioIo<Upgraded>>, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let outcome = Arc::new(Mutex::new(Outcome::Pending));
    let handler = outcome.clone();
    let service = service_fn(move |mut request: Request<Incoming>| {
        let response = match check(request.method(), request.version(), request.headers()) {
            Ok((accept_key, subprotocol)) => {
                let upgrade = hyper::upgrade::on(&mut request);
                *handler.lock().unwrap_or_else(|p| p.into_inner()) = Outcome::Upgrade(upgrade);
                switching_protocols(accept_key, subprotocol)
            }
            Err(refusal) => {
                let response = refusal.response();
                *handler.lock().unwrap_or_else(|p| p.into_inner()) = Outcome::Refused(refusal);
                response
            }
        };
        std::future::ready(Ok::<_, Infallible>(response))
    });
    http1::Builder::new()
        .keep_alive(false)
        .max_buf_size(MAX_REQUEST)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await
        .map_err(HandshakeError::Http)?;
    let outcome = std::mem::replace(
        &mut *outcome.lock().unwrap_or_else(|p| p.into_inner()),
        Outcome::Pending,
    );
    match outcome {
        Outcome::Upgrade(upgrade) => {
            let upgraded = upgrade.await.map_err(HandshakeError::Http)?;
            Ok(WebSocketStream::new(TokioIo::new(upgraded)))
        }
        Outcome::Refused(refusal) => Err(HandshakeError::Refused(refusal)),
        Outcome::Pending => Err(HandshakeError::NoRequest),
    }
}

/// Checks an opening request (RFC 6455, 4.2.1, and the binding's subprotocol); returns the
/// `Sec-WebSocket-Accept` that answers it and the subprotocol chosen.
fn check(method: &Method, version: Version, headers: &HeaderMap) -> Result<(String, &'static str), Refusal> {
    if method != Method::GET {
        return Err(Refusal::Method(method.to_string()));
    }
    if version < Version::HTTP_11 {
        return Err(Refusal::HttpVersion(format!("{version:?}")));
    }
    if !has_token(headers, header::UPGRADE, "websocket") || !has_token(headers, header::CONNECTION, "upgrade")
    {
        return Err(Refusal::NotUpgrade);
    }
    let websocket_version = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if websocket_version.trim() != VERSION {
        return Err(Refusal::Version(websocket_version.to_owned()));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| enmasse_types::base64::decode(k).is_some_and(|b| b.len() == 16))
        .ok_or(Refusal::Key)?;
    let offered: Vec<&str> = tokens(headers, header::SEC_WEBSOCKET_PROTOCOL).collect();
    let subprotocol = SUBPROTOCOLS
        .into_iter()
        .find(|p| offered.contains(p))
        .ok_or(Refusal::Subprotocol)?;
    Ok((accept_key(key), subprotocol))
}

/// Whether a comma-separated header names `token` (case-insensitively).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// The comma-separated tokens of every `name` header, trimmed.
fn tokens(headers: &HeaderMap, name: header::HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// The `Sec-WebSocket-Accept` for a client's key (RFC 6455, 4.2.2).
fn accept_key(key: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}{ACCEPT_GUID}").as_bytes(),
    );
    enmasse_types::base64::encode(digest.as_ref())
}

fn switching_protocols(accept_key: String, subprotocol: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(subprotocol),
    );
    if let Ok(value) = HeaderValue::from_str(&accept_key) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    response
}

#[cfg(test)]
mod tests;
