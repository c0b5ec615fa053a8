//! What the last evaluation of a space's addresses found of each, and evaluating again only the
//! addresses that changed.
//!
//! An address is evaluated again when its resource (spec or status; told by uid and resource
//! version where the caller says an API server gave them) or its broker's report of it changed, or when its status
//! did not come out as it went in (evaluating it again could then give another status, or stamp
//! another time). The others keep their status and what their broker serves, and the digest of
//! that ([`AddressesDigest`]) is kept as addresses come and go. Addresses depend on each other in
//! three ways, and each is checked before anything is kept:
//!
//! - Two resources of one address: the first takes it. An address whose spec.address is shared
//!   with another resource, now or before the change, makes the whole space be evaluated.
//! - References (a subscription's topic, dead-letter and expiry addresses): an address that any
//!   other names makes the whole space be evaluated when it changes. The changed addresses look
//!   up the others' types; while some address serves another type than its spec asks because its
//!   spec failed (what the others saw of it then depends on their place), the space is whole.
//! - The quota, which admits in order: the changed addresses' requests join the others', and
//!   admission runs over all of them (arithmetic, far cheaper than evaluating). If any
//!   unchanged address gets another verdict than it had, or admission would move an address back
//!   to what it was served as (now, or last time), the whole space is evaluated.
//!
//! Anything else that could tie addresses together (the space, its plan, the infrastructure)
//! is compared by the caller, which forgets the memo when it changed.

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    Infra, ServedChanges,
    address::{self, Checked, Served, Trace},
    name_of,
    space::Resolved,
};
use crate::{
    admission::{Request, Verdict},
    broker_config::{AddressReport, AddressesDigest, BrokerAddress, BrokerReport, ByAddress},
    resources::{
        address::{Address, AddressStatus, AddressType},
        common::same_version,
    },
};

pub(super) use quota::{Checkpoint, KEEP};

mod quota;

/// A space with more changed addresses than one in this many is evaluated whole: the bookkeeping
/// would cost more than it saves.
const WHOLE_BEYOND: usize = 8;

/// What the last evaluation found of one address.
#[derive(Debug)]
struct Record {
    /// The resource as it was evaluated.
    input: Address,
    /// What its broker reported of it then.
    reported: Option<AddressReport>,
    /// Its status came out as it went in: evaluating it again gives the same, at any time.
    settled: bool,
    /// The type it passed its own rules as, and the type it was served as once settled.
    types: Option<(AddressType, AddressType)>,
    /// Its last request to the quota and the verdict.
    admission: Option<(Request, Verdict)>,
}

impl Record {
    /// The addresses this one may name: as topic, dead-letter or expiry address, in its spec or
    /// as its broker serves it.
    fn names(&self) -> impl Iterator<Item = &str> {
        let spec = &self.input.spec;
        [
            spec.topic.as_deref(),
            spec.deadletter.as_deref(),
            spec.expiry.as_deref(),
            self.reported.as_ref().and_then(|r| r.topic.as_deref()),
        ]
        .into_iter()
        .flatten()
    }
}

/// What the last evaluation of one space's addresses found, by resource name.
#[derive(Debug, Default)]
pub(super) struct AddressMemo {
    records: HashMap<String, Record>,
    /// The resource that passed its own rules with each address.
    checked: HashMap<String, String>,
    /// How many addresses name each address (see [`Record::names`]).
    named: HashMap<String, usize>,
    /// The resources of each address (`spec.address`), by resource name.
    owners: HashMap<String, Vec<String>>,
    /// The addresses whose status did not come out as it went in: evaluated again every time.
    unsettled: HashSet<String>,
    /// Admission moved some address back to what it was served as: it runs whole next time.
    admission_fell_back: bool,
    /// Some address fell back to another type while settling: the addresses that name it saw one
    /// type or the other by their place in the order, which is left to a whole evaluation.
    retyped: bool,
    /// How many addresses the last evaluation evaluated.
    pub(super) evaluated: usize,
    /// How many addresses the last evaluation looked at to find those that changed.
    pub(super) looked_at: usize,
    /// The resource names of the addresses the last evaluation evaluated again, when it did not
    /// evaluate the space whole: every other address came out with the status it went in with.
    pub(super) again: Option<Vec<String>>,
    /// The digest of what the broker was to serve after the last evaluation.
    pub(super) digest: AddressesDigest,
    /// Whether a uid and resource version tell an unchanged address (an API server's resources).
    pub(super) versions: bool,
    /// Admission as the last evaluation left it.
    pub(super) admitted: Option<Checkpoint>,
    /// What the last evaluation changed of what the broker serves, when it was not whole.
    pub(super) served_changes: Option<ServedChanges>,
}

impl AddressMemo {
    /// Forgets everything: the next evaluation is whole.
    pub(super) fn clear(&mut self) {
        *self = Self {
            versions: self.versions,
            ..Self::default()
        };
    }

    /// Remembers a whole evaluation.
    pub(super) fn remember(
        &mut self,
        traces: &[Trace<'_>],
        report: Option<&BrokerReport>,
        out: &BTreeMap<String, AddressStatus>,
    ) {
        self.clear();
        self.records.reserve(traces.len());
        self.checked.reserve(traces.len());
        self.owners.reserve(traces.len());
        for trace in traces {
            // Two resources of one name (a manifests directory can hold them; an API server
            // cannot): records are by name, so there is nothing sound to remember.
            if self.records.contains_key(name_of(&trace.address.metadata)) {
                self.clear();
                return;
            }
            self.admission_fell_back |= trace.fell_back_at_admission;
            self.retyped |= trace.types.is_some_and(|(first, settled)| first != settled);
            self.insert(record(trace, report, out));
        }
        self.evaluated = traces.len();
        self.looked_at = traces.len();
    }

    fn insert(&mut self, (name, record): (String, Record)) {
        self.remove(&name);
        for named in record.names() {
            *self.named.entry(named.to_owned()).or_default() += 1;
        }
        if record.types.is_some() {
            self.checked
                .insert(record.input.spec.address.clone(), name.clone());
        }
        self.owners
            .entry(record.input.spec.address.clone())
            .or_default()
            .push(name.clone());
        if !record.settled {
            self.unsettled.insert(name.clone());
        }
        self.records.insert(name, record);
    }

    fn remove(&mut self, name: &str) -> Option<Record> {
        let record = self.records.remove(name)?;
        for named in record.names() {
            if let Some(count) = self.named.get_mut(named) {
                *count -= 1;
                if *count == 0 {
                    self.named.remove(named);
                }
            }
        }
        if self
            .checked
            .get(&record.input.spec.address)
            .is_some_and(|n| n == name)
        {
            self.checked.remove(&record.input.spec.address);
        }
        if let Some(owners) = self.owners.get_mut(&record.input.spec.address) {
            owners.retain(|n| n != name);
            if owners.is_empty() {
                self.owners.remove(&record.input.spec.address);
            }
        }
        self.unsettled.remove(name);
        Some(record)
    }
}

/// The record of a traced address, with its resource name.
fn record(
    trace: &Trace<'_>,
    report: Option<&BrokerReport>,
    out: &BTreeMap<String, AddressStatus>,
) -> (String, Record) {
    let name = name_of(&trace.address.metadata).to_owned();
    let settled = out.get(&name) == trace.address.status.as_ref();
    let record = Record {
        input: trace.address.clone(),
        reported: report
            .and_then(|r| r.address(&trace.address.spec.address))
            .cloned(),
        settled,
        types: trace.types,
        admission: trace.admission.clone(),
    };
    (name, record)
}

/// Whether `now` is `before` unchanged: with `versions` (resources an API server gave, which
/// gives every change a new version), by uid and resource version where both have them; field by
/// field otherwise (as for manifests read from files).
fn unchanged(before: &Address, now: &Address, versions: bool) -> bool {
    match same_version(&before.metadata, &now.metadata) {
        Some(same) if versions => same,
        _ => before == now,
    }
}

/// An address evaluated again, and what became of it so far.
struct Changed<'a> {
    address: &'a Address,
    /// Its index among the checked, when it passed its own rules.
    checked: Option<usize>,
    /// Its settings, once settled.
    settled: Option<Result<Served, address::Refusal>>,
}

impl<'a> Changed<'a> {
    fn new(address: &'a Address) -> Self {
        Self {
            address,
            checked: None,
            settled: None,
        }
    }
}

/// Where the addresses that changed since the memo was taken are found.
pub(super) enum Candidates<'a, 'c> {
    /// Every address of the space, in [`address::in_order`]: each is compared with its record.
    All(&'c [&'a Address]),
    /// What the caller says changed: every other address is as its record has it.
    Told(&'c Told<'a, 'c>),
}

/// What changed of a space's addresses since the last evaluation, as its caller knows it.
pub(super) struct Told<'a, 'c> {
    /// The resource names of the addresses created, changed or deleted since.
    pub(super) names: &'c [&'c str],
    /// The addresses (`spec.address`) whose broker report changed since.
    pub(super) reported: &'c [&'c str],
    /// The address of a resource name, as it is now.
    pub(super) find: &'c dyn Fn(&str) -> Option<&'a Address>,
    /// Every address of the space, in [`address::in_order`]: for an admission over all of them.
    pub(super) ordered: &'c dyn Fn() -> Vec<&'a Address>,
}

impl<'a> Candidates<'a, '_> {
    /// Every address of the space, in [`address::in_order`].
    fn ordered(&self) -> Cow<'_, [&'a Address]> {
        match self {
            Self::All(addresses) => Cow::Borrowed(addresses),
            Self::Told(told) => Cow::Owned((told.ordered)()),
        }
    }
}

/// The addresses changed and removed since the memo was taken, each of them alone in what it was
/// and is, and how many addresses were looked at to find them; `None` when they are too many or
/// not alone: the space is evaluated whole.
type Found<'a> = Option<(Vec<Changed<'a>>, Vec<String>, usize)>;

/// Whether a changed address is alone in what it is (`current`) and was (`before`): no other
/// resource of the same address (`taken`: how many resources have an address now), and no other
/// address naming it.
fn alone(
    memo: &AddressMemo,
    current: Option<&str>,
    before: Option<&str>,
    taken: impl Fn(&str) -> usize,
) -> bool {
    current.is_none_or(|a| taken(a) == 1 && !memo.named.contains_key(a))
        && before.is_none_or(|a| current == Some(a) || (taken(a) == 0 && !memo.named.contains_key(a)))
}

/// Whether a space of `total` addresses with these changes is better evaluated whole.
fn too_many(changed: usize, removed: usize, total: usize) -> bool {
    (changed + removed) * WHOLE_BEYOND > total.max(WHOLE_BEYOND)
}

/// Whether `address`, reported as `reported`, is what its record has, settled.
fn same(memo: &AddressMemo, address: &Address, reported: Option<&AddressReport>) -> bool {
    memo.records.get(name_of(&address.metadata)).is_some_and(|r| {
        r.settled && r.reported.as_ref() == reported && unchanged(&r.input, address, memo.versions)
    })
}

/// Compares every address of the space with its record.
fn scan<'a>(addresses: &[&'a Address], report: Option<&BrokerReport>, memo: &AddressMemo) -> Found<'a> {
    let mut present: HashSet<&str> = HashSet::with_capacity(addresses.len());
    let mut taken: HashMap<&str, usize> = HashMap::with_capacity(addresses.len());
    let mut changed: Vec<Changed<'a>> = Vec::new();
    // How many of the addresses have a record.
    let mut known = 0;
    for &address in addresses {
        let name = name_of(&address.metadata);
        if !present.insert(name) {
            return None;
        }
        *taken.entry(address.spec.address.as_str()).or_default() += 1;
        known += usize::from(memo.records.contains_key(name));
        if !same(
            memo,
            address,
            report.and_then(|r| r.address(&address.spec.address)),
        ) {
            changed.push(Changed::new(address));
        }
    }
    // Every record is of a present address unless there are more records than were found.
    let removed: Vec<String> = if known < memo.records.len() {
        memo.records
            .keys()
            .filter(|name| !present.contains(name.as_str()))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    if too_many(changed.len(), removed.len(), addresses.len()) {
        return None;
    }
    let taken = |a: &str| taken.get(a).copied().unwrap_or(0);
    alone_all(memo, &changed, &removed, taken).then_some((changed, removed, addresses.len()))
}

/// Looks only at what the caller says changed, and at what the memo says is not settled.
fn told<'a>(told: &Told<'a, '_>, report: Option<&BrokerReport>, memo: &AddressMemo) -> Found<'a> {
    let owners = told
        .reported
        .iter()
        .filter_map(|a| memo.owners.get(*a))
        .flatten()
        .map(String::as_str);
    let unsettled = memo.unsettled.iter().map(String::as_str);
    let names: BTreeSet<&str> = told
        .names
        .iter()
        .copied()
        .chain(owners)
        .chain(unsettled)
        .collect();
    let mut changed: Vec<Changed<'a>> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    let mut new = 0;
    let looked_at = names.len();
    for name in names {
        match ((told.find)(name), memo.records.contains_key(name)) {
            (None, true) => removed.push(name.to_owned()),
            (None, false) => {}
            (Some(address), known) => {
                new += usize::from(!known);
                if !same(
                    memo,
                    address,
                    report.and_then(|r| r.address(&address.spec.address)),
                ) {
                    changed.push(Changed::new(address));
                }
            }
        }
    }
    if too_many(
        changed.len(),
        removed.len(),
        memo.records.len() + new - removed.len(),
    ) {
        return None;
    }
    // How many resources take an address now: those the memo has, less those changed or gone, and
    // the changed that take it now.
    let leaving = leaving(&changed, &removed);
    let taken = |a: &str| {
        let kept = memo.owners.get(a).map_or(0, |names| {
            names.iter().filter(|n| !leaving.contains(n.as_str())).count()
        });
        kept + changed.iter().filter(|c| c.address.spec.address == a).count()
    };
    if !alone_all(memo, &changed, &removed, taken) {
        return None;
    }
    // In evaluation order, as a scan finds them.
    changed.sort_by(|a, b| address::order_key(a.address).cmp(&address::order_key(b.address)));
    Some((changed, removed, looked_at))
}

/// The resource names of the changed and removed addresses: what they were is no longer so.
fn leaving<'n>(changed: &[Changed<'n>], removed: &'n [String]) -> HashSet<&'n str> {
    changed
        .iter()
        .map(|c| name_of(&c.address.metadata))
        .chain(removed.iter().map(String::as_str))
        .collect()
}

/// Whether every changed and removed address is [`alone`].
fn alone_all(
    memo: &AddressMemo,
    changed: &[Changed<'_>],
    removed: &[String],
    taken: impl Fn(&str) -> usize,
) -> bool {
    changed.iter().all(|c| {
        let before = memo.records.get(name_of(&c.address.metadata));
        alone(
            memo,
            Some(&c.address.spec.address),
            before.map(|r| r.input.spec.address.as_str()),
            &taken,
        )
    }) && removed
        .iter()
        .all(|name| alone(memo, None, Some(&memo.records[name].input.spec.address), &taken))
}

/// Evaluates again the addresses of a space that changed since `memo` was taken (found among
/// `candidates`), keeping the others' statuses in `out` and their part of `previous`, what the
/// broker was to serve. `None` when the change reaches further than the changed addresses: the
/// caller evaluates the space whole.
#[allow(clippy::too_many_arguments)]
pub(super) fn again<'a>(
    space: &Resolved<'_>,
    candidates: Candidates<'a, '_>,
    infra: &Infra<'a>,
    report: Option<&BrokerReport>,
    now: &Time,
    out: &mut BTreeMap<String, AddressStatus>,
    memo: &mut AddressMemo,
    previous: ByAddress<BrokerAddress>,
) -> Option<(ByAddress<BrokerAddress>, Vec<String>, AddressesDigest)> {
    if memo.records.is_empty() || memo.admission_fell_back || memo.retyped {
        return None;
    }
    let (mut changed, removed, looked_at) = match &candidates {
        Candidates::All(addresses) => scan(addresses, report, memo)?,
        Candidates::Told(t) => told(t, report, memo)?,
    };
    let leaving = leaving(&changed, &removed);
    let unchanged = |name: &str| !leaving.contains(name);

    // Their own rules, then references and settings, as a whole evaluation would see them.
    let mut checked: Vec<Checked<'a>> = Vec::new();
    for c in &mut changed {
        match address::check(space, c.address, infra, report) {
            Ok(ok) => {
                c.checked = Some(checked.len());
                checked.push(ok);
            }
            Err((phase, message)) => address::refuse(out, c.address, phase, message, now),
        }
    }
    let first_types: Vec<AddressType> = checked.iter().map(|c| c.served.type_).collect();
    let index = address::by_address(&checked);
    for c in &mut changed {
        let Some(i) = c.checked else { continue };
        let records = &memo.records;
        let by_address = &memo.checked;
        c.settled = Some(address::settle(&mut checked, i, |checked, target| {
            if let Some(&j) = index.get(target) {
                return Some(checked[j].served.type_);
            }
            let name = by_address.get(target).filter(|n| unchanged(n))?;
            // The same before and after it settled (see `retyped`).
            records[name].types.map(|(first, _)| first)
        }));
    }

    // The quota: from what the last evaluation kept when the changed come last, else over all.
    let ordered = || candidates.ordered();
    let admitted = quota::admit(&space.limits, ordered, &changed, &checked, &removed, memo)?;
    let mut verdicts = admitted.verdicts;
    let notes = address::exceeded_note(space, admitted.exceeded);

    // Nothing reaches further: conclude the changed ones, and remember them.
    // What the broker was to serve is kept by address, one resource each: a changed or removed
    // resource is found by the address it was last evaluated with, not by a walk over all. An
    // address served again replaces what it was; the others vacated leave at the end.
    let mut served = previous;
    let mut digest = memo.digest;
    let mut served_changes = ServedChanges::default();
    let mut vacated: HashSet<String> = HashSet::new();
    let gone = changed
        .iter()
        .map(|c| name_of(&c.address.metadata))
        .chain(removed.iter().map(String::as_str));
    for name in gone {
        let Some(record) = memo.records.get(name) else {
            continue;
        };
        let address = record.input.spec.address.as_str();
        if let Some(was) = served.get(address)
            && was.resource == name
        {
            digest.remove(was);
            served_changes.removed.push(address.to_owned());
            vacated.insert(address.to_owned());
        }
    }
    let mut traces = Vec::with_capacity(changed.len());
    for (k, c) in changed.iter_mut().enumerate() {
        let mut trace = Trace::new(c.address);
        if let Some(i) = c.checked {
            trace.types = Some((first_types[i], checked[i].served.type_));
            match c.settled.take() {
                Some(Ok(settings)) => {
                    let verdict = verdicts.remove(&k)?;
                    trace.admission = Some((checked[i].request.clone(), verdict.clone()));
                    let concluded = address::conclude(&checked[i], Ok(settings), verdict, report, now, out);
                    if let Some(b) = concluded {
                        digest.add(&b);
                        served_changes.upserted.push(b.address.clone());
                        if served.contains(&b.address) && !vacated.remove(&b.address) {
                            // Another resource of the address is still served: left to a whole
                            // evaluation (the checks above leave none).
                            return None;
                        }
                        served.insert(b);
                    }
                }
                Some(Err((phase, message))) => address::refuse(out, c.address, phase, message, now),
                None => {}
            }
        }
        traces.push(trace);
    }
    for address in vacated {
        served.remove(&address);
    }
    for name in &removed {
        out.remove(name);
        memo.remove(name);
    }
    for trace in &traces {
        memo.retyped |= trace.types.is_some_and(|(first, settled)| first != settled);
        memo.insert(record(trace, report, out));
    }
    memo.evaluated = changed.len();
    memo.looked_at = looked_at;
    memo.again = Some(
        traces
            .iter()
            .map(|t| name_of(&t.address.metadata).to_owned())
            .collect(),
    );
    memo.digest = digest;
    memo.admitted = Some(admitted.checkpoint);
    memo.served_changes = Some(served_changes);
    Some((served, notes, digest))
}
