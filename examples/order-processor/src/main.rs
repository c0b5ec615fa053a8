//! The application of the post "GitOps and EnMasse", in Rust: it takes each order from `orders`
//! and sends a confirmation to `confirmations`, as the post's vertx application does.
//!
//! It connects the way the post's Deployment wires it: `MESSAGING_HOST` and `MESSAGING_PORT` from
//! the space's exported ConfigMap, and the pod's service-account token and CA. Outside a cluster,
//! `MESSAGING_CA_FILE` (or `MESSAGING_TLS=false`) and `MESSAGING_USERNAME`/`MESSAGING_PASSWORD`
//! stand in for them (see README.md). A confirmation carries its order's message id as its
//! correlation id, and an order is accepted only once its confirmation is: after a broker restart
//! an order may be confirmed twice, never lost.

use enmasse_client::{Backoff, Handled, Message, MessagingConfig, Responder};
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = MessagingConfig::from_env()?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut orders = Responder::open(config, "orders", "confirmations", Backoff::default()).await?;
    eprintln!("confirming orders");
    loop {
        let order = tokio::select! {
            order = orders.next() => order?,
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        };
        // Processing an order is the application's business; this one confirms them all.
        let id = order.message_id().unwrap_or_else(|| "without an id".to_owned());
        match orders.reply(&order, Ok(Message::text("Confirmed!"))).await? {
            Handled::Replied => println!("confirmed order {id}"),
            Handled::Rejected { reason } => eprintln!("order {id} rejected: {reason}"),
            Handled::Again { reason } => eprintln!("order {id} comes again: {reason}"),
        }
    }
    orders.close().await?;
    Ok(())
}
