//! `cargo xtask bench-gitops`: how fast the standalone broker serves a manifest edit, and how a
//! space of 10,000 addresses fares (the pure functions, `enmasse validate`, the broker's start and
//! an added address), watching with the file system's notifications and, side by side in the same
//! run, reading every file every 200 ms as every reload did before. The measuring is done by
//! `tests/src/bin/gitops_bench.rs`, on the release binaries; its JSON report is printed. Then the
//! operator's side: its reconcile of such a space, settled and with one address added, against the
//! fake API server (an ignored test of `enmasse-controller`, run in release).

use std::path::Path;

use crate::{bench::build_release, exec};

/// Builds the release binaries and runs the benchmark.
pub(crate) fn run(root: &Path, addresses: usize, edits: usize) -> anyhow::Result<()> {
    let release = build_release(root)?;
    exec::cargo(
        root,
        &[
            "build",
            "--release",
            "--locked",
            "-p",
            "tests",
            "--bin",
            "gitops-bench",
        ],
    )?;
    exec::run(
        std::process::Command::new(release.join("gitops-bench"))
            .arg("--broker")
            .arg(release.join("enmasse-broker"))
            .arg("--enmasse")
            .arg(release.join("enmasse"))
            .args([
                "--addresses",
                &addresses.to_string(),
                "--edits",
                &edits.to_string(),
            ])
            .current_dir(root),
    )?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    exec::run(
        std::process::Command::new(cargo)
            .args([
                "test",
                "--release",
                "--locked",
                "-p",
                "enmasse-controller",
                "--lib",
            ])
            // One at a time: on two cores one's bring-up would slow the other's timed passes.
            .args([
                "space::tests::bench",
                "--",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("ENMASSE_BENCH_ADDRESSES", addresses.to_string())
            .current_dir(root),
    )
}
