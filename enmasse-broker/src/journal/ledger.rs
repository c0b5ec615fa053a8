//! What the journal holds: where each live message's record is, and what each segment still
//! holds, so that a segment is deleted only when nothing in it, or after it, needs it.
//!
//! A segment may be deleted once none of its messages is live and no record in it stands between
//! a live earlier segment and a message of that segment coming back: a remove record in segment
//! 5 for a message added in segment 3 "pins" segment 5 until segment 3 is gone, or replaying 3
//! without 5 would bring the message back.

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
};

use crate::message::IdMap;

/// Where a live message's add record is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Live {
    /// The segment.
    pub(crate) segment: u64,
    /// The record's offset in it.
    pub(crate) offset: u64,
    /// The record's encoded length.
    pub(crate) len: u32,
    /// The address.
    pub(crate) address: Arc<str>,
}

/// What one segment holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Its size in bytes.
    pub(crate) size: u64,
    /// Live messages added in it.
    pub(crate) live: u64,
    /// Their records' bytes.
    pub(crate) live_bytes: u64,
    /// Remove records in it for messages of earlier segments that still exist.
    pub(crate) pins: u64,
    /// Remove records in later segments for messages of this one, by segment.
    pub(crate) pinned: BTreeMap<u64, u64>,
}

/// The live messages and the segments' usage.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pub(crate) live: IdMap<Live>,
    pub(crate) segments: BTreeMap<u64, Usage>,
    /// Every address seen, so that a million live messages share a few names.
    addresses: HashSet<Arc<str>>,
    last_address: Option<Arc<str>>,
}

impl Ledger {
    /// The one shared copy of `address`.
    pub(crate) fn intern(&mut self, address: &str) -> Arc<str> {
        // Records of one address come in runs: the last one is the likeliest.
        if let Some(last) = &self.last_address
            && &**last == address
        {
            return last.clone();
        }
        let interned = self.intern_slow(address);
        self.last_address = Some(interned.clone());
        interned
    }

    fn intern_slow(&mut self, address: &str) -> Arc<str> {
        if let Some(known) = self.addresses.get(address) {
            return known.clone();
        }
        let address: Arc<str> = Arc::from(address);
        self.addresses.insert(address.clone());
        address
    }

    /// Counts a segment, of `size` bytes so far.
    pub(crate) fn open_segment(&mut self, segment: u64, size: u64) {
        self.segments.entry(segment).or_default().size = size;
    }

    /// Records that segment `segment` grew by `bytes`.
    pub(crate) fn grew(&mut self, segment: u64, bytes: u64) {
        self.segments.entry(segment).or_default().size += bytes;
    }

    /// A message's add record, written in `live.segment`. A message added again (copied forward
    /// by compaction, or with a new delivery count) now lives where it was added last, and its
    /// older add pins the newer segment as a remove would: replaying the older without the newer
    /// would bring back a message removed in the newer, or an older count.
    pub(crate) fn add(&mut self, id: u64, live: Live) {
        let segment = live.segment;
        let usage = self.segments.entry(segment).or_default();
        usage.live += 1;
        usage.live_bytes += u64::from(live.len);
        if let Some(old) = self.live.insert(id, live) {
            self.release(&old);
            if old.segment != segment {
                if let Some(usage) = self.segments.get_mut(&old.segment) {
                    *usage.pinned.entry(segment).or_default() += 1;
                }
                self.segments.entry(segment).or_default().pins += 1;
            }
        }
    }

    /// Whether message `id` is live.
    pub(crate) fn is_live(&self, id: u64) -> bool {
        self.live.contains_key(&id)
    }

    /// A remove record for `id`, written in segment `segment`. Returns whether the message was
    /// live.
    pub(crate) fn remove(&mut self, id: u64, segment: u64) -> bool {
        let Some(old) = self.live.remove(&id) else {
            return false;
        };
        self.release(&old);
        if old.segment != segment {
            if let Some(usage) = self.segments.get_mut(&old.segment) {
                *usage.pinned.entry(segment).or_default() += 1;
            }
            self.segments.entry(segment).or_default().pins += 1;
        }
        true
    }

    /// A drop-address record, written in segment `segment`: every live message of `address`
    /// goes. Returns how many.
    pub(crate) fn drop_address(&mut self, address: &str, segment: u64) -> u64 {
        let ids: Vec<u64> = self
            .live
            .iter()
            .filter(|(_, live)| &*live.address == address)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.remove(*id, segment);
        }
        ids.len() as u64
    }

    /// Whether any live message belongs to `address`.
    pub(crate) fn holds(&self, address: &str) -> bool {
        self.live.values().any(|live| &*live.address == address)
    }

    /// Segments other than `current` that can be deleted now.
    pub(crate) fn deletable(&self, current: u64) -> Vec<u64> {
        self.segments
            .iter()
            .filter(|(segment, usage)| **segment != current && usage.live == 0 && usage.pins == 0)
            .map(|(segment, _)| *segment)
            .collect()
    }

    /// Forgets a deleted segment, unpinning the segments whose removes it held back.
    pub(crate) fn deleted(&mut self, segment: u64) {
        if let Some(usage) = self.segments.remove(&segment) {
            for (later, count) in usage.pinned {
                if let Some(later) = self.segments.get_mut(&later) {
                    later.pins = later.pins.saturating_sub(count);
                }
            }
        }
    }

    /// The live messages of `segment`, by offset.
    pub(crate) fn live_in(&self, segment: u64) -> Vec<(u64, Live)> {
        let mut live: Vec<(u64, Live)> = self
            .live
            .iter()
            .filter(|(_, live)| live.segment == segment)
            .map(|(id, live)| (*id, live.clone()))
            .collect();
        live.sort_by_key(|(_, live)| live.offset);
        live
    }

    fn release(&mut self, old: &Live) {
        if let Some(usage) = self.segments.get_mut(&old.segment) {
            usage.live = usage.live.saturating_sub(1);
            usage.live_bytes = usage.live_bytes.saturating_sub(u64::from(old.len));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(segment: u64) -> Live {
        Live {
            segment,
            offset: 8,
            len: 100,
            address: Arc::from("q"),
        }
    }

    #[test]
    fn a_message_added_again_pins_its_newer_segment_while_the_older_add_remains() {
        let mut ledger = Ledger::default();
        for segment in 1..=3 {
            ledger.open_segment(segment, 8);
        }
        ledger.add(10, live(1));
        ledger.add(11, live(1));
        // Message 10 added again (a new delivery count) in segment 2, then removed there.
        ledger.add(10, live(2));
        assert!(ledger.remove(10, 2));
        // Deleting 2 while 1 lives would bring 10 back from its older add on replay.
        assert_eq!(ledger.deletable(3), Vec::<u64>::new());
        ledger.remove(11, 3);
        assert_eq!(ledger.deletable(3), [1]);
        ledger.deleted(1);
        assert_eq!(ledger.deletable(3), [2]);
    }

    #[test]
    fn a_segment_goes_once_its_messages_are_removed_and_nothing_earlier_needs_its_removes() {
        let mut ledger = Ledger::default();
        for segment in 1..=3 {
            ledger.open_segment(segment, 8);
        }
        ledger.add(10, live(1));
        ledger.add(20, live(2));
        // Message 20 is removed in segment 2 itself, message 10 in segment 3.
        assert!(ledger.remove(20, 2));
        assert!(ledger.remove(10, 3));
        assert!(!ledger.remove(10, 3), "removed once");
        // Segment 3 (current) stays; 1 and 2 hold nothing live, and nothing pins them.
        assert_eq!(ledger.deletable(3), [1, 2]);

        let mut pinned = Ledger::default();
        for segment in 1..=4 {
            pinned.open_segment(segment, 8);
        }
        pinned.add(10, live(1));
        pinned.add(11, live(1));
        assert!(pinned.remove(10, 2));
        // Segment 2 holds no message but the remove of 10: while 1 lives (11 is live), deleting 2
        // would bring 10 back on replay.
        assert_eq!(pinned.deletable(4), [3]);
        pinned.remove(11, 3);
        assert_eq!(pinned.deletable(4), [1]);
        pinned.deleted(1);
        assert_eq!(pinned.deletable(4), [2, 3]);
    }

    #[test]
    fn a_message_copied_forward_lives_where_it_was_added_last() {
        let mut ledger = Ledger::default();
        ledger.add(1, live(1));
        ledger.add(1, live(5));
        assert_eq!(ledger.segments[&1].live, 0);
        assert_eq!(ledger.segments[&5].live, 1);
        assert_eq!(ledger.live_in(5).len(), 1);
    }

    #[test]
    fn dropping_an_address_removes_its_messages_only() {
        let mut ledger = Ledger::default();
        ledger.add(1, live(1));
        ledger.add(
            2,
            Live {
                address: Arc::from("other"),
                ..live(1)
            },
        );
        assert_eq!(ledger.drop_address("q", 2), 1);
        assert!(ledger.is_live(2) && !ledger.is_live(1));
        assert!(ledger.holds("other") && !ledger.holds("q"));
    }
}
