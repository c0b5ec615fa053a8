//! The AMQP clients the interop tests drive, installed by the project itself so that a fresh
//! machine needs nothing by hand: Qpid Proton for Python (Debian's `python3-qpid-proton`), Proton's
//! own example suite (Debian's `libqpid-proton11-dev-examples`) and rhea for Node.js with the `ws`
//! package for its WebSocket transport (npm, from `tests/interop/package-lock.json`, which also
//! brings kubernetes-models' schema validators); OpenShift's route types, the schema a rendered
//! Route is checked against (Debian's `golang-github-openshift-api-dev`); the Lua interpreter that runs the Argo CD health check
//! (Debian's `lua5.4`) and promtool, which checks the alert rules (Debian's `prometheus`). Each
//! step is skipped when its peer is already there.

use std::{path::Path, process::Command};

use crate::exec::run;

/// The Python that Debian's Proton binding is built for.
pub(crate) const PYTHON: &str = "/usr/bin/python3";

/// The Lua interpreter, as Debian names it.
pub(crate) const LUA: &str = "lua5.4";

/// Where Debian's `golang-github-openshift-api-dev` puts the Route API's Go types.
const OPENSHIFT_ROUTE_TYPES: &str = "/usr/share/gocode/src/github.com/openshift/api/route/v1/types.go";

/// Where Debian puts Proton's Python examples and their test suite.
const PROTON_EXAMPLES: &str = "/usr/share/proton/examples/python";

/// Installs whatever interop peer is missing.
pub(crate) fn install(root: &Path) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    if !succeeds(Command::new(PYTHON).args(["-c", "import proton"])) {
        missing.push("python3-qpid-proton");
    }
    if !Path::new(PROTON_EXAMPLES).join("test_examples.py").is_file() {
        missing.push("libqpid-proton11-dev-examples");
    }
    if !succeeds(Command::new(LUA).arg("-v")) {
        missing.push("lua5.4");
    }
    if !succeeds(Command::new("promtool").arg("--version")) {
        missing.push("prometheus");
    }
    if !Path::new(OPENSHIFT_ROUTE_TYPES).is_file() {
        missing.push("golang-github-openshift-api-dev");
    }
    if !missing.is_empty() {
        eprintln!("installing {}", missing.join(" "));
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    let interop = root.join("tests").join("interop");
    let modules = interop.join("node_modules");
    let packages = [
        "rhea",
        "ws",
        "kubernetes-models",
        "@kubernetes-models/prometheus-operator",
    ];
    if !packages
        .iter()
        .all(|package| modules.join(package).join("package.json").is_file())
    {
        eprintln!("installing {}", packages.join(" "));
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&interop))?;
    }
    Ok(())
}

fn succeeds(command: &mut Command) -> bool {
    command.output().is_ok_and(|output| output.status.success())
}
