//! Request and response: a dynamic receiver gets a temporary queue that lives as long as its link,
//! and the anonymous relay routes each message by its `to`, authorized message by message.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod common;

use std::sync::Arc;

use common::{address, config, start, within};
use enmasse_auth::authenticator::for_config;
use enmasse_broker::{broker::Settings, server};
use enmasse_types::{
    broker_config::{BrokerUser, Credential},
    resources::{
        address::AddressType,
        authentication_service::AuthenticationServiceType,
        messaging_user::{AuthorizationRule, Operation},
    },
};
use fe2o3_amqp::{
    Connection, Receiver, Sender, Session,
    types::messaging::{AmqpValue, Message, Outcome, Properties, Source, Target},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A message with this body addressed to `to`.
fn addressed(to: &str, body: &str) -> Message<AmqpValue<String>> {
    Message::builder()
        .properties(Properties::builder().to(to).build())
        .value(body.to_owned())
        .build()
}

/// A sender without a target address: the anonymous relay.
async fn relay(session: &mut fe2o3_amqp::session::SessionHandle<()>) -> Sender {
    Sender::builder()
        .name("relay")
        .target(Target::builder().build())
        .attach(session)
        .await
        .unwrap()
}

/// The rejection's condition and description, or the outcome's debug text.
fn rejection(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Rejected(rejected) => format!("{:?}", rejected.error),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn a_dynamic_receiver_gets_a_temporary_queue_that_goes_with_its_link() {
    let broker = start(config(vec![address("requests", AddressType::Queue)])).await;
    let (_connection, mut session) = broker.client().await;
    let mut replies = Receiver::builder()
        .name("replies")
        .source(Source::builder().dynamic(true).build())
        .attach(&mut session)
        .await
        .unwrap();
    let source = replies.source().clone().expect("a source in the reply");
    let reply_to = source.address.expect("the temporary queue's address");
    assert!(reply_to.starts_with("$temp/"), "{reply_to}");
    assert!(source.dynamic, "the reply says the node was created");
    assert_eq!(broker.broker.table().temporaries(), 1);

    // Anyone in the space may send to it by name, here through the anonymous relay.
    let mut relay = relay(&mut session).await;
    let outcome = within("relay", relay.send(addressed(&reply_to, "pong")))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");
    let delivery = within("reply", replies.recv::<String>()).await.unwrap();
    assert_eq!(delivery.body(), "pong");
    replies.accept(&delivery).await.unwrap();

    replies.close().await.unwrap();
    assert_eq!(
        broker.broker.table().temporaries(),
        0,
        "the temporary queue is gone with its link"
    );
    let outcome = within("relay", relay.send(addressed(&reply_to, "late")))
        .await
        .unwrap();
    assert!(rejection(&outcome).contains("not served"), "{outcome:?}");
}

#[tokio::test]
async fn a_temporary_queue_goes_when_its_connection_drops() {
    let broker = start(config(vec![])).await;
    let (mut connection, mut session) = broker.client().await;
    let _replies = Receiver::builder()
        .name("replies")
        .source(Source::builder().dynamic(true).build())
        .attach(&mut session)
        .await
        .unwrap();
    assert_eq!(broker.broker.table().temporaries(), 1);
    connection.close().await.unwrap();
    for _ in 0..50 {
        if broker.broker.table().temporaries() == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the temporary queue outlived its connection");
}

#[tokio::test]
async fn a_dynamic_sender_creates_a_queue_others_receive_from_by_name() {
    let broker = start(config(vec![])).await;
    let (_connection, mut session) = broker.client().await;
    let mut sender = Sender::builder()
        .name("into-temporary")
        .target(Target::builder().dynamic(true).build())
        .attach(&mut session)
        .await
        .unwrap();
    let address = sender
        .target()
        .clone()
        .and_then(|t| t.address)
        .expect("the temporary queue's address");
    let outcome = within("send", sender.send("hello")).await.unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");
    let mut receiver = Receiver::attach(&mut session, "reader", address.as_str())
        .await
        .unwrap();
    let delivery = within("receive", receiver.recv::<String>()).await.unwrap();
    assert_eq!(delivery.body(), "hello");
}

#[tokio::test]
async fn the_anonymous_relay_routes_by_to_and_refuses_what_it_cannot_route() {
    let broker = start(config(vec![
        address("orders", AddressType::Queue),
        address("news", AddressType::Topic),
    ]))
    .await;
    let (_connection, mut session) = broker.client().await;
    let mut news = Receiver::attach(&mut session, "news-reader", "news")
        .await
        .unwrap();
    let mut relay = relay(&mut session).await;

    for (to, body) in [("orders", "order"), ("news/sport", "goal")] {
        let outcome = within("relay", relay.send(addressed(to, body))).await.unwrap();
        assert!(matches!(outcome, Outcome::Accepted(_)), "{to}: {outcome:?}");
    }
    let mut orders = Receiver::attach(&mut session, "orders-reader", "orders")
        .await
        .unwrap();
    let order = within("order", orders.recv::<String>()).await.unwrap();
    assert_eq!(order.body(), "order");
    let goal = within("news", news.recv::<String>()).await.unwrap();
    assert_eq!(goal.body(), "goal");

    let outcome = within("relay", relay.send(addressed("nowhere", "lost")))
        .await
        .unwrap();
    let text = rejection(&outcome);
    assert!(text.contains("NotFound") && text.contains("nowhere"), "{text}");
    let outcome = within("relay", relay.send("no address")).await.unwrap();
    let text = rejection(&outcome);
    assert!(text.contains("needs a `to` address"), "{text}");
}

#[tokio::test]
async fn the_anonymous_relay_checks_the_users_right_message_by_message() {
    let mut config = config(vec![
        address("orders", AddressType::Queue),
        address("audit", AddressType::Queue),
    ]);
    config.space.authentication.type_ = AuthenticationServiceType::Standard;
    config.users.push(BrokerUser {
        resource: "app.alice".into(),
        username: "alice".into(),
        credential: Credential::Password {
            keys: None,
            namespace: "team1".into(),
        },
        authorization: vec![AuthorizationRule {
            operations: vec![Operation::Send],
            addresses: vec!["orders".into()],
        }],
    });
    let authenticator = for_config(&config, None, |_| Some(b"secret".to_vec()));
    let broker = enmasse_broker::broker::Broker::new(
        Settings {
            plain_without_tls: true,
            ..Settings::default()
        },
        authenticator.clone(),
    );
    broker.apply(config, authenticator);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("amqp://alice:secret@{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(server::run(listener, Arc::clone(&broker), shutdown.clone()));

    let mut connection = Connection::open("alice", url.as_str()).await.unwrap();
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut relay = relay(&mut session).await;
    let outcome = within("allowed", relay.send(addressed("orders", "ok")))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");
    let outcome = within("forbidden", relay.send(addressed("audit", "no")))
        .await
        .unwrap();
    let text = rejection(&outcome);
    assert!(
        text.contains("UnauthorizedAccess") && text.contains("may not send to address \\\"audit\\\""),
        "{text}"
    );
    // The refusal is per message: the link goes on.
    let outcome = within("allowed again", relay.send(addressed("orders", "ok")))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");
    shutdown.cancel();
}

#[tokio::test]
async fn a_temporary_queue_is_received_from_only_on_the_connection_that_created_it() {
    let broker = start(config(vec![])).await;
    let (_connection, mut session) = broker.client().await;
    let replies = Receiver::builder()
        .name("replies")
        .source(Source::builder().dynamic(true).build())
        .attach(&mut session)
        .await
        .unwrap();
    let address = replies.source().clone().and_then(|s| s.address).unwrap();

    let (_other, mut elsewhere) = broker.client().await;
    let refused = Receiver::attach(&mut elsewhere, "thief", address.as_str())
        .await
        .unwrap_err();
    let text = format!("{refused:?}");
    assert!(
        text.contains("NotAllowed") && text.contains("only on the connection"),
        "{text}"
    );
    // Sending to it is open to anyone who knows its name.
    let (_third, mut sending) = broker.client().await;
    let mut sender = Sender::attach(&mut sending, "reply", address.as_str())
        .await
        .unwrap();
    let outcome = within("send", sender.send("answer")).await.unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");
}

#[tokio::test]
async fn a_connection_holds_a_bounded_number_of_temporary_addresses() {
    let broker = start(config(vec![])).await;
    let (mut connection, mut session) = broker.client().await;
    let mut held = Vec::new();
    for n in 0..64 {
        let receiver = Receiver::builder()
            .name(format!("replies-{n}"))
            .source(Source::builder().dynamic(true).build())
            .attach(&mut session)
            .await
            .unwrap();
        held.push(receiver);
    }
    let mut another = Session::begin(&mut connection).await.unwrap();
    let refused = Receiver::builder()
        .name("one-too-many")
        .source(Source::builder().dynamic(true).build())
        .attach(&mut another)
        .await
        .unwrap_err();
    let text = format!("{refused:?}");
    assert!(
        text.contains("ResourceLimitExceeded") && text.contains("64 temporary"),
        "{text}"
    );
    assert_eq!(broker.broker.table().temporaries(), 64);
}

#[tokio::test]
async fn a_temporary_topic_gives_every_receiver_a_copy() {
    let broker = start(config(vec![])).await;
    let (_connection, mut session) = broker.client().await;
    // What Qpid JMS sends for session.createTemporaryTopic().
    let mut sender = Sender::builder()
        .name("temporary-topic")
        .target(
            Target::builder()
                .dynamic(true)
                .capabilities(vec![fe2o3_amqp::types::primitives::Symbol::from(
                    "temporary-topic",
                )])
                .build(),
        )
        .attach(&mut session)
        .await
        .unwrap();
    let address = sender.target().clone().and_then(|t| t.address).unwrap();
    let mut first = Receiver::attach(&mut session, "first", address.as_str())
        .await
        .unwrap();
    let mut second = Receiver::attach(&mut session, "second", address.as_str())
        .await
        .unwrap();
    within("send", sender.send("news")).await.unwrap();
    for receiver in [&mut first, &mut second] {
        let delivery = within("a copy", receiver.recv::<String>()).await.unwrap();
        assert_eq!(delivery.body(), "news");
    }
}
