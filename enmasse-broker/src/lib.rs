//! The EnMasse AMQP 1.0 data plane.
//!
//! Listeners, connections, links, the address table with one engine per address type (queue, topic,
//! subscription, anycast, multicast), credit-based flow control, the message store and the management
//! API. It knows nothing of Kubernetes: it serves the broker configuration that `enmasse-types`
//! builds, whether the operator pushes it or the broker reads a directory of manifests itself.

pub mod address;
pub mod amqp;
pub mod broker;
pub mod connection;
pub mod deadletter;
pub mod engine;
pub mod exports;
pub mod housekeeping;
pub mod journal;
pub mod limits;
pub mod management;
pub mod message;
pub mod metrics;
pub mod recovery;
pub mod sasl;
pub mod selector;
pub mod server;
pub mod standalone;
pub mod store;
pub mod throttle;
pub mod transport;
pub mod websocket;

#[cfg(test)]
mod testing;
