//! `cargo xtask bench-journal`: what durability costs, and how fast a journal comes back.
//!
//! Throughput: the same `enmasse bench` runs against our broker with messages that are not
//! durable, with durable ones (each accepted only once its journal batch is synced), and with
//! durable ones against RabbitMQ (Debian's 3.10 with its AMQP 1.0 plugin, installed if missing),
//! whose persistent messages on a durable queue are confirmed once on disk. Every run gets a fresh
//! broker and data directory, and the rounds alternate, so that all see the same machine.
//!
//! Recovery: a broker journals a backlog of durable messages, is killed (`kill -9`), and is started
//! again on its data directory. Reported: the time from the start until it is ready (the messages
//! back in their queue), its own account of reading the journal, the messages it serves, and its
//! resident memory then, next to a broker that recovered a small backlog behind a long history
//! of consumed messages, and one that recovered the small backlog alone.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::{
    bench::{Running, build_release, enmasse_bench, start, wait_for},
    exec,
};

const OURS: &str = "127.0.0.1:25711";
const MANAGEMENT: &str = "127.0.0.1:25712";
const RABBITMQ: &str = "127.0.0.1:25713";

/// The throughput runs: a name and the `enmasse bench` arguments after the URL and address.
const RUNS: &[(&str, &[&str])] = &[
    (
        "1p/1c queue, 16 B, as fast as possible (200,000 messages)",
        &["--count", "200000", "--size", "16"],
    ),
    (
        "4p/4c queue, 16 B, as fast as possible (400,000 messages)",
        &[
            "--count",
            "400000",
            "--size",
            "16",
            "--producers",
            "4",
            "--consumers",
            "4",
        ],
    ),
    (
        "1p/1c queue, 16 B, at 20,000 msg/s (200,000 messages)",
        &["--count", "200000", "--size", "16", "--rate", "20000"],
    ),
];

/// Runs the throughput comparison `rounds` times (none with 0), then the recovery runs.
pub(crate) fn run(root: &Path, rounds: usize) -> anyhow::Result<()> {
    let release = build_release(root)?;
    install_rabbitmq()?;
    // RabbitMQ starts Erlang's port mapper if none runs, and leaves it behind.
    let epmd_was_running = succeeds(Command::new("epmd").arg("-names"));
    let scratch = std::env::temp_dir().join("enmasse-xtask-bench-journal");
    let manifests = format!(
        "{},{}",
        root.join("examples/gitops/infra").display(),
        root.join("tests/fixtures/bench").display()
    );
    let ours = Ours {
        release: &release,
        manifests: &manifests,
    };

    for round in 1..=rounds {
        for (name, args) in RUNS {
            let durable_args: Vec<&str> = args.iter().copied().chain(["--durable"]).collect();
            for (broker, durable) in [
                ("enmasse-broker, not durable", false),
                ("enmasse-broker, durable", true),
                ("RabbitMQ 3.10, durable", true),
            ] {
                let data = fresh(&scratch.join("run"))?;
                let line = if broker.starts_with("RabbitMQ") {
                    let _server = rabbitmq(&data)?;
                    enmasse_bench(
                        &release,
                        &format!("amqp://{RABBITMQ}"),
                        "/queue/bench",
                        &durable_args,
                    )?
                } else {
                    let _server = ours.start(&data, Stdio::null())?;
                    let args = if durable { &durable_args[..] } else { args };
                    enmasse_bench(&release, &format!("amqp://{OURS}"), "orders", args)?
                };
                println!("round {round} | {name} | {broker} | {line}");
            }
        }
    }

    if rounds > 0 && !epmd_was_running {
        let _ = succeeds(Command::new("epmd").arg("-kill"));
    }

    for (name, backlog, history) in [
        ("1,000,000 waiting", 1_000_000, 0),
        ("100,000 waiting behind 1,000,000 consumed", 100_000, 1_000_000),
        ("100,000 waiting", 100_000, 0),
    ] {
        let data = fresh(&scratch.join("recovery"))?;
        recovery(&ours, &data, name, backlog, history)?;
    }
    Ok(())
}

/// Our broker, serving the bench fixture.
struct Ours<'a> {
    release: &'a Path,
    manifests: &'a str,
}

impl Ours<'_> {
    /// Starts the broker on `data` and waits until it is ready; its log goes to `log`.
    fn start(&self, data: &Path, log: impl Into<Stdio>) -> anyhow::Result<Running> {
        let child = Command::new(self.release.join("enmasse-broker"))
            .args(["--manifests", self.manifests, "--listen", OURS])
            .args(["--management", MANAGEMENT, "--listen-tls", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("failed to start enmasse-broker")?;
        let running = Running(child);
        wait_ready(Duration::from_secs(120))?;
        Ok(running)
    }
}

/// Fills `backlog` (and consumes `history` messages on `orders` first), kills the broker, starts it
/// again on the same journal, and prints what its recovery took.
fn recovery(ours: &Ours<'_>, data: &Path, name: &str, backlog: u64, history: u64) -> anyhow::Result<()> {
    let serving = {
        let broker = ours.start(data, Stdio::null())?;
        let url = format!("amqp://{OURS}");
        if history > 0 {
            let count = history.to_string();
            let line = enmasse_bench(ours.release, &url, "orders", &["--count", &count, "--durable"])?;
            println!("recovery | {name} | history, consumed on orders | {line}");
        }
        let count = backlog.to_string();
        let fill = ["--count", &count, "--durable", "--consumers", "0"];
        let line = enmasse_bench(ours.release, &url, "backlog", &fill)?;
        let serving = resident_kib(broker.0.id())?;
        println!(
            "recovery | {name} | backlog filled | {line}, resident {:.0} MiB",
            serving as f64 / 1024.0
        );
        serving
    }; // kill -9
    let journal = directory_size(&data.join("journal"))?;

    let log_path = data.join("recovery.log");
    let log = std::fs::File::create(&log_path).context("failed to create the recovery log")?;
    let started = Instant::now();
    let broker = ours.start(data, log)?;
    let ready = started.elapsed();
    let rss = resident_kib(broker.0.id())?;
    let status = http_get(MANAGEMENT, "/status")?;
    let depth = depth_of(&status, "backlog")?;
    let log = std::fs::read_to_string(&log_path).context("failed to read the recovery log")?;
    // "... INFO enmasse_broker::recovery: recovered the journal messages=... millis=..."
    let reported = log
        .lines()
        .find_map(|line| line.split_once("recovered the journal"))
        .map_or("no recovery line in the log", |(_, fields)| fields.trim());
    let reclaimed = directory_size(&data.join("journal"))?;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "recovery | {name} | restarted | ready after {:.2} s, backlog depth {depth}, resident {:.0} MiB ({:+.0}% of the broker it replaces), journal {:.0} MiB on disk ({:.0} MiB once reclaimed) | {reported}",
        ready.as_secs_f64(),
        rss as f64 / 1024.0,
        (rss as f64 / serving as f64 - 1.0) * 100.0,
        mib(journal),
        mib(reclaimed),
    );
    if depth != backlog {
        bail!("the recovered broker serves {depth} messages in backlog, not {backlog}");
    }
    Ok(())
}

fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// An empty directory at `path`.
fn fresh(path: &Path) -> anyhow::Result<PathBuf> {
    let _ = std::fs::remove_dir_all(path);
    std::fs::create_dir_all(path).with_context(|| format!("failed to create {}", path.display()))?;
    Ok(path.to_path_buf())
}

/// Waits until the broker's management API says it is ready.
fn wait_ready(timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if http_get(MANAGEMENT, "/readyz").is_ok() {
            return Ok(());
        }
        sleep(Duration::from_millis(20));
    }
    bail!("the broker was not ready within {timeout:?}")
}

/// The body of a `GET` that answers 200.
fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET {path}: {}", head.lines().next().unwrap_or_default());
    }
    Ok(body.to_owned())
}

/// The depth `GET /status` gives `address`.
fn depth_of(status: &str, address: &str) -> anyhow::Result<u64> {
    let status: serde_json::Value = serde_json::from_str(status).context("GET /status is not JSON")?;
    status["addresses"]
        .as_array()
        .and_then(|addresses| addresses.iter().find(|a| a["address"] == address))
        .and_then(|a| a["depth"].as_u64())
        .with_context(|| format!("GET /status gives no depth for {address}"))
}

/// A process's resident memory, in KiB.
fn resident_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/PID/status")
}

fn directory_size(dir: &Path) -> anyhow::Result<u64> {
    let mut size = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("failed to read {}", dir.display()))? {
        size += entry?.metadata()?.len();
    }
    Ok(size)
}

/// Installs RabbitMQ and its AMQP 1.0 plugin if missing.
fn install_rabbitmq() -> anyhow::Result<()> {
    if Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server").is_file() {
        return Ok(());
    }
    eprintln!("installing rabbitmq-server");
    // The package starts the server where it can; keep that from listening beyond loopback.
    std::fs::create_dir_all("/etc/rabbitmq")?;
    std::fs::write(
        "/etc/rabbitmq/rabbitmq-env.conf",
        "NODE_IP_ADDRESS=127.0.0.1\nERL_EPMD_ADDRESS=127.0.0.1\n",
    )?;
    exec::run(Command::new("apt-get").args(["update", "-qq"]))?;
    exec::run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "rabbitmq-server"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// A RabbitMQ node of its own, on loopback, its store in `dir`, with the AMQP 1.0 plugin.
struct RabbitMq {
    env: Vec<(&'static str, String)>,
    _server: Running,
}

fn rabbitmq(dir: &Path) -> anyhow::Result<RabbitMq> {
    let (host, port) = RABBITMQ.split_once(':').context("bad address")?;
    let config = dir.join("rabbitmq.conf");
    std::fs::write(
        &config,
        format!("listeners.tcp.default = {RABBITMQ}\nloopback_users = none\n"),
    )?;
    let plugins = dir.join("enabled_plugins");
    std::fs::write(&plugins, "[rabbitmq_amqp1_0].\n")?;
    let env = vec![
        ("RABBITMQ_NODENAME", "enmasse-bench@localhost".to_owned()),
        ("RABBITMQ_NODE_IP_ADDRESS", host.to_owned()),
        ("RABBITMQ_NODE_PORT", port.to_owned()),
        ("RABBITMQ_DIST_PORT", "25714".to_owned()),
        ("ERL_EPMD_ADDRESS", "127.0.0.1".to_owned()),
        ("RABBITMQ_CONFIG_FILE", config.display().to_string()),
        ("RABBITMQ_ENABLED_PLUGINS_FILE", plugins.display().to_string()),
        ("RABBITMQ_MNESIA_BASE", dir.join("mnesia").display().to_string()),
        ("RABBITMQ_LOG_BASE", dir.join("log").display().to_string()),
    ];
    let server = start(Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server").envs(env.iter().cloned()))?;
    wait_for(RABBITMQ)?;
    Ok(RabbitMq { env, _server: server })
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        // The node runs beside the script that started it: stop it by name.
        let _ = Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl")
            .args(["-n", "enmasse-bench@localhost", "stop"])
            .envs(self.env.iter().cloned())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
