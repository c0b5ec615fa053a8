//! The space's connection policy, enforced: connections in all, per user and per host, and
//! sessions, senders and receivers per connection, each refused with an error naming its limit.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod common;

use common::{address, config, start};
use enmasse_types::{
    broker_config::BrokerConfig,
    resources::{
        address::AddressType,
        infra_config::{AddressFullPolicy, RouterPolicy},
    },
};
use std::time::Duration;

use fe2o3_amqp::{Connection, Receiver, Sender, Session};

fn limited(policy: RouterPolicy) -> BrokerConfig {
    let mut config = config(vec![address("orders", AddressType::Queue)]);
    config.space.connection_policy = Some(policy);
    config
}

#[tokio::test]
async fn connections_beyond_the_per_host_limit_are_refused_naming_it() {
    let broker = start(limited(RouterPolicy {
        max_connections_per_host: Some(2),
        ..RouterPolicy::default()
    }))
    .await;
    let _first = broker.client().await;
    let _second = broker.client().await;
    let refused = async {
        let mut connection = Connection::open("third", broker.url().as_str()).await?;
        Session::begin(&mut connection)
            .await
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))?;
        Ok::<(), Box<dyn std::error::Error>>(())
    }
    .await;
    let text = format!("{refused:?}");
    assert!(refused.is_err(), "a third connection from the host is refused");
    assert!(text.contains("at most"), "{text}");
    drop(_first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _again = broker.client().await;
}

#[tokio::test]
async fn sessions_senders_and_receivers_per_connection_are_bounded() {
    let broker = start(limited(RouterPolicy {
        max_sessions_per_connection: Some(2),
        max_senders_per_connection: Some(1),
        max_receivers_per_connection: Some(1),
        ..RouterPolicy::default()
    }))
    .await;
    let mut connection = Connection::open("limited", broker.url().as_str()).await.unwrap();
    let mut first = Session::begin(&mut connection).await.unwrap();
    let _sender = Sender::attach(&mut first, "s1", "orders").await.unwrap();
    let _receiver = Receiver::attach(&mut first, "r1", "orders").await.unwrap();
    let mut second = Session::begin(&mut connection).await.unwrap();
    let refused = Sender::attach(&mut second, "s2", "orders").await.unwrap_err();
    assert!(
        format!("{refused:?}").contains("1 senders at most"),
        "{refused:?}"
    );
    let mut third_try = Session::begin(&mut connection).await.unwrap();
    let refused = Receiver::attach(&mut third_try, "r2", "orders")
        .await
        .unwrap_err();
    assert!(
        format!("{refused:?}").contains("2 sessions at most"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_queues_together_hold_no_more_than_the_global_max_size() {
    let mut config = config(vec![
        address("a", AddressType::Queue),
        address("b", AddressType::Queue),
    ]);
    config.space.global_max_size = Some(2_000);
    let settings = enmasse_broker::broker::Settings {
        credit_window: 4,
        ..enmasse_broker::broker::Settings::default()
    };
    let broker = common::start_with(settings, config).await;
    let (_connection, mut session) = broker.client().await;
    let body = "x".repeat(200);
    // Fill the budget through a: sends stop finding credit once it is used.
    let mut to_a = Sender::attach(&mut session, "to-a", "a").await.unwrap();
    let mut sent = 0;
    while sent < 100 {
        let send = tokio::time::timeout(Duration::from_millis(300), to_a.send(body.clone())).await;
        if send.is_err() {
            break;
        }
        sent += 1;
    }
    assert!(sent < 100, "the budget stopped a");
    let used = broker.broker.table().budget().used();
    assert!(
        (2_000..3_500).contains(&used),
        "full, past it by the credit at most: {used}"
    );

    // b, under its own bounds, gets no credit while the budget is full...
    let (_other, mut other_session) = broker.client().await;
    let mut to_b = Sender::attach(&mut other_session, "to-b", "b").await.unwrap();
    let sending = tokio::spawn(async move { to_b.send("for b").await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!sending.is_finished(), "b waits for room in the budget");

    // ...and gets it once a's messages are consumed.
    let (_reader, mut reader_session) = broker.client().await;
    let mut from_a = Receiver::attach(&mut reader_session, "from-a", "a")
        .await
        .unwrap();
    for _ in 0..sent {
        let delivery = common::within("a message of a", from_a.recv::<String>())
            .await
            .unwrap();
        from_a.accept(&delivery).await.unwrap();
    }
    common::within("b's send", sending).await.unwrap().unwrap();
}

fn full_policy(policy: AddressFullPolicy, max_depth: u64) -> BrokerConfig {
    let mut orders = address("orders", AddressType::Queue);
    orders.limits.max_depth = max_depth;
    let mut config = config(vec![orders]);
    config.space.address_full_policy = Some(policy);
    config
}

#[tokio::test]
async fn under_fail_a_message_sent_to_a_full_queue_is_rejected_naming_the_bound() {
    let broker = start(full_policy(AddressFullPolicy::Fail, 2)).await;
    let (_connection, mut session) = broker.client().await;
    let mut sender = Sender::attach(&mut session, "s", "orders").await.unwrap();
    for body in ["one", "two"] {
        let outcome = common::within("accepted", sender.send(body)).await.unwrap();
        assert!(outcome.is_accepted(), "{outcome:?}");
    }
    let outcome = common::within("refused", sender.send("three")).await;
    let text = format!("{outcome:?}");
    assert!(
        text.contains("resource-limit-exceeded") || text.contains("ResourceLimitExceeded"),
        "{text}"
    );
    assert!(text.contains("maximum of 2 messages"), "{text}");
    assert_eq!(broker.broker.table().get("orders").unwrap().depth(), 2);
}

#[tokio::test]
async fn under_drop_a_full_queue_keeps_the_newest_and_counts_what_it_dropped() {
    let broker = start(full_policy(AddressFullPolicy::Drop, 3)).await;
    let (_connection, mut session) = broker.client().await;
    let mut sender = Sender::attach(&mut session, "s", "orders").await.unwrap();
    for i in 0..5 {
        let outcome = common::within("accepted", sender.send(format!("m{i}")))
            .await
            .unwrap();
        assert!(outcome.is_accepted(), "{outcome:?}");
    }
    let mut receiver = Receiver::attach(&mut session, "r", "orders").await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let delivery = common::within("receive", receiver.recv::<String>())
            .await
            .unwrap();
        receiver.accept(&delivery).await.unwrap();
        got.push(delivery.body().clone());
    }
    assert_eq!(got, ["m2", "m3", "m4"]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = enmasse_broker::management::report(&broker.broker);
    assert_eq!(report.address("orders").unwrap().messages_dropped, 2);
}
