//! Links: a client's sender delivers into an address ([`inbound`]), a client's receiver takes from
//! one ([`outbound`]).

pub mod inbound;
pub mod outbound;

use std::time::Duration;

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
