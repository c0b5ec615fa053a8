//! The manifests as last read: each file's text and parsed documents, kept between reloads so
//! that a change costs the files it touched, not the directory.
//!
//! A file is read again when a notification names it, or when its size or modification time
//! differ from the last look; a directory walk and a `stat` per file tell that. A file read again
//! with the same text is no change.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

use enmasse_types::manifests::{self, Document, DocumentError, Manifest};

/// What tells, without reading it, whether a file may have changed: its size and modification
/// time, and on Unix its inode and change time, which no tool sets back (`cp -p` and `rsync -a`
/// keep the modification time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    changed: (u64, i64, i64),
}

impl Stamp {
    fn of(path: &Path) -> Option<Self> {
        let metadata = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let changed = {
            use std::os::unix::fs::MetadataExt;
            (metadata.ino(), metadata.ctime(), metadata.ctime_nsec())
        };
        #[cfg(not(unix))]
        let changed = (0, 0, 0);
        Some(Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            changed,
        })
    }
}

/// One file as last read.
#[derive(Debug)]
pub(crate) struct Cached {
    stamp: Option<Stamp>,
    /// Its text, or why it could not be read.
    pub(crate) text: Result<Arc<str>, String>,
    /// Its documents, parsed.
    pub(crate) documents: Arc<[Result<Document, DocumentError>]>,
}

/// Every manifest file below the paths given, as last read.
#[derive(Debug, Default)]
pub(crate) struct ManifestFiles {
    files: BTreeMap<PathBuf, Cached>,
}

impl ManifestFiles {
    /// The files, by path.
    pub(crate) fn files(&self) -> &BTreeMap<PathBuf, Cached> {
        &self.files
    }

    /// Brings the files below `paths` up to date: reads again those that are new, that `touched`
    /// names (all of them if `everything`), or whose stamp changed, and forgets those gone.
    /// Returns whether any file's text changed, appeared or went. Fails only if a directory cannot
    /// be listed; nothing is forgotten then.
    pub(crate) fn update(
        &mut self,
        paths: &[PathBuf],
        touched: &BTreeSet<PathBuf>,
        everything: bool,
    ) -> std::io::Result<bool> {
        let found = manifests::list_files(paths)?;
        let mut changed = false;
        let before = self.files.len();
        self.files.retain(|path, _| found.contains(path));
        changed |= self.files.len() != before;
        for path in found {
            let stamp = Stamp::of(&path);
            if let Some(cached) = self.files.get(&path)
                && cached.stamp.is_some()
                && cached.stamp == stamp
                && !everything
                && !touched.contains(&path)
            {
                continue;
            }
            let text = manifests::read_file(&path).map(Arc::<str>::from);
            if let Some(cached) = self.files.get_mut(&path)
                && cached.text == text
            {
                cached.stamp = stamp;
                continue;
            }
            // Parsed only when its text changed: every address gets a new version.
            let documents = parse(&path, &text, None);
            self.files.insert(
                path,
                Cached {
                    stamp,
                    text,
                    documents,
                },
            );
            changed = true;
        }
        Ok(changed)
    }
}

impl ManifestFiles {
    /// Reads every file below `paths`, whatever its stamp; if any changed, appeared or went, parses
    /// them all again. For file systems whose modification times cannot be trusted, and the way
    /// every reload worked before files were kept. Returns whether any changed.
    pub(crate) fn reread_all(&mut self, paths: &[PathBuf]) -> std::io::Result<bool> {
        let found = manifests::list_files(paths)?;
        let texts: Vec<(PathBuf, Result<Arc<str>, String>)> = found
            .into_iter()
            .map(|path| {
                let text = manifests::read_file(&path).map(Arc::<str>::from);
                (path, text)
            })
            .collect();
        let same = texts.len() == self.files.len()
            && texts
                .iter()
                .all(|(path, text)| self.files.get(path).is_some_and(|cached| cached.text == *text));
        if same {
            return Ok(false);
        }
        let before = std::mem::take(&mut self.files);
        self.files = texts
            .into_iter()
            .map(|(path, text)| {
                // Parsed again whatever its text; the same text keeps its addresses' versions.
                let documents = parse(&path, &text, before.get(&path));
                let stamp = Stamp::of(&path);
                (
                    path,
                    Cached {
                        stamp,
                        text,
                        documents,
                    },
                )
            })
            .collect();
        Ok(true)
    }
}

/// The resource version of the addresses of the last file read, process-wide: a version is never
/// given twice, even by a files cache built anew (the evaluator outlives it).
static READS: AtomicU64 = AtomicU64::new(0);

/// The documents of `text` at `path`, each address given a version as an API server gives one: its
/// uid names its file and its place in it, its resource version this read of the file, or the
/// version it had when `before` is the same text. An address of a file not read again keeps its
/// version, so the evaluator knows it unchanged without comparing it field by field; whatever
/// versions the file itself holds are replaced.
fn parse(
    path: &Path,
    text: &Result<Arc<str>, String>,
    before: Option<&Cached>,
) -> Arc<[Result<Document, DocumentError>]> {
    let Ok(text) = text else { return Arc::from([]) };
    let before = before.filter(|cached| cached.text.as_ref().ok() == Some(text));
    let read = READS.fetch_add(1, Ordering::Relaxed) + 1;
    let mut documents = manifests::parse(text);
    for (index, document) in documents.iter_mut().enumerate() {
        if let Ok(Document {
            manifest: Manifest::Address(address),
            ..
        }) = document
        {
            let kept = match before.and_then(|cached| cached.documents.get(index)) {
                Some(Ok(Document {
                    manifest: Manifest::Address(was),
                    ..
                })) => was.metadata.resource_version.clone(),
                _ => None,
            };
            address.metadata.uid = Some(format!("{}#{index}", path.display()));
            address.metadata.resource_version = kept.or_else(|| Some(read.to_string()));
        }
    }
    documents.into()
}

#[cfg(test)]
mod tests;
