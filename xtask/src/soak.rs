//! `cargo xtask soak [FLAGS]`: builds the release broker and the soak driver (`tests/src/bin/soak`),
//! and runs the soak on loopback. The flags go to the driver: `--minutes` (10), `--backlog`
//! (5,000,000), `--kill-every` seconds (120), `--global-max-size-mib` (64), `--margin-mib` (96),
//! `--dir`. It fails when the soak does. `cargo xtask test` runs a short one ([`short`]).

use std::{path::Path, process::Command};

use crate::exec::{self, cargo};

/// Builds both binaries in release and runs the driver against the broker.
pub(crate) fn run(root: &Path, flags: &[String]) -> anyhow::Result<()> {
    let release = crate::bench::build_release(root)?;
    cargo(
        root,
        &["build", "--release", "--locked", "-p", "tests", "--bin", "soak"],
    )?;
    exec::run(
        Command::new(release.join("soak"))
            .arg("--broker")
            .arg(release.join("enmasse-broker"))
            .args(flags)
            .current_dir(root),
    )
}

/// The soak CI runs: a minute, a backlog of 100,000 messages and a kill every 20 seconds, on the
/// debug binaries the tests already built.
pub(crate) fn short(root: &Path) -> anyhow::Result<()> {
    cargo(
        root,
        &[
            "build",
            "--locked",
            "-p",
            "enmasse-broker",
            "-p",
            "tests",
            "--bin",
            "enmasse-broker",
            "--bin",
            "soak",
        ],
    )?;
    let debug = root.join("target/debug");
    exec::run(
        Command::new(debug.join("soak"))
            .arg("--broker")
            .arg(debug.join("enmasse-broker"))
            .args(["--minutes", "1", "--backlog", "100000", "--kill-every", "20"])
            .current_dir(root),
    )
}
