//! Reconnecting through broker restarts, against the real standalone broker: the sender hands back
//! what was on the wire when the broker went and sends the rest once it is back; the receiver
//! attaches again, and a delivery from the lost connection cannot be settled late.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::time::Duration;

use enmasse_client::{
    Backoff, ClientError, Credentials, Message, MessagingConfig, Outcome, ReconnectingReceiver,
    ReconnectingSender, Sent,
};
use tests::{
    repo_root,
    standalone::{Running, standalone},
};

/// The tests of this file take turns: a crashed broker's ports are free, and a broker another
/// test started meanwhile could get them, and the clients reconnect to it.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn broker() -> Running {
    standalone(
        vec![
            repo_root().join("examples/gitops/infra"),
            repo_root().join("tests/fixtures/client"),
        ],
        2,
        None,
        None,
    )
    .await
}

/// The broker's export (TLS, its CA) with alice's password.
fn config(broker: &Running) -> MessagingConfig {
    MessagingConfig::from_export_file(&broker.data_dir.join("exports/client-config.yaml"))
        .unwrap()
        .credentials(Credentials::Scram {
            username: "alice".into(),
            password: "alice-password".into(),
        })
}

fn quick() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        attempts: Some(20),
    }
}

/// Fails the test rather than hang it.
async fn soon<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("done within 20s")
}

#[tokio::test]
async fn a_sender_hands_back_what_the_broker_never_confirmed_and_sends_the_rest_after_it_restarts() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let broker = broker().await;
    let config = config(&broker);
    // On an anycast address the sender's outcome is the receiver's settlement, so a message the
    // receiver holds unsettled stays on the wire without an outcome.
    let mut receiver = ReconnectingReceiver::open(config.clone(), "work", 10, quick())
        .await
        .unwrap();
    let sender = ReconnectingSender::open(config, "work", quick())
        .await
        .unwrap()
        .window(1);
    let sending = tokio::spawn(async move {
        let mut sender = sender;
        let sent = sender
            .send_all([Message::text("m1"), Message::text("m2"), Message::text("m3")])
            .await;
        (sender, sent)
    });

    let m1 = soon(receiver.recv()).await.unwrap();
    assert_eq!(m1.text().as_deref(), Some("m1"));
    receiver.accept(&m1).await.unwrap();
    let m2 = soon(receiver.recv()).await.unwrap();
    assert_eq!(m2.text().as_deref(), Some("m2"));

    // m2 is on the wire, unsettled; m3 waits behind it (a window of one).
    let broker = broker.crash().start().await;

    let m3 = soon(receiver.recv()).await.unwrap();
    assert_eq!(
        m3.text().as_deref(),
        Some("m3"),
        "m3 went out on the new connection"
    );
    assert_eq!(receiver.connections(), 2);
    assert!(
        matches!(receiver.accept(&m2).await, Err(ClientError::Stale { .. })),
        "m2 came over the lost connection"
    );
    receiver.accept(&m3).await.unwrap();

    let (sender, sent) = soon(sending).await.unwrap();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0], Sent::Settled(Outcome::Accepted));
    assert!(
        matches!(&sent[1], Sent::Unconfirmed { message, .. } if *message == Message::text("m2")),
        "m2 is handed back: {:?}",
        sent[1]
    );
    assert_eq!(sent[2], Sent::Settled(Outcome::Accepted));
    assert_eq!(sender.connections(), 2);
    sender.close().await.unwrap();
    receiver.close().await.unwrap();
    drop(broker);
}

#[tokio::test]
async fn messages_sent_while_the_broker_is_down_go_out_once_it_is_back() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let broker = broker().await;
    let config = config(&broker);
    let mut sender = ReconnectingSender::open(config.clone(), "orders", quick())
        .await
        .unwrap();
    assert_eq!(
        sender.send(Message::text("before")).await,
        Sent::Settled(Outcome::Accepted)
    );

    let stopped = broker.crash();
    // Long enough for the client to see its connection close; a message sent in that instant
    // would be on the wire of a dead connection, and come back unconfirmed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sending = tokio::spawn(async move {
        let sent = sender
            .send_all((0..5).map(|i| Message::text(format!("order {i}"))))
            .await;
        (sender, sent)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let broker = stopped.start().await;

    let (sender, sent) = soon(sending).await.unwrap();
    assert_eq!(sent, vec![Sent::Settled(Outcome::Accepted); 5]);
    assert_eq!(sender.connections(), 2);
    let mut receiver = ReconnectingReceiver::open(config, "orders", 10, quick())
        .await
        .unwrap();
    for i in 0..5 {
        let delivery = soon(receiver.recv()).await.unwrap();
        assert_eq!(delivery.text(), Some(format!("order {i}")), "in order");
        receiver.accept(&delivery).await.unwrap();
    }
    drop(broker);
}

#[tokio::test]
async fn a_receiver_gives_up_when_the_broker_stays_away_and_says_how_often_it_tried() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let broker = broker().await;
    let config = config(&broker);
    let mut receiver = ReconnectingReceiver::open(
        config,
        "orders",
        10,
        Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(20),
            attempts: Some(3),
        },
    )
    .await
    .unwrap();
    let _stopped = broker.crash();
    let error = soon(receiver.recv()).await.unwrap_err();
    assert!(
        matches!(error, ClientError::GaveUp { attempts: 3, .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().starts_with("gave up reaching 127.0.0.1:"),
        "{error}"
    );
}

#[tokio::test]
async fn a_refused_link_is_not_retried() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let broker = broker().await;
    let config = config(&broker);
    let refused = ReconnectingSender::open(config.clone(), "elsewhere", Backoff::default()).await;
    assert!(
        matches!(refused, Err(ClientError::Refused { .. })),
        "refused at once, not retried for ever"
    );
    let wrong = config.credentials(Credentials::Scram {
        username: "alice".into(),
        password: "wrong".into(),
    });
    let refused = ReconnectingReceiver::open(wrong, "orders", 1, Backoff::default()).await;
    assert!(matches!(refused, Err(ClientError::Login { .. })));
}
