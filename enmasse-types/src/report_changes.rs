//! A broker's report asked for what changed since the last time (`GET /report?since=<point>`), so
//! that an operator watching a space of thousands of addresses is sent the few whose readiness or
//! depth moved, not all of them at every pass.
//!
//! The broker keeps, per address, the report it last gave and the generation at which that last
//! changed ([`ReportLog`]). A point (`<epoch>-<generation>`) names a generation of one broker
//! process; the epoch is drawn when the process starts. A point of another process, from the
//! future, or from before the removals the log still remembers, is answered with the whole report
//! (`whole: true`), which the caller takes in place of what it holds.

use std::collections::{BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::broker_config::{AddressReport, BrokerReport, ByAddress};

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
    /// The addresses whose report changed, or that are new (all of them when whole).
    pub addresses: ByAddress<AddressReport>,
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
    /// they were asked from (or nothing).
    pub fn apply(&mut self, changes: ReportChanges) {
        self.revision = changes.revision;
        self.problems = changes.problems;
        if changes.whole || changes.since.is_empty() {
            self.addresses = changes.addresses;
            return;
        }
        self.addresses.change(&changes.removed, changes.addresses);
    }
}

/// A point that is not `<epoch>-<generation>` in hexadecimal and decimal.
#[derive(Debug, thiserror::Error)]
#[error("invalid report point {0:?}: expected <epoch>-<generation> as a report's `since` gave it")]
pub struct InvalidPoint(pub String);

/// What a broker reported of each address and when it last changed, for answering
/// [`ReportChanges`]. It is given the whole report ([`Self::changes`]), or, by a broker that knows
/// what changed, only that ([`Self::changes_told`]); either way a caller asking since a point is
/// answered from an index of changes by generation, not a walk over every address.
#[derive(Debug)]
pub struct ReportLog {
    epoch: u64,
    generation: u64,
    /// How many reports were taken: an address not seen in the last was removed.
    scans: u64,
    last: HashMap<String, Seen>,
    /// Each address, by the generation it last changed at.
    by_change: BTreeSet<(u64, String)>,
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
            by_change: BTreeSet::new(),
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
        Ok(self.answer(from.flatten(), report.revision, report.problems))
    }

    /// As [`Self::changes`], from a broker that knows what changed in its report since it last
    /// gave one to this log: the reports of the addresses that changed or are new (`changed`),
    /// and the addresses no longer served (`removed`). Nothing else is looked at.
    pub fn changes_told(
        &mut self,
        revision: String,
        problems: Vec<String>,
        changed: Vec<AddressReport>,
        removed: Vec<String>,
        since: Option<&str>,
    ) -> Result<ReportChanges, InvalidPoint> {
        let from = since.map(|point| self.parse(point)).transpose()?;
        let generation = self.generation + 1;
        let mut moved = false;
        for address in removed {
            if let Some(last) = self.last.remove(&address) {
                self.by_change.remove(&(last.changed, address.clone()));
                self.removed.push_back((address, generation));
                moved = true;
            }
        }
        for report in changed {
            moved |= self.note(report, generation, self.scans);
        }
        self.forget_removals();
        if moved {
            self.generation = generation;
        }
        Ok(self.answer(from.flatten(), revision, problems))
    }

    /// What changed since generation `from` of this process (`None`: the whole report).
    fn answer(&self, from: Option<u64>, revision: String, problems: Vec<String>) -> ReportChanges {
        // Answered whole when the caller's point is of another process, not given yet, or from
        // before removals forgotten since.
        let from = from.filter(|&generation| generation <= self.generation && generation >= self.forgotten);
        let addresses: ByAddress<AddressReport> = match from {
            Some(from) => self
                .by_change
                .range((from + 1, String::new())..)
                .filter_map(|(_, address)| self.last.get(address))
                .map(|seen| seen.report.clone())
                .collect(),
            None => self.last.values().map(|seen| seen.report.clone()).collect(),
        };
        // Removals are kept oldest first: those since `from` are at the back.
        let mut removed: Vec<String> = match from {
            Some(from) => self
                .removed
                .iter()
                .rev()
                .take_while(|(_, generation)| *generation > from)
                .map(|(address, _)| address.clone())
                .collect(),
            None => Vec::new(),
        };
        removed.reverse();
        ReportChanges {
            since: format!("{:x}-{}", self.epoch, self.generation),
            whole: from.is_none(),
            revision,
            addresses,
            removed,
            problems,
        }
    }

    /// Records `report` of one address as seen in scan `scan`: a new generation when it differs
    /// from the last. Returns whether it did.
    fn note(&mut self, report: AddressReport, generation: u64, scan: u64) -> bool {
        match self.last.get_mut(&report.address) {
            Some(last) => {
                last.scan = scan;
                if last.report == report {
                    return false;
                }
                self.by_change.remove(&(last.changed, report.address.clone()));
                self.by_change.insert((generation, report.address.clone()));
                last.report = report;
                last.changed = generation;
            }
            None => {
                self.by_change.insert((generation, report.address.clone()));
                let seen = Seen {
                    report,
                    changed: generation,
                    scan,
                };
                self.last.insert(seen.report.address.clone(), seen);
            }
        }
        true
    }

    /// Lets go of the oldest removals past [`REMOVALS_KEPT`].
    fn forget_removals(&mut self) {
        while self.removed.len() > REMOVALS_KEPT {
            if let Some((_, generation)) = self.removed.pop_front() {
                self.forgotten = generation;
            }
        }
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
    fn take(&mut self, addresses: ByAddress<AddressReport>) {
        self.scans += 1;
        let (scan, generation) = (self.scans, self.generation + 1);
        let mut changed = false;
        let seen = addresses.len();
        for report in addresses {
            changed |= self.note(report, generation, scan);
        }
        if seen < self.last.len() {
            let (removed, by_change) = (&mut self.removed, &mut self.by_change);
            self.last.retain(|address, last| {
                let keep = last.scan == scan;
                if !keep {
                    by_change.remove(&(last.changed, address.clone()));
                    removed.push_back((address.clone(), generation));
                }
                keep
            });
            changed = true;
        }
        self.forget_removals();
        if changed {
            self.generation = generation;
        }
    }
}

#[cfg(test)]
mod tests;
