//! `gitops-bench`: how fast a manifest edit is served, and how a space of 10,000 addresses fares.
//!
//! - The pure functions (admission and evaluation of the whole space), in this process.
//! - `enmasse validate` on the large space, as a process.
//! - For each way of watching the manifests (`notify`, and `poll`, which reads every file every
//!   200 ms as every reload did before): the broker on the large space, ready after its start,
//!   and an address added in a new file, served after the file is saved; then the broker on a
//!   small space, and 100 edits, each an editor's save (a new file renamed over the old one) that
//!   puts a new address in place of the last, served after the save.
//!
//! "Served" is when a sender can attach to the new address. Prints a JSON report; `cargo xtask
//! bench-gitops` builds the release binaries and runs it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails by panicking"
)]

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use enmasse_types::evaluate::{Incremental, Reports, evaluate};
use fe2o3_amqp::{Connection, Sender, Session, connection::ConnectionHandle, session::SessionHandle};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use serde_json::json;

struct Args {
    broker: PathBuf,
    enmasse: PathBuf,
    addresses: usize,
    edits: usize,
    dir: PathBuf,
}

fn args() -> Args {
    let mut args = Args {
        broker: "target/release/enmasse-broker".into(),
        enmasse: "target/release/enmasse".into(),
        addresses: 10_000,
        edits: 100,
        dir: std::env::temp_dir().join("enmasse-gitops-bench"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--broker" => args.broker = value.into(),
            "--enmasse" => args.enmasse = value.into(),
            "--addresses" => args.addresses = value.parse().unwrap(),
            "--edits" => args.edits = value.parse().unwrap(),
            "--dir" => args.dir = value.into(),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn queue(name: &str) -> String {
    format!(
        "---\napiVersion: enmasse.io/v1beta1\nkind: Address\nmetadata: {{name: bench.{name}}}\nspec: {{address: {name}, type: queue, plan: standard-small-queue}}\n"
    )
}

/// The example's infrastructure, a plan large enough for `addresses` queues, a space on it that
/// lets everyone in, and its queues: `[infra, team]`.
fn fixture(dir: &Path, addresses: usize) -> Vec<PathBuf> {
    let _ = std::fs::remove_dir_all(dir);
    let (infra, team) = (dir.join("infra"), dir.join("team"));
    std::fs::create_dir_all(&infra).unwrap();
    std::fs::create_dir_all(&team).unwrap();
    let examples = tests::repo_root().join("examples/gitops/infra");
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, infra.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        infra.join("bench-plan.yaml"),
        "apiVersion: admin.enmasse.io/v1beta2
kind: AddressSpacePlan
metadata: {name: bench}
spec:
  addressSpaceType: standard
  infraConfigRef: default-minimal
  resourceLimits: {router: 100000, broker: 100000, aggregate: 200000}
  addressPlans: [standard-small-queue]
",
    )
    .unwrap();
    std::fs::write(
        team.join("space.yaml"),
        "apiVersion: enmasse.io/v1beta1
kind: AddressSpace
metadata: {name: bench}
spec: {type: standard, plan: bench, authenticationService: {name: none-authservice}}
",
    )
    .unwrap();
    let queues: String = (0..addresses).map(|n| queue(&format!("q{n}"))).collect();
    std::fs::write(team.join("addresses.yaml"), queues).unwrap();
    vec![infra, team]
}

/// Milliseconds, to a tenth.
fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Admission and evaluation of the whole space, in this process: the fastest and the median of 5.
fn evaluation(manifests: &[PathBuf]) -> serde_json::Value {
    let dirs: Vec<&Path> = manifests.iter().map(PathBuf::as_path).collect();
    let catalog = tests::catalog(&dirs).unwrap();
    let tenants = catalog.tenants("default");
    let now = Time(Timestamp::now());
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            let evaluation = evaluate(&tenants[0].as_tenant(), &catalog.infra(), &Reports::new(), &now);
            let took = start.elapsed();
            assert!(evaluation.spaces["bench"].config.is_some(), "the space is served");
            took
        })
        .collect();
    times.sort();
    json!({"fastest_ms": ms(times[0]), "median_ms": ms(times[2])})
}

/// The evaluation of one address added to the settled space, by an [`Incremental`] evaluator that
/// evaluated it before (its statuses written back, as the broker and the API server do), against
/// a whole evaluation of the same input, in this process: the fastest and the median of 5 each.
fn incremental(manifests: &[PathBuf]) -> serde_json::Value {
    let dirs: Vec<&Path> = manifests.iter().map(PathBuf::as_path).collect();
    let catalog = tests::catalog(&dirs).unwrap();
    let tenant = catalog.tenants("default").remove(0);
    let now = Time(Timestamp::now());
    let (mut added, mut whole) = (Vec::new(), Vec::new());
    for n in 0..5 {
        let mut evaluator = Incremental::new();
        let mut settled = tenant.clone();
        for _ in 0..2 {
            evaluator.evaluate(&settled.as_tenant(), &catalog.infra(), &Reports::new(), &now);
            settled.carry_statuses(evaluator.evaluation());
        }
        evaluator.evaluate(&settled.as_tenant(), &catalog.infra(), &Reports::new(), &now);
        let text = queue(&format!("added-{n}"));
        let document = enmasse_types::manifests::parse(&text).pop().unwrap().unwrap();
        let mut one = enmasse_types::catalog::Catalog::default();
        one.add(document.manifest);
        settled.addresses.push(one.addresses.remove(0));

        let start = Instant::now();
        evaluator.evaluate(&settled.as_tenant(), &catalog.infra(), &Reports::new(), &now);
        added.push(start.elapsed());
        assert_eq!(evaluator.evaluated(), 1, "only the added address is evaluated");
        let start = Instant::now();
        let again = evaluate(&settled.as_tenant(), &catalog.infra(), &Reports::new(), &now);
        whole.push(start.elapsed());
        assert_eq!(evaluator.evaluation(), &again, "the same verdict");
    }
    added.sort();
    whole.sort();
    json!({
        "one_added_incremental_fastest_ms": ms(added[0]),
        "one_added_incremental_median_ms": ms(added[2]),
        "one_added_whole_fastest_ms": ms(whole[0]),
        "one_added_whole_median_ms": ms(whole[2]),
    })
}

/// `enmasse validate` on `manifests`: the fastest and the median of 5 runs of the process.
fn validate(enmasse: &Path, manifests: &[PathBuf]) -> serde_json::Value {
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            let status = Command::new(enmasse)
                .arg("validate")
                .args(manifests)
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "the bench's manifests validate");
            start.elapsed()
        })
        .collect();
    times.sort();
    json!({"fastest_ms": ms(times[0]), "median_ms": ms(times[2])})
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// A broker serving `manifests`; killed when dropped.
struct Broker {
    child: Child,
    amqp: SocketAddr,
    management: SocketAddr,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    /// Starts the broker and returns it once `/readyz` answers 200, with how long that took.
    fn start(binary: &Path, manifests: &[PathBuf], watch: &str, data: &Path) -> (Self, Duration) {
        let _ = std::fs::remove_dir_all(data);
        let (amqp, management) = (free_port(), free_port());
        let manifests: Vec<String> = manifests.iter().map(|p| p.display().to_string()).collect();
        let start = Instant::now();
        let child = Command::new(binary)
            .args(["--manifests", &manifests.join(",")])
            .args(["--manifests-watch", watch])
            .args(["--listen", &amqp.to_string()])
            .args(["--listen-tls", &free_port().to_string()])
            .args(["--listen-wss", &free_port().to_string()])
            .args(["--management", &management.to_string()])
            .arg("--data-dir")
            .arg(data)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let broker = Self {
            child,
            amqp,
            management,
        };
        while !broker.ready() {
            assert!(start.elapsed() < Duration::from_secs(60), "the broker got ready");
            std::thread::sleep(Duration::from_millis(2));
        }
        (broker, start.elapsed())
    }

    fn ready(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = TcpStream::connect(self.management) else {
            return false;
        };
        let _ = stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: broker\r\nConnection: close\r\n\r\n");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.1 200")
    }
}

/// An AMQP session on the broker, to see when an address is served.
struct Probe {
    connection: ConnectionHandle<()>,
    session: SessionHandle<()>,
    attached: usize,
}

/// Attaches tried on one session before the next: each refused one may hold a link handle until
/// its detach is done, and a session has 1,024.
const ATTACHES_PER_SESSION: usize = 500;

impl Probe {
    async fn open(broker: &Broker) -> Self {
        // Without Nagle's delay, a refused attach is answered in well under a millisecond.
        let stream = tokio::net::TcpStream::connect(broker.amqp).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut connection = Connection::builder()
            .container_id("gitops-bench")
            .hostname("localhost")
            .open_with_stream(stream)
            .await
            .unwrap();
        let session = Session::begin(&mut connection).await.unwrap();
        Self {
            connection,
            session,
            attached: 0,
        }
    }

    /// Waits until a sender can attach to `address`; how long that took from `since`.
    async fn served(&mut self, address: &str, since: Instant) -> Duration {
        loop {
            self.attached += 1;
            let name = format!("probe-{}", self.attached);
            if let Ok(sender) = Sender::attach(&mut self.session, name, address).await {
                let took = since.elapsed();
                let _ = sender.close().await;
                return took;
            }
            assert!(since.elapsed() < Duration::from_secs(30), "{address} was served");
            if self.attached.is_multiple_of(ATTACHES_PER_SESSION) {
                let _ = self.session.end().await;
                self.session = Session::begin(&mut self.connection).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Saves `text` to `path` as an editor does: a new file, renamed over the old one.
fn save(path: &Path, text: &str) {
    let temporary = path.with_extension("yaml.swp");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    ms(sorted[at])
}

/// The large space: ready after start, and an address added in a new file, 5 times.
async fn large(args: &Args, manifests: &[PathBuf], watch: &str) -> serde_json::Value {
    let (broker, ready) = Broker::start(
        &args.broker,
        manifests,
        watch,
        &args.dir.join(format!("data-large-{watch}")),
    );
    let mut probe = Probe::open(&broker).await;
    let mut added = Vec::new();
    for n in 0..5 {
        let file = manifests[1].join(format!("added-{n}.yaml"));
        let name = format!("added-{watch}-{n}");
        let saved = Instant::now();
        save(&file, &queue(&name));
        added.push(probe.served(&name, saved).await);
    }
    added.sort();
    for n in 0..5 {
        let _ = std::fs::remove_file(manifests[1].join(format!("added-{n}.yaml")));
    }
    json!({"ready_ms": ms(ready), "added_median_ms": percentile(&added, 0.5), "added_max_ms": ms(added[4])})
}

/// The small space: `edits` saves, each served.
async fn small(args: &Args, manifests: &[PathBuf], watch: &str) -> serde_json::Value {
    let (broker, _) = Broker::start(
        &args.broker,
        manifests,
        watch,
        &args.dir.join(format!("data-small-{watch}")),
    );
    let mut probe = Probe::open(&broker).await;
    let file = manifests[1].join("edited.yaml");
    let mut served = Vec::new();
    for n in 0..args.edits {
        let name = format!("edit-{watch}-{n}");
        // Apart, as a person's saves are: each change is noticed on its own.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let saved = Instant::now();
        save(&file, &queue(&name));
        served.push(probe.served(&name, saved).await);
    }
    let _ = std::fs::remove_file(&file);
    served.sort();
    json!({
        "edits": served.len(),
        "p50_ms": percentile(&served, 0.5),
        "p99_ms": percentile(&served, 0.99),
        "max_ms": ms(served[served.len() - 1]),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let large_manifests = fixture(&args.dir.join("large"), args.addresses);
    let small_manifests = fixture(&args.dir.join("small"), 10);
    let mut report = json!({
        "addresses": args.addresses,
        "evaluation": evaluation(&large_manifests),
        "incremental": incremental(&large_manifests),
        "validate": validate(&args.enmasse, &large_manifests),
    });
    for watch in ["notify", "poll"] {
        report[watch] = json!({
            "large": large(&args, &large_manifests, watch).await,
            "small": small(&args, &small_manifests, watch).await,
        });
    }
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}
