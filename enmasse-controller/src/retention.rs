//! What deleting an Address does to the messages it holds, per [`DeletePolicy`].
//!
//! Under `delete` (EnMasse's behaviour) a deleted Address leaves the broker's config at once, and
//! its messages with it. Under `retain`, every Address of the space carries the finalizer
//! [`FINALIZER`]; a deleted Address that still holds messages stays on the broker, `Terminating`,
//! until they are consumed. The finalizer lets go as soon as the broker reports the address empty,
//! or there is no broker left to hold anything: it never wedges a namespace on a broker that is
//! gone.

use std::{
    borrow::Cow,
    collections::{BTreeSet, HashSet},
};

use enmasse_types::{broker_config::BrokerReport, resources::address::Address};

use crate::{context::DeletePolicy, members::Kept};

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
    /// The Addresses left out of `served`, by name.
    pub left_out: HashSet<String>,
}

impl Retention<'_> {
    /// Whether the Address named `name`, one of those given, is served.
    pub fn serves(&self, name: &str) -> bool {
        !self.left_out.contains(name)
    }
}

/// Sorts `addresses` by `policy`, from what the broker reports (`report`) and whether it still
/// exists (`broker_exists`: a pod that may answer again). Only the addresses in `looked_at` are
/// looked at: every other one must not be [`notable`] (it is served, and needs nothing).
pub fn retention<'a>(
    addresses: &'a [Address],
    looked_at: impl IntoIterator<Item = &'a Address>,
    report: Option<&BrokerReport>,
    broker_exists: bool,
    policy: DeletePolicy,
) -> Retention<'a> {
    let mut out = Retention::default();
    for address in looked_at {
        // Copied only for the few lists that take it: a space may have thousands of addresses.
        let name = || address.metadata.name.clone().unwrap_or_default();
        let guarded = has_finalizer(address);
        if address.metadata.deletion_timestamp.is_none() {
            if policy == DeletePolicy::Retain && !guarded {
                out.guard.push(name());
            }
            continue;
        }
        let held = report.map(|r| r.address(&address.spec.address).map_or(0, |a| a.depth));
        match (policy, held) {
            _ if !guarded => {}
            (DeletePolicy::Retain, Some(depth)) if depth > 0 => {
                out.retained.push((name(), Some(depth)));
                continue;
            }
            // The broker is there but did not answer: hold on until it can say.
            (DeletePolicy::Retain, None) if broker_exists => {
                out.retained.push((name(), None));
                continue;
            }
            _ => out.release.push(name()),
        }
        out.left_out.insert(name());
    }
    out.served = if out.left_out.is_empty() {
        Cow::Borrowed(addresses)
    } else {
        let served = addresses
            .iter()
            .filter(|a| out.serves(a.metadata.name.as_deref().unwrap_or_default()));
        Cow::Owned(served.cloned().collect())
    };
    out
}

/// Whether [`retention`] has anything to do with `address` under `policy`: it is being deleted,
/// or lacks the finalizer `retain` puts on every address.
pub fn notable(address: &Address, policy: DeletePolicy) -> bool {
    address.metadata.deletion_timestamp.is_some()
        || (policy == DeletePolicy::Retain && !has_finalizer(address))
}

/// Brings `names`, those of the [`notable`] among `addresses`, up to date after the addresses
/// named `changed` changed; `None`: any may have.
pub fn track_notable(
    names: &mut BTreeSet<String>,
    addresses: &Kept<Address>,
    changed: Option<&HashSet<String>>,
    policy: DeletePolicy,
) {
    let Some(changed) = changed else {
        *names = addresses
            .iter()
            .filter(|a| notable(a, policy))
            .map(|a| a.metadata.name.clone().unwrap_or_default())
            .collect();
        return;
    };
    for name in changed {
        match addresses.get(name) {
            Some(address) if notable(address, policy) => names.insert(name.clone()),
            _ => names.remove(name),
        };
    }
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
