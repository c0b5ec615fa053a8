//! Segment files: their names, and reading one back at start, up to the first record that cannot
//! be trusted.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

use super::record::{self, MAGIC, Read, Record};

/// The file of segment `seq` in `dir`: its number, zero-padded so that names sort in order.
pub(crate) fn path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.jrn"))
}

/// The segments in `dir`, in order.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(seq) = name.strip_suffix(".jrn").and_then(|n| n.parse().ok()) {
            segments.push(seq);
        }
    }
    segments.sort_unstable();
    Ok(segments)
}

/// Creates segment `seq`, its magic written and the directory entry made durable.
pub(crate) fn create(dir: &Path, seq: u64) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path(dir, seq))?;
    file.write_all(MAGIC)?;
    file.sync_data()?;
    sync_dir(dir)?;
    Ok(file)
}

/// Deletes segment `seq`, durably.
pub(crate) fn delete(dir: &Path, seq: u64) -> io::Result<()> {
    fs::remove_file(path(dir, seq))?;
    sync_dir(dir)
}

/// Makes the directory's entries (files created or removed) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Where a segment's readable records end, if before the end of its file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Tear {
    /// The offset of the first byte not read.
    pub(crate) at: u64,
    /// The bytes from there to the end of the file.
    pub(crate) dropped: u64,
    /// What was found there.
    pub(crate) reason: &'static str,
}

/// Reads every trustworthy record of segment `seq`, handing each to `each` with its offset, and
/// cuts the file off where they end: a torn or corrupt record is never served, and the next write
/// starts from a clean end. Returns the bytes read and where the file was cut, if it was.
pub(crate) fn scan(
    dir: &Path,
    seq: u64,
    mut each: impl FnMut(Record<'_>, u64, usize),
) -> io::Result<(u64, Option<Tear>)> {
    let bytes = fs::read(path(dir, seq))?;
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        // A segment whose creation was cut short holds nothing yet; anything else is not ours.
        let tear = Tear {
            at: 0,
            dropped: bytes.len() as u64,
            reason: "no journal segment header",
        };
        cut(dir, seq, 0)?;
        return Ok((0, Some(tear)));
    }
    let mut at = MAGIC.len();
    loop {
        match record::read(&bytes[at..]) {
            Read::Record(Record::Transaction { records }, length) => {
                // A transaction's records count as if written one by one, where they lie.
                let first = at + record::TRANSACTION_RECORDS_AT;
                for (inner, offset, inner_len) in record::inside(records).flatten() {
                    each(inner, (first + offset) as u64, inner_len);
                }
                at += length;
            }
            Read::Record(record, length) => {
                each(record, at as u64, length);
                at += length;
            }
            Read::End => return Ok((at as u64, None)),
            Read::Torn(reason) => {
                let tear = Tear {
                    at: at as u64,
                    dropped: (bytes.len() - at) as u64,
                    reason,
                };
                cut(dir, seq, at as u64)?;
                return Ok((at as u64, Some(tear)));
            }
        }
    }
}

/// Cuts segment `seq` to `len` bytes, keeping (or writing anew) its header, and syncs it.
fn cut(dir: &Path, seq: u64, len: u64) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(path(dir, seq))?;
    if len < MAGIC.len() as u64 {
        file.set_len(0)?;
        file.write_all(MAGIC)?;
    } else {
        file.set_len(len)?;
    }
    file.sync_all()
}
