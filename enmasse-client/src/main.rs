//! `enmasse`: the command-line tool for EnMasse messaging.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::commands::{bench, check, messaging};

// `enmasse bench` allocates a few small buffers per message; mimalloc keeps the load generator's
// own cost low, so that it measures the broker rather than itself.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// EnMasse messaging from the command line: send and receive, check manifests before they are
/// merged, see what a broker serves, and measure it.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sends messages and reports the broker's outcome for each.
    ///
    /// Examples:
    ///
    ///     enmasse send --url amqp://127.0.0.1:5672 --address q1 --count 5 --body hello
    ///     enmasse send --export data/exports/messaging-config.yaml --username developer \
    ///         --password developer --address orders --body 'order 1'
    ///
    /// Exits 1 unless every message was accepted.
    #[command(verbatim_doc_comment)]
    Send(messaging::SendArgs),
    /// Receives messages, prints each body on a line, and accepts them.
    ///
    /// Example:
    ///
    ///     enmasse receive --url amqp://127.0.0.1:5672 --address q1 --count 5
    ///
    /// Exits 1 if fewer than --count arrive within --timeout.
    #[command(verbatim_doc_comment)]
    Receive(messaging::ReceiveArgs),
    /// Checks a GitOps directory of manifests offline, with the operator's own rules.
    ///
    /// Prints, per file and line, what cannot be read (naming the field and its value), what the
    /// rules refuse (errors) and what waits for something the directories do not hold, such as a
    /// plan (warnings).
    ///
    /// Example, as a pre-merge check:
    ///
    ///     enmasse validate infra/ team1/
    ///
    /// Exits 1 on any error (and on warnings with --strict).
    #[command(verbatim_doc_comment)]
    Validate(check::ValidateArgs),
    /// Shows the address space a standalone broker serves, its addresses and users, with their
    /// phase and messages; with --cluster, the AddressSpaces, Addresses and MessagingUsers of a
    /// namespace, as the operator reported them.
    ///
    /// Examples:
    ///
    ///     enmasse status --management 127.0.0.1:8080
    ///     enmasse status --cluster --namespace team1
    ///
    /// Exits 1 unless everything is ready.
    #[command(verbatim_doc_comment)]
    Status(check::StatusArgs),
    /// Measures throughput and end-to-end latency of an AMQP 1.0 broker.
    ///
    /// Example:
    ///
    ///     enmasse bench --url amqp://127.0.0.1:5672 --address orders --count 100000
    #[command(verbatim_doc_comment)]
    Bench(bench::BenchArgs),
}

/// How a command prints its result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// Lines for people.
    #[default]
    Text,
    /// JSON for scripts.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Send(args) => commands::block_on(1, messaging::send(args)),
        Command::Receive(args) => commands::block_on(1, messaging::receive(args)),
        Command::Validate(args) => check::validate(args),
        Command::Status(args) => commands::block_on(1, check::status(args)),
        Command::Bench(args) => commands::block_on(args.threads, bench::bench(args)),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
