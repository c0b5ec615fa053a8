//! Links: a client's sender delivers into an address ([`inbound`]), a client's receiver takes from
//! one ([`outbound`]).

pub mod inbound;
pub mod outbound;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use fe2o3_amqp::types::definitions::{AmqpError, Error as AmqpErrorValue};

use crate::broker::Grant;

/// Why a link stopped.
pub(crate) enum Exit {
    /// The broker is shutting down (the connection closes).
    Shutdown,
    /// The link's address was removed.
    Removed,
    /// The link's user lost the right it was attached with.
    Revoked,
    /// The peer detached, or the connection went away.
    Peer,
}

/// The endpoints of links that ended with their session still open, kept until every link of the
/// session has ended.
///
/// Dropping an endpoint queues a detach for the session engine. If the peer's connection is
/// closing, fe2o3-amqp's session engine may pick that detach before the frames it has already
/// received, fail to send it, and stop without applying them: a client's last dispositions would
/// be lost, and the messages it accepted delivered again. Kept here, endpoints are dropped only
/// once the session has taken in what the peer sent.
#[derive(Clone, Default)]
pub struct Kept(Arc<Mutex<Vec<Box<dyn Send>>>>);

impl Kept {
    /// Keeps `endpoint` until the session's links have all ended.
    pub fn keep(&self, endpoint: impl Send + 'static) {
        if let Ok(mut kept) = self.0.lock() {
            kept.push(Box::new(endpoint));
        }
    }
}

/// How long a link close may wait for the peer's answer.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The error a link is detached with when its address is removed.
pub(crate) fn removed_error(address: &str) -> AmqpErrorValue {
    AmqpErrorValue::new(
        AmqpError::NotFound,
        format!("address {address:?} was removed from the address space"),
        None,
    )
}

/// The error a link is detached with when its user loses the right it was attached with.
pub(crate) fn revoked_error(grant: &Grant, action: &str, address: &str) -> AmqpErrorValue {
    AmqpErrorValue::new(
        AmqpError::UnauthorizedAccess,
        format!(
            "user {:?} may no longer {action} address {address:?}",
            grant.username()
        ),
        None,
    )
}
