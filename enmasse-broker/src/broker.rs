//! The broker's shared state: the address table, who authenticates, the config in force, and the
//! counters the management API reports.

use std::sync::{
    Arc, RwLock,
    atomic::{AtomicU64, Ordering},
};

use enmasse_auth::authenticator::Authenticator;
use enmasse_types::broker_config::BrokerConfig;

use crate::{
    address::table::{AddressTable, Applied},
    store::{MemoryStore, MessageStore},
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
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            container_id: "enmasse-broker".to_owned(),
            credit_window: 500,
            max_in_flight: 500,
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
    config: RwLock<Option<Arc<BrokerConfig>>>,
    next_message_id: AtomicU64,
    counters: Counters,
    store: Arc<dyn MessageStore>,
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
        Arc::new(Self {
            settings,
            table: AddressTable::new(),
            authenticator: RwLock::new(authenticator),
            config: RwLock::new(None),
            next_message_id: AtomicU64::new(1),
            counters: Counters::default(),
            store,
        })
    }

    /// Serves exactly what `config` says, from now on. Idempotent.
    pub fn apply(&self, config: BrokerConfig, authenticator: Arc<dyn Authenticator>) -> Applied {
        let applied = self.table.apply(&config);
        for (address, _) in &applied.removed {
            self.store.forget_address(address);
        }
        *self.authenticator.write().unwrap_or_else(|p| p.into_inner()) = authenticator;
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(config));
        applied
    }

    /// The config in force, if any was applied.
    pub fn config(&self) -> Option<Arc<BrokerConfig>> {
        self.config.read().unwrap_or_else(|p| p.into_inner()).clone()
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

    /// Where durable messages are made safe.
    pub fn store(&self) -> &dyn MessageStore {
        self.store.as_ref()
    }

    /// A fresh message id.
    pub(crate) fn next_message_id(&self) -> u64 {
        self.next_message_id.fetch_add(1, Ordering::Relaxed)
    }
}
