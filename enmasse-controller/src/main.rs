//! `enmasse-operator`: runs EnMasse on Kubernetes.
//!
//! - `enmasse-operator run`: reconciles AddressSpaces into brokers and exports (every flag is also
//!   an environment variable, as a Deployment sets them);
//! - `enmasse-operator crd`: prints the CustomResourceDefinitions, to apply before the operator.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use enmasse_controller::{
    brokers::HttpBrokers,
    context::{DeletePolicy, Settings},
    http,
    metrics::Metrics,
    operator::{self, Options},
    workload::BrokerSettings,
};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::info;

/// Runs EnMasse on Kubernetes: address spaces become TLS-secured brokers, their endpoints are
/// exported into each team's namespace, and every status tells what is really running.
#[derive(Debug, Parser)]
#[command(name = "enmasse-operator", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the operator.
    ///
    /// Example, as the Deployment in install/ runs it:
    ///
    ///     ENMASSE_NAMESPACE=enmasse-infra enmasse-operator run
    #[command(verbatim_doc_comment)]
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions (YAML), to apply before the operator.
    ///
    /// Example:
    ///
    ///     enmasse-operator crd | kubectl apply --server-side -f -
    #[command(verbatim_doc_comment)]
    Crd,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The operator's namespace: brokers, their Secrets, plans, infra configs and authentication
    /// services live here.
    #[arg(long, env = "ENMASSE_NAMESPACE")]
    namespace: String,
    /// The broker image.
    #[arg(long, env = "ENMASSE_BROKER_IMAGE", default_value = concat!("enmasse-broker:", env!("CARGO_PKG_VERSION")))]
    broker_image: String,
    /// The brokers' image pull policy.
    #[arg(
        long,
        env = "ENMASSE_BROKER_IMAGE_PULL_POLICY",
        default_value = "IfNotPresent"
    )]
    broker_image_pull_policy: String,
    /// The service account brokers run as (it needs the system:auth-delegator cluster role).
    #[arg(
        long,
        env = "ENMASSE_BROKER_SERVICE_ACCOUNT",
        default_value = "enmasse-broker"
    )]
    broker_service_account: String,
    /// A kubernetes.io/tls Secret in the operator's namespace, served by endpoints whose cert
    /// provider is `wildcard`.
    #[arg(long, env = "ENMASSE_WILDCARD_SECRET", value_name = "SECRET")]
    wildcard_secret: Option<String>,
    /// What deleting an Address or an AddressSpace does to its messages: `delete` (EnMasse's
    /// behaviour) or `retain` (a deleted Address stays until drained; a deleted space's volume is
    /// kept).
    #[arg(long, env = "ENMASSE_DELETE_POLICY", value_enum, default_value_t = DeletePolicy::Delete)]
    delete_policy: DeletePolicy,
    /// Seconds between two looks at a settled space (drift healing, fresh broker reports).
    #[arg(long, env = "ENMASSE_RESYNC_SECONDS", default_value_t = 60)]
    resync_seconds: u64,
    /// Where /healthz, /readyz and /metrics listen.
    #[arg(
        long,
        env = "ENMASSE_HTTP",
        default_value = "0.0.0.0:8080",
        value_name = "ADDR"
    )]
    http: SocketAddr,
    /// The Lease that elects the one replica that acts.
    #[arg(long, env = "ENMASSE_LEASE", default_value = "enmasse-operator")]
    lease: String,
    /// Seconds a Lease holds without renewal.
    #[arg(long, env = "ENMASSE_LEASE_SECONDS", default_value_t = 15)]
    lease_seconds: u64,
    /// This replica's name in the Lease (the Deployment passes the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

// A pass over a space of thousands of addresses copies and frees tens of thousands of small
// strings: mimalloc makes that several times cheaper than glibc's malloc (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => print_crds(),
        Command::Run(args) => {
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
                .block_on(run(*args))
        }
    }
}

fn print_crds() -> anyhow::Result<()> {
    for crd in enmasse_types::crd::all() {
        let json = enmasse_types::crd::to_canonical_json(&crd)
            .with_context(|| format!("failed to render the {} CRD", crd.spec.names.kind))?;
        let yaml = enmasse_types::manifests::to_yaml(&json).context("failed to write a CRD as YAML")?;
        print!("---\n{yaml}");
    }
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let settings = Settings {
        broker: BrokerSettings {
            namespace: args.namespace,
            image: args.broker_image,
            image_pull_policy: args.broker_image_pull_policy,
            service_account: args.broker_service_account,
            retain_volumes: args.delete_policy == DeletePolicy::Retain,
        },
        wildcard_secret: args.wildcard_secret,
        delete_policy: args.delete_policy,
        resync: Duration::from_secs(args.resync_seconds.max(1)),
    };
    let identity = match args.identity {
        Some(identity) => identity,
        None => {
            std::env::var("HOSTNAME").unwrap_or_else(|_| format!("enmasse-operator-{}", std::process::id()))
        }
    };
    let options = Options {
        settings,
        identity,
        lease_name: args.lease,
        lease_duration: Duration::from_secs(args.lease_seconds.max(3)),
    };
    let client = kube::Client::try_default()
        .await
        .context("failed to reach the Kubernetes API server (in-cluster config or kubeconfig)")?;
    let metrics = Arc::new(Metrics::default());
    let shutdown = CancellationToken::new();
    let listener = TcpListener::bind(args.http)
        .await
        .map_err(|source| operator::OperatorError::Listen {
            addr: args.http,
            source,
        })?;
    let tasks = TaskTracker::new();
    tasks.spawn(http::serve(listener, metrics.clone(), shutdown.clone()));
    tasks.close();
    let operator = operator::run(client, options, Arc::new(HttpBrokers), metrics, shutdown.clone());
    tokio::pin!(operator);
    let result = tokio::select! {
        result = &mut operator => result,
        () = wait_for_signal() => {
            info!("shutting down");
            shutdown.cancel();
            operator.await
        }
    };
    shutdown.cancel();
    tasks.wait().await;
    result.context("the operator stopped")
}

/// Waits for SIGTERM (how Kubernetes stops a pod) or Ctrl-C.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
