//! The broker under soak: a release binary in a process of its own, killed with `SIGKILL` on a
//! schedule and started again on the same data directory, its memory sampled all along.

use std::{
    fs::OpenOptions,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// Where and how the broker runs.
#[derive(Clone, Debug)]
pub(crate) struct Launch {
    /// The release broker binary.
    pub(crate) binary: PathBuf,
    /// The manifest directories.
    pub(crate) manifests: Vec<PathBuf>,
    /// Its data directory (journal and pages), kept across restarts.
    pub(crate) data_dir: PathBuf,
    /// Where AMQP clients connect.
    pub(crate) amqp: SocketAddr,
    /// Where its management API listens.
    pub(crate) management: SocketAddr,
    /// Its log, appended to by every run.
    pub(crate) log: PathBuf,
}

/// What the supervisor saw.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// The largest resident set of any run, in bytes.
    pub(crate) peak_rss: AtomicU64,
    /// `SIGKILL`s sent.
    pub(crate) kills: AtomicU64,
    /// While set, no kill is sent (a phase that needs the broker to stay up).
    pub(crate) hold: AtomicBool,
}

/// Runs the broker until `stop`, killing it every `kill_every` (unless held) and starting it again.
/// `restart` kills it at once, out of schedule.
pub(crate) async fn supervise(
    launch: Launch,
    kill_every: Duration,
    observed: Arc<Observed>,
    restart: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let mut child = start(&launch)?;
    let mut since_kill = tokio::time::Instant::now();
    let mut sample = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                let _ = child.kill().await;
                return Ok(());
            }
            () = restart.notified() => {
                kill(&mut child, &observed).await;
                child = start(&launch)?;
                since_kill = tokio::time::Instant::now();
            }
            _ = sample.tick() => {
                if let Some(rss) = child.id().and_then(rss_of) {
                    observed.peak_rss.fetch_max(rss, Ordering::Relaxed);
                }
                if let Ok(Some(status)) = child.try_wait() {
                    eprintln!("soak: the broker exited by itself ({status}); starting it again");
                    child = start(&launch)?;
                }
                if since_kill.elapsed() >= kill_every && !observed.hold.load(Ordering::Relaxed) {
                    kill(&mut child, &observed).await;
                    child = start(&launch)?;
                    since_kill = tokio::time::Instant::now();
                }
            }
        }
    }
}

async fn kill(child: &mut Child, observed: &Observed) {
    // `Child::kill` sends SIGKILL: no shutdown, no last sync.
    let _ = child.kill().await;
    observed.kills.fetch_add(1, Ordering::Relaxed);
    eprintln!(
        "soak: kill -9 of the broker ({} so far)",
        observed.kills.load(Ordering::Relaxed)
    );
}

fn start(launch: &Launch) -> std::io::Result<Child> {
    let log = OpenOptions::new().create(true).append(true).open(&launch.log)?;
    let manifests: Vec<String> = launch.manifests.iter().map(|p| p.display().to_string()).collect();
    Command::new(&launch.binary)
        .arg("--manifests")
        .arg(manifests.join(","))
        .arg("--data-dir")
        .arg(&launch.data_dir)
        .arg("--listen")
        .arg(launch.amqp.to_string())
        .arg("--listen-tls")
        .arg("127.0.0.1:0")
        .arg("--management")
        .arg(launch.management.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
}

/// The resident set of process `pid`, in bytes.
fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Whether the broker's log tells of a panic.
pub(crate) fn panicked(log: &Path) -> bool {
    std::fs::read_to_string(log).is_ok_and(|text| text.contains("panicked"))
}

/// A shared set of message numbers, for what was accepted and what came back.
#[derive(Debug, Default)]
pub(crate) struct Seen(Mutex<std::collections::HashSet<u64>>);

impl Seen {
    /// Records `n`.
    pub(crate) fn add(&self, n: u64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(n);
    }

    /// How many were recorded.
    pub(crate) fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Those recorded here and not in `other`.
    pub(crate) fn missing_from(&self, other: &Self) -> Vec<u64> {
        let mine = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let theirs = other.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut missing: Vec<u64> = mine.difference(&theirs).copied().collect();
        missing.sort_unstable();
        missing
    }
}
