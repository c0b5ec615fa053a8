//! Durable and shared subscriptions, opened the way Qpid JMS, rhea and Qpid Proton open them: a
//! receiver on a topic whose source is durable (`unsettled-state`, expiry `never`) or carries the
//! `shared` capability gets a subscription of its own, found again by the authenticated user, the
//! client's container id and the link name (without the container id with the `global`
//! capability; a shared link's name counts up to its first `|`, as Qpid JMS numbers them). A user
//! reaches only its own subscriptions, and holds at most [`MAX_PER_USER`].
//!
//! - A durable subscription is kept when its links detach or their connection goes, removed with
//!   what it holds when its (last) link detaches with `closed`, and journaled: it is back after a
//!   restart, with its messages.
//! - A shared volatile one (shared, not durable) lives while links consume it.
//! - A receiver with no source (Qpid JMS's `unsubscribe`) looks a durable subscription up by its
//!   key, and closing that link removes it; one that does not exist is refused with
//!   `amqp:not-found`.
//! - Attaching again with another topic or selector replaces the subscription when nobody consumes
//!   it; a non-shared one takes one link at a time (`amqp:resource-locked`).

use std::sync::{Arc, Weak};

use enmasse_types::resources::messaging_user::Operation;

use super::{
    attach::{Receiving, bind},
    connection::Context,
};
use crate::{
    address::table::{ClientSubscription, Entry, ReceiveSource},
    amqp::performative::{Attach, ErrorInfo, FilterKind, SourceFilter, Terminus, condition},
    broker::Broker,
    selector::Selector,
    store::Persisted,
};

/// Subscriptions one user may hold at once.
pub(super) const MAX_PER_USER: usize = 100;

/// The longest key (user, container id and name together), so that a subscription's address stays
/// a journal address.
const MAX_KEY: usize = 1024;

/// A link's hold on a client subscription: when the link ends, the subscription may go.
pub(super) struct Subscriber {
    broker: Weak<Broker>,
    entry: Arc<Entry>,
    durable: bool,
}

impl Subscriber {
    /// The link left: a volatile subscription goes with its last consumer, a durable one when its
    /// last consumer closes the link (`closed`). One replaced meanwhile is not this link's to end.
    pub(super) fn left(&self, closed: bool, remaining: u64) {
        if remaining > 0 || (self.durable && !closed) {
            return;
        }
        if let Some(broker) = self.broker.upgrade() {
            unsubscribe(&broker, &self.entry);
        }
    }
}

/// Removes a client subscription, if it is still the one served, with what it holds and its
/// journaled definition.
fn unsubscribe(broker: &Broker, entry: &Arc<Entry>) {
    if broker.table().unsubscribe(entry).is_some()
        && let Some(subscription) = &entry.client
    {
        broker.store().forget_address(&entry.address);
        broker.store().forget_address(&subscription.definition_address());
    }
}

/// Whether a receiver's source asks for a subscription of its own rather than a plain receiver of
/// the topic.
pub(super) fn wanted(source: &Terminus) -> bool {
    source.durable > 0 || source.has_capability("shared")
}

/// A link name as Qpid JMS writes shared ones (`sub1`, `sub1|2`, `sub1|global`): the
/// subscription's name, and whether the name says `global`.
fn parts(link: &str) -> (&str, bool) {
    match link.split_once('|') {
        Some((name, rest)) => (name, rest.starts_with("global")),
        None => (link, false),
    }
}

/// What kind of subscription a key names.
#[derive(Clone, Copy)]
enum Kind {
    /// Durable, one consumer.
    Durable,
    /// Durable, shared by its consumers.
    SharedDurable,
    /// Shared, living while consumed.
    Volatile,
}

/// The key a subscription is found by: each part length-prefixed, so that no two differ only in
/// where a separator falls.
fn key(user: &str, container: Option<&str>, name: &str, kind: Kind) -> String {
    let scope = container.map_or_else(|| "global".to_owned(), |c| format!("{}:{c}", c.len()));
    let kind = match kind {
        Kind::Durable => "durable",
        Kind::SharedDurable => "shared",
        Kind::Volatile => "volatile",
    };
    format!("{}:{user}|{scope}|{}:{name}|{kind}", user.len(), name.len())
}

/// Attaches a receiver of the topic `topic` (the attach's source address `address` being the topic
/// or a pattern below it) to its subscription, making it if need be.
pub(super) fn subscribe(
    cx: &Context<'_>,
    attach: &Attach,
    source: &Terminus,
    address: &str,
    topic: &str,
    selector: Option<Arc<Selector>>,
) -> Result<Receiving, ErrorInfo> {
    let shared = source.has_capability("shared");
    let durable = source.durable > 0;
    let (name, named_global) = match shared {
        true => parts(&attach.name),
        false => (attach.name.as_str(), false),
    };
    let global = source.has_capability("global") || named_global;
    let kind = match (durable, shared) {
        (true, false) => Kind::Durable,
        (true, true) => Kind::SharedDurable,
        (false, _) => Kind::Volatile,
    };
    let user = &cx.identity.username;
    let container = (!global).then_some(cx.scope.container.as_str());
    let key = key(user, container, name, kind);
    if key.len() > MAX_KEY {
        return Err(ErrorInfo::new(
            condition::INVALID_FIELD,
            format!("a subscription's user, container id and name may take {MAX_KEY} bytes together"),
        ));
    }
    let wanted = ClientSubscription {
        key: key.clone(),
        topic: topic.to_owned(),
        source: address.to_owned(),
        selector: selector.as_ref().map(|s| s.text().to_owned()),
        durable,
        shared,
    };
    let table = cx.broker.table();
    let existing = table.client_subscription(&key);
    let entry = match existing {
        Some(entry) if entry.client.as_ref() == Some(&wanted) => {
            let consumers = entry.receivers.load(std::sync::atomic::Ordering::Relaxed);
            if !shared && consumers > 0 {
                return Err(ErrorInfo::new(
                    "amqp:resource-locked",
                    format!("subscription {name:?} already has its consumer"),
                ));
            }
            entry
        }
        Some(entry) if entry.receivers.load(std::sync::atomic::Ordering::Relaxed) > 0 => {
            return Err(ErrorInfo::new(
                condition::NOT_ALLOWED,
                format!("subscription {name:?} is in use with another topic or selector"),
            ));
        }
        other => {
            // A subscription nobody consumes, with another topic or selector, is replaced.
            match other {
                Some(old) => unsubscribe(cx.broker, &old),
                None if table.client_subscriptions_of(&key_prefix(user)) >= MAX_PER_USER => {
                    return Err(ErrorInfo::new(
                        condition::RESOURCE_LIMIT_EXCEEDED,
                        format!("user {user:?} may hold {MAX_PER_USER} subscriptions at once"),
                    ));
                }
                None => {}
            }
            let (entry, made) = table
                .subscribe(wanted.clone(), selector.clone())
                .map_err(super::attach::resolve_error)?;
            if made
                && durable
                && let Some(definition) = wanted.definition(cx.broker.next_message_id())
                && let Persisted::Later(persisting) = cx
                    .broker
                    .store()
                    .persist(&wanted.definition_address(), &definition)
            {
                // Waited for by the broker's tasks, not the attach: a crash within the write
                // loses the subscription made just then, never an accepted message.
                cx.broker.tasks().spawn(async move {
                    if let Err(error) = persisting.await {
                        tracing::warn!(%error, "failed to journal a durable subscription");
                    }
                });
            }
            entry
        }
    };
    let reply = reply(&wanted, source);
    hold(cx, entry, wanted.durable, reply)
}

/// The start of every key of `user`'s subscriptions.
fn key_prefix(user: &str) -> String {
    format!("{}:{user}|", user.len())
}

/// Attaches a receiver without a source to the user's durable subscription its name and the
/// container id find (exclusive or shared), as Qpid JMS does to unsubscribe.
pub(super) fn look_up(cx: &Context<'_>, attach: &Attach) -> Result<Receiving, ErrorInfo> {
    let (name, global) = parts(&attach.name);
    let user = &cx.identity.username;
    let container = (!global).then_some(cx.scope.container.as_str());
    let table = cx.broker.table();
    let entry = [Kind::Durable, Kind::SharedDurable]
        .into_iter()
        .find_map(|kind| table.client_subscription(&key(user, container, name, kind)))
        .ok_or_else(|| {
            ErrorInfo::new(
                condition::NOT_FOUND,
                format!("no durable subscription {name:?} for this client"),
            )
        })?;
    let Some(subscription) = entry.client.clone() else {
        return Err(ErrorInfo::new(condition::NOT_FOUND, "no such subscription"));
    };
    let mut source = Terminus {
        address: Some(subscription.source.clone()),
        capabilities: vec!["topic".to_owned()],
        ..Terminus::default()
    };
    if let Some(text) = &subscription.selector {
        source.filters.push(SourceFilter {
            key: "jms-selector".to_owned(),
            kind: FilterKind::Selector(text.clone()),
        });
    }
    let reply = reply(&subscription, &source);
    hold(cx, entry, true, reply)
}

/// Binds the link to the subscription's queue, with the user's `recv` right on its topic.
fn hold(cx: &Context<'_>, entry: Arc<Entry>, durable: bool, reply: Terminus) -> Result<Receiving, ErrorInfo> {
    let Some(subscription) = entry.client.clone() else {
        return Err(ErrorInfo::new(condition::NOT_FOUND, "no such subscription"));
    };
    let (source, bound) = bind(cx, Operation::Recv, &subscription.source, |_| {
        Ok((
            entry.clone(),
            ReceiveSource {
                entry: entry.clone(),
                filter: None,
            },
        ))
    })?;
    Ok(Receiving {
        source,
        bound,
        selector: None,
        reply: Some(reply),
        subscriber: Some(Subscriber {
            broker: Arc::downgrade(cx.broker),
            entry: entry.clone(),
            durable,
        }),
    })
}

/// The source the broker answers with: the subscription as it is kept.
fn reply(subscription: &ClientSubscription, asked: &Terminus) -> Terminus {
    let mut capabilities = vec!["topic".to_owned()];
    for capability in ["shared", "global"] {
        if asked.has_capability(capability) {
            capabilities.push(capability.to_owned());
        }
    }
    // The subscription outlives its links (configuration), but a delivery unsettled when a link
    // goes returns to it rather than waiting for the link to resume: not unsettled-state.
    Terminus {
        address: Some(subscription.source.clone()),
        durable: if subscription.durable { 1 } else { 0 },
        expiry_policy: Some(
            if subscription.durable {
                "never"
            } else {
                "link-detach"
            }
            .to_owned(),
        ),
        distribution_mode: asked.distribution_mode.clone(),
        filters: asked
            .filters
            .iter()
            .filter(|f| matches!(f.kind, FilterKind::Selector(_)) && subscription.selector.is_some())
            .cloned()
            .collect(),
        capabilities,
        ..Terminus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_link_names_share_a_subscription_and_global_ones_drop_the_container() {
        assert_eq!(parts("sub1|2"), ("sub1", false));
        assert_eq!(parts("sub1|global2"), ("sub1", true));
        assert_eq!(parts("plain"), ("plain", false));
        assert_ne!(
            key("u", Some("a"), "s", Kind::Durable),
            key("u", Some("b"), "s", Kind::Durable)
        );
        assert_ne!(
            key("u", Some("a|b"), "c", Kind::Durable),
            key("u", Some("a"), "b|c", Kind::Durable)
        );
        assert_ne!(
            key("u", Some("global"), "s", Kind::Durable),
            key("u", None, "s", Kind::Durable)
        );
        assert_ne!(
            key("u", None, "s", Kind::Durable),
            key("v", None, "s", Kind::Durable)
        );
        assert_ne!(
            key("u", None, "s", Kind::Durable),
            key("u", None, "s", Kind::SharedDurable)
        );
        assert!(key("u", None, "s", Kind::Volatile).starts_with(&key_prefix("u")));
    }
}
