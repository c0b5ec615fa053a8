//! The management API, over HTTP on its own port; in TLS when the broker is given a certificate
//! for it (in a cluster, one the operator issues from the space's CA, and verifies).
//!
//! | request | answer |
//! |---|---|
//! | `PUT /config` | applies a broker config (JSON); idempotent; answers what changed and the revision |
//! | `PATCH /config` | applies a [`ConfigPatch`] to the config in force, when that is the one its `base` names (409 otherwise) |
//! | `GET /status` | per address: ready, depth, senders, receivers, messages in, out, expired and dead-lettered; plus the space's state |
//! | `GET /report` | the broker report of the contract: the revision applied and the addresses served |
//! | `GET /report?since=<point>` | what changed in it since the point an earlier answer gave (`since=` empty: all, with a point); see `enmasse_types::report_changes` |
//! | `GET /healthz` | 200 while the process serves |
//! | `GET /readyz` | 200 once a config is applied, 503 before |
//! | `GET /metrics` | OpenMetrics text ([`crate::metrics`]); no token needed |
//!
//! With a [`Guard`] token, `PUT /config`, `GET /report` and `GET /status` answer only requests that
//! carry `Authorization: Bearer <token>`: in a cluster, any pod can reach the port, and a config
//! names the users who may log in. Probes and metrics stay open.

use std::{
    convert::Infallible,
    path::PathBuf,
    sync::{Arc, Mutex, atomic::Ordering},
};

use enmasse_auth::{scram::ScramCredential, tokens::TokenReviewer};
use enmasse_types::{
    broker_config::{AddressReport, BrokerConfig, BrokerReport, Credential},
    config_patch::ConfigPatch,
    report_changes::ReportLog,
};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, warn};

use crate::{address::table::Applied, broker::Broker, server::Tls};

/// The largest config body accepted.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// How the management API applies configs and reports extra state.
pub trait Control: Send + Sync + 'static {
    /// Applies a config pushed over the API; `Err` explains why it was refused.
    fn apply(&self, config: BrokerConfig) -> Result<Applied, String>;

    /// Extra state for `GET /status` (for example the manifests' verdict in standalone mode).
    fn status(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

/// A broker configured only through `PUT /config` (what the operator does).
#[derive(Debug)]
pub struct Pushed {
    /// The broker the configs apply to.
    pub broker: Arc<Broker>,
    /// Who reviews service-account tokens, if service-account users may log in.
    pub tokens: Option<Arc<dyn TokenReviewer>>,
    /// Where the config last applied is kept (in the data dir), so that a broker that restarts
    /// without its operator serves what it served before.
    pub saved: Option<PathBuf>,
}

impl Pushed {
    /// Applies the config an earlier run saved, if there is one.
    pub fn apply_saved(&self) -> Result<Option<Applied>, String> {
        let Some(path) = &self.saved else {
            return Ok(None);
        };
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(format!(
                    "failed to read the saved config {}: {error}",
                    path.display()
                ));
            }
        };
        let config: BrokerConfig = serde_json::from_slice(&text).map_err(|error| {
            format!(
                "the saved config {} is not a broker config: {error}",
                path.display()
            )
        })?;
        self.apply(config).map(Some)
    }

    /// Keeps `config` at the saved path: written aside, synced, then renamed over the old one, so
    /// that a crash leaves either the old config or the new one.
    fn save(&self, config: &BrokerConfig) -> std::io::Result<()> {
        let Some(path) = &self.saved else {
            return Ok(());
        };
        let json = serde_json::to_vec_pretty(config).map_err(std::io::Error::other)?;
        let aside = path.with_extension("json.new");
        {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&aside)?;
            file.write_all(&json)?;
            file.sync_all()?;
        }
        std::fs::rename(&aside, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

impl Control for Pushed {
    fn apply(&self, config: BrokerConfig) -> Result<Applied, String> {
        // A pushed config carries each password user's SCRAM keys, never the password itself.
        for user in &config.users {
            if let Credential::Password { keys: Some(keys), .. } = &user.credential {
                ScramCredential::from_keys(keys)
                    .map_err(|e| format!("user {}: the password keys are unusable: {e}", user.resource))?;
            }
        }
        let authenticator = enmasse_auth::authenticator::for_config(&config, self.tokens.clone(), |_| None);
        if let Err(error) = self.save(&config) {
            tracing::warn!(%error, "failed to save the config; a restart without the operator will not find it");
        }
        Ok(self.broker.apply(config, authenticator))
    }
}

/// Who may change and read the broker's configuration.
#[derive(Clone, Default)]
pub struct Guard {
    token: Option<Arc<str>>,
}

impl Guard {
    /// Anyone who reaches the port (standalone mode, on loopback by default).
    pub fn open() -> Self {
        Self::default()
    }

    /// Only requests with `Authorization: Bearer <token>`.
    pub fn token(token: &str) -> Self {
        Self {
            token: Some(Arc::from(token.trim())),
        }
    }

    fn admits(&self, request: &Request<Incoming>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = request
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        equal_in_constant_time(given.as_bytes(), token.as_bytes())
    }
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// Compares without an early exit, so that timing tells nothing of where a guess goes wrong.
fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves the management API on `listener` until `shutdown` is cancelled: in TLS from the first
/// byte with `tls`, a connection refused while it has no certificate yet.
pub async fn run(
    listener: TcpListener,
    broker: Arc<Broker>,
    control: Arc<dyn Control>,
    guard: Guard,
    tls: Option<Arc<Tls>>,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    let shared = Arc::new(Shared {
        reports: Mutex::new(ReportLog::new(epoch())),
        writes: Mutex::new(()),
    });
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    warn!(error = %err, "failed to accept a management connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = Service {
            broker: broker.clone(),
            control: control.clone(),
            guard: guard.clone(),
            shared: shared.clone(),
        };
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let Some(tls) = tls else {
                return service.serve(stream, shutdown).await;
            };
            let Some(acceptor) = tls.acceptor() else {
                return debug!(%peer, "management connection refused: no certificate yet");
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => service.serve(stream, shutdown).await,
                Ok(Err(err)) => debug!(%peer, error = %err, "management TLS handshake failed"),
                Err(_) => debug!(%peer, "management TLS handshake timed out"),
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// How long a management client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What one management connection is served with.
struct Service {
    broker: Arc<Broker>,
    control: Arc<dyn Control>,
    guard: Guard,
    shared: Arc<Shared>,
}

/// What every management connection shares.
struct Shared {
    /// What the report said of each address, for answering what changed since.
    reports: Mutex<ReportLog>,
    /// Held while a config is applied: a patch checked against the config in force is applied
    /// before another write changes it.
    writes: Mutex<()>,
}

/// A number drawn for this process, so that a report point another broker process gave is never
/// taken for one of this; the clock and the process id when the system gives no randomness.
fn epoch() -> u64 {
    let mut bytes = [0u8; 8];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_ok() {
        return u64::from_le_bytes(bytes);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}

impl Service {
    /// Serves HTTP/1.1 on `stream` until it ends or `shutdown`.
    async fn serve<S>(self, stream: S, shutdown: CancellationToken)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            broker,
            control,
            guard,
            shared,
        } = self;
        let service = service_fn(move |request| {
            handle(
                request,
                broker.clone(),
                control.clone(),
                guard.clone(),
                shared.clone(),
            )
        });
        let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    debug!(error = %err, "management connection failed");
                }
            }
            () = shutdown.cancelled() => connection.as_mut().graceful_shutdown(),
        }
    }
}

type Answer = Response<Full<Bytes>>;

async fn handle(
    request: Request<Incoming>,
    broker: Arc<Broker>,
    control: Arc<dyn Control>,
    guard: Guard,
    shared: Arc<Shared>,
) -> Result<Answer, Infallible> {
    let guarded = matches!(request.uri().path(), "/config" | "/report" | "/status");
    if guarded && !guard.admits(&request) {
        return Ok(text(
            StatusCode::UNAUTHORIZED,
            "this request needs the management token: Authorization: Bearer <token>\n",
        ));
    }
    let answer = match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => match broker.config() {
            Some(_) => text(StatusCode::OK, "ready\n"),
            None => text(StatusCode::SERVICE_UNAVAILABLE, "no configuration applied yet\n"),
        },
        (&Method::GET, "/metrics") => {
            let mut answer = text(StatusCode::OK, &crate::metrics::render(&broker));
            answer.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            answer
        }
        (&Method::GET, "/report") => match since(request.uri().query()) {
            None => json(StatusCode::OK, &report(&broker)),
            Some(point) => {
                let mut log = shared.reports.lock().unwrap_or_else(|p| p.into_inner());
                match log.changes(report(&broker), point) {
                    Ok(changes) => json(StatusCode::OK, &changes),
                    Err(err) => text(StatusCode::BAD_REQUEST, &format!("{err}\n")),
                }
            }
        },
        (&Method::GET, "/status") => json(StatusCode::OK, &status(&broker, control.as_ref())),
        (&Method::PUT, "/config") => put_config(request, control.as_ref(), &shared.writes).await,
        (&Method::PATCH, "/config") => patch_config(request, &broker, control.as_ref(), &shared.writes).await,
        (_, "/healthz" | "/readyz" | "/metrics" | "/report" | "/status" | "/config") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        (_, path) => text(StatusCode::NOT_FOUND, &format!("no such resource: {path}\n")),
    };
    Ok(answer)
}

/// The `since` parameter of a query: `None` without one, `Some(None)` when empty (all, with a
/// point to ask from next).
fn since(query: Option<&str>) -> Option<Option<&str>> {
    let value = query?.split('&').find_map(|pair| pair.strip_prefix("since="))?;
    Some(Some(value).filter(|v| !v.is_empty()))
}

async fn put_config(request: Request<Incoming>, control: &dyn Control, writes: &Mutex<()>) -> Answer {
    let config: BrokerConfig = match read_json(request, "config").await {
        Ok(config) => config,
        Err(answer) => return answer,
    };
    let _writing = writes.lock().unwrap_or_else(|p| p.into_inner());
    apply_config(config, control)
}

/// Applies a patch to the config in force, when it is the one the patch was made from: a patch
/// applied to another config would serve what nobody meant.
async fn patch_config(
    request: Request<Incoming>,
    broker: &Broker,
    control: &dyn Control,
    writes: &Mutex<()>,
) -> Answer {
    let patch: ConfigPatch = match read_json(request, "config patch").await {
        Ok(patch) => patch,
        Err(answer) => return answer,
    };
    let _writing = writes.lock().unwrap_or_else(|p| p.into_inner());
    let (config, revision) = match broker.config() {
        Some(config) => (config, broker.revision()),
        None => {
            return text(
                StatusCode::CONFLICT,
                "no config is in force to patch: PUT the whole config\n",
            );
        }
    };
    if patch.base != revision {
        return text(
            StatusCode::CONFLICT,
            &format!(
                "the patch is of config {}, but {revision} is in force: PUT the whole config\n",
                patch.base
            ),
        );
    }
    let mut config = BrokerConfig::clone(&config);
    config.apply(patch);
    apply_config(config, control)
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes, or the answer that says why it cannot.
async fn read_json<T: serde::de::DeserializeOwned>(
    request: Request<Incoming>,
    what: &str,
) -> Result<T, Answer> {
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(err) => {
            return Err(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("failed to read the {what}: {err}\n"),
            ));
        }
    };
    serde_json::from_slice(&body).map_err(|err| {
        text(
            StatusCode::BAD_REQUEST,
            &format!("invalid broker {what}: {err}\n"),
        )
    })
}

/// Applies `config`, answering what changed and its revision.
fn apply_config(config: BrokerConfig, control: &dyn Control) -> Answer {
    let revision = config.revision();
    match control.apply(config) {
        Ok(applied) => json(
            StatusCode::OK,
            &serde_json::json!({
                "revision": revision,
                "added": applied.added,
                "updated": applied.updated,
                "removed": held(&applied.removed),
                "recreated": held(&applied.recreated),
                "waiting": held(&applied.waiting),
            }),
        ),
        Err(why) => text(StatusCode::CONFLICT, &format!("{why}\n")),
    }
}

/// The report of the contract: what the broker really serves.
pub fn report(broker: &Broker) -> BrokerReport {
    BrokerReport {
        revision: broker.revision(),
        addresses: broker
            .table()
            .entries()
            .iter()
            .map(|e| AddressReport {
                address: e.address.clone(),
                type_: Some(e.type_),
                topic: e.topic.clone(),
                ready: !e.removed.is_cancelled(),
                message: None,
                depth: e.depth(),
                messages_expired: e.messages_expired.load(Ordering::Relaxed),
                messages_dead_lettered: e.messages_dead_lettered.load(Ordering::Relaxed),
                messages_dropped: e.messages_dropped.load(Ordering::Relaxed),
            })
            .collect(),
        problems: broker
            .authenticator()
            .problem()
            .into_iter()
            .chain(broker.paging_problem())
            .collect(),
    }
}

/// One address in `GET /status`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AddressStatus {
    address: String,
    #[serde(rename = "type")]
    type_: String,
    plan: String,
    ready: bool,
    depth: u64,
    senders: u64,
    receivers: u64,
    messages_in: u64,
    messages_out: u64,
    messages_expired: u64,
    messages_dead_lettered: u64,
    messages_dropped: u64,
}

/// Addresses and the messages they held, as `PUT /config` answers them.
fn held(addresses: &[(String, u64)]) -> Vec<serde_json::Value> {
    addresses
        .iter()
        .map(|(address, messages)| serde_json::json!({"address": address, "messages": messages}))
        .collect()
}

fn status(broker: &Broker, control: &dyn Control) -> serde_json::Value {
    let config = broker.config();
    let addresses: Vec<AddressStatus> = broker
        .table()
        .entries()
        .iter()
        .map(|e| {
            let config = e.config();
            AddressStatus {
                address: e.address.clone(),
                type_: e.type_.to_string(),
                plan: config.plan,
                ready: !e.removed.is_cancelled(),
                depth: e.depth(),
                senders: e.senders.load(Ordering::Relaxed),
                receivers: e.receivers.load(Ordering::Relaxed),
                messages_in: e.messages_in(),
                messages_out: e.messages_out.load(Ordering::Relaxed),
                messages_expired: e.messages_expired.load(Ordering::Relaxed),
                messages_dead_lettered: e.messages_dead_lettered.load(Ordering::Relaxed),
                messages_dropped: e.messages_dropped.load(Ordering::Relaxed),
            }
        })
        .collect();
    serde_json::json!({
        "revision": config.as_ref().map(|c| c.revision()),
        "space": config.as_ref().map(|c| &c.space),
        "connections": broker.counters().connections_open.load(Ordering::Relaxed),
        "addresses": addresses,
        "journal": broker.recovered().restored().map(|restored| serde_json::json!({
            "recovered": *restored,
            "waiting": broker.recovered().waiting(),
        })),
        "manifests": control.status(),
    })
}

fn text(status: StatusCode, body: &str) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json(status: StatusCode, value: &impl Serialize) -> Answer {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
