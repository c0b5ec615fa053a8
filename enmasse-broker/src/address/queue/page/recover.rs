//! Pages a previous run left behind, found again at a start.
//!
//! A page holds the only copy of the durable messages paged instead of journaled. After a restart
//! its records are read from its cursor on: the records before it were read back and journaled.
//! Of the rest, only those copies come back; a message the journal also holds (it was being read
//! back when the broker stopped) comes back from the journal, and non-durable messages are gone
//! with the run that took them; the cursor moves past them at once. A page with nothing to give
//! back is removed.

use std::{
    collections::{BTreeMap, HashSet},
    fs::{self, File},
    io::{self, BufReader, Read, Seek, SeekFrom},
    path::Path,
};

use tracing::warn;

use super::file::{
    self, Found, Header, LEAD, ONLY_COPY, PageFile, Position, read_or_end, segment_path, split_lead,
};

/// A page found again: the durable messages it gives back, for the queue kept under `queue`.
#[derive(Debug)]
pub struct LeftPage {
    /// The name the store keeps the queue's messages under.
    pub queue: String,
    /// Messages it gives back.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The highest message id it holds: new ids are higher.
    pub last_id: u64,
    pub(in crate::address::queue) page: Box<PageFile>,
}

/// Finds the page in `dir` again. `journaled` holds the ids of the messages the journal
/// recovered. `None` (and the directory removed) when it gives nothing back.
pub fn recover(dir: &Path, journaled: &HashSet<u64>) -> io::Result<Option<LeftPage>> {
    let queue = file::read_queue(dir)?;
    let segments = file::segments(dir)?;
    let (cursor_seq, cursor) = file::read_cursor(dir)?.unwrap_or((
        0,
        Position {
            segment: segments.first().copied().unwrap_or(0),
            offset: 0,
        },
    ));
    let mut found = Found {
        through: segments.last().copied().unwrap_or(0).max(cursor.segment),
        ends: BTreeMap::new(),
        skip: HashSet::new(),
    };
    let (mut messages, mut bytes, mut last_id) = (0, 0, 0);
    let mut first_kept = None;
    for &segment in &segments {
        if segment < cursor.segment {
            // Read past before the stop, and safe elsewhere.
            let _ = fs::remove_file(segment_path(dir, segment));
            continue;
        }
        let from = match segment == cursor.segment {
            true => cursor.offset,
            false => 0,
        };
        let mut reader = BufReader::new(File::open(segment_path(dir, segment))?);
        reader.seek(SeekFrom::Start(from))?;
        let mut at = from;
        loop {
            let record = match next_record(&mut reader) {
                Ok(Some(record)) => record,
                Ok(None) => break,
                Err(err) => {
                    warn!(dir = %dir.display(), segment, offset = at, error = %err, "a page segment ends early: a write cut short");
                    break;
                }
            };
            let Ok(header) = Header::parse(&record) else {
                break;
            };
            let record_at = Position { segment, offset: at };
            at += LEAD + record.len() as u64;
            last_id = last_id.max(header.id);
            if header.flags & ONLY_COPY == 0 {
                continue;
            }
            if journaled.contains(&header.id) {
                found.skip.insert(header.id);
                continue;
            }
            first_kept.get_or_insert(record_at);
            messages += 1;
            bytes += header.size as u64;
        }
        found.ends.insert(segment, at);
    }
    let Some(queue) = queue.filter(|_| messages > 0) else {
        fs::remove_dir_all(dir)?;
        return Ok(None);
    };
    // What lies before the first copy it gives back is safe elsewhere or not kept: the cursor
    // moves past it now, or a second restart, after the journal has forgotten those it held,
    // would give them back again.
    let (cursor_seq, cursor) = match first_kept {
        Some(first) if first != cursor => {
            file::write_cursor(&dir.join(file::CURSOR_FILE), cursor_seq + 1, first)?;
            (cursor_seq + 1, first)
        }
        _ => (cursor_seq, cursor),
    };
    let page = PageFile::reopen(dir.to_owned(), cursor, cursor_seq, found)?;
    Ok(Some(LeftPage {
        queue,
        messages,
        bytes,
        last_id,
        page: Box::new(page),
    }))
}

/// The next intact record's bytes after its lead; `None` at the end of the segment.
fn next_record(reader: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut lead = [0u8; LEAD as usize];
    if !read_or_end(reader, &mut lead)? {
        return Ok(None);
    }
    let (length, checksum) = split_lead(lead);
    if length > file::MAX_RECORD {
        return Err(file::corrupt("a record of an impossible length"));
    }
    let mut record = vec![0u8; length];
    reader.read_exact(&mut record)?;
    if crc32fast::hash(&record) != checksum {
        return Err(file::corrupt("a record whose checksum does not match"));
    }
    Ok(Some(record))
}
