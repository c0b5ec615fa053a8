//! Request and response against the real standalone broker: the responder accepts a request only
//! once its reply is accepted, refuses with the application's reason, and the requester turns
//! away replies that name none of its requests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::time::Duration;

use enmasse_client::{
    Backoff, ClientError, Connection, Credentials, Handled, Message, MessagingConfig, Outcome, Requester,
    Responder,
};
use tests::{
    repo_root,
    standalone::{Running, standalone},
};

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

fn config(broker: &Running) -> MessagingConfig {
    MessagingConfig::from_export_file(&broker.data_dir.join("exports/client-config.yaml"))
        .unwrap()
        .credentials(Credentials::Scram {
            username: "alice".into(),
            password: "alice-password".into(),
        })
}

#[tokio::test]
async fn a_reply_names_its_request_and_a_refused_request_gets_the_applications_reason() {
    let broker = broker().await;
    // Requests go to the queue `orders`, replies to the anycast address `work`.
    let mut requester = Requester::open(config(&broker), "orders", "work", Backoff::default())
        .await
        .unwrap();
    let mut responder = Responder::open(config(&broker), "orders", "work", Backoff::default())
        .await
        .unwrap();
    let responding = tokio::spawn(async move {
        let mut handled = Vec::new();
        for _ in 0..2 {
            let request = responder.next().await.unwrap();
            let verdict = match request.text().as_deref() {
                Some("1 apple") => Ok(Message::text("confirmed")),
                _ => Err("out of stock".to_owned()),
            };
            handled.push(responder.reply(&request, verdict).await.unwrap());
        }
        handled
    });

    let reply = requester
        .request(Message::text("1 apple"), Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(reply.text().as_deref(), Some("confirmed"));
    assert!(
        reply.correlation_id().unwrap().starts_with("request-"),
        "the requester gave the request an id, and the reply names it"
    );
    let refused = requester
        .request(Message::text("9 pears"), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, ClientError::NotAnswered { reason, .. } if reason == "no reply within 500ms"),
        "{refused}"
    );
    assert_eq!(
        responding.await.unwrap(),
        [
            Handled::Replied,
            Handled::Rejected {
                reason: "out of stock".into()
            }
        ]
    );
    // Rejected, the request is gone from the queue.
    let report = broker.report();
    assert_eq!(report.address("orders").unwrap().depth, 0);
}

#[tokio::test]
async fn a_requester_rejects_a_reply_to_no_request_of_its_own() {
    let broker = broker().await;
    let mut requester = Requester::open(config(&broker), "orders", "work", Backoff::default())
        .await
        .unwrap();
    let mut stranger = Connection::open(&config(&broker)).await.unwrap();
    let mut sender = stranger.sender("work").await.unwrap();
    let stray = tokio::spawn(async move {
        sender
            .send(Message::text("yours?").correlation_id("someone-else"))
            .await
    });
    let requesting = tokio::spawn(async move {
        requester
            .request(Message::text("mine").message_id("m-1"), Duration::from_secs(20))
            .await
    });
    // No responder yet: the only reply the requester can see is the stray one.
    assert_eq!(
        stray.await.unwrap().unwrap(),
        Outcome::Rejected {
            reason: "amqp:precondition-failed: no request of this requester is waiting for a reply to someone-else"
                .into()
        }
    );
    let mut responder = Responder::open(config(&broker), "orders", "work", Backoff::default())
        .await
        .unwrap();
    let request = responder.next().await.unwrap();
    assert_eq!(
        responder.reply(&request, Ok(Message::text("ok"))).await.unwrap(),
        Handled::Replied
    );
    let reply = requesting.await.unwrap().unwrap();
    assert_eq!(reply.correlation_id().as_deref(), Some("m-1"));
    assert_eq!(reply.text().as_deref(), Some("ok"));
}
