//! `cargo xtask soak`: the release broker under a long, mixed, hostile load, killed with `kill -9`
//! every few minutes, on loopback.
//!
//! - Producers and consumers on every address type: a durable queue, a topic with a durable
//!   subscription and a slow receiver, anycast and multicast; connection churn; a consumer that
//!   vanishes with messages unsettled, every few seconds.
//! - A backlog: with nobody consuming, `--backlog` messages build up on a queue under
//!   `addressFullPolicy: PAGE`, durable, so that the page is their only copy until they come back,
//!   then are read back. Kills are held off meanwhile, so that its check is exact: every message
//!   once, in order.
//! - `kill -9` of the broker every `--kill-every` seconds; it starts again on the same data.
//!
//! At the end the producers stop, the broker is killed once more, and the consumers drain. It
//! passes when every durable message the broker accepted was delivered, the backlog came back
//! whole and in order, the broker's resident memory stayed within `globalMaxSize` plus
//! `--margin-mib`, and its log tells of no panic. It prints a JSON report.

mod broker;
mod load;

use std::{
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;

use broker::{Launch, Observed};
use load::{Consume, Produce, Stream};

/// The soak's settings, from its flags.
#[derive(Debug)]
struct Args {
    broker: PathBuf,
    minutes: u64,
    backlog: u64,
    kill_every: u64,
    global_max_size_mib: u64,
    margin_mib: u64,
    dir: PathBuf,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        broker: PathBuf::from("target/release/enmasse-broker"),
        minutes: 10,
        backlog: 5_000_000,
        kill_every: 120,
        global_max_size_mib: 64,
        margin_mib: 96,
        dir: std::env::temp_dir().join(format!("enmasse-soak-{}", std::process::id())),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |text: String| text.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--broker" => args.broker = value()?.into(),
            "--minutes" => args.minutes = number(value()?)?,
            "--backlog" => args.backlog = number(value()?)?,
            "--kill-every" => args.kill_every = number(value()?)?,
            "--global-max-size-mib" => args.global_max_size_mib = number(value()?)?,
            "--margin-mib" => args.margin_mib = number(value()?)?,
            "--dir" => args.dir = value()?.into(),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// The manifests: the example plans, an infra config that pages within `global` MiB, and a space
/// with an address of every type.
fn write_manifests(dir: &std::path::Path, global_mib: u64) -> std::io::Result<Vec<PathBuf>> {
    let infra = dir.join("infra");
    let team = dir.join("team");
    std::fs::create_dir_all(&infra)?;
    std::fs::create_dir_all(&team)?;
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/gitops/infra");
    for file in ["standard-plans.yaml", "authentication-services.yaml"] {
        std::fs::copy(examples.join(file), infra.join(file))?;
    }
    std::fs::write(
        infra.join("infra-config.yaml"),
        format!(
            "apiVersion: admin.enmasse.io/v1beta1
kind: StandardInfraConfig
metadata: {{name: default-minimal}}
spec:
  broker:
    resources: {{memory: 512Mi}}
    addressFullPolicy: PAGE
    globalMaxSize: {global_mib}Mi
"
        ),
    )?;
    let address = |name: &str, type_: &str, plan: &str, extra: &str| {
        format!(
            "---\napiVersion: enmasse.io/v1beta1\nkind: Address\nmetadata: {{name: soak.{name}}}\nspec: {{address: {name}, type: {type_}, plan: {plan}{extra}}}\n"
        )
    };
    let mut space = String::from(
        "apiVersion: enmasse.io/v1beta1
kind: AddressSpace
metadata: {name: soak}
spec: {type: standard, plan: standard-small, authenticationService: {name: none-authservice}}
",
    );
    space += &address("orders", "queue", "standard-small-queue", "");
    space += &address("backlog", "queue", "standard-small-queue", "");
    space += &address("events", "topic", "standard-small-topic", "");
    space += &address(
        "audit",
        "subscription",
        "standard-small-subscription",
        ", topic: events",
    );
    space += &address("requests", "anycast", "standard-small-anycast", "");
    space += &address("news", "multicast", "standard-small-multicast", "");
    std::fs::write(team.join("soak.yaml"), space)?;
    Ok(vec![infra, team])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(err) => {
            eprintln!("soak: {err}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let args = args()?;
    let _ = std::fs::remove_dir_all(&args.dir);
    let manifests = write_manifests(&args.dir, args.global_max_size_mib)?;
    let launch = Launch {
        binary: args.broker.clone(),
        manifests,
        data_dir: args.dir.join("data"),
        amqp: free_port()?,
        management: free_port()?,
        log: args.dir.join("broker.log"),
    };
    let url = format!("amqp://{}", launch.amqp);
    let observed = Arc::new(Observed::default());
    // No kill while the backlog builds and drains: its check is exact.
    observed.hold.store(true, Ordering::Relaxed);
    let restart = Arc::new(tokio::sync::Notify::new());
    let stop_broker = CancellationToken::new();
    let supervisor = tokio::spawn(broker::supervise(
        launch.clone(),
        Duration::from_secs(args.kill_every),
        observed.clone(),
        restart.clone(),
        stop_broker.clone(),
    ));
    let started = Instant::now();

    let producers = CancellationToken::new();
    let consumers = CancellationToken::new();
    let orders = Arc::new(Stream::default());
    let audit = Arc::new(Stream::default());
    let requests = Arc::new(Stream::default());
    let news = Arc::new(Stream::default());
    let slow = Arc::new(Stream::default());
    let churned = Arc::new(AtomicU64::new(0));
    let produce = |address: &str, durable: bool, rate: u64| Produce {
        url: url.clone(),
        address: address.to_owned(),
        durable,
        rate: Some(rate),
        size: 200,
        limit: None,
        window: 100,
    };
    let consume = |address: &str, pause: Option<Duration>| Consume {
        url: url.clone(),
        address: address.to_owned(),
        credit: 200,
        pause,
    };
    let mut steady = tokio::task::JoinSet::new();
    for (how, stream) in [
        (produce("orders", true, 1_000), orders.clone()),
        (produce("events", true, 500), audit.clone()),
        (produce("requests", false, 300), requests.clone()),
        (produce("news", false, 300), news.clone()),
    ] {
        steady.spawn(load::produce(how, stream, producers.clone()));
    }
    for (how, stream) in [
        (consume("orders", None), orders.clone()),
        (consume("audit", None), audit.clone()),
        (consume("requests", None), requests.clone()),
        (consume("news", None), news.clone()),
        (consume("events", Some(Duration::from_millis(20))), slow.clone()),
    ] {
        steady.spawn(load::consume(how, stream, consumers.clone()));
    }
    steady.spawn(load::vanish(
        url.clone(),
        "orders".into(),
        50,
        Duration::from_secs(5),
        consumers.clone(),
    ));
    steady.spawn(load::churn(
        url.clone(),
        "orders".into(),
        20,
        churned.clone(),
        producers.clone(),
    ));

    // The backlog: built with nobody consuming, then read back.
    let backlog = Arc::new(Stream::default());
    let backlog_built = Instant::now();
    load::produce(
        Produce {
            rate: None,
            size: 64,
            limit: Some(args.backlog),
            window: 500,
            ..produce("backlog", true, 1)
        },
        backlog.clone(),
        CancellationToken::new(),
    )
    .await;
    let built_in = backlog_built.elapsed();
    let peak_while_built = observed.peak_rss.load(Ordering::Relaxed);
    eprintln!("soak: {} backlog messages built in {built_in:?}", args.backlog);
    let drain = CancellationToken::new();
    let reader = tokio::spawn(load::consume(
        Consume {
            credit: 1_000,
            ..consume("backlog", None)
        },
        backlog.clone(),
        drain.clone(),
    ));
    let read_started = Instant::now();
    // Every message the broker accepted (a few past `--backlog`: the producer's window) comes back.
    let accepted = backlog.accepted_count.load(Ordering::Relaxed);
    wait_for(
        || backlog.received_count.load(Ordering::Relaxed) >= accepted,
        Duration::from_secs(1_800),
    )
    .await;
    let read_in = read_started.elapsed();
    drain.cancel();
    let _ = reader.await;
    observed.hold.store(false, Ordering::Relaxed);
    eprintln!("soak: the backlog read back in {read_in:?}; kills begin");

    let run_for = Duration::from_secs(args.minutes * 60);
    if let Some(left) = run_for.checked_sub(started.elapsed()) {
        tokio::time::sleep(left).await;
    }
    producers.cancel();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // One last kill: what was accepted must survive it.
    restart.notify_one();
    let drained = wait_for(
        || {
            orders.accepted.missing_from(&orders.received).is_empty()
                && audit.accepted.missing_from(&audit.received).is_empty()
        },
        Duration::from_secs(300),
    )
    .await;
    consumers.cancel();
    while steady.join_next().await.is_some() {}
    stop_broker.cancel();
    let _ = supervisor.await;

    let global = args.global_max_size_mib << 20;
    let peak = observed.peak_rss.load(Ordering::Relaxed);
    let missing_orders = orders.accepted.missing_from(&orders.received);
    let missing_audit = audit.accepted.missing_from(&audit.received);
    let backlog_whole = backlog.received.len() as u64 == backlog.accepted_count.load(Ordering::Relaxed)
        && backlog.accepted.missing_from(&backlog.received).is_empty();
    let panicked = broker::panicked(&launch.log);
    let rss_within = peak <= global + (args.margin_mib << 20);
    let count = |s: &Stream| {
        serde_json::json!({
            "accepted": s.accepted_count.load(Ordering::Relaxed),
            "received": s.received_count.load(Ordering::Relaxed),
        })
    };
    let report = serde_json::json!({
        "minutes": started.elapsed().as_secs_f64() / 60.0,
        "kills": observed.kills.load(Ordering::Relaxed),
        "peak_rss_mib": peak as f64 / (1 << 20) as f64,
        "peak_rss_while_the_backlog_built_mib": peak_while_built as f64 / (1 << 20) as f64,
        "global_max_size_mib": args.global_max_size_mib,
        "margin_mib": args.margin_mib,
        "backlog": {
            "messages": args.backlog,
            "accepted": backlog.accepted_count.load(Ordering::Relaxed),
            "received": backlog.received_count.load(Ordering::Relaxed),
            "out_of_order": backlog.out_of_order.load(Ordering::Relaxed),
            "out_of_order_seen": *backlog.out_of_order_seen.lock().unwrap_or_else(|p| p.into_inner()),
            "built_seconds": built_in.as_secs_f64(),
            "read_seconds": read_in.as_secs_f64(),
        },
        "durable_queue": count(&orders),
        "durable_subscription": count(&audit),
        "anycast": count(&requests),
        "multicast": count(&news),
        "slow_topic_receiver": {"received": slow.received_count.load(Ordering::Relaxed)},
        "connections_churned": churned.load(Ordering::Relaxed),
        "missing_durable": missing_orders.len() + missing_audit.len(),
        "drained": drained,
        "panicked": panicked,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    let passed = missing_orders.is_empty()
        && missing_audit.is_empty()
        && backlog_whole
        && backlog.out_of_order.load(Ordering::Relaxed) == 0
        && rss_within
        && !panicked;
    eprintln!(
        "soak: {} (durable messages missing: {}, backlog whole and in order: {}, peak RSS {} MiB within {} MiB: {rss_within}, panic: {panicked})",
        if passed { "passed" } else { "FAILED" },
        missing_orders.len() + missing_audit.len(),
        backlog_whole && backlog.out_of_order.load(Ordering::Relaxed) == 0,
        peak >> 20,
        (global >> 20) + args.margin_mib,
    );
    if passed {
        let _ = std::fs::remove_dir_all(&args.dir);
    }
    Ok(passed)
}

/// Waits until `done`, at most `limit`; whether it came.
async fn wait_for(done: impl Fn() -> bool, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while !done() {
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    true
}
