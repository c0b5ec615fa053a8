//! How the standalone broker learns that its manifests changed: from the file system's own
//! notifications (inotify, through the `notify` crate), debounced so that an editor's
//! save-and-rename is one change; by looking every 200 ms where notifications cannot be had (some
//! mounted volumes, a system out of inotify watches); or, if asked, by reading every file every
//! 200 ms, for file systems whose notifications and modification times cannot be trusted.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::Duration,
};

use notify::{
    Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher,
    event::{AccessKind, AccessMode, CreateKind, ModifyKind},
};
use tokio::{sync::mpsc, time::Instant};

/// How often the manifests are looked at without notifications.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How often they are looked at even with notifications, in case one was missed (an overflowing
/// queue, a file system that reports only some changes).
pub const SAFETY_POLL: Duration = Duration::from_secs(2);

/// A change is taken once this long passes without another: an editor's save is a burst of
/// events (write a temporary file, rename it over the old one) within a few milliseconds.
const QUIET: Duration = Duration::from_millis(10);

/// A change is taken at most this long after its first event, however busy the directory.
const MAX_WAIT: Duration = Duration::from_millis(50);

/// A file written in place (`kubectl get -o yaml > file`: truncated, then written) is waited for
/// until it is closed, at most this long: a half-written file would remove the addresses it has
/// not got to yet, and their messages with them.
const WRITE_WAIT: Duration = Duration::from_secs(2);

/// How the manifests are watched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum WatchMode {
    /// The file system's notifications, and a look every 2 s; every 200 ms where there are none.
    #[default]
    Notify,
    /// Every file read every 200 ms, whatever notifications and modification times say.
    Poll,
}

/// What a batch of notifications named.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Touched {
    /// The paths named.
    pub(crate) paths: BTreeSet<PathBuf>,
    /// Whether changes may have been lost (the kernel's queue overflowed): every file is to be
    /// read again.
    pub(crate) rescan: bool,
}

impl Touched {
    fn is_empty(&self) -> bool {
        self.paths.is_empty() && !self.rescan
    }
}

/// Whether a notification about `path` may concern a manifest: a YAML file, or a directory (which
/// a path without an extension may be, even once it is gone).
fn may_be_manifest(path: &Path) -> bool {
    match path.extension() {
        None => true,
        Some(extension) => extension == "yaml" || extension == "yml" || path.is_dir(),
    }
}

/// The file system's notifications for some paths.
pub(crate) struct Notifications {
    // Watching stops when it is dropped.
    _watcher: RecommendedWatcher,
    events: mpsc::UnboundedReceiver<notify::Result<Event>>,
    /// Paths below which changes are not the manifests' (the broker's own data directory).
    ignored: Vec<PathBuf>,
    /// What the change being gathered named so far: kept here, so that a wait given up (the
    /// caller's other branch won) loses nothing.
    pending: Touched,
    /// Files opened for writing and not closed yet.
    writing: BTreeSet<PathBuf>,
}

impl std::fmt::Debug for Notifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifications").finish_non_exhaustive()
    }
}

impl Notifications {
    /// Watches `paths`: a directory with everything below it, a file through its directory (an
    /// editor's save replaces the file, and a watch on the file itself with it). Changes below
    /// `ignored` (the broker's data directory, if the manifests hold it) are passed over.
    pub(crate) fn watch(paths: &[PathBuf], ignored: &[PathBuf]) -> notify::Result<Self> {
        let (sender, events) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = sender.send(event);
        })?;
        for path in paths {
            match path.is_file() {
                true => {
                    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
                    watcher.watch(parent.unwrap_or(Path::new(".")), RecursiveMode::NonRecursive)?;
                }
                false => watcher.watch(path, RecursiveMode::Recursive)?,
            }
        }
        Ok(Self {
            _watcher: watcher,
            events,
            ignored: ignored.to_vec(),
            pending: Touched::default(),
            writing: BTreeSet::new(),
        })
    }

    fn add(&mut self, event: Event) {
        if event.need_rescan() {
            self.pending.rescan = true;
        }
        let kind = event.kind;
        for path in event.paths {
            if self.ignored.iter().any(|ignored| path.starts_with(ignored)) || !may_be_manifest(&path) {
                continue;
            }
            match kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                    self.writing.remove(&path);
                }
                // Reads (the broker's own among them) are not changes.
                EventKind::Access(_) => continue,
                EventKind::Create(CreateKind::File) | EventKind::Modify(ModifyKind::Data(_)) => {
                    self.writing.insert(path.clone());
                }
                EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)) => {
                    self.writing.remove(&path);
                }
                _ => {}
            }
            self.pending.paths.insert(path);
        }
    }

    /// Waits for the next change: the paths named by its first event and by those that follow
    /// within [`QUIET`] of each other, for at most [`MAX_WAIT`], and longer (up to
    /// [`WRITE_WAIT`]) while a file is still being written. An error the watcher reports asks
    /// for every file to be read again. `Err` if the watcher stopped. Cancel-safe: what a wait
    /// given up had gathered comes with the next.
    pub(crate) async fn next(&mut self) -> Result<Touched, String> {
        while self.pending.is_empty() {
            match self.events.recv().await {
                Some(Ok(event)) => self.add(event),
                Some(Err(_)) => self.pending.rescan = true,
                None => return Err("the watcher stopped".to_owned()),
            }
        }
        let first = Instant::now();
        loop {
            let limit = match self.writing.is_empty() {
                true => first + MAX_WAIT,
                false => first + WRITE_WAIT,
            };
            let quiet = (Instant::now() + QUIET).min(limit);
            match tokio::time::timeout_at(quiet, self.events.recv()).await {
                Ok(Some(Ok(event))) => self.add(event),
                Ok(Some(Err(_))) => self.pending.rescan = true,
                Ok(None) => return Ok(std::mem::take(&mut self.pending)),
                Err(_) if self.writing.is_empty() || Instant::now() >= limit => {
                    self.writing.clear();
                    return Ok(std::mem::take(&mut self.pending));
                }
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
