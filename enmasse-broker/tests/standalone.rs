//! The embedded default: a directory of manifests, applied live as it changes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use enmasse_auth::authenticator::RefuseAll;
use enmasse_broker::{
    broker::{Broker, Settings},
    management::Control,
    standalone::{Options, Standalone, WatchMode},
};
use enmasse_types::resources::address::AddressType;
use tokio_util::sync::CancellationToken;

const SPACE: &str = "apiVersion: enmasse.io/v1beta1
kind: AddressSpace
metadata: {name: app, namespace: team1}
spec:
  type: standard
  plan: standard-small
  authenticationService: {name: none-authservice}
  endpoints:
  - name: messaging
    service: messaging
    exports:
    - {name: messaging-config, kind: ConfigMap}
";

fn queue(name: &str) -> String {
    format!(
        "apiVersion: enmasse.io/v1beta1\nkind: Address\nmetadata: {{name: app.{name}, namespace: team1}}\nspec: {{address: {name}, type: queue, plan: standard-small-queue}}\n"
    )
}

struct Dir(PathBuf);

impl Dir {
    fn new(test: &str) -> Self {
        let path = std::env::temp_dir().join(format!("enmasse-standalone-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(path.join("team")).unwrap();
        Self(path)
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.0.join("team").join(file), text).unwrap();
    }

    fn remove(&self, file: &str) {
        std::fs::remove_file(self.0.join("team").join(file)).unwrap();
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn infra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/gitops/infra")
}

fn standalone(dir: &Dir) -> (Arc<Broker>, Arc<Standalone>) {
    standalone_watching(dir, WatchMode::Notify)
}

fn standalone_watching(dir: &Dir, watch: WatchMode) -> (Arc<Broker>, Arc<Standalone>) {
    let broker = Broker::new(
        // The password test logs in with PLAIN over plain TCP on loopback.
        Settings {
            plain_without_tls: true,
            ..Settings::default()
        },
        Arc::new(RefuseAll::new("not configured".into())),
    );
    let options = Options {
        manifests: vec![infra(), dir.0.join("team")],
        data_dir: dir.0.join("data"),
        namespace: "team1".into(),
        address_space: None,
        amqp: Some("127.0.0.1:5672".parse().unwrap()),
        amqps: None,
        wss: None,
        tokens: None,
        tls_dir: None,
        watch,
    };
    let standalone = Standalone::new(options, broker.clone());
    (broker, standalone)
}

fn addresses(broker: &Broker) -> Vec<String> {
    broker
        .table()
        .entries()
        .iter()
        .map(|e| e.address.clone())
        .collect()
}

/// Serves `broker` on a loopback port until the returned token is cancelled.
async fn listen(broker: Arc<Broker>) -> (std::net::SocketAddr, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(enmasse_broker::server::run(listener, broker, shutdown.clone()));
    (addr, shutdown)
}

/// Waits up to a second (the promise) for the broker to serve exactly `want`.
async fn served_within_a_second(broker: &Broker, want: &[&str]) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        if addresses(broker) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "after a second the broker serves {:?}, not {want:?}",
        addresses(broker)
    );
}

#[tokio::test]
async fn edits_new_files_and_deleted_files_are_applied_within_a_second() {
    let dir = Dir::new("watch");
    dir.write("space.yaml", SPACE);
    dir.write("a.yaml", &queue("a"));
    let (broker, standalone) = standalone(&dir);
    assert!(standalone.refresh());
    assert_eq!(addresses(&broker), ["a"]);

    let shutdown = CancellationToken::new();
    tokio::spawn(standalone.clone().watch(shutdown.clone()));

    dir.write("b.yaml", &queue("b"));
    served_within_a_second(&broker, &["a", "b"]).await;

    dir.write("a.yaml", &queue("c"));
    served_within_a_second(&broker, &["b", "c"]).await;

    dir.remove("b.yaml");
    served_within_a_second(&broker, &["c"]).await;
    shutdown.cancel();
}

#[tokio::test]
async fn an_editors_save_by_rename_and_a_new_directory_are_applied_within_a_second() {
    let dir = Dir::new("rename");
    dir.write("space.yaml", SPACE);
    dir.write("a.yaml", &queue("a"));
    let (broker, standalone) = standalone(&dir);
    assert!(standalone.refresh());
    let shutdown = CancellationToken::new();
    tokio::spawn(standalone.clone().watch(shutdown.clone()));

    // As vim and most editors save: a new file, renamed over the old one.
    dir.write(".a.yaml.swp", &queue("b"));
    std::fs::rename(dir.0.join("team/.a.yaml.swp"), dir.0.join("team/a.yaml")).unwrap();
    served_within_a_second(&broker, &["b"]).await;

    std::fs::create_dir(dir.0.join("team/more")).unwrap();
    dir.write("more/c.yaml", &queue("c"));
    served_within_a_second(&broker, &["b", "c"]).await;
    shutdown.cancel();
}

#[tokio::test]
async fn polling_every_file_applies_edits_too() {
    let dir = Dir::new("poll");
    dir.write("space.yaml", SPACE);
    dir.write("a.yaml", &queue("a"));
    let (broker, standalone) = standalone_watching(&dir, WatchMode::Poll);
    assert!(standalone.refresh());
    assert!(!standalone.refresh(), "nothing changed");
    let shutdown = CancellationToken::new();
    tokio::spawn(standalone.clone().watch(shutdown.clone()));
    dir.write("a.yaml", &queue("b"));
    served_within_a_second(&broker, &["b"]).await;
    shutdown.cancel();
}

#[tokio::test]
async fn a_bad_manifest_is_reported_and_the_others_are_served() {
    let dir = Dir::new("bad");
    dir.write("space.yaml", SPACE);
    dir.write(
        "a.yaml",
        &format!(
            "{}---\n{}",
            queue("a"),
            queue("b").replace("type: queue", "type: qeue")
        ),
    );
    dir.write("broken.yaml", "kind: [unclosed\n");
    let (broker, standalone) = standalone(&dir);
    standalone.refresh();
    assert_eq!(addresses(&broker), ["a"]);

    let verdict = standalone.status();
    let problems = verdict["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{verdict:#}");
    let text = serde_json::to_string(problems).unwrap();
    assert!(
        text.contains("a.yaml") && text.contains("field spec.type"),
        "{text}"
    );
    assert!(
        text.contains("broken.yaml") && text.contains("not valid YAML"),
        "{text}"
    );
    assert_eq!(verdict["statuses"]["addresses"]["app.a"]["phase"], "Active");
}

#[tokio::test]
async fn an_address_the_rules_refuse_is_reported_with_its_reason() {
    let dir = Dir::new("refused");
    dir.write("space.yaml", SPACE);
    dir.write(
        "a.yaml",
        &queue("a").replace("standard-small-queue", "standard-large-queue"),
    );
    let (broker, standalone) = standalone(&dir);
    standalone.refresh();
    assert!(addresses(&broker).is_empty());
    let status = &standalone.status()["statuses"]["addresses"]["app.a"];
    assert_eq!(status["phase"], "Failed");
    assert!(
        status["messages"][0]
            .as_str()
            .unwrap()
            .contains("is not offered by address space plan standard-small")
    );
}

#[tokio::test]
async fn the_exports_the_space_asks_for_are_written_with_the_real_endpoint() {
    let dir = Dir::new("exports");
    dir.write("space.yaml", SPACE);
    let (_broker, standalone) = standalone(&dir);
    standalone.refresh();
    let export = std::fs::read_to_string(dir.0.join("data/exports/messaging-config.yaml")).unwrap();
    assert!(export.contains("kind: ConfigMap"), "{export}");
    assert!(
        export.contains("service.host: \"127.0.0.1\"") || export.contains("service.host: 127.0.0.1"),
        "{export}"
    );
    assert!(export.contains("service.port.amqp: \"5672\""), "{export}");
}

const DEVELOPER: &str = "apiVersion: user.enmasse.io/v1beta1
kind: MessagingUser
metadata: {name: app.developer, namespace: team1}
spec:
  username: developer
  authentication: {type: password, password: ZGV2ZWxvcGVy}
  authorization:
  - {operations: [send, recv], addresses: [a]}
";

#[tokio::test]
async fn a_standard_space_lets_its_password_users_in_and_nobody_else() {
    let dir = Dir::new("standard-auth");
    dir.write(
        "space.yaml",
        &SPACE.replace("  authenticationService: {name: none-authservice}\n", ""),
    );
    dir.write("a.yaml", &queue("a"));
    dir.write("developer.yaml", DEVELOPER);
    let (broker, standalone) = standalone(&dir);
    standalone.refresh();
    assert_eq!(
        standalone.status()["statuses"]["addressSpaces"]["app"]["phase"],
        "Active"
    );

    let (addr, shutdown) = listen(broker).await;

    let url = format!("amqp://developer:developer@{addr}");
    let mut connection = fe2o3_amqp::Connection::open("dev", url.as_str()).await.unwrap();
    let mut session = fe2o3_amqp::Session::begin(&mut connection).await.unwrap();
    let mut sender = fe2o3_amqp::Sender::attach(&mut session, "s", "a").await.unwrap();
    sender.send("hello").await.unwrap();
    let refused = fe2o3_amqp::Sender::attach(&mut session, "s2", "b").await;
    assert!(
        format!("{refused:?}").contains("UnauthorizedAccess"),
        "{refused:?}"
    );

    for url in [
        format!("amqp://developer:guess@{addr}"),
        format!("amqp://mallory:developer@{addr}"),
        format!("amqp://{addr}"),
    ] {
        assert!(
            fe2o3_amqp::Connection::open("bad", url.as_str()).await.is_err(),
            "{url} got in"
        );
    }
    shutdown.cancel();
}

#[tokio::test]
async fn names_that_would_lead_out_of_the_data_directory_write_nothing() {
    let dir = Dir::new("traversal");
    let outside = std::env::temp_dir().join(format!("enmasse-outside-{}", std::process::id()));
    dir.write(
        "space.yaml",
        &format!(
            "apiVersion: enmasse.io/v1beta1
kind: AddressSpace
metadata: {{name: ../../x, namespace: team1}}
spec:
  type: standard
  plan: standard-small
  authenticationService: {{name: none-authservice}}
  endpoints:
  - name: messaging
    service: messaging
    exports:
    - {{name: ../escape, kind: ConfigMap}}
    - {{name: {}, kind: ConfigMap}}
    - {{name: a/b/c, kind: ConfigMap}}
    - {{name: messaging-config, kind: ConfigMap}}
",
            outside.display()
        ),
    );
    let broker = Broker::new(
        Settings::default(),
        Arc::new(RefuseAll::new("not configured".into())),
    );
    let options = Options {
        manifests: vec![infra(), dir.0.join("team")],
        data_dir: dir.0.join("data"),
        namespace: "team1".into(),
        address_space: None,
        amqp: Some("127.0.0.1:5672".parse().unwrap()),
        amqps: Some((
            "127.0.0.1:5671".parse().unwrap(),
            Arc::new(enmasse_broker::server::Tls::default()),
        )),
        wss: None,
        tokens: None,
        tls_dir: None,
        watch: Default::default(),
    };
    let standalone = Standalone::new(options, broker);
    standalone.refresh();

    for escaped in [
        dir.0.join("x/ca.key"),
        dir.0.join("escape.yaml"),
        dir.0.join("data/escape.yaml"),
        outside.with_extension("yaml"),
        dir.0.join("data/exports/a"),
        dir.0.join("data/exports/messaging-config.yaml"),
    ] {
        assert!(!escaped.exists(), "{} was written", escaped.display());
    }
    let written: Vec<PathBuf> = walk(&dir.0);
    assert!(
        written
            .iter()
            .all(|path| path.starts_with(dir.0.join("team")) || path.starts_with(dir.0.join("data"))),
        "only the manifests and the data directory: {written:?}"
    );
}

/// Every file below `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        match path.is_dir() {
            true => found.extend(walk(&path)),
            false => found.push(path),
        }
    }
    found
}

#[tokio::test]
async fn a_type_change_of_a_queue_holding_messages_waits_until_they_are_consumed() {
    let dir = Dir::new("type-change");
    dir.write("space.yaml", SPACE);
    dir.write("a.yaml", &queue("a"));
    let (broker, standalone) = standalone(&dir);
    standalone.refresh();

    let (addr, shutdown) = listen(broker.clone()).await;
    tokio::spawn(standalone.clone().watch(shutdown.clone()));
    let url = format!("amqp://{addr}");
    let mut connection = fe2o3_amqp::Connection::open("c", url.as_str()).await.unwrap();
    let mut session = fe2o3_amqp::Session::begin(&mut connection).await.unwrap();
    let mut sender = fe2o3_amqp::Sender::attach(&mut session, "s", "a").await.unwrap();
    sender.send("kept").await.unwrap();
    sender.close().await.unwrap();

    let type_of_a = || broker.table().get("a").map(|e| e.type_);
    dir.write(
        "a.yaml",
        &queue("a")
            .replace("type: queue", "type: topic")
            .replace("standard-small-queue", "standard-small-topic"),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        type_of_a(),
        Some(AddressType::Queue),
        "the queue stays while it holds a message"
    );
    let status = &standalone.status()["statuses"]["addresses"]["app.a"];
    assert!(
        status["messages"][0].as_str().unwrap().starts_with(
            "the change of type from queue to topic waits until the address's 1 message(s) are consumed"
        ),
        "{status:#}"
    );

    let mut receiver = fe2o3_amqp::Receiver::attach(&mut session, "r", "a")
        .await
        .unwrap();
    let delivery = receiver.recv::<String>().await.unwrap();
    assert_eq!(delivery.body(), "kept");
    receiver.accept(&delivery).await.unwrap();

    let start = Instant::now();
    while type_of_a() != Some(AddressType::Topic) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the topic is served once the queue is empty"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
}

#[tokio::test]
async fn a_load_balancer_and_a_route_without_host_are_named_among_what_one_machine_does_not_act_on() {
    let dir = Dir::new("expose");
    dir.write(
        "space.yaml",
        &SPACE.replace(
            "    service: messaging\n",
            "    service: messaging\n    expose: {type: loadbalancer}\n",
        ),
    );
    let (_broker, standalone) = standalone(&dir);
    standalone.refresh();
    let space = &standalone.status()["statuses"]["addressSpaces"]["app"];
    assert_eq!(
        space["unsupportedFields"],
        serde_json::json!([
            "endpoints[messaging].expose (type loadbalancer: one machine has no load balancer; use type route with routeHost, the address to listen on)"
        ]),
        "{space}"
    );
    dir.write(
        "space.yaml",
        &SPACE.replace(
            "    service: messaging\n",
            "    service: messaging\n    expose: {type: route}\n",
        ),
    );
    standalone.refresh();
    let status = standalone.status();
    assert!(
        status["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "endpoints[messaging].expose: a route on one machine needs routeHost, the address to listen on"),
        "{status}"
    );
}
