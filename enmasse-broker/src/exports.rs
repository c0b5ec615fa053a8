//! Endpoint exports in standalone mode: the objects an `AddressSpace` asks for in
//! `spec.endpoints[].exports` (see `enmasse_types::exports`), written as Kubernetes manifests
//! under `<data-dir>/exports/`, as the operator writes them into the namespace in a cluster.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use enmasse_types::{
    error::InvalidField, exports, manifests, names::FileName, resources::address_space::AddressSpace,
};

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
    /// An export's name is not one a file may have below the data directory: nothing is written.
    #[error("refused to write the exports")]
    Name(#[source] InvalidField),
}

/// Where the space's listeners really are, and the CA their certificate chains to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// The plain `amqp` listener, if on.
    pub amqp: Option<SocketAddr>,
    /// The `amqps` listener, if on.
    pub amqps: Option<SocketAddr>,
    /// The AMQP over WebSocket listener (`https` of `messaging-wss`), if on.
    pub wss: Option<SocketAddr>,
    /// The CA certificate (PEM) clients trust for `amqps`.
    pub ca_pem: Option<String>,
    /// Where clients on other machines reach each exposed endpoint, by endpoint name.
    pub external: BTreeMap<String, exports::External>,
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

impl Endpoint {
    /// The endpoint as the exports describe it.
    pub fn described(&self) -> exports::Endpoint {
        let ports = [("amqp", self.amqp), ("amqps", self.amqps), ("https", self.wss)]
            .into_iter()
            .filter_map(|(name, addr)| Some((name.to_owned(), addr?.port())))
            .collect();
        exports::Endpoint {
            host: self.host(),
            ports,
            ca_pem: self.ca_pem.clone(),
            external: self.external.clone(),
        }
    }
}

/// Writes every export the space asks for, as `<data-dir>/exports/<name>.yaml`; a file is
/// rewritten only when its content changes. Every name is checked first, and one that is not a
/// single, plain path component (`..`, `/`, an absolute path) writes nothing at all.
pub fn write(
    data_dir: &Path,
    space: &AddressSpace,
    endpoint: &Endpoint,
) -> Result<Vec<PathBuf>, ExportError> {
    let dir = data_dir.join("exports");
    let exports = exports::exports(space, &endpoint.described());
    let names = exports
        .iter()
        .enumerate()
        .map(|(n, export)| FileName::new(&format!("exports[{n}].name"), export.name()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ExportError::Name)?;
    let mut written = Vec::new();
    for (export, name) in exports.iter().zip(names) {
        let text =
            manifests::to_yaml(export).map_err(|e| ExportError::Render(format!("{}: {e}", export.name())))?;
        let path = dir.join(format!("{}.yaml", name.as_str()));
        write_if_changed(&path, &text)?;
        written.push(path);
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
