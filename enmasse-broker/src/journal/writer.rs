//! The journal's writer: one thread that owns the files, takes every record the broker sends,
//! writes them in batches, and syncs once per batch (group commit): however many deliveries wait,
//! they share one `fdatasync`. When the current segment is full it starts the next one and
//! reclaims old ones, copying the few live messages of a sparse oldest segment forward.

use prometheus_client::metrics::histogram::Histogram;
use std::{
    collections::{HashMap, HashSet},
    fs::File,
    io::{self, Write},
    path::PathBuf,
    sync::Arc,
};

use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::{
    ledger::{Ledger, Live},
    record::Record,
    segments,
};
use crate::store::StoreError;

/// The most bytes written in one batch.
const BATCH_BYTES: usize = 8 << 20;

/// What the broker asks of the writer.
pub(crate) enum Command {
    /// Make an encoded add record durable, then say so.
    Add {
        id: u64,
        address: Arc<str>,
        record: Vec<u8>,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Make a transaction record durable (its adds at their offsets within it), then say so.
    Commit {
        record: Vec<u8>,
        adds: Vec<(u64, Arc<str>, u64, u32)>,
        removes: Vec<u64>,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Add a message again with its new delivery count, if it is still in the journal; nobody
    /// waits for it.
    Recount {
        id: u64,
        address: Arc<str>,
        record: Vec<u8>,
    },
    /// Record that a message was settled for good (if it is in the journal).
    Remove { id: u64 },
    /// Record that an address and its messages were removed.
    DropAddress { address: Arc<str> },
    /// Sync everything written so far, then say so.
    Sync(oneshot::Sender<()>),
}

/// The writer's state.
pub(crate) struct Writer {
    pub(crate) dir: PathBuf,
    pub(crate) segment_size: u64,
    pub(crate) ledger: Ledger,
    pub(crate) current: u64,
    pub(crate) file: File,
    pub(crate) size: u64,
    /// How long each write that durable messages wait for took, its sync included.
    pub(crate) syncs: Histogram,
}

/// What a batch added, removed and dropped so far.
#[derive(Default)]
struct Pending {
    added: HashSet<u64>,
    addresses: HashSet<Arc<str>>,
    removed: HashSet<u64>,
    /// Addresses dropped, with the messages added to them after the drop.
    dropped: HashMap<Arc<str>, HashSet<u64>>,
}

impl Pending {
    fn added(&mut self, id: u64, address: &Arc<str>) {
        self.added.insert(id);
        self.removed.remove(&id);
        self.addresses.insert(address.clone());
        if let Some(after) = self.dropped.get_mut(address) {
            after.insert(id);
        }
    }

    fn dropped(&mut self, address: Arc<str>) {
        self.dropped.insert(address, HashSet::new());
    }

    /// Whether message `id` of `address` is in the journal, this batch so far included.
    fn is_live(&self, ledger: &Ledger, id: u64, address: &Arc<str>) -> bool {
        let dropped = self
            .dropped
            .get(address)
            .is_some_and(|after| !after.contains(&id));
        (ledger.is_live(id) || self.added.contains(&id)) && !self.removed.contains(&id) && !dropped
    }
}

/// A change to the ledger, applied once its record is written.
enum Change {
    Add { id: u64, live: Live },
    Remove { id: u64 },
    DropAddress { address: Arc<str> },
}

impl Writer {
    /// Serves commands until every sender is gone, then syncs.
    pub(crate) fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut buffer = Vec::with_capacity(1 << 20);
        while let Some(first) = commands.blocking_recv() {
            let mut batch = vec![first];
            let mut bytes = 0;
            while bytes < BATCH_BYTES {
                match commands.try_recv() {
                    Ok(command) => {
                        if let Command::Add { record, .. }
                        | Command::Commit { record, .. }
                        | Command::Recount { record, .. } = &command
                        {
                            bytes += record.len();
                        }
                        batch.push(command);
                    }
                    Err(_) => break,
                }
            }
            self.write(batch, &mut buffer);
            if self.size >= self.segment_size
                && let Err(error) = self.roll()
            {
                warn!(%error, "failed to start a new journal segment; writing on in the current one");
            }
        }
        if let Err(error) = self.file.sync_data() {
            warn!(%error, "failed to sync the journal at shutdown");
        }
    }

    /// Writes one batch and syncs it if anything in it waits for durability.
    fn write(&mut self, batch: Vec<Command>, buffer: &mut Vec<u8>) {
        buffer.clear();
        let mut changes = Vec::with_capacity(batch.len());
        let mut added = Vec::new();
        let mut synced = Vec::new();
        // What this batch does before its changes reach the ledger, which is told only once the
        // batch is written: whether a message or an address is in the journal depends on both.
        let mut pending = Pending::default();
        for command in batch {
            match command {
                Command::Recount { id, address, record } => {
                    if !pending.is_live(&self.ledger, id, &address) {
                        continue;
                    }
                    let live = self.live_at(self.size + buffer.len() as u64, &record, &address);
                    buffer.extend_from_slice(&record);
                    changes.push(Change::Add { id, live });
                }
                Command::Add {
                    id,
                    address,
                    record,
                    done,
                } => {
                    pending.added(id, &address);
                    let live = self.live_at(self.size + buffer.len() as u64, &record, &address);
                    buffer.extend_from_slice(&record);
                    changes.push(Change::Add { id, live });
                    added.push(done);
                }
                Command::Commit {
                    record,
                    adds,
                    removes,
                    done,
                } => {
                    let start = self.size + buffer.len() as u64;
                    for (id, address, offset, len) in adds {
                        pending.added(id, &address);
                        let live = Live {
                            segment: self.current,
                            offset: start + offset,
                            len,
                            address: self.ledger.intern(&address),
                        };
                        changes.push(Change::Add { id, live });
                    }
                    pending.removed.extend(removes.iter().copied());
                    changes.extend(removes.into_iter().map(|id| Change::Remove { id }));
                    buffer.extend_from_slice(&record);
                    added.push(done);
                }
                Command::Remove { id } => {
                    // A message is queued only once its add is durable, so its remove never shares
                    // a batch with it; and a message that was never durable costs nothing here.
                    if self.ledger.is_live(id) || pending.added.contains(&id) {
                        Record::Remove { id }.encode(buffer);
                        changes.push(Change::Remove { id });
                        pending.removed.insert(id);
                    }
                }
                Command::DropAddress { address } => {
                    if self.ledger.holds(&address) || pending.addresses.contains(&address) {
                        Record::DropAddress { address: &address }.encode(buffer);
                        pending.dropped(address.clone());
                        changes.push(Change::DropAddress { address });
                    }
                }
                Command::Sync(done) => synced.push(done),
            }
        }
        let must_sync = !added.is_empty() || !synced.is_empty();
        let started = std::time::Instant::now();
        let written = self.file.write_all(buffer).and_then(|()| match must_sync {
            true => self.file.sync_data(),
            false => Ok(()),
        });
        if must_sync {
            self.syncs.observe(started.elapsed().as_secs_f64());
        }
        match written {
            Ok(()) => {
                self.size += buffer.len() as u64;
                self.ledger.grew(self.current, buffer.len() as u64);
                for change in changes {
                    match change {
                        Change::Add { id, live } => self.ledger.add(id, live),
                        Change::Remove { id } => {
                            self.ledger.remove(id, self.current);
                        }
                        Change::DropAddress { address } => {
                            self.ledger.drop_address(&address, self.current);
                        }
                    }
                }
                for done in added {
                    let _ = done.send(Ok(()));
                }
            }
            Err(error) => {
                warn!(%error, segment = self.current, "failed to write to the journal");
                let failed = StoreError(format!("failed to write the journal: {error}"));
                for done in added {
                    let _ = done.send(Err(failed.clone()));
                }
                // Whatever part of the batch reached the file would sit in front of later records
                // as a torn one: cut it off, or else start a fresh segment.
                if self.file.set_len(self.size).is_err()
                    && let Err(error) = self.roll()
                {
                    warn!(%error, "failed to start a new journal segment after a write failed");
                }
            }
        }
        for done in synced {
            let _ = done.send(());
        }
    }

    /// Where an add record of the current segment at `offset` lies.
    fn live_at(&mut self, offset: u64, record: &[u8], address: &str) -> Live {
        Live {
            segment: self.current,
            offset,
            len: record.len() as u32,
            address: self.ledger.intern(address),
        }
    }

    /// Starts the next segment, then reclaims what old segments allow.
    fn roll(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        let next = self.current + 1;
        self.file = segments::create(&self.dir, next)?;
        self.current = next;
        self.size = super::record::MAGIC.len() as u64;
        self.ledger.open_segment(next, self.size);
        self.reclaim()
    }

    /// Deletes every segment nothing needs; then, while there are more than two segments and the
    /// oldest is sparse (its live messages take under a quarter of it), copies its live records
    /// into the current segment so that it can go too.
    pub(crate) fn reclaim(&mut self) -> io::Result<()> {
        loop {
            let deletable = self.ledger.deletable(self.current);
            for segment in &deletable {
                segments::delete(&self.dir, *segment)?;
                self.ledger.deleted(*segment);
            }
            if !deletable.is_empty() {
                continue;
            }
            let Some((&oldest, usage)) = self.ledger.segments.first_key_value() else {
                return Ok(());
            };
            let sparse = usage.live_bytes.saturating_mul(4) < usage.size;
            if oldest == self.current || self.ledger.segments.len() <= 2 || !sparse {
                return Ok(());
            }
            self.copy_forward(oldest)?;
        }
    }

    /// Copies the live records of `segment` into the current one, durably.
    fn copy_forward(&mut self, segment: u64) -> io::Result<()> {
        let live = self.ledger.live_in(segment);
        let bytes = std::fs::read(segments::path(&self.dir, segment))?;
        let mut copied = Vec::new();
        let mut moved = Vec::with_capacity(live.len());
        for (id, old) in live {
            let start = old.offset as usize;
            let Some(record) = bytes.get(start..start + old.len as usize) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("segment {segment} is shorter than the record of message {id} it should hold"),
                ));
            };
            let offset = self.size + copied.len() as u64;
            copied.extend_from_slice(record);
            moved.push((
                id,
                Live {
                    segment: self.current,
                    offset,
                    ..old
                },
            ));
        }
        self.file.write_all(&copied)?;
        self.file.sync_data()?;
        self.size += copied.len() as u64;
        self.ledger.grew(self.current, copied.len() as u64);
        info!(
            segment,
            messages = moved.len(),
            bytes = copied.len(),
            "copied the live messages of a sparse journal segment forward"
        );
        for (id, live) in moved {
            self.ledger.add(id, live);
        }
        Ok(())
    }
}
