//! The members kept from pass to pass follow the stores, through the journal of what changed as
//! through a whole read.

use kube::runtime::watcher;
use proptest::prelude::*;
use serde_json::json;

use super::*;

fn address(namespace: &str, name: &str, uid: &str, version: &str, plan: &str) -> Address {
    serde_json::from_value(json!({
        "apiVersion": "enmasse.io/v1beta1",
        "kind": "Address",
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "resourceVersion": version},
        "spec": {"address": name, "type": "queue", "plan": plan}
    }))
    .unwrap()
}

fn plans(members: &Members) -> Vec<(String, String)> {
    let mut plans: Vec<(String, String)> = members
        .addresses
        .iter()
        .map(|a| (a.metadata.name.clone().unwrap(), a.spec.plan.clone()))
        .collect();
    plans.sort();
    plans
}

/// The members kept, by name, each found where the index says.
fn by_name(kept: &Kept<Address>) -> Vec<Address> {
    assert_eq!(kept.index.len(), kept.len());
    for a in kept.iter() {
        let name = a.metadata.name.as_deref().unwrap();
        assert!(
            std::ptr::eq(kept.get(name).unwrap(), a),
            "{name} is indexed where it is"
        );
    }
    let mut addresses = kept.to_vec();
    addresses.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    addresses
}

fn apply(writers: &mut MemberWriters, a: Address) {
    writers.addresses.apply(&watcher::Event::Apply(a));
}

fn delete(writers: &mut MemberWriters, a: Address) {
    writers.addresses.apply(&watcher::Event::Delete(a));
}

fn relist(writers: &mut MemberWriters, objects: Vec<Address>) {
    writers.addresses.apply(&watcher::Event::Init);
    for object in objects {
        writers.addresses.apply(&watcher::Event::InitApply(object));
    }
    writers.addresses.apply(&watcher::Event::InitDone);
}

#[test]
fn refreshed_members_follow_the_store_by_resource_version_and_uid_and_only_of_their_space() {
    let (stores, mut writers) = MemberStores::new();
    apply(&mut writers, address("team1", "app.b", "u1", "1", "small"));
    apply(&mut writers, address("team1", "app.a", "u2", "2", "small"));
    apply(&mut writers, address("team1", "other.c", "u3", "3", "small"));
    apply(&mut writers, address("team2", "app.d", "u4", "4", "small"));
    let mut members = Members::default();
    stores.refresh("team1", "app", &mut members);
    assert_eq!(
        plans(&members),
        [("app.a".into(), "small".into()), ("app.b".into(), "small".into())]
    );

    // A new version, an object made again under its name, one added and one gone.
    apply(&mut writers, address("team1", "app.a", "u2", "5", "large"));
    delete(&mut writers, address("team1", "app.b", "u1", "1", "small"));
    apply(&mut writers, address("team1", "app.b", "u6", "6", "medium"));
    apply(&mut writers, address("team1", "app.0", "u7", "7", "small"));
    stores.refresh("team1", "app", &mut members);
    assert_eq!(
        plans(&members),
        [
            ("app.0".into(), "small".into()),
            ("app.a".into(), "large".into()),
            ("app.b".into(), "medium".into()),
        ]
    );

    delete(&mut writers, address("team1", "app.a", "u2", "5", "large"));
    stores.refresh("team1", "app", &mut members);
    assert_eq!(
        plans(&members),
        [
            ("app.0".into(), "small".into()),
            ("app.b".into(), "medium".into())
        ]
    );
}

#[test]
fn a_member_of_the_same_version_is_kept_as_it_was_not_copied_again() {
    let (stores, mut writers) = MemberStores::new();
    apply(&mut writers, address("team1", "app.a", "u1", "1", "small"));
    let mut members = Members::default();
    stores.refresh("team1", "app", &mut members);
    // What is kept is trusted while the version is the same: a mark left on it stays, through a
    // relist and the whole read after it as through an event of the same version.
    members.addresses.items[0].spec.plan = "kept".into();
    apply(&mut writers, address("team1", "app.a", "u1", "1", "small"));
    stores.refresh("team1", "app", &mut members);
    relist(&mut writers, vec![address("team1", "app.a", "u1", "1", "small")]);
    stores.refresh("team1", "app", &mut members);
    assert_eq!(members.addresses[0].spec.plan, "kept");
}

#[test]
fn after_a_pass_only_the_members_the_journal_names_are_looked_at() {
    let (stores, mut writers) = MemberStores::new();
    relist(&mut writers, vec![address("team1", "app.a", "u1", "1", "small")]);
    let mut members = Members::default();
    stores.refresh("team1", "app", &mut members);
    members.addresses.items[0].spec.plan = "marked".into();
    apply(&mut writers, address("team1", "app.b", "u2", "2", "small"));
    stores.refresh("team1", "app", &mut members);
    // app.a was not named: it was not compared, and keeps the mark a whole read would not see
    // either (same version); app.b was looked up.
    assert_eq!(
        plans(&members),
        [
            ("app.a".into(), "marked".into()),
            ("app.b".into(), "small".into())
        ]
    );
    let journal = stores.addresses.journal.lock().unwrap();
    assert!(journal.changed.is_empty(), "the pass took what it read");
}

#[test]
fn a_space_whose_journal_overflows_reads_its_members_whole() {
    let (stores, mut writers) = MemberStores::new();
    relist(&mut writers, vec![]);
    let mut members = Members::default();
    stores.refresh("team1", "app", &mut members);
    for n in 0..=JOURNAL_PER_SPACE {
        apply(
            &mut writers,
            address("team1", &format!("app.q{n}"), &format!("u{n}"), "1", "small"),
        );
    }
    assert_eq!(
        stores.addresses.journal.lock().unwrap().changed[&("team1".to_owned(), "app".to_owned())],
        Pending::Whole,
        "the journal keeps a bounded number of names per space"
    );
    stores.refresh("team1", "app", &mut members);
    assert_eq!(members.addresses.len(), JOURNAL_PER_SPACE + 1);
}

#[test]
fn a_journal_of_too_many_spaces_lets_go_and_every_space_reads_whole() {
    let (stores, mut writers) = MemberStores::new();
    relist(&mut writers, vec![]);
    let mut members = Members::default();
    stores.refresh("team1", "app", &mut members);
    apply(&mut writers, address("team1", "app.a", "u0", "1", "small"));
    for n in 0..JOURNAL_SPACES {
        apply(
            &mut writers,
            address("team2", &format!("s{n}.a"), &format!("u{n}"), "1", "small"),
        );
    }
    assert!(
        stores.addresses.journal.lock().unwrap().changed.len() <= JOURNAL_SPACES,
        "the journal is bounded"
    );
    stores.refresh("team1", "app", &mut members);
    assert_eq!(plans(&members), [("app.a".into(), "small".into())], "read whole");
}

/// One step of what a watch brings, or a pass.
#[derive(Clone, Debug)]
enum Step {
    /// An Address applied, by namespace, name and plan (a new plan is a new version).
    Apply(usize, usize, usize),
    /// An Address deleted.
    Delete(usize, usize),
    /// The watch lists everything again.
    Relist,
    /// The space `app` of `team1` refreshes its members.
    Refresh,
}

const NAMESPACES: [&str; 2] = ["team1", "team2"];
const NAMES: [&str; 6] = ["app.a", "app.b", "app.c", "other.a", "app", "app.d.e"];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..2usize, 0..NAMES.len(), 0..3usize).prop_map(|(n, a, p)| Step::Apply(n, a, p)),
        3 => (0..2usize, 0..NAMES.len()).prop_map(|(n, a)| Step::Delete(n, a)),
        1 => Just(Step::Relist),
        4 => Just(Step::Refresh),
    ]
}

proptest! {
    #[test]
    fn members_refreshed_through_the_journal_are_those_a_whole_read_finds(
        steps in prop::collection::vec(step(), 1..60)
    ) {
        let (stores, mut writers) = MemberStores::new();
        relist(&mut writers, vec![]);
        let mut members = Members::default();
        // What the API server holds, and the version each change gets.
        let mut server: HashMap<(usize, usize), Address> = HashMap::new();
        let mut version = 0;
        for step in steps {
            match step {
                Step::Apply(n, a, p) => {
                    version += 1;
                    let uid = server
                        .get(&(n, a))
                        .and_then(|a| a.metadata.uid.clone())
                        .unwrap_or_else(|| format!("u{version}"));
                    let object = address(NAMESPACES[n], NAMES[a], &uid, &version.to_string(), &format!("p{p}"));
                    server.insert((n, a), object.clone());
                    apply(&mut writers, object);
                }
                Step::Delete(n, a) => {
                    if let Some(object) = server.remove(&(n, a)) {
                        delete(&mut writers, object);
                    }
                }
                Step::Relist => relist(&mut writers, server.values().cloned().collect()),
                Step::Refresh => {
                    stores.refresh("team1", "app", &mut members);
                    let mut whole = Kept::default();
                    read_whole(&stores.addresses.store, "team1", "app", &mut whole);
                    prop_assert_eq!(by_name(&members.addresses), by_name(&whole));
                }
            }
        }
    }
}
