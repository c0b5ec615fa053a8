//! The broker on its journal, restarted in process: durable messages come back in their queues
//! and in every subscription of their topic, recovered messages wait for a config that serves
//! their address, and an address that is removed or changes type takes its messages with it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod common;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use common::{address, config, serve, within};
use enmasse_auth::authenticator::AcceptAll;
use enmasse_broker::{
    broker::{Broker, Settings},
    journal::{Journal, JournalOptions},
    recovery,
};
use enmasse_types::{
    broker_config::{BrokerAddress, BrokerConfig},
    resources::{
        address::{AddressType, MessageRedelivery},
        infra_config::AddressFullPolicy,
    },
};
use fe2o3_amqp::{
    Connection, Receiver, Sender, Session,
    link::receiver::CreditMode,
    types::messaging::{AmqpValue, Header, Message, Modified, Outcome},
};
use tokio_util::sync::CancellationToken;

/// A broker serving from a journal in `dir`.
struct Durable {
    broker: Arc<Broker>,
    journal: Arc<Journal>,
    addr: SocketAddr,
    shutdown: CancellationToken,
}

impl Durable {
    async fn start(dir: &Path, config: BrokerConfig) -> Self {
        let (journal, recovery) = Journal::open(dir, JournalOptions::default()).unwrap();
        let broker = Broker::with_store(Settings::default(), Arc::new(AcceptAll), journal.clone());
        recovery::restore(&broker, recovery);
        broker.apply(config, Arc::new(AcceptAll));
        let running = serve(broker).await;
        Self {
            broker: running.broker,
            journal,
            addr: running.addr,
            shutdown: running.shutdown,
        }
    }

    /// Stops serving and closes the journal once everything sent to it is written.
    async fn stop(self) {
        self.shutdown.cancel();
        self.journal.sync().await;
        self.journal.close();
    }

    /// Sends each body to `address` and checks it is accepted.
    async fn send(&self, address: &str, bodies: &[(&str, bool)]) {
        let mut connection = Connection::open("sender", format!("amqp://{}", self.addr).as_str())
            .await
            .unwrap();
        let mut session = Session::begin(&mut connection).await.unwrap();
        let mut sender = Sender::attach(&mut session, "s", address).await.unwrap();
        for (body, durable) in bodies {
            let message = Message::builder()
                .header(Header::builder().durable(*durable).build())
                .value(body.to_string())
                .build();
            let outcome = within("accepted", sender.send(message)).await.unwrap();
            assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");
        }
        sender.close().await.unwrap();
        connection.close().await.unwrap();
    }

    /// Receives `count` bodies from `address`, accepting them.
    async fn take(&self, address: &str, count: usize) -> Vec<String> {
        let mut connection = Connection::open("receiver", format!("amqp://{}", self.addr).as_str())
            .await
            .unwrap();
        let mut session = Session::begin(&mut connection).await.unwrap();
        let mut receiver = Receiver::attach(&mut session, "r", address).await.unwrap();
        let mut bodies = Vec::new();
        for _ in 0..count {
            let delivery = within("receive", receiver.recv::<AmqpValue<String>>())
                .await
                .unwrap();
            receiver.accept(&delivery).await.unwrap();
            bodies.push(delivery.body().0.clone());
        }
        receiver.close().await.unwrap();
        connection.close().await.unwrap();
        bodies
    }

    fn depth(&self, address: &str) -> u64 {
        self.broker.table().get(address).map_or(0, |entry| entry.depth())
    }

    fn waiting(&self) -> BTreeMap<String, u64> {
        self.broker.recovered().waiting()
    }
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("enmasse-journal-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn subscription(name: &str, topic: &str) -> BrokerAddress {
    let mut sub = address(name, AddressType::Subscription);
    sub.topic = Some(topic.to_owned());
    sub
}

fn topic_with_subscriptions() -> BrokerConfig {
    config(vec![
        address("events", AddressType::Topic),
        subscription("audit", "events"),
        subscription("billing", "events"),
    ])
}

#[tokio::test]
async fn durable_topic_messages_come_back_in_every_subscription_after_a_restart() {
    let dir = fresh_dir("topic");
    let broker = Durable::start(&dir, topic_with_subscriptions()).await;
    broker
        .send(
            "events",
            &[("one", true), ("fleeting", false), ("two", true), ("three", true)],
        )
        .await;
    assert_eq!(broker.take("audit", 2).await, ["one", "fleeting"]);
    broker.stop().await;

    let broker = Durable::start(&dir, topic_with_subscriptions()).await;
    assert_eq!(
        broker.take("audit", 2).await,
        ["two", "three"],
        "what audit had not taken, in order"
    );
    assert_eq!(
        broker.take("billing", 3).await,
        ["one", "two", "three"],
        "billing kept its own copies; the message that was not durable is gone"
    );
    assert_eq!(broker.depth("audit") + broker.depth("billing"), 0);
    broker.stop().await;

    let broker = Durable::start(&dir, topic_with_subscriptions()).await;
    assert_eq!(
        broker.depth("audit") + broker.depth("billing"),
        0,
        "taken for good"
    );
    broker.stop().await;
}

#[tokio::test]
async fn recovered_messages_wait_for_a_config_that_serves_their_queue() {
    let dir = fresh_dir("waiting");
    let orders = config(vec![address("orders", AddressType::Queue)]);
    let broker = Durable::start(&dir, orders.clone()).await;
    broker.send("orders", &[("a", true), ("b", true)]).await;
    broker.stop().await;

    // Restarted with a config that lacks the queue (an operator that has not pushed yet, or a
    // manifest missing from the directory): the messages wait, and are counted.
    let broker = Durable::start(&dir, config(vec![])).await;
    assert_eq!(broker.waiting(), BTreeMap::from([("orders".to_owned(), 2)]));
    broker.broker.apply(orders.clone(), Arc::new(AcceptAll));
    assert!(broker.waiting().is_empty());
    assert_eq!(broker.take("orders", 2).await, ["a", "b"]);
    broker.stop().await;

    // They were kept in the journal while they waited, and are gone once taken.
    let broker = Durable::start(&dir, orders).await;
    assert_eq!(broker.depth("orders"), 0);
    broker.stop().await;
}

#[tokio::test]
async fn an_address_removed_takes_its_messages_along_and_a_type_change_waits_for_them() {
    let dir = fresh_dir("removed");
    let both = config(vec![
        address("orders", AddressType::Queue),
        address("returns", AddressType::Queue),
    ]);
    let broker = Durable::start(&dir, both.clone()).await;
    broker.send("orders", &[("o", true)]).await;
    broker.send("returns", &[("r", true)]).await;
    let topic = config(vec![address("orders", AddressType::Topic)]);
    let applied = broker.broker.apply(topic.clone(), Arc::new(AcceptAll));
    assert_eq!(applied.waiting, [("orders".to_owned(), 1)]);
    let in_force = broker.broker.config().unwrap();
    assert_eq!(in_force.address("orders").unwrap().type_, AddressType::Queue);
    assert_ne!(
        in_force.revision(),
        topic.revision(),
        "the revision in force is not the one asked for, so it is asked for again"
    );
    assert!(applied.recreated.is_empty());
    assert_eq!(applied.removed, [("returns".to_owned(), 1)]);
    broker.stop().await;

    let broker = Durable::start(&dir, both).await;
    assert_eq!(broker.depth("orders"), 1, "the queue kept its message");
    assert_eq!(broker.depth("returns"), 0);
    broker.stop().await;
}

#[tokio::test]
async fn a_messages_delivery_count_and_expiry_time_survive_a_restart() {
    let dir = fresh_dir("counts");
    let mut orders = address("orders", AddressType::Queue);
    orders.message_redelivery = Some(MessageRedelivery {
        maximum_delivery_attempts: Some(10),
        ..MessageRedelivery::default()
    });
    let config = config(vec![orders]);
    let broker = Durable::start(&dir, config.clone()).await;
    let mut connection = Connection::open("client", format!("amqp://{}", broker.addr).as_str())
        .await
        .unwrap();
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut sender = Sender::attach(&mut session, "s", "orders").await.unwrap();
    let durable = |body: &str, ttl: u32| {
        let header = Header::builder().durable(true).ttl(Some(ttl)).build();
        Message::builder().header(header).value(body.to_owned()).build()
    };
    within("accepted", sender.send(durable("kept", 600_000)))
        .await
        .unwrap();
    // One credit at a time: a released message is not sent again before the link closes.
    let mut receiver = Receiver::builder()
        .name("r")
        .source("orders")
        .credit_mode(CreditMode::Manual)
        .attach(&mut session)
        .await
        .unwrap();
    let failed = Modified {
        delivery_failed: Some(true),
        undeliverable_here: None,
        message_annotations: None,
    };
    for expected in 0..3 {
        receiver.set_credit(1).await.unwrap();
        let delivery = within("receive", receiver.recv::<AmqpValue<String>>())
            .await
            .unwrap();
        assert_eq!(delivery.body().0, "kept");
        let count = delivery.message().header.as_ref().map_or(0, |h| h.delivery_count);
        assert_eq!(count, expected);
        match expected {
            2 => receiver.release(&delivery).await.unwrap(),
            _ => receiver.modify(&delivery, failed.clone()).await.unwrap(),
        }
    }
    receiver.close().await.unwrap();
    within("accepted", sender.send(durable("short-lived", 400)))
        .await
        .unwrap();
    connection.close().await.unwrap();
    broker.stop().await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let broker = Durable::start(&dir, config).await;
    let mut connection = Connection::open("client", format!("amqp://{}", broker.addr).as_str())
        .await
        .unwrap();
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut receiver = Receiver::attach(&mut session, "r", "orders").await.unwrap();
    let delivery = within("receive", receiver.recv::<AmqpValue<String>>())
        .await
        .unwrap();
    assert_eq!(
        delivery.body().0,
        "kept",
        "the short-lived one expired while the broker was down"
    );
    let count = delivery.message().header.as_ref().map_or(0, |h| h.delivery_count);
    assert_eq!(
        count, 2,
        "the two failed deliveries are remembered, the release is not one"
    );
    receiver.accept(&delivery).await.unwrap();
    let entry = broker.broker.table().get("orders").unwrap();
    assert_eq!(
        entry.messages_expired.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_durable_subscription_and_its_messages_are_back_after_a_restart() {
    let dir = fresh_dir("durable-subscription");
    let config = config(vec![address("news", AddressType::Topic)]);
    let subscribe = |broker: &Durable, name: &'static str| {
        let url = format!("amqp://{}", broker.addr);
        async move {
            let mut connection = Connection::open("client-1", url.as_str()).await.unwrap();
            let mut session = Session::begin(&mut connection).await.unwrap();
            let source = fe2o3_amqp::types::messaging::Source::builder()
                .address("news")
                .durable(fe2o3_amqp::types::messaging::TerminusDurability::UnsettledState)
                .expiry_policy(fe2o3_amqp::types::messaging::TerminusExpiryPolicy::Never)
                .build();
            let receiver = Receiver::builder()
                .name(name)
                .source(source)
                .attach(&mut session)
                .await
                .unwrap();
            (connection, session, receiver)
        }
    };
    let broker = Durable::start(&dir, config.clone()).await;
    let (mut connection, _session, kept) = subscribe(&broker, "kept").await;
    kept.detach().await.unwrap();
    let (_c, _s, ended) = subscribe(&broker, "ended").await;
    ended.close().await.unwrap();
    connection.close().await.unwrap();
    broker
        .send("news", &[("durable", true), ("not durable", false)])
        .await;
    broker.stop().await;

    let broker = Durable::start(&dir, config).await;
    let subscriptions: Vec<_> = broker
        .broker
        .table()
        .entries()
        .into_iter()
        .filter_map(|e| e.client.clone())
        .collect();
    assert_eq!(
        subscriptions.len(),
        1,
        "a closed subscription stays gone: {subscriptions:?}"
    );
    let (_connection, _session, mut kept) = subscribe(&broker, "kept").await;
    let delivery = within("receive", kept.recv::<AmqpValue<String>>()).await.unwrap();
    assert_eq!(
        delivery.body().0,
        "durable",
        "the durable message survived, the other did not"
    );
    kept.accept(&delivery).await.unwrap();
    kept.detach().await.unwrap();
    assert_eq!(broker.depth("news"), 0);
    broker.stop().await;
}

#[tokio::test]
async fn durable_messages_a_full_queue_drops_are_forgotten_by_the_journal() {
    let dir = fresh_dir("drop");
    let mut orders = address("orders", AddressType::Queue);
    orders.limits.max_depth = 2;
    let mut dropping = config(vec![orders]);
    dropping.space.address_full_policy = Some(AddressFullPolicy::Drop);
    let broker = Durable::start(&dir, dropping.clone()).await;
    broker
        .send("orders", &[("a", true), ("b", true), ("c", true), ("d", true)])
        .await;
    // Housekeeping forgets the dropped ones within a tick.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    broker.stop().await;

    let broker = Durable::start(&dir, dropping).await;
    assert_eq!(broker.take("orders", 2).await, ["c", "d"]);
    assert_eq!(broker.depth("orders"), 0);
    broker.stop().await;
}
