//! The space's connection policy (a standard infra config's `router.policy`), enforced: how many
//! connections the broker takes in all, per user and per client host, and, within a connection,
//! how many sessions, senders and receivers. A refusal is an AMQP error that names the limit.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, Weak},
};

use enmasse_types::resources::infra_config::RouterPolicy;

use crate::{
    amqp::performative::{ErrorInfo, condition},
    broker::Broker,
};

/// Connections open now, in all, by user and by client host.
#[derive(Debug, Default)]
pub struct Connections {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: u32,
    users: HashMap<String, u32>,
    hosts: HashMap<IpAddr, u32>,
}

/// An authenticated connection's place among the open ones; given back when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    broker: Weak<Broker>,
    user: String,
    host: IpAddr,
}

impl Connections {
    /// Takes a place for a connection of `user` from `host`, within `policy`.
    pub fn admit(
        broker: &Arc<Broker>,
        policy: Option<&RouterPolicy>,
        user: &str,
        host: IpAddr,
    ) -> Result<ConnectionSlot, ErrorInfo> {
        let mut counts = broker.connections().lock();
        let users = counts.users.get(user).copied().unwrap_or(0);
        let hosts = counts.hosts.get(&host).copied().unwrap_or(0);
        let exceeded = |what: String| Err(ErrorInfo::new(condition::RESOURCE_LIMIT_EXCEEDED, what));
        if let Some(policy) = policy {
            if let Some(max) = policy.max_connections
                && counts.total >= max
            {
                return exceeded(format!("the address space takes {max} connections at most"));
            }
            if let Some(max) = policy.max_connections_per_user
                && users >= max
            {
                return exceeded(format!("user {user:?} may have {max} connections at most"));
            }
            if let Some(max) = policy.max_connections_per_host
                && hosts >= max
            {
                return exceeded(format!("host {host} may have {max} connections at most"));
            }
        }
        counts.total += 1;
        *counts.users.entry(user.to_owned()).or_default() += 1;
        *counts.hosts.entry(host).or_default() += 1;
        Ok(ConnectionSlot {
            broker: Arc::downgrade(broker),
            user: user.to_owned(),
            host,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let Some(broker) = self.broker.upgrade() else {
            return;
        };
        let mut counts = broker.connections().lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.users.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.users.remove(&self.user);
            }
        }
        if let Some(n) = counts.hosts.get_mut(&self.host) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.hosts.remove(&self.host);
            }
        }
    }
}

/// Whether a connection may have one more of `what` (sessions, senders, receivers), having `now`.
pub fn within(max: Option<u32>, now: usize, what: &str) -> Result<(), ErrorInfo> {
    match max {
        Some(max) if now >= max as usize => Err(ErrorInfo::new(
            condition::RESOURCE_LIMIT_EXCEEDED,
            format!("a connection may have {max} {what} at most"),
        )),
        _ => Ok(()),
    }
}
