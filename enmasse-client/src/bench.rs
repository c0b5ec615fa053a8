//! `enmasse bench`: a load generator for any AMQP 1.0 broker.
//!
//! Consumers attach first; then producers send `count` messages of `size` bytes between them, each
//! keeping up to `window` unsettled messages in flight (at-least-once), or sending them pre-settled
//! (at-most-once). Every message carries the time it was sent, so consumers measure end-to-end
//! latency. The report gives the rate at which messages were received and the latency
//! percentiles. Without consumers, producers only fill the address: the rate is that of the
//! sends the broker accepted.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use fe2o3_amqp::{
    Receiver, Sendable, Sender, Session,
    connection::ConnectionHandle,
    link::CreditMode,
    session::SessionHandle,
    types::{
        messaging::{Data, Header, Message, Outcome, Source, Target, TerminusDurability, message::Builder},
        primitives::Binary,
    },
};
use futures_util::{FutureExt, StreamExt, stream::FuturesUnordered};
use tokio::sync::Notify;

use crate::{config::MessagingConfig, connection::open_handle};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The broker, as `amqp://[user:password@]host:port`.
    pub url: String,
    /// The address to send to and receive from.
    pub address: String,
    /// Messages to send in all.
    pub count: u64,
    /// Body size in bytes (at least 8: the send time).
    pub size: usize,
    /// Producer connections.
    pub producers: usize,
    /// Consumer connections; none to only fill the address.
    pub consumers: usize,
    /// Unsettled messages a producer keeps in flight.
    pub window: usize,
    /// Credit a consumer grants.
    pub credit: u32,
    /// Send pre-settled (at-most-once) instead of waiting for each outcome.
    pub presettled: bool,
    /// Mark the messages durable.
    pub durable: bool,
    /// Messages per second to send, across all producers; as fast as possible when absent.
    pub rate: Option<u64>,
    /// For `amqps://` URLs: the CA certificate (PEM) to trust.
    pub ca: Option<std::path::PathBuf>,
}

/// What a run measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// Messages the broker accepted.
    pub accepted: u64,
    /// Messages received.
    pub received: u64,
    /// Messages the broker did not accept.
    pub refused: u64,
    /// From the first send to the last receive.
    pub seconds: f64,
    /// Messages received per second; without consumers, messages accepted per second.
    pub rate: f64,
    /// Median end-to-end latency, in milliseconds.
    pub latency_p50_ms: f64,
    /// 99th percentile end-to-end latency, in milliseconds.
    pub latency_p99_ms: f64,
    /// Largest end-to-end latency, in milliseconds.
    pub latency_max_ms: f64,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A producer or consumer could not connect or attach.
    #[error("failed to set up a {role}")]
    Setup {
        /// `producer` or `consumer`.
        role: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A link failed during the run.
    #[error("a {role} failed during the run")]
    Run {
        /// `producer` or `consumer`.
        role: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The options cannot describe a run.
    #[error("invalid options: {0}")]
    Options(String),
}

fn setup(role: &'static str) -> impl Fn(Box<dyn std::error::Error + Send + Sync>) -> BenchError {
    move |source| BenchError::Setup { role, source }
}

fn failed(role: &'static str) -> impl Fn(Box<dyn std::error::Error + Send + Sync>) -> BenchError {
    move |source| BenchError::Run { role, source }
}

/// Progress of a run, for a progress line.
#[derive(Debug, Default)]
pub struct Progress {
    /// Messages sent and settled so far.
    pub sent: AtomicU64,
    /// Messages received so far.
    pub received: AtomicU64,
}

/// Runs a benchmark; `progress` is updated as it goes.
pub async fn run(options: Options, progress: Arc<Progress>) -> Result<Report, BenchError> {
    if options.size < 8 || options.producers == 0 || options.count == 0 {
        return Err(BenchError::Options(
            "size must be at least 8, and count and producers at least 1".into(),
        ));
    }
    let epoch = Instant::now();
    let done = Arc::new(Notify::new());
    let mut consumers = Vec::new();
    for i in 0..options.consumers {
        let receiver = attach_consumer(&options, i).await?;
        consumers.push(tokio::spawn(consume(
            receiver,
            options.count,
            options.credit,
            epoch,
            progress.clone(),
            done.clone(),
        )));
    }
    let per_producer = options.count / options.producers as u64;
    let mut producers = Vec::new();
    let start = Instant::now();
    for i in 0..options.producers {
        let extra = u64::from(i == 0) * (options.count % options.producers as u64);
        let sender = attach_producer(&options, i).await?;
        producers.push(tokio::spawn(produce(
            sender,
            per_producer + extra,
            options.clone(),
            epoch,
            progress.clone(),
        )));
    }
    let mut refused = 0;
    for producer in producers {
        refused += producer.await.map_err(|e| failed("producer")(Box::new(e)))??;
    }
    let accepted = options.count - refused;
    let mut latencies = Vec::with_capacity(options.count as usize);
    // Without consumers the run ends when the last send is settled; with them, at the last receive.
    let mut last = match options.consumers {
        0 => Instant::now(),
        _ => start,
    };
    for consumer in consumers {
        let (mut mine, finished) = consumer.await.map_err(|e| failed("consumer")(Box::new(e)))??;
        latencies.append(&mut mine);
        last = last.max(finished);
    }
    latencies.sort_unstable();
    let seconds = last.duration_since(start).as_secs_f64();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index] as f64 / 1e6
    };
    let counted = match options.consumers {
        0 => accepted,
        _ => latencies.len() as u64,
    };
    Ok(Report {
        accepted,
        received: latencies.len() as u64,
        refused,
        seconds,
        rate: counted as f64 / seconds.max(1e-9),
        latency_p50_ms: percentile(0.50),
        latency_p99_ms: percentile(0.99),
        latency_max_ms: latencies.last().map_or(0.0, |l| *l as f64 / 1e6),
    })
}

/// Opens a connection to the URL, trusting `ca` for `amqps://`.
async fn connect(
    url: &str,
    ca: Option<&std::path::Path>,
    container_id: String,
) -> Result<ConnectionHandle<()>, Box<dyn std::error::Error + Send + Sync>> {
    let mut config = MessagingConfig::from_url(url)?.container_id(container_id);
    if let Some(ca) = ca {
        config = config.tls_ca_file(ca)?;
    }
    Ok(open_handle(&config).await?)
}

/// Durable messages ask for a durable node too: a broker that creates queues on attach (RabbitMQ's
/// `/queue/NAME`) keeps persistent messages on disk only in a durable queue.
fn terminus_durability(options: &Options) -> TerminusDurability {
    match options.durable {
        true => TerminusDurability::Configuration,
        false => TerminusDurability::None,
    }
}

async fn attach_producer(options: &Options, i: usize) -> Result<Link<Sender>, BenchError> {
    let mut connection = connect(&options.url, options.ca.as_deref(), format!("bench-producer-{i}"))
        .await
        .map_err(setup("producer"))?;
    let mut session = Session::begin(&mut connection)
        .await
        .map_err(|e| setup("producer")(Box::new(e)))?;
    let sender = Sender::builder()
        .name(format!("bench-sender-{i}"))
        .target(
            Target::builder()
                .address(options.address.as_str())
                .durable(terminus_durability(options))
                .build(),
        )
        .attach(&mut session)
        .await
        .map_err(|e| setup("producer")(Box::new(e)))?;
    Ok(Link {
        connection,
        session,
        link: sender,
    })
}

async fn attach_consumer(options: &Options, i: usize) -> Result<Link<Receiver>, BenchError> {
    let mut connection = connect(&options.url, options.ca.as_deref(), format!("bench-consumer-{i}"))
        .await
        .map_err(setup("consumer"))?;
    let mut session = Session::begin(&mut connection)
        .await
        .map_err(|e| setup("consumer")(Box::new(e)))?;
    let receiver = Receiver::builder()
        .name(format!("bench-receiver-{i}"))
        .source(
            Source::builder()
                .address(options.address.as_str())
                .durable(terminus_durability(options))
                .build(),
        )
        .credit_mode(CreditMode::Manual)
        .attach(&mut session)
        .await
        .map_err(|e| setup("consumer")(Box::new(e)))?;
    Ok(Link {
        connection,
        session,
        link: receiver,
    })
}

async fn produce(
    mut link: Link<Sender>,
    count: u64,
    options: Options,
    epoch: Instant,
    progress: Arc<Progress>,
) -> Result<u64, BenchError> {
    let sender = &mut link.link;
    let mut in_flight = FuturesUnordered::new();
    let mut refused = 0;
    let mut body = vec![0u8; options.size];
    // Each producer sends its share of the rate on a fixed schedule: messages that fell due while
    // it was held up go out at once.
    let interval = options
        .rate
        .map(|rate| Duration::from_secs_f64(options.producers as f64 / rate.max(1) as f64));
    let started = Instant::now();
    for i in 0..count {
        if let Some(interval) = interval {
            let due = started + interval.mul_f64(i as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        let sent_at = epoch.elapsed().as_nanos() as u64;
        body[..8].copy_from_slice(&sent_at.to_be_bytes());
        let message: Message<_> = Builder::new()
            .header(Header::builder().durable(options.durable).build())
            .data(Binary::from(body.clone()))
            .build();
        let sendable = Sendable::builder()
            .message(message)
            .settled(options.presettled)
            .build();
        let delivery = sender
            .send_batchable(sendable)
            .await
            .map_err(|e| failed("producer")(Box::new(e)))?;
        in_flight.push(delivery);
        while in_flight.len() >= options.window.max(1) {
            refused += settle(in_flight.next().await, &progress)?;
        }
    }
    while let Some(outcome) = in_flight.next().await {
        refused += settle(Some(outcome), &progress)?;
    }
    drop(in_flight);
    link.close().await;
    Ok(refused)
}

fn settle(
    outcome: Option<Result<Outcome, fe2o3_amqp::link::SendError>>,
    progress: &Progress,
) -> Result<u64, BenchError> {
    match outcome {
        Some(Ok(Outcome::Accepted(_))) => {
            progress.sent.fetch_add(1, Ordering::Relaxed);
            Ok(0)
        }
        Some(Ok(_)) => Ok(1),
        Some(Err(e)) => Err(failed("producer")(Box::new(e))),
        None => Ok(0),
    }
}

async fn consume(
    mut link: Link<Receiver>,
    total: u64,
    credit: u32,
    epoch: Instant,
    progress: Arc<Progress>,
    done: Arc<Notify>,
) -> Result<(Vec<u64>, Instant), BenchError> {
    let receiver = &mut link.link;
    // Credit is topped up by hand: fe2o3's automatic credit counts a batch settlement as one
    // delivery and would let the credit run dry.
    let credit = credit.max(2);
    receiver
        .set_credit(credit)
        .await
        .map_err(|e| failed("consumer")(Box::new(e)))?;
    let mut since_top_up = 0;
    let mut latencies = Vec::new();
    'run: while progress.received.load(Ordering::Relaxed) < total {
        let first = tokio::select! {
            delivery = receiver.recv::<Data>() => delivery,
            () = done.notified() => break,
        };
        // Take what has already arrived too, and settle it all with one disposition.
        let mut batch = vec![first];
        while batch.len() < 64 {
            match receiver.recv::<Data>().now_or_never() {
                Some(delivery) => batch.push(delivery),
                None => break,
            }
        }
        let now = epoch.elapsed().as_nanos() as u64;
        let mut infos = Vec::with_capacity(batch.len());
        for delivery in batch {
            let delivery = delivery.map_err(|e| failed("consumer")(Box::new(e)))?;
            let (info, message) = delivery.into_parts();
            let body = &message.body.0;
            if body.len() >= 8 {
                let mut sent = [0u8; 8];
                sent.copy_from_slice(&body[..8]);
                latencies.push(now.saturating_sub(u64::from_be_bytes(sent)));
            }
            infos.push(info);
        }
        let received = infos.len() as u64;
        receiver
            .accept_all(infos)
            .await
            .map_err(|e| failed("consumer")(Box::new(e)))?;
        since_top_up += received as u32;
        if since_top_up >= credit / 2 {
            receiver
                .set_credit(credit)
                .await
                .map_err(|e| failed("consumer")(Box::new(e)))?;
            since_top_up = 0;
        }
        if progress.received.fetch_add(received, Ordering::Relaxed) + received >= total {
            done.notify_waiters();
            break 'run;
        }
    }
    let finished = Instant::now();
    link.close().await;
    Ok((latencies, finished))
}

/// A link with the connection and session it lives on.
struct Link<L> {
    connection: ConnectionHandle<()>,
    session: SessionHandle<()>,
    link: L,
}

impl<L: Close> Link<L> {
    /// Closes the link, its session and its connection, waiting at most two seconds in all.
    async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async move {
            self.link.close().await;
            let _ = self.session.end().await;
            let _ = self.connection.close().await;
        })
        .await;
    }
}

/// Links that can be closed.
trait Close {
    async fn close(self);
}

impl Close for Sender {
    async fn close(self) {
        let _ = Sender::close(self).await;
    }
}

impl Close for Receiver {
    async fn close(self) {
        let _ = Receiver::close(self).await;
    }
}
