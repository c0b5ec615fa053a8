//! Bad input at the door: garbage instead of a protocol header, and a client that skips SASL where
//! it is required, each get a clean close, never a hang or a panic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod common;

use std::sync::{Arc, atomic::Ordering};

use common::{config, start, within};
use enmasse_auth::authenticator::RefuseAll;
use enmasse_broker::sasl::SASL_HEADER;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Sends `bytes` and returns everything the broker answers before it closes.
async fn answer_to(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    within("the broker closes", stream.read_to_end(&mut answer))
        .await
        .unwrap();
    answer
}

#[tokio::test]
async fn a_client_that_speaks_another_protocol_is_told_and_closed() {
    let broker = start(config(vec![])).await;
    let answer = answer_to(broker.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(answer, SASL_HEADER);
}

#[tokio::test]
async fn a_client_that_skips_required_sasl_is_told_and_closed() {
    let broker = start(config(vec![])).await;
    broker.broker.apply(
        config(vec![]),
        Arc::new(RefuseAll::new("standard authentication is required".into())),
    );
    let answer = answer_to(broker.addr, b"AMQP\x00\x01\x00\x00").await;
    assert_eq!(answer, SASL_HEADER, "the server names the layer it requires");
}

#[tokio::test]
async fn a_refused_login_gets_a_sasl_outcome_and_is_counted() {
    let broker = start(config(vec![])).await;
    broker
        .broker
        .apply(config(vec![]), Arc::new(RefuseAll::new("no users yet".into())));
    let mut stream = TcpStream::connect(broker.addr).await.unwrap();
    stream.write_all(&SASL_HEADER).await.unwrap();
    // sasl-init for PLAIN: a described list (0x41) with the mechanism and "\0user\0secret".
    let init: &[u8] = b"\x00\x53\x41\xc0\x18\x02\xa3\x05PLAIN\xa0\x0c\x00user\x00secret";
    let mut frame = ((8 + init.len()) as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&[2, 1, 0, 0]);
    frame.extend_from_slice(init);
    stream.write_all(&frame).await.unwrap();
    let mut answer = Vec::new();
    within("the broker closes", stream.read_to_end(&mut answer))
        .await
        .unwrap();
    assert_eq!(&answer[..8], SASL_HEADER);
    // The last frame is sasl-outcome (0x44) with code 4 (sys-temp: try again later).
    let outcome = answer
        .windows(3)
        .rposition(|w| w == b"\x00\x53\x44")
        .expect("a sasl-outcome frame");
    assert_eq!(
        answer[outcome + 3..outcome + 6],
        [0xc0, 0x03, 0x01],
        "a list of one field"
    );
    assert_eq!(answer[outcome + 6..outcome + 8], [0x50, 0x04], "code sys-temp");
    assert_eq!(
        broker
            .broker
            .counters()
            .authentication_failures
            .load(Ordering::Relaxed),
        1
    );
}
