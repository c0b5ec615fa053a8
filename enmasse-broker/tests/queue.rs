//! Queues over real sockets: store and forward, competing consumers, settlement and flow control.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod common;

use std::time::Duration;

use common::{address, config, raw::Raw, start, within};
use enmasse_broker::{
    address::table::Engine,
    amqp::{
        encode::Encoder,
        performative::{DeliveryState, Performative, Role, condition},
        sections::MessageHeader,
    },
};
use enmasse_types::resources::address::AddressType;
use fe2o3_amqp::{
    Receiver, Sender,
    link::SendError,
    types::messaging::{Message, Outcome},
};

#[tokio::test]
async fn a_message_sent_to_a_queue_is_received_once() {
    let broker = start(config(vec![address("orders", AddressType::Queue)])).await;
    let (mut connection, mut session) = broker.client().await;
    let mut sender = Sender::attach(&mut session, "s", "orders").await.unwrap();
    let outcome = within("send", sender.send("hello")).await.unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");

    let mut receiver = Receiver::attach(&mut session, "r", "orders").await.unwrap();
    let delivery = within("receive", receiver.recv::<String>()).await.unwrap();
    assert_eq!(delivery.body(), "hello");
    receiver.accept(&delivery).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), receiver.recv::<String>())
            .await
            .is_err(),
        "only once"
    );

    sender.close().await.unwrap();
    receiver.close().await.unwrap();
    session.end().await.unwrap();
    connection.close().await.unwrap();
}

#[tokio::test]
async fn attaching_to_an_unknown_address_is_refused_as_not_found() {
    let broker = start(config(vec![])).await;
    let (_connection, mut session) = broker.client().await;
    let err = Sender::attach(&mut session, "s", "nowhere").await.unwrap_err();
    let text = format!("{err:?}");
    assert!(text.contains("NotFound"), "{text}");
    assert!(text.contains("not served by this address space"), "{text}");
}

#[tokio::test]
async fn a_released_message_comes_back_as_it_was_and_a_failed_one_with_its_count_raised() {
    let broker = start(config(vec![address("orders", AddressType::Queue)])).await;
    let (_connection, mut session) = broker.client().await;
    let mut sender = Sender::attach(&mut session, "s", "orders").await.unwrap();
    within("send", sender.send("again")).await.unwrap();
    let mut receiver = Receiver::attach(&mut session, "r", "orders").await.unwrap();
    let count = |delivery: &fe2o3_amqp::link::delivery::Delivery<String>| {
        delivery.message().header.as_ref().map_or(0, |h| h.delivery_count)
    };
    let first = within("receive", receiver.recv::<String>()).await.unwrap();
    receiver.release(&first).await.unwrap();
    let second = within("receive again", receiver.recv::<String>()).await.unwrap();
    assert_eq!(second.body(), "again");
    assert_eq!(
        count(&second),
        0,
        "a release is not a failed delivery (AMQP 1.0, 3.4.4)"
    );
    let failed = fe2o3_amqp::types::messaging::Modified {
        delivery_failed: Some(true),
        undeliverable_here: None,
        message_annotations: None,
    };
    receiver.modify(&second, failed).await.unwrap();
    let third = within("receive once more", receiver.recv::<String>())
        .await
        .unwrap();
    assert_eq!(count(&third), 1);
    receiver.accept(&third).await.unwrap();
}

#[tokio::test]
async fn a_rejected_message_is_not_delivered_again() {
    let broker = start(config(vec![address("orders", AddressType::Queue)])).await;
    let (_connection, mut session) = broker.client().await;
    let mut sender = Sender::attach(&mut session, "s", "orders").await.unwrap();
    within("send", sender.send("bad")).await.unwrap();
    within("send", sender.send("good")).await.unwrap();
    let mut receiver = Receiver::attach(&mut session, "r", "orders").await.unwrap();
    let bad = within("receive", receiver.recv::<String>()).await.unwrap();
    receiver.reject(&bad, None).await.unwrap();
    let good = within("receive", receiver.recv::<String>()).await.unwrap();
    assert_eq!(good.body(), "good");
}

#[tokio::test]
async fn competing_consumers_each_get_different_messages() {
    let broker = start(config(vec![address("work", AddressType::Queue)])).await;
    let (_connection, mut session) = broker.client().await;
    let mut a = Receiver::attach(&mut session, "a", "work").await.unwrap();
    let mut b = Receiver::attach(&mut session, "b", "work").await.unwrap();
    let mut sender = Sender::attach(&mut session, "s", "work").await.unwrap();
    for i in 0..20 {
        within("send", sender.send(format!("m{i}"))).await.unwrap();
    }
    let mut got = Vec::new();
    for receiver in [&mut a, &mut b] {
        while let Ok(Ok(d)) =
            tokio::time::timeout(Duration::from_millis(300), receiver.recv::<String>()).await
        {
            receiver.accept(&d).await.unwrap();
            got.push(d.body().clone());
        }
    }
    got.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(got, want, "every message exactly once over both consumers");
}

#[tokio::test]
async fn a_backlog_reaches_its_consumer_whole_and_in_order() {
    // More than one batch of deliveries, and more than the broker keeps in flight at once.
    let broker = start(config(vec![address("backlog", AddressType::Queue)])).await;
    let (_connection, mut session) = broker.client().await;
    let mut sender = Sender::attach(&mut session, "s", "backlog").await.unwrap();
    for i in 0..700 {
        let delivery = sender.send_batchable(format!("m{i}")).await.unwrap();
        drop(delivery);
    }
    within("the last send", sender.send("last")).await.unwrap();

    let mut receiver = Receiver::attach(&mut session, "r", "backlog").await.unwrap();
    let mut got = Vec::new();
    while got.len() < 701 {
        let delivery = within("receive", receiver.recv::<String>()).await.unwrap();
        receiver.accept(&delivery).await.unwrap();
        got.push(delivery.body().clone());
    }
    let want: Vec<String> = (0..700).map(|i| format!("m{i}")).chain(["last".into()]).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_full_queue_stops_its_sender_until_a_consumer_makes_room() {
    let mut small = address("small", AddressType::Queue);
    small.limits.max_depth = 5;
    let broker = start(config(vec![small])).await;
    let (_connection, mut session) = broker.client().await;
    let mut sender = Sender::attach(&mut session, "s", "small").await.unwrap();
    for i in 0..5 {
        within("send", sender.send(format!("m{i}"))).await.unwrap();
    }
    let blocked = tokio::time::timeout(Duration::from_millis(300), sender.send("m5")).await;
    assert!(
        blocked.is_err(),
        "the sender gets no credit while the queue holds 5"
    );
    assert_eq!(broker.broker.table().get("small").unwrap().depth(), 5);

    let (_c2, mut session2) = broker.client().await;
    let mut receiver = Receiver::attach(&mut session2, "r", "small").await.unwrap();
    let d = within("receive", receiver.recv::<String>()).await.unwrap();
    receiver.accept(&d).await.unwrap();
    within("send after room", sender.send("m6")).await.unwrap();
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused_by_the_client_that_was_told_the_limit() {
    let mut tiny = address("tiny", AddressType::Queue);
    tiny.limits.max_message_size = 100;
    let broker = start(config(vec![tiny])).await;
    let (_connection, mut session) = broker.client().await;
    let mut sender = Sender::attach(&mut session, "s", "tiny").await.unwrap();
    // The attach carries the address's max-message-size, so the client refuses it itself.
    let refused = within("send", sender.send(Message::from("x".repeat(500)))).await;
    assert!(
        matches!(refused, Err(SendError::MessageSizeExceeded(_))),
        "{refused:?}"
    );
    let ok = within("send small", sender.send("ok")).await.unwrap();
    assert!(matches!(ok, Outcome::Accepted(_)));
}

#[tokio::test]
async fn a_message_over_the_size_limit_from_a_peer_that_ignores_it_is_rejected_with_the_reason() {
    let broker = start(config(vec![small_queue()])).await;
    let mut raw = Raw::session(broker.addr).await;
    raw.attach("s", 0, Role::Sender, "tiny").await;
    for (id, durable) in [(0, false), (1, true)] {
        let mut message = Vec::new();
        let mut e = Encoder::new(&mut message);
        MessageHeader {
            durable,
            ..MessageHeader::default()
        }
        .encode(&mut e);
        e.descriptor(0x77);
        e.string(&"x".repeat(500));
        raw.transfer(0, Some(id), false, &message).await;
        let frame = raw
            .next_of("disposition", |p| matches!(p, Performative::Disposition(_)))
            .await;
        let Performative::Disposition(disposition) = frame.performative() else {
            unreachable!()
        };
        let Some(DeliveryState::Rejected(Some(error))) = disposition.state else {
            panic!("{disposition:?}")
        };
        assert_eq!(error.condition, condition::MESSAGE_SIZE_EXCEEDED);
        assert!(error.to_string().contains("limit of 100 bytes"), "{error}");
    }
    drop(raw);
    assert_eq!(
        room_left(&broker, "tiny", 10).await,
        10,
        "no refused message keeps room reserved, durable or not"
    );
}

/// The room `address` grants once its senders have given back what they hold, waiting for them.
async fn room_left(broker: &common::Running, address: &str, expected: u32) -> u32 {
    let entry = broker.broker.table().get(address).unwrap();
    let Engine::Queue(queue) = &entry.engine else {
        panic!("{address} is a queue")
    };
    let mut room = 0;
    for _ in 0..40 {
        room = queue.reserve(u32::MAX);
        queue.unreserve(room);
        if room == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    room
}

fn small_queue() -> enmasse_types::broker_config::BrokerAddress {
    let mut tiny = address("tiny", AddressType::Queue);
    tiny.limits.max_message_size = 100;
    tiny.limits.max_depth = 10;
    tiny
}

#[tokio::test]
async fn a_sender_that_detaches_gives_back_the_room_its_credit_held() {
    let broker = start(config(vec![small_queue()])).await;
    let (_connection, mut session) = broker.client().await;
    for round in 0..3 {
        let mut sender = Sender::attach(&mut session, format!("s{round}"), "tiny")
            .await
            .unwrap();
        within("send", sender.send("ok")).await.unwrap();
        sender.close().await.unwrap();
    }
    assert_eq!(
        room_left(&broker, "tiny", 7).await,
        7,
        "three messages held, and no credit of the gone senders"
    );
}

#[tokio::test]
async fn at_most_once_works_in_both_directions() {
    use fe2o3_amqp::types::definitions::SenderSettleMode;
    let broker = start(config(vec![address("orders", AddressType::Queue)])).await;
    let (_connection, mut session) = broker.client().await;
    let mut sender = Sender::builder()
        .name("s")
        .target("orders")
        .sender_settle_mode(SenderSettleMode::Settled)
        .attach(&mut session)
        .await
        .unwrap();
    let outcome = within("pre-settled send", sender.send("fire and forget"))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)));

    let mut receiver = Receiver::builder()
        .name("r")
        .source("orders")
        .sender_settle_mode(SenderSettleMode::Settled)
        .attach(&mut session)
        .await
        .unwrap();
    let delivery = within("receive", receiver.recv::<String>()).await.unwrap();
    assert_eq!(delivery.body(), "fire and forget");
    // The broker sent it settled: it is gone without an accept.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(broker.broker.table().get("orders").unwrap().depth(), 0);
}
