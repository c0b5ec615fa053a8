//! `cargo xtask test`: everything CI runs, in the order that fails fastest.
//!
//! 1. the generated files are fresh (no build of the workspace needed beyond the types);
//! 2. the release bundle builds (`cargo xtask dist`);
//! 3. the interop peers (Qpid Proton, rhea) are installed if missing;
//! 4. clippy denies warnings on every target;
//! 5. every test of the workspace runs, and the counts of all test binaries are added up into one
//!    closing line, `N passed, N failed, N skipped`.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context, bail};

use crate::{codegen, exec::cargo, peers};

/// Runs every check; the first failure stops the run.
pub(crate) fn run(root: &Path) -> anyhow::Result<()> {
    step("generated files are fresh");
    codegen::run(root, codegen::Mode::Check)?;

    step("release bundle");
    crate::dist::run(root)?;

    step("interop peers");
    peers::install(root)?;

    step("clippy");
    cargo(
        root,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ],
    )?;

    step("tests");
    let totals = cargo_test(root)?;
    println!(
        "{} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    if totals.failed > 0 {
        bail!("{} tests failed", totals.failed);
    }
    if totals.passed == 0 {
        bail!("no test ran");
    }

    step("soak, short");
    crate::soak::short(root)
}

/// Test counts added up over every test binary.
#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Totals {
    /// Adds the counts of one `test result: ok. 3 passed; 0 failed; 1 ignored; ...` line.
    fn add_line(&mut self, line: &str) {
        let Some(counts) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in counts.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(number)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(number) = number.parse::<u64>() else {
                continue;
            };
            match label {
                "passed" => self.passed += number,
                "failed" => self.failed += number,
                "ignored" => self.ignored += number,
                _ => {}
            }
        }
    }
}

/// Runs `cargo test`, passing its output through while counting the results.
fn cargo_test(root: &Path) -> anyhow::Result<Totals> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(&cargo)
        .args(["test", "--workspace", "--locked"])
        .current_dir(root)
        .stdout(Stdio::piped())
        .spawn()
        .context("failed to start cargo test")?;
    let mut totals = Totals::default();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.context("failed to read the output of cargo test")?;
            println!("{line}");
            totals.add_line(&line);
        }
    }
    let status = child.wait().context("failed to wait for cargo test")?;
    if !status.success() && totals.failed == 0 {
        bail!("cargo test failed ({status})");
    }
    Ok(totals)
}

fn step(name: &str) {
    eprintln!("==> {name}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_of_every_binary_are_added_up() {
        let mut totals = Totals::default();
        totals.add_line(
            "test result: ok. 70 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.73s",
        );
        totals.add_line("test result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out");
        totals.add_line("running 3 tests");
        assert_eq!(
            totals,
            Totals {
                passed: 73,
                failed: 1,
                ignored: 2
            }
        );
    }
}
