//! The management API and the binary's lifecycle, as an operator and Kubernetes use them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod common;

use std::{sync::Arc, time::Duration};

use common::{address, config};
use enmasse_auth::authenticator::AcceptAll;
use enmasse_broker::{
    broker::{Broker, Settings},
    management::{self, Pushed},
};
use enmasse_types::resources::address::AddressType;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;

/// Sends one HTTP/1.1 request and returns the status code and body.
async fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: broker\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn management() -> (std::net::SocketAddr, Arc<Broker>, CancellationToken) {
    guarded_management(management::Guard::open()).await
}

async fn guarded_management(
    guard: management::Guard,
) -> (std::net::SocketAddr, Arc<Broker>, CancellationToken) {
    let broker = Broker::new(Settings::default(), Arc::new(AcceptAll));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(management::run(
        listener,
        broker.clone(),
        Arc::new(Pushed {
            broker: broker.clone(),
            tokens: None,
            saved: None,
        }),
        guard,
        None,
        shutdown.clone(),
    ));
    (addr, broker, shutdown)
}

/// Sends one request with a bearer token.
async fn http_with_token(addr: std::net::SocketAddr, method: &str, path: &str, token: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: broker\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response[9..12].parse().unwrap()
}

#[tokio::test]
async fn a_guarded_api_answers_config_report_and_status_only_with_the_token() {
    let (addr, _broker, _shutdown) = guarded_management(management::Guard::token("s3cret\n")).await;
    let config = serde_json::to_string(&config(vec![address("orders", AddressType::Queue)])).unwrap();
    let (status, body) = http(addr, "PUT", "/config", &config).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("management token"), "{body}");
    assert_eq!(http(addr, "GET", "/report", "").await.0, 401);
    assert_eq!(http(addr, "GET", "/status", "").await.0, 401);
    assert_eq!(http_with_token(addr, "GET", "/report", "s3cre7").await, 401);
    assert_eq!(http_with_token(addr, "GET", "/report", "s3cret").await, 200);
    assert_eq!(http_with_token(addr, "GET", "/status", "s3cret").await, 200);
    // Probes and metrics stay open: the kubelet and Prometheus carry no token.
    assert_eq!(http(addr, "GET", "/healthz", "").await.0, 200);
    assert_eq!(http(addr, "GET", "/metrics", "").await.0, 200);
}

#[tokio::test]
async fn a_broker_is_ready_only_once_a_config_is_applied() {
    let (addr, _broker, _shutdown) = management().await;
    assert_eq!(http(addr, "GET", "/healthz", "").await.0, 200);
    assert_eq!(http(addr, "GET", "/readyz", "").await.0, 503);
    let config = serde_json::to_string(&config(vec![address("orders", AddressType::Queue)])).unwrap();
    let (status, body) = http(addr, "PUT", "/config", &config).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"added\": [\n    \"orders\"\n  ]"), "{body}");
    assert_eq!(http(addr, "GET", "/readyz", "").await.0, 200);
}

#[tokio::test]
async fn applying_the_same_config_twice_changes_nothing() {
    let (addr, _broker, _shutdown) = management().await;
    let config = serde_json::to_string(&config(vec![address("orders", AddressType::Queue)])).unwrap();
    http(addr, "PUT", "/config", &config).await;
    let (status, body) = http(addr, "PUT", "/config", &config).await;
    assert_eq!(status, 200);
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["added"], serde_json::json!([]));
    assert_eq!(answer["updated"], serde_json::json!([]));
}

#[tokio::test]
async fn a_malformed_config_is_refused_with_the_reason_and_nothing_changes() {
    let (addr, broker, _shutdown) = management().await;
    let (status, body) = http(addr, "PUT", "/config", "{\"space\": 1}").await;
    assert_eq!(status, 400);
    assert!(body.starts_with("invalid broker config"), "{body}");
    assert!(broker.config().is_none());
}

#[tokio::test]
async fn a_config_that_lists_one_address_twice_is_refused_naming_it_and_nothing_changes() {
    let (addr, broker, _shutdown) = management().await;
    let once = serde_json::to_value(config(vec![address("orders", AddressType::Queue)])).unwrap();
    let orders = once["addresses"][0].clone();
    let orders_with = |plan: &str| {
        let mut orders = orders.clone();
        orders["plan"] = plan.into();
        orders
    };
    let mut twice = once.clone();
    twice["addresses"] = serde_json::json!([orders, orders]);
    let (status, body) = http(addr, "PUT", "/config", &twice.to_string()).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("the address \"orders\" is listed more than once"),
        "{body}"
    );
    assert!(broker.config().is_none());

    // A patch likewise.
    http(addr, "PUT", "/config", &once.to_string()).await;
    let revision = broker.revision();
    let patch = serde_json::json!({
        "base": revision,
        "space": once["space"],
        "users": [],
        "addresses": [orders_with("large"), orders_with("small")],
    });
    let (status, body) = http(addr, "PATCH", "/config", &patch.to_string()).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("the address \"orders\" is listed more than once"),
        "{body}"
    );
    assert_eq!(broker.revision(), revision, "nothing changed");
}

#[test]
fn a_pushed_config_is_kept_for_the_next_start_and_a_broken_one_is_reported_by_path() {
    let dir = std::env::temp_dir().join(format!("enmasse-saved-config-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let saved = dir.join("broker-config.json");
    let pushed = |broker: &Arc<Broker>| Pushed {
        broker: broker.clone(),
        tokens: None,
        saved: Some(saved.clone()),
    };
    let first = Broker::new(Settings::default(), Arc::new(AcceptAll));
    assert!(
        pushed(&first).apply_saved().unwrap().is_none(),
        "nothing saved yet"
    );
    let orders = config(vec![address("orders", AddressType::Queue)]);
    management::Control::apply(&pushed(&first), orders.clone()).unwrap();

    let restarted = Broker::new(Settings::default(), Arc::new(AcceptAll));
    let applied = pushed(&restarted).apply_saved().unwrap().unwrap();
    assert_eq!(applied.added, ["orders"]);
    assert_eq!(restarted.config().as_deref(), Some(&orders));

    std::fs::write(&saved, b"{\"space\": ").unwrap();
    let broken = Broker::new(Settings::default(), Arc::new(AcceptAll));
    let error = pushed(&broken).apply_saved().unwrap_err();
    assert!(error.contains(&saved.display().to_string()), "{error}");
    assert!(broken.config().is_none(), "nothing applied from it");
}

#[tokio::test]
async fn status_and_metrics_report_each_address() {
    let (addr, broker, _shutdown) = management().await;
    let config = serde_json::to_string(&config(vec![address("orders", AddressType::Queue)])).unwrap();
    http(addr, "PUT", "/config", &config).await;
    let orders = broker.table().get("orders").unwrap();
    orders
        .messages_expired
        .fetch_add(2, std::sync::atomic::Ordering::Relaxed);
    orders
        .messages_dead_lettered
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (_, status) = http(addr, "GET", "/status", "").await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["addresses"][0]["address"], "orders");
    assert_eq!(status["addresses"][0]["depth"], 0);
    assert_eq!(status["addresses"][0]["messagesExpired"], 2);
    assert_eq!(status["addresses"][0]["messagesDeadLettered"], 1);
    let (_, report) = http(addr, "GET", "/report", "").await;
    let report: enmasse_types::broker_config::BrokerReport = serde_json::from_str(&report).unwrap();
    let orders = report.address("orders").unwrap();
    assert!(orders.ready);
    assert_eq!((orders.messages_expired, orders.messages_dead_lettered), (2, 1));
    let (_, metrics) = http(addr, "GET", "/metrics", "").await;
    assert!(
        metrics.contains("# TYPE enmasse_broker_address_depth gauge"),
        "{metrics}"
    );
    assert!(
        metrics.contains("enmasse_broker_address_depth{address=\"orders\",type=\"queue\"} 0"),
        "{metrics}"
    );
    for line in [
        "enmasse_broker_address_messages_expired_total{address=\"orders\",type=\"queue\"} 2",
        "enmasse_broker_address_messages_dead_lettered_total{address=\"orders\",type=\"queue\"} 1",
    ] {
        assert!(metrics.contains(line), "{metrics}");
    }
    assert_eq!(http(addr, "GET", "/nothing", "").await.0, 404);
}

#[tokio::test]
async fn the_report_asked_since_a_point_answers_only_what_changed_and_refuses_a_garbage_point() {
    use enmasse_types::report_changes::ReportChanges;
    let (addr, broker, _shutdown) = management().await;
    let config = serde_json::to_string(&config(vec![
        address("orders", AddressType::Queue),
        address("invoices", AddressType::Queue),
    ]))
    .unwrap();
    http(addr, "PUT", "/config", &config).await;
    let (status, first) = http(addr, "GET", "/report?since=", "").await;
    assert_eq!(status, 200, "{first}");
    let first: ReportChanges = serde_json::from_str(&first).unwrap();
    assert!(first.whole);
    assert_eq!(first.addresses.len(), 2);

    broker
        .table()
        .get("orders")
        .unwrap()
        .messages_expired
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (_, second) = http(addr, "GET", &format!("/report?since={}", first.since), "").await;
    let second: ReportChanges = serde_json::from_str(&second).unwrap();
    assert!(!second.whole);
    let changed: Vec<&str> = second.addresses.iter().map(|a| a.address.as_str()).collect();
    assert_eq!(changed, ["orders"], "the unchanged address is not sent again");
    assert_eq!(second.revision, first.revision);

    let (status, refused) = http(addr, "GET", "/report?since=not-a-point", "").await;
    assert_eq!(status, 400);
    assert!(refused.contains("invalid report point"), "{refused}");
}

#[tokio::test]
async fn a_patch_of_the_config_in_force_is_applied_and_a_patch_of_another_is_refused() {
    use enmasse_types::config_patch::ConfigPatch;
    let (addr, broker, _shutdown) = management().await;
    let first = config(vec![address("orders", AddressType::Queue)]);
    let patch = |base: &str| ConfigPatch {
        base: base.to_owned(),
        space: first.space.clone(),
        users: vec![],
        removed: vec!["orders".into()],
        addresses: [address("invoices", AddressType::Queue)].into(),
    };
    let body = serde_json::to_string(&patch("")).unwrap();
    let (status, answer) = http(addr, "PATCH", "/config", &body).await;
    assert_eq!(status, 409, "nothing in force to patch: {answer}");

    http(addr, "PUT", "/config", &serde_json::to_string(&first).unwrap()).await;
    let (status, answer) = http(
        addr,
        "PATCH",
        "/config",
        &serde_json::to_string(&patch("elsewhere")).unwrap(),
    )
    .await;
    assert_eq!(status, 409);
    assert!(answer.contains(&first.revision()), "{answer}");
    assert!(broker.table().get("orders").is_some(), "nothing changed");

    let (status, answer) = http(
        addr,
        "PATCH",
        "/config",
        &serde_json::to_string(&patch(&first.revision())).unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let expected = config(vec![address("invoices", AddressType::Queue)]);
    assert_eq!(broker.revision(), expected.revision());
    assert!(broker.table().get("orders").is_none() && broker.table().get("invoices").is_some());
}

#[tokio::test]
async fn the_binary_stops_gracefully_on_sigterm() {
    let data = std::env::temp_dir().join(format!("enmasse-sigterm-{}", std::process::id()));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_enmasse-broker"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--management",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut log = Vec::new();
    let started = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 1024];
        loop {
            let n = stderr.read(&mut buf).await.unwrap();
            log.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&log).contains("listening") || n == 0 {
                break;
            }
        }
    })
    .await;
    assert!(
        started.is_ok(),
        "the broker did not start: {}",
        String::from_utf8_lossy(&log)
    );
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("stopped in time")
        .unwrap();
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).await.unwrap();
    assert!(rest.contains("stopped"), "{rest}");
}
