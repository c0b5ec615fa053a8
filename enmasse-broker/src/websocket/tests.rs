use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

use super::*;

fn request(extra: &str) -> String {
    format!(
        "GET /any/path HTTP/1.1\r\nHost: broker\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// Sends `request` to [`accept`] and returns the client's end, what it read up to the end of the
/// answer's headers, and what `accept` returned.
async fn open(
    request: String,
) -> (
    DuplexStream,
    String,
    Result<WebSocketStream<TokioIo<Upgraded>>, HandshakeError>,
) {
    let (mut client, server) = duplex(64 * 1024);
    let accepted = tokio::spawn(accept(server));
    client.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") && client.read(&mut byte).await.unwrap() == 1 {
        answer.push(byte[0]);
    }
    let answer = String::from_utf8(answer).unwrap();
    (client, answer, accepted.await.unwrap())
}

#[test]
fn the_accept_key_is_the_one_rfc_6455_gives_for_its_example() {
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[tokio::test]
async fn an_opening_that_offers_amqp_is_switched_and_carries_bytes_both_ways() {
    let (mut client, answer, accepted) = open(request(
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt, amqp\r\n",
    ))
    .await;
    let answer = answer.to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 101"), "{answer}");
    assert!(
        answer.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{answer}"
    );
    assert!(answer.contains("sec-websocket-protocol: amqp\r\n"), "{answer}");
    let mut server = accepted.unwrap();
    // A masked binary frame with the SASL header, all-zero mask.
    let mut frame = vec![0x82, 0x88, 0, 0, 0, 0];
    frame.extend_from_slice(b"AMQP\x03\x01\x00\x00");
    client.write_all(&frame).await.unwrap();
    let mut header = [0u8; 8];
    server.read_exact(&mut header).await.unwrap();
    assert_eq!(&header, b"AMQP\x03\x01\x00\x00");
    server.write_all(b"AMQP\x03\x01\x00\x00").await.unwrap();
    server.flush().await.unwrap();
    let mut reply = [0u8; 10];
    client.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"\x82\x08AMQP\x03\x01\x00\x00");
}

#[tokio::test]
async fn an_opening_without_the_amqp_subprotocol_is_refused_with_the_reason() {
    let (_, answer, accepted) = open(request(
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n",
    ))
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(matches!(
        accepted,
        Err(HandshakeError::Refused(Refusal::Subprotocol))
    ));
}

#[tokio::test]
async fn a_client_of_the_bindings_draft_gets_the_draft_name_it_offered_and_bytes_sent_early_are_kept() {
    let (mut client, server) = duplex(64 * 1024);
    let accepted = tokio::spawn(accept(server));
    // The SASL header follows the request at once, before the answer is read.
    let mut bytes =
        request("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary, AMQPWSB10\r\n").into_bytes();
    bytes.extend_from_slice(&[0x82, 0x88, 0, 0, 0, 0]);
    bytes.extend_from_slice(b"AMQP\x03\x01\x00\x00");
    client.write_all(&bytes).await.unwrap();
    let mut server = accepted.await.unwrap().unwrap();
    let mut header = [0u8; 8];
    server.read_exact(&mut header).await.unwrap();
    assert_eq!(&header, b"AMQP\x03\x01\x00\x00");
    let mut answer = vec![0u8; 512];
    let n = client.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_ascii_lowercase();
    assert!(
        answer.contains("sec-websocket-protocol: amqpwsb10\r\n"),
        "{answer}"
    );
}

#[tokio::test]
async fn an_http_1_0_opening_is_refused() {
    let opening = request("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: amqp\r\n")
        .replace("HTTP/1.1", "HTTP/1.0");
    let (_, answer, accepted) = open(opening).await;
    assert!(answer.contains(" 400 "), "{answer}");
    assert!(matches!(
        accepted,
        Err(HandshakeError::Refused(Refusal::HttpVersion(_)))
    ));
}

#[tokio::test]
async fn an_opening_of_another_version_is_told_the_one_served() {
    let (_, answer, accepted) = open(request(
        "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Protocol: amqp\r\n",
    ))
    .await;
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("sec-websocket-version: 13"), "{answer}");
    assert!(lower.contains("upgrade: websocket"), "{answer}");
    assert!(matches!(accepted, Err(HandshakeError::Refused(Refusal::Version(v))) if v == "8"));
}

#[tokio::test]
async fn a_plain_http_request_is_refused_as_no_upgrade() {
    let (_, answer, accepted) = open("GET / HTTP/1.1\r\nHost: broker\r\n\r\n".to_owned()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(matches!(
        accepted,
        Err(HandshakeError::Refused(Refusal::NotUpgrade))
    ));
}

#[tokio::test]
async fn a_key_that_is_not_sixteen_bytes_is_refused() {
    let opening = request("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: amqp\r\n")
        .replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=");
    let (_, answer, accepted) = open(opening).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(matches!(accepted, Err(HandshakeError::Refused(Refusal::Key))));
}

#[tokio::test]
async fn garbage_instead_of_a_request_fails_without_a_connection() {
    let (mut client, server) = duplex(1024);
    let accepted = tokio::spawn(accept(server));
    client
        .write_all(b"\x00\x01\x02 not http at all\r\n\r\n")
        .await
        .unwrap();
    assert!(matches!(accepted.await.unwrap(), Err(HandshakeError::Http(_))));
}
