//! Running commands from tasks: the command fails the task unless it succeeds.

use std::{path::Path, process::Command};

use anyhow::{Context, bail};

/// Runs a command to completion; an unsuccessful exit is an error naming the command.
pub(crate) fn run(command: &mut Command) -> anyhow::Result<()> {
    let description = format!("{command:?}");
    let status = command
        .status()
        .with_context(|| format!("failed to start {description}"))?;
    if !status.success() {
        bail!("{description} failed ({status})");
    }
    Ok(())
}

/// Runs the cargo that runs this task, in the workspace root.
pub(crate) fn cargo(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo).args(args).current_dir(root))
}
