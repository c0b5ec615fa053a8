//! `cargo xtask bench`: our broker and the Qpid Proton C example broker, side by side in one run,
//! under the same load generator (`enmasse bench`).
//!
//! It builds the release binaries, compiles Proton's example broker from the source Debian ships
//! (`libqpid-proton11-dev-examples`, installed if missing), starts both on loopback, and runs the
//! same benchmarks against each in turn, alternating, so that both see the same machine.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::exec::{self, cargo};

const OURS: &str = "127.0.0.1:25701";
const PROTON: &str = "127.0.0.1:25702";

/// One benchmark: a name and the `enmasse bench` arguments after the URL.
const RUNS: &[(&str, &[&str])] = &[
    (
        "1p/1c queue, 16 B, as fast as possible",
        &["--count", "300000", "--size", "16"],
    ),
    (
        "1p/1c queue, 16 B, 100,000 msg/s",
        &["--count", "1000000", "--size", "16", "--rate", "100000"],
    ),
    (
        "1p/1c queue, 1 KiB, as fast as possible",
        &["--count", "100000", "--size", "1024"],
    ),
    (
        "4p/4c queue, 16 B, as fast as possible",
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
];

/// Kills a child process (`kill -9`) when dropped.
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Builds the broker and `enmasse` for release; returns the directory they are in.
pub(crate) fn build_release(root: &Path) -> anyhow::Result<PathBuf> {
    cargo(
        root,
        &[
            "build",
            "--release",
            "--locked",
            "-p",
            "enmasse-broker",
            "-p",
            "enmasse-client",
        ],
    )?;
    Ok(root.join("target").join("release"))
}

/// Runs `enmasse bench` against `url` with `args`; returns its result line, or why it failed.
pub(crate) fn enmasse_bench(
    release: &Path,
    url: &str,
    address: &str,
    args: &[&str],
) -> anyhow::Result<String> {
    let output = Command::new(release.join("enmasse"))
        .args(["bench", "--url", url, "--address", address])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .context("failed to run enmasse bench")?;
    let line = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Ok(match output.status.success() {
        true => line,
        false => format!("failed: {line}"),
    })
}

/// Runs the comparison `rounds` times and prints one line per run.
pub(crate) fn run(root: &Path, rounds: usize) -> anyhow::Result<()> {
    let release = build_release(root)?;
    let proton = proton_broker(root)?;
    let data = std::env::temp_dir().join("enmasse-xtask-bench");
    let fixture = format!(
        "{},{}",
        root.join("examples/gitops/infra").display(),
        root.join("tests/fixtures/interop").display()
    );

    for round in 1..=rounds {
        for (name, args) in RUNS {
            for (broker, addr) in [("enmasse-broker", OURS), ("Proton C broker.c", PROTON)] {
                // A fresh broker for every run, so that no run inherits another's backlog.
                let _server = if addr == OURS {
                    start(
                        Command::new(release.join("enmasse-broker"))
                            .args([
                                "--manifests",
                                &fixture,
                                "--listen",
                                OURS,
                                "--management",
                                "127.0.0.1:0",
                                "--data-dir",
                            ])
                            .arg(&data),
                    )?
                } else {
                    let (host, port) = PROTON.split_once(':').context("bad address")?;
                    start(Command::new(&proton).args([host, port]))?
                };
                wait_for(addr)?;
                let line = enmasse_bench(&release, &format!("amqp://{addr}"), "orders", args)?;
                println!("round {round} | {name} | {broker} | {line}");
            }
        }
    }
    Ok(())
}

/// Starts a process with its output discarded.
pub(crate) fn start(command: &mut Command) -> anyhow::Result<Running> {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("failed to start {command:?}"))?;
    Ok(Running(child))
}

/// Waits until something listens on `addr`.
pub(crate) fn wait_for(addr: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if TcpStream::connect(addr).is_ok() {
            // Give the broker a moment to apply its config after it listens.
            sleep(Duration::from_millis(300));
            return Ok(());
        }
        sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on {addr}")
}

/// Compiles Proton's example C broker (once) and returns its path.
pub(crate) fn proton_broker(root: &Path) -> anyhow::Result<PathBuf> {
    let source = Path::new("/usr/share/proton/examples/c/broker.c");
    if !source.is_file() || !Path::new("/usr/include/proton/proactor.h").is_file() {
        eprintln!("installing the Qpid Proton C examples and headers");
        exec::run(Command::new("apt-get").args(["update", "-qq"]))?;
        exec::run(
            Command::new("apt-get")
                .args([
                    "install",
                    "-y",
                    "-qq",
                    "libqpid-proton11-dev-examples",
                    "libqpid-proton11-dev",
                    "gcc",
                ])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    let out = root.join("target").join("proton-c-broker");
    if !out.is_file() {
        let dir = source.parent().context("no examples directory")?;
        exec::run(
            Command::new("gcc")
                .args(["-O2", "-I"])
                .arg(dir)
                .arg(source)
                .arg("-o")
                .arg(&out)
                .args(["-lqpid-proton", "-lpthread"]),
        )?;
    }
    Ok(out)
}
