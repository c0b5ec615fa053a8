//! JMS selectors: a consumer of a queue takes only what its selector selects and leaves the rest,
//! in order, for the others; a receiver of a topic is copied only what it selects.

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
    Receiver, Sender,
    link::receiver::CreditMode,
    session::SessionHandle,
    types::{
        messaging::{
            AmqpValue, ApplicationProperties, FilterSet, Header, Message, Priority, Properties, Source,
        },
        primitives::{Symbol, Value},
    },
};
use serde_amqp::{described::Described, descriptor::Descriptor};

/// A message with the body `body` and the application property `colour`.
fn coloured(body: &str, colour: &str) -> Message<AmqpValue<String>> {
    Message::builder()
        .application_properties(ApplicationProperties::builder().insert("colour", colour).build())
        .value(body.to_owned())
        .build()
}

/// A receiver of `address` with the JMS selector `selector`.
async fn selecting(session: &mut SessionHandle<()>, name: &str, address: &str, selector: &str) -> Receiver {
    let mut filter = FilterSet::new();
    filter.insert(
        Symbol::from("jms-selector"),
        Value::Described(Box::new(Described {
            descriptor: Descriptor::Code(0x0000_468C_0000_0004),
            value: Value::String(selector.to_owned()),
        })),
    );
    Receiver::builder()
        .name(name)
        .source(Source::builder().address(address).filter(filter).build())
        .attach(session)
        .await
        .unwrap()
}

/// Receives `count` bodies from `receiver`, accepting each.
async fn bodies(receiver: &mut Receiver, count: usize) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..count {
        let delivery = within("a message", receiver.recv::<String>()).await.unwrap();
        got.push(delivery.body().clone());
        receiver.accept(&delivery).await.unwrap();
    }
    got
}

async fn send(sender: &mut Sender, messages: impl IntoIterator<Item = Message<AmqpValue<String>>>) {
    for message in messages {
        within("send", sender.send(message)).await.unwrap();
    }
}

#[tokio::test]
async fn what_a_selector_skips_goes_to_a_plain_consumer_in_order() {
    let broker = start(config(vec![address("orders", AddressType::Queue)])).await;
    let (_connection, mut session) = broker.client().await;
    let mut sender = Sender::attach(&mut session, "s", "orders").await.unwrap();
    send(
        &mut sender,
        [
            ("m0", "green"),
            ("m1", "red"),
            ("m2", "green"),
            ("m3", "red"),
            ("m4", "blue"),
        ]
        .map(|(body, colour)| coloured(body, colour)),
    )
    .await;

    let mut green = selecting(&mut session, "green", "orders", "colour = 'green'").await;
    assert_eq!(bodies(&mut green, 2).await, ["m0", "m2"]);
    // Nothing else is green: the consumer waits, and the others stay.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), green.recv::<String>())
            .await
            .is_err(),
        "only green messages go to the green consumer"
    );
    let mut plain = Receiver::attach(&mut session, "plain", "orders").await.unwrap();
    assert_eq!(bodies(&mut plain, 3).await, ["m1", "m3", "m4"]);
}

#[tokio::test]
async fn a_waiting_selector_takes_a_later_message_it_selects() {
    let broker = start(config(vec![address("orders", AddressType::Queue)])).await;
    let (_connection, mut session) = broker.client().await;
    let mut urgent = selecting(
        &mut session,
        "urgent",
        "orders",
        "JMSPriority > 6 OR colour LIKE 'r%'",
    )
    .await;
    let mut sender = Sender::attach(&mut session, "s", "orders").await.unwrap();
    let high = Message::builder()
        .header(Header::builder().priority(Priority(9)).build())
        .value("high".to_owned())
        .build();
    send(
        &mut sender,
        [coloured("low", "blue"), high, coloured("rose", "rose")],
    )
    .await;
    assert_eq!(bodies(&mut urgent, 2).await, ["high", "rose"]);
    let orders = broker.broker.table().get("orders").unwrap();
    for _ in 0..50 {
        if orders.depth() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the blue one should stay alone, the queue holds {}",
        orders.depth()
    );
}

#[tokio::test]
async fn a_released_message_is_selected_again_though_the_consumer_had_looked_past_it() {
    let broker = start(config(vec![address("orders", AddressType::Queue)])).await;
    let (_connection, mut session) = broker.client().await;
    let mut sender = Sender::attach(&mut session, "s", "orders").await.unwrap();
    send(
        &mut sender,
        [coloured("first", "green"), coloured("second", "green")],
    )
    .await;
    let mut plain = Receiver::builder()
        .name("plain")
        .source("orders")
        .credit_mode(CreditMode::Manual)
        .attach(&mut session)
        .await
        .unwrap();
    plain.set_credit(1).await.unwrap();
    let first = within("first", plain.recv::<String>()).await.unwrap();
    let mut green = selecting(&mut session, "green", "orders", "colour = 'green'").await;
    assert_eq!(bodies(&mut green, 1).await, ["second"]);
    plain.release(&first).await.unwrap();
    plain.close().await.unwrap();
    assert_eq!(bodies(&mut green, 1).await, ["first"]);
}

#[tokio::test]
async fn a_topic_receiver_is_copied_only_what_its_selector_selects() {
    let broker = start(config(vec![address("news", AddressType::Topic)])).await;
    let (_connection, mut session) = broker.client().await;
    let mut sport = selecting(&mut session, "sport", "news", "JMSType = 'sport'").await;
    let mut all = Receiver::attach(&mut session, "all", "news").await.unwrap();
    let mut sender = Sender::attach(&mut session, "s", "news").await.unwrap();
    let typed = |body: &str, subject: &str| {
        Message::builder()
            .properties(Properties::builder().subject(subject).build())
            .value(body.to_owned())
            .build()
    };
    send(
        &mut sender,
        [
            typed("goal", "sport"),
            typed("rain", "weather"),
            typed("win", "sport"),
        ],
    )
    .await;
    assert_eq!(bodies(&mut sport, 2).await, ["goal", "win"]);
    assert_eq!(bodies(&mut all, 3).await, ["goal", "rain", "win"]);
}

#[tokio::test]
async fn a_selecting_consumer_gets_back_the_newest_message_it_released() {
    let broker = start(config(vec![address("orders", AddressType::Queue)])).await;
    let (_connection, mut session) = broker.client().await;
    let mut green = selecting(&mut session, "green", "orders", "colour = 'green'").await;
    let mut sender = Sender::attach(&mut session, "s", "orders").await.unwrap();
    send(&mut sender, [coloured("only", "green")]).await;
    let delivery = within("first", green.recv::<String>()).await.unwrap();
    green.release(&delivery).await.unwrap();
    assert_eq!(bodies(&mut green, 1).await, ["only"]);
}

#[tokio::test]
async fn several_selectors_and_a_selector_on_anycast_are_refused() {
    let broker = start(config(vec![
        address("orders", AddressType::Queue),
        address("jobs", AddressType::Anycast),
    ]))
    .await;
    let (mut connection, _session) = broker.client().await;
    let selector = |text: &str| {
        Value::Described(Box::new(Described {
            descriptor: Descriptor::Code(0x0000_468C_0000_0004),
            value: Value::String(text.to_owned()),
        }))
    };
    let mut two = FilterSet::new();
    two.insert(Symbol::from("one"), selector("a = 1"));
    two.insert(Symbol::from("two"), selector("b = 2"));
    let mut session = fe2o3_amqp::Session::begin(&mut connection).await.unwrap();
    let refused = Receiver::builder()
        .name("two")
        .source(Source::builder().address("orders").filter(two).build())
        .attach(&mut session)
        .await
        .unwrap_err();
    assert!(format!("{refused:?}").contains("one selector"), "{refused:?}");

    let mut session = fe2o3_amqp::Session::begin(&mut connection).await.unwrap();
    let mut one = FilterSet::new();
    one.insert(Symbol::from("jms-selector"), selector("a = 1"));
    let refused = Receiver::builder()
        .name("anycast")
        .source(Source::builder().address("jobs").filter(one).build())
        .attach(&mut session)
        .await
        .unwrap_err();
    assert!(format!("{refused:?}").contains("anycast"), "{refused:?}");
}
