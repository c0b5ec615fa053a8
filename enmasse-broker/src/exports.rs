//! Endpoint exports in standalone mode: the objects an `AddressSpace` asks for in
//! `spec.endpoints[].exports`, written as Kubernetes manifests under `<data-dir>/exports/` with the
//! keys the operator writes in a cluster (`service.host`, `service.port.amqp`,
//! `service.port.amqps`, `ca.crt`).

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use enmasse_types::{
    base64,
    resources::address_space::{AddressSpace, ExportKind},
};
use serde_json::json;

/// Why the exports could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The file could not be written.
    #[error("failed to write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The manifest could not be rendered.
    #[error("failed to render export {0}")]
    Render(String),
}

/// Where the space's listeners really are, and the CA their certificate chains to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// The plain `amqp` listener, if on.
    pub amqp: Option<SocketAddr>,
    /// The `amqps` listener, if on.
    pub amqps: Option<SocketAddr>,
    /// The CA certificate (PEM) clients trust for `amqps`.
    pub ca_pem: Option<String>,
}

impl Endpoint {
    /// The host clients connect to.
    pub fn host(&self) -> String {
        match self.amqps.or(self.amqp).map(|a| a.ip()) {
            Some(ip) if !ip.is_unspecified() => ip.to_string(),
            _ => "localhost".to_owned(),
        }
    }
}

/// The keys of an export, as the operator writes them in a cluster.
pub fn keys(endpoint: &Endpoint) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::from([("service.host".to_owned(), endpoint.host())]);
    if let Some(amqp) = endpoint.amqp {
        keys.insert("service.port.amqp".to_owned(), amqp.port().to_string());
    }
    if let Some(amqps) = endpoint.amqps {
        keys.insert("service.port.amqps".to_owned(), amqps.port().to_string());
    }
    if let Some(ca) = &endpoint.ca_pem {
        keys.insert("ca.crt".to_owned(), ca.clone());
    }
    keys
}

/// Writes every export the space asks for; a file is rewritten only when its content changes.
pub fn write(
    data_dir: &Path,
    space: &AddressSpace,
    endpoint: &Endpoint,
) -> Result<Vec<PathBuf>, ExportError> {
    let dir = data_dir.join("exports");
    let keys = keys(endpoint);
    let mut written = Vec::new();
    for endpoint in &space.spec.endpoints {
        for export in &endpoint.exports {
            let namespace = space.metadata.namespace.clone();
            let manifest = match export.kind {
                ExportKind::ConfigMap => json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": export.name, "namespace": namespace},
                    "data": keys,
                }),
                ExportKind::Secret => json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": export.name, "namespace": namespace},
                    "data": keys.iter().map(|(k, v)| (k.clone(), base64::encode(v.as_bytes()))).collect::<BTreeMap<_, _>>(),
                }),
                ExportKind::Service => json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": export.name, "namespace": namespace},
                    "spec": {"type": "ExternalName", "externalName": keys["service.host"]},
                }),
            };
            let text = enmasse_types::manifests::to_yaml(&manifest)
                .map_err(|e| ExportError::Render(e.to_string()))?;
            let path = dir.join(format!("{}.yaml", export.name));
            write_if_changed(&path, &text)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// Writes through a temporary file and a rename, so readers never see half a file.
fn write_if_changed(path: &Path, text: &str) -> Result<(), ExportError> {
    if std::fs::read_to_string(path).is_ok_and(|current| current == text) {
        return Ok(());
    }
    let fail = |source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let temporary = path.with_extension("yaml.tmp");
    std::fs::write(&temporary, text).map_err(fail)?;
    std::fs::rename(&temporary, path).map_err(fail)
}
