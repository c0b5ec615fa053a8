//! Topics, subscriptions, multicast and anycast over real sockets, and live reconfiguration.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod common;

use std::time::Duration;

use common::{address, config, start, within};
use enmasse_types::{broker_config::BrokerAddress, resources::address::AddressType};
use fe2o3_amqp::{Receiver, Sender, types::messaging::Outcome};

fn subscription(name: &str, topic: &str) -> BrokerAddress {
    let mut sub = address(name, AddressType::Subscription);
    sub.topic = Some(topic.to_owned());
    sub
}

async fn no_message(receiver: &mut Receiver) -> bool {
    tokio::time::timeout(Duration::from_millis(200), receiver.recv::<String>())
        .await
        .is_err()
}

#[tokio::test]
async fn every_topic_receiver_gets_every_message_sent_after_it_attached() {
    let broker = start(config(vec![address("events", AddressType::Topic)])).await;
    let (_connection, mut session) = broker.client().await;
    let mut sender = Sender::attach(&mut session, "s", "events").await.unwrap();
    within("send before anyone listens", sender.send("lost"))
        .await
        .unwrap();
    let mut a = Receiver::attach(&mut session, "a", "events").await.unwrap();
    let mut b = Receiver::attach(&mut session, "b", "events").await.unwrap();
    within("send", sender.send("news")).await.unwrap();
    for receiver in [&mut a, &mut b] {
        let d = within("receive", receiver.recv::<String>()).await.unwrap();
        assert_eq!(d.body(), "news");
        receiver.accept(&d).await.unwrap();
        assert!(no_message(receiver).await, "nothing from before the attach");
    }
}

#[tokio::test]
async fn topic_receivers_filter_with_plus_and_hash_wildcards() {
    let broker = start(config(vec![address("sensors", AddressType::Topic)])).await;
    let (_connection, mut session) = broker.client().await;
    let mut temps = Receiver::attach(&mut session, "t", "sensors/+/temp")
        .await
        .unwrap();
    let mut all = Receiver::attach(&mut session, "a", "sensors/#").await.unwrap();
    let mut s1 = Sender::attach(&mut session, "s1", "sensors/room1/temp")
        .await
        .unwrap();
    let mut s2 = Sender::attach(&mut session, "s2", "sensors/room1/humidity")
        .await
        .unwrap();
    within("send", s1.send("21C")).await.unwrap();
    within("send", s2.send("40%")).await.unwrap();
    let d = within("receive", temps.recv::<String>()).await.unwrap();
    assert_eq!(d.body(), "21C");
    temps.accept(&d).await.unwrap();
    assert!(no_message(&mut temps).await);
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let d = within("receive", all.recv::<String>()).await.unwrap();
        all.accept(&d).await.unwrap();
        bodies.push(d.body().clone());
    }
    bodies.sort();
    assert_eq!(bodies, ["21C", "40%"]);
}

#[tokio::test]
async fn a_subscription_keeps_collecting_while_nobody_is_attached() {
    let broker = start(config(vec![
        address("events", AddressType::Topic),
        subscription("audit", "events"),
    ]))
    .await;
    let (_connection, mut session) = broker.client().await;
    let mut sender = Sender::attach(&mut session, "s", "events").await.unwrap();
    within("send", sender.send("one")).await.unwrap();
    within("send", sender.send("two")).await.unwrap();

    let mut by_topic = Receiver::attach(&mut session, "r1", "events::audit")
        .await
        .unwrap();
    let d = within("receive", by_topic.recv::<String>()).await.unwrap();
    assert_eq!(d.body(), "one");
    by_topic.accept(&d).await.unwrap();
    by_topic.close().await.unwrap();

    let mut by_name = Receiver::attach(&mut session, "r2", "audit").await.unwrap();
    let d = within("receive", by_name.recv::<String>()).await.unwrap();
    assert_eq!(d.body(), "two");
    by_name.accept(&d).await.unwrap();
}

#[tokio::test]
async fn multicast_reaches_every_receiver() {
    let broker = start(config(vec![address("broadcast", AddressType::Multicast)])).await;
    let (_connection, mut session) = broker.client().await;
    let mut a = Receiver::attach(&mut session, "a", "broadcast").await.unwrap();
    let mut b = Receiver::attach(&mut session, "b", "broadcast").await.unwrap();
    let mut sender = Sender::attach(&mut session, "s", "broadcast").await.unwrap();
    within("send", sender.send("hi all")).await.unwrap();
    for receiver in [&mut a, &mut b] {
        let d = within("receive", receiver.recv::<String>()).await.unwrap();
        assert_eq!(d.body(), "hi all");
    }
    // Pre-settled: nothing waits for the receivers to settle.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(broker.broker.table().get("broadcast").unwrap().depth(), 0);
}

#[tokio::test]
async fn anycast_gives_no_credit_without_a_receiver_and_settles_end_to_end() {
    let broker = start(config(vec![address("rpc", AddressType::Anycast)])).await;
    let (_connection, mut session) = broker.client().await;
    let mut sender = Sender::attach(&mut session, "s", "rpc").await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(300), sender.send("request")).await;
    assert!(
        waited.is_err(),
        "no receiver: the sender waits, it is not refused"
    );
    assert_eq!(
        broker.broker.table().get("rpc").unwrap().depth(),
        0,
        "nothing is stored"
    );

    let (_c2, mut session2) = broker.client().await;
    let mut receiver = Receiver::attach(&mut session2, "r", "rpc").await.unwrap();
    let sending = tokio::spawn(async move { sender.send("request").await });
    let d = within("receive", receiver.recv::<String>()).await.unwrap();
    assert_eq!(d.body(), "request");
    receiver.reject(&d, None).await.unwrap();
    let outcome = within("outcome", sending).await.unwrap().unwrap();
    assert!(
        matches!(outcome, Outcome::Rejected(_)),
        "the receiver's outcome reaches the sender: {outcome:?}"
    );
}

#[tokio::test]
async fn removing_an_address_detaches_its_links_and_leaves_the_others_alone() {
    let broker = start(config(vec![
        address("old", AddressType::Queue),
        address("kept", AddressType::Queue),
    ]))
    .await;
    let (_connection, mut session) = broker.client().await;
    let mut old = Receiver::attach(&mut session, "old", "old").await.unwrap();
    let mut kept = Sender::attach(&mut session, "kept", "kept").await.unwrap();

    broker.apply(config(vec![
        address("kept", AddressType::Queue),
        address("new", AddressType::Queue),
    ]));

    let err = within("detach", old.recv::<String>()).await.unwrap_err();
    let text = format!("{err:?}");
    assert!(
        text.contains("NotFound") && text.contains("was removed"),
        "{text}"
    );
    within("the unrelated link still works", kept.send("still here"))
        .await
        .unwrap();
    let mut new = Sender::attach(&mut session, "new", "new").await.unwrap();
    within("the new address works", new.send("hello")).await.unwrap();
}
