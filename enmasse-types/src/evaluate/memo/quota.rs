//! The quota in an evaluation of the changed addresses. Admission places addresses one at a time
//! in its order, and placing one never changes the verdict of one placed before it. So the
//! admission the last evaluation kept, before each of the last few addresses it placed, lets
//! addresses that come after every unchanged one be placed alone: an address added to a space of
//! thousands is one placement. A changed address that asks for what it asked, from where it
//! stood, is not placed again. Otherwise admission runs over every address, and the unchanged
//! ones must keep their verdicts.

use std::{
    borrow::Cow,
    collections::{HashMap, HashSet},
};

use super::{AddressMemo, Changed};
use crate::{
    admission::{self, Admitter, Kept, Limits, Request, Resource, Verdict},
    credits::Credits,
    evaluate::{
        address::{self, Checked},
        name_of,
    },
    resources::address::{Address, AddressType},
};

/// How many of the last addresses placed the kept admission can resume before: what
/// [`admission::admit_keeping`] is asked to keep for a checkpoint.
pub(in crate::evaluate) const KEEP: usize = 8;

/// Admission as the last evaluation left it.
#[derive(Clone, Debug)]
pub(in crate::evaluate) struct Checkpoint {
    /// After every address.
    after: Admitter,
    /// Before each of the last addresses placed, by resource name, in the order placed.
    tail: Vec<(String, Admitter)>,
    /// The resource placed just before the tail, if one was.
    preceding: Option<String>,
    /// How many addresses the admission that made it placed.
    pub(in crate::evaluate) placed: usize,
}

impl Checkpoint {
    /// What `admit_keeping` kept, its requests named by `name`.
    pub(in crate::evaluate) fn of(kept: Kept, name: impl Fn(usize) -> String) -> Self {
        Self {
            after: kept.after,
            tail: kept.before.into_iter().map(|(i, a)| (name(i), a)).collect(),
            preceding: kept.preceding.map(&name),
            placed: kept.placed,
        }
    }
}

/// What admission made of the changed addresses.
pub(super) struct Admitted {
    /// The verdict of each changed address that was placed, by its index among the changed.
    pub(super) verdicts: HashMap<usize, Verdict>,
    /// A limit the previously admitted addresses exceed.
    pub(super) exceeded: Option<(Resource, u64, Credits)>,
    /// The admission to keep for the next evaluation.
    pub(super) checkpoint: Checkpoint,
}

/// Admits the changed addresses (in evaluation order) among the space's (`ordered`, asked for only
/// when admission runs over all of them); `None` when that reaches further than they do (an
/// unchanged address would get another verdict, or a changed one falls back to its old plan): the
/// space is evaluated whole.
pub(super) fn admit<'o, 'a: 'o>(
    limits: &Limits,
    ordered: impl FnOnce() -> Cow<'o, [&'a Address]>,
    changed: &[Changed<'_>],
    checked: &[Checked<'_>],
    removed: &[String],
    memo: &AddressMemo,
) -> Option<Admitted> {
    match resume(changed, checked, removed, memo) {
        Some(resumed) => resumed,
        None => again(limits, &ordered(), changed, checked, memo),
    }
}

/// The request of a changed address that takes part in admission.
fn request<'c>(c: &Changed<'_>, checked: &'c [Checked<'_>]) -> Option<&'c Request> {
    match (c.checked, &c.settled) {
        (Some(i), Some(Ok(_))) => Some(&checked[i].request),
        _ => None,
    }
}

/// Where an address that is not a topic or subscription comes in admission's order: those that
/// keep their place first, then as evaluated (those served before first, then by creation and
/// name). A topic or subscription ties places together (a subscription keeps its place with its
/// topic), and is never placed alone from a checkpoint; one [`as_before`] keeps its place.
fn key<'a>(address: &'a Address, request: &Request) -> impl Ord + 'a {
    (!request.previously_admitted, address::order_key(address))
}

/// The verdict a changed address had, when it asks the quota for what it asked then, from the
/// same place in admission's order (a label edited, a status written back, an address deleted
/// and held for its messages): placed after the same requests, it gets the same verdict.
fn as_before<'m>(c: &Changed<'_>, checked: &[Checked<'_>], memo: &'m AddressMemo) -> Option<&'m Verdict> {
    let record = memo.records.get(name_of(&c.address.metadata))?;
    let (was, verdict) = record.admission.as_ref()?;
    let request = request(c, checked)?;
    (request == was && key(c.address, request) == key(&record.input, was)).then_some(verdict)
}

/// Whether changed address `c`, given `verdict`, is not admitted and falls back to the plan it
/// was admitted on: that leaves the space to a whole evaluation.
fn falls_back(c: &Changed<'_>, checked: &[Checked<'_>], verdict: &Verdict) -> bool {
    let fallback = c.checked.is_some_and(|i| checked[i].fallback.is_some());
    fallback && !matches!(verdict, Verdict::Admitted(_))
}

fn ties(request: &Request) -> bool {
    matches!(request.type_, AddressType::Topic | AddressType::Subscription)
}

/// Places the changed addresses from the admission kept before those of them that were placed
/// last time, when all of those were among the last placed and every changed one comes after
/// every unchanged one. Those [`as_before`] placed before that point keep their verdicts and
/// their places. `None` when it cannot; `Some(None)` when the space must be evaluated whole.
fn resume(
    changed: &[Changed<'_>],
    checked: &[Checked<'_>],
    removed: &[String],
    memo: &AddressMemo,
) -> Option<Option<Admitted>> {
    let checkpoint = memo.admitted.as_ref()?;
    let placed = |name: &str| memo.records.get(name).and_then(|r| r.admission.as_ref());
    let mut verdicts = HashMap::new();
    for (k, c) in changed.iter().enumerate() {
        if let Some(verdict) = as_before(c, checked, memo) {
            if falls_back(c, checked, verdict) {
                return Some(None);
            }
            verdicts.insert(k, verdict.clone());
        }
    }
    let moved = |k: &usize| !verdicts.contains_key(k);
    // What leaves the last order: the changed and removed addresses that were placed in it, but
    // those as before; if one of those is among the last placed, the check below fails.
    let mut leaving: HashSet<&str> = HashSet::new();
    let names = changed
        .iter()
        .enumerate()
        .filter(|(k, _)| moved(k))
        .map(|(_, c)| name_of(&c.address.metadata))
        .chain(removed.iter().map(String::as_str));
    for name in names {
        if let Some((request, _)) = placed(name) {
            if ties(request) {
                return None;
            }
            leaving.insert(name);
        }
    }
    let mut entering: Vec<(usize, &Request)> = Vec::new();
    for (k, c) in changed.iter().enumerate().filter(|(k, _)| moved(k)) {
        if let Some(request) = request(c, checked) {
            if ties(request) {
                return None;
            }
            entering.push((k, request));
        }
    }
    // Those leaving must be the last placed: the admission before them is kept.
    let start = checkpoint.tail.len().checked_sub(leaving.len())?;
    if !checkpoint.tail[start..]
        .iter()
        .all(|(name, _)| leaving.contains(name.as_str()))
    {
        return None;
    }
    let (mut admitter, last) = match checkpoint.tail.get(start) {
        Some((_, before)) => (
            before.clone(),
            start
                .checked_sub(1)
                .map(|i| &checkpoint.tail[i].0)
                .or(checkpoint.preceding.as_ref()),
        ),
        None => (
            checkpoint.after.clone(),
            checkpoint
                .tail
                .last()
                .map(|(name, _)| name)
                .or(checkpoint.preceding.as_ref()),
        ),
    };
    // The last unchanged address placed must come before every one entering.
    if let Some(last) = last {
        let record = memo.records.get(last)?;
        let (request, _) = record.admission.as_ref()?;
        if ties(request) {
            return None;
        }
        let bound = key(&record.input, request);
        if entering
            .iter()
            .any(|&(k, request)| key(changed[k].address, request) <= bound)
        {
            return None;
        }
    }
    entering.sort_by(|&(a, ra), &(b, rb)| key(changed[a].address, ra).cmp(&key(changed[b].address, rb)));
    let mut tail = checkpoint.tail[..start].to_vec();
    let mut preceding = checkpoint.preceding.clone();
    let placed = entering.len();
    for (k, request) in entering {
        tail.push((name_of(&changed[k].address.metadata).to_owned(), admitter.clone()));
        let verdict = admitter.place(request);
        if falls_back(&changed[k], checked, &verdict) {
            return Some(None);
        }
        verdicts.insert(k, verdict);
    }
    if let Some(over) = tail.len().checked_sub(KEEP).filter(|&over| over > 0) {
        preceding = Some(tail[over - 1].0.clone());
        tail.drain(..over);
    }
    Some(Some(Admitted {
        verdicts,
        exceeded: admitter.exceeded(),
        checkpoint: Checkpoint {
            after: admitter,
            tail,
            preceding,
            placed,
        },
    }))
}

/// Admission over every address in order; the unchanged must keep their verdicts.
fn again(
    limits: &Limits,
    addresses: &[&Address],
    changed: &[Changed<'_>],
    checked: &[Checked<'_>],
    memo: &AddressMemo,
) -> Option<Admitted> {
    let mut requests: Vec<&Request> = Vec::with_capacity(addresses.len());
    let mut owners: Vec<Result<&Verdict, usize>> = Vec::with_capacity(addresses.len());
    let mut names: Vec<&str> = Vec::with_capacity(addresses.len());
    let mut next = changed.iter().enumerate().peekable();
    for &address in addresses {
        let name = name_of(&address.metadata);
        if next
            .peek()
            .is_some_and(|(_, c)| name_of(&c.address.metadata) == name)
        {
            let Some((k, c)) = next.next() else { break };
            if let Some(request) = request(c, checked) {
                requests.push(request);
                owners.push(Err(k));
                names.push(name);
            }
        // An address the memo does not know, and was not told of: the space is evaluated whole.
        } else if let Some((request, verdict)) = &memo.records.get(name)?.admission {
            requests.push(request);
            owners.push(Ok(verdict));
            names.push(name);
        }
    }
    let (outcome, kept) = admission::admit_keeping(limits, &requests, KEEP);
    let mut verdicts: HashMap<usize, Verdict> = HashMap::new();
    for (owner, verdict) in owners.into_iter().zip(outcome.verdicts) {
        match owner {
            Ok(before) if *before != verdict => return None,
            Ok(_) => {}
            Err(k) => {
                let admitted = matches!(verdict, Verdict::Admitted(_));
                let i = changed[k].checked?;
                if !admitted && checked[i].fallback.is_some() {
                    return None;
                }
                verdicts.insert(k, verdict);
            }
        }
    }
    Some(Admitted {
        verdicts,
        exceeded: outcome.exceeded,
        checkpoint: Checkpoint::of(kept, |i| names[i].to_owned()),
    })
}
