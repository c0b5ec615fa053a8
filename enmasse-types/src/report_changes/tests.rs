//! A caller that applies each answer of the log holds the broker's whole report, whatever changed
//! in between, and is answered whole whenever its point cannot be trusted.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn report(addresses: &BTreeMap<String, u64>) -> BrokerReport {
    BrokerReport {
        revision: format!("r{}", addresses.len()),
        addresses: addresses
            .iter()
            .map(|(address, depth)| AddressReport::serving(address.clone(), *depth))
            .collect(),
        problems: vec![],
    }
}

fn state(entries: &[(&str, u64)]) -> BTreeMap<String, u64> {
    entries.iter().map(|(a, d)| ((*a).to_owned(), *d)).collect()
}

#[test]
fn only_what_changed_since_the_point_is_answered() {
    let mut log = ReportLog::new(7);
    let first = log
        .changes(report(&state(&[("a", 0), ("b", 0), ("c", 0)])), None)
        .unwrap();
    assert!(first.whole);
    assert_eq!(first.addresses.len(), 3);
    let second = log
        .changes(
            report(&state(&[("a", 5), ("c", 0), ("d", 0)])),
            Some(&first.since),
        )
        .unwrap();
    assert!(!second.whole);
    let names: Vec<&str> = second.addresses.iter().map(|a| a.address.as_str()).collect();
    assert_eq!(names, ["a", "d"]);
    assert_eq!(second.removed, ["b"]);
    // Nothing changed: nothing but the revision is sent, and the point stays.
    let third = log
        .changes(
            report(&state(&[("a", 5), ("c", 0), ("d", 0)])),
            Some(&second.since),
        )
        .unwrap();
    assert!(third.addresses.is_empty() && third.removed.is_empty() && !third.whole);
    assert_eq!(third.since, second.since);
}

#[test]
fn a_point_of_another_process_or_not_given_yet_is_answered_whole_and_garbage_is_refused() {
    let mut log = ReportLog::new(7);
    let now = report(&state(&[("a", 1)]));
    log.changes(now.clone(), None).unwrap();
    for point in ["8-1", "7-99"] {
        let answer = log.changes(now.clone(), Some(point)).unwrap();
        assert!(answer.whole, "{point}");
        assert_eq!(answer.addresses.len(), 1);
    }
    for garbage in ["", "7", "x-1", "7-", "7--1", "7-1-1"] {
        let err = log.changes(now.clone(), Some(garbage)).unwrap_err();
        assert!(err.to_string().contains("invalid report point"), "{err}");
    }
}

#[test]
fn a_caller_behind_more_removals_than_are_kept_is_answered_whole() {
    let mut log = ReportLog::new(1);
    let many: BTreeMap<String, u64> = (0..=REMOVALS_KEPT).map(|n| (format!("q{n}"), 0)).collect();
    let start = log.changes(report(&many), None).unwrap();
    let after = log.changes(report(&BTreeMap::new()), None).unwrap();
    let behind = log.changes(report(&BTreeMap::new()), Some(&start.since)).unwrap();
    assert!(behind.whole, "the removals it missed are not all remembered");
    let current = log.changes(report(&BTreeMap::new()), Some(&after.since)).unwrap();
    assert!(!current.whole);
}

#[test]
fn a_plain_report_of_a_broker_that_predates_points_is_taken_whole() {
    let mut held = report(&state(&[("a", 0), ("b", 0)]));
    let plain = serde_json::to_string(&report(&state(&[("b", 1)]))).unwrap();
    let answer: ReportChanges = serde_json::from_str(&plain).unwrap();
    held.apply(answer);
    assert_eq!(
        held,
        report(&state(&[("b", 1)])),
        "what it no longer reports is gone"
    );
}

/// One step: an address set to a depth, an address removed, or the caller asking (the log given
/// the whole report, or told what changed).
#[derive(Clone, Debug)]
enum Step {
    Set(usize, u64),
    Remove(usize),
    Ask,
    AskTold,
    /// The caller loses what it held (an operator that restarted).
    Forget,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (0..8usize, 0..3u64).prop_map(|(a, d)| Step::Set(a, d)),
        2 => (0..8usize).prop_map(Step::Remove),
        2 => Just(Step::Ask),
        2 => Just(Step::AskTold),
        1 => Just(Step::Forget),
    ]
}

proptest! {
    #[test]
    fn a_caller_applying_each_answer_holds_the_whole_report(steps in prop::collection::vec(step(), 1..80)) {
        let mut log = ReportLog::new(42);
        let mut broker: BTreeMap<String, u64> = BTreeMap::new();
        let mut held: Option<(String, BrokerReport)> = None;
        // What the log was last given.
        let mut given: BTreeMap<String, u64> = BTreeMap::new();
        for step in steps {
            match step {
                Step::Set(a, depth) => {
                    broker.insert(format!("q{a}"), depth);
                }
                Step::Remove(a) => {
                    broker.remove(&format!("q{a}"));
                }
                Step::Forget => held = None,
                Step::Ask | Step::AskTold => {
                    let since = held.as_ref().map(|(point, _)| point.as_str());
                    let answer = if matches!(step, Step::Ask) {
                        log.changes(report(&broker), since).unwrap()
                    } else {
                        // What changed since the log was last given, and one unchanged address
                        // besides: telling too much is no harm.
                        let changed = broker
                            .iter()
                            .filter(|(a, d)| given.get(*a) != Some(d) || a.as_str() == "q0")
                            .map(|(a, d)| AddressReport::serving(a.clone(), *d))
                            .collect();
                        let removed = given.keys().filter(|a| !broker.contains_key(*a)).cloned().collect();
                        let revision = report(&broker).revision;
                        log.changes_told(revision, vec![], changed, removed, since).unwrap()
                    };
                    given = broker.clone();
                    let (_, mut kept) = held.take().unwrap_or_default();
                    let point = answer.since.clone();
                    kept.apply(answer);
                    prop_assert_eq!(&kept, &report(&broker));
                    held = Some((point, kept));
                }
            }
        }
    }
}
