//! What deleting an Address does to the messages it holds, per [`DeletePolicy`].
//!
//! Under `delete` (EnMasse's behaviour) a deleted Address leaves the broker's config at once, and
//! its messages with it. Under `retain`, every Address of the space carries the finalizer
//! [`FINALIZER`]; a deleted Address that still holds messages stays on the broker, `Terminating`,
//! until they are consumed. The finalizer lets go as soon as the broker reports the address empty,
//! or there is no broker left to hold anything: it never wedges a namespace on a broker that is
//! gone.

use std::borrow::Cow;

use enmasse_types::{broker_config::BrokerReport, resources::address::Address};

use crate::context::DeletePolicy;

/// The finalizer that keeps a deleted Address on its broker while it holds messages.
pub const FINALIZER: &str = "enmasse.io/retain-messages";

/// What to do with a space's Addresses.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Retention<'a> {
    /// The Addresses the broker serves: the live ones and those retained. Borrowed when that is
    /// all of them, as it is but while some are being deleted: a space may have thousands.
    pub served: Cow<'a, [Address]>,
    /// Deleted Addresses kept for their messages: the name and what the broker last reported it
    /// holds (`None` when the broker cannot be asked just now).
    pub retained: Vec<(String, Option<u64>)>,
    /// Addresses that need the finalizer.
    pub guard: Vec<String>,
    /// Addresses whose finalizer must go.
    pub release: Vec<String>,
}

/// Sorts `addresses` by `policy`, from what the broker reports (`report`) and whether it still
/// exists (`broker_exists`: a pod that may answer again).
pub fn retention<'a>(
    addresses: &'a [Address],
    report: Option<&BrokerReport>,
    broker_exists: bool,
    policy: DeletePolicy,
) -> Retention<'a> {
    let mut out = Retention::default();
    let mut served: Vec<&Address> = Vec::with_capacity(addresses.len());
    for address in addresses {
        // Copied only for the few lists that take it: a space may have thousands of addresses.
        let name = || address.metadata.name.clone().unwrap_or_default();
        let guarded = has_finalizer(address);
        if address.metadata.deletion_timestamp.is_none() {
            if policy == DeletePolicy::Retain && !guarded {
                out.guard.push(name());
            }
            served.push(address);
            continue;
        }
        if !guarded {
            continue;
        }
        let held = report.map(|r| r.address(&address.spec.address).map_or(0, |a| a.depth));
        match (policy, held) {
            (DeletePolicy::Retain, Some(depth)) if depth > 0 => {
                out.retained.push((name(), Some(depth)));
                served.push(address);
            }
            // The broker is there but did not answer: hold on until it can say.
            (DeletePolicy::Retain, None) if broker_exists => {
                out.retained.push((name(), None));
                served.push(address);
            }
            _ => out.release.push(name()),
        }
    }
    out.served = if served.len() == addresses.len() {
        Cow::Borrowed(addresses)
    } else {
        Cow::Owned(served.into_iter().cloned().collect())
    };
    out
}

/// Whether `address` carries [`FINALIZER`].
pub fn has_finalizer(address: &Address) -> bool {
    address
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

/// The status message of a retained Address.
pub fn retained_message(depth: Option<u64>) -> String {
    match depth {
        Some(depth) => format!(
            "deleted, but holds {depth} messages: kept on the broker until they are consumed \
             (delete policy retain; remove the finalizer {FINALIZER} to drop them)"
        ),
        None => format!(
            "deleted; kept on the broker until it reports the address empty (delete policy \
             retain; remove the finalizer {FINALIZER} to drop its messages)"
        ),
    }
}

#[cfg(test)]
mod tests;
