//! Repository automation, run as `cargo xtask <task>`.
//!
//! - `codegen [--check]`: writes the CRDs under `deploy/crds/`; with `--check`, fails when a
//!   checked-in file differs from what the types generate.
//! - `test`: everything CI runs: the generated files, clippy, and every test of the workspace.
//! - `bench [ROUNDS]`: our broker next to the Qpid Proton C example broker, under `enmasse bench`.
//! - `bench --arrow ARROW [ROUNDS]`: the same comparison driven by quiver's C arrow (a load
//!   generator on Qpid Proton's C library), and the broker's memory per queued message and per idle
//!   connection.
//! - `bench-journal [ROUNDS]`: durable against non-durable messages and RabbitMQ, and recovery.
//! - `bench-gitops [ADDRESSES]`: a manifest edit served, and a space of 10,000 addresses.
//! - `dist`: the release bundle (install manifests, defaults, examples, checksums) under `dist/`.
//! - `soak [FLAGS]`: the release broker under a long mixed load with `kill -9`s, checked at the end.

mod bench;
mod bench_arrow;
mod bench_gitops;
mod bench_journal;
mod codegen;
mod dist;
mod exec;
mod peers;
mod soak;
mod test;

use std::path::PathBuf;

use anyhow::{Context, bail};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  codegen [--check]   write deploy/crds/ from the Rust types (--check: fail if stale)
  test                run everything CI runs: generated files, clippy, all tests
  bench [ROUNDS]      compare the broker with the Qpid Proton C example broker (default 3 rounds)
  bench --arrow ARROW [ROUNDS]
                      the same, driven by quiver's C arrow at path ARROW (default 3 rounds), then
                      the broker's memory per queued message and per idle connection
  bench-journal [ROUNDS]
                      durable messages against non-durable ones and RabbitMQ, then recovery
                      (0 rounds: recovery only)
  bench-gitops [ADDRESSES]
                      a manifest edit served by the standalone broker (100 edits), and a space
                      of ADDRESSES queues (default 10000): evaluation, validate, start, an added
                      address; watching with notifications and, side by side, polling
  dist                build the release bundle dist/enmasse-<version>.tar.gz
  soak [FLAGS]        the release broker under mixed load, kill -9 every few minutes, and a paged
                      backlog; checks nothing accepted is lost and memory stays bounded (flags:
                      --minutes 10 --backlog 5000000 --kill-every 120 --global-max-size-mib 64
                      --margin-mib 96 --dir DIR)";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    match task.as_deref() {
        Some("codegen") => {
            let check = match rest.as_slice() {
                [] => false,
                [flag] if flag == "--check" => true,
                _ => bail!("{USAGE}"),
            };
            codegen::run(&project_root()?, codegen::Mode::from_check(check))
        }
        Some("test") if rest.is_empty() => test::run(&project_root()?),
        Some("dist") if rest.is_empty() => dist::run(&project_root()?),
        Some("bench") => match rest.as_slice() {
            [flag, arrow, rounds_arg @ ..] if flag == "--arrow" => {
                bench_arrow::run(&project_root()?, std::path::Path::new(arrow), rounds(rounds_arg)?)
            }
            _ => bench::run(&project_root()?, rounds(&rest)?),
        },
        Some("bench-journal") => bench_journal::run(&project_root()?, rounds(&rest)?),
        Some("bench-gitops") => {
            let addresses = match rest.as_slice() {
                [] => 10_000,
                [n] => n
                    .parse()
                    .with_context(|| format!("ADDRESSES must be a number, not {n:?}"))?,
                _ => bail!("{USAGE}"),
            };
            bench_gitops::run(&project_root()?, addresses, 100)
        }
        Some("soak") => soak::run(&project_root()?, &rest),
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}`\n\n{USAGE}"),
    }
}

/// The optional ROUNDS argument of the bench tasks.
fn rounds(rest: &[String]) -> anyhow::Result<usize> {
    match rest {
        [] => Ok(3),
        [n] => n
            .parse()
            .with_context(|| format!("ROUNDS must be a number, not {n:?}")),
        _ => bail!("{USAGE}"),
    }
}

/// The workspace root: the parent of this crate's manifest directory.
fn project_root() -> anyhow::Result<PathBuf> {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .context("xtask has no parent directory")
}
