//! Durable messages through `kill -9`, with the real broker binary: a producer sends durable
//! messages (waiting for each outcome) while a consumer takes some, the broker is killed at a
//! random moment, and the restarted broker must deliver again every message whose send was
//! accepted and whose consumption was not acknowledged, invent none, and keep the survivors in
//! order. Then a journal whose tail was cut and scribbled on: the broker starts, reports the tear
//! and serves the intact prefix.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod common;

use enmasse_types::{
    broker_config::BrokerConfig,
    resources::{address::AddressType, infra_config::AddressFullPolicy},
};
use hyper::Method;
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{address, config};
use enmasse_client::{
    Backoff, ClientError, Connection, Credentials, Message, MessagingConfig, Outcome, ReconnectingSender,
    Sent, management::Management,
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// A broker process on `data`.
struct Broker {
    child: Child,
    port: u16,
    management: u16,
    log: Arc<Mutex<String>>,
    /// Whether it serves the example manifests (its users log in) or pushed configs.
    manifests: bool,
}

impl Broker {
    /// A broker serving the example manifests.
    async fn start(data: &Path) -> Self {
        Self::spawn(data, true).await
    }

    /// A broker without manifests, as the operator runs it.
    async fn start_pushed(data: &Path) -> Self {
        Self::spawn(data, false).await
    }

    async fn spawn(data: &Path, manifests: bool) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_enmasse-broker"));
        command.args([
            "--listen",
            "127.0.0.1:0",
            "--listen-tls",
            "127.0.0.1:0",
            "--management",
            "127.0.0.1:0",
        ]);
        if manifests {
            command
                .arg("--manifests")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/gitops"));
        }
        let mut child = command
            .arg("--data-dir")
            .arg(data)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (port, management) = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                log.lock().unwrap().push_str(&line);
                log.lock().unwrap().push('\n');
                if let (Some(port), Some(management)) =
                    (port_after(&line, "amqp=Some("), port_after(&line, "management="))
                {
                    return (port, management);
                }
            }
            panic!("the broker exited: {}", log.lock().unwrap());
        })
        .await
        .expect("the broker starts within 30s");
        // Keep reading, so that the broker never blocks on a full pipe.
        let kept = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Self {
            child,
            port,
            management,
            log,
            manifests,
        }
    }

    fn config(&self) -> MessagingConfig {
        let config = MessagingConfig::new("127.0.0.1", self.port).connect_timeout(Duration::from_secs(5));
        match self.manifests {
            true => config.credentials(Credentials::Scram {
                username: "developer".into(),
                password: "developer".into(),
            }),
            false => config,
        }
    }

    fn management(&self) -> Management {
        Management {
            address: format!("127.0.0.1:{}", self.management),
            token: None,
            timeout: Duration::from_secs(5),
            tls: None,
        }
    }

    /// Pushes `config` as the operator does.
    async fn push(&self, config: &BrokerConfig) {
        let body = serde_json::to_vec(config).unwrap();
        self.management()
            .request(Method::PUT, "/config", body)
            .await
            .unwrap();
    }

    /// `GET /status`.
    async fn status(&self) -> serde_json::Value {
        let body = self
            .management()
            .request(Method::GET, "/status", Vec::new())
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    /// `kill -9`.
    async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// A port from the broker's "listening amqp=Some(127.0.0.1:PORT) management=127.0.0.1:PORT" line.
fn port_after(line: &str, field: &str) -> Option<u16> {
    let rest = &line[line.find(field)? + field.len()..];
    let addr = &rest[..rest.find([')', ' ']).unwrap_or(rest.len())];
    addr.rsplit(':').next()?.parse().ok()
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("enmasse-crash-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A small deterministic generator, seeded per run and printed so that a failure can be replayed.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound.max(1)
    }
}

/// What the producer and consumer saw before the kill.
#[derive(Default)]
struct Ledger {
    /// Sent, whatever came of it.
    attempted: BTreeSet<u64>,
    /// Sent and accepted by the broker.
    accepted: BTreeSet<u64>,
    /// Received and accepted by the consumer, the accept sent.
    acknowledged: BTreeSet<u64>,
}

/// Sends the durable messages numbered `seqs` to `orders`, each accepted.
async fn send_accepted(config: &MessagingConfig, seqs: impl IntoIterator<Item = u64>) {
    send_accepted_to(config, "orders", seqs).await
}

/// Sends the durable messages numbered `seqs` to `address`, each accepted.
async fn send_accepted_to(config: &MessagingConfig, address: &str, seqs: impl IntoIterator<Item = u64>) {
    let mut connection = Connection::open(config).await.unwrap();
    let mut sender = connection.sender(address).await.unwrap();
    for seq in seqs {
        let outcome = sender
            .send(Message::text(seq.to_string()).durable(true))
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::Accepted);
    }
}

/// Receives until every message of `expected` has come, failing after `timeout`; returns the
/// sequence numbers in the order they came, accepting each.
async fn drain(config: &MessagingConfig, expected: &BTreeSet<u64>, timeout: Duration) -> Vec<u64> {
    let mut connection = Connection::open(config).await.unwrap();
    let mut receiver = connection.receiver("orders", 50).await.unwrap();
    let mut received = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut missing = expected.clone();
    while !missing.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(delivery) = tokio::time::timeout(left, receiver.recv()).await else {
            panic!(
                "{} accepted and unacknowledged messages did not come back, the first {:?}",
                missing.len(),
                missing.iter().take(10).collect::<Vec<_>>()
            );
        };
        let delivery = delivery.unwrap();
        let seq: u64 = delivery.text().unwrap().parse().unwrap();
        receiver.accept(&delivery).await.unwrap();
        missing.remove(&seq);
        received.push(seq);
    }
    // Whatever else is there (messages whose outcome the kill cut off) comes too.
    while let Ok(Ok(delivery)) = tokio::time::timeout(Duration::from_millis(300), receiver.recv()).await {
        received.push(delivery.text().unwrap().parse().unwrap());
        receiver.accept(&delivery).await.unwrap();
    }
    receiver.close().await.unwrap();
    connection.close().await.unwrap();
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_every_accepted_unacknowledged_message_comes_back_in_order_and_none_is_invented() {
    let data = fresh_dir("kill");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("seed {seed}");
    let mut random = Random(seed);
    let mut next = 1u64;
    let mut expected = BTreeSet::new();
    let mut all_attempted = BTreeSet::new();
    let mut survivors = 0;
    let started = Instant::now();
    let mut iterations = 0;
    // Bounded in time: as many kills as fit in about 20 seconds, at least three.
    while iterations < 3 || (started.elapsed() < Duration::from_secs(20) && iterations < 12) {
        iterations += 1;
        let broker = Broker::start(&data).await;
        let config = broker.config();

        // What the last kill left must all be there, in order, and nothing else.
        let received = drain(&config, &expected, Duration::from_secs(20)).await;
        for seq in &received {
            assert!(
                all_attempted.contains(seq),
                "message {seq} was never sent (seed {seed})"
            );
        }
        let mut firsts = Vec::new();
        for seq in &received {
            if !firsts.contains(seq) {
                firsts.push(*seq);
            }
        }
        let survived: Vec<u64> = firsts.iter().copied().filter(|s| expected.contains(s)).collect();
        assert!(
            survived.windows(2).all(|w| w[0] < w[1]),
            "the survivors came back out of order: {survived:?} (seed {seed})"
        );
        survivors += survived.len();
        assert!(
            broker.log().contains("recovered the journal"),
            "the broker reports its recovery: {}",
            broker.log()
        );

        // Load, then a kill at a random moment.
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let producer = {
            let ledger = ledger.clone();
            let config = config.clone();
            let first = next;
            tokio::spawn(async move {
                // Pipelined, so that many deliveries share each sync and the kill finds some of
                // them written, some in the writer's hands and some still on the wire.
                let once = Backoff {
                    attempts: Some(1),
                    ..Backoff::default()
                };
                let mut sender = ReconnectingSender::open(config, "orders", once).await?.window(25);
                for batch in (first..).step_by(100) {
                    let seqs: Vec<u64> = (batch..batch + 100).collect();
                    ledger.lock().unwrap().attempted.extend(&seqs);
                    let messages = seqs
                        .iter()
                        .map(|seq| Message::text(seq.to_string()).durable(true));
                    let results = sender.send_all(messages).await;
                    let mut ledger = ledger.lock().unwrap();
                    let mut lost = false;
                    for (seq, sent) in seqs.iter().zip(results) {
                        match sent {
                            Sent::Settled(Outcome::Accepted) => {
                                ledger.accepted.insert(*seq);
                            }
                            Sent::Settled(_) => {}
                            Sent::Unconfirmed { .. } | Sent::Unsent { .. } => lost = true,
                        }
                    }
                    if lost {
                        break;
                    }
                }
                Ok::<(), ClientError>(())
            })
        };
        let consumer = {
            let ledger = ledger.clone();
            let config = config.clone();
            let skip = random.below(3) + 2;
            tokio::spawn(async move {
                let mut connection = Connection::open(&config).await?;
                let mut receiver = connection.receiver("orders", 20).await?;
                loop {
                    let delivery = receiver.recv().await?;
                    let seq: u64 = delivery.text().unwrap_or_default().parse().unwrap_or(0);
                    // Every `skip`-th message is left unsettled: it must come back after the kill.
                    if !seq.is_multiple_of(skip) {
                        receiver.accept(&delivery).await?;
                        ledger.lock().unwrap().acknowledged.insert(seq);
                    }
                }
                #[allow(unreachable_code)]
                Ok::<(), ClientError>(())
            })
        };
        // The kill comes at a random moment once the load is under way: the first accepted batch
        // waits for two logins and a journal sync, which a loaded machine can stretch past the
        // shortest delay.
        let under_way = async {
            while ledger.lock().unwrap().accepted.is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), under_way).await;
        tokio::time::sleep(Duration::from_millis(random.below(400))).await;
        broker.kill().await;
        let _ = producer.await;
        let _ = consumer.await;

        let ledger = ledger.lock().unwrap();
        all_attempted.extend(ledger.attempted.iter().copied());
        next = ledger.attempted.last().map_or(next, |last| last + 1);
        expected = ledger
            .accepted
            .difference(&ledger.acknowledged)
            .copied()
            .collect();
        assert!(
            !ledger.accepted.is_empty(),
            "the producer got messages accepted before the kill (seed {seed})"
        );
    }
    // The last kill's survivors, checked once more.
    let broker = Broker::start(&data).await;
    let received = drain(&broker.config(), &expected, Duration::from_secs(20)).await;
    assert!(received.iter().all(|seq| all_attempted.contains(seq)));
    println!("{iterations} kills, {survivors} survivors delivered again, {next} messages sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_with_a_cut_and_scribbled_tail_starts_reports_and_serves_the_intact_prefix() {
    let data = fresh_dir("tail");
    let broker = Broker::start(&data).await;
    send_accepted(&broker.config(), 1..=20).await;
    broker.kill().await;

    // The power went out in the middle of the last record, and the disk wrote garbage after it.
    let journal = data.join("journal");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&journal)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| std::fs::metadata(path).unwrap().len() > 8)
        .collect();
    segments.sort();
    let last = segments.last().expect("a segment holds the messages");
    let mut bytes = std::fs::read(last).unwrap();
    bytes.truncate(bytes.len() - 7);
    bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02]);
    std::fs::write(last, &bytes).unwrap();

    let broker = Broker::start(&data).await;
    let log = broker.log();
    assert!(log.contains("journal cut off"), "the tear is reported: {log}");
    assert!(
        log.contains("messages=19"),
        "nineteen intact messages recovered: {log}"
    );
    let expected: BTreeSet<u64> = (1..=19).collect();
    let received = drain(&broker.config(), &expected, Duration::from_secs(10)).await;
    assert_eq!(
        received,
        (1..=19).collect::<Vec<_>>(),
        "the intact prefix, in order, and no more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restarted_without_its_operator_serves_the_pushed_config_and_its_messages() {
    let data = fresh_dir("pushed");
    let broker = Broker::start_pushed(&data).await;
    broker
        .push(&config(vec![address("orders", AddressType::Queue)]))
        .await;
    send_accepted(&broker.config(), 1..=5).await;
    broker.kill().await;

    // Nobody pushes this time.
    let broker = Broker::start_pushed(&data).await;
    assert!(
        broker.log().contains("serving the config saved by the last run"),
        "{}",
        broker.log()
    );
    let received = drain(&broker.config(), &(1..=5).collect(), Duration::from_secs(10)).await;
    assert_eq!(received, (1..=5).collect::<Vec<_>>());
}

/// Every body `address` holds, taken until a second passes without one.
async fn bodies(port: u16, address: &str) -> Vec<String> {
    let url = format!("amqp://127.0.0.1:{port}");
    let mut connection = fe2o3_amqp::Connection::open("reader", url.as_str())
        .await
        .unwrap();
    let mut session = fe2o3_amqp::Session::begin(&mut connection).await.unwrap();
    let mut receiver = fe2o3_amqp::Receiver::attach(&mut session, "reader", address)
        .await
        .unwrap();
    let mut bodies = Vec::new();
    while let Ok(delivery) = tokio::time::timeout(Duration::from_secs(1), receiver.recv::<String>()).await {
        let delivery = delivery.unwrap();
        receiver.accept(&delivery).await.unwrap();
        bodies.push(delivery.body().clone());
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_a_committed_transaction_is_whole_and_an_open_one_leaves_no_trace() {
    let data = fresh_dir("transactions");
    let queues = config(vec![
        address("orders", AddressType::Queue),
        address("audit", AddressType::Queue),
    ]);
    let broker = Broker::start_pushed(&data).await;
    broker.push(&queues).await;
    // Qpid Proton drives the transactions, as a client would.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/proton_tx.py");
    let mut client = Command::new("/usr/bin/python3")
        .arg(script)
        .args([
            "--url",
            &format!("amqp://127.0.0.1:{}", broker.port),
            "--tag",
            "t",
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("Debian's python3 with Qpid Proton (`cargo xtask test` installs it)");
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
    assert!(
        matches!(&ready, Ok(Ok(Some(line))) if line == "ready"),
        "the client did not get its transactions going: {ready:?}\n{}",
        broker.log()
    );
    broker.kill().await;
    let _ = client.kill().await;

    let broker = Broker::start_pushed(&data).await;
    assert_eq!(
        bodies(broker.port, "orders").await,
        ["t committed 1", "t committed 2"]
    );
    assert_eq!(bodies(broker.port, "audit").await, ["t committed audit"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_durable_messages_paged_past_memory_come_back_whole_in_order_and_the_journal_holds_only_memory()
 {
    let data = fresh_dir("paging");
    let broker = Broker::start_pushed(&data).await;
    let mut orders = address("orders", AddressType::Queue);
    orders.limits.max_depth = 50;
    let mut config = config(vec![orders, address("barrier", AddressType::Queue)]);
    config.space.address_full_policy = Some(AddressFullPolicy::Page);
    broker.push(&config).await;
    send_accepted(&broker.config(), 1..=1_500).await;

    // A consumer takes the first 300: the page is read back, journaled, and its cursor moves.
    {
        let mut connection = Connection::open(&broker.config()).await.unwrap();
        let mut receiver = connection.receiver("orders", 20).await.unwrap();
        for seq in 1..=300u64 {
            let delivery = tokio::time::timeout(Duration::from_secs(10), receiver.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(delivery.text().unwrap().parse::<u64>().unwrap(), seq);
            receiver.accept(&delivery).await.unwrap();
        }
        receiver.close().await.unwrap();
        connection.close().await.unwrap();
    }
    // An accept's remove record is written with the journal's next batch; a kill -9 before that
    // write delivers the message again (at-least-once). The broker applied every accept before it
    // answered the close, and the journal writes in order, so once a durable message sent after
    // them is accepted, their removes are written too.
    send_accepted_to(&broker.config(), "barrier", [1]).await;
    broker.kill().await;

    let broker = Broker::start_pushed(&data).await;
    let status = broker.status().await;
    let recovered = &status["journal"]["recovered"];
    let (journaled, paged) = (
        recovered["messages"].as_u64().unwrap(),
        recovered["paged"].as_u64().unwrap(),
    );
    assert_eq!(
        journaled + paged,
        1_200 + 1,
        "the unconsumed orders and the barrier: {status}"
    );
    assert!(
        journaled <= 50 + 64 + 1,
        "the journal held what was in memory, not the backlog: {journaled} messages"
    );
    let received = drain(
        &broker.config(),
        &(301..=1_500).collect(),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        received,
        (301..=1_500).collect::<Vec<_>>(),
        "whole, in order, none twice"
    );
}
