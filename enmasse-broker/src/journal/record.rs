//! The journal's records, as laid out in a segment file.
//!
//! A segment starts with [`MAGIC`]; then records follow back to back, each a header of the body's
//! length and its CRC-32 (both little-endian `u32`), then the body: a kind byte and its fields.
//!
//! | kind | body after the kind byte |
//! |---|---|
//! | 1, add | message id (`u64`), address length (`u16`), address, the AMQP-encoded message |
//! | 2, remove | message id (`u64`) |
//! | 3, drop address | the address |
//! | 4, add expiring | message id (`u64`), expiry time (`u64`, ms since the Unix epoch), then as 1 |
//! | 5, transaction | whole add and remove records, back to back: a committed transaction's work |
//!
//! A transaction's records are one record, so a crash keeps all of them or none. Each inside is a
//! whole record of its own (header and checksum too), so the journal can point at an add inside
//! and copy it forward on its own.
//!
//! A record whose header runs past the end of the file, whose length is out of bounds or whose
//! checksum does not match is where the readable journal ends: a write the power cut short.

/// The first bytes of every segment file.
pub(crate) const MAGIC: &[u8; 8] = b"EMJRNL01";

/// The length and checksum in front of every body.
pub(crate) const HEADER: usize = 8;

/// The largest body a record may have: a message is bounded far below this by its address's
/// limits; a larger length is garbage.
pub(crate) const MAX_BODY: usize = 256 << 20;

const ADD: u8 = 1;
const REMOVE: u8 = 2;
const DROP_ADDRESS: u8 = 3;
const ADD_EXPIRING: u8 = 4;
const TRANSACTION: u8 = 5;

/// One record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    /// A durable message an address took in.
    Add {
        /// The broker's message id.
        id: u64,
        /// When the message expires (milliseconds since the Unix epoch): its TTL counts from its
        /// arrival, which a restart must not move.
        expires: Option<u64>,
        /// The address.
        address: &'a str,
        /// The AMQP-encoded message.
        message: &'a [u8],
    },
    /// A message a consumer settled for good.
    Remove {
        /// The message id.
        id: u64,
    },
    /// An address was removed, with every message it held.
    DropAddress {
        /// The address.
        address: &'a str,
    },
    /// A committed transaction: add and remove records, each whole.
    Transaction {
        /// The records, back to back.
        records: &'a [u8],
    },
}

/// Where the records inside a transaction record begin, from the start of the transaction record.
pub(crate) const TRANSACTION_RECORDS_AT: usize = HEADER + 1;

impl Record<'_> {
    /// Appends the record, header included, to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER]);
        match *self {
            Record::Add {
                id,
                expires,
                address,
                message,
            } => {
                out.push(if expires.is_some() { ADD_EXPIRING } else { ADD });
                out.extend_from_slice(&id.to_le_bytes());
                if let Some(expires) = expires {
                    out.extend_from_slice(&expires.to_le_bytes());
                }
                // Addresses are DNS-label-sized; one longer than a u16 cannot be configured.
                let address = &address.as_bytes()[..address.len().min(usize::from(u16::MAX))];
                out.extend_from_slice(&(address.len() as u16).to_le_bytes());
                out.extend_from_slice(address);
                out.extend_from_slice(message);
            }
            Record::Remove { id } => {
                out.push(REMOVE);
                out.extend_from_slice(&id.to_le_bytes());
            }
            Record::DropAddress { address } => {
                out.push(DROP_ADDRESS);
                out.extend_from_slice(address.as_bytes());
            }
            Record::Transaction { records } => {
                out.push(TRANSACTION);
                out.extend_from_slice(records);
            }
        }
        let body = &out[start + HEADER..];
        let length = body.len() as u32;
        let checksum = crc32fast::hash(body);
        out[start..start + 4].copy_from_slice(&length.to_le_bytes());
        out[start + 4..start + HEADER].copy_from_slice(&checksum.to_le_bytes());
    }

    /// The encoded length of an add record.
    pub(crate) fn add_len(address: &str, expires: Option<u64>, message: &[u8]) -> usize {
        let expiry = if expires.is_some() { 8 } else { 0 };
        HEADER + 1 + 8 + expiry + 2 + address.len().min(usize::from(u16::MAX)) + message.len()
    }
}

/// What the bytes at a position hold.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read<'a> {
    /// A whole record, and its encoded length.
    Record(Record<'a>, usize),
    /// Nothing: the segment ends here cleanly.
    End,
    /// A record that cannot be trusted, and why: the readable journal ends here.
    Torn(&'static str),
}

/// Reads the record at the start of `bytes`.
pub(crate) fn read(bytes: &[u8]) -> Read<'_> {
    if bytes.is_empty() {
        return Read::End;
    }
    let Some((header, rest)) = bytes.split_first_chunk::<HEADER>() else {
        return Read::Torn("a record header cut short");
    };
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let checksum = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if length == 0 || length > MAX_BODY {
        return Read::Torn("a record length out of bounds");
    }
    let Some(body) = rest.get(..length) else {
        return Read::Torn("a record cut short");
    };
    if crc32fast::hash(body) != checksum {
        return Read::Torn("a record whose checksum does not match");
    }
    match decode(body) {
        Some(record) => Read::Record(record, HEADER + length),
        None => Read::Torn("a record of an unknown kind or a malformed body"),
    }
}

/// The records inside a transaction record's body, each with its offset in the body and its
/// length; `None` for bytes that are not a whole record.
pub(crate) fn inside(records: &[u8]) -> impl Iterator<Item = Option<(Record<'_>, usize, usize)>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = records.get(at..)?;
        if rest.is_empty() {
            return None;
        }
        match read(rest) {
            Read::Record(record, length) => {
                let found = (record, at, length);
                at += length;
                Some(Some(found))
            }
            Read::End | Read::Torn(_) => {
                at = records.len();
                Some(None)
            }
        }
    })
}

fn decode(body: &[u8]) -> Option<Record<'_>> {
    let (&kind, fields) = body.split_first()?;
    let id = |fields: &[u8]| fields.first_chunk::<8>().map(|id| u64::from_le_bytes(*id));
    match kind {
        ADD | ADD_EXPIRING => {
            let id = id(fields)?;
            let mut rest = fields.get(8..)?;
            let mut expires = None;
            if kind == ADD_EXPIRING {
                let (at, after) = rest.split_first_chunk::<8>()?;
                expires = Some(u64::from_le_bytes(*at));
                rest = after;
            }
            let (length, rest) = rest.split_first_chunk::<2>()?;
            let length = usize::from(u16::from_le_bytes(*length));
            let address = std::str::from_utf8(rest.get(..length)?).ok()?;
            let message = rest.get(length..)?;
            Some(Record::Add {
                id,
                expires,
                address,
                message,
            })
        }
        REMOVE if fields.len() == 8 => Some(Record::Remove { id: id(fields)? }),
        DROP_ADDRESS => Some(Record::DropAddress {
            address: std::str::from_utf8(fields).ok()?,
        }),
        // Whole add and remove records only, every byte of them.
        TRANSACTION => inside(fields)
            .all(|record| matches!(record, Some((Record::Add { .. } | Record::Remove { .. }, _, _))))
            .then_some(Record::Transaction { records: fields }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn encoded(record: Record<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        record.encode(&mut out);
        out
    }

    #[test]
    fn every_kind_of_record_reads_back_as_written() {
        for record in [
            Record::Add {
                id: 7,
                expires: None,
                address: "orders",
                message: b"\x00\x53\x77\xa1\x05hello",
            },
            Record::Add {
                id: 8,
                expires: Some(1_700_000_000_000),
                address: "orders",
                message: b"\x00\x53\x77\xa1\x05hello",
            },
            Record::Remove { id: u64::MAX },
            Record::DropAddress { address: "gone" },
            Record::Transaction {
                records: &[
                    encoded(Record::Remove { id: 3 }),
                    encoded(Record::Remove { id: 4 }),
                ]
                .concat(),
            },
        ] {
            let bytes = encoded(record);
            assert_eq!(read(&bytes), Read::Record(record, bytes.len()));
        }
        for expires in [None, Some(5)] {
            let add = Record::Add {
                id: 1,
                expires,
                address: "q",
                message: b"abc",
            };
            assert_eq!(Record::add_len("q", expires, b"abc"), encoded(add).len());
        }
    }

    #[test]
    fn a_record_cut_short_or_scribbled_on_is_torn_never_read() {
        let bytes = encoded(Record::Add {
            id: 1,
            expires: Some(9),
            address: "orders",
            message: b"a message",
        });
        for cut in 1..bytes.len() {
            assert!(matches!(read(&bytes[..cut]), Read::Torn(_)), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut scribbled = bytes.clone();
            scribbled[at] ^= 0x40;
            assert!(matches!(read(&scribbled), Read::Torn(_)), "flipped byte {at}");
        }
        assert_eq!(read(&[0; 16]), Read::Torn("a record length out of bounds"));
        assert_eq!(read(&[]), Read::End);
    }

    proptest! {
        #[test]
        fn records_back_to_back_read_back_in_order(
            ids in proptest::collection::vec(any::<u64>(), 1..20),
            message in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut bytes = Vec::new();
            for id in &ids {
                Record::Add { id: *id, expires: None, address: "q", message: &message }.encode(&mut bytes);
                Record::Remove { id: *id }.encode(&mut bytes);
            }
            let mut at = 0;
            let mut read_ids = Vec::new();
            while let Read::Record(record, length) = read(&bytes[at..]) {
                if let Record::Add { id, message: m, .. } = record {
                    prop_assert_eq!(m, &message[..]);
                    read_ids.push(id);
                }
                at += length;
            }
            prop_assert_eq!(at, bytes.len());
            prop_assert_eq!(read_ids, ids);
        }

        #[test]
        fn garbage_never_panics_the_reader(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = read(&bytes);
        }
    }
}
