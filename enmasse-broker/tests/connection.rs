//! At the door: garbage instead of a protocol header, and a client that skips SASL where it is
//! required, each get a clean close, never a hang or a panic; a client that asks for TLS with the
//! TLS header gets it where a certificate is configured.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod common;

use std::sync::{Arc, atomic::Ordering};

use common::{address, config, start, within};
use enmasse_auth::{
    authenticator::{AcceptAll, RefuseAll},
    tls::ServerIdentity,
};
use enmasse_broker::{
    amqp::decode::Decoder,
    broker::{Broker, Settings},
    sasl::SASL_HEADER,
    server::{self, TLS_HEADER},
};
use enmasse_types::resources::address::AddressType;
use fe2o3_amqp::{Connection, Receiver, Sender, Session};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;

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
    // sasl-init for PLAIN: a described list (0x41) of 22 bytes with the mechanism and
    // "\0user\0secret".
    let init: &[u8] = b"\x00\x53\x41\xc0\x16\x02\xa3\x05PLAIN\xa0\x0c\x00user\x00secret";
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
    let mut fields = Decoder::new(&answer[outcome + 3..]).list().unwrap();
    assert_eq!(fields.next(Decoder::ubyte).unwrap(), Some(4), "code sys-temp");
    assert_eq!(
        broker
            .broker
            .counters()
            .authentication_failures
            .load(Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn the_tls_header_on_a_port_without_a_certificate_is_answered_with_the_sasl_header() {
    let broker = start(config(vec![])).await;
    let answer = answer_to(broker.addr, &TLS_HEADER).await;
    assert_eq!(answer, SASL_HEADER);
}

#[tokio::test]
async fn a_client_that_asks_for_tls_with_the_tls_header_gets_it_on_the_plain_port() {
    let dir = std::env::temp_dir().join(format!("enmasse-upgrade-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let identity = ServerIdentity::self_signed(&dir, "upgrade", &["localhost".into()]).unwrap();
    let tls = Arc::new(server::Tls::default());
    tls.set(identity.server_config().unwrap());
    let broker = Broker::new(Settings::default(), Arc::new(AcceptAll));
    broker.apply(
        config(vec![address("orders", AddressType::Queue)]),
        Arc::new(AcceptAll),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(server::run_with_upgrade(listener, broker, tls, shutdown.clone()));

    // The client asks for TLS, gets the same header back, and goes on in TLS.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&TLS_HEADER).await.unwrap();
    let mut answer = [0u8; 8];
    within("the answer", stream.read_exact(&mut answer))
        .await
        .unwrap();
    assert_eq!(answer, TLS_HEADER);
    let mut roots = rustls::RootCertStore::empty();
    let ca = identity.ca_pem.as_deref().unwrap().as_bytes();
    for cert in CertificateDer::pem_slice_iter(ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let client =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(name, stream)
        .await
        .unwrap();
    let mut connection = Connection::builder()
        .container_id("upgraded")
        .open_with_stream(stream)
        .await
        .unwrap();
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut sender = Sender::attach(&mut session, "s", "orders").await.unwrap();
    within("send", sender.send("over tls")).await.unwrap();
    let mut receiver = Receiver::attach(&mut session, "r", "orders").await.unwrap();
    let delivery = within("receive", receiver.recv::<String>()).await.unwrap();
    assert_eq!(delivery.body(), "over tls");
    receiver.accept(&delivery).await.unwrap();
    shutdown.cancel();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_amqp_listener_holds_a_burst_of_connections_not_128() {
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = listener.local_addr().unwrap().port();
    // For a listening socket, `ss` shows its backlog as the send queue.
    let output = std::process::Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2) reports the listen backlog");
    let line = String::from_utf8_lossy(&output.stdout).to_string();
    let backlog: u32 = line
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no backlog in {line:?}"));
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(backlog, server::LISTEN_BACKLOG.min(somaxconn), "{line}");
    assert!(backlog > 128, "{line}");
}
