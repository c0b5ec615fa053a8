//! `cargo xtask soak [FLAGS]`: builds the release broker and the soak driver (`tests/src/bin/soak`),
//! and runs the soak on loopback. The flags go to the driver: `--minutes` (10), `--backlog`
//! (5,000,000), `--kill-every` seconds (120), `--global-max-size-mib` (64), `--margin-mib` (96),
//! `--dir`. It fails when the soak does.

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
