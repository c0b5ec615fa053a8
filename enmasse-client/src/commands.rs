//! The `enmasse` commands, and what they share: the runtime and the endpoint options.

pub(crate) mod bench;
pub(crate) mod check;
pub(crate) mod messaging;

use std::{future::Future, path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::ValueEnum;
use enmasse_client::{Credentials, MessagingConfig};

/// Runs `future` on a runtime of `threads` threads (the calling thread alone if one).
pub(crate) fn block_on<F: Future<Output = anyhow::Result<bool>>>(
    threads: usize,
    future: F,
) -> anyhow::Result<bool> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder
        .enable_all()
        .build()
        .context("failed to start the runtime")?
        .block_on(future)
}

/// How a password user logs in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Sasl {
    /// SCRAM-SHA-256: the password never crosses the wire.
    #[default]
    Scram,
    /// PLAIN: the password is sent as it is; brokers accept it over TLS only.
    Plain,
}

/// Where the broker is and how to log in.
#[derive(Debug, clap::Args)]
pub(crate) struct EndpointArgs {
    /// The broker, as amqp://[user:password@]host:port or amqps://...
    #[arg(long, env = "ENMASSE_URL", conflicts_with = "export")]
    url: Option<String>,
    /// An export of the address space (the ConfigMap or Secret the operator writes, or the file
    /// the standalone broker writes to <data-dir>/exports/): its host, amqps port and CA.
    #[arg(long, value_name = "FILE")]
    export: Option<PathBuf>,
    /// The CA certificate (PEM) to trust for TLS, such as an export's ca.crt.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// The MessagingUser to log in as.
    #[arg(long, env = "ENMASSE_USERNAME")]
    username: Option<String>,
    /// Its password.
    #[arg(long, env = "ENMASSE_PASSWORD", hide_env_values = true, requires = "username")]
    password: Option<String>,
    /// How the password is sent.
    #[arg(long, value_enum, default_value_t)]
    sasl: Sasl,
    /// Log in with the Kubernetes service-account token in FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "username")]
    token_file: Option<PathBuf>,
}

impl EndpointArgs {
    /// The messaging config these options describe, giving up connecting after `timeout`.
    pub(crate) fn config(&self, timeout: Duration) -> anyhow::Result<MessagingConfig> {
        let mut config = match (&self.url, &self.export) {
            (Some(url), _) => MessagingConfig::from_url(url)?,
            (None, Some(export)) => MessagingConfig::from_export_file(export)?,
            (None, None) => MessagingConfig::from_url("amqp://127.0.0.1:5672")?,
        };
        if let Some(ca) = &self.ca {
            config = config.tls_ca_file(ca)?;
        }
        if let Some(username) = &self.username {
            let password = self.password.clone().unwrap_or_default();
            config.credentials = match self.sasl {
                Sasl::Scram => Credentials::Scram {
                    username: username.clone(),
                    password,
                },
                Sasl::Plain => Credentials::Plain {
                    username: username.clone(),
                    password,
                },
            };
        } else if let Some(token_file) = &self.token_file {
            config.credentials = Credentials::ServiceAccount {
                token_file: token_file.clone(),
            };
        } else if self.sasl == Sasl::Plain
            && let Credentials::Scram { username, password } = &config.credentials
        {
            config.credentials = Credentials::Plain {
                username: username.clone(),
                password: password.clone(),
            };
        }
        Ok(config.connect_timeout(timeout))
    }
}
