//! Finding the manifests of a GitOps directory: every `.yaml`/`.yml` file below the paths given,
//! read whole. The standalone broker and `enmasse validate` read directories the same way.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

/// One file found: its path, and its text or why it could not be read.
pub type ManifestFile = (PathBuf, Result<String, String>);

/// Every YAML file below `paths` (a path that is a file is taken as it is), with its content or
/// why it could not be read, sorted by path. Fails only if a directory cannot be listed.
pub fn read_files(paths: &[PathBuf]) -> std::io::Result<Vec<ManifestFile>> {
    Ok(list_files(paths)?
        .into_iter()
        .map(|path| {
            let text = read_file(&path);
            (path, text)
        })
        .collect())
}

/// The paths of every YAML file below `paths` (a path that is a file is taken as it is). Fails
/// only if a directory cannot be listed.
pub fn list_files(paths: &[PathBuf]) -> std::io::Result<BTreeSet<PathBuf>> {
    let mut files = BTreeSet::new();
    let mut pending: Vec<PathBuf> = Vec::new();
    for path in paths {
        if path.is_file() {
            files.insert(path.clone());
        } else {
            pending.push(path.clone());
        }
    }
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?
        {
            let path = entry?.path();
            // A mounted ConfigMap or Secret keeps its files in `..data` and `..<timestamp>`
            // besides the links to them: each file is read once, by its link.
            if path
                .file_name()
                .is_some_and(|name| name.as_encoded_bytes().starts_with(b".."))
            {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.insert(path);
            }
        }
    }
    Ok(files)
}

/// The text of a manifest file, or why it could not be read.
pub fn read_file(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("failed to read the file: {e}"))
}
