//! Paging (`addressFullPolicy: PAGE`): a queue whose messages pass its memory share keeps taking
//! them, at disk speed, and serves them back in order.
//!
//! The waiting messages of a paging queue are its memory-resident ones, then its page: the
//! newest arrivals, appended to a page file in the order they came. While the page holds any
//! message, every arrival goes to its tail, so the page is always the tail of the queue; consumers
//! take from memory, and the queue reads the page's head back into memory as room frees up.
//! A message that comes back (released, modified, given back) goes back into memory, in its place.
//!
//! Only memory-resident messages count against the queue's bounds and the broker's
//! `globalMaxSize`; those bounds become the size of its memory share, and credit is no longer
//! withheld for fullness. The page files are scratch, never synced and never read after a
//! restart: a durable message is also in the journal, which keeps it through a crash, and a
//! restart pages the recovered backlog out again as it takes it back.
//!
//! A page is a directory of segment files of [`SEGMENT_BYTES`]; a segment is deleted once read
//! past, and the directory once the page is empty. Expiry is checked as messages come back into
//! memory; selectors and browsers see the page's messages once they are back in memory.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use enmasse_types::broker_config::AddressLimits;
use tracing::warn;

use super::{Queue, State};
use crate::{address::policy::now_millis, message::Message};

/// The size past which a page starts a new segment file.
const SEGMENT_BYTES: u64 = 64 << 20;

/// How many messages a paging queue keeps waiting in memory at most, once it pages: enough for its
/// consumers to take from while the next ones are read back.
const RESIDENT_WAITING: usize = 1024;

/// Read back when fewer than this many wait in memory.
const LOW_WATER: usize = 64;

/// Rounds of reading back a consumer's take goes through when what came back had expired.
const EXPIRED_ROUNDS: usize = 16;

/// Of the broker's `globalMaxSize`, the part arrivals may fill before they page: the rest is for
/// the pages' messages coming back into memory.
const ARRIVALS_SHARE: (u64, u64) = (7, 8);

/// The bytes of a record before its address: id, size, expiry, delivery count, address length.
const FIXED: usize = 8 + 8 + 8 + 4 + 2;

/// No record is longer: a length past it is read from a damaged file, not allocated.
const MAX_RECORD: usize = 256 << 20;

/// One queue's page: segment files in a directory of its own.
#[derive(Debug)]
pub(super) struct PageFile {
    dir: PathBuf,
    /// The size past which a new segment starts ([`SEGMENT_BYTES`]).
    segment_bytes: u64,
    writer: BufWriter<File>,
    write_segment: u64,
    written: u64,
    reader: Option<BufReader<File>>,
    read_segment: u64,
    /// The next message, read ahead to learn its size.
    head: Option<Message>,
    /// The address of the last message read back, shared with the next that has the same.
    last_address: Option<Arc<str>>,
}

impl PageFile {
    /// A new, empty page in `dir` (made now).
    pub(super) fn create(dir: PathBuf) -> io::Result<Self> {
        Self::with_segments(dir, SEGMENT_BYTES)
    }

    /// A new, empty page in `dir`, starting a new segment past `segment_bytes`.
    fn with_segments(dir: PathBuf, segment_bytes: u64) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        let writer = BufWriter::new(segment_for_writing(&dir, 0)?);
        Ok(Self {
            dir,
            segment_bytes,
            writer,
            write_segment: 0,
            written: 0,
            reader: None,
            read_segment: 0,
            head: None,
            last_address: None,
        })
    }

    /// Appends `message` at the tail.
    pub(super) fn append(&mut self, message: &Message) -> io::Result<()> {
        if self.written >= self.segment_bytes {
            self.writer.flush()?;
            self.write_segment += 1;
            self.writer = BufWriter::new(segment_for_writing(&self.dir, self.write_segment)?);
            self.written = 0;
        }
        let address = message.address.as_bytes();
        let address_len = u16::try_from(address.len()).unwrap_or(u16::MAX);
        let address = &address[..usize::from(address_len)];
        let record_len = FIXED + address.len() + message.encoded.len();
        let length = u32::try_from(record_len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a message too large to page"))?;
        self.writer.write_all(&length.to_le_bytes())?;
        self.writer.write_all(&message.id.to_le_bytes())?;
        self.writer.write_all(&(message.size as u64).to_le_bytes())?;
        self.writer
            .write_all(&message.expires_at().unwrap_or(0).to_le_bytes())?;
        self.writer.write_all(&message.delivery_count.to_le_bytes())?;
        self.writer.write_all(&address_len.to_le_bytes())?;
        self.writer.write_all(address)?;
        self.writer.write_all(&message.encoded)?;
        self.written += 4 + record_len as u64;
        Ok(())
    }

    /// The size of the message at the head, reading it ahead; `None` when the page is empty.
    pub(super) fn head_size(&mut self) -> io::Result<Option<usize>> {
        if self.head.is_none() {
            self.head = self.read_record()?;
        }
        Ok(self.head.as_ref().map(|m| m.size))
    }

    /// Takes the message at the head.
    pub(super) fn take(&mut self) -> io::Result<Option<Message>> {
        match self.head.take() {
            Some(head) => Ok(Some(head)),
            None => self.read_record(),
        }
    }

    fn read_record(&mut self) -> io::Result<Option<Message>> {
        loop {
            if self.read_segment == self.write_segment {
                // What is still buffered is the tail the reader is about to reach.
                self.writer.flush()?;
            }
            let reader = match &mut self.reader {
                Some(reader) => reader,
                None => self.reader.insert(BufReader::new(File::open(segment_path(
                    &self.dir,
                    self.read_segment,
                ))?)),
            };
            let mut length = [0u8; 4];
            match read_or_end(reader, &mut length)? {
                true => {}
                false if self.read_segment < self.write_segment => {
                    // Read past: the segment goes (and if it cannot, with the page, later).
                    self.reader = None;
                    let done = segment_path(&self.dir, self.read_segment);
                    if let Err(err) = fs::remove_file(&done) {
                        warn!(file = %done.display(), error = %err, "failed to remove a page segment read past");
                    }
                    self.read_segment += 1;
                    continue;
                }
                false => return Ok(None),
            }
            let length = u32::from_le_bytes(length) as usize;
            if !(FIXED..=MAX_RECORD).contains(&length) {
                return Err(corrupt("a record of an impossible length"));
            }
            let mut record = vec![0u8; length];
            reader.read_exact(&mut record)?;
            return self.decode(&record).map(Some);
        }
    }

    fn decode(&mut self, record: &[u8]) -> io::Result<Message> {
        let u64_at = |at: usize| {
            record
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .ok_or_else(|| corrupt("a record cut short"))
        };
        let id = u64_at(0)?;
        let size = usize::try_from(u64_at(8)?).map_err(|_| corrupt("a size out of range"))?;
        let expires = u64_at(16)?;
        let count = record
            .get(24..28)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| corrupt("a record cut short"))?;
        let address_len = record
            .get(28..30)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_le_bytes)
            .ok_or_else(|| corrupt("a record cut short"))?;
        let body_at = FIXED + usize::from(address_len);
        let address = record
            .get(FIXED..body_at)
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
        let encoded: Arc<[u8]> = Arc::from(&record[body_at..]);
        let mut message =
            Message::decode(id, encoded, address).map_err(|err| corrupt(&format!("a message: {err}")))?;
        message.size = size;
        message.delivery_count = count;
        message.set_expires_at((expires != 0).then_some(expires));
        Ok(message)
    }
}

impl Drop for PageFile {
    fn drop(&mut self) {
        if let Err(err) = fs::remove_dir_all(&self.dir) {
            warn!(dir = %self.dir.display(), error = %err, "failed to remove a page");
        }
    }
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.page"))
}

fn segment_for_writing(dir: &Path, segment: u64) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(segment_path(dir, segment))
}

/// Fills `buffer`; false at the end of the file before any byte.
fn read_or_end(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<bool> {
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

fn corrupt(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("page file: {what}"))
}

impl Queue {
    /// Whether an arrival of `size` bytes goes to the page: always while the page holds any (the
    /// page is the queue's tail), otherwise when the queue pages and its memory share is used.
    pub(super) fn pages_out(&self, state: &State, limits: &AddressLimits, size: usize) -> bool {
        if state.page.is_some() {
            return true;
        }
        if !self.pages() {
            return false;
        }
        let size = size as u64;
        state.bytes + size > limits.max_bytes
            || state.resident_depth() + 1 > limits.max_depth
            || self.budget.get().is_some_and(|budget| {
                let (part, whole) = ARRIVALS_SHARE;
                !budget.has_room_below(size, budget.max() / whole * part)
            })
    }

    /// Appends `message` to the page (made now if there is none). Gives it back if the page cannot
    /// take it, for the caller to keep it in memory.
    pub(super) fn page_out(&self, state: &mut State, message: Message) -> Result<(), Message> {
        if state.page.is_none() {
            let Some(dir) = self.budget.get().and_then(|budget| budget.new_page_dir()) else {
                return Err(message);
            };
            match PageFile::create(dir) {
                Ok(page) => state.page = Some(page),
                Err(err) => {
                    warn!(error = %err, "failed to start a page; the message stays in memory");
                    return Err(message);
                }
            }
        }
        let Some(page) = state.page.as_mut() else {
            return Err(message);
        };
        match page.append(&message) {
            Ok(()) => {
                state.paged += 1;
                state.paged_bytes += message.size as u64;
                Ok(())
            }
            Err(err) => {
                // A record may be cut short in the file: the page is read back as far as it goes,
                // and senders are refused until it is empty.
                warn!(error = %err, "failed to page a message; it stays in memory, and senders are refused");
                state.page_failed = true;
                Err(message)
            }
        }
    }

    /// The next live message waiting in memory, reading the page back first when few wait there,
    /// and again while what came back had all expired: a consumer does not wait on a page that
    /// holds live messages. Expired messages set aside hold memory until the housekeeping moves
    /// them on, so a few rounds are read at most; the housekeeping wakes the consumers after.
    pub(super) fn take_live(&self, state: &mut State) -> Option<Message> {
        for _ in 0..EXPIRED_ROUNDS {
            if state.ready.len() < LOW_WATER {
                self.read_back(state);
            }
            let live = state.pop_live(now_millis());
            self.note_timed(state);
            if live.is_some() || state.paged == 0 {
                return live;
            }
        }
        None
    }

    /// For a consumer with a selector or a browser that found nothing in memory: reads the page's
    /// head back while there is room, however many wait in memory. Whether it read any.
    pub(super) fn refill_for_watchers(&self, state: &mut State) -> bool {
        self.read_back(state) > 0
    }

    /// Whether the page's head could come back into memory now.
    pub(super) fn can_refill(&self, state: &mut State) -> bool {
        if state.paged == 0 || state.ready.len() >= RESIDENT_WAITING {
            return false;
        }
        let limits = self.limits();
        let floor = state.ready.is_empty();
        let Some(page) = state.page.as_mut() else {
            return false;
        };
        match page.head_size() {
            Ok(Some(size)) => floor || self.has_room(state, &limits, size as u64),
            Ok(None) => {
                // It says it holds messages and has none: it cannot be trusted.
                let missing = io::Error::new(io::ErrorKind::UnexpectedEof, "the page ended early");
                self.lose_page(state, &missing);
                false
            }
            Err(err) => {
                self.lose_page(state, &err);
                false
            }
        }
    }

    fn has_room(&self, state: &State, limits: &AddressLimits, size: u64) -> bool {
        state.bytes + size <= limits.max_bytes
            && state.resident_depth() < limits.max_depth
            && self.budget.get().is_none_or(|budget| budget.has_room_for(size))
    }

    /// Reads the page's head back into memory while there is room: within the queue's bounds and
    /// the broker's budget, and always one when nothing waits in memory, so that a queue whose
    /// budget others hold still moves. A page that cannot be read is given up. Returns how many
    /// messages came back.
    fn read_back(&self, state: &mut State) -> u64 {
        if state.paged == 0 {
            return 0;
        }
        let limits = self.limits();
        let before = state.paged;
        while state.paged > 0 && state.ready.len() < RESIDENT_WAITING {
            let Some(page) = state.page.as_mut() else {
                break;
            };
            let size = match page.head_size() {
                Ok(Some(size)) => size as u64,
                Ok(None) => break,
                Err(err) => {
                    self.lose_page(state, &err);
                    return before - state.paged;
                }
            };
            let floor = state.ready.is_empty();
            if !floor && !self.has_room(state, &limits, size) {
                break;
            }
            let Some(page) = state.page.as_mut() else {
                break;
            };
            let message = match page.take() {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(err) => {
                    self.lose_page(state, &err);
                    return 0;
                }
            };
            state.paged -= 1;
            state.paged_bytes = state.paged_bytes.saturating_sub(size);
            state.bytes += size;
            self.account(state, size, true);
            state.requeue(message);
        }
        if state.paged == 0 {
            // Empty: its files go.
            state.page = None;
            state.paged_bytes = 0;
            state.page_failed = false;
        }
        // What came back may expire: the housekeeping is told.
        self.note_timed(state);
        before - state.paged
    }

    /// Gives up a page that cannot be read. Its durable messages are still in the journal and come
    /// back at the next start; the others are lost, and the log says how many went.
    fn lose_page(&self, state: &mut State, err: &io::Error) {
        tracing::error!(error = %err, lost = state.paged, "failed to read a page back; its messages are given up");
        state.paged = 0;
        state.paged_bytes = 0;
        state.page = None;
        state.page_failed = false;
    }
}

#[cfg(test)]
mod tests;
