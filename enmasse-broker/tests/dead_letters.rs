//! TTL, expiry, redelivery and dead letters: an expired message is never delivered and goes to
//! the expiry address; the address's TTL bounds clamp a message's own; a message that fails its
//! deliveries waits longer each time and goes to the dead-letter address once it has failed as
//! often as allowed; a rejected one goes there at once, annotated with where from and why.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod common;

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use common::{address, config, start, within};
use enmasse_types::{
    broker_config::BrokerAddress,
    resources::address::{AddressType, MessageRedelivery, MessageTtl},
};
use fe2o3_amqp::{
    Receiver, Sender,
    link::delivery::Delivery,
    session::SessionHandle,
    types::{
        definitions::{self, AmqpError},
        messaging::{AmqpValue, Header, Message, Modified, annotations::OwnedKey},
        primitives::{Symbol, Value},
    },
};

/// `orders`, with `settings` applied, dead-lettering to `dlq` and expiring to `expired`.
fn orders(settings: impl FnOnce(&mut BrokerAddress)) -> Vec<BrokerAddress> {
    let mut orders = address("orders", AddressType::Queue);
    orders.deadletter = Some("dlq".into());
    orders.expiry = Some("expired".into());
    settings(&mut orders);
    vec![
        orders,
        address("dlq", AddressType::Deadletter),
        address("expired", AddressType::Deadletter),
    ]
}

fn with_ttl(body: &str, ttl: Option<u32>) -> Message<AmqpValue<String>> {
    let header = match ttl {
        Some(ttl) => Header::builder().ttl(Some(ttl)).build(),
        None => Header::builder().build(),
    };
    Message::builder().header(header).value(body.to_owned()).build()
}

/// The message annotation `key` of a delivery, as a string.
fn annotation(delivery: &Delivery<String>, key: &str) -> Option<String> {
    let annotations = delivery.message().message_annotations.as_ref()?;
    match annotations.get(&OwnedKey::Symbol(Symbol::from(key)))? {
        Value::String(text) => Some(text.clone()),
        other => Some(format!("{other:?}")),
    }
}

/// Whether `receiver` gets nothing within `wait`.
async fn gets_nothing(receiver: &mut Receiver, wait: Duration) -> bool {
    tokio::time::timeout(wait, receiver.recv::<String>())
        .await
        .is_err()
}

async fn send(session: &mut SessionHandle<()>, message: Message<AmqpValue<String>>) {
    let mut sender = Sender::attach(session, "s", "orders").await.unwrap();
    within("send", sender.send(message)).await.unwrap();
    sender.close().await.unwrap();
}

#[tokio::test]
async fn an_expired_message_is_never_delivered_and_goes_to_the_expiry_address() {
    let broker = start(config(orders(|_| {}))).await;
    let (_connection, mut session) = broker.client().await;
    send(&mut session, with_ttl("stale", Some(300))).await;
    send(&mut session, with_ttl("fresh", None)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;

    let mut consumer = Receiver::attach(&mut session, "c", "orders").await.unwrap();
    let delivery = within("fresh", consumer.recv::<String>()).await.unwrap();
    assert_eq!(delivery.body(), "fresh", "the expired message is never delivered");
    consumer.accept(&delivery).await.unwrap();

    let mut expired = Receiver::attach(&mut session, "e", "expired").await.unwrap();
    let moved = within("the expired message", expired.recv::<String>())
        .await
        .unwrap();
    assert_eq!(moved.body(), "stale");
    assert_eq!(
        annotation(&moved, "x-opt-ORIG-ADDRESS").as_deref(),
        Some("orders")
    );
    assert_eq!(
        annotation(&moved, "x-opt-DEAD-LETTER-REASON").as_deref(),
        Some("expired")
    );
    assert!(annotation(&moved, "x-opt-ACTUAL-EXPIRY").is_some());
    let entry = broker.broker.table().get("orders").unwrap();
    assert_eq!(entry.messages_expired.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn the_addresss_ttl_bounds_clamp_the_messages_own() {
    // Each bound alone: first a maximum, then a minimum.
    let broker = start(config(orders(|orders| {
        orders.message_ttl = Some(MessageTtl {
            minimum: None,
            maximum: Some(300),
        });
        orders.expiry = None;
    })))
    .await;
    let (_connection, mut session) = broker.client().await;
    send(&mut session, with_ttl("no ttl of its own", None)).await;
    send(&mut session, with_ttl("a day", Some(86_400_000))).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let entry = broker.broker.table().get("orders").unwrap();
    assert_eq!(entry.depth(), 0, "both capped at 300 ms, and gone");
    assert_eq!(
        entry.messages_expired.load(Ordering::Relaxed),
        2,
        "dropped and counted"
    );

    broker.apply(config(orders(|orders| {
        orders.message_ttl = Some(MessageTtl {
            minimum: Some(5_000),
            maximum: None,
        });
    })));
    send(&mut session, with_ttl("asks for 10 ms", Some(10))).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut consumer = Receiver::attach(&mut session, "c", "orders").await.unwrap();
    let delivery = within("raised to the minimum", consumer.recv::<String>())
        .await
        .unwrap();
    assert_eq!(delivery.body(), "asks for 10 ms");
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_after_its_attempts_with_the_delay_growing() {
    let broker = start(config(orders(|orders| {
        orders.message_redelivery = Some(MessageRedelivery {
            maximum_delivery_attempts: Some(3),
            redelivery_delay: Some(150),
            redelivery_delay_multiplier: Some(2.0),
            maximum_delivery_delay: None,
        });
    })))
    .await;
    let (_connection, mut session) = broker.client().await;
    send(&mut session, with_ttl("poison", None)).await;
    let mut consumer = Receiver::attach(&mut session, "c", "orders").await.unwrap();
    let failed = Modified {
        delivery_failed: Some(true),
        undeliverable_here: None,
        message_annotations: None,
    };
    let mut counts = Vec::new();
    let mut waits = Vec::new();
    let mut last = Instant::now();
    for attempt in 0..3 {
        let delivery = within("a delivery", consumer.recv::<String>()).await.unwrap();
        if attempt > 0 {
            waits.push(last.elapsed());
        }
        counts.push(delivery.message().header.as_ref().map_or(0, |h| h.delivery_count));
        consumer.modify(&delivery, failed.clone()).await.unwrap();
        last = Instant::now();
    }
    assert_eq!(counts, [0, 1, 2], "each delivery says how many failed before it");
    assert!(
        waits[0] >= Duration::from_millis(140),
        "first redelivery after the delay: {waits:?}"
    );
    assert!(
        waits[1] >= Duration::from_millis(290),
        "then twice as long: {waits:?}"
    );
    assert!(
        gets_nothing(&mut consumer, Duration::from_millis(700)).await,
        "given up after 3 failures"
    );

    let mut dlq = Receiver::attach(&mut session, "d", "dlq").await.unwrap();
    let dead = within("the dead letter", dlq.recv::<String>()).await.unwrap();
    assert_eq!(dead.body(), "poison");
    assert_eq!(
        annotation(&dead, "x-opt-DEAD-LETTER-REASON").as_deref(),
        Some("delivery attempts exhausted: 3")
    );
    assert_eq!(annotation(&dead, "x-opt-ORIG-QUEUE").as_deref(), Some("orders"));
    let entry = broker.broker.table().get("orders").unwrap();
    assert_eq!(entry.messages_dead_lettered.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_rejected_message_goes_to_the_deadletter_address_with_the_consumers_reason() {
    let broker = start(config(orders(|_| {}))).await;
    let (_connection, mut session) = broker.client().await;
    send(&mut session, with_ttl("unreadable", None)).await;
    let mut consumer = Receiver::attach(&mut session, "c", "orders").await.unwrap();
    let delivery = within("a delivery", consumer.recv::<String>()).await.unwrap();
    let error = definitions::Error::new(AmqpError::DecodeError, Some("not JSON".to_owned()), None);
    consumer.reject(&delivery, error).await.unwrap();

    let mut dlq = Receiver::attach(&mut session, "d", "dlq").await.unwrap();
    let dead = within("the dead letter", dlq.recv::<String>()).await.unwrap();
    assert_eq!(dead.body(), "unreadable");
    let reason = annotation(&dead, "x-opt-DEAD-LETTER-REASON").unwrap();
    assert!(
        reason.starts_with("rejected: ") && reason.contains("not JSON"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_released_message_is_not_a_failed_delivery() {
    let broker = start(config(orders(|orders| {
        orders.message_redelivery = Some(MessageRedelivery {
            maximum_delivery_attempts: Some(1),
            ..MessageRedelivery::default()
        });
    })))
    .await;
    let (_connection, mut session) = broker.client().await;
    send(&mut session, with_ttl("busy", None)).await;
    let mut consumer = Receiver::attach(&mut session, "c", "orders").await.unwrap();
    for _ in 0..3 {
        let delivery = within("a delivery", consumer.recv::<String>()).await.unwrap();
        assert_eq!(
            delivery.message().header.as_ref().map_or(0, |h| h.delivery_count),
            0
        );
        consumer.release(&delivery).await.unwrap();
    }
    let delivery = within("still there", consumer.recv::<String>()).await.unwrap();
    consumer.accept(&delivery).await.unwrap();
    let entry = broker.broker.table().get("orders").unwrap();
    assert_eq!(entry.messages_dead_lettered.load(Ordering::Relaxed), 0);
}
