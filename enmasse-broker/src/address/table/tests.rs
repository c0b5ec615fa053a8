//! Resolving attaches and applying configs live.

use super::*;
use crate::testing::{address, config};

fn table() -> AddressTable {
    let table = AddressTable::new();
    table.apply(
        &config(vec![
            address("orders", AddressType::Queue, None),
            address("events", AddressType::Topic, None),
            address("audit", AddressType::Subscription, Some("events")),
            address("rpc", AddressType::Anycast, None),
        ]),
        |_| {},
    );
    table
}

#[test]
fn senders_reach_queues_topics_and_addresses_below_a_topic() {
    let table = table();
    assert_eq!(table.resolve_target("orders").unwrap().entry.address, "orders");
    let below = table.resolve_target("events/eu/created").unwrap();
    assert_eq!(below.entry.address, "events");
    assert_eq!(&*below.routing, "events/eu/created");
    assert_eq!(
        table.resolve_target("nowhere").unwrap_err(),
        ResolveError::NotFound("nowhere".into())
    );
    assert!(matches!(
        table.resolve_target("audit"),
        Err(ResolveError::NotAllowed(_))
    ));
}

#[test]
fn receivers_reach_subscriptions_by_either_name_and_topics_by_pattern() {
    let table = table();
    assert_eq!(
        table.resolve_source("events::audit").unwrap().entry.address,
        "audit"
    );
    assert_eq!(table.resolve_source("audit").unwrap().entry.address, "audit");
    assert!(
        table.resolve_source("orders::audit").is_err(),
        "audit is not a subscription of orders"
    );

    let wildcard = table.resolve_source("events/+/created").unwrap();
    assert_eq!(wildcard.entry.address, "events");
    let Some(Filter::Pattern(pattern)) = wildcard.filter else {
        panic!("a pattern filter")
    };
    assert!(pattern.matches("events/eu/created"));

    let Some(Filter::Pattern(whole)) = table.resolve_source("events").unwrap().filter else {
        panic!()
    };
    assert!(whole.matches("events") && whole.matches("events/eu/created"));
}

#[test]
fn a_subscription_collects_its_topics_messages_while_nobody_is_attached() {
    let table = table();
    let Engine::Fanout(topic) = &table.get("events").unwrap().engine else {
        panic!()
    };
    assert_eq!(topic.reserve(1), 1);
    topic
        .publish(&crate::message::testing::message("events/x", 1), || 0)
        .unwrap();
    assert_eq!(table.get("audit").unwrap().depth(), 1);
}

#[test]
fn applying_a_config_adds_updates_and_removes_only_what_changed() {
    let table = table();
    let orders = table.get("orders").unwrap();
    let mut bigger = address("orders", AddressType::Queue, None);
    bigger.limits.max_depth = 7;
    let applied = table.apply(
        &config(vec![
            bigger,
            address("events", AddressType::Topic, None),
            address("audit", AddressType::Subscription, Some("events")),
            address("new", AddressType::Multicast, None),
        ]),
        |_| {},
    );
    assert_eq!(applied.added, ["new"]);
    assert_eq!(applied.updated, ["orders"]);
    assert_eq!(applied.removed, [("rpc".to_owned(), 0)]);
    let same = table.get("orders").unwrap();
    assert!(
        Arc::ptr_eq(&orders, &same),
        "an update keeps the entry and its links"
    );
    assert_eq!(same.config().limits.max_depth, 7);
    assert!(!orders.removed.is_cancelled());
}

#[test]
fn a_removed_address_tells_its_links_and_reports_what_it_held() {
    let table = table();
    let orders = table.get("orders").unwrap();
    let Engine::Queue(queue) = &orders.engine else {
        panic!()
    };
    queue.reserve(1);
    queue.push(crate::message::testing::message("orders", 1)).unwrap();
    let applied = table.apply(&config(vec![]), |_| {});
    assert!(applied.removed.contains(&("orders".to_owned(), 1)));
    assert!(orders.removed.is_cancelled());
    assert!(queue.is_closed());
}

#[test]
fn changing_the_type_of_an_address_that_holds_messages_waits_until_it_is_empty() {
    let table = table();
    let old = table.get("orders").unwrap();
    let Engine::Queue(queue) = &old.engine else {
        panic!()
    };
    queue.reserve(1);
    queue.push(crate::message::testing::message("orders", 1)).unwrap();
    let topic = config(vec![address("orders", AddressType::Topic, None)]);
    let mut dropped = Vec::new();
    let applied = table.apply(&topic, |address| dropped.push(address.to_owned()));
    assert!(!old.removed.is_cancelled(), "the queue and its message stay");
    assert_eq!(table.get("orders").unwrap().type_, AddressType::Queue);
    assert_eq!(applied.waiting, [("orders".to_owned(), 1)]);
    assert!(applied.recreated.is_empty());
    assert!(!dropped.contains(&"orders".to_owned()));

    // Once the message is taken, the same config recreates it.
    assert_eq!(queue.drain().len(), 1);
    let applied = table.apply(&topic, |address| dropped.push(address.to_owned()));
    assert!(old.removed.is_cancelled());
    assert_eq!(table.get("orders").unwrap().type_, AddressType::Topic);
    assert_eq!(applied.recreated, [("orders".to_owned(), 0)]);
    assert_eq!(applied.added, ["orders"]);
    assert!(dropped.contains(&"orders".to_owned()));
}
