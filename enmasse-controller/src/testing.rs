//! What the operator's scenarios share: its settings, a stand-in for the brokers, and the fake
//! API server of the `tests` crate.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use enmasse_types::{
    broker_config::{AddressReport, BrokerConfig, BrokerReport},
    config_patch::ConfigPatch,
    report_changes::{ReportChanges, ReportLog},
};
use futures_util::future::BoxFuture;

use crate::{
    brokers::{BrokerEndpoint, BrokerError, Brokers},
    context::{DeletePolicy, Settings},
    workload::BrokerSettings,
};

pub(crate) use tests::kube_api::{Collection, FakeApi, example};

/// The settings of an operator for `enmasse-infra` under `policy`, resyncing every `resync`.
pub(crate) fn settings(policy: DeletePolicy, resync: std::time::Duration) -> Settings {
    Settings {
        broker: BrokerSettings {
            namespace: "enmasse-infra".into(),
            image: "enmasse-broker:test".into(),
            image_pull_policy: "IfNotPresent".into(),
            service_account: "enmasse-broker".into(),
            retain_volumes: policy == DeletePolicy::Retain,
        },
        wildcard_secret: None,
        delete_policy: policy,
        resync,
    }
}

/// A broker as the management API shows it: what was pushed, and what it holds.
#[derive(Default)]
pub(crate) struct FakeBroker {
    /// The config last pushed.
    pub(crate) config: Mutex<Option<BrokerConfig>>,
    /// Its revision, hashed once when it was pushed, as the broker does.
    revision: Mutex<String>,
    /// Messages held, by address.
    pub(crate) depths: Mutex<BTreeMap<String, u64>>,
    /// Unreachable while set.
    pub(crate) down: AtomicBool,
    /// Pushes so far, whole or patched.
    pub(crate) pushes: AtomicUsize,
    /// Of those, the patches.
    pub(crate) patches: AtomicUsize,
    /// Refuses every patch as of another config, as a broker changed meanwhile would.
    pub(crate) refuse_patches: AtomicBool,
    /// What it reported, for answering what changed since.
    reports: Mutex<Option<ReportLog>>,
    /// Each report asked for: how many addresses were answered, and whether it was whole.
    pub(crate) answered: Mutex<Vec<(usize, bool)>>,
}

impl FakeBroker {
    fn unreachable(&self, broker: &BrokerEndpoint) -> BrokerError {
        BrokerError::Unreachable {
            pod: broker.pod.clone(),
            ip: broker.ip,
            port: broker.port,
            source: std::io::ErrorKind::ConnectionRefused.into(),
        }
    }

    /// The addresses of the config last pushed.
    pub(crate) fn served(&self) -> Vec<String> {
        let config = self.config.lock().unwrap();
        config
            .iter()
            .flat_map(|c| c.addresses.iter().map(|a| a.address.clone()))
            .collect()
    }
}

impl Brokers for FakeBroker {
    fn push<'a>(
        &'a self,
        broker: &'a BrokerEndpoint,
        config: &'a BrokerConfig,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            if self.down.load(Ordering::Relaxed) {
                return Err(self.unreachable(broker));
            }
            assert_eq!(
                broker.token.len(),
                64,
                "the management token goes with every push"
            );
            self.pushes.fetch_add(1, Ordering::Relaxed);
            *self.revision.lock().unwrap() = config.revision();
            *self.config.lock().unwrap() = Some(config.clone());
            Ok(())
        })
    }

    fn patch<'a>(
        &'a self,
        broker: &'a BrokerEndpoint,
        patch: &'a ConfigPatch,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            if self.down.load(Ordering::Relaxed) {
                return Err(self.unreachable(broker));
            }
            let mut config = self.config.lock().unwrap();
            let mut revision = self.revision.lock().unwrap();
            let refuse = self.refuse_patches.load(Ordering::Relaxed);
            let Some(served) = config.as_mut().filter(|_| *revision == patch.base && !refuse) else {
                return Err(BrokerError::Refused {
                    pod: broker.pod.clone(),
                    path: "/config",
                    status: 409,
                    answer: format!("the patch is of config {}, not the one in force", patch.base),
                });
            };
            served.apply(patch.clone());
            *revision = served.revision();
            self.pushes.fetch_add(1, Ordering::Relaxed);
            self.patches.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
    }

    fn report<'a>(
        &'a self,
        broker: &'a BrokerEndpoint,
        since: Option<&'a str>,
    ) -> BoxFuture<'a, Result<ReportChanges, BrokerError>> {
        Box::pin(async move {
            if self.down.load(Ordering::Relaxed) {
                return Err(self.unreachable(broker));
            }
            let config = self.config.lock().unwrap();
            let depths = self.depths.lock().unwrap();
            let report = BrokerReport {
                revision: match config.as_ref() {
                    Some(_) => self.revision.lock().unwrap().clone(),
                    None => String::new(),
                },
                addresses: config
                    .iter()
                    .flat_map(|c| &c.addresses)
                    .map(|a| {
                        AddressReport::serving(
                            a.address.clone(),
                            depths.get(&a.address).copied().unwrap_or(0),
                        )
                    })
                    .collect(),
                problems: vec![],
            };
            let mut reports = self.reports.lock().unwrap();
            let log = reports.get_or_insert_with(|| ReportLog::new(1));
            let changes = log.changes(report, since).unwrap();
            let answer = (changes.addresses.len(), changes.whole);
            self.answered.lock().unwrap().push(answer);
            Ok(changes)
        })
    }
}
