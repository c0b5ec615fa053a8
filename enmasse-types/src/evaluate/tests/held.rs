//! Addresses stay as they are served while an edit of their spec or of a plan cannot be served:
//! no edit removes the messages an address holds.

use super::*;
use crate::{broker_config::BrokerAddress, evaluate::APPLIED_CONDITION, resources::address::AddressType};

/// What the broker reports for `orders`: served as `type_`, holding `depth` messages.
fn reports(config_of: &Evaluation, type_: AddressType, depth: u64) -> Reports {
    let config = config_of.spaces["app"].config.clone().unwrap();
    let report = BrokerReport {
        revision: config.revision(),
        addresses: config
            .addresses
            .iter()
            .map(|a| AddressReport {
                type_: Some(if a.address == "orders" { type_ } else { a.type_ }),
                ..AddressReport::serving(a.address.clone(), if a.address == "orders" { depth } else { 0 })
            })
            .collect(),
        problems: vec![],
    };
    BTreeMap::from([("app".into(), report)])
}

/// The statuses of `evaluation` carried onto the catalog's addresses, as the API server would.
fn carry(c: &mut Catalog, evaluation: &Evaluation) {
    for a in &mut c.addresses {
        a.status = evaluation
            .addresses
            .get(a.metadata.name.as_deref().unwrap())
            .cloned();
    }
}

fn orders_in(evaluation: &Evaluation) -> &BrokerAddress {
    let config = evaluation.spaces["app"].config.as_ref().unwrap();
    config.address("orders").expect("orders is served")
}

fn applied_condition(evaluation: &Evaluation) -> (String, String) {
    let condition = evaluation.addresses["app.orders"]
        .conditions
        .iter()
        .find(|c| c.type_ == APPLIED_CONDITION)
        .unwrap();
    (condition.status.clone(), condition.message.clone())
}

/// A catalog with `orders` served on `standard-small-queue` and holding 5 messages; returns the
/// reports of that broker.
fn served_orders(extra: &[&str]) -> (Catalog, Reports) {
    let mut documents = vec![SPACE.to_owned(), queue("orders")];
    documents.extend(extra.iter().map(|s| (*s).to_owned()));
    let texts: Vec<&str> = documents.iter().map(String::as_str).collect();
    let mut c = catalog(&texts);
    let first = run(&c);
    let reports = reports(&first, AddressType::Queue, 5);
    let served = run_with(&c, &reports);
    carry(&mut c, &served);
    (c, reports)
}

fn set_orders_spec(c: &mut Catalog, edit: impl FnOnce(&mut crate::resources::address::AddressSpec)) {
    let orders = c
        .addresses
        .iter_mut()
        .find(|a| a.spec.address == "orders")
        .unwrap();
    edit(&mut orders.spec);
}

#[test]
fn an_address_moved_to_a_plan_that_does_not_exist_stays_on_its_applied_plan() {
    let (mut c, reports) = served_orders(&[]);
    set_orders_spec(&mut c, |s| s.plan = "no-such-plan".into());
    let evaluation = run_with(&c, &reports);
    assert_eq!(orders_in(&evaluation).plan, "standard-small-queue");
    let status = &evaluation.addresses["app.orders"];
    assert_eq!(status.phase, Some(Phase::Active));
    assert_eq!(status.plan_status.as_ref().unwrap().name, "standard-small-queue");
    assert_eq!(
        status.messages,
        [
            "address plan no-such-plan not found; it stays a queue on plan standard-small-queue, as it is served"
        ]
    );
    assert_eq!(applied_condition(&evaluation).0, "False");

    // Put back, the spec is applied again.
    carry(&mut c, &evaluation);
    set_orders_spec(&mut c, |s| s.plan = "standard-small-queue".into());
    let evaluation = run_with(&c, &reports);
    assert_eq!(applied_condition(&evaluation), ("True".into(), String::new()));
    assert!(evaluation.addresses["app.orders"].messages.is_empty());
}

#[test]
fn an_address_moved_to_a_plan_its_space_does_not_offer_stays_on_its_applied_plan() {
    let (mut c, reports) = served_orders(&[]);
    set_orders_spec(&mut c, |s| s.plan = "standard-large-queue".into());
    let evaluation = run_with(&c, &reports);
    assert_eq!(orders_in(&evaluation).plan, "standard-small-queue");
    let message = evaluation.addresses["app.orders"].messages.join("; ");
    assert!(
        message.starts_with(
            "address plan standard-large-queue is not offered by address space plan standard-small"
        ),
        "{message}"
    );
}

#[test]
fn an_address_whose_new_plan_is_over_quota_stays_on_its_applied_plan_and_keeps_its_place() {
    let (mut c, reports) = served_orders(&[&address("app.big", "big", "queue", "standard-medium-queue")]);
    // The medium plan now takes most of a broker: orders cannot move to it within one broker.
    for plan in &mut c.address_plans {
        if plan.metadata.name.as_deref() == Some("standard-medium-queue") {
            plan.spec.resources.broker = Some(0.95);
        }
    }
    set_orders_spec(&mut c, |s| s.plan = "standard-medium-queue".into());
    let evaluation = run_with(&c, &reports);
    assert_eq!(orders_in(&evaluation).plan, "standard-small-queue");
    let message = evaluation.addresses["app.orders"].messages.join("; ");
    assert!(
        message.starts_with("plan standard-medium-queue: Quota exceeded"),
        "{message}"
    );
    assert!(message.ends_with("it stays a queue on plan standard-small-queue, as it is served"));
    assert_eq!(
        evaluation.addresses["app.big"].phase,
        Some(Phase::Active),
        "the other address keeps its place"
    );
}

#[test]
fn an_address_whose_plan_is_deleted_keeps_serving_with_what_the_plan_gave_it() {
    let (mut c, reports) = served_orders(&[]);
    // The plan as it was when orders was served: a depth of 77.
    for plan in &mut c.address_plans {
        if plan.metadata.name.as_deref() == Some("standard-small-queue") {
            plan.spec.max_depth = Some(77);
        }
    }
    let served = run_with(&c, &reports);
    carry(&mut c, &served);
    c.address_plans
        .retain(|p| p.metadata.name.as_deref() != Some("standard-small-queue"));
    let evaluation = run_with(&c, &reports);
    let orders = orders_in(&evaluation);
    assert_eq!(orders.plan, "standard-small-queue");
    assert_eq!(orders.limits.max_depth, 77);
    assert_eq!(
        evaluation.addresses["app.orders"].plan_status, served.addresses["app.orders"].plan_status,
        "the same credits stay taken"
    );
    assert_eq!(
        applied_condition(&evaluation).1,
        "address plan standard-small-queue not found; it stays a queue on plan standard-small-queue, as it is served"
    );
}

#[test]
fn a_type_change_waits_until_the_address_holds_no_messages() {
    let (mut c, reports_with_five) = served_orders(&[]);
    set_orders_spec(&mut c, |s| {
        s.type_ = AddressType::Topic;
        s.plan = "standard-small-topic".into();
    });
    let evaluation = run_with(&c, &reports_with_five);
    assert_eq!(orders_in(&evaluation).type_, AddressType::Queue);
    assert_eq!(orders_in(&evaluation).plan, "standard-small-queue");
    assert_eq!(
        evaluation.addresses["app.orders"].messages,
        [
            "the change of type from queue to topic waits until the address's 5 message(s) are consumed; it stays a queue on plan standard-small-queue, as it is served"
        ]
    );

    // Drained, the change is applied.
    carry(&mut c, &evaluation);
    let drained = reports(&evaluation, AddressType::Queue, 0);
    let evaluation = run_with(&c, &drained);
    assert_eq!(orders_in(&evaluation).type_, AddressType::Topic);
    assert_eq!(orders_in(&evaluation).plan, "standard-small-topic");
}

#[test]
fn an_address_never_served_is_refused_as_before() {
    let mut c = catalog(&[SPACE, &queue("orders")]);
    set_orders_spec(&mut c, |s| s.plan = "no-such-plan".into());
    let evaluation = run(&c);
    assert_eq!(
        phase_and_message(&evaluation, "app.orders"),
        (Phase::Pending, "address plan no-such-plan not found".into())
    );
    assert!(
        evaluation.spaces["app"]
            .config
            .as_ref()
            .unwrap()
            .address("orders")
            .is_none()
    );
}

#[test]
fn a_served_address_whose_dead_letter_address_does_not_resolve_keeps_serving() {
    let (mut c, reports) = served_orders(&[]);
    set_orders_spec(&mut c, |s| s.deadletter = Some("no-such-dlq".into()));
    let evaluation = run_with(&c, &reports);
    assert_eq!(orders_in(&evaluation).plan, "standard-small-queue");
    let (status, message) = applied_condition(&evaluation);
    assert_eq!(status, "False");
    assert!(
        message.starts_with("spec.deadletter: deadletter address \"no-such-dlq\" not found"),
        "{message}"
    );
}

#[test]
fn a_served_address_given_an_impossible_ttl_keeps_the_ttl_in_force() {
    let (mut c, reports) = served_orders(&[]);
    set_orders_spec(&mut c, |s| {
        s.message_ttl = Some(crate::resources::address::MessageTtl {
            minimum: Some(10),
            maximum: Some(5),
        })
    });
    let evaluation = run_with(&c, &reports);
    assert!(orders_in(&evaluation).message_ttl.is_none(), "none was in force");
    assert!(
        applied_condition(&evaluation)
            .1
            .starts_with("spec.messageTtl.minimum 10 is above spec.messageTtl.maximum 5")
    );
}

#[test]
fn a_served_address_whose_plan_is_edited_into_nonsense_keeps_what_the_plan_gave_it() {
    let (mut c, reports) = served_orders(&[]);
    for plan in &mut c.address_plans {
        if plan.metadata.name.as_deref() == Some("standard-small-queue") {
            plan.spec.resources.broker = Some(-1.0);
        }
    }
    let evaluation = run_with(&c, &reports);
    assert_eq!(orders_in(&evaluation).plan, "standard-small-queue");
    assert_eq!(evaluation.addresses["app.orders"].phase, Some(Phase::Active));
}

#[test]
fn a_hold_outlives_a_space_that_cannot_be_served_for_a_while() {
    let (mut c, reports) = served_orders(&[]);
    set_orders_spec(&mut c, |s| s.plan = "no-such-plan".into());
    let held = run_with(&c, &reports);
    carry(&mut c, &held);
    // The authentication service goes away, and the space waits for it.
    let services = std::mem::take(&mut c.authentication_services);
    let waiting = run_with(&c, &reports);
    assert_eq!(waiting.addresses["app.orders"].phase, Some(Phase::Pending));
    carry(&mut c, &waiting);
    c.authentication_services = services;
    let back = run_with(&c, &reports);
    assert_eq!(
        orders_in(&back).plan,
        "standard-small-queue",
        "still held, still served"
    );
}

#[test]
fn a_served_address_wins_over_a_newer_resource_of_the_same_address() {
    let (mut c, reports) = served_orders(&[]);
    let mut doc = manifests::parse(&address(
        "app.a-orders",
        "orders",
        "queue",
        "standard-small-queue",
    ));
    let manifests::Manifest::Address(newer) = doc.remove(0).unwrap().manifest else {
        unreachable!()
    };
    c.addresses.insert(0, *newer);
    let evaluation = run_with(&c, &reports);
    assert_eq!(evaluation.addresses["app.orders"].phase, Some(Phase::Active));
    assert_eq!(evaluation.addresses["app.a-orders"].phase, Some(Phase::Failed));
}
