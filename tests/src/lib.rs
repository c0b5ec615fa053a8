//! End-to-end scenarios across the EnMasse crates.
//!
//! The scenarios live under `tests/`: each file drives the public API of several crates the way a
//! user would, over the project's own example manifests. This library holds what they share, and
//! [`standalone`] serves the client's tests too.

pub mod standalone;

use std::path::{Path, PathBuf};

use enmasse_types::{
    catalog::Catalog,
    manifests::{self, Document, DocumentError},
};

/// The root of the repository.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Every `.yaml` file below `dir`, sorted.
pub fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Reads every document of every YAML file below the given directories.
pub fn read_documents(dirs: &[&Path]) -> std::io::Result<Vec<(PathBuf, Result<Document, DocumentError>)>> {
    let mut documents = Vec::new();
    for dir in dirs {
        for file in yaml_files(dir)? {
            let text = std::fs::read_to_string(&file)?;
            documents.extend(manifests::parse(&text).into_iter().map(|d| (file.clone(), d)));
        }
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
