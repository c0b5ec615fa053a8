//! `enmasse bench`.

use std::{
    io::Write as _,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::Context;
use enmasse_client::bench::{self, Progress};

use crate::Output;

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// The broker, as amqp://[user:password@]host:port.
    #[arg(long, env = "ENMASSE_URL", default_value = "amqp://127.0.0.1:5672")]
    url: String,
    /// The address to send to and receive from (a queue).
    #[arg(long, default_value = "orders")]
    address: String,
    /// Messages to send in all.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Body size in bytes (at least 8).
    #[arg(long, default_value_t = 16)]
    size: usize,
    /// Producer connections.
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Consumer connections; 0 only fills the address (the rate is then of accepted sends).
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Unsettled messages each producer keeps in flight.
    #[arg(long, default_value_t = 1000)]
    window: usize,
    /// Credit each consumer grants.
    #[arg(long, default_value_t = 1000)]
    credit: u32,
    /// Send pre-settled (at-most-once).
    #[arg(long)]
    presettled: bool,
    /// Mark the messages durable: a broker with a journal accepts each only once it is on disk.
    #[arg(long)]
    durable: bool,
    /// Messages per second to send in all (default: as fast as the broker takes them).
    #[arg(long)]
    rate: Option<u64>,
    /// For amqps:// URLs: the CA certificate (PEM) to trust, such as an export's ca.crt.
    #[arg(long, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Threads the load generator runs on. One leaves the rest of the machine to the broker when
    /// both share it, and takes producers and consumers in turn, so neither runs ahead of the other.
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
}

pub(crate) async fn bench(args: BenchArgs) -> anyhow::Result<bool> {
    let consumers = args.consumers;
    let options = bench::Options {
        url: args.url,
        address: args.address,
        count: args.count,
        size: args.size,
        producers: args.producers,
        consumers: args.consumers,
        window: args.window,
        credit: args.credit,
        presettled: args.presettled,
        durable: args.durable,
        rate: args.rate,
        ca: args.ca,
    };
    let progress = Arc::new(Progress::default());
    let reporter = tokio::spawn(report_progress(progress.clone(), options.count));
    let report = bench::run(options, progress).await;
    reporter.abort();
    eprint!("\r\x1b[K");
    let report = report.context("the benchmark failed")?;
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Text if consumers == 0 => println!(
            "{} messages accepted in {:.2} s: {:.0} msg/s{}",
            report.accepted,
            report.seconds,
            report.rate,
            refusals(report.refused),
        ),
        Output::Text => println!(
            "{} messages in {:.2} s: {:.0} msg/s, latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms{}",
            report.received,
            report.seconds,
            report.rate,
            report.latency_p50_ms,
            report.latency_p99_ms,
            report.latency_max_ms,
            refusals(report.refused),
        ),
    }
    Ok(true)
}

fn refusals(refused: u64) -> String {
    match refused {
        0 => String::new(),
        _ => format!(", {refused} refused by the broker"),
    }
}

/// Prints a progress line on stderr every second while the run lasts.
async fn report_progress(progress: Arc<Progress>, count: u64) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let received = progress.received.load(Ordering::Relaxed);
        eprint!(
            "\r\x1b[Ksent {} received {received} of {count}",
            progress.sent.load(Ordering::Relaxed)
        );
        let _ = std::io::stderr().flush();
    }
}
