//! What an application embeds to talk to EnMasse, and the `enmasse` command-line tool.
//!
//! Connection settings from the environment or an endpoint export, connections with TLS and SASL,
//! senders and receivers, and a typed client for the EnMasse resources arrive with the client
//! milestone. What exists now:
//!
//! - [`bench`]: the load generator behind `enmasse bench`;
//! - [`transport`]: write coalescing for AMQP connections, which the broker uses too.

pub mod bench;
pub mod transport;
