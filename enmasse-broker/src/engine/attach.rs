//! The decision on every attach: the address must exist, suit the direction and be allowed for
//! the user, and the link may ask only for what the broker does. A dynamic node gets a temporary
//! address that lives as long as its link; a sender without a target is the anonymous relay; a
//! selector is parsed here, and one that does not parse refuses the link, saying where. What the
//! broker does not do (filters other than selectors, browsing anything but a queue, transactions)
//! is refused with an error that names it, never accepted in silence.

use std::sync::{
    Arc, Weak,
    atomic::{AtomicUsize, Ordering},
};

use enmasse_types::resources::{address::AddressType, messaging_user::Operation};

use super::{
    connection::Context,
    session::Bound,
    subscription::{self, Subscriber},
};
use crate::{
    address::{
        fanout::Filter,
        table::{
            AddressTable, Engine as AddressEngine, Entry, ReceiveSource, ResolveError, SendTarget,
            TEMPORARY_PREFIX, TemporaryKind,
        },
    },
    amqp::{
        frame,
        performative::{Attach, AttachReply, ErrorInfo, FilterKind, Role, Terminus, condition},
    },
    broker::{Broker, Grant},
    selector::Selector,
};

/// What an attach leads to.
pub(super) enum Decision {
    /// The client sends.
    Inbound(Target),
    /// The client receives.
    Outbound(Receiving),
}

/// Where a client's receiver link takes messages from.
pub(super) struct Receiving {
    /// The source.
    pub(super) source: ReceiveSource,
    /// The address and the right.
    pub(super) bound: Bound,
    /// The selector it asked for, applied by the link (a subscription's is its topic's).
    pub(super) selector: Option<Arc<Selector>>,
    /// The source to answer with, when the link takes a subscription rather than the address.
    pub(super) reply: Option<Terminus>,
    /// The subscription the link holds, which may go when the link does.
    pub(super) subscriber: Option<Subscriber>,
}

/// Where a client's sender link delivers.
pub(super) enum Target {
    /// Into one address.
    Address(SendTarget, Bound),
    /// The anonymous relay: each message to the address its `to` names, authorized one by one.
    Relay,
    /// The transaction coordinator: declares and discharges.
    Coordinator,
}

/// Temporary addresses one connection's links may hold at once.
pub(super) const MAX_TEMPORARIES: usize = 64;

/// A temporary address owned by the link that created it (a dynamic node): removed, with what
/// it holds, when the link ends.
pub(super) struct Temporary {
    broker: Weak<Broker>,
    address: String,
    /// The connection's count of temporary addresses, which this one leaves.
    held: Arc<AtomicUsize>,
}

impl Drop for Temporary {
    fn drop(&mut self) {
        self.held.fetch_sub(1, Ordering::Relaxed);
        if let Some(broker) = self.broker.upgrade() {
            broker.table().remove_temporary(&self.address);
        }
    }
}

/// Decides an attach.
pub(super) fn decide(cx: &Context<'_>, attach: &Attach) -> Result<Decision, ErrorInfo> {
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
                let unsupported: Vec<&str> = target
                    .capabilities
                    .iter()
                    .map(String::as_str)
                    .filter(|c| *c != super::transaction::LOCAL)
                    .collect();
                if !unsupported.is_empty() {
                    return Err(not_implemented(&format!(
                        "only local transactions are supported (asked for: {})",
                        unsupported.join(", ")
                    )));
                }
                return Ok(Decision::Inbound(Target::Coordinator));
            }
            if target.dynamic {
                let (entry, bound) = create_temporary(cx, Operation::Send, target)?;
                let routing = Arc::from(entry.address.as_str());
                return Ok(Decision::Inbound(Target::Address(
                    SendTarget { entry, routing },
                    bound,
                )));
            }
            let Some(address) = target.address.as_deref() else {
                return Ok(Decision::Inbound(Target::Relay));
            };
            let (target, bound) = bind(cx, Operation::Send, address, |table| {
                table.resolve_target(address).map(|t| (t.entry.clone(), t))
            })?;
            Ok(Decision::Inbound(Target::Address(target, bound)))
        }
        Role::Receiver => {
            let Some(source) = attach.source.as_ref() else {
                // No source: a durable subscription looked up by name.
                return subscription::look_up(cx, attach).map(Decision::Outbound);
            };
            let selector = selector(source)?;
            let (resolved, bound) = if source.dynamic {
                let (entry, bound) = create_temporary(cx, Operation::Recv, source)?;
                let filter = (entry.type_ == AddressType::Topic).then_some(Filter::All);
                (ReceiveSource { entry, filter }, bound)
            } else {
                let address = source
                    .address
                    .as_deref()
                    .ok_or_else(|| not_implemented("a receiver link needs a source address"))?;
                bind(cx, Operation::Recv, address, |table| {
                    table.resolve_source(address).map(|s| (s.entry.clone(), s))
                })?
            };
            if subscription::wanted(source) && resolved.entry.type_ == AddressType::Topic {
                // Its distribution mode is the topic's: every subscription gets a copy.
                let address = source.address.as_deref().unwrap_or_default();
                let topic = resolved.entry.address.clone();
                return subscription::subscribe(cx, attach, source, address, &topic, selector)
                    .map(Decision::Outbound);
            }
            let address = &resolved.entry.address;
            if source.distribution_mode.as_deref() == Some("copy")
                && !matches!(resolved.entry.engine, AddressEngine::Queue(_))
            {
                return Err(not_implemented(&format!(
                    "browsing (distribution-mode copy) applies to queues and subscriptions, not to the {} address {address:?}",
                    resolved.entry.type_
                )));
            }
            if selector.is_some() && matches!(resolved.entry.engine, AddressEngine::Anycast(_)) {
                return Err(not_implemented(&format!(
                    "selectors apply to queues, subscriptions and topics, not to the anycast address {address:?}, which stores nothing to select from"
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
            Ok(Decision::Outbound(Receiving {
                source: resolved,
                bound,
                selector,
                reply: None,
                subscriber: None,
            }))
        }
    }
}

/// The selector a source asks for: one at most, and parsed; other filters are refused. An empty
/// selector is none.
fn selector(source: &Terminus) -> Result<Option<Arc<Selector>>, ErrorInfo> {
    let unknown: Vec<&str> = source
        .filters
        .iter()
        .filter(|f| !matches!(f.kind, FilterKind::Selector(_)))
        .map(|f| f.key.as_str())
        .collect();
    if !unknown.is_empty() {
        return Err(not_implemented(&format!(
            "only JMS selectors (apache.org:selector-filter:string) are supported as filters (asked for: {})",
            unknown.join(", ")
        )));
    }
    if source.filters.len() > 1 {
        return Err(ErrorInfo::new(
            condition::INVALID_FIELD,
            "a source may carry one selector, not several",
        ));
    }
    match source.selector() {
        Some(text) if !text.trim().is_empty() => {
            Selector::parse(text).map(|s| Some(Arc::new(s))).map_err(|err| {
                ErrorInfo::new(
                    condition::INVALID_FIELD,
                    format!("invalid selector {:?}: {err}", shorten(text)),
                )
            })
        }
        _ => Ok(None),
    }
}

/// A temporary address for a dynamic node, owned by the link that asked for it: a topic if the
/// terminus asks for a `temporary-topic` (as Qpid JMS does for a temporary topic), a queue
/// otherwise. A user the space no longer serves gets none, and a connection at most
/// [`MAX_TEMPORARIES`].
fn create_temporary(
    cx: &Context<'_>,
    operation: Operation,
    terminus: &Terminus,
) -> Result<(Arc<Entry>, Bound), ErrorInfo> {
    let user = &cx.identity.username;
    if cx.broker.authenticator().policy(user).is_none() {
        return Err(unserved(user));
    }
    let held = cx.scope.temporaries.clone();
    if held.fetch_add(1, Ordering::Relaxed) >= MAX_TEMPORARIES {
        held.fetch_sub(1, Ordering::Relaxed);
        return Err(ErrorInfo::new(
            condition::RESOURCE_LIMIT_EXCEEDED,
            format!("a connection may hold {MAX_TEMPORARIES} temporary addresses at once"),
        ));
    }
    let kind = match terminus.has_capability("temporary-topic") {
        true => TemporaryKind::Topic,
        false => TemporaryKind::Queue,
    };
    let entry = cx.broker.table().create_temporary(kind, cx.scope.id);
    let grant = cx.broker.grant_temporary(user, operation, &entry.address);
    let temporary = Temporary {
        broker: Arc::downgrade(cx.broker),
        address: entry.address.clone(),
        held,
    };
    let bound = Bound {
        entry: entry.clone(),
        grant,
        temporary: Some(temporary),
    };
    Ok((entry, bound))
}

/// Resolves `address` with `resolve` and checks the user's right to it: a temporary address is
/// open to every user the space serves (its name is the capability); any other needs the
/// user's `operation` right, checked before the address is looked up, so that a user without it
/// learns nothing of which addresses exist.
pub(super) fn bind<T>(
    cx: &Context<'_>,
    operation: Operation,
    address: &str,
    resolve: impl FnOnce(&AddressTable) -> Result<(Arc<Entry>, T), ResolveError>,
) -> Result<(T, Bound), ErrorInfo> {
    let (broker, user) = (cx.broker, &cx.identity.username);
    if let Some(temporary) = broker.table().temporary(address) {
        if broker.authenticator().policy(user).is_none() {
            return Err(unserved(user));
        }
        if operation == Operation::Recv && temporary.owner != Some(cx.scope.id) {
            return Err(ErrorInfo::new(
                condition::NOT_ALLOWED,
                format!(
                    "temporary address {address:?} is received from only on the connection that created it"
                ),
            ));
        }
        let (entry, resolved) = resolve(broker.table()).map_err(resolve_error)?;
        let grant = broker.grant_temporary(user, operation, address);
        let bound = Bound {
            entry,
            grant,
            temporary: None,
        };
        return Ok((resolved, bound));
    }
    let grant = authorize(broker, user, operation, address)?;
    let (entry, resolved) = resolve(broker.table()).map_err(resolve_error)?;
    let bound = Bound {
        entry,
        grant,
        temporary: None,
    };
    Ok((resolved, bound))
}

/// Whether `user` may send to `address` now: for the anonymous relay, message by message. Any
/// user the space serves may send to a temporary address.
pub(super) fn may_send(broker: &Broker, user: &str, address: &str) -> bool {
    broker.authenticator().policy(user).is_some_and(|p| {
        (address.starts_with(TEMPORARY_PREFIX) && broker.table().temporary(address).is_some())
            || p.allows(Operation::Send, address)
    })
}

/// At most this much of a peer's text is quoted back in an error.
pub(super) fn shorten(text: &str) -> &str {
    let mut end = text.len().min(120);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

fn unserved(user: &str) -> ErrorInfo {
    ErrorInfo::new(
        condition::UNAUTHORIZED_ACCESS,
        format!("user {user:?} is not a user of this address space"),
    )
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

pub(super) fn resolve_error(error: ResolveError) -> ErrorInfo {
    let condition = match error {
        ResolveError::NotFound(_) => condition::NOT_FOUND,
        ResolveError::NotAllowed(_) => condition::NOT_ALLOWED,
    };
    ErrorInfo::new(condition, error.to_string())
}

fn not_implemented(what: &str) -> ErrorInfo {
    ErrorInfo::new(condition::NOT_IMPLEMENTED, what)
}
