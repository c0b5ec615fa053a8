//! Admission with EnMasse's example plans, and properties of the quota.

use proptest::prelude::*;

use super::*;

fn limits(router: f64, broker: f64, aggregate: f64) -> Limits {
    Limits {
        router: Some(Credits::from_plan(router).unwrap()),
        broker: Some(Credits::from_plan(broker).unwrap()),
        aggregate: Some(Credits::from_plan(aggregate).unwrap()),
    }
}

fn request(address: &str, type_: AddressType, router: f64, broker: f64) -> Request {
    Request {
        address: address.to_owned(),
        type_,
        topic: None,
        plan: format!("{type_}-plan"),
        router: Credits::from_plan(router).unwrap(),
        broker: Credits::from_plan(broker).unwrap(),
        partitions: None,
        previously_admitted: false,
    }
}

fn admitted(outcome: &Outcome) -> usize {
    outcome
        .verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Admitted(_)))
        .count()
}

#[test]
fn small_queues_share_one_broker_until_it_is_full() {
    // standard-small: router 1, broker 1, aggregate 2; standard-medium-queue takes 0.1 broker.
    let requests: Vec<Request> = (0..11)
        .map(|i| request(&format!("q{i}"), AddressType::Queue, 0.01, 0.1))
        .collect();
    let outcome = admit(&limits(1.0, 1.0, 2.0), &requests);
    assert_eq!(admitted(&outcome), 10);
    assert_eq!(outcome.needed, Needed { router: 1, broker: 1 });
    assert_eq!(
        outcome.verdicts[10],
        Verdict::QuotaExceeded {
            resource: Resource::Broker,
            needed: 2,
            limit: Credits::ONE
        }
    );
    assert!(outcome.verdicts[10].to_string().starts_with("Quota exceeded"));
}

#[test]
fn a_fourth_three_tenths_queue_needs_a_second_broker() {
    let requests: Vec<Request> = (0..4)
        .map(|i| request(&format!("q{i}"), AddressType::Queue, 0.0, 0.3))
        .collect();
    let outcome = admit(&Limits::default(), &requests);
    assert_eq!(outcome.needed.broker, 2);
    assert_eq!(admitted(&outcome), 4);
}

#[test]
fn a_two_credit_queue_is_spread_over_two_brokers() {
    // standard-xlarge-queue: router 0.2, broker 2.0.
    let outcome = admit(
        &Limits::default(),
        &[request("big", AddressType::Queue, 0.2, 2.0)],
    );
    let Verdict::Admitted(plan) = &outcome.verdicts[0] else {
        panic!("{:?}", outcome.verdicts)
    };
    assert_eq!(plan.partitions, Some(2));
    assert_eq!(outcome.needed, Needed { router: 1, broker: 2 });
}

#[test]
fn a_topic_of_one_broker_credit_or_more_gets_brokers_of_its_own() {
    let mut small = request("small", AddressType::Queue, 0.0, 0.1);
    small.plan = "q".into();
    let outcome = admit(
        &Limits::default(),
        &[small, request("big-topic", AddressType::Topic, 0.0, 1.5)],
    );
    assert_eq!(
        outcome.needed.broker, 3,
        "one pooled broker, two for the sharded topic"
    );
}

#[test]
fn anycast_and_multicast_take_router_credit_only() {
    let requests: Vec<Request> = (0..1000)
        .map(|i| request(&format!("a{i}"), AddressType::Anycast, 0.001, 0.0))
        .chain([request("m", AddressType::Multicast, 0.001, 0.0)])
        .collect();
    let outcome = admit(&limits(1.0, 1.0, 2.0), &requests);
    assert_eq!(outcome.needed, Needed { router: 1, broker: 0 });
    assert_eq!(
        admitted(&outcome),
        1000,
        "the 1001st address needs a second router"
    );
    assert!(matches!(
        outcome.verdicts[1000],
        Verdict::QuotaExceeded {
            resource: Resource::Router,
            ..
        }
    ));
}

#[test]
fn the_aggregate_limit_counts_routers_and_brokers_together() {
    let requests = [
        request("q", AddressType::Queue, 0.5, 0.5),
        request("r", AddressType::Queue, 0.6, 0.6),
    ];
    let outcome = admit(&limits(2.0, 2.0, 3.0), &requests);
    assert_eq!(admitted(&outcome), 1);
    assert!(matches!(
        outcome.verdicts[1],
        Verdict::QuotaExceeded {
            resource: Resource::Aggregate,
            needed: 4,
            ..
        }
    ));
}

#[test]
fn subscriptions_wait_for_their_topic_and_share_its_broker() {
    let mut sub = request("sub", AddressType::Subscription, 0.0, 0.6);
    sub.topic = Some("events".into());
    let mut second = sub.clone();
    second.address = "sub2".into();

    let alone = admit(&Limits::default(), std::slice::from_ref(&sub));
    assert_eq!(
        alone.verdicts[0],
        Verdict::TopicNotAdmitted {
            topic: "events".into()
        }
    );

    // The subscriptions come first in the list but are admitted after their topic.
    let outcome = admit(
        &Limits::default(),
        &[sub, second, request("events", AddressType::Topic, 0.0, 0.1)],
    );
    assert!(matches!(outcome.verdicts[0], Verdict::Admitted(_)));
    assert_eq!(
        outcome.verdicts[1],
        Verdict::SubscriptionsFull {
            topic: "events".into()
        }
    );
    assert_eq!(
        outcome.needed.broker, 1,
        "subscriptions do not count towards the broker limit"
    );
}

#[test]
fn subscriptions_admitted_before_keep_their_place_when_their_topic_changes_plan() {
    let mut sub = request("sub", AddressType::Subscription, 0.0, 0.6);
    sub.topic = Some("events".into());
    sub.previously_admitted = true;
    let mut second = sub.clone();
    second.address = "sub2".into();
    // The topic on a new plan: not admitted on it before, and its broker now holds less.
    let topic = request("events", AddressType::Topic, 0.0, 0.1);
    let outcome = admit(&Limits::default(), &[sub, second, topic]);
    assert!(
        outcome.verdicts.iter().all(|v| matches!(v, Verdict::Admitted(_))),
        "{:?}",
        outcome.verdicts
    );
}

#[test]
fn previously_admitted_addresses_keep_their_place_before_newer_ones() {
    let newer = request("newer", AddressType::Queue, 0.0, 0.6);
    let mut older = request("older", AddressType::Queue, 0.0, 0.6);
    older.previously_admitted = true;
    let outcome = admit(&limits(10.0, 1.0, 10.0), &[newer, older]);
    assert!(matches!(outcome.verdicts[0], Verdict::QuotaExceeded { .. }));
    assert!(matches!(outcome.verdicts[1], Verdict::Admitted(_)));
    assert_eq!(outcome.exceeded, None);
}

#[test]
fn addresses_admitted_under_a_larger_plan_stay_and_the_excess_is_reported() {
    let mut requests: Vec<Request> = (0..3)
        .map(|i| request(&format!("q{i}"), AddressType::Queue, 0.0, 1.0))
        .collect();
    for r in &mut requests {
        r.previously_admitted = true;
    }
    requests.push(request("new", AddressType::Queue, 0.0, 0.01));
    let outcome = admit(&limits(10.0, 2.0, 10.0), &requests);
    assert_eq!(admitted(&outcome), 3);
    assert_eq!(outcome.exceeded, Some((Resource::Broker, 3, Credits::units(2))));
    assert!(matches!(outcome.verdicts[3], Verdict::QuotaExceeded { .. }));
}

fn any_request() -> impl Strategy<Value = Request> {
    let types = prop_oneof![
        Just(AddressType::Anycast),
        Just(AddressType::Multicast),
        Just(AddressType::Queue),
        Just(AddressType::Topic),
        Just(AddressType::Subscription),
    ];
    (
        types,
        0u32..300,
        0u32..2500,
        proptest::option::of(1u32..4),
        0usize..4,
    )
        .prop_map(|(type_, router, broker, partitions, topic)| Request {
            address: String::new(),
            type_,
            topic: Some(format!("t{topic}")),
            plan: "p".into(),
            router: Credits::from_plan(f64::from(router) / 1000.0).unwrap(),
            broker: Credits::from_plan(f64::from(broker) / 1000.0).unwrap(),
            partitions,
            previously_admitted: false,
        })
}

proptest! {
    #[test]
    fn admission_never_admits_more_than_a_limit(
        mut requests in prop::collection::vec(any_request(), 0..40),
        router in 0u32..6, broker in 0u32..6, aggregate in 0u32..10,
    ) {
        for (i, r) in requests.iter_mut().enumerate() {
            if r.type_ != AddressType::Subscription {
                r.address = format!("t{}", i % 5);
            } else {
                r.address = format!("s{i}");
            }
        }
        let limits = limits(f64::from(router), f64::from(broker), f64::from(aggregate));
        let outcome = admit(&limits, &requests);
        prop_assert!(outcome.needed.router <= u64::from(router));
        prop_assert!(outcome.needed.broker <= u64::from(broker));
        prop_assert!(outcome.needed.router + outcome.needed.broker <= u64::from(aggregate));
        prop_assert_eq!(outcome.verdicts.len(), requests.len());
    }

    #[test]
    fn admitting_more_addresses_never_refuses_one_admitted_before(
        requests in prop::collection::vec(any_request(), 1..30), cut in 0usize..30,
    ) {
        let limits = limits(2.0, 2.0, 3.0);
        let cut = cut.min(requests.len());
        let before = admit(&limits, &requests[..cut]);
        let after = admit(&limits, &requests);
        for (i, verdict) in before.verdicts.iter().enumerate() {
            // Subscriptions may be admitted later than their topic; everything else keeps its verdict.
            if requests[i].type_ != AddressType::Subscription && matches!(verdict, Verdict::Admitted(_)) {
                prop_assert!(matches!(after.verdicts[i], Verdict::Admitted(_)), "{i}: {:?}", after.verdicts[i]);
            }
        }
    }
}
