//! The embedded default: one address space served from a directory of manifests.
//!
//! The directory holds what a team commits (and the plans its operations team provides):
//! multi-document YAML, with kinds other than EnMasse's passed over. It is read again whenever a
//! file changes, is added or is removed, and the result is applied live, without a restart: the
//! same rules the operator applies decide what is served. A bad manifest is reported (in the log
//! and in `GET /status`) and never stops the others. The endpoint exports the space asks for are
//! written under the data directory.

use std::{
    collections::BTreeMap,
    hash::{Hash, Hasher},
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use enmasse_types::{
    base64,
    broker_config::BrokerConfig,
    catalog::{Catalog, TenantResources},
    error::one_line,
    evaluate::{Evaluation, Incremental, Reports, waits_for_drain},
    names::FileName,
    resources::{
        address::AddressStatus,
        address_space::{AddressSpace, AddressSpaceStatus, CertProvider, EndpointStatus, PortStatus},
        common::{Phase, SimpleStatus},
    },
};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use enmasse_auth::{
    credentials::PasswordCredentials,
    tls::{SecretFiles, ServerIdentity},
    tokens::TokenReviewer,
};

mod expose;
mod files;
mod watch;

use files::{Cached, ManifestFiles};
use watch::{Notifications, Touched};
pub use watch::{POLL_INTERVAL, SAFETY_POLL, WatchMode};

use crate::{
    address::table::Applied,
    broker::Broker,
    exports,
    management::{self, Control},
};

/// How often the manifests are evaluated again, unchanged, while a change of an address waits for
/// its messages to be consumed: what the broker reports decides when the wait ends.
pub const DRAIN_RECHECK: Duration = Duration::from_secs(2);

/// At most this many addresses evaluated after a change are left to settle at the next one.
const SETTLED_LATER: usize = 64;

/// Where the standalone broker finds its manifests and writes its exports.
#[derive(Clone, Debug)]
pub struct Options {
    /// The directories (or files) of manifests, read recursively; for example the team's
    /// directory and the operations team's plans.
    pub manifests: Vec<PathBuf>,
    /// The directory for exports (and, later, the journal).
    pub data_dir: PathBuf,
    /// The namespace of manifests that name none.
    pub namespace: String,
    /// The address space to serve when the manifests define several.
    pub address_space: Option<String>,
    /// Where the plain AMQP listener really listens (if on), for the exports.
    pub amqp: Option<SocketAddr>,
    /// Where the `amqps` listener really listens (if on), and the certificate it serves.
    pub amqps: Option<(SocketAddr, Arc<crate::server::Tls>)>,
    /// Where the AMQP over WebSocket listener really listens (if on); it serves the certificate of
    /// `amqps`.
    pub wss: Option<SocketAddr>,
    /// Who reviews service-account tokens, if service-account users may log in.
    pub tokens: Option<Arc<dyn TokenReviewer>>,
    /// A directory laid out as a mounted `kubernetes.io/tls` Secret whose certificate `amqps`
    /// serves, whatever the endpoint's cert provider; followed like the manifests.
    pub tls_dir: Option<PathBuf>,
    /// How changes to the manifests are learnt of.
    pub watch: WatchMode,
}

/// A manifest that could not be read.
#[derive(Clone, Debug, Serialize)]
pub struct FileProblem {
    /// The file.
    pub file: String,
    /// What is wrong, with the document's line.
    pub problem: String,
}

/// What the last reading of the directory concluded.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// The address space served (`namespace/name`), if any.
    pub address_space: Option<String>,
    /// Why nothing (or not everything) is served.
    pub messages: Vec<String>,
    /// Files or documents that could not be read.
    pub problems: Vec<FileProblem>,
    /// The status of the space, its addresses and users, as the operator would write them: the
    /// last evaluation's, rendered when asked for rather than at every reload.
    #[serde(skip)]
    pub evaluated: bool,
}

/// The statuses of the last evaluation, as `GET /status` shows them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Statuses<'a> {
    address_spaces: BTreeMap<&'a str, &'a AddressSpaceStatus>,
    addresses: &'a BTreeMap<String, AddressStatus>,
    users: &'a BTreeMap<String, SimpleStatus>,
}

/// The standalone broker's control: reads the directory and applies what it says.
pub struct Standalone {
    options: Options,
    broker: Arc<Broker>,
    state: Mutex<State>,
    /// The listeners the space's `expose` asks for.
    exposures: Mutex<expose::Exposures>,
    /// Held for a whole refresh: two at once would each read the files, and apply in either order.
    refreshing: Mutex<()>,
    /// The verdict, kept between reloads so that only what changed is evaluated again. Locked
    /// before `state` when both are.
    evaluator: Mutex<Incremental>,
}

#[derive(Default)]
struct State {
    /// The manifests as last read.
    files: ManifestFiles,
    /// Whether the files changed since they were last applied (a reload that could not list them
    /// is tried again).
    unapplied: bool,
    /// Password users' credentials, derived once per password.
    credentials: PasswordCredentials,
    /// The certificate files of `tls_dir` as last read.
    tls_files: Option<SecretFiles>,
    /// When the manifests were last evaluated.
    evaluated: Option<Instant>,
    verdict: Verdict,
    /// The certificate served now: what it was made from, and its CA.
    certificate: Option<(String, Option<String>)>,
}

impl Standalone {
    /// A standalone control for `broker`.
    pub fn new(mut options: Options, broker: Arc<Broker>) -> Arc<Self> {
        // Notifications name absolute paths: the files are known by theirs too.
        let absolute = |path: &PathBuf| std::path::absolute(path).unwrap_or_else(|_| path.clone());
        options.manifests = options.manifests.iter().map(absolute).collect();
        options.tls_dir = options.tls_dir.as_ref().map(absolute);
        options.data_dir = absolute(&options.data_dir);
        Arc::new(Self {
            options,
            broker,
            state: Mutex::new(State::default()),
            exposures: Mutex::new(expose::Exposures::new(CancellationToken::new())),
            refreshing: Mutex::new(()),
            // The manifest files version each address they read (see `files`).
            evaluator: Mutex::new(Incremental::trusting_versions()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The evaluator; what one left half-way by a panic remembers is not trusted: its next
    /// evaluation is whole.
    fn evaluator(&self) -> std::sync::MutexGuard<'_, Incremental> {
        self.evaluator.lock().unwrap_or_else(|poisoned| {
            self.evaluator.clear_poison();
            let mut evaluator = poisoned.into_inner();
            evaluator.forget();
            evaluator
        })
    }

    /// Looks at the manifests now and applies them if anything changed, or if a change of an
    /// address waits for its messages to be consumed; returns whether it did.
    pub fn refresh(&self) -> bool {
        self.refresh_touched(&Touched::default())
    }

    /// Like [`Standalone::refresh`], reading again the files `touched` names (a notification
    /// named them) whatever their stamps say. It reads files: call it off the async workers.
    fn refresh_touched(&self, touched: &Touched) -> bool {
        let _refreshing = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        // The files are taken out of the state while they are read, so that the management API
        // (which reads the state) does not wait on the disk.
        let mut files = std::mem::take(&mut self.state().files);
        let updated = match self.options.watch {
            WatchMode::Notify => files.update(&self.options.manifests, &touched.paths, touched.rescan),
            WatchMode::Poll => files.reread_all(&self.options.manifests),
        };
        let tls_files = self.options.tls_dir.as_deref().map(SecretFiles::read);
        let mut evaluator = self.evaluator();
        let mut state = self.state();
        state.files = files;
        match updated {
            Ok(changed) => state.unapplied |= changed,
            Err(err) => {
                // Looked at again, whatever the next look finds.
                state.unapplied = true;
                let message = format!("failed to read the manifests: {err}");
                if state.verdict.messages != [message.clone()] {
                    warn!("{message}");
                    state.verdict.messages = vec![message];
                }
                return false;
            }
        }
        let draining = state.verdict.evaluated
            && evaluator.evaluation().addresses.values().any(waits_for_drain)
            && state.evaluated.is_none_or(|at| at.elapsed() >= DRAIN_RECHECK);
        if !state.unapplied && state.tls_files == tls_files && !draining {
            return false;
        }
        state.tls_files = tls_files;
        state.unapplied = false;
        let started = Instant::now();
        let catalog = catalog(state.files.files());
        drop(state);
        let read = started.elapsed();
        self.reload(catalog, &mut evaluator);
        debug!(
            read_ms = read.as_millis(),
            total_ms = started.elapsed().as_millis(),
            "manifests applied"
        );
        true
    }

    /// Watches the manifests until shutdown, as [`Options::watch`] says, applying each change;
    /// then stops the listeners of exposures and waits for their connections.
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        let mut paths = self.options.manifests.clone();
        paths.extend(self.options.tls_dir.clone());
        let mut notifications = match self.options.watch {
            WatchMode::Poll => None,
            WatchMode::Notify => {
                match Notifications::watch(&paths, std::slice::from_ref(&self.options.data_dir)) {
                    Ok(notifications) => Some(notifications),
                    Err(err) => {
                        warn!(error = %err, "the file system's notifications are not available: the manifests are looked at every {POLL_INTERVAL:?}");
                        None
                    }
                }
            }
        };
        // What changed before the notifications began is looked for once.
        let this = self.clone();
        let _ = tokio::task::spawn_blocking(move || this.refresh()).await;
        loop {
            let look_again = match &notifications {
                Some(_) => SAFETY_POLL,
                None => POLL_INTERVAL,
            };
            let touched = tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(look_again) => Touched::default(),
                next = next_change(&mut notifications) => match next {
                    Ok(touched) => touched,
                    Err(why) => {
                        warn!("the file system's notifications failed ({why}): the manifests are looked at every {POLL_INTERVAL:?}");
                        notifications = None;
                        Touched::default()
                    }
                },
            };
            let this = self.clone();
            // Reading files and deriving credentials block: not on the runtime's workers.
            let _ = tokio::task::spawn_blocking(move || this.refresh_touched(&touched)).await;
        }
        let (stop, tasks) = self.exposures.lock().unwrap_or_else(|p| p.into_inner()).handles();
        stop.cancel();
        tasks.close();
        tasks.wait().await;
    }

    fn reload(&self, (catalog, problems): (Catalog, Vec<FileProblem>), evaluator: &mut Incremental) {
        for problem in &problems {
            warn!(file = %problem.file, "{}", problem.problem);
        }

        let mut messages = Vec::new();
        let mut tenants = catalog.tenants(&self.options.namespace);
        let chosen = self
            .choose(&tenants, &mut messages)
            .map(|(index, space)| (index, space.clone()));
        let Some((index, space)) = chosen else {
            for message in &messages {
                warn!("{message}");
            }
            self.state().verdict = Verdict {
                address_space: None,
                messages,
                problems,
                evaluated: false,
            };
            return;
        };
        // Taken, not copied: a tenant may have thousands of addresses.
        let mut tenant = tenants.swap_remove(index);
        let space = &space;
        tenant.spaces.retain(|s| s.metadata.name == space.metadata.name);
        tenant.carry_statuses(evaluator.evaluation());

        let now = Time(Timestamp::now());
        let applied = self.evaluate_and_apply(&tenant, &catalog, &now, evaluator);
        // The statuses are written back, as an API server keeps them, and evaluated once more
        // against what the broker now reports, for statuses that say what it serves. A few
        // addresses just evaluated settle at the next change, which evaluates them with itself;
        // many (the first load) are settled now, or the next change would evaluate them all.
        if applied || evaluator.evaluated() > 0 {
            tenant.carry_statuses(evaluator.evaluation());
            let reports = self.reports(&tenant);
            evaluator.evaluate(&tenant.as_tenant(), &catalog.infra(), &reports, &now);
            if evaluator.evaluated() > SETTLED_LATER {
                tenant.carry_statuses(evaluator.evaluation());
                evaluator.evaluate(&tenant.as_tenant(), &catalog.infra(), &reports, &now);
            }
        }
        let evaluation = evaluator.evaluation_mut();
        let space_name = space.metadata.name.clone().unwrap_or_default();
        let mut endpoint = self.configure_tls(space, &mut messages);
        let exposed = self.exposures.lock().unwrap_or_else(|p| p.into_inner()).apply(
            space,
            &endpoint,
            self.options.amqps.as_ref().map(|(_, tls)| tls),
            &self.broker,
        );
        endpoint.external = exposed.external;
        for problem in &exposed.problems {
            warn!("{problem}");
        }
        messages.extend(exposed.problems);
        if space.spec.network_policy.is_some() {
            let message = "spec.networkPolicy is not applied: the operator applies it in a cluster; on one machine there is no network policy";
            info!(space = %space.metadata.name.as_deref().unwrap_or_default(), "{message}");
            messages.push(message.to_owned());
        }
        if let Some(verdict) = evaluation.spaces.get_mut(&space_name) {
            verdict.status.unsupported_fields.extend(exposed.unsupported);
            verdict.status.ca_cert = endpoint.ca_pem.clone();
            verdict.status.endpoint_statuses = endpoint_statuses(space, &endpoint);
            for message in &verdict.status.messages {
                info!(space = %space_name, "{message}");
            }
            if let Err(err) = exports::write(&self.options.data_dir, space, &endpoint) {
                let message = format!("failed to write the exports: {}", one_line(&err));
                warn!("{message}");
                messages.push(message);
            }
        }
        log_refusals(evaluation);
        let mut state = self.state();
        state.verdict = Verdict {
            address_space: Some(format!("{}/{space_name}", tenant.namespace)),
            messages,
            problems,
            evaluated: true,
        };
        state.evaluated = Some(Instant::now());
    }

    /// Serves the certificate the space's messaging endpoint asks for on the `amqps` listener, and
    /// says where the endpoint is.
    fn configure_tls(&self, space: &AddressSpace, messages: &mut Vec<String>) -> exports::Endpoint {
        let mut endpoint = exports::Endpoint {
            amqp: self.options.amqp,
            ..exports::Endpoint::default()
        };
        let Some((amqps, tls)) = &self.options.amqps else {
            return endpoint;
        };
        let name = space.metadata.name.clone().unwrap_or_default();
        // The space's certificate lives in a directory named after it: only a plain name may be.
        let name = match FileName::new("metadata.name", &name) {
            Ok(name) => name,
            Err(err) => {
                messages.push(format!(
                    "no certificate was made for the messaging endpoint: {}",
                    one_line(&err)
                ));
                return endpoint;
            }
        };
        let cert = space.spec.certificate_endpoint().and_then(|e| e.cert.clone());
        let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        if !amqps.ip().is_unspecified() && !amqps.ip().is_loopback() {
            hosts.push(amqps.ip().to_string());
        }
        for host in expose::certificate_hosts(space) {
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        let tls_files = self.state().tls_files.clone();
        let (recipe, made) = match (tls_files, cert) {
            (Some(files), _) => {
                // Named by a digest of the files, so that a renewed certificate is served anew.
                let mut digest = std::hash::DefaultHasher::new();
                files.hash(&mut digest);
                (format!("files:{:x}", digest.finish()), files.identity())
            }
            (None, Some(cert)) if cert.provider == CertProvider::CertBundle => {
                let recipe = format!(
                    "bundle:{}:{}",
                    cert.tls_cert.clone().unwrap_or_default(),
                    cert.tls_key.clone().unwrap_or_default()
                );
                let decode = |value: Option<String>| {
                    value
                        .as_deref()
                        .and_then(base64::decode)
                        .and_then(|b| String::from_utf8(b).ok())
                        .unwrap_or_default()
                };
                (
                    recipe,
                    ServerIdentity::from_pem(decode(cert.tls_cert), decode(cert.tls_key)),
                )
            }
            (None, other) => {
                if let Some(other @ (CertProvider::Openshift | CertProvider::Wildcard)) =
                    other.map(|c| c.provider)
                {
                    messages.push(format!(
                        "cert provider {other:?} is not available outside a cluster: the endpoint serves a certificate of the address space's self-signed CA"
                    ));
                }
                let recipe = format!("selfsigned:{}:{}", name.as_str(), hosts.join(","));
                let dir = self.options.data_dir.join("tls").join(&name);
                (recipe, ServerIdentity::self_signed(&dir, name.as_str(), &hosts))
            }
        };
        let mut state = self.state();
        if let Some((current, ca)) = state
            .certificate
            .as_ref()
            .filter(|(current, _)| *current == recipe)
        {
            let _ = current;
            endpoint.amqps = Some(*amqps);
            endpoint.wss = self.options.wss;
            endpoint.ca_pem = ca.clone();
            return endpoint;
        }
        match made.and_then(|identity| identity.server_config().map(|config| (identity, config))) {
            Ok((identity, config)) => {
                tls.set(config);
                info!(space = %name, "amqps serves a new certificate");
                state.certificate = Some((recipe, identity.ca_pem.clone()));
                endpoint.amqps = Some(*amqps);
                endpoint.wss = self.options.wss;
                endpoint.ca_pem = identity.ca_pem;
            }
            Err(err) => {
                let message = format!(
                    "failed to set up TLS for the messaging endpoint: {}",
                    one_line(&err)
                );
                warn!("{message}");
                messages.push(message);
            }
        }
        endpoint
    }

    /// The space to serve: the one named on the command line, else the only one (else the first),
    /// with the index of its tenant among `tenants`; what is wrong with the choice goes into
    /// `messages`.
    fn choose<'a>(
        &self,
        tenants: &'a [TenantResources],
        messages: &mut Vec<String>,
    ) -> Option<(usize, &'a AddressSpace)> {
        let all: Vec<(usize, &AddressSpace)> = tenants
            .iter()
            .enumerate()
            .flat_map(|(i, t)| t.spaces.iter().map(move |s| (i, s)))
            .collect();
        let chosen = match &self.options.address_space {
            Some(name) => all
                .iter()
                .find(|(_, s)| s.metadata.name.as_deref() == Some(name.as_str()))
                .copied(),
            None => all.first().copied(),
        };
        match (&chosen, all.len()) {
            (None, 0) => messages.push(format!("no AddressSpace in {}", self.describe_manifests())),
            (None, _) => messages.push(format!(
                "address space {} is not defined in {}",
                self.options.address_space.as_deref().unwrap_or_default(),
                self.describe_manifests()
            )),
            (Some((_, space)), n) if n > 1 && self.options.address_space.is_none() => messages.push(format!(
                "{n} address spaces are defined; serving {} (choose one with --address-space)",
                space.metadata.name.as_deref().unwrap_or_default()
            )),
            _ => {}
        }
        chosen
    }

    fn describe_manifests(&self) -> String {
        let paths: Vec<String> = self
            .options
            .manifests
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        paths.join(", ")
    }

    /// Evaluates and applies the config; returns whether there was one to apply.
    fn evaluate_and_apply(
        &self,
        tenant: &TenantResources,
        catalog: &Catalog,
        now: &Time,
        evaluator: &mut Incremental,
    ) -> bool {
        let started = Instant::now();
        let reports = self.reports(tenant);
        let reported = started.elapsed();
        let config = evaluator
            .evaluate(&tenant.as_tenant(), &catalog.infra(), &reports, now)
            .spaces
            .values()
            .find_map(|v| v.config.clone());
        let evaluated = started.elapsed();
        let once = evaluator.evaluated();
        let Some(config) = config else { return false };
        let applied = self.apply_config(config, tenant);
        debug!(
            report_ms = reported.as_millis(),
            evaluate_ms = (evaluated - reported).as_millis(),
            evaluated_addresses = once,
            apply_ms = (started.elapsed() - evaluated).as_millis(),
            "evaluated and applied"
        );
        if !applied.added.is_empty() || !applied.removed.is_empty() {
            info!(
                added = ?applied.added,
                removed = ?applied.removed,
                recreated = ?applied.recreated,
                "addresses changed"
            );
        }
        for (address, held) in &applied.waiting {
            info!(%address, held, "a change of type or topic waits until the address's messages are consumed");
        }
        true
    }

    fn reports(&self, tenant: &TenantResources) -> Reports {
        let mut reports = Reports::new();
        if let Some(config) = self.broker.config() {
            reports.insert(config.space.name.clone(), management::report(&self.broker));
        }
        reports.retain(|name, _| {
            tenant
                .spaces
                .iter()
                .any(|s| s.metadata.name.as_deref() == Some(name.as_str()))
        });
        reports
    }

    fn apply_config(&self, config: BrokerConfig, tenant: &TenantResources) -> Applied {
        // Password users' passwords come from their manifests, decoded only to derive their keys,
        // once per password.
        let tokens = self.options.tokens.clone();
        // Taken out of the state while keys are derived: the management API reads the state.
        let mut credentials = std::mem::take(&mut self.state().credentials);
        credentials.retain(|namespace, resource| {
            namespace == tenant.namespace
                && tenant
                    .users
                    .iter()
                    .any(|u| u.metadata.name.as_deref() == Some(resource))
        });
        let authenticator = enmasse_auth::authenticator::for_config_with(&config, tokens, |user| {
            let spec = tenant
                .users
                .iter()
                .find(|u| u.metadata.name.as_deref() == Some(user.resource.as_str()))?;
            let password = spec.spec.authentication.password.as_deref()?;
            credentials.get(&tenant.namespace, &user.resource, password)
        });
        self.state().credentials = credentials;
        self.broker.apply(config, authenticator)
    }
}

/// The resources of the manifests `files` hold, and the documents that could not be read.
fn catalog(files: &BTreeMap<PathBuf, Cached>) -> (Catalog, Vec<FileProblem>) {
    let mut catalog = Catalog::default();
    let mut problems = Vec::new();
    for (path, cached) in files {
        if let Err(err) = &cached.text {
            problems.push(FileProblem {
                file: path.display().to_string(),
                problem: err.clone(),
            });
            continue;
        }
        for document in cached.documents.iter() {
            match document {
                Ok(document) => catalog.add(document.manifest.clone()),
                Err(err) => problems.push(FileProblem {
                    file: path.display().to_string(),
                    problem: one_line(err),
                }),
            }
        }
    }
    (catalog, problems)
}

/// The next change `notifications` tell of; never, without them.
async fn next_change(notifications: &mut Option<Notifications>) -> Result<Touched, String> {
    match notifications {
        Some(notifications) => notifications.next().await,
        None => std::future::pending().await,
    }
}

/// Where each endpoint of the space really is, for its status: the listeners of its service.
fn endpoint_statuses(space: &AddressSpace, endpoint: &exports::Endpoint) -> Vec<EndpointStatus> {
    let described = endpoint.described();
    space
        .spec
        .endpoints
        .iter()
        .filter(|e| e.is_served())
        .map(|e| EndpointStatus {
            name: e.name.clone(),
            service_host: Some(described.host.clone()),
            service_ports: described
                .ports_of(e)
                .map(|(name, port)| PortStatus {
                    name: name.to_owned(),
                    port,
                })
                .collect(),
            external_host: described.external.get(&e.name).and_then(|x| x.host.clone()),
            external_ports: described
                .external
                .get(&e.name)
                .iter()
                .flat_map(|x| &x.ports)
                .map(|(name, port)| PortStatus {
                    name: name.clone(),
                    port: *port,
                })
                .collect(),
            ..EndpointStatus::default()
        })
        .collect()
}

/// Logs every address and user that is not served, with the reason.
fn log_refusals(evaluation: &Evaluation) {
    let refused = |phase: Option<Phase>| matches!(phase, Some(Phase::Failed | Phase::Pending));
    for (name, status) in evaluation.addresses.iter().filter(|(_, s)| refused(s.phase)) {
        warn!(address = %name, phase = ?status.phase, "{}", status.messages.join("; "));
    }
    for (name, status) in evaluation.users.iter().filter(|(_, s)| refused(s.phase)) {
        warn!(user = %name, phase = ?status.phase, "{}", status.message.as_deref().unwrap_or_default());
    }
}

impl Control for Standalone {
    fn apply(&self, _config: BrokerConfig) -> Result<Applied, String> {
        Err(format!(
            "this broker is configured from the manifests in {}: change those instead",
            self.describe_manifests()
        ))
    }

    fn status(&self) -> serde_json::Value {
        let evaluator = self.evaluator();
        let state = self.state();
        let mut status = serde_json::to_value(&state.verdict).unwrap_or_default();
        let statuses = Some(evaluator.evaluation())
            .filter(|_| state.verdict.evaluated)
            .map(|evaluation| Statuses {
                address_spaces: evaluation
                    .spaces
                    .iter()
                    .map(|(name, verdict)| (name.as_str(), &verdict.status))
                    .collect(),
                addresses: &evaluation.addresses,
                users: &evaluation.users,
            });
        status["statuses"] = serde_json::to_value(statuses).unwrap_or_default();
        status
    }
}
