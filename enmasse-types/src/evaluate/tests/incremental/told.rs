//! The evaluator told what changed gives the whole evaluation's verdict, over random edits, and
//! looks at no more than it is told.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::evaluate::Changes;

/// What a caller knows changed since the last evaluation: the names of the addresses it saw
/// change (as a watch's events give them), and the report's addresses that changed (as a broker
/// answers `GET /report?since`).
fn changes(before: &World, now: &World, touched: &BTreeSet<String>) -> Changes {
    let by_name = |w: &World| -> BTreeMap<String, Address> {
        w.catalog
            .addresses
            .iter()
            .map(|a| (a.metadata.name.clone().unwrap(), a.clone()))
            .collect()
    };
    let (was, is) = (by_name(before), by_name(now));
    let mut addresses = touched.clone();
    for name in was.keys().chain(is.keys()) {
        if was.get(name) != is.get(name) {
            addresses.insert(name.clone());
        }
    }
    let mut reported = BTreeMap::new();
    match (before.reports.get("app"), now.reports.get("app")) {
        (None, None) => {
            reported.insert("app".to_owned(), BTreeSet::new());
        }
        (Some(was), Some(is)) => {
            let of = |r: &BrokerReport| -> BTreeMap<String, AddressReport> {
                r.addresses
                    .iter()
                    .map(|a| (a.address.clone(), a.clone()))
                    .collect()
            };
            let (was, is) = (of(was), of(is));
            let differ = was
                .keys()
                .chain(is.keys())
                .filter(|a| was.get(*a) != is.get(*a))
                .cloned()
                .collect();
            reported.insert("app".to_owned(), differ);
        }
        // A report that came or went is given whole.
        _ => {}
    }
    Changes { addresses, reported }
}

/// The addresses of `world`, sorted by name (twins side by side).
fn by_name(world: &World) -> Vec<Address> {
    let mut addresses = world.catalog.addresses.clone();
    addresses.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    addresses
}

fn told<'a>(
    world: &World,
    addresses: &[Address],
    changes: &Changes,
    incremental: &'a mut Incremental,
) -> &'a Evaluation {
    // In no order by name, as the operator keeps its members: found by name.
    let addresses: Vec<Address> = addresses.iter().rev().cloned().collect();
    let tenant = Tenant {
        namespace: "team1",
        spaces: &world.catalog.spaces,
        addresses: &addresses,
        users: &world.catalog.users,
    };
    let find = |name: &str| {
        addresses
            .iter()
            .find(|a| a.metadata.name.as_deref() == Some(name))
    };
    incremental.evaluate_changes(
        &tenant,
        &find,
        &world.catalog.infra(),
        &world.reports,
        &at(world.now),
        changes,
    )
}

#[test]
fn the_verdict_from_what_changed_is_the_whole_verdict_over_random_edits() {
    over_random_edits(|edits, partial| {
        let mut world = World::new();
        let mut incremental = Incremental::new();
        let mut last = world.whole();
        let mut given = world.clone();
        let mut touched = BTreeSet::new();
        for edit in edits {
            apply(&mut world, edit, &last);
            if let Edit::Put(r, ..) | Edit::Delete(r) = *edit {
                touched.insert(format!("app.r{r}"));
            }
            let whole = world.whole();
            let addresses = by_name(&world);
            let twins = addresses
                .windows(2)
                .any(|w| w[0].metadata.name == w[1].metadata.name);
            // Two resources of one name (a manifests directory) cannot be told by name.
            let again = if twins {
                world.again(&mut incremental).clone()
            } else {
                let changes = changes(&given, &world, &touched);
                let again = told(&world, &addresses, &changes, &mut incremental).clone();
                if incremental.evaluated() < addresses.len() {
                    partial.set(partial.get() + 1);
                }
                again
            };
            prop_assert_eq!(&again, &whole, "after {:?}", edit);
            given = world.clone();
            touched.clear();
            last = whole;
        }
        Ok(())
    });
}

#[test]
fn an_address_added_to_a_settled_space_told_is_the_only_one_looked_at() {
    let (mut world, mut incremental) = World::settled_queues(40);
    let given = world.clone();
    world.put(queue_named("q-new"));
    let changes = changes(&given, &world, &BTreeSet::new());
    assert_eq!(changes.addresses.len(), 1);
    let addresses = by_name(&world);
    let again = told(&world, &addresses, &changes, &mut incremental).clone();
    assert_eq!(again, world.whole());
    assert_eq!(incremental.evaluated(), 1);
    assert_eq!(
        incremental.evaluated_again("app"),
        Some(&["app.q-new".to_owned()][..])
    );
}

#[test]
fn an_address_whose_status_was_not_written_back_is_looked_at_again_though_not_told() {
    let mut world = World::roomy();
    world.catalog.addresses = queues(40);
    let mut incremental = Incremental::new();
    world.settle(&mut incremental, 3);
    world.put(queue_named("q-new"));
    let addresses = by_name(&world);
    let mut changes = Changes::default();
    changes.addresses.insert("app.q-new".into());
    changes.reported.insert("app".into(), BTreeSet::new());
    told(&world, &addresses, &changes, &mut incremental);
    // Nothing written back, nothing told: the new address is evaluated again all the same.
    world.now += 1;
    let changes = Changes {
        reported: changes.reported,
        ..Changes::default()
    };
    let again = told(&world, &addresses, &changes, &mut incremental).clone();
    assert_eq!(
        incremental.evaluated_again("app"),
        Some(&["app.q-new".to_owned()][..])
    );
    assert_eq!(again, world.whole());
}
