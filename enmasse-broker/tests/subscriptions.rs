//! Durable and shared subscriptions on topics, opened as Qpid JMS, rhea and Proton open them: by
//! the client's container id and the link name, kept across a detach, removed by a close; shared
//! ones split their messages between their links.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod common;

use std::time::Duration;

use common::{address, config, start, within};
use enmasse_types::resources::address::AddressType;
use fe2o3_amqp::{
    Connection, Receiver, Sender, Session,
    connection::ConnectionHandle,
    session::SessionHandle,
    types::{
        messaging::{Source, TerminusDurability, TerminusExpiryPolicy},
        primitives::Symbol,
    },
};

/// A client connection with container id `container` and one session.
async fn client(broker: &common::Running, container: &str) -> (ConnectionHandle<()>, SessionHandle<()>) {
    let mut connection = Connection::open(container, broker.url().as_str()).await.unwrap();
    let session = Session::begin(&mut connection).await.unwrap();
    (connection, session)
}

/// A durable subscriber's source on `topic`, as Qpid JMS writes it (`capabilities` added).
fn durable_source(topic: &str, capabilities: &[&str]) -> Source {
    let mut source = Source::builder()
        .address(topic)
        .durable(TerminusDurability::UnsettledState)
        .expiry_policy(TerminusExpiryPolicy::Never);
    if !capabilities.is_empty() {
        let symbols: Vec<Symbol> = capabilities.iter().map(|c| Symbol::from(*c)).collect();
        source = source.capabilities(symbols);
    }
    source.build()
}

/// The subscriptions clients made.
fn subscriptions(broker: &common::Running) -> Vec<std::sync::Arc<enmasse_broker::address::table::Entry>> {
    broker
        .broker
        .table()
        .entries()
        .into_iter()
        .filter(|e| e.client.is_some())
        .collect()
}

async fn subscriber(session: &mut SessionHandle<()>, name: &str, source: Source) -> Receiver {
    Receiver::builder()
        .name(name)
        .source(source)
        .attach(session)
        .await
        .unwrap()
}

async fn publish(session: &mut SessionHandle<()>, bodies: &[&str]) {
    let mut sender = Sender::attach(session, "publisher", "news").await.unwrap();
    for body in bodies {
        within("publish", sender.send(body.to_string())).await.unwrap();
    }
    sender.close().await.unwrap();
}

async fn next(receiver: &mut Receiver) -> String {
    let delivery = within("a message", receiver.recv::<String>()).await.unwrap();
    receiver.accept(&delivery).await.unwrap();
    delivery.body().clone()
}

#[tokio::test]
async fn a_durable_subscription_keeps_what_was_published_while_its_subscriber_was_away() {
    let broker = start(config(vec![address("news", AddressType::Topic)])).await;
    let (_connection, mut session) = client(&broker, "client-1").await;
    let sub = subscriber(&mut session, "sub1", durable_source("news", &["topic"])).await;
    let source = sub.source().clone().unwrap();
    assert_eq!(
        source.durable,
        TerminusDurability::Configuration,
        "the broker keeps the subscription, not unsettled deliveries"
    );
    assert_eq!(source.expiry_policy, TerminusExpiryPolicy::Never);
    sub.detach().await.unwrap();

    publish(&mut session, &["while away 1", "while away 2"]).await;
    let entry = broker.broker.table().get("news").unwrap();
    assert_eq!(entry.depth(), 2, "counted in the topic's depth");

    let (_again, mut session) = client(&broker, "client-1").await;
    let mut sub = subscriber(&mut session, "sub1", durable_source("news", &["topic"])).await;
    assert_eq!(next(&mut sub).await, "while away 1");
    assert_eq!(next(&mut sub).await, "while away 2");

    // Another client's subscription of the same name is another subscription.
    let (_other, mut elsewhere) = client(&broker, "client-2").await;
    let mut theirs = subscriber(&mut elsewhere, "sub1", durable_source("news", &["topic"])).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(200), theirs.recv::<String>())
            .await
            .is_err(),
        "client-2's subscription starts empty"
    );

    // Closing the link ends the subscription, and what it held; client-2's stays.
    assert_eq!(subscriptions(&broker).len(), 2);
    sub.close().await.unwrap();
    assert_eq!(subscriptions(&broker).len(), 1);
}

#[tokio::test]
async fn a_durable_subscription_takes_one_link_at_a_time() {
    let broker = start(config(vec![address("news", AddressType::Topic)])).await;
    let (mut connection, mut session) = client(&broker, "client-1").await;
    let _sub = subscriber(&mut session, "sub1", durable_source("news", &[])).await;
    let mut second = Session::begin(&mut connection).await.unwrap();
    let refused = Receiver::builder()
        .name("sub1")
        .source(durable_source("news", &[]))
        .attach(&mut second)
        .await
        .unwrap_err();
    assert!(
        format!("{refused:?}").contains("already has its consumer"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_shared_subscription_splits_its_messages_between_its_links() {
    let broker = start(config(vec![address("news", AddressType::Topic)])).await;
    // Qpid JMS without a client id: global, the links numbered after the name.
    let (_a, mut first_session) = client(&broker, "ID:one").await;
    let (_b, mut second_session) = client(&broker, "ID:two").await;
    let capabilities = ["topic", "shared", "global"];
    let mut first = subscriber(
        &mut first_session,
        "orders|global",
        durable_source("news", &capabilities),
    )
    .await;
    let mut second = subscriber(
        &mut second_session,
        "orders|global2",
        durable_source("news", &capabilities),
    )
    .await;
    publish(&mut first_session, &["1", "2", "3", "4"]).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        tokio::select! {
            delivery = first.recv::<String>() => got.push(("first", delivery.unwrap().body().clone())),
            delivery = second.recv::<String>() => got.push(("second", delivery.unwrap().body().clone())),
        }
    }
    let mut bodies: Vec<&str> = got.iter().map(|(_, b)| b.as_str()).collect();
    bodies.sort_unstable();
    assert_eq!(bodies, ["1", "2", "3", "4"], "each message once: {got:?}");
    assert_eq!(
        broker.broker.table().get("news").unwrap().depth(),
        4,
        "taken, not yet settled"
    );
}

#[tokio::test]
async fn a_subscription_with_another_selector_replaces_the_idle_one() {
    let broker = start(config(vec![address("news", AddressType::Topic)])).await;
    let (_connection, mut session) = client(&broker, "client-1").await;
    let sub = subscriber(&mut session, "sub1", durable_source("news", &[])).await;
    sub.detach().await.unwrap();
    publish(&mut session, &["old"]).await;
    let sub = subscriber(&mut session, "sub1", durable_source("news/sport", &[])).await;
    sub.detach().await.unwrap();
    let kept = subscriptions(&broker);
    assert_eq!(kept.len(), 1, "replaced, not added");
    let entry = &kept[0];
    assert_eq!(entry.client.as_ref().unwrap().source, "news/sport");
    assert_eq!(
        entry.depth(),
        0,
        "a new subscription, without the old one's messages"
    );
}
