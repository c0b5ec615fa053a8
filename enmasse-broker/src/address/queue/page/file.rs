//! A page on disk: a directory of segment files of records appended at the tail and read back from
//! the head, with a cursor that says how far the head has been made safe elsewhere.
//!
//! A record is its length (u32) and checksum (CRC-32 of what follows, u32), and then: id (u64),
//! size (u64), expiry (u64, 0 for none), delivery count (u32), flags (u8), address length (u16),
//! the address, and the message as it was encoded. A record whose checksum does not match is
//! where a segment's readable records end: a write the crash cut short. The [`ONLY_COPY`] flag marks a durable message whose only safe copy is this record
//! (it was paged instead of journaled); such records are synced before their sender hears they
//! are safe, and found again after a restart, from the cursor on.
//!
//! The directory holds `queue` (the name the broker's store keeps the queue's messages under),
//! `cursor` (two slots, so that a write cut short leaves the previous one), and the segments.

use std::{
    collections::{BTreeMap, HashSet},
    fs::{self, File, OpenOptions},
    io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use tracing::warn;

use crate::message::Message;

/// The size past which a page starts a new segment file.
pub(in crate::address::queue) const SEGMENT_BYTES: u64 = 64 << 20;

/// The bytes of a record before its address: id, size, expiry, delivery count, flags, address
/// length.
const FIXED: usize = 8 + 8 + 8 + 4 + 1 + 2;

/// The length and checksum in front of every record.
pub(in crate::address::queue) const LEAD: u64 = 8;

/// No record is longer: a length past it is read from a damaged file, not allocated.
pub(in crate::address::queue) const MAX_RECORD: usize = 256 << 20;

/// The record is a durable message's only safe copy.
pub(in crate::address::queue) const ONLY_COPY: u8 = 1;

/// The file naming the queue a page belongs to.
const QUEUE_FILE: &str = "queue";

/// The file of the cursor's two slots.
pub(in crate::address::queue) const CURSOR_FILE: &str = "cursor";

/// A cursor slot: sequence, segment, offset, check.
const SLOT: u64 = 32;

/// Mixed into a slot's check, so that zeroes are not a valid slot.
const SLOT_MAGIC: u64 = 0x656e_6d61_7373_6531;

/// Where a record starts: a segment and an offset in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(in crate::address::queue) struct Position {
    pub(in crate::address::queue) segment: u64,
    pub(in crate::address::queue) offset: u64,
}

/// How far a page's appends have reached the disk, shared with those who wait for it.
#[derive(Debug, Default)]
pub(crate) struct Synced {
    /// Appends made safe so far.
    pub(in crate::address::queue) upto: AtomicU64,
    /// The page was given up before its appends were known to be safe: waiters hear it failed.
    pub(in crate::address::queue) failed: AtomicBool,
    /// One sync at a time: a waiter that finds its append synced by another's does not sync.
    pub(in crate::address::queue) turn: tokio::sync::Mutex<()>,
}

/// What a restart found of a page: where its segments end, and the records to pass over.
#[derive(Debug, Default)]
pub(in crate::address::queue) struct Found {
    /// Segments up to this one were written before the restart.
    pub(in crate::address::queue) through: u64,
    /// Where each of those segments' intact records end.
    pub(in crate::address::queue) ends: BTreeMap<u64, u64>,
    /// Records whose message the journal holds (it was being read back): passed over.
    pub(in crate::address::queue) skip: HashSet<u64>,
}

/// One queue's page.
#[derive(Debug)]
pub(in crate::address::queue) struct PageFile {
    dir: PathBuf,
    segment_bytes: u64,
    writer: BufWriter<File>,
    write_segment: u64,
    written: u64,
    /// Appends since the page was opened, and whether some since the last sync are only copies.
    appended: u64,
    unsynced_only_copies: bool,
    synced: Arc<Synced>,
    reader: Option<BufReader<File>>,
    /// Where the reader is.
    read: Position,
    /// The next record, read ahead to learn its size: its message, whether it is an only copy,
    /// and where the record after it starts.
    head: Option<(Message, bool, Position)>,
    /// Where the record after the last one taken starts.
    taken: Position,
    /// The lowest segment still on disk.
    lowest: u64,
    /// The cursor's next sequence number.
    cursor_seq: u64,
    found: Option<Found>,
    last_address: Option<Arc<str>>,
    /// Remove the directory when dropped: the page was emptied or its queue removed.
    discard: bool,
    /// Whether it ever held an only copy: a page that did not is removed however it is dropped.
    held_only_copies: bool,
    /// Some only copies read back could not be journaled: the cursor and the segments stay where
    /// they are, for a restart to give them back.
    frozen: bool,
}

impl PageFile {
    /// A new, empty page in `dir` (made now) for the queue kept under `queue` (none for one whose
    /// messages are never kept).
    pub(in crate::address::queue) fn create(dir: PathBuf, queue: Option<&str>) -> io::Result<Self> {
        Self::with_segments(dir, queue, SEGMENT_BYTES)
    }

    /// A new, empty page starting a new segment past `segment_bytes`.
    pub(in crate::address::queue) fn with_segments(
        dir: PathBuf,
        queue: Option<&str>,
        segment_bytes: u64,
    ) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        let writer = segment_for_writing(&dir, 0)?;
        if let Some(queue) = queue {
            // Named before any record is: a page found after a restart knows its queue.
            let mut file = File::create(dir.join(QUEUE_FILE))?;
            file.write_all(queue.as_bytes())?;
            file.sync_all()?;
            sync_dir(&dir)?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(Self::open(dir, segment_bytes, (writer, 0), Position::default()))
    }

    /// A page found after a restart, read from `cursor`, appended to in a new segment.
    pub(in crate::address::queue) fn reopen(
        dir: PathBuf,
        cursor: Position,
        cursor_seq: u64,
        found: Found,
    ) -> io::Result<Self> {
        let next = found.through + 1;
        let writer = segment_for_writing(&dir, next)?;
        sync_dir(&dir)?;
        let mut page = Self::open(dir, SEGMENT_BYTES, (writer, next), cursor);
        page.cursor_seq = cursor_seq;
        page.found = Some(found);
        Ok(page)
    }

    fn open(dir: PathBuf, segment_bytes: u64, (writer, write_segment): (File, u64), from: Position) -> Self {
        Self {
            dir,
            segment_bytes,
            writer: BufWriter::new(writer),
            write_segment,
            written: 0,
            appended: 0,
            unsynced_only_copies: false,
            synced: Arc::default(),
            reader: None,
            read: from,
            head: None,
            taken: from,
            lowest: from.segment,
            cursor_seq: 0,
            found: None,
            last_address: None,
            discard: false,
            held_only_copies: false,
            frozen: false,
        }
    }

    /// Appends `message` at the tail, flagged with `flags`. Returns its number among the appends,
    /// for [`PageFile::flush_for_sync`].
    pub(in crate::address::queue) fn append(&mut self, message: &Message, flags: u8) -> io::Result<u64> {
        if self.written >= self.segment_bytes {
            self.writer.flush()?;
            if self.unsynced_only_copies {
                // The segment is done with: what it holds is made safe now, once per segment.
                self.writer.get_ref().sync_data()?;
                self.synced.upto.fetch_max(self.appended, Ordering::AcqRel);
                self.unsynced_only_copies = false;
            }
            self.write_segment += 1;
            self.writer = BufWriter::new(segment_for_writing(&self.dir, self.write_segment)?);
            sync_dir(&self.dir)?;
            self.written = 0;
        }
        let address = message.address.as_bytes();
        let address_len = u16::try_from(address.len()).unwrap_or(u16::MAX);
        let address = &address[..usize::from(address_len)];
        let record_len = FIXED + address.len() + message.encoded.len();
        let length = u32::try_from(record_len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a message too large to page"))?;
        let mut fixed = Vec::with_capacity(FIXED);
        fixed.extend_from_slice(&message.id.to_le_bytes());
        fixed.extend_from_slice(&(message.size as u64).to_le_bytes());
        fixed.extend_from_slice(&message.expires_at().unwrap_or(0).to_le_bytes());
        fixed.extend_from_slice(&message.delivery_count.to_le_bytes());
        fixed.push(flags);
        fixed.extend_from_slice(&address_len.to_le_bytes());
        let mut checksum = crc32fast::Hasher::new();
        checksum.update(&fixed);
        checksum.update(address);
        checksum.update(&message.encoded);
        self.writer.write_all(&length.to_le_bytes())?;
        self.writer.write_all(&checksum.finalize().to_le_bytes())?;
        self.writer.write_all(&fixed)?;
        self.writer.write_all(address)?;
        self.writer.write_all(&message.encoded)?;
        self.written += LEAD + record_len as u64;
        self.appended += 1;
        if flags & ONLY_COPY != 0 {
            self.unsynced_only_copies = true;
            self.held_only_copies = true;
        }
        Ok(self.appended)
    }

    /// What waiters on this page's syncs share.
    pub(in crate::address::queue) fn synced(&self) -> &Arc<Synced> {
        &self.synced
    }

    /// Writes out what is buffered, and returns the file to sync and how many appends it covers.
    pub(in crate::address::queue) fn flush_for_sync(&mut self) -> io::Result<(File, u64)> {
        self.writer.flush()?;
        self.unsynced_only_copies = false;
        Ok((self.writer.get_ref().try_clone()?, self.appended))
    }

    /// The size of the message at the head, reading it ahead; `None` when the page is empty.
    pub(in crate::address::queue) fn head_size(&mut self) -> io::Result<Option<usize>> {
        if self.head.is_none() {
            self.head = self.read_record()?;
        }
        Ok(self.head.as_ref().map(|(m, _, _)| m.size))
    }

    /// Takes the message at the head, and whether the record was its only safe copy.
    pub(in crate::address::queue) fn take(&mut self) -> io::Result<Option<(Message, bool)>> {
        let head = match self.head.take() {
            Some(head) => Some(head),
            None => self.read_record()?,
        };
        Ok(head.map(|(message, only_copy, next)| {
            self.taken = next;
            (message, only_copy)
        }))
    }

    /// Where the record after the last one taken starts.
    pub(in crate::address::queue) fn taken(&self) -> Position {
        self.taken
    }

    /// Deletes the segments wholly before `position`: what they held is read past and safe.
    pub(in crate::address::queue) fn release_before(&mut self, position: Position) {
        while !self.frozen && self.lowest < position.segment {
            let done = segment_path(&self.dir, self.lowest);
            match fs::remove_file(&done) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => {
                    warn!(file = %done.display(), error = %err, "failed to remove a page segment read past");
                }
            }
            self.lowest += 1;
        }
    }

    /// The cursor's file and the next sequence number, for [`write_cursor`] off the queue's lock.
    pub(in crate::address::queue) fn cursor_slot(&mut self) -> (PathBuf, u64) {
        self.cursor_seq += 1;
        (self.dir.join(CURSOR_FILE), self.cursor_seq)
    }

    /// Removes the directory when dropped, unless it is frozen.
    pub(in crate::address::queue) fn discard(&mut self) {
        self.discard = true;
    }

    /// Keeps the cursor and every segment as they are from now on: only copies were read back
    /// that the journal does not have.
    pub(in crate::address::queue) fn freeze(&mut self) {
        self.frozen = true;
    }

    /// Whether the cursor may move.
    pub(in crate::address::queue) fn frozen(&self) -> bool {
        self.frozen
    }

    /// Gives the page up: what is buffered is written and synced if it can be, and waiters on
    /// appends not known to be synced hear that the page failed. Its files stay.
    pub(in crate::address::queue) fn give_up(&mut self) {
        let flushed = self
            .writer
            .flush()
            .and_then(|()| self.writer.get_ref().sync_data());
        if flushed.is_err() {
            self.synced.failed.store(true, Ordering::Release);
        }
        self.frozen = true;
    }

    fn read_record(&mut self) -> io::Result<Option<(Message, bool, Position)>> {
        loop {
            if self.read.segment == self.write_segment {
                // What is still buffered is the tail the reader is about to reach.
                self.writer.flush()?;
            }
            let end = self
                .found
                .as_ref()
                .filter(|found| self.read.segment <= found.through)
                .map(|found| found.ends.get(&self.read.segment).copied().unwrap_or(0));
            let at_end = end.is_some_and(|end| self.read.offset >= end);
            let mut lead = [0u8; LEAD as usize];
            let got = match at_end {
                true => false,
                false => match self.reader()? {
                    Some(reader) => read_or_end(reader, &mut lead)?,
                    None => false,
                },
            };
            if !got {
                if self.read.segment < self.write_segment {
                    self.reader = None;
                    self.read = Position {
                        segment: self.read.segment + 1,
                        offset: 0,
                    };
                    continue;
                }
                return Ok(None);
            }
            let (length, checksum) = split_lead(lead);
            if !(FIXED..=MAX_RECORD).contains(&length) {
                return Err(corrupt("a record of an impossible length"));
            }
            let mut record = vec![0u8; length];
            if let Some(reader) = self.reader.as_mut() {
                reader.read_exact(&mut record)?;
            }
            if crc32fast::hash(&record) != checksum {
                return Err(corrupt("a record whose checksum does not match"));
            }
            self.read.offset += LEAD + length as u64;
            let next = self.read;
            let header = Header::parse(&record)?;
            if let Some(found) = &self.found
                && next.segment <= found.through
                && (header.flags & ONLY_COPY == 0 || found.skip.contains(&header.id))
            {
                // Written before the restart, and kept elsewhere or not kept at all. Nothing is read
                // ahead of it: what came before is taken.
                self.taken = next;
                continue;
            }
            let only_copy = header.flags & ONLY_COPY != 0;
            match self.decode(&header, &record) {
                Ok(message) => return Ok(Some((message, only_copy, next))),
                Err(err) => {
                    // Its checksum held: it was written so. It is passed over, not the page.
                    warn!(dir = %self.dir.display(), id = header.id, error = %err, "a paged message that cannot be decoded is passed over");
                    self.taken = next;
                }
            }
        }
    }

    /// The reader of the segment being read, opened at the read offset; `None` if the segment is
    /// gone (read past and removed, or never made).
    fn reader(&mut self) -> io::Result<Option<&mut BufReader<File>>> {
        if self.reader.is_none() {
            let mut file = match File::open(segment_path(&self.dir, self.read.segment)) {
                Ok(file) => file,
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(err) => return Err(err),
            };
            file.seek(SeekFrom::Start(self.read.offset))?;
            self.reader = Some(BufReader::new(file));
        }
        Ok(self.reader.as_mut())
    }

    fn decode(&mut self, header: &Header, record: &[u8]) -> io::Result<Message> {
        let address = record
            .get(FIXED..header.body_at)
            .ok_or_else(|| corrupt("an address cut short"))?;
        let address = match &self.last_address {
            Some(last) if last.as_bytes() == address => last.clone(),
            _ => {
                let text = std::str::from_utf8(address).map_err(|_| corrupt("an address not UTF-8"))?;
                let shared: Arc<str> = Arc::from(text);
                self.last_address = Some(shared.clone());
                shared
            }
        };
        let encoded: Arc<[u8]> = Arc::from(&record[header.body_at..]);
        let mut message = Message::decode(header.id, encoded, address)
            .map_err(|err| corrupt(&format!("a message: {err}")))?;
        message.size = header.size;
        message.delivery_count = header.count;
        message.set_expires_at((header.expires != 0).then_some(header.expires));
        Ok(message)
    }
}

impl Drop for PageFile {
    fn drop(&mut self) {
        let remove = (self.discard && !self.frozen) || !self.held_only_copies && self.found.is_none();
        if remove && let Err(err) = fs::remove_dir_all(&self.dir) {
            warn!(dir = %self.dir.display(), error = %err, "failed to remove a page");
        }
    }
}

/// A record's fixed part.
#[derive(Debug)]
pub(in crate::address::queue) struct Header {
    pub(in crate::address::queue) id: u64,
    pub(in crate::address::queue) size: usize,
    expires: u64,
    count: u32,
    pub(in crate::address::queue) flags: u8,
    body_at: usize,
}

impl Header {
    /// Parses the fixed part of `record` (the bytes after its length).
    pub(in crate::address::queue) fn parse(record: &[u8]) -> io::Result<Self> {
        let bytes = |at: usize, n: usize| {
            record
                .get(at..at + n)
                .ok_or_else(|| corrupt("a record cut short"))
        };
        let u64_at = |at: usize| -> io::Result<u64> {
            let mut b = [0u8; 8];
            b.copy_from_slice(bytes(at, 8)?);
            Ok(u64::from_le_bytes(b))
        };
        let id = u64_at(0)?;
        let size = usize::try_from(u64_at(8)?).map_err(|_| corrupt("a size out of range"))?;
        let expires = u64_at(16)?;
        let mut count = [0u8; 4];
        count.copy_from_slice(bytes(24, 4)?);
        let flags = bytes(28, 1)?[0];
        let mut address_len = [0u8; 2];
        address_len.copy_from_slice(bytes(29, 2)?);
        let body_at = FIXED + usize::from(u16::from_le_bytes(address_len));
        if body_at > record.len() {
            return Err(corrupt("an address cut short"));
        }
        Ok(Self {
            id,
            size,
            expires,
            count: u32::from_le_bytes(count),
            flags,
            body_at,
        })
    }
}

/// Writes cursor `seq` as `position` into its slot of the cursor file at `path`, and syncs it.
pub(in crate::address::queue) fn write_cursor(path: &Path, seq: u64, position: Position) -> io::Result<()> {
    let new = !path.exists();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    if new && let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    let mut slot = Vec::with_capacity(SLOT as usize);
    slot.extend_from_slice(&seq.to_le_bytes());
    slot.extend_from_slice(&position.segment.to_le_bytes());
    slot.extend_from_slice(&position.offset.to_le_bytes());
    slot.extend_from_slice(&check(seq, position).to_le_bytes());
    file.write_all_at(&slot, (seq % 2) * SLOT)?;
    file.sync_data()
}

/// The latest intact cursor of the page in `dir`, with its sequence number.
pub(in crate::address::queue) fn read_cursor(dir: &Path) -> io::Result<Option<(u64, Position)>> {
    let bytes = match fs::read(dir.join(CURSOR_FILE)) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let slot = |n: usize| -> Option<(u64, Position)> {
        let raw = bytes.get(n * SLOT as usize..(n + 1) * SLOT as usize)?;
        let word = |i: usize| {
            raw.get(i * 8..i * 8 + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
        };
        let (seq, segment, offset, sum) = (word(0)?, word(1)?, word(2)?, word(3)?);
        let position = Position { segment, offset };
        (sum == check(seq, position)).then_some((seq, position))
    };
    Ok([slot(0), slot(1)]
        .into_iter()
        .flatten()
        .max_by_key(|(seq, _)| *seq))
}

fn check(seq: u64, position: Position) -> u64 {
    seq ^ position.segment.rotate_left(21) ^ position.offset.rotate_left(42) ^ SLOT_MAGIC
}

/// The name of the queue the page in `dir` belongs to, if it has one.
pub(in crate::address::queue) fn read_queue(dir: &Path) -> io::Result<Option<String>> {
    match fs::read(dir.join(QUEUE_FILE)) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| corrupt("a queue name not UTF-8")),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// The segments in `dir`, in order.
pub(in crate::address::queue) fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(n) = name
            .to_str()
            .and_then(|name| name.strip_suffix(".page"))
            .and_then(|n| n.parse().ok())
        {
            found.push(n);
        }
    }
    found.sort_unstable();
    Ok(found)
}

pub(in crate::address::queue) fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.page"))
}

fn segment_for_writing(dir: &Path, segment: u64) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(segment_path(dir, segment))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A record's length and checksum.
pub(in crate::address::queue) fn split_lead(lead: [u8; LEAD as usize]) -> (usize, u32) {
    let [a, b, c, d, e, f, g, h] = lead;
    (
        u32::from_le_bytes([a, b, c, d]) as usize,
        u32::from_le_bytes([e, f, g, h]),
    )
}

/// Fills `buffer`; false at the end of the file before any byte.
pub(in crate::address::queue) fn read_or_end(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..])? {
            0 if filled == 0 => return Ok(false),
            0 => return Err(corrupt("a record cut short")),
            n => filled += n,
        }
    }
    Ok(true)
}

pub(in crate::address::queue) fn corrupt(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("page file: {what}"))
}
