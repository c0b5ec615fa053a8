//! What every reconcile shares: the API client, the operator's settings, the brokers' management
//! API, the infrastructure the operations team provides (kept current by watches), events and
//! metrics.

use std::{collections::HashMap, sync::Arc, time::Duration};

use enmasse_types::{
    evaluate::Infra,
    resources::{
        authentication_service::AuthenticationService,
        infra_config::{BrokeredInfraConfig, StandardInfraConfig},
        plans::{AddressPlan, AddressSpacePlan},
    },
};
use kube::{
    Client,
    runtime::{
        events::Recorder,
        reflector::{self, Store, store::Writer},
    },
};

use crate::{
    brokers::Brokers, members::MemberStores, metrics::Metrics, space::SpaceMemory, workload::BrokerSettings,
};

/// What happens to messages when what holds them is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DeletePolicy {
    /// EnMasse's behaviour: deleting an Address deletes its messages; deleting an AddressSpace
    /// deletes its broker and its data volume.
    #[default]
    Delete,
    /// For the careful: an Address that holds messages stays on its broker, `Terminating`, until
    /// they are consumed; a deleted AddressSpace's data volume is kept, and the space committed
    /// again finds it.
    Retain,
}

/// How the operator runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How brokers run, and the namespace the infrastructure lives in.
    pub broker: BrokerSettings,
    /// The `kubernetes.io/tls` Secret (in the operator's namespace) that `wildcard` endpoints serve.
    pub wildcard_secret: Option<String>,
    /// What deleting an Address or an AddressSpace does to its messages.
    pub delete_policy: DeletePolicy,
    /// How often a settled space is looked at again, to heal drift and refresh what its broker
    /// reports.
    pub resync: Duration,
}

/// The plans, infra configs and authentication services, as the watches last saw them.
#[derive(Clone)]
pub struct InfraStores {
    space_plans: Store<AddressSpacePlan>,
    address_plans: Store<AddressPlan>,
    standard_infra_configs: Store<StandardInfraConfig>,
    brokered_infra_configs: Store<BrokeredInfraConfig>,
    authentication_services: Store<AuthenticationService>,
}

/// The writing side of [`InfraStores`], fed by the watches (or by a test).
pub struct InfraWriters {
    /// Address space plans.
    pub space_plans: Writer<AddressSpacePlan>,
    /// Address plans.
    pub address_plans: Writer<AddressPlan>,
    /// Infra configs of standard spaces.
    pub standard_infra_configs: Writer<StandardInfraConfig>,
    /// Infra configs of brokered spaces.
    pub brokered_infra_configs: Writer<BrokeredInfraConfig>,
    /// Authentication services.
    pub authentication_services: Writer<AuthenticationService>,
}

impl InfraStores {
    /// Empty stores and their writers.
    pub fn new() -> (Self, InfraWriters) {
        let (space_plans, space_plans_writer) = reflector::store();
        let (address_plans, address_plans_writer) = reflector::store();
        let (standard, standard_writer) = reflector::store();
        let (brokered, brokered_writer) = reflector::store();
        let (authentication_services, authentication_writer) = reflector::store();
        (
            Self {
                space_plans,
                address_plans,
                standard_infra_configs: standard,
                brokered_infra_configs: brokered,
                authentication_services,
            },
            InfraWriters {
                space_plans: space_plans_writer,
                address_plans: address_plans_writer,
                standard_infra_configs: standard_writer,
                brokered_infra_configs: brokered_writer,
                authentication_services: authentication_writer,
            },
        )
    }

    /// A copy of what the stores hold now.
    pub fn snapshot(&self) -> InfraSnapshot {
        fn all<K: Clone + kube::Resource<DynamicType = ()> + 'static>(store: &Store<K>) -> Vec<K> {
            store.state().iter().map(|k| K::clone(k)).collect()
        }
        InfraSnapshot {
            space_plans: all(&self.space_plans),
            address_plans: all(&self.address_plans),
            standard_infra_configs: all(&self.standard_infra_configs),
            brokered_infra_configs: all(&self.brokered_infra_configs),
            authentication_services: all(&self.authentication_services),
        }
    }

    /// Waits until every watch has listed its kind once, so that no space is judged against a
    /// partial view (a plan not yet seen is not a missing plan).
    pub async fn synced(&self) -> bool {
        self.space_plans.wait_until_ready().await.is_ok()
            && self.address_plans.wait_until_ready().await.is_ok()
            && self.standard_infra_configs.wait_until_ready().await.is_ok()
            && self.brokered_infra_configs.wait_until_ready().await.is_ok()
            && self.authentication_services.wait_until_ready().await.is_ok()
    }
}

/// The infrastructure at one moment.
#[derive(Clone, Debug, Default)]
pub struct InfraSnapshot {
    space_plans: Vec<AddressSpacePlan>,
    address_plans: Vec<AddressPlan>,
    standard_infra_configs: Vec<StandardInfraConfig>,
    brokered_infra_configs: Vec<BrokeredInfraConfig>,
    authentication_services: Vec<AuthenticationService>,
}

impl InfraSnapshot {
    /// The view `enmasse_types::evaluate` takes.
    pub fn infra(&self) -> Infra<'_> {
        Infra {
            space_plans: &self.space_plans,
            address_plans: &self.address_plans,
            standard_infra_configs: &self.standard_infra_configs,
            brokered_infra_configs: &self.brokered_infra_configs,
            authentication_services: &self.authentication_services,
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// How the operator runs.
    pub settings: Settings,
    /// The brokers' management API.
    pub brokers: Arc<dyn Brokers>,
    /// Plans, infra configs and authentication services.
    pub infra: InfraStores,
    /// Publishes Kubernetes events.
    pub recorder: Recorder,
    /// Reconcile counts and durations.
    pub metrics: Arc<Metrics>,
    /// Password users' SCRAM keys, derived once per password rather than at every reconcile.
    pub credentials: std::sync::Mutex<enmasse_auth::credentials::PasswordCredentials>,
    /// Every Address and MessagingUser, as the space controller's watches last saw them.
    pub members: MemberStores,
    /// What the passes over each space keep for the next, by namespace and name.
    pub spaces: std::sync::Mutex<HashMap<(String, String), SpaceMemory>>,
}
