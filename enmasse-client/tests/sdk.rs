//! The SDK against the real broker in standalone mode: a config from the broker's export, every
//! outcome a sender can learn, refusals named, and the post's service-account path with a token
//! file.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::{path::PathBuf, time::Duration};

use enmasse_client::{
    ClientError, Connection, Credentials, Message, MessagingConfig, Outcome, config::Environment,
};
use tests::{
    repo_root,
    standalone::{Running, standalone},
};

/// The standalone broker on the client fixture, with a token file naming one service account.
async fn broker() -> Running {
    let tokens = std::env::temp_dir().join(format!("enmasse-sdk-tokens-{}", std::process::id()));
    std::fs::write(&tokens, "app-token system:serviceaccount:tests:app\n").unwrap();
    standalone(
        vec![
            repo_root().join("examples/gitops/infra"),
            repo_root().join("tests/fixtures/client"),
        ],
        2,
        Some(tokens),
        None,
    )
    .await
}

fn export(broker: &Running) -> PathBuf {
    broker.data_dir.join("exports/client-config.yaml")
}

fn alice() -> Credentials {
    Credentials::Scram {
        username: "alice".into(),
        password: "alice-password".into(),
    }
}

#[tokio::test]
async fn the_brokers_export_is_enough_to_connect_over_tls_with_scram_or_plain() {
    let broker = broker().await;
    let config = MessagingConfig::from_export_file(&export(&broker)).unwrap();
    assert_eq!(
        config.port,
        broker.tls_addr.port(),
        "the export names the amqps port"
    );
    assert!(config.tls_ca.is_some(), "and the CA to trust");

    let mut connection = Connection::open(&config.clone().credentials(alice()))
        .await
        .unwrap();
    let mut sender = connection.sender("orders").await.unwrap();
    assert_eq!(
        sender
            .send(Message::text("order 1").message_id("o-1"))
            .await
            .unwrap(),
        Outcome::Accepted
    );
    let plain = config.credentials(Credentials::Plain {
        username: "alice".into(),
        password: "alice-password".into(),
    });
    let mut other = Connection::open(&plain).await.unwrap();
    let mut receiver = other.receiver("orders", 10).await.unwrap();
    let delivery = receiver.recv().await.unwrap();
    assert_eq!(delivery.text().as_deref(), Some("order 1"));
    assert_eq!(delivery.message_id().as_deref(), Some("o-1"));
    receiver.accept(&delivery).await.unwrap();
    connection.close().await.unwrap();
    other.close().await.unwrap();
}

#[tokio::test]
async fn a_sender_learns_whether_the_message_was_accepted_rejected_or_released() {
    let broker = broker().await;
    let config = MessagingConfig::from_url(&format!("amqp://alice:alice-password@{}", broker.addr)).unwrap();
    let mut consumer = Connection::open(&config).await.unwrap();
    let mut receiver = consumer.receiver("work", 10).await.unwrap();
    let mut producer = Connection::open(&config).await.unwrap();
    let mut sender = producer.sender("work").await.unwrap();

    // On an anycast address a receiver's accept or reject is the sender's outcome; a message no
    // receiver is left to take goes back to its sender as released.
    let sending = tokio::spawn(async move {
        let mut outcomes = Vec::new();
        for body in ["take me", "refuse me", "give me back"] {
            outcomes.push(sender.send(Message::text(body)).await.unwrap());
        }
        outcomes
    });
    let delivery = receiver.recv().await.unwrap();
    assert_eq!(delivery.text().as_deref(), Some("take me"));
    receiver.accept(&delivery).await.unwrap();
    let delivery = receiver.recv().await.unwrap();
    assert_eq!(delivery.text().as_deref(), Some("refuse me"));
    receiver.reject(&delivery, "order 7 has no lines").await.unwrap();
    let delivery = receiver.recv().await.unwrap();
    assert_eq!(delivery.text().as_deref(), Some("give me back"));
    // A release puts it back for the next receiver: the same one, here.
    receiver.release(&delivery).await.unwrap();
    let again = receiver.recv().await.unwrap();
    assert_eq!(again.text().as_deref(), Some("give me back"));
    assert_eq!(
        again.delivery_count(),
        0,
        "a release is not a failed delivery (AMQP 1.0, 3.4.4)"
    );
    receiver.close().await.unwrap();

    let outcomes = tokio::time::timeout(Duration::from_secs(10), sending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcomes[0], Outcome::Accepted);
    assert!(
        matches!(&outcomes[1], Outcome::Rejected { reason } if reason.contains("order 7 has no lines")),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(outcomes[2], Outcome::Released);

    // The broker announces the address's size limit at attach: a larger message is refused by
    // the SDK itself, before a byte of it is sent, with the limit in the error.
    let mut sender = producer.sender("orders").await.unwrap();
    let refused = sender
        .send(Message::bytes(vec![0u8; 9 * 1024 * 1024]))
        .await
        .expect_err("over the announced limit");
    assert!(refused.to_string().contains("8388608"), "{refused}");
}

#[tokio::test]
async fn refusals_name_who_was_refused_and_why() {
    let broker = broker().await;
    let wrong = MessagingConfig::from_url(&format!("amqp://alice:wrong@{}", broker.addr)).unwrap();
    let err = Connection::open(&wrong)
        .await
        .err()
        .expect("a wrong password is refused");
    assert!(matches!(err, ClientError::Login { .. }), "{err:?}");
    assert!(err.to_string().contains("refused the login of alice"), "{err}");

    let config = MessagingConfig::from_url(&format!("amqp://alice:alice-password@{}", broker.addr)).unwrap();
    let mut connection = Connection::open(&config).await.unwrap();
    let err = connection
        .sender("elsewhere")
        .await
        .err()
        .expect("no right to send there");
    assert!(
        err.to_string()
            .starts_with("the broker refused to let this client send to elsewhere: amqp:unauthorized-access"),
        "{err}"
    );

    let err = Connection::open(&MessagingConfig::new("127.0.0.1", 1))
        .await
        .err()
        .unwrap();
    assert_eq!(err.to_string(), "failed to connect to 127.0.0.1:1");
}

#[tokio::test]
async fn in_a_pod_the_posts_variables_and_the_mounted_token_and_ca_connect_the_app() {
    let broker = broker().await;
    let export: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(export(&broker)).unwrap()).unwrap();
    // What the kubelet mounts: the token, and a CA that signed the broker's certificate.
    let mount = broker.data_dir.join("serviceaccount");
    std::fs::create_dir_all(&mount).unwrap();
    std::fs::write(mount.join("token"), "app-token\n").unwrap();
    std::fs::write(mount.join("ca.crt"), export["data"]["ca.crt"].as_str().unwrap()).unwrap();
    // What the Deployment maps from the export.
    let environment = Environment {
        vars: [
            ("MESSAGING_HOST".to_owned(), "localhost".to_owned()),
            ("MESSAGING_PORT".to_owned(), broker.tls_addr.port().to_string()),
        ]
        .into(),
        service_account_dir: Some(mount.clone()),
    };
    let config = MessagingConfig::from_environment(&environment).unwrap();
    let mut connection = Connection::open(&config).await.unwrap();
    let mut sender = connection.sender("orders").await.unwrap();
    assert_eq!(
        sender.send(Message::text("from the pod")).await.unwrap(),
        Outcome::Accepted
    );

    // The token is read at every connection: a rotated, unknown token is refused.
    std::fs::write(mount.join("token"), "stale-token\n").unwrap();
    let err = Connection::open(&config)
        .await
        .err()
        .expect("an unknown token is refused");
    assert!(matches!(err, ClientError::Login { .. }), "{err:?}");
}
