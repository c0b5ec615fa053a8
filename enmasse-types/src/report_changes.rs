//! A broker's report asked for what changed since the last time (`GET /report?since=<point>`), so
//! that an operator watching a space of thousands of addresses is sent the few whose readiness or
//! depth moved, not all of them at every pass.
//!
//! The broker keeps, per address, the report it last gave and the generation at which that last
//! changed ([`ReportLog`]). A point (`<epoch>-<generation>`) names a generation of one broker
//! process; the epoch is drawn when the process starts. A point of another process, from the
//! future, or from before the removals the log still remembers, is answered with the whole report
//! (`whole: true`), which the caller takes in place of what it holds.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::broker_config::{AddressReport, BrokerReport, merge_by_key};

/// How many removed addresses the log remembers; a caller further behind is answered whole.
pub const REMOVALS_KEPT: usize = 4096;

/// What changed in a broker's report since a point.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportChanges {
    /// The point to ask from next time; empty from a broker that answers every address each time
    /// (one that predates points answers `GET /report` whatever it is asked).
    #[serde(default)]
    pub since: String,
    /// This is the whole report: the caller replaces what it holds rather than updating it.
    #[serde(default)]
    pub whole: bool,
    /// The revision of the config the broker has applied.
    pub revision: String,
    /// The addresses whose report changed, or that are new, by address (all of them when whole).
    pub addresses: Vec<AddressReport>,
    /// The addresses no longer served (applied before `addresses`: an address removed and added
    /// again is in both).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// What keeps the broker from serving the config fully, as in [`BrokerReport::problems`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl BrokerReport {
    /// Applies `changes` to this report, which holds what the broker reported up to the point
    /// they were asked from; the addresses come out sorted by address.
    pub fn apply(&mut self, changes: ReportChanges) {
        self.revision = changes.revision;
        self.problems = changes.problems;
        if changes.whole || changes.since.is_empty() {
            self.addresses = changes.addresses;
            self.addresses.sort_by(|a, b| a.address.cmp(&b.address));
            return;
        }
        merge_by_key(&mut self.addresses, &changes.removed, changes.addresses, |a| {
            &a.address
        });
    }
}

/// A point that is not `<epoch>-<generation>` in hexadecimal and decimal.
#[derive(Debug, thiserror::Error)]
#[error("invalid report point {0:?}: expected <epoch>-<generation> as a report's `since` gave it")]
pub struct InvalidPoint(pub String);

/// What a broker reported of each address and when it last changed, for answering
/// [`ReportChanges`].
#[derive(Debug)]
pub struct ReportLog {
    epoch: u64,
    generation: u64,
    /// How many reports were taken: an address not seen in the last was removed.
    scans: u64,
    last: HashMap<String, Seen>,
    /// The addresses removed, with the generation of their removal, oldest first.
    removed: VecDeque<(String, u64)>,
    /// Removals up to this generation were forgotten: a caller before it is answered whole.
    forgotten: u64,
}

/// The last report of one address.
#[derive(Debug)]
struct Seen {
    report: AddressReport,
    /// The generation it last changed at.
    changed: u64,
    /// The scan it was last seen in.
    scan: u64,
}

impl ReportLog {
    /// An empty log for the broker process with this `epoch` (drawn at random when it starts, so
    /// that a point another process gave is never taken for one of this).
    pub fn new(epoch: u64) -> Self {
        Self {
            epoch,
            generation: 0,
            scans: 0,
            last: HashMap::new(),
            removed: VecDeque::new(),
            forgotten: 0,
        }
    }

    /// Takes `report`, the broker's whole report now, and answers what changed in it since the
    /// point `since` (`None`: the whole report, with a point to ask from).
    pub fn changes(
        &mut self,
        report: BrokerReport,
        since: Option<&str>,
    ) -> Result<ReportChanges, InvalidPoint> {
        let from = since.map(|point| self.parse(point)).transpose()?;
        self.take(report.addresses);
        // Answered whole when the caller's point is of another process, not given yet, or from
        // before removals forgotten since.
        let from = from
            .flatten()
            .filter(|&generation| generation <= self.generation && generation >= self.forgotten);
        let changed = |seen: &&Seen| from.is_none_or(|from| seen.changed > from);
        let mut addresses: Vec<AddressReport> = self
            .last
            .values()
            .filter(changed)
            .map(|seen| seen.report.clone())
            .collect();
        addresses.sort_by(|a, b| a.address.cmp(&b.address));
        let removed = match from {
            Some(from) => self
                .removed
                .iter()
                .filter(|(_, generation)| *generation > from)
                .map(|(address, _)| address.clone())
                .collect(),
            None => Vec::new(),
        };
        Ok(ReportChanges {
            since: format!("{:x}-{}", self.epoch, self.generation),
            whole: from.is_none(),
            revision: report.revision,
            addresses,
            removed,
            problems: report.problems,
        })
    }

    /// The generation `point` names, if it is of this process.
    fn parse(&self, point: &str) -> Result<Option<u64>, InvalidPoint> {
        let invalid = || InvalidPoint(point.chars().take(64).collect());
        let (epoch, generation) = point.split_once('-').ok_or_else(invalid)?;
        let epoch = u64::from_str_radix(epoch, 16).map_err(|_| invalid())?;
        let generation: u64 = generation.parse().map_err(|_| invalid())?;
        Ok((epoch == self.epoch).then_some(generation))
    }

    /// Compares `addresses` with what was last reported, giving what changed a new generation.
    fn take(&mut self, addresses: Vec<AddressReport>) {
        self.scans += 1;
        let (scan, generation) = (self.scans, self.generation + 1);
        let mut changed = false;
        let mut seen = 0;
        for report in addresses {
            match self.last.get_mut(&report.address) {
                Some(last) => {
                    seen += usize::from(last.scan != scan);
                    last.scan = scan;
                    if last.report != report {
                        last.report = report;
                        last.changed = generation;
                        changed = true;
                    }
                }
                None => {
                    seen += 1;
                    let seen = Seen {
                        report,
                        changed: generation,
                        scan,
                    };
                    self.last.insert(seen.report.address.clone(), seen);
                    changed = true;
                }
            }
        }
        if seen < self.last.len() {
            let removed = &mut self.removed;
            self.last.retain(|address, last| {
                let keep = last.scan == scan;
                if !keep {
                    removed.push_back((address.clone(), generation));
                }
                keep
            });
            changed = true;
        }
        while self.removed.len() > REMOVALS_KEPT {
            if let Some((_, generation)) = self.removed.pop_front() {
                self.forgotten = generation;
            }
        }
        if changed {
            self.generation = generation;
        }
    }
}

#[cfg(test)]
mod tests;
