//! `cargo xtask bench --arrow ARROW [ROUNDS]`: our broker and the Qpid Proton C example broker, side
//! by side in one run, driven by quiver's C arrow, a load generator on Qpid Proton's C library that
//! is far faster than either broker (it reaches about 620,000 msg/s peer to peer on a 2-core
//! machine). ARROW is the path of `quiver-arrow-qpid-proton-c` built from ssorj/quiver's
//! `impls/quiver-arrow-qpid-proton-c.c` with `gcc -O2 ... -lqpid-proton -lpthread`; the project
//! does not ship it.
//!
//! Each run starts a fresh broker, a receiving arrow, then a sending arrow (1p/1c, 16-byte bodies,
//! credit 1,000, at-least-once) and times the run from the sender's start to the receiver's last
//! message; latency is each message's receive time less its send time, as the arrow prints them.
//! After the rounds it measures our broker's memory: resident bytes per queued 16-byte message,
//! and per idle open connection.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::bench::{Running, build_release, proton_broker, start, wait_for};

const OURS: &str = "127.0.0.1:25711";
const PROTON: &str = "127.0.0.1:25712";

/// Messages per throughput run.
const COUNT: usize = 500_000;

/// Messages queued for the memory measurement.
const QUEUED: usize = 500_000;

/// Idle connections opened for the memory measurement.
const IDLE_CONNECTIONS: usize = 2_000;

/// Runs the comparison `rounds` times, then the memory measurements.
pub(crate) fn run(root: &Path, arrow: &Path, rounds: usize) -> anyhow::Result<()> {
    if !arrow.is_file() {
        bail!(
            "no arrow at {}: build quiver's C arrow and give its path",
            arrow.display()
        );
    }
    let release = build_release(root)?;
    let proton = proton_broker(root)?;
    let scratch = std::env::temp_dir().join("enmasse-xtask-bench-arrow");
    let manifests = format!(
        "{},{}",
        root.join("examples/gitops/infra").display(),
        root.join("tests/fixtures/bench").display()
    );
    let ours = || -> anyhow::Result<Running> {
        let _ = std::fs::remove_dir_all(&scratch);
        start(
            Command::new(release.join("enmasse-broker"))
                .args([
                    "--manifests",
                    &manifests,
                    "--listen",
                    OURS,
                    "--management",
                    "127.0.0.1:0",
                    "--data-dir",
                ])
                .arg(&scratch),
        )
    };
    for round in 1..=rounds {
        for (broker, addr) in [("enmasse-broker", OURS), ("Proton C broker.c", PROTON)] {
            let _server = if addr == OURS {
                ours()?
            } else {
                let (host, port) = PROTON.split_once(':').context("bad address")?;
                start(Command::new(&proton).args([host, port]))?
            };
            wait_for(addr)?;
            let result = match arrows(arrow, addr, "orders", COUNT) {
                Ok(result) => result,
                Err(err) => format!("failed: {err:#}"),
            };
            println!("round {round} | 1p/1c queue, 16 B, credit 1,000 | {broker} | {result}");
        }
    }

    let server = ours()?;
    wait_for(OURS)?;
    let pid = server.0.id();
    let before = rss(pid)?;
    send_only(arrow, OURS, "backlog", QUEUED)?;
    sleep(Duration::from_millis(500));
    let after = rss(pid)?;
    println!(
        "memory | {QUEUED} queued 16-byte messages | {} bytes each",
        after.saturating_sub(before) / QUEUED as u64
    );
    let before = rss(pid)?;
    let mut idle = Vec::with_capacity(IDLE_CONNECTIONS);
    for _ in 0..IDLE_CONNECTIONS {
        idle.push(open_idle(OURS)?);
    }
    sleep(Duration::from_millis(500));
    let after = rss(pid)?;
    println!(
        "memory | {IDLE_CONNECTIONS} idle open connections | {} bytes each",
        after.saturating_sub(before) / IDLE_CONNECTIONS as u64
    );
    drop(idle);
    Ok(())
}

/// The arguments every arrow takes.
fn arrow_args(addr: &str, path: &str, count: usize, operation: &str) -> anyhow::Result<Vec<String>> {
    let (host, port) = addr.split_once(':').context("bad address")?;
    Ok([
        "connection-mode=client".to_owned(),
        "channel-mode=active".to_owned(),
        format!("operation={operation}"),
        format!("id={operation}er"),
        "scheme=amqp".to_owned(),
        format!("host={host}"),
        format!("port={port}"),
        format!("path={path}"),
        "duration=0".to_owned(),
        format!("count={count}"),
        "body-size=16".to_owned(),
        "credit-window=1000".to_owned(),
        "durable=0".to_owned(),
        "set-message-id=0".to_owned(),
        "transaction-size=0".to_owned(),
    ]
    .into())
}

/// One 1p/1c run: the receiving arrow first, then the sender. Returns the result line.
fn arrows(arrow: &Path, addr: &str, path: &str, count: usize) -> anyhow::Result<String> {
    // The receiver prints a line per message: into a file, so that it never waits for a reader.
    let times = std::env::temp_dir().join("enmasse-xtask-bench-arrow-times.csv");
    let receiver = Command::new(arrow)
        .args(arrow_args(addr, path, count, "receive")?)
        .stdout(std::fs::File::create(&times).context("failed to create the receiver's output")?)
        .stderr(Stdio::null())
        .spawn()
        .context("failed to start the receiving arrow")?;
    let mut receiver = Running(receiver);
    sleep(Duration::from_millis(300));
    let started = Instant::now();
    let sent = Command::new(arrow)
        .args(arrow_args(addr, path, count, "send")?)
        .stdout(Stdio::null())
        .status()
        .context("failed to run the sending arrow")?;
    if !sent.success() {
        bail!("the sending arrow failed: {sent}");
    }
    let received = receiver
        .0
        .wait()
        .context("failed to wait for the receiving arrow")?;
    let elapsed = started.elapsed();
    if !received.success() {
        bail!("the receiving arrow failed: {received}");
    }
    let output = std::fs::read_to_string(&times).context("failed to read the receiver's output")?;
    let mut latencies: Vec<i64> = output
        .lines()
        .filter_map(|line| {
            let (sent, received) = line.split_once(',')?;
            Some(received.parse::<i64>().ok()? - sent.parse::<i64>().ok()?)
        })
        .collect();
    if latencies.len() != count {
        bail!("{} of {count} messages arrived", latencies.len());
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok(format!(
        "{:.0} msg/s | latency p50 {} ms, p99 {} ms",
        count as f64 / elapsed.as_secs_f64(),
        at(0.5),
        at(0.99)
    ))
}

/// Sends `count` messages with nobody receiving.
fn send_only(arrow: &Path, addr: &str, path: &str, count: usize) -> anyhow::Result<()> {
    let status = Command::new(arrow)
        .args(arrow_args(addr, path, count, "send")?)
        .stdout(Stdio::null())
        .status()
        .context("failed to run the sending arrow")?;
    match status.success() {
        true => Ok(()),
        false => bail!("the sending arrow failed: {status}"),
    }
}

/// Opens an AMQP connection without SASL (the bench space authenticates nobody) and leaves it idle.
fn open_idle(addr: &str) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).context("failed to connect")?;
    stream.write_all(b"AMQP\x00\x01\x00\x00")?;
    // An open frame: container-id "x", nothing else.
    stream.write_all(&[
        0, 0, 0, 17, 2, 0, 0, 0, 0x00, 0x53, 0x10, 0xc0, 0x04, 0x01, 0xa1, 0x01, b'x',
    ])?;
    let mut answer = [0u8; 8];
    stream
        .read_exact(&mut answer)
        .context("no protocol header back")?;
    Ok(stream)
}

/// A process's resident memory in bytes.
fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(PathBuf::from(format!("/proc/{pid}/status")))
        .context("failed to read the broker's memory")?;
    let kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("no VmRSS")?;
    Ok(kb * 1024)
}
