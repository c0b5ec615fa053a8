//! What the operator's scenarios share: its settings, a stand-in for the brokers, and the fake
//! API server of the `tests` crate.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use enmasse_types::{
    broker_config::{AddressReport, AddressesDigest, BrokerConfig, BrokerReport},
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
pub(crate) fn settings(policy: DeletePolicy, resync: Duration) -> Settings {
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

/// A broker as the management API shows it: what was pushed, and what it holds. It does only the
/// work a change calls for, so that a bench of the operator times the operator: a patch is applied
/// by address and its revision kept by digest, and its log of reports is told what changed.
#[derive(Default)]
pub(crate) struct FakeBroker {
    /// The config last pushed.
    pub(crate) config: Mutex<Option<BrokerConfig>>,
    /// Its revision, hashed once when it was pushed, and the digest of its addresses.
    revision: Mutex<(String, AddressesDigest)>,
    /// The addresses whose report changed since the log last had one; `None`: any may have.
    unreported: Mutex<Option<BTreeSet<String>>>,
    /// The depths the log last had.
    depths_reported: Mutex<BTreeMap<String, u64>>,
    /// The time spent answering, in nanoseconds: what a bench takes off the operator's.
    pub(crate) busy: AtomicU64,
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
    /// Fails every push and patch while set (it still reports).
    pub(crate) fail_pushes: AtomicBool,
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

    /// Whether a push or patch can be taken: not while down, nor while [`Self::fail_pushes`] is
    /// set.
    fn writable(&self, broker: &BrokerEndpoint) -> Result<(), BrokerError> {
        if self.down.load(Ordering::Relaxed) {
            return Err(self.unreachable(broker));
        }
        if self.fail_pushes.load(Ordering::Relaxed) {
            return Err(BrokerError::Refused {
                pod: broker.pod.clone(),
                path: "/config",
                status: 500,
                answer: "the config could not be saved".into(),
            });
        }
        Ok(())
    }

    /// Loses the config, as a broker restarted without its data volume does.
    pub(crate) fn lose_config(&self) {
        *self.config.lock().unwrap() = None;
        *self.unreported.lock().unwrap() = None;
    }

    /// Counts the time since `started` as spent answering.
    fn spent(&self, started: Instant) {
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.busy.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The time spent answering so far.
    pub(crate) fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy.load(Ordering::Relaxed))
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
            self.writable(broker)?;
            assert_eq!(
                broker.token.len(),
                64,
                "the management token goes with every push"
            );
            let started = Instant::now();
            self.pushes.fetch_add(1, Ordering::Relaxed);
            let digest = AddressesDigest::of(&config.addresses);
            *self.revision.lock().unwrap() = (config.revision_with(digest), digest);
            *self.config.lock().unwrap() = Some(config.clone());
            *self.unreported.lock().unwrap() = None;
            self.spent(started);
            Ok(())
        })
    }

    fn patch<'a>(
        &'a self,
        broker: &'a BrokerEndpoint,
        patch: &'a ConfigPatch,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            self.writable(broker)?;
            let started = Instant::now();
            let mut config = self.config.lock().unwrap();
            let mut revision = self.revision.lock().unwrap();
            let refuse = self.refuse_patches.load(Ordering::Relaxed);
            let Some(served) = config.as_mut().filter(|_| revision.0 == patch.base && !refuse) else {
                return Err(BrokerError::Refused {
                    pod: broker.pod.clone(),
                    path: "/config",
                    status: 409,
                    answer: format!("the patch is of config {}, not the one in force", patch.base),
                });
            };
            // The digest follows each address taken out and put in.
            let (_, digest) = &mut *revision;
            let touched = patch
                .removed
                .iter()
                .chain(patch.addresses.iter().map(|a| &a.address));
            for address in touched.clone() {
                if let Some(was) = served.address(address) {
                    digest.remove(was);
                }
            }
            served.apply(patch.clone());
            for address in patch.addresses.iter().map(|a| &a.address) {
                if let Some(now) = served.address(address) {
                    digest.add(now);
                }
            }
            revision.0 = served.revision_with(revision.1);
            if let Some(unreported) = self.unreported.lock().unwrap().as_mut() {
                unreported.extend(touched.cloned());
            }
            self.pushes.fetch_add(1, Ordering::Relaxed);
            self.patches.fetch_add(1, Ordering::Relaxed);
            self.spent(started);
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
            let started = Instant::now();
            let config = self.config.lock().unwrap();
            let depths = self.depths.lock().unwrap();
            let revision = match config.as_ref() {
                Some(_) => self.revision.lock().unwrap().0.clone(),
                None => String::new(),
            };
            let report =
                |address: &str| AddressReport::serving(address, depths.get(address).copied().unwrap_or(0));
            let mut reports = self.reports.lock().unwrap();
            let mut unreported = self.unreported.lock().unwrap();
            let mut depths_reported = self.depths_reported.lock().unwrap();
            let changes = match (reports.as_mut(), unreported.as_mut()) {
                (Some(log), Some(unreported)) => {
                    // What a patch touched, and the depths set since.
                    let moved = depths
                        .iter()
                        .filter(|(a, d)| depths_reported.get(*a) != Some(d))
                        .map(|(a, _)| a)
                        .chain(depths_reported.keys().filter(|a| !depths.contains_key(*a)))
                        .cloned();
                    unreported.extend(moved.collect::<Vec<_>>());
                    let (served, removed): (Vec<String>, Vec<String>) = std::mem::take(unreported)
                        .into_iter()
                        .partition(|address| config.iter().any(|c| c.addresses.contains(address)));
                    let changed = served.iter().map(|a| report(a)).collect();
                    log.changes_told(revision, vec![], changed, removed, since)
                        .unwrap()
                }
                _ => {
                    let whole = BrokerReport {
                        revision,
                        addresses: config
                            .iter()
                            .flat_map(|c| &c.addresses)
                            .map(|a| report(&a.address))
                            .collect(),
                        problems: vec![],
                    };
                    let log = reports.get_or_insert_with(|| ReportLog::new(1));
                    *unreported = Some(BTreeSet::new());
                    log.changes(whole, since).unwrap()
                }
            };
            depths_reported.clone_from(&depths);
            self.spent(started);
            let answer = (changes.addresses.len(), changes.whole);
            self.answered.lock().unwrap().push(answer);
            Ok(changes)
        })
    }
}
