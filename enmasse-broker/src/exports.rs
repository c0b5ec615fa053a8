//! Endpoint exports in standalone mode: the objects an `AddressSpace` asks for in
//! `spec.endpoints[].exports`, written as Kubernetes manifests under `<data-dir>/exports/` with the
//! keys the operator writes in a cluster (`service.host`, `service.port.<port>`, `ca.crt`).

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

/// The keys of an export: where the space's AMQP listener really is.
pub fn keys(amqp: SocketAddr) -> BTreeMap<String, String> {
    let host = if amqp.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        amqp.ip().to_string()
    };
    BTreeMap::from([
        ("service.host".to_owned(), host),
        ("service.port.amqp".to_owned(), amqp.port().to_string()),
    ])
}

/// Writes every export the space asks for; a file is rewritten only when its content changes.
pub fn write(data_dir: &Path, space: &AddressSpace, amqp: SocketAddr) -> Result<Vec<PathBuf>, ExportError> {
    let dir = data_dir.join("exports");
    let keys = keys(amqp);
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
