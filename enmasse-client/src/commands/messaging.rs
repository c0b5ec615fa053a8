//! `enmasse send` and `enmasse receive`.

use std::time::Duration;

use anyhow::Context as _;
use enmasse_client::{Connection, Message, Outcome};
use serde_json::json;
use tokio::time::Instant;

use super::EndpointArgs;
use crate::Output;

/// `enmasse send`.
#[derive(Debug, clap::Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    endpoint: EndpointArgs,
    /// The address to send to.
    #[arg(long)]
    address: String,
    /// The body of every message (a string).
    #[arg(long)]
    body: String,
    /// How many messages to send.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Ask the broker to keep the messages across its restarts.
    #[arg(long)]
    durable: bool,
    /// Seconds the whole run may take, connecting included.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

/// `enmasse receive`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReceiveArgs {
    #[command(flatten)]
    endpoint: EndpointArgs,
    /// The address to receive from.
    #[arg(long)]
    address: String,
    /// How many messages to receive.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Seconds to wait for them all, connecting included.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// How to print the messages: one body per line, or one JSON document.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

/// Sends, and tells whether every message was accepted.
pub(crate) async fn send(args: SendArgs) -> anyhow::Result<bool> {
    let timeout = Duration::from_secs(args.timeout);
    let deadline = Instant::now() + timeout;
    let config = args.endpoint.config(timeout)?;
    let mut connection = Connection::open(&config).await?;
    let mut sender = connection.sender(&args.address).await?;
    let mut accepted = 0u64;
    let mut others: Vec<(u64, Outcome)> = Vec::new();
    for n in 1..=args.count {
        let message = Message::text(args.body.clone())
            .durable(args.durable)
            .message_id(format!("enmasse-send-{n}"));
        let outcome = tokio::time::timeout_at(deadline, sender.send(message))
            .await
            .with_context(|| {
                format!(
                    "timed out after {}s with {} of {} messages sent: the broker gave no credit or no outcome",
                    args.timeout,
                    n - 1,
                    args.count
                )
            })??;
        match outcome {
            Outcome::Accepted => accepted += 1,
            other => others.push((n, other)),
        }
    }
    let _ = sender.close().await;
    let _ = connection.close().await;
    match args.output {
        Output::Json => {
            let not_accepted: Vec<_> = others
                .iter()
                .map(|(n, outcome)| json!({"message": n, "outcome": outcome}))
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "address": args.address,
                    "sent": args.count,
                    "accepted": accepted,
                    "notAccepted": not_accepted,
                }))?
            );
        }
        Output::Text => {
            for (n, outcome) in &others {
                println!("message {n}: {}", describe(outcome));
            }
            println!("sent {} to {}: {accepted} accepted", args.count, args.address);
        }
    }
    Ok(others.is_empty())
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Accepted => "accepted".to_owned(),
        Outcome::Rejected { reason } => format!("rejected: {reason}"),
        Outcome::Released => "released: the broker did not take it; it may be sent again".to_owned(),
        Outcome::Modified { .. } => "modified: the broker did not take it".to_owned(),
    }
}

/// Receives, printing each body, and tells whether all `count` arrived in time.
pub(crate) async fn receive(args: ReceiveArgs) -> anyhow::Result<bool> {
    let timeout = Duration::from_secs(args.timeout);
    let deadline = Instant::now() + timeout;
    let config = args.endpoint.config(timeout)?;
    let mut connection = Connection::open(&config).await?;
    let credit = u32::try_from(args.count.min(500)).unwrap_or(500);
    let mut receiver = connection.receiver(&args.address, credit).await?;
    let mut received = Vec::new();
    while (received.len() as u64) < args.count {
        let Ok(delivery) = tokio::time::timeout_at(deadline, receiver.recv()).await else {
            break;
        };
        let delivery = delivery?;
        let body = delivery
            .text()
            .or_else(|| delivery.bytes().map(|b| String::from_utf8_lossy(&b).into_owned()))
            .unwrap_or_default();
        receiver.accept(&delivery).await?;
        if args.output == Output::Text {
            println!("{body}");
        }
        received.push(json!({
            "body": body,
            "messageId": delivery.message_id(),
            "deliveryCount": delivery.delivery_count(),
        }));
    }
    let _ = receiver.close().await;
    let _ = connection.close().await;
    let complete = received.len() as u64 == args.count;
    if args.output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"address": args.address, "messages": received}))?
        );
    }
    if !complete {
        eprintln!(
            "received {} of {} messages from {} within {}s",
            received.len(),
            args.count,
            args.address,
            args.timeout
        );
    }
    Ok(complete)
}
