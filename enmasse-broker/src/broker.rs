//! The broker's shared state: the address table, who authenticates, the config in force, and the
//! counters the management API reports.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock, Weak,
        atomic::{AtomicU64, Ordering},
    },
};

use enmasse_auth::authenticator::Authenticator;
use enmasse_types::{
    broker_config::BrokerConfig,
    resources::{infra_config::AddressFullPolicy, messaging_user::Operation},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::warn;

use crate::{
    address::table::{AddressTable, Applied},
    limits::Connections,
    recovery::Recovered,
    store::{MemoryStore, MessageStore},
    throttle::Throttle,
};

/// Tunables of the data plane.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The AMQP container id the broker announces.
    pub container_id: String,
    /// Credit a sender link is given at most at once.
    pub credit_window: u32,
    /// Unsettled deliveries a receiver link may have at once.
    pub max_in_flight: usize,
    /// Whether SASL PLAIN (a password in clear) is offered on connections without TLS.
    pub plain_without_tls: bool,
    /// How long a client may stay silent before its connection is closed; offered in the open,
    /// so clients send heartbeats well within it.
    pub idle_timeout: std::time::Duration,
    /// Where queues page under `addressFullPolicy: PAGE` (emptied at start: pages are scratch);
    /// without it, `PAGE` withholds credit as `BLOCK` does.
    pub paging_dir: Option<std::path::PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            container_id: "enmasse-broker".to_owned(),
            credit_window: 500,
            max_in_flight: 500,
            plain_without_tls: false,
            idle_timeout: std::time::Duration::from_secs(60),
            paging_dir: None,
        }
    }
}

/// Counters of the whole broker.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Connections refused during authentication.
    pub authentication_failures: AtomicU64,
    /// Links refused at attach.
    pub attaches_refused: AtomicU64,
}

/// The broker: shared by every connection and the management API.
#[derive(Debug)]
pub struct Broker {
    settings: Settings,
    table: AddressTable,
    authenticator: RwLock<Arc<dyn Authenticator>>,
    /// The config in force, with its revision.
    config: RwLock<Option<(Arc<BrokerConfig>, String)>>,
    next_message_id: AtomicU64,
    next_connection_id: AtomicU64,
    counters: Counters,
    store: Arc<dyn MessageStore>,
    grants: Mutex<HashMap<u64, GrantEntry>>,
    next_grant: AtomicU64,
    throttle: Throttle,
    recovered: Recovered,
    tasks: TaskTracker,
    connections: Connections,
    /// Why queues cannot page, if the paging directory could not be made ready.
    paging_failure: Option<String>,
}

/// What a live link was allowed to do, so that it can be revoked.
#[derive(Debug)]
struct GrantEntry {
    username: String,
    operation: Operation,
    address: String,
    /// A right on a temporary address: held while the user is served at all.
    temporary: bool,
    revoked: CancellationToken,
}

/// A live link's right; dropping it (when the link ends) forgets it.
#[derive(Debug)]
pub struct Grant {
    id: u64,
    username: String,
    broker: Weak<Broker>,
    revoked: CancellationToken,
}

impl Grant {
    /// The user the right was granted to.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Cancelled when the link's user loses the right (or the user is removed).
    pub fn revoked(&self) -> &CancellationToken {
        &self.revoked
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        if let Some(broker) = self.broker.upgrade() {
            broker
                .grants
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&self.id);
        }
    }
}

impl Broker {
    /// A broker serving no address yet, authenticating with `authenticator`, keeping messages in
    /// memory only.
    pub fn new(settings: Settings, authenticator: Arc<dyn Authenticator>) -> Arc<Self> {
        Self::with_store(settings, authenticator, Arc::new(MemoryStore))
    }

    /// A broker that makes durable messages safe in `store`.
    pub fn with_store(
        settings: Settings,
        authenticator: Arc<dyn Authenticator>,
        store: Arc<dyn MessageStore>,
    ) -> Arc<Self> {
        let table = AddressTable::new();
        let paging_failure = settings.paging_dir.as_deref().and_then(|dir| {
            let keeps = store.keeps_messages().then(|| store.clone());
            table.budget().set_paging_dir(dir, keeps).err().map(|err| {
                let why = format!("failed to prepare the paging directory {}: {err}", dir.display());
                warn!("{why}");
                why
            })
        });
        Arc::new(Self {
            settings,
            table,
            authenticator: RwLock::new(authenticator),
            config: RwLock::new(None),
            next_message_id: AtomicU64::new(1),
            next_connection_id: AtomicU64::new(1),
            counters: Counters::default(),
            store,
            grants: Mutex::new(HashMap::new()),
            next_grant: AtomicU64::new(1),
            throttle: Throttle::default(),
            recovered: Recovered::default(),
            tasks: TaskTracker::new(),
            connections: Connections::default(),
            paging_failure,
        })
    }

    /// Why the config in force is not served as it says for want of paging: `PAGE` asked for and
    /// no paging directory ready.
    pub fn paging_problem(&self) -> Option<String> {
        let budget = self.table.budget();
        if budget.policy() != AddressFullPolicy::Page || budget.paging_enabled() {
            return None;
        }
        let why = self
            .paging_failure
            .clone()
            .unwrap_or_else(|| "the broker has no paging directory".to_owned());
        Some(format!(
            "addressFullPolicy PAGE is not applied ({why}): a full address withholds credit, as under BLOCK"
        ))
    }

    /// Serves exactly what `config` says, from now on, but for addresses whose change of type or
    /// topic waits for their messages to be consumed: the config in force keeps those as they are
    /// served. Idempotent. The messages of removed and recreated addresses are forgotten by the
    /// store; recovered messages waiting for an address the config now serves go into its queue.
    pub fn apply(&self, config: BrokerConfig, authenticator: Arc<dyn Authenticator>) -> Applied {
        self.table.budget().set_max(config.space.global_max_size);
        self.table.budget().set_policy(config.space.address_full_policy);
        let applied = self
            .table
            .apply(&config, |address| self.store.forget_address(address));
        // An address whose change waits for its messages is served as it was: the config kept (and
        // reported, with its revision) says so, so that the change is asked for again.
        let mut config = config;
        for (name, _) in &applied.waiting {
            let served = self.table.get(name).map(|entry| entry.config());
            if let Some(served) = served
                && config.addresses.contains(name)
            {
                config.addresses.insert(served);
            }
        }
        self.recovered.place(&self.table, self.store.as_ref());
        *self.authenticator.write().unwrap_or_else(|p| p.into_inner()) = authenticator.clone();
        // Reported at every look the operator (or the standalone) takes: hashed once, here.
        let revision = config.revision();
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Some((Arc::new(config), revision));
        // Links whose user lost the right they were attached with are detached now.
        for grant in self.grants.lock().unwrap_or_else(|p| p.into_inner()).values() {
            let allowed = authenticator
                .policy(&grant.username)
                .is_some_and(|p| grant.temporary || p.allows(grant.operation, &grant.address));
            if !allowed {
                grant.revoked.cancel();
            }
        }
        applied
    }

    /// Records that a link of `username` may do `operation` on `address`, for as long as the
    /// returned grant lives.
    pub fn grant(self: &Arc<Self>, username: &str, operation: Operation, address: &str) -> Grant {
        self.grant_with(username, operation, address, false)
    }

    /// Records that a link of `username` uses the temporary `address`: any user the space serves
    /// may, since the address's name is its capability. The grant is revoked only when the user
    /// is no longer served.
    pub fn grant_temporary(self: &Arc<Self>, username: &str, operation: Operation, address: &str) -> Grant {
        self.grant_with(username, operation, address, true)
    }

    fn grant_with(
        self: &Arc<Self>,
        username: &str,
        operation: Operation,
        address: &str,
        temporary: bool,
    ) -> Grant {
        let id = self.next_grant.fetch_add(1, Ordering::Relaxed);
        let revoked = CancellationToken::new();
        let entry = GrantEntry {
            username: username.to_owned(),
            operation,
            address: address.to_owned(),
            temporary,
            revoked: revoked.clone(),
        };
        self.grants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, entry);
        Grant {
            id,
            username: username.to_owned(),
            broker: Arc::downgrade(self),
            revoked,
        }
    }

    /// The config in force, if any was applied.
    pub fn config(&self) -> Option<Arc<BrokerConfig>> {
        let config = self.config.read().unwrap_or_else(|p| p.into_inner());
        config.as_ref().map(|(config, _)| config.clone())
    }

    /// The revision of the config in force ([`BrokerConfig::revision`]); empty before the first.
    pub fn revision(&self) -> String {
        let config = self.config.read().unwrap_or_else(|p| p.into_inner());
        config
            .as_ref()
            .map(|(_, revision)| revision.clone())
            .unwrap_or_default()
    }

    /// The authenticator in force.
    pub fn authenticator(&self) -> Arc<dyn Authenticator> {
        self.authenticator
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The address table.
    pub fn table(&self) -> &AddressTable {
        &self.table
    }

    /// The data plane's tunables.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The broker-wide counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Authentication failures by peer, to slow down guessing.
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// Where durable messages are made safe.
    pub fn store(&self) -> &dyn MessageStore {
        self.store.as_ref()
    }

    /// The store, to keep beyond a borrow of the broker.
    pub(crate) fn store_handle(&self) -> Arc<dyn MessageStore> {
        self.store.clone()
    }

    /// The connections open now, against the space's connection policy.
    pub fn connections(&self) -> &Connections {
        &self.connections
    }

    /// The space's connection policy in force, if it has one.
    pub fn connection_policy(&self) -> Option<enmasse_types::resources::infra_config::RouterPolicy> {
        self.config()
            .and_then(|config| config.space.connection_policy.clone())
    }

    /// Work the broker does in the background on its own behalf (moving a durable message to a
    /// dead-letter address once the journal has the copy); waited for at shutdown.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// What was recovered from the journal at start, and what of it still waits for a queue.
    pub fn recovered(&self) -> &Recovered {
        &self.recovered
    }

    /// Makes every new message id higher than `last_id` (the highest the journal has seen).
    pub(crate) fn skip_ids_through(&self, last_id: u64) {
        self.next_message_id
            .fetch_max(last_id.saturating_add(1), Ordering::Relaxed);
    }

    /// A fresh connection id, unique within the process.
    pub(crate) fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A fresh message id.
    pub(crate) fn next_message_id(&self) -> u64 {
        self.next_message_id.fetch_add(1, Ordering::Relaxed)
    }
}
