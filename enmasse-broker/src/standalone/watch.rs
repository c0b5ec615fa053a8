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
    event::{AccessKind, AccessMode},
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
}

impl Touched {
    fn add(&mut self, event: Event) {
        // Reads (the broker's own among them) are not changes; a file closed after writing is.
        let read =
            matches!(event.kind, EventKind::Access(kind) if kind != AccessKind::Close(AccessMode::Write));
        if !read {
            self.paths.extend(event.paths);
        }
    }

    fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

/// The file system's notifications for some paths.
pub(crate) struct Notifications {
    // Watching stops when it is dropped.
    _watcher: RecommendedWatcher,
    events: mpsc::UnboundedReceiver<notify::Result<Event>>,
}

impl std::fmt::Debug for Notifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifications").finish_non_exhaustive()
    }
}

impl Notifications {
    /// Watches `paths`: a directory with everything below it, a file through its directory (an
    /// editor's save replaces the file, and a watch on the file itself with it).
    pub(crate) fn watch(paths: &[PathBuf]) -> notify::Result<Self> {
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
        })
    }

    /// Waits for the next change: the paths named by its first event and by those that follow
    /// within [`QUIET`] of each other, for at most [`MAX_WAIT`]. `Err` with why if the watcher
    /// stopped or reported an error (an overflow: changes were lost); the caller looks at
    /// everything then.
    pub(crate) async fn next(&mut self) -> Result<Touched, String> {
        let mut touched = Touched::default();
        while touched.is_empty() {
            match self.events.recv().await {
                Some(Ok(event)) => touched.add(event),
                Some(Err(err)) => return Err(err.to_string()),
                None => return Err("the watcher stopped".to_owned()),
            }
        }
        let deadline = Instant::now() + MAX_WAIT;
        loop {
            let quiet = (Instant::now() + QUIET).min(deadline);
            match tokio::time::timeout_at(quiet, self.events.recv()).await {
                Ok(Some(Ok(event))) => touched.add(event),
                Ok(Some(Err(err))) => return Err(err.to_string()),
                Ok(None) | Err(_) => return Ok(touched),
            }
        }
    }
}

#[cfg(test)]
mod tests;
