//! The soak's load: numbered messages sent and received over plain AMQP on loopback, each worker
//! connecting again whenever the broker goes away, until it is told to stop.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use fe2o3_amqp::{
    Connection, Receiver, Sendable, Sender, Session,
    connection::ConnectionHandle,
    link::CreditMode,
    session::SessionHandle,
    types::{
        messaging::{Data, Header, Message, Outcome, Source, message::Builder},
        primitives::Binary,
    },
};
use futures_util::{FutureExt, StreamExt, stream::FuturesUnordered};
use tokio_util::sync::CancellationToken;

use crate::broker::Seen;

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// How long a worker waits before it connects again.
const AGAIN: Duration = Duration::from_millis(250);

/// One stream of numbered messages: what the broker accepted and what came back.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    /// The next number to send.
    pub(crate) next: AtomicU64,
    /// Numbers the broker accepted.
    pub(crate) accepted: Seen,
    /// Numbers received.
    pub(crate) received: Seen,
    /// Accepted, counted.
    pub(crate) accepted_count: AtomicU64,
    /// Received, counted (duplicates included).
    pub(crate) received_count: AtomicU64,
    /// Received after a higher number, in one connection's order.
    pub(crate) out_of_order: AtomicU64,
    /// The first few of those: the number, and the higher one received before it.
    pub(crate) out_of_order_seen: std::sync::Mutex<Vec<(u64, u64)>>,
}

/// How a producer sends.
#[derive(Clone, Debug)]
pub(crate) struct Produce {
    /// The broker, `amqp://host:port`.
    pub(crate) url: String,
    /// Where to.
    pub(crate) address: String,
    /// Mark the messages durable.
    pub(crate) durable: bool,
    /// Messages per second; as fast as the window lets without.
    pub(crate) rate: Option<u64>,
    /// Body bytes (at least 8: the number).
    pub(crate) size: usize,
    /// Stop once this many were accepted.
    pub(crate) limit: Option<u64>,
    /// Outcomes awaited at once.
    pub(crate) window: usize,
}

/// Sends numbered messages as `how` says until `stop` or the limit, recording what is accepted.
pub(crate) async fn produce(how: Produce, stream: Arc<Stream>, stop: CancellationToken) {
    while !stop.is_cancelled() && !reached(&how, &stream) {
        if let Err(err) = produce_once(&how, &stream, &stop).await {
            note("producer", &how.address, &err);
            tokio::time::sleep(AGAIN).await;
        }
    }
}

fn reached(how: &Produce, stream: &Stream) -> bool {
    how.limit
        .is_some_and(|limit| stream.accepted_count.load(Ordering::Relaxed) >= limit)
}

async fn produce_once(how: &Produce, stream: &Stream, stop: &CancellationToken) -> Result<(), Failure> {
    let (mut connection, mut session) = connect(&how.url, &format!("soak-producer-{}", how.address)).await?;
    let mut sender = Sender::attach(&mut session, "soak-sender", how.address.as_str()).await?;
    let mut in_flight = FuturesUnordered::new();
    let interval = how
        .rate
        .map(|rate| Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    let mut due = tokio::time::Instant::now();
    let mut body = vec![0u8; how.size.max(8)];
    while !stop.is_cancelled() && !reached(how, stream) {
        if let Some(interval) = interval {
            due += interval;
            tokio::time::sleep_until(due).await;
        }
        let n = stream.next.fetch_add(1, Ordering::Relaxed);
        body[..8].copy_from_slice(&n.to_be_bytes());
        let message: Message<_> = Builder::new()
            .header(Header::builder().durable(how.durable).build())
            .data(Binary::from(body.clone()))
            .build();
        let delivery = sender
            .send_batchable(Sendable::builder().message(message).build())
            .await?;
        in_flight.push(delivery.map(move |outcome| (n, outcome)));
        while in_flight.len() >= how.window.max(1) {
            if let Some((n, outcome)) = in_flight.next().await {
                settled(stream, n, outcome?);
            }
        }
    }
    while let Some((n, outcome)) = in_flight.next().await {
        settled(stream, n, outcome?);
    }
    drop(in_flight);
    let _ = sender.close().await;
    let _ = session.end().await;
    let _ = connection.close().await;
    Ok(())
}

fn settled(stream: &Stream, n: u64, outcome: Outcome) {
    if matches!(outcome, Outcome::Accepted(_)) {
        stream.accepted.add(n);
        stream.accepted_count.fetch_add(1, Ordering::Relaxed);
    }
}

/// How a consumer receives.
#[derive(Clone, Debug)]
pub(crate) struct Consume {
    /// The broker, `amqp://host:port`.
    pub(crate) url: String,
    /// From where.
    pub(crate) address: String,
    /// Credit granted.
    pub(crate) credit: u32,
    /// A pause after each message: a slow consumer.
    pub(crate) pause: Option<Duration>,
}

/// Receives and accepts until `stop`, recording the numbers.
pub(crate) async fn consume(how: Consume, stream: Arc<Stream>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        if let Err(err) = consume_once(&how, &stream, &stop).await {
            note("consumer", &how.address, &err);
            tokio::time::sleep(AGAIN).await;
        }
    }
}

async fn consume_once(how: &Consume, stream: &Stream, stop: &CancellationToken) -> Result<(), Failure> {
    let (mut connection, mut session) = connect(&how.url, &format!("soak-consumer-{}", how.address)).await?;
    let mut receiver = Receiver::builder()
        .name("soak-receiver")
        .source(Source::builder().address(how.address.as_str()).build())
        .credit_mode(CreditMode::Manual)
        .attach(&mut session)
        .await?;
    let credit = how.credit.max(2);
    receiver.set_credit(credit).await?;
    let mut since_top_up = 0;
    let mut last = None;
    while !stop.is_cancelled() {
        let first = tokio::select! {
            () = stop.cancelled() => break,
            delivery = receiver.recv::<Data>() => delivery?,
        };
        let mut batch = vec![first];
        while batch.len() < 64 && how.pause.is_none() {
            match receiver.recv::<Data>().now_or_never() {
                Some(delivery) => batch.push(delivery?),
                None => break,
            }
        }
        let mut infos = Vec::with_capacity(batch.len());
        for delivery in batch {
            let (info, message) = delivery.into_parts();
            if let Some(n) = number(&message.body.0) {
                if let Some(last) = last.filter(|last| n < *last) {
                    stream.out_of_order.fetch_add(1, Ordering::Relaxed);
                    let mut seen = stream.out_of_order_seen.lock().unwrap_or_else(|p| p.into_inner());
                    if seen.len() < 10 {
                        seen.push((n, last));
                    }
                }
                last = Some(n);
                stream.received.add(n);
                stream.received_count.fetch_add(1, Ordering::Relaxed);
            }
            infos.push(info);
        }
        if let Some(pause) = how.pause {
            tokio::time::sleep(pause).await;
        }
        since_top_up += infos.len() as u32;
        receiver.accept_all(infos).await?;
        if since_top_up >= credit / 2 {
            receiver.set_credit(credit).await?;
            since_top_up = 0;
        }
    }
    let _ = receiver.close().await;
    let _ = session.end().await;
    let _ = connection.close().await;
    Ok(())
}

/// Every `every`, takes up to `count` messages from `address` without settling them and drops the
/// connection: the broker must give them to others.
pub(crate) async fn vanish(
    url: String,
    address: String,
    count: u32,
    every: Duration,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        let taken = async {
            let (connection, mut session) = connect(&url, "soak-vanishing").await?;
            let mut receiver = Receiver::builder()
                .name("soak-vanishing")
                .source(Source::builder().address(address.as_str()).build())
                .credit_mode(CreditMode::Manual)
                .attach(&mut session)
                .await?;
            receiver.set_credit(count).await?;
            for _ in 0..count {
                match tokio::time::timeout(Duration::from_secs(1), receiver.recv::<Data>()).await {
                    Ok(delivery) => drop(delivery?),
                    Err(_) => break,
                }
            }
            // Gone without a word: no settlement, no detach, no close.
            drop(receiver);
            drop(session);
            drop(connection);
            Ok::<(), Failure>(())
        };
        if let Err(err) = taken.await {
            note("vanishing consumer", &address, &err);
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Opens and closes connections with a sender on `address`, `per_second` a second, counting them.
pub(crate) async fn churn(
    url: String,
    address: String,
    per_second: u64,
    opened: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second.max(1) as f64));
    while !stop.is_cancelled() {
        tick.tick().await;
        let once = async {
            let (mut connection, mut session) = connect(&url, "soak-churn").await?;
            let sender = Sender::attach(&mut session, "soak-churn", address.as_str()).await?;
            let _ = sender.close().await;
            let _ = session.end().await;
            connection.close().await?;
            Ok::<(), Failure>(())
        };
        if once.await.is_ok() {
            opened.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn connect(url: &str, name: &str) -> Result<(ConnectionHandle<()>, SessionHandle<()>), Failure> {
    let mut connection = tokio::time::timeout(Duration::from_secs(5), Connection::open(name.to_owned(), url))
        .await
        .map_err(|_| "timed out connecting")??;
    let session = Session::begin(&mut connection).await?;
    Ok((connection, session))
}

fn number(body: &[u8]) -> Option<u64> {
    body.get(..8)?.try_into().ok().map(u64::from_be_bytes)
}

/// Failures are expected while the broker is down: only the first of a kind is worth a line.
fn note(what: &str, address: &str, err: &Failure) {
    static NOTED: AtomicU64 = AtomicU64::new(0);
    if NOTED.fetch_add(1, Ordering::Relaxed) < 20 {
        eprintln!("soak: {what} on {address}: {err} (connecting again)");
    }
}
