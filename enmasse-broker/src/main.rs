//! `enmasse-broker`: the AMQP 1.0 broker of one address space.
//!
//! With `--manifests DIR` it serves the address space the manifests in DIR define, and follows
//! every change to them (the embedded default). Without it, it waits for the operator to push a
//! broker config through the management API.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context;
use clap::Parser;
use enmasse_auth::{
    authenticator::RefuseAll,
    kubernetes::KubernetesReviewer,
    tokens::{TokenFile, TokenReviewer},
};
use enmasse_broker::{
    broker::{Broker, Settings},
    housekeeping,
    journal::{Journal, JournalOptions},
    management::{self, Control, Pushed},
    recovery, server,
    standalone::{self, Standalone},
};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{info, warn};

/// The IANA port of AMQP over TLS.
const DEFAULT_AMQPS_PORT: u16 = 5671;

/// The port EnMasse's routers served AMQP over WebSocket on (behind the Service's 443).
const DEFAULT_WSS_PORT: u16 = 8443;

// The data plane allocates and frees a few small buffers per message; mimalloc's thread-local
// free lists make that markedly cheaper than glibc's malloc (see docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The AMQP 1.0 broker of one EnMasse address space.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Serve the address space defined by the manifests in this directory (read recursively) and
    /// apply every change to them live. Repeat it to add directories, such as the operations
    /// team's plans.
    #[arg(long, env = "ENMASSE_MANIFESTS", value_name = "DIR", value_delimiter = ',')]
    manifests: Vec<PathBuf>,
    /// How edits to the manifests are noticed: `notify`, the file system's notifications (looking
    /// every 200 ms where there are none); `poll`, every file read every 200 ms, for file systems
    /// whose notifications and modification times cannot be trusted.
    #[arg(
        long,
        env = "ENMASSE_MANIFESTS_WATCH",
        value_enum,
        default_value = "notify",
        value_name = "HOW"
    )]
    manifests_watch: standalone::WatchMode,
    /// Where AMQP clients connect.
    #[arg(
        long,
        env = "ENMASSE_LISTEN",
        default_value = "127.0.0.1:5672",
        value_name = "ADDR"
    )]
    listen: SocketAddr,
    /// Offer SASL PLAIN, which sends a password in clear, on connections without TLS too (for
    /// trusted loopback development only).
    #[arg(long, env = "ENMASSE_ALLOW_PLAIN_WITHOUT_TLS")]
    allow_plain_without_tls: bool,
    /// Do not listen for plain (unencrypted) AMQP at all.
    #[arg(long, env = "ENMASSE_NO_PLAIN")]
    no_plain: bool,
    /// Where AMQP clients connect over TLS (with --manifests or --tls-dir). If the default port is
    /// taken, a free port is used; the export says which.
    #[arg(
        long,
        env = "ENMASSE_LISTEN_TLS",
        default_value = "127.0.0.1:5671",
        value_name = "ADDR"
    )]
    listen_tls: SocketAddr,
    /// Serve amqps with the certificate in this directory, laid out as a mounted kubernetes.io/tls
    /// Secret: tls.crt (the chain), tls.key and, if clients need it, ca.crt. Followed: a renewed
    /// certificate is served to new connections. With --manifests it replaces the endpoint's cert
    /// provider; without, it turns the amqps listener on.
    #[arg(long, env = "ENMASSE_TLS_DIR", value_name = "DIR")]
    tls_dir: Option<PathBuf>,
    /// Where AMQP clients connect over WebSocket in TLS (the `messaging-wss` endpoint, with the
    /// amqps certificate). If the default port is taken, a free port is used; the export says which.
    #[arg(
        long,
        env = "ENMASSE_LISTEN_WSS",
        default_value = "127.0.0.1:8443",
        value_name = "ADDR"
    )]
    listen_wss: SocketAddr,
    /// Where the management API (config, status, health, metrics) listens.
    #[arg(
        long,
        env = "ENMASSE_MANAGEMENT",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    management: SocketAddr,
    /// Serve the management API in TLS with the certificate in this directory, laid out as a
    /// mounted kubernetes.io/tls Secret (tls.crt, tls.key). Followed, as --tls-dir is.
    #[arg(long, env = "ENMASSE_MANAGEMENT_TLS_DIR", value_name = "DIR")]
    management_tls_dir: Option<PathBuf>,
    /// Require `Authorization: Bearer <token>`, the token read from this file, for the management
    /// API's config, report and status (probes and metrics stay open).
    #[arg(long, env = "ENMASSE_MANAGEMENT_TOKEN_FILE", value_name = "FILE")]
    management_token_file: Option<PathBuf>,
    /// Where exports (and the message journal) are kept.
    #[arg(long, env = "ENMASSE_DATA_DIR", default_value = "data", value_name = "DIR")]
    data_dir: PathBuf,
    /// The namespace of manifests that name none.
    #[arg(long, env = "ENMASSE_NAMESPACE", default_value = "default")]
    namespace: String,
    /// Which address space to serve when the manifests define several.
    #[arg(long, env = "ENMASSE_ADDRESS_SPACE", value_name = "NAME")]
    address_space: Option<String>,
    /// Service-account tokens, one per line: the token and `system:serviceaccount:<ns>:<name>`.
    /// Without it (or --kubernetes-token-review), service-account users cannot log in.
    #[arg(
        long,
        env = "ENMASSE_TOKEN_FILE",
        value_name = "FILE",
        conflicts_with = "kubernetes_token_review"
    )]
    token_file: Option<PathBuf>,
    /// Check service-account tokens with the Kubernetes API server (TokenReview), reached through
    /// the pod's service account or else the kubeconfig. The service account needs the
    /// system:auth-delegator cluster role.
    #[arg(long, env = "ENMASSE_KUBERNETES_TOKEN_REVIEW")]
    kubernetes_token_review: bool,
    /// Credit a sender link is given at most at once.
    #[arg(long, env = "ENMASSE_CREDIT_WINDOW", default_value_t = 500)]
    credit_window: u32,
    /// Seconds a client may stay silent before its connection is closed. Offered to clients in
    /// the open, so live ones send heartbeats well within it; reaps peers that vanished.
    #[arg(
        long,
        env = "ENMASSE_IDLE_TIMEOUT",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    idle_timeout: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    // Registered before anything listens, so that a SIGTERM sent as soon as the broker says it
    // listens stops it gracefully instead of killing it.
    let stop = shutdown_signal();
    let amqp = match args.no_plain {
        true => None,
        false => {
            Some(server::bind(args.listen).with_context(|| format!("failed to listen on {}", args.listen))?)
        }
    };
    let amqp_addr = amqp
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()
        .context("failed to read the amqp address")?;
    let guard = match &args.management_token_file {
        None => management::Guard::open(),
        Some(path) => {
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("failed to read the management token from {}", path.display()))?;
            if token.trim().is_empty() {
                anyhow::bail!("the management token file {} is empty", path.display());
            }
            management::Guard::token(&token)
        }
    };
    let management_listener = TcpListener::bind(args.management)
        .await
        .with_context(|| format!("failed to listen on {}", args.management))?;
    let settings = Settings {
        credit_window: args.credit_window.max(2),
        plain_without_tls: args.allow_plain_without_tls,
        idle_timeout: std::time::Duration::from_secs(args.idle_timeout.max(1)),
        paging_dir: Some(args.data_dir.join("paging")),
        ..Settings::default()
    };
    // Read before any config is applied: each config puts the recovered messages of the queues
    // it serves back into them.
    let journal_dir = args.data_dir.join("journal");
    let (journal, recovery) = Journal::open(&journal_dir, JournalOptions::default())
        .with_context(|| format!("failed to open the message journal in {}", journal_dir.display()))?;
    let broker = Broker::with_store(
        settings,
        Arc::new(RefuseAll::new("no configuration applied yet".into())),
        journal.clone(),
    );
    recovery::restore(&broker, recovery);
    let tokens: Option<Arc<dyn TokenReviewer>> = if args.kubernetes_token_review {
        let reviewer = KubernetesReviewer::from_environment()
            .await
            .context("failed to set up the Kubernetes token review")?;
        Some(Arc::new(reviewer))
    } else {
        args.token_file
            .clone()
            .map(|path| Arc::new(TokenFile::new(path)) as Arc<dyn TokenReviewer>)
    };
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();

    // The certificate amqps serves, which the plain listener offers to clients sending the TLS header.
    let mut upgrade = None;
    let control: Arc<dyn Control> = match args.manifests.is_empty() {
        false => {
            // TLS from the manifests' endpoint (or --tls-dir).
            let tls = Arc::new(server::Tls::default());
            upgrade = Some(tls.clone());
            let (amqps_addr, wss_addr) = serve_tls(&args, &broker, &tls, &tasks, &shutdown)?;
            let options = standalone::Options {
                manifests: args.manifests.clone(),
                data_dir: args.data_dir.clone(),
                namespace: args.namespace.clone(),
                address_space: args.address_space.clone(),
                amqp: amqp_addr,
                amqps: Some((amqps_addr, tls)),
                wss: Some(wss_addr),
                tokens: tokens.clone(),
                tls_dir: args.tls_dir.clone(),
                watch: args.manifests_watch,
            };
            let standalone = Standalone::new(options, broker.clone());
            standalone.refresh();
            tasks.spawn(standalone.clone().watch(shutdown.clone()));
            info!(manifests = ?args.manifests, amqps = %amqps_addr, wss = %wss_addr, "serving the address space of the manifests");
            standalone
        }
        true => {
            // In a cluster, amqps serves the certificate the operator mounts.
            if let Some(dir) = args.tls_dir.clone() {
                let tls = Arc::new(server::Tls::default());
                upgrade = Some(tls.clone());
                tasks.spawn(server::follow_certificate_files(
                    "amqps",
                    dir,
                    tls.clone(),
                    shutdown.clone(),
                ));
                let (amqps_addr, wss_addr) = serve_tls(&args, &broker, &tls, &tasks, &shutdown)?;
                info!(amqps = %amqps_addr, wss = %wss_addr, "listening");
            }
            let pushed = Pushed {
                broker: broker.clone(),
                tokens,
                saved: Some(args.data_dir.join("broker-config.json")),
            };
            match pushed.apply_saved() {
                Ok(Some(_)) => {
                    info!("serving the config saved by the last run until the operator pushes one")
                }
                Ok(None) => info!("waiting for a broker config on PUT /config"),
                Err(error) => warn!("{error}; waiting for a broker config on PUT /config"),
            }
            Arc::new(pushed)
        }
    };
    info!(amqp = ?amqp_addr, management = %management_listener.local_addr().unwrap_or(args.management), "listening");
    match (amqp, upgrade) {
        (Some(amqp), Some(tls)) => {
            tasks.spawn(server::run_with_upgrade(
                amqp,
                broker.clone(),
                tls,
                shutdown.clone(),
            ));
        }
        (Some(amqp), None) => {
            tasks.spawn(server::run(amqp, broker.clone(), shutdown.clone()));
        }
        (None, _) => {}
    }
    let management_tls = args.management_tls_dir.clone().map(|dir| {
        let tls = Arc::new(server::Tls::default());
        tasks.spawn(server::follow_certificate_files(
            "the management API",
            dir,
            tls.clone(),
            shutdown.clone(),
        ));
        tls
    });
    tasks.spawn(management::run(
        management_listener,
        broker.clone(),
        control,
        guard,
        management_tls,
        shutdown.clone(),
    ));
    tasks.spawn(housekeeping::run(broker.clone(), shutdown.clone()));
    tasks.close();

    stop.await;
    info!("shutting down: no new connections, closing open ones");
    shutdown.cancel();
    tasks.wait().await;
    // Dead letters on their way to the journal land before it closes.
    broker.tasks().close();
    broker.tasks().wait().await;
    journal.close();
    info!("stopped");
    Ok(())
}

/// Starts the listeners that serve `tls`'s certificate: amqps and AMQP over WebSocket. Returns
/// where they listen.
fn serve_tls(
    args: &Args,
    broker: &Arc<Broker>,
    tls: &Arc<server::Tls>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<(SocketAddr, SocketAddr)> {
    let amqps = bind_tls_listener("amqps", args.listen_tls, DEFAULT_AMQPS_PORT)?;
    let wss = bind_tls_listener("wss", args.listen_wss, DEFAULT_WSS_PORT)?;
    let amqps_addr = amqps.local_addr().context("failed to read the amqps address")?;
    let wss_addr = wss.local_addr().context("failed to read the wss address")?;
    tasks.spawn(server::run_tls(
        amqps,
        broker.clone(),
        tls.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(server::run_websocket(
        wss,
        broker.clone(),
        tls.clone(),
        shutdown.clone(),
    ));
    Ok((amqps_addr, wss_addr))
}

/// Listens for `what` on `addr`; if that is its `default` port and it is taken, on a free port
/// (the exports say which).
fn bind_tls_listener(what: &str, addr: SocketAddr, default: u16) -> anyhow::Result<TcpListener> {
    match server::bind(addr) {
        Ok(listener) => Ok(listener),
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse && addr.port() == default => {
            warn!(address = %addr, "taken: {what} listens on a free port instead (see the export)");
            server::bind(SocketAddr::new(addr.ip(), 0))
                .with_context(|| format!("failed to listen for {what}"))
        }
        Err(err) => Err(err).with_context(|| format!("failed to listen on {addr}")),
    }
}

/// SIGTERM (how Kubernetes stops a pod) or Ctrl-C: the handlers are registered now, and the
/// returned future completes when either arrives.
fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let interrupt = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        if let Some(mut terminate) = terminate {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt => {}
            }
            return;
        }
        let _ = interrupt.await;
    }
}
