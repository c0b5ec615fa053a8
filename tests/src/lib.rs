//! End-to-end scenarios across the EnMasse crates.
//!
//! The scenarios live under `tests/`: each file drives the public API of several crates the way a
//! user would, over the project's own example manifests. This library holds what they share, and
//! [`standalone`] serves the client's tests too, and [`kube_api`] the operator's and the client's
//! tests of Kubernetes API calls.

pub mod kube_api;
pub mod standalone;

use std::path::{Path, PathBuf};

use enmasse_types::{
    catalog::{Catalog, TenantResources},
    manifests::{self, Document, DocumentError},
};

/// The root of the repository.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Reads every document of every YAML file below the given directories, found as the standalone
/// broker finds them ([`manifests::read_files`]).
pub fn read_documents(dirs: &[&Path]) -> std::io::Result<Vec<(PathBuf, Result<Document, DocumentError>)>> {
    let dirs: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    let mut documents = Vec::new();
    for (file, text) in manifests::read_files(&dirs)? {
        let text = text.map_err(|e| std::io::Error::other(format!("{}: {e}", file.display())))?;
        documents.extend(manifests::parse(&text).into_iter().map(|d| (file.clone(), d)));
    }
    Ok(documents)
}

/// A catalog of every manifest below the given directories, or the first document that failed.
pub fn catalog(dirs: &[&Path]) -> Result<Catalog, String> {
    let mut catalog = Catalog::default();
    for (file, document) in read_documents(dirs).map_err(|e| e.to_string())? {
        let document =
            document.map_err(|e| format!("{}: {}", file.display(), enmasse_types::error::one_line(&e)))?;
        catalog.add(document.manifest);
    }
    Ok(catalog)
}

/// The project's GitOps example: its catalog, and the manifests of its team's namespace, `team1`.
pub fn example_team() -> Result<(Catalog, TenantResources), String> {
    let catalog = catalog(&[&repo_root().join("examples")])?;
    let team = catalog
        .tenants("default")
        .into_iter()
        .find(|t| t.namespace == "team1")
        .ok_or("the example has no namespace team1")?;
    Ok((catalog, team))
}
