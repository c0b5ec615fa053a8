//! What an application embeds to talk to EnMasse, and the `enmasse` command-line tool.
//!
//! In a pod, three lines connect the way the post's Java application does:
//!
//! ```no_run
//! # async fn app() -> Result<(), Box<dyn std::error::Error>> {
//! use enmasse_client::{Connection, Message, MessagingConfig};
//! let mut connection = Connection::open(&MessagingConfig::from_env()?).await?;
//! let outcome = connection.sender("orders").await?.send(Message::text("order 1")).await?;
//! # Ok(()) }
//! ```
//!
//! - [`config`]: where the endpoint is and how to log in, from the environment, an export or a URL;
//! - [`connection`]: TLS, SASL (SCRAM-SHA-256, PLAIN, service-account token) and a session;
//! - [`link`]: senders that learn each message's outcome, receivers that settle each delivery;
//! - [`reconnect`]: a sender and a receiver that outlive broker restarts, handing back what was
//!   not confirmed;
//! - [`request`]: request and response over two addresses (orders in, confirmations out);
//! - `resources` (feature `kubernetes`, on by default): apply AddressSpaces, Addresses and
//!   MessagingUsers, wait until they are ready, read a space's export;
//! - [`management`]: reading a broker's management API (`enmasse status`);
//! - [`validate`]: the offline pre-merge check behind `enmasse validate`;
//! - [`bench`]: the load generator behind `enmasse bench`;
//! - [`transport`]: write coalescing for AMQP connections, which the broker uses too.

pub mod bench;
pub mod config;
pub mod connection;
pub mod link;
pub mod management;
pub mod reconnect;
pub mod request;
#[cfg(feature = "kubernetes")]
pub mod resources;
pub mod transport;
pub mod validate;

pub use config::{ConfigError, Credentials, MessagingConfig};
pub use connection::{ClientError, Connection};
pub use link::{Delivery, Message, Outcome, Receiver, Sender};
pub use reconnect::{Backoff, ReconnectingReceiver, ReconnectingSender, Sent};
pub use request::{Handled, Requester, Responder};
