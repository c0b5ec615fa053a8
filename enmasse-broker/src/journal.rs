//! The message journal: durable messages kept safe under `<data-dir>/journal`, so that a broker
//! that restarts (or is killed) serves again every message it had accepted and not yet seen
//! settled.
//!
//! An append-only log of segment files ([`segments`]) of checksummed records ([`record`]): an add
//! record for each durable message a queue takes in, a remove record for each one a consumer
//! settles for good, a drop record for each address removed. One writer thread ([`writer`]) owns
//! the files and syncs once per batch, so many deliveries share one `fdatasync`; a sender's
//! delivery is accepted only after its batch is synced. Segments whose messages are all settled
//! are deleted, and a sparse oldest segment has its few live records copied forward first
//! ([`ledger`]).
//!
//! [`Journal::open`] replays the segments in order and returns the live messages, oldest first.
//! A record cut short or scribbled on (a power cut mid-write) fails its checksum: the segment is
//! cut off there, reported, and never served.

mod ledger;
mod record;
mod segments;
mod writer;

use prometheus_client::metrics::histogram::Histogram;
use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, oneshot};

use self::{
    ledger::{Ledger, Live},
    record::Record,
    writer::{Command, Writer},
};
use crate::{
    message::{IdMap, Message},
    store::{MessageStore, Persisted, StoreError},
};

/// Why the journal could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file or directory of the journal could not be used.
    #[error("failed to {operation} {}", path.display())]
    Io {
        /// What was tried.
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// How the journal lays out its files.
#[derive(Clone, Copy, Debug)]
pub struct JournalOptions {
    /// The size at which a segment is full and the next one starts.
    pub segment_size: u64,
}

impl Default for JournalOptions {
    fn default() -> Self {
        Self {
            segment_size: 64 << 20,
        }
    }
}

/// A durable message found in the journal at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveredMessage {
    /// Its id when it was accepted; ids grow with arrival.
    pub id: u64,
    /// The address that took it in.
    pub address: Arc<str>,
    /// The AMQP-encoded message.
    pub encoded: Vec<u8>,
    /// When it expires (milliseconds since the Unix epoch), if ever.
    pub expires_at: Option<u64>,
}

/// What the journal held at start.
#[derive(Debug, Default)]
pub struct Recovery {
    /// The live messages, oldest first.
    pub messages: Vec<RecoveredMessage>,
    /// Their encoded bytes.
    pub bytes: u64,
    /// The segments read.
    pub segments: usize,
    /// The highest message id the journal has seen: new ids must be higher.
    pub last_id: u64,
    /// How long reading took.
    pub elapsed: Duration,
    /// Each segment cut off at a record that could not be trusted: what and where.
    pub tears: Vec<String>,
}

/// The journal, as the broker's [`MessageStore`].
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    commands: Mutex<Option<mpsc::UnboundedSender<Command>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    syncs: Histogram,
}

/// Upper bounds of the sync durations, in seconds: from a page cache's write to a slow disk's.
const SYNC_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

impl Journal {
    /// Opens (or creates) the journal in `dir`, replays it, and starts its writer on a fresh
    /// segment.
    pub fn open(dir: &Path, options: JournalOptions) -> Result<(Arc<Self>, Recovery), JournalError> {
        let started = Instant::now();
        let io = |operation, path: &Path| {
            let path = path.to_path_buf();
            move |source| JournalError::Io {
                operation,
                path,
                source,
            }
        };
        std::fs::create_dir_all(dir).map_err(io("create the journal directory", dir))?;
        let existing = segments::list(dir).map_err(io("list the journal directory", dir))?;
        let mut ledger = Ledger::default();
        let mut contents: IdMap<(Vec<u8>, Option<u64>)> = IdMap::default();
        let mut recovery = Recovery {
            segments: existing.len(),
            ..Recovery::default()
        };
        for &segment in &existing {
            let path = segments::path(dir, segment);
            let (size, tear) = segments::scan(dir, segment, |record, offset, len| match record {
                Record::Add {
                    id,
                    expires,
                    address,
                    message,
                } => {
                    recovery.last_id = recovery.last_id.max(id);
                    let live = Live {
                        segment,
                        offset,
                        len: len as u32,
                        address: ledger.intern(address),
                    };
                    ledger.add(id, live);
                    contents.insert(id, (message.to_vec(), expires));
                }
                Record::Remove { id } => {
                    recovery.last_id = recovery.last_id.max(id);
                    if ledger.remove(id, segment) {
                        contents.remove(&id);
                    }
                }
                // Flattened by the scan: its records come one by one.
                Record::Transaction { .. } => {}
                Record::DropAddress { address } => {
                    let gone: Vec<u64> = ledger
                        .live
                        .iter()
                        .filter(|(_, live)| &*live.address == address)
                        .map(|(id, _)| *id)
                        .collect();
                    ledger.drop_address(address, segment);
                    for id in gone {
                        contents.remove(&id);
                    }
                }
            })
            .map_err(io("read the journal segment", &path))?;
            ledger.open_segment(segment, size.max(record::MAGIC.len() as u64));
            if let Some(tear) = tear {
                recovery.tears.push(format!(
                    "{}: {} at byte {}; the {} bytes from there were cut off",
                    path.display(),
                    tear.reason,
                    tear.at,
                    tear.dropped
                ));
            }
        }
        let mut messages: Vec<RecoveredMessage> = ledger
            .live
            .iter()
            .filter_map(|(id, live)| {
                let (encoded, expires_at) = contents.remove(id)?;
                Some(RecoveredMessage {
                    id: *id,
                    address: live.address.clone(),
                    encoded,
                    expires_at,
                })
            })
            .collect();
        messages.sort_unstable_by_key(|message| message.id);
        recovery.bytes = messages.iter().map(|m| m.encoded.len() as u64).sum();
        recovery.messages = messages;

        let current = existing.last().map_or(1, |last| last + 1);
        let file = segments::create(dir, current).map_err(io("create a journal segment in", dir))?;
        let size = record::MAGIC.len() as u64;
        let syncs = Histogram::new(SYNC_BUCKETS);
        ledger.open_segment(current, size);
        let mut writer = Writer {
            dir: dir.to_path_buf(),
            segment_size: options.segment_size.max(4096),
            ledger,
            current,
            file,
            size,
            syncs: syncs.clone(),
        };
        writer.reclaim().map_err(io("reclaim journal segments in", dir))?;
        let (commands, received) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || writer.run(received))
            .map_err(io("start the journal writer for", dir))?;
        recovery.elapsed = started.elapsed();
        let journal = Arc::new(Self {
            dir: dir.to_path_buf(),
            commands: Mutex::new(Some(commands)),
            writer: Mutex::new(Some(thread)),
            syncs,
        });
        Ok((journal, recovery))
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits until everything sent so far is on disk.
    pub async fn sync(&self) {
        let (done, synced) = oneshot::channel();
        if self.send(Command::Sync(done)) {
            let _ = synced.await;
        }
    }

    /// Stops the writer once it has written and synced everything sent so far. Later messages are
    /// refused.
    pub fn close(&self) {
        self.commands.lock().unwrap_or_else(|p| p.into_inner()).take();
        let thread = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    fn send(&self, command: Command) -> bool {
        match &*self.commands.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(commands) => commands.send(command).is_ok(),
            None => false,
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

impl MessageStore for Journal {
    fn persist(&self, address: &str, message: &Message) -> Persisted {
        if address.len() > usize::from(u16::MAX) {
            return refused(format!("the address {address:.40}... is too long to journal"));
        }
        // The journal keeps the message as its sender encoded it, the bytes consumers get.
        let encoded = &message.encoded;
        let mut record = Vec::with_capacity(Record::add_len(address, message.expires_at(), encoded));
        Record::Add {
            id: message.id,
            expires: message.expires_at(),
            address,
            message: encoded,
        }
        .encode(&mut record);
        let (id, address) = (message.id, Arc::from(address));
        self.awaited(|done| Command::Add {
            id,
            address,
            record,
            done,
        })
    }

    fn recount(&self, address: &str, message: &Message) {
        if address.len() > usize::from(u16::MAX) {
            return;
        }
        let message = message.recounted();
        let mut record = Vec::with_capacity(Record::add_len(address, message.expires_at(), &message.encoded));
        Record::Add {
            id: message.id,
            expires: message.expires_at(),
            address,
            message: &message.encoded,
        }
        .encode(&mut record);
        self.send(Command::Recount {
            id: message.id,
            address: Arc::from(address),
            record,
        });
    }

    fn forget(&self, _address: &str, id: u64) {
        self.send(Command::Remove { id });
    }

    fn sync_seconds(&self) -> Option<Histogram> {
        Some(self.syncs.clone())
    }

    fn forget_address(&self, address: &str) {
        self.send(Command::DropAddress {
            address: Arc::from(address),
        });
    }

    fn commit(&self, adds: &[(&str, &Message)], removes: &[u64]) -> Persisted {
        let size: usize = adds
            .iter()
            .map(|(address, message)| Record::add_len(address, message.expires_at(), &message.encoded))
            .sum::<usize>()
            + removes.len() * (record::HEADER + 9);
        if size + 1 > record::MAX_BODY {
            return refused(format!(
                "a transaction of {size} bytes is larger than a journal record may be"
            ));
        }
        let mut records = Vec::with_capacity(size);
        let mut placed = Vec::with_capacity(adds.len());
        for (address, message) in adds {
            if address.len() > usize::from(u16::MAX) {
                return refused(format!("the address {address:.40}... is too long to journal"));
            }
            let at = records.len();
            Record::Add {
                id: message.id,
                expires: message.expires_at(),
                address,
                message: &message.encoded,
            }
            .encode(&mut records);
            let offset = (record::TRANSACTION_RECORDS_AT + at) as u64;
            let len = u32::try_from(records.len() - at).unwrap_or(u32::MAX);
            placed.push((message.id, Arc::from(*address), offset, len));
        }
        for id in removes {
            Record::Remove { id: *id }.encode(&mut records);
        }
        let mut record = Vec::with_capacity(records.len() + record::TRANSACTION_RECORDS_AT);
        Record::Transaction { records: &records }.encode(&mut record);
        let removes = removes.to_vec();
        self.awaited(|done| Command::Commit {
            record,
            adds: placed,
            removes,
            done,
        })
    }
}

impl Journal {
    /// Sends the command `command` makes of a completion, and waits for that completion.
    fn awaited(&self, command: impl FnOnce(oneshot::Sender<Result<(), StoreError>>) -> Command) -> Persisted {
        let (done, persisted) = oneshot::channel();
        if !self.send(command(done)) {
            return refused("the journal is closed".to_owned());
        }
        Persisted::Later(Box::pin(async move {
            persisted
                .await
                .unwrap_or_else(|_| Err(StoreError("the journal writer stopped".to_owned())))
        }))
    }
}

/// A persistence that failed before it began, saying why.
fn refused(reason: String) -> Persisted {
    let error = StoreError(reason);
    Persisted::Later(Box::pin(async move { Err(error) }))
}

#[cfg(test)]
mod tests;
