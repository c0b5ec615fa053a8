//! The AMQP clients the interop tests drive, installed by the project itself so that a fresh
//! machine needs nothing by hand: Qpid Proton for Python (Debian's `python3-qpid-proton`) and rhea
//! for Node.js (npm, from `tests/interop/package-lock.json`). Each step is skipped when its peer is
//! already there.

use std::{path::Path, process::Command};

use crate::exec::run;

/// The Python that Debian's Proton binding is built for.
pub(crate) const PYTHON: &str = "/usr/bin/python3";

/// Installs whatever interop peer is missing.
pub(crate) fn install(root: &Path) -> anyhow::Result<()> {
    if !succeeds(Command::new(PYTHON).args(["-c", "import proton"])) {
        eprintln!("installing python3-qpid-proton");
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "python3-qpid-proton"])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    let interop = root.join("tests").join("interop");
    if !interop
        .join("node_modules")
        .join("rhea")
        .join("package.json")
        .is_file()
    {
        eprintln!("installing rhea");
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&interop))?;
    }
    Ok(())
}

fn succeeds(command: &mut Command) -> bool {
    command.output().is_ok_and(|output| output.status.success())
}
