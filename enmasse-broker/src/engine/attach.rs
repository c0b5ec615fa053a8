//! The decision on every attach: the address must exist, suit the direction and be allowed for
//! the user, and the link may ask only for what the broker does. What it does not do (selectors and
//! other filters, browsing anything but a queue, dynamic nodes, transactions, anonymous relay) is
//! refused with an error that names it, never accepted in silence.

use std::sync::{Arc, atomic::Ordering};

use enmasse_types::resources::messaging_user::Operation;

use super::connection::Context;
use crate::{
    address::table::{Engine as AddressEngine, ReceiveSource, ResolveError, SendTarget},
    amqp::{
        frame,
        performative::{Attach, AttachReply, ErrorInfo, Role, Terminus, condition},
    },
    broker::{Broker, Grant},
};

/// What an attach leads to.
pub(super) enum Decision {
    /// The client sends: messages flow into this target.
    Inbound(SendTarget, Grant),
    /// The client receives: messages flow out of this source.
    Outbound(ReceiveSource, Grant),
}

/// Decides an attach.
pub(super) fn decide(cx: &Context<'_>, attach: &Attach) -> Result<Decision, ErrorInfo> {
    let broker = cx.broker;
    let user = &cx.identity.username;
    let table = broker.table();
    if attach.unsettled {
        return Err(not_implemented(
            "resuming a link with unsettled deliveries is not supported",
        ));
    }
    match attach.role {
        Role::Sender => {
            let target = attach
                .target
                .as_ref()
                .ok_or_else(|| not_implemented("a sender link needs a target"))?;
            if target.coordinator {
                return Err(not_implemented(
                    "transactions are not supported: no coordinator link",
                ));
            }
            if target.dynamic {
                return Err(not_implemented("dynamic targets are not supported"));
            }
            let address = target.address.as_deref().ok_or_else(|| {
                not_implemented("a sender link needs a target address (no anonymous relay)")
            })?;
            let grant = authorize(broker, user, Operation::Send, address)?;
            let target = table.resolve_target(address).map_err(resolve_error)?;
            Ok(Decision::Inbound(target, grant))
        }
        Role::Receiver => {
            let source = attach
                .source
                .as_ref()
                .ok_or_else(|| not_implemented("a receiver link needs a source"))?;
            if source.dynamic {
                return Err(not_implemented("dynamic sources are not supported"));
            }
            if !source.filters.is_empty() {
                return Err(not_implemented(&format!(
                    "filters are not supported yet (asked for: {})",
                    source.filters.join(", ")
                )));
            }
            let address = source
                .address
                .as_deref()
                .ok_or_else(|| not_implemented("a receiver link needs a source address"))?;
            let grant = authorize(broker, user, Operation::Recv, address)?;
            let resolved = table.resolve_source(address).map_err(resolve_error)?;
            if source.distribution_mode.as_deref() == Some("copy")
                && !matches!(resolved.entry.engine, AddressEngine::Queue(_))
            {
                return Err(not_implemented(&format!(
                    "browsing (distribution-mode copy) applies to queues and subscriptions, not to the {} address {address:?}",
                    resolved.entry.type_
                )));
            }
            let config = resolved.entry.config();
            if let Some(max) = config.max_consumers
                && resolved.entry.receivers.load(Ordering::Relaxed) >= u64::from(max)
            {
                return Err(ErrorInfo::new(
                    condition::RESOURCE_LIMIT_EXCEEDED,
                    format!("subscription {address:?} allows {max} consumer(s) at once"),
                ));
            }
            Ok(Decision::Outbound(resolved, grant))
        }
    }
}

/// Refuses an attach as AMQP prescribes (2.6.3): an attach with a null terminus on the broker's
/// side, then a detach with the error.
pub(super) fn refuse(cx: &mut Context<'_>, channel: u16, local: u32, attach: &Attach, error: &ErrorInfo) {
    let role = match attach.role {
        Role::Sender => Role::Receiver,
        Role::Receiver => Role::Sender,
    };
    // The peer's own terminus is named back by its address alone; the broker's side is null.
    let (source, target) = match role {
        Role::Sender => (None, Some(Terminus::named_like(attach.target.as_ref()))),
        Role::Receiver => (Some(Terminus::named_like(attach.source.as_ref())), None),
    };
    frame::write_amqp(cx.output, channel, |e| {
        e.attach(&AttachReply {
            name: &attach.name,
            handle: local,
            role,
            snd_settle_mode: attach.snd_settle_mode,
            source: source.as_ref(),
            target: target.as_ref(),
            initial_delivery_count: (role == Role::Sender).then_some(0),
            max_message_size: None,
        });
    });
    frame::write_amqp(cx.output, channel, |e| e.detach(local, true, Some(error)));
}

/// Checks the user's current rights and records the grant that a later config can revoke.
fn authorize(
    broker: &Arc<Broker>,
    user: &str,
    operation: Operation,
    address: &str,
) -> Result<Grant, ErrorInfo> {
    let allowed = || {
        broker
            .authenticator()
            .policy(user)
            .is_some_and(|p| p.allows(operation, address))
    };
    let action = if operation == Operation::Send {
        "send to"
    } else {
        "receive from"
    };
    let unauthorized = || {
        ErrorInfo::new(
            condition::UNAUTHORIZED_ACCESS,
            format!("user {user:?} may not {action} address {address:?}"),
        )
    };
    if !allowed() {
        return Err(unauthorized());
    }
    let grant = broker.grant(user, operation, address);
    // A config applied meanwhile is seen either here or by its own scan of the grants.
    if !allowed() {
        return Err(unauthorized());
    }
    Ok(grant)
}

fn resolve_error(error: ResolveError) -> ErrorInfo {
    let condition = match error {
        ResolveError::NotFound(_) => condition::NOT_FOUND,
        ResolveError::NotAllowed(_) => condition::NOT_ALLOWED,
    };
    ErrorInfo::new(condition, error.to_string())
}

fn not_implemented(what: &str) -> ErrorInfo {
    ErrorInfo::new(condition::NOT_IMPLEMENTED, what)
}
