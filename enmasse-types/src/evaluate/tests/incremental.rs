//! The incremental evaluator gives the whole evaluation's verdict, over random edits, and evaluates
//! again only what changed when that is all a change reaches.

use std::cell::Cell;

use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};

use super::*;
use crate::resources::address::{Address, AddressType};

/// A space plan with room for two brokers: two large queues fill it.
const TIGHT: &str = "apiVersion: admin.enmasse.io/v1beta2
kind: AddressSpacePlan
metadata: {name: tight}
spec:
  addressSpaceType: standard
  infraConfigRef: default
  resourceLimits: {router: 1.0, broker: 2.0, aggregate: 3.0}
  addressPlans: [standard-small-anycast, standard-small-queue, standard-large-queue, standard-small-topic, standard-small-subscription]
";

/// A namespace as the API server holds it, edited step by step.
#[derive(Clone)]
struct World {
    catalog: Catalog,
    reports: Reports,
    now: i64,
}

impl World {
    fn new() -> Self {
        let mut catalog = catalog(&[SPACE, TIGHT]);
        catalog.spaces[0].spec.plan = "tight".into();
        Self {
            catalog,
            reports: Reports::new(),
            now: 100,
        }
    }

    /// A world whose space has room for a hundred small queues.
    fn roomy() -> Self {
        let mut world = Self::new();
        world.catalog.spaces[0].spec.plan = "standard-small".into();
        world
    }

    fn tenant(&self) -> Tenant<'_> {
        Tenant {
            namespace: "team1",
            spaces: &self.catalog.spaces,
            addresses: &self.catalog.addresses,
            users: &self.catalog.users,
        }
    }

    fn whole(&self) -> Evaluation {
        evaluate(
            &self.tenant(),
            &self.catalog.infra(),
            &self.reports,
            &at(self.now),
        )
    }

    fn again<'a>(&self, incremental: &'a mut Incremental) -> &'a Evaluation {
        incremental.evaluate(
            &self.tenant(),
            &self.catalog.infra(),
            &self.reports,
            &at(self.now),
        )
    }

    /// Creates `address`, or replaces the spec of the resource of its name (its status stays, as
    /// the API server keeps it).
    fn put(&mut self, address: Address) {
        match self
            .catalog
            .addresses
            .iter_mut()
            .find(|a| a.metadata.name == address.metadata.name)
        {
            Some(existing) => existing.spec = address.spec,
            None => self.catalog.addresses.push(address),
        }
    }

    /// A roomy world of `n` queues, settled: the statuses written back and the broker serving
    /// the config.
    fn settled_queues(n: usize) -> (Self, Incremental) {
        let mut world = Self::roomy();
        world.catalog.addresses = queues(n);
        let mut incremental = Incremental::new();
        world.settle(&mut incremental, 3);
        (world, incremental)
    }

    /// `rounds` of: evaluated, the statuses written back, the config served.
    fn settle(&mut self, incremental: &mut Incremental, rounds: usize) {
        for _ in 0..rounds {
            let verdict = self.again(incremental).clone();
            self.carry(&verdict);
            self.serve(&verdict, "", 0);
        }
    }

    /// The statuses of `verdict` written back, as the operator (or the standalone broker) does.
    fn carry(&mut self, verdict: &Evaluation) {
        for a in &mut self.catalog.addresses {
            a.status = verdict
                .addresses
                .get(a.metadata.name.as_deref().unwrap())
                .cloned();
        }
        for u in &mut self.catalog.users {
            u.status = verdict.users.get(u.metadata.name.as_deref().unwrap()).cloned();
        }
        for s in &mut self.catalog.spaces {
            s.status = verdict
                .spaces
                .get(s.metadata.name.as_deref().unwrap())
                .map(|v| v.status.clone());
        }
    }

    /// The broker reports `verdict`'s config served, with `depth` messages on `deep`.
    fn serve(&mut self, verdict: &Evaluation, deep: &str, depth: u64) {
        self.reports.clear();
        let Some(config) = verdict.spaces.get("app").and_then(|v| v.config.as_ref()) else {
            return;
        };
        let report = BrokerReport {
            revision: config.revision(),
            addresses: config
                .addresses
                .iter()
                .map(|a| AddressReport {
                    type_: Some(a.type_),
                    topic: a.topic.clone(),
                    ..AddressReport::serving(a.address.clone(), if a.address == deep { depth } else { 0 })
                })
                .collect(),
            problems: vec![],
        };
        self.reports.insert("app".into(), report);
    }
}

const TYPES: &[&str] = &[
    "queue",
    "topic",
    "subscription",
    "anycast",
    "deadletter",
    "multicast",
];
const PLANS: &[&str] = &[
    "standard-small-queue",
    "standard-large-queue",
    "standard-small-topic",
    "standard-small-subscription",
    "standard-small-anycast",
    "standard-xlarge-queue",
    "no-such-plan",
];

/// One edit of the namespace, or of what its broker reports.
#[derive(Clone, Debug)]
enum Edit {
    /// An address created or its spec replaced: resource, address, type, plan, and the address it
    /// names (a subscription's topic, or else a dead-letter address on one draw in four).
    Put(u8, u8, u8, u8, u8),
    /// The first resource of a name deleted.
    Delete(u8),
    /// The first resource of a name labelled anew, its spec and status as they are.
    Label(u8, u8),
    /// A second resource of a name (a manifests directory can hold one): resource, address.
    Twin(u8, u8),
    /// The statuses of the last verdict written back.
    Carry,
    /// The broker reports the last verdict's config served, with messages on one address.
    Serve(u8, u8),
    SpacePlan(bool),
    User(bool),
    Tick,
}

fn edit() -> impl Strategy<Value = Edit> {
    // Mostly queues on the two queue plans, so that the quota fills and empties.
    let type_ = prop_oneof![4 => Just(0u8), 3 => 1..6u8];
    let plan = prop_oneof![2 => Just(0u8), 3 => Just(1u8), 2 => 2..7u8];
    prop_oneof![
        4 => (0..10u8, 0..12u8, type_, plan, 0..12u8).prop_map(|(r, a, t, p, n)| Edit::Put(r, a, t, p, n)),
        2 => (0..10u8).prop_map(Edit::Delete),
        2 => (0..10u8, 0..3u8).prop_map(|(r, l)| Edit::Label(r, l)),
        1 => (0..10u8, 0..12u8).prop_map(|(r, a)| Edit::Twin(r, a)),
        4 => Just(Edit::Carry),
        2 => (0..12u8, 0..3u8).prop_map(|(a, d)| Edit::Serve(a, d)),
        1 => any::<bool>().prop_map(Edit::SpacePlan),
        1 => any::<bool>().prop_map(Edit::User),
        1 => Just(Edit::Tick),
    ]
}

fn apply(world: &mut World, edit: &Edit, last: &Evaluation) {
    match *edit {
        Edit::Put(r, a, t, p, n) => {
            let type_ = TYPES[usize::from(t)];
            let named = format!("a{n}");
            let (topic, deadletter) = match type_ {
                "subscription" => (Some(named.as_str()), None),
                _ if n % 4 == 1 => (None, Some(named.as_str())),
                _ => (None, None),
            };
            world.put(resource(
                &format!("app.r{r}"),
                &format!("a{a}"),
                type_,
                PLANS[usize::from(p)],
                topic,
                deadletter,
            ));
        }
        Edit::Delete(r) => {
            if let Some(i) = first_of(world, r) {
                world.catalog.addresses.remove(i);
            }
        }
        Edit::Label(r, label) => {
            if let Some(i) = first_of(world, r) {
                let labels = [("label".to_owned(), label.to_string())].into();
                world.catalog.addresses[i].metadata.labels = Some(labels);
            }
        }
        Edit::Twin(r, a) => {
            let name = format!("app.r{r}");
            let twin = resource(
                &name,
                &format!("a{a}"),
                "queue",
                "standard-small-queue",
                None,
                None,
            );
            world.catalog.addresses.push(twin);
        }
        Edit::Carry => world.carry(last),
        Edit::Serve(a, depth) => world.serve(last, &format!("a{a}"), u64::from(depth)),
        Edit::SpacePlan(medium) => {
            let plan = if medium { "standard-medium" } else { "tight" };
            world.catalog.spaces[0].spec.plan = plan.to_owned();
        }
        Edit::User(true) if world.catalog.users.is_empty() => {
            let yaml = user("app.u1", "u1", "{type: password, password: cGFzc3dvcmQ=}", "[]");
            let mut users = catalog(&[&yaml]).users;
            world.catalog.users.append(&mut users);
        }
        Edit::User(true) => {}
        Edit::User(false) => world.catalog.users.clear(),
        Edit::Tick => world.now += 1,
    }
}

/// Where the first resource named for `r` is among the world's addresses.
fn first_of(world: &World, r: u8) -> Option<usize> {
    let name = format!("app.r{r}");
    world
        .catalog
        .addresses
        .iter()
        .position(|a| a.metadata.name.as_deref() == Some(&name))
}

/// An Address resource.
fn resource(
    name: &str,
    address: &str,
    type_: &str,
    plan: &str,
    topic: Option<&str>,
    deadletter: Option<&str>,
) -> Address {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "enmasse.io/v1beta1",
        "kind": "Address",
        "metadata": {"name": name, "namespace": "team1"},
        "spec": {"address": address, "type": type_, "plan": plan, "topic": topic, "deadletter": deadletter}
    }))
    .unwrap()
}

#[test]
fn the_incremental_verdict_is_the_whole_verdict_over_random_edits() {
    over_random_edits(|edits, partial| {
        let mut world = World::new();
        let mut incremental = Incremental::new();
        let mut last = world.whole();
        let mut before: Option<Evaluation> = None;
        for edit in edits {
            apply(&mut world, edit, &last);
            let whole = world.whole();
            let again = world.again(&mut incremental).clone();
            prop_assert_eq!(&again, &whole, "after {:?}", edit);
            // What it says it changed of the config, applied to the config before, is the config.
            let config = |e: &Evaluation| e.spaces.get("app").and_then(|v| v.config.clone());
            if let (Some(changes), Some(mut patched), Some(now)) = (
                incremental.served_changes("app"),
                before.as_ref().and_then(config),
                config(&again),
            ) {
                patched.apply(patch(&now, changes));
                prop_assert_eq!(&patched, &now, "changes {:?} after {:?}", changes, edit);
            }
            before = Some(again.clone());
            // What a caller writing statuses back skips came out as it went in.
            if let Some(evaluated) = incremental.evaluated_again("app") {
                for address in &world.catalog.addresses {
                    let name = address.metadata.name.as_deref().unwrap_or_default();
                    if name.starts_with("app.") && !evaluated.iter().any(|n| n == name) {
                        prop_assert_eq!(
                            again.addresses.get(name),
                            address.status.as_ref(),
                            "{} was not evaluated again, after {:?}",
                            name,
                            edit
                        );
                    }
                }
            }
            if incremental.evaluated() < world.catalog.addresses.len() {
                partial.set(partial.get() + 1);
            }
            last = whole;
        }
        Ok(())
    });
}

/// Runs `check` over random sequences of edits; it counts in `partial` the evaluations that were
/// not whole. The property is about those: enough of them must have happened.
fn over_random_edits(check: impl Fn(&[Edit], &Cell<usize>) -> Result<(), TestCaseError>) {
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let partial = Cell::new(0usize);
    let strategy = proptest::collection::vec(edit(), 1..40);
    runner.run(&strategy, |edits| check(&edits, &partial)).unwrap();
    let partial = partial.get();
    eprintln!("{partial} partial evaluations");
    assert!(partial > 100, "only {partial} evaluations were partial");
}

/// The patch that `changes` make of a config into `now`.
fn patch(now: &BrokerConfig, changes: &ServedChanges) -> crate::config_patch::ConfigPatch {
    crate::config_patch::ConfigPatch {
        base: String::new(),
        space: now.space.clone(),
        users: now.users.clone(),
        removed: changes.removed.clone(),
        addresses: changes
            .upserted
            .iter()
            .map(|a| now.address(a).unwrap().clone())
            .collect(),
    }
}

fn queue_named(name: &str) -> Address {
    resource(
        &format!("app.{name}"),
        name,
        "queue",
        "standard-small-queue",
        None,
        None,
    )
}

fn queues(n: usize) -> Vec<Address> {
    (0..n).map(|i| queue_named(&format!("q{i}"))).collect()
}

/// A queue made after the others, as an API server stamps it: it comes last in admission's order.
fn made_last(name: &str) -> Address {
    let mut queue = queue_named(name);
    queue.metadata.creation_timestamp = Some(at(200));
    queue
}

fn events_topic() -> Address {
    resource(
        "app.events",
        "events",
        "topic",
        "standard-small-topic",
        None,
        None,
    )
}

fn events_subscription() -> Address {
    resource(
        "app.sub",
        "sub",
        "subscription",
        "standard-small-subscription",
        Some("events"),
        None,
    )
}

/// Whether `verdict`'s config of the space serves `address`.
fn serves(verdict: &Evaluation, address: &str) -> bool {
    verdict.spaces["app"]
        .config
        .as_ref()
        .is_some_and(|config| config.address(address).is_some())
}

#[test]
fn an_address_added_to_a_settled_space_is_the_only_one_evaluated_again() {
    let (mut world, mut incremental) = World::settled_queues(50);
    world.again(&mut incremental);
    assert_eq!(
        incremental.evaluated(),
        0,
        "nothing changed, nothing is evaluated"
    );

    world.put(made_last("added"));
    let verdict = world.again(&mut incremental).clone();
    assert_eq!(incremental.evaluated(), 1);
    assert_eq!(
        incremental.placed("app"),
        Some(1),
        "admission resumed after the others"
    );
    assert_eq!(verdict, world.whole());
    assert!(serves(&verdict, "added"));

    // The broker serves it, and its status is written back: it alone is looked at each time.
    world.serve(&verdict, "", 0);
    let verdict = world.again(&mut incremental).clone();
    assert_eq!(incremental.evaluated(), 1);
    assert_eq!(
        incremental.placed("app"),
        Some(0),
        "it asks the quota for what it asked: nothing is placed"
    );
    world.carry(&verdict);
    let verdict = world.again(&mut incremental).clone();
    assert_eq!(incremental.evaluated(), 1);
    assert_eq!(
        incremental.placed("app"),
        Some(1),
        "admitted now, it is still placed last"
    );
    assert_eq!(verdict, world.whole());
    assert_eq!(verdict.addresses["app.added"].phase, Some(Phase::Active));
}

#[test]
fn an_early_address_edited_without_a_new_request_to_the_quota_is_not_placed_again() {
    let (mut world, mut incremental) = World::settled_queues(50);
    world.again(&mut incremental);

    // The first in admission's order, labelled: what it asks of the quota is what it asked.
    world.catalog.addresses[0].metadata.labels = Some([("team".to_owned(), "orders".to_owned())].into());
    let verdict = world.again(&mut incremental).clone();
    assert_eq!(incremental.evaluated(), 1);
    assert_eq!(incremental.placed("app"), Some(0));
    assert_eq!(verdict, world.whole());

    // Labelled again while an address is added: the added one alone is placed.
    world.catalog.addresses[0].metadata.labels = Some([("team".to_owned(), "billing".to_owned())].into());
    world.put(made_last("added"));
    let verdict = world.again(&mut incremental).clone();
    assert_eq!(incremental.evaluated(), 2);
    assert_eq!(incremental.placed("app"), Some(1));
    assert_eq!(verdict, world.whole());

    // Deleted, it frees its place: every address after it is placed again.
    world.catalog.addresses.remove(0);
    let verdict = world.again(&mut incremental).clone();
    assert_eq!(incremental.placed("app"), Some(50));
    assert_eq!(verdict, world.whole());
}

/// A space plan with room for two brokers, and a plan that takes both.
const TWO: &str = "apiVersion: admin.enmasse.io/v1beta2
kind: AddressSpacePlan
metadata: {name: two}
spec:
  addressSpaceType: standard
  infraConfigRef: default
  resourceLimits: {router: 100.0, broker: 2.0, aggregate: 102.0}
  addressPlans: [standard-small-queue, standard-large-queue, standard-xlarge-queue]
";

#[test]
fn an_address_added_before_a_waiting_one_in_admissions_order_is_not_placed_after_it() {
    let mut catalog = catalog(&[SPACE, TWO]);
    catalog.spaces[0].spec.plan = "two".into();
    let mut world = World {
        catalog,
        reports: Reports::new(),
        now: 100,
    };
    let mut incremental = Incremental::new();
    let queue = |name: &str, plan: &str| resource(&format!("app.{name}"), name, "queue", plan, None, None);
    world.put(queue("r1", "standard-large-queue"));
    world.settle(&mut incremental, 3);
    // It needs both brokers while one is taken: it waits, and its status says how many it needs.
    world.put(queue("r9", "standard-xlarge-queue"));
    world.settle(&mut incremental, 3);
    assert_eq!(world.whole().addresses["app.r9"].phase, Some(Phase::Pending));

    // Before the waiting one in admission's order (both new, by name): it takes the second broker,
    // and the waiting one now needs four. Placed after it, the waiting one would keep its status.
    world.put(queue("r5", "standard-small-queue"));
    let verdict = world.again(&mut incremental).clone();
    assert_eq!(verdict, world.whole());
    assert_eq!(verdict.addresses["app.r5"].phase, Some(Phase::Configuring));
    assert_ne!(
        verdict.addresses["app.r9"].messages,
        world.catalog.addresses[1].status.as_ref().unwrap().messages,
        "the waiting one needs more now"
    );
}

#[test]
fn a_change_an_address_others_name_reaches_is_evaluated_whole() {
    let mut world = World::roomy();
    world.catalog.addresses = queues(20);
    world.put(events_topic());
    let mut incremental = Incremental::new();
    world.settle(&mut incremental, 2);
    world.again(&mut incremental);
    world.put(events_subscription());
    let verdict = world.again(&mut incremental).clone();
    assert_eq!(
        incremental.evaluated(),
        1,
        "a new subscription of a served topic is alone"
    );
    assert_eq!(verdict, world.whole());

    // The topic it names changes type: the subscription must see it, so all is evaluated.
    world.put(resource(
        "app.events",
        "events",
        "queue",
        "standard-small-queue",
        None,
        None,
    ));
    let verdict = world.again(&mut incremental).clone();
    assert_eq!(incremental.evaluated(), world.catalog.addresses.len());
    assert_eq!(verdict, world.whole());
}

#[test]
fn a_subscription_relabelled_while_a_queue_is_added_keeps_the_whole_verdict() {
    let mut world = World::roomy();
    world.catalog.addresses = queues(20);
    world.put(events_topic());
    world.put(events_subscription());
    let mut incremental = Incremental::new();
    world.settle(&mut incremental, 3);
    world.again(&mut incremental);

    let sub = world.catalog.addresses.len() - 1;
    world.catalog.addresses[sub].metadata.labels = Some([("team".to_owned(), "orders".to_owned())].into());
    world.put(made_last("added"));
    let verdict = world.again(&mut incremental).clone();
    assert_eq!(verdict, world.whole());
    assert!(serves(&verdict, "added"));
}

#[test]
fn an_address_removed_frees_quota_for_one_that_waited() {
    let mut world = World::new();
    world.catalog.addresses = (0..3)
        .map(|i| {
            resource(
                &format!("app.q{i}"),
                &format!("q{i}"),
                "queue",
                "standard-large-queue",
                None,
                None,
            )
        })
        .collect();
    let mut incremental = Incremental::new();
    world.settle(&mut incremental, 2);
    let verdict = world.again(&mut incremental).clone();
    assert_eq!(
        verdict.addresses["app.q2"].phase,
        Some(Phase::Pending),
        "no room for a third"
    );

    world.catalog.addresses.remove(0);
    let verdict = world.again(&mut incremental).clone();
    assert_eq!(verdict, world.whole());
    assert_eq!(verdict.addresses["app.q2"].phase, Some(Phase::Configuring));
}

#[test]
fn an_address_moved_to_a_plan_that_does_not_fit_stays_on_its_plan() {
    let mut world = World::new();
    let large = |i: usize| {
        resource(
            &format!("app.q{i}"),
            &format!("q{i}"),
            "queue",
            "standard-large-queue",
            None,
            None,
        )
    };
    world.catalog.addresses = vec![large(0), queue_named("q1"), queue_named("q2")];
    let mut incremental = Incremental::new();
    world.settle(&mut incremental, 2);
    world.again(&mut incremental);

    world.put(large(1));
    let verdict = world.again(&mut incremental).clone();
    assert_eq!(verdict, world.whole());
    let q1 = &verdict.spaces["app"]
        .config
        .as_ref()
        .unwrap()
        .address("q1")
        .unwrap()
        .plan;
    assert_eq!(q1, "standard-small-queue", "held on the plan it was admitted on");

    // Room is made: the move it asked for is made.
    world.settle(&mut incremental, 2);
    world.catalog.addresses.remove(0);
    let verdict = world.again(&mut incremental).clone();
    assert_eq!(verdict, world.whole());
    let q1 = &verdict.spaces["app"]
        .config
        .as_ref()
        .unwrap()
        .address("q1")
        .unwrap()
        .plan;
    assert_eq!(q1, "standard-large-queue");
}

#[test]
fn two_resources_of_one_name_and_one_deleted_leave_nothing_of_it_served() {
    let mut world = World::roomy();
    world.catalog.addresses = vec![queue_named("x1"), queue_named("x2")];
    world.catalog.addresses[1].metadata.name = Some("app.x1".into());
    let mut incremental = Incremental::new();
    world.settle(&mut incremental, 3);
    world.catalog.addresses.remove(0);
    let verdict = world.again(&mut incremental).clone();
    assert_eq!(verdict, world.whole());
    assert!(
        verdict.spaces["app"]
            .config
            .as_ref()
            .unwrap()
            .address("x1")
            .is_none()
    );
}

#[test]
fn a_subscription_added_sees_its_topic_as_served_while_the_topic_is_held() {
    let mut world = World::roomy();
    world.put(events_topic());
    let mut incremental = Incremental::new();
    world.settle(&mut incremental, 2);
    world.again(&mut incremental);
    // The topic's spec now asks for a queue whose dead-letter address does not exist: it stays a
    // topic, as served.
    world.put(resource(
        "app.events",
        "events",
        "queue",
        "standard-small-queue",
        None,
        Some("missing"),
    ));
    world.settle(&mut incremental, 2);
    world.again(&mut incremental);
    let config = world.whole().spaces["app"].config.clone().unwrap();
    assert_eq!(config.address("events").unwrap().type_, AddressType::Topic);

    world.put(events_subscription());
    let verdict = world.again(&mut incremental).clone();
    assert_eq!(verdict, world.whole());
    assert!(serves(&verdict, "sub"));
}

#[test]
fn with_versions_trusted_an_api_servers_resource_version_tells_a_changed_address_from_an_unchanged_one() {
    let mut world = World::roomy();
    world.catalog.addresses = queues(20);
    for (n, address) in world.catalog.addresses.iter_mut().enumerate() {
        address.metadata.uid = Some(format!("uid-{n}"));
        address.metadata.resource_version = Some("1".into());
    }
    let mut incremental = Incremental::trusting_versions();
    world.settle(&mut incremental, 3);
    world.again(&mut incremental);
    assert_eq!(incremental.evaluated(), 0);

    // A new version is evaluated again, and found changed.
    let q3 = &mut world.catalog.addresses[3];
    q3.spec.plan = "standard-large-queue".into();
    q3.metadata.resource_version = Some("2".into());
    let verdict = world.again(&mut incremental).clone();
    assert_eq!(incremental.evaluated(), 1);
    assert_eq!(verdict, world.whole());

    // The same uid and version are the same object: what the API server gave is not compared
    // field by field.
    world.carry(&verdict);
    world.catalog.addresses[3].metadata.resource_version = Some("3".into());
    world.again(&mut incremental);
    world.catalog.addresses[5].metadata.labels = Some([("seen".to_owned(), "here".to_owned())].into());
    world.again(&mut incremental);
    assert_eq!(incremental.evaluated(), 0);
}

#[test]
fn a_manifest_from_a_file_is_compared_field_by_field_whatever_versions_it_carries() {
    let mut world = World::roomy();
    world.catalog.addresses = queues(20);
    for address in &mut world.catalog.addresses {
        address.metadata.uid = Some("exported".into());
        address.metadata.resource_version = Some("1".into());
    }
    let mut incremental = Incremental::new();
    world.settle(&mut incremental, 3);
    // Edited in the file: the version left in it says nothing of the edit.
    world.catalog.addresses[3].spec.plan = "standard-large-queue".into();
    let verdict = world.again(&mut incremental).clone();
    assert_eq!(incremental.evaluated(), 1);
    assert_eq!(verdict, world.whole());
}

#[test]
fn an_evaluator_told_to_forget_evaluates_whole_and_keeps_its_verdict_until_then() {
    let mut world = World::roomy();
    world.catalog.addresses = queues(20);
    let mut incremental = Incremental::new();
    world.settle(&mut incremental, 3);
    let settled = incremental.evaluation().clone();

    incremental.forget();
    assert_eq!(
        incremental.evaluation(),
        &settled,
        "the statuses to carry back are kept"
    );
    world.put(queue_named("added"));
    let verdict = world.again(&mut incremental).clone();
    assert_eq!(incremental.evaluated(), 21, "whole");
    assert_eq!(incremental.evaluated_again("app"), None);
    assert_eq!(verdict, world.whole());
}

mod told;
