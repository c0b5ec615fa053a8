//! Where a messaging endpoint is and how to log in to it: [`MessagingConfig`].
//!
//! An application in a pod reads it the way the post's Java application does, in one call:
//! `MESSAGING_HOST` and `MESSAGING_PORT` from the environment (the Deployment maps them from the
//! exported ConfigMap), and the pod's service-account token and CA from
//! `/var/run/secrets/kubernetes.io/serviceaccount/`. Outside a pod, the same config comes from an
//! export (the ConfigMap's data, or the file the standalone broker writes), from a URL, or from the
//! builder methods.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

/// Where a pod's service-account token and CA are mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The user name that tells the broker the password is a service-account token.
pub const SERVICE_ACCOUNT_USER: &str = "@@serviceaccount@@";

/// How to reach a messaging endpoint and log in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessagingConfig {
    /// The host: a name or an IP address.
    pub host: String,
    /// The port.
    pub port: u16,
    /// TLS, with the CA certificates (PEM) to trust; `None` connects in plain AMQP.
    pub tls_ca: Option<Vec<u8>>,
    /// How to log in.
    pub credentials: Credentials,
    /// How long opening a connection (TCP, TLS, SASL, open) may take.
    pub connect_timeout: Duration,
    /// The container id the connection announces; a random one if unset.
    pub container_id: Option<String>,
}

/// How a client logs in.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No login: SASL ANONYMOUS, for spaces whose authentication service is `none`.
    Anonymous,
    /// A MessagingUser's name and password, with SCRAM-SHA-256: the password never crosses the
    /// wire.
    Scram {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// A name and password with SASL PLAIN, which sends the password as it is: use it over TLS.
    Plain {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// A Kubernetes service-account token, read from this file at every connection (kubelet
    /// rotates projected tokens), sent with PLAIN as `@@serviceaccount@@`.
    ServiceAccount {
        /// The token file.
        token_file: PathBuf,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a password.
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Scram { username, .. } => write!(f, "Scram {{ username: {username:?} }}"),
            Self::Plain { username, .. } => write!(f, "Plain {{ username: {username:?} }}"),
            Self::ServiceAccount { token_file } => {
                write!(f, "ServiceAccount {{ token_file: {token_file:?} }}")
            }
        }
    }
}

/// Why a config could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required environment variable is not set.
    #[error("the environment variable {0} is not set")]
    MissingVariable(&'static str),
    /// An environment variable has a value that cannot be used.
    #[error("the environment variable {name} is {value:?}: {expected}")]
    InvalidVariable {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// An export lacks a key every export has.
    #[error("the export has no {0}")]
    MissingKey(&'static str),
    /// An export has a value that cannot be used.
    #[error("the export's {key} is {value:?}: {expected}")]
    InvalidKey {
        /// The key.
        key: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// A file could not be read.
    #[error("failed to read {what} {}", path.display())]
    Read {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An export file is not an export.
    #[error("{} is not an export (a ConfigMap or Secret): {reason}", path.display())]
    NotAnExport {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A URL that cannot be used.
    #[error("the URL {url:?} cannot be used: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// The environment a config is read from: variables, and the service-account directory (which
/// exists only in a pod).
#[derive(Clone, Debug, Default)]
pub struct Environment {
    /// The variables.
    pub vars: BTreeMap<String, String>,
    /// Where the service-account token and CA are, if mounted.
    pub service_account_dir: Option<PathBuf>,
}

impl Environment {
    /// This process's environment, with the service-account directory if it is mounted.
    pub fn current() -> Self {
        let dir = Path::new(SERVICE_ACCOUNT_DIR);
        Self {
            vars: std::env::vars().collect(),
            service_account_dir: dir.join("token").is_file().then(|| dir.to_path_buf()),
        }
    }
}

impl MessagingConfig {
    /// A config for `host:port` in plain AMQP, logging in anonymously; see the builder methods.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            tls_ca: None,
            credentials: Credentials::Anonymous,
            connect_timeout: Duration::from_secs(10),
            container_id: None,
        }
    }

    /// The config of an application in a pod, from this process's environment: see
    /// [`MessagingConfig::from_environment`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_environment(&Environment::current())
    }

    /// The config `environment` describes:
    ///
    /// - `MESSAGING_HOST` and `MESSAGING_PORT` (required): the export's `service.host` and a
    ///   `service.port.*`;
    /// - `MESSAGING_TLS`: `true` (the default) or `false`;
    /// - `MESSAGING_CA_FILE`: the CA certificates to trust; by default the service-account
    ///   directory's `ca.crt` and `service-ca.crt` (OpenShift's service CA), as far as they exist;
    /// - `MESSAGING_USERNAME` and `MESSAGING_PASSWORD`: a password user (SCRAM-SHA-256); without
    ///   them, the service account's token if mounted, else anonymous.
    pub fn from_environment(environment: &Environment) -> Result<Self, ConfigError> {
        let var = |name: &'static str| environment.vars.get(name).filter(|v| !v.is_empty());
        let host = var("MESSAGING_HOST").ok_or(ConfigError::MissingVariable("MESSAGING_HOST"))?;
        let port = var("MESSAGING_PORT").ok_or(ConfigError::MissingVariable("MESSAGING_PORT"))?;
        let port = port.trim().parse().map_err(|_| ConfigError::InvalidVariable {
            name: "MESSAGING_PORT",
            value: port.clone(),
            expected: "a port number",
        })?;
        let tls = match var("MESSAGING_TLS").map(String::as_str) {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(ConfigError::InvalidVariable {
                    name: "MESSAGING_TLS",
                    value: other.to_owned(),
                    expected: "true or false",
                });
            }
        };
        let mut config = Self::new(host.clone(), port);
        let sa_dir = environment.service_account_dir.as_deref();
        if tls {
            let ca = match var("MESSAGING_CA_FILE") {
                Some(file) => read_file("the CA file (MESSAGING_CA_FILE)", Path::new(file))?,
                None => service_account_ca(sa_dir)?,
            };
            config.tls_ca = Some(ca);
        }
        config.credentials = match (var("MESSAGING_USERNAME"), var("MESSAGING_PASSWORD"), sa_dir) {
            (Some(username), Some(password), _) => Credentials::Scram {
                username: username.clone(),
                password: password.clone(),
            },
            (Some(_), None, _) => return Err(ConfigError::MissingVariable("MESSAGING_PASSWORD")),
            (None, Some(_), _) => return Err(ConfigError::MissingVariable("MESSAGING_USERNAME")),
            (None, None, Some(dir)) => Credentials::ServiceAccount {
                token_file: dir.join("token"),
            },
            (None, None, None) => Credentials::Anonymous,
        };
        Ok(config)
    }

    /// The endpoint an export describes: `service.host`, and `service.port.amqps` with `ca.crt`
    /// (TLS) if it has them, else `service.port.amqp`. Credentials are set apart.
    pub fn from_export(data: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let host = data
            .get("service.host")
            .ok_or(ConfigError::MissingKey("service.host"))?;
        let port = |key: &'static str| -> Result<Option<u16>, ConfigError> {
            data.get(key)
                .map(|value| {
                    value.trim().parse().map_err(|_| ConfigError::InvalidKey {
                        key,
                        value: value.clone(),
                        expected: "a port number",
                    })
                })
                .transpose()
        };
        match (
            port("service.port.amqps")?,
            data.get("ca.crt"),
            port("service.port.amqp")?,
        ) {
            (Some(port), Some(ca), _) => Ok(Self::new(host.clone(), port).tls(ca.as_bytes().to_vec())),
            (Some(_), None, None) => Err(ConfigError::MissingKey("ca.crt")),
            (_, _, Some(port)) => Ok(Self::new(host.clone(), port)),
            (None, _, None) => Err(ConfigError::MissingKey("service.port.amqps or service.port.amqp")),
        }
    }

    /// The endpoint of an export file: a ConfigMap (`data`) or a Secret (`data`, base64, or
    /// `stringData`) as the operator writes into the team's namespace and the standalone broker
    /// into `<data-dir>/exports/`.
    pub fn from_export_file(path: &Path) -> Result<Self, ConfigError> {
        let text = read_file("the export", path)?;
        let not_export = |reason: String| ConfigError::NotAnExport {
            path: path.to_path_buf(),
            reason,
        };
        let text = String::from_utf8(text).map_err(|_| not_export("not UTF-8".into()))?;
        let document: serde_json::Value = serde_saphyr::from_str(&text)
            .map_err(|e| not_export(e.to_string().lines().next().unwrap_or_default().to_owned()))?;
        let mut data = BTreeMap::new();
        let strings = |value: &serde_json::Value| -> BTreeMap<String, String> {
            value
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        };
        match document["kind"].as_str() {
            Some("ConfigMap") => data = strings(&document["data"]),
            Some("Secret") => {
                for (key, value) in strings(&document["data"]) {
                    let decoded = enmasse_types::base64::decode(value.trim())
                        .and_then(|bytes| String::from_utf8(bytes).ok())
                        .ok_or_else(|| not_export(format!("data.{key} is not base64 of UTF-8 text")))?;
                    data.insert(key, decoded);
                }
                data.extend(strings(&document["stringData"]));
            }
            Some(other) => return Err(not_export(format!("its kind is {other}"))),
            None => return Err(not_export("it has no kind".into())),
        }
        Self::from_export(&data)
    }

    /// The endpoint of `amqp://[user:password@]host[:port]` or `amqps://...` (default ports 5672 and
    /// 5671). A user in the URL logs in with SCRAM-SHA-256. `amqps` needs a CA: set it with
    /// [`MessagingConfig::tls`].
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::InvalidUrl {
            url: redact(url),
            reason: reason.to_owned(),
        };
        let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        let tls = match parsed.scheme() {
            "amqp" => false,
            "amqps" => true,
            _ => return Err(invalid("the scheme must be amqp or amqps")),
        };
        let host = parsed.host_str().ok_or_else(|| invalid("it has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let mut config = Self::new(host, parsed.port().unwrap_or(if tls { 5671 } else { 5672 }));
        if tls {
            config.tls_ca = Some(Vec::new());
        }
        if !parsed.username().is_empty() {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            config.credentials = Credentials::Scram {
                username: decode(parsed.username()),
                password: decode(parsed.password().unwrap_or_default()),
            };
        }
        Ok(config)
    }

    /// Connects with TLS, trusting the CA certificates in `ca_pem`.
    pub fn tls(mut self, ca_pem: Vec<u8>) -> Self {
        self.tls_ca = Some(ca_pem);
        self
    }

    /// Connects with TLS, trusting the CA certificates in the PEM file `path`.
    pub fn tls_ca_file(self, path: &Path) -> Result<Self, ConfigError> {
        let pem = read_file("the CA file", path)?;
        Ok(self.tls(pem))
    }

    /// Logs in with `credentials`.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Gives up opening a connection after `timeout`.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Announces `id` as the connection's container id.
    pub fn container_id(mut self, id: impl Into<String>) -> Self {
        self.container_id = Some(id.into());
        self
    }
}

/// The CA certificates mounted with the service account: `ca.crt`, and `service-ca.crt` where
/// OpenShift adds its service CA.
fn service_account_ca(dir: Option<&Path>) -> Result<Vec<u8>, ConfigError> {
    let Some(dir) = dir else {
        return Err(ConfigError::MissingVariable("MESSAGING_CA_FILE"));
    };
    let mut pem = read_file("the service account's CA", &dir.join("ca.crt"))?;
    if let Ok(service_ca) = std::fs::read(dir.join("service-ca.crt")) {
        pem.push(b'\n');
        pem.extend(service_ca);
    }
    Ok(pem)
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// `url` with its password replaced, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests;
