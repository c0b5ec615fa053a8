//! Reconciling one AddressSpace, with its Addresses and MessagingUsers.
//!
//! One pass reads what the space's broker really serves, takes the verdict of
//! `enmasse_types::evaluate` on the space's manifests, then makes the cluster match it: the
//! certificate, the broker's StatefulSet and Service, the exports in the team's namespace, the
//! configuration pushed to the broker. Last, it writes the statuses that follow from what it saw.
//! What failed on the way (a certificate, an export, a push) is a status message, not an error:
//! errors are kept for API calls that may succeed on a retry.
//!
//! Deleting the space runs [`cleanup`] under the finalizer [`FINALIZER`]. It deletes the
//! infrastructure by name and never waits on the broker, so it cannot wedge a namespace.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use enmasse_types::{
    broker_config::BrokerReport,
    error::one_line,
    evaluate::{Changes, Incremental, Reports, Tenant},
    exports::{Endpoint, exports},
    resources::{
        address::Address,
        address_space::{AddressSpace, CertSpec, ExposeType},
        common::Phase,
    },
};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event, EventType},
        finalizer::{self, finalizer},
    },
};
use serde::Serialize;
use tracing::{debug, info};

use self::memory::Keyed;
pub use self::memory::SpaceMemory;
use crate::{
    brokers::{BrokerEndpoint, BrokerError},
    certificates::{self, Existing, TlsPlan},
    context::{Context, DeletePolicy},
    exports::write,
    expose,
    infra::{FIELD_MANAGER, InfraError, SpaceInfra, token_digest},
    members::Members,
    names::InfraNames,
    network_policy, orphans,
    retention::{self, Retention, retention},
    status::{Observed, space_status},
    workload,
};

/// The finalizer that removes a space's infrastructure from the operator's namespace.
pub const FINALIZER: &str = "enmasse.io/address-space";
/// How soon a space on its way to `Active` is looked at again.
const SOON: Duration = Duration::from_secs(5);
/// How soon a `Failed` space is looked at again, when no change brings it back sooner.
const AFTER_FAILURE: Duration = Duration::from_secs(30);
/// How long a pass waits for the watches to list the Addresses and MessagingUsers once.
const LISTED_WITHIN: Duration = Duration::from_secs(30);
/// The pod template annotation that carries a digest of the management token.
const TOKEN_ANNOTATION: &str = "enmasse.io/management-token-digest";

/// Why a reconcile failed; it is retried.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReconcileError {
    /// Reading or writing the space's infrastructure failed.
    #[error(transparent)]
    Infra(#[from] InfraError),
    /// Reading or writing the space's own resources failed.
    #[error("failed to {action} {kind} {namespace}/{name}")]
    Tenant {
        /// What was being done.
        action: &'static str,
        /// The kind.
        kind: String,
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The watches of Addresses and MessagingUsers have not listed them yet: a space judged now
    /// would lose the members not seen.
    #[error(
        "the Addresses and MessagingUsers are not listed yet: the operator's watches of them did not complete a list within {0:?}"
    )]
    NotListed(Duration),
    /// Adding or removing the space's finalizer failed.
    #[error("failed to keep the finalizer of address space {namespace}/{name}")]
    Finalizer {
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
        /// The cause.
        #[source]
        source: Box<finalizer::Error<ReconcileError>>,
    },
}

impl ReconcileError {
    /// A short reason, for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Infra(_) => "infrastructure",
            Self::Tenant { .. } => "tenant",
            Self::NotListed(_) => "not_listed",
            Self::Finalizer { .. } => "finalizer",
        }
    }
}

/// Reconciles `space`: applies it, or cleans up after it once it is being deleted.
pub async fn reconcile(space: Arc<AddressSpace>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = std::time::Instant::now();
    let namespace = space.namespace().unwrap_or_default();
    let name = space.name_any();
    let api: Api<AddressSpace> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, space, |event| async {
        match event {
            finalizer::Event::Apply(space) => apply(&space, &ctx).await,
            finalizer::Event::Cleanup(space) => cleanup(&space, &ctx).await,
        }
    })
    .await
    .map_err(|source| ReconcileError::Finalizer {
        namespace,
        name,
        source: Box::new(source),
    });
    ctx.metrics.reconciled(
        started.elapsed(),
        result.as_ref().err().map(ReconcileError::reason),
    );
    result
}

/// Makes the cluster match the space's manifests, and writes what came of it.
async fn apply(space: &AddressSpace, ctx: &Context) -> Result<Action, ReconcileError> {
    let key = (space.namespace().unwrap_or_default(), space.name_any());
    // Taken out of the map for the pass: the controller never reconciles one space twice at once.
    let mut memory = ctx
        .spaces
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&key)
        .unwrap_or_default();
    let result = pass(space, ctx, &mut memory).await;
    ctx.spaces
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, memory);
    result
}

/// One pass of [`apply`], with what the last one kept.
async fn pass(
    space: &AddressSpace,
    ctx: &Context,
    memory: &mut SpaceMemory,
) -> Result<Action, ReconcileError> {
    let namespace = space.namespace().unwrap_or_default();
    let name = space.name_any();
    let names = InfraNames::new(&namespace, &name);
    let infra_namespace = ctx.settings.broker.namespace.as_str();
    let infra = SpaceInfra::new(&ctx.client, infra_namespace, &names);
    let now = Time(Timestamp::now());
    let SpaceMemory {
        members,
        evaluator,
        keyed,
        report: last_report,
        changed,
        notable,
        draining,
    } = memory;
    listed(ctx).await?;
    let refreshed = ctx.members.refresh(&namespace, &name, members);
    memory::note_changed(changed, refreshed.as_ref());
    let policy = ctx.settings.delete_policy;
    retention::track_notable(notable, &members.addresses, refreshed.as_ref(), policy);
    let mut observed = Observed::default();

    // What the broker serves now, if there is one to ask.
    let pod = infra.broker_pod().await?;
    // A pod that exists may answer again, even while it restarts without an IP.
    let broker_exists = pod.is_some();
    let ip = pod
        .and_then(|p| p.status)
        .and_then(|s| s.pod_ip)
        .and_then(|ip| ip.parse().ok());
    let existing_token = infra.existing_token().await?;
    // The broker's management certificate is trusted from the space's CA alone.
    let ca_pem = infra
        .secret(&names.ca_secret())
        .await?
        .and_then(|secret| certificates::ca_pem(&secret));
    let broker = match (ip, &existing_token, ca_pem) {
        (Some(ip), Some(token), Some(ca_pem)) => Some(BrokerEndpoint::new(
            names.pod(),
            ip,
            token.clone(),
            ca_pem,
            names.management_host(infra_namespace),
        )),
        (Some(_), Some(_), None) => {
            observed.problems.push(format!(
                "the space's CA Secret {} is missing or unreadable: the broker's management certificate cannot be verified until it is issued again",
                names.ca_secret()
            ));
            None
        }
        _ => None,
    };
    // Only what changed since the last pass is asked for; the report is held for the next.
    // Without an answer nothing is held, and the next pass asks for all of it.
    let held = last_report.take();
    let mut point = None;
    // The addresses whose report changed since the one held, when the answer says.
    let mut reported: Option<BTreeSet<String>> = None;
    let report = match &broker {
        Some(endpoint) => {
            let since = held.as_ref().map(|(point, _)| point.as_str());
            match ctx.brokers.report(endpoint, since).await {
                Ok(changes) => {
                    point = Some(changes.since.clone());
                    if since.is_some() && !changes.whole && !changes.since.is_empty() {
                        let addresses = changes.addresses.iter().map(|a| &a.address);
                        reported = Some(addresses.chain(&changes.removed).cloned().collect());
                    }
                    let mut report = held.map(|(_, report)| report).unwrap_or_default();
                    report.apply(changes);
                    Some(report)
                }
                Err(err) => {
                    observed.problems.push(one_line(&err));
                    None
                }
            }
        }
        None => None,
    };
    // A broker that cannot report cannot be configured either: no push is tried.
    let broker = broker.filter(|_| report.is_some());
    let served_revision = report.as_ref().map(|r| r.revision.clone());

    let looked_at = notable.iter().filter_map(|name| members.addresses.get(name));
    let retention = retention(
        &members.addresses,
        looked_at,
        report.as_ref(),
        broker_exists,
        policy,
    );
    let addresses = Api::<Address>::namespaced(ctx.client.clone(), &namespace);
    for address in &retention.guard {
        set_finalizer(&addresses, &namespace, address, true).await?;
    }
    for address in &retention.release {
        set_finalizer(&addresses, &namespace, address, false).await?;
    }

    let snapshot = ctx.infra.snapshot();
    // A served address, by name.
    let served = |name: &str| members.addresses.get(name).filter(|_| retention.serves(name));
    let tenant = Tenant {
        namespace: &namespace,
        spaces: std::slice::from_ref(space),
        addresses: &retention.served,
        users: &members.users,
    };
    // The broker serves the config with password keys, and reports its revision with them;
    // `evaluate` knows a config by its revision without them. A broker that serves what the last
    // pass made of its config is told by that config's revision without keys.
    let mut reports: BTreeMap<String, BrokerReport> = BTreeMap::new();
    let mut unkeyed = false;
    if let Some(mut report) = report {
        if let Some(k) = keyed
            .as_ref()
            .filter(|k| k.revision == report.revision && k.revision != k.plain)
        {
            report.revision.clone_from(&k.plain);
            unkeyed = true;
        }
        reports.insert(name.clone(), report);
    }
    // The config the last pass made, with keys: a broker that serves it is sent what changed.
    let before = keyed.clone();
    // What changed since the last evaluation, when both the watches and the broker can say: the
    // evaluation then looks at those addresses alone.
    let told = memory::changes(&name, changed.replace(BTreeSet::new()), reported, notable);
    // Evaluates what was told changed, or everything when nothing could be told.
    let evaluate = |evaluator: &mut Incremental, reports: &Reports, told: Option<&Changes>| match told {
        Some(changes) => {
            evaluator.evaluate_changes(&tenant, &served, &snapshot.infra(), reports, &now, changes);
        }
        None => {
            evaluator.evaluate(&tenant, &snapshot.infra(), reports, &now);
        }
    };
    evaluate(evaluator, &reports, told.as_ref());
    // The addresses whose status may differ from the last pass's; `None`: any may.
    let mut looked_at: Option<Vec<String>> = told.map(|c| c.addresses.into_iter().collect());
    let mut look_at = |again: Option<&[String]>| match (looked_at.as_mut(), again) {
        (Some(looked_at), Some(again)) => looked_at.extend_from_slice(again),
        _ => looked_at = None,
    };
    look_at(evaluator.evaluated_again(&name));
    let mut evaluations = 1;
    let mut current =
        memory::keyed_revision(evaluator.evaluation(), &name, &members.users, ctx, keyed.as_ref()).await;
    // The report's revision was taken for another than it is, and the verdict is evaluated again
    // with the right one: when only a password changed since the last pass (the broker serves the
    // config with the old keys, which is not the latest), and when nothing was remembered (a new
    // operator) of a broker that serves the latest with its keys. When the config changed, the
    // broker does not serve it by either revision.
    let rekeyed = |after: &Keyed, before: &Keyed| after.plain == before.plain && after.keys != before.keys;
    let again = match (&current, &*keyed) {
        (Some(after), Some(before)) if unkeyed && rekeyed(after, before) => served_revision.clone(),
        (Some(after), _) if !unkeyed && after.revision != after.plain => served_revision
            .as_ref()
            .filter(|served| **served == after.revision)
            .map(|_| after.plain.clone()),
        _ => None,
    };
    if let (Some(revision), Some(report)) = (again, reports.get_mut(&name)) {
        report.revision = revision;
        // Nothing but the revision changed since the evaluation just made.
        let nothing = memory::changes(&name, Some(BTreeSet::new()), Some(BTreeSet::new()), notable);
        evaluate(evaluator, &reports, nothing.as_ref());
        look_at(evaluator.evaluated_again(&name));
        evaluations += 1;
        current =
            memory::keyed_revision(evaluator.evaluation(), &name, &members.users, ctx, keyed.as_ref()).await;
    }
    keyed.clone_from(&current);
    // The report's revision may have been set to the one without keys: the next answer sets it.
    *last_report = point.zip(reports.remove(&name));
    debug!(
        namespace,
        name,
        evaluated = evaluator.evaluated(),
        looked_at = evaluator.looked_at(),
        placed = evaluator.placed(&name),
        "evaluated"
    );
    let evaluation = evaluator.evaluation();
    memory::track_draining(draining, evaluation, looked_at.as_ref().map(|n| n.iter()));
    let Some(verdict) = evaluation.spaces.get(&name) else {
        return Ok(Action::requeue(SOON));
    };
    let mut pushed = false;
    if let (Some(config), Some(current)) = (&verdict.config, &current) {
        let openshift = certificate(space, &names, ctx, &infra, &mut observed).await?;
        let token = infra.management_token(existing_token).await?;
        // The plan in force: a plan change that does not fit is refused, and the old one stays.
        if let Some(wanted) = workload::broker_infra(&snapshot.infra(), &config.space.plan) {
            let mut set = workload::stateful_set(&names, &ctx.settings.broker, &wanted);
            // The broker reads its token at start: a new token restarts it.
            if let Some(template) = set.spec.template.metadata.as_mut() {
                template
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(TOKEN_ANNOTATION.to_owned(), token_digest(&token));
            }
            // An apply the API server refuses (a volume claim template cannot change, say) is a
            // status message: the space says what is wrong, and the rest goes on.
            match infra.apply(&set).await {
                Ok(set) => {
                    observed.broker_ready = set
                        .status
                        .and_then(|s| s.ready_replicas)
                        .is_some_and(|ready| ready >= 1);
                }
                Err(err) => observed.problems.push(one_line(&err)),
            }
            if let Err(err) = infra
                .apply(&workload::service(&names, &ctx.settings.broker, openshift))
                .await
            {
                observed.problems.push(one_line(&err));
            }
            let rules = network_policy::rules(space, &snapshot.infra(), &config.space.plan);
            let policy = network_policy::network_policy(&names, infra_namespace, &rules);
            if let Err(err) = infra.apply(&policy).await {
                observed.problems.push(one_line(&err));
            }
            expose_endpoints(space, &names, infra_namespace, &infra, &mut observed).await;
        }
        let endpoint = Endpoint {
            host: names.host(infra_namespace),
            ports: workload::client_ports(),
            ca_pem: observed.ca_pem.clone(),
            external: observed.external.clone(),
        };
        for export in exports(space, &endpoint) {
            if let Err(err) = write(&ctx.client, &export).await {
                observed.problems.push(one_line(&err));
            }
        }
        let serves_latest = served_revision.as_ref() == Some(&current.revision);
        if let Some(broker) = broker.filter(|_| !serves_latest) {
            // What changed, when the broker serves what the last pass made and this pass changed
            // it once; the whole config when the broker serves another.
            let base = before
                .as_ref()
                .map(|b| &b.revision)
                .filter(|base| evaluations == 1 && served_revision.as_ref() == Some(*base));
            let patch = base.and_then(|base| {
                memory::patch(config, &current.keys, base, evaluator.served_changes(&name)?)
            });
            let patched = match &patch {
                Some(patch) => match ctx.brokers.patch(&broker, patch).await {
                    Err(BrokerError::Refused { status: 409, .. }) => None,
                    result => Some(result),
                },
                None => None,
            };
            let result = match patched {
                Some(result) => result,
                None => {
                    ctx.brokers
                        .push(&broker, &memory::with_keys(config, &current.keys))
                        .await
                }
            };
            match result {
                Ok(()) => {
                    pushed = true;
                    let note = format!(
                        "pushed configuration revision {} to {}",
                        current.revision,
                        names.pod()
                    );
                    publish(ctx, space, EventType::Normal, "Configured", note).await;
                }
                Err(err) => observed.problems.push(one_line(&err)),
            }
        }
    }

    let status = space_status(
        space,
        verdict.status.clone(),
        &observed,
        &names,
        infra_namespace,
        &now,
    );
    // Pending and Failed wait for someone to change something (a watch brings the change);
    // Configuring is on its way and looked at again soon, and so is a change of an address that
    // waits for its broker to report it drained.
    let next = match status.phase {
        _ if pushed || !draining.is_empty() => SOON,
        Some(Phase::Configuring) => SOON,
        Some(Phase::Failed) => AFTER_FAILURE,
        _ => ctx.settings.resync,
    };
    if space.status.as_ref() != Some(&status) {
        if status.phase != space.status.as_ref().and_then(|s| s.phase) {
            let (type_, reason) = match status.phase {
                Some(Phase::Failed) => (EventType::Warning, "Failed"),
                _ => (EventType::Normal, "PhaseChanged"),
            };
            let phase = status.phase.map_or("Pending", |p| p.as_str());
            let note = format!("{phase}: {}", status.messages.join("; "));
            publish(ctx, space, type_, reason, note).await;
        }
        write_status(ctx, space, &status).await?;
    }
    for address in to_write_back(&retention, evaluator.evaluated_again(&name), served) {
        let resource = address.name_any();
        let Some(status) = evaluation.addresses.get(&resource) else {
            continue;
        };
        if let Some((_, depth)) = retention.retained.iter().find(|(n, _)| *n == resource) {
            let mut status = status.clone();
            status.phase = Some(Phase::Terminating);
            status.messages = vec![retention::retained_message(*depth)];
            if address.status.as_ref() != Some(&status) {
                write_status(ctx, address, &status).await?;
            }
        } else if address.status.as_ref() != Some(status) {
            write_status(ctx, address, status).await?;
        }
    }
    for user in members.users.iter() {
        if let Some(status) = evaluation.users.get(&user.name_any())
            && user.status.as_ref() != Some(status)
        {
            write_status(ctx, user, status).await?;
        }
    }
    debug!(namespace, name, phase = ?status.phase, pushed, "reconciled");
    Ok(Action::requeue(next))
}

/// The Addresses whose status the pass may have to write: those evaluated again (`evaluated`;
/// `None` when the space was evaluated whole: all of them) and the retained ones, whose status is
/// the verdict's made `Terminating`; `served` finds one by name. The others came out of the
/// evaluation with the status they have, and a space may have thousands.
fn to_write_back<'r>(
    retention: &'r Retention<'_>,
    evaluated: Option<&[String]>,
    served: impl Fn(&str) -> Option<&'r Address>,
) -> Vec<&'r Address> {
    let Some(evaluated) = evaluated else {
        return retention.served.iter().collect();
    };
    let retained = retention.retained.iter().map(|(name, _)| name);
    let mut names: Vec<&String> = evaluated.iter().chain(retained).collect();
    names.sort_unstable();
    names.dedup();
    names.into_iter().filter_map(|name| served(name)).collect()
}

/// Waits until the watches have listed the Addresses and MessagingUsers once.
async fn listed(ctx: &Context) -> Result<(), ReconcileError> {
    match tokio::time::timeout(LISTED_WITHIN, ctx.members.synced()).await {
        Ok(true) => Ok(()),
        _ => Err(ReconcileError::NotListed(LISTED_WITHIN)),
    }
}

/// Exposes each served endpoint that asks for it (a load balancer Service, a Route), noting where
/// clients outside reach it, and removes whatever exposed an endpoint that no longer asks: one
/// whose `expose` went or changed type, that was renamed, or that is no longer served.
async fn expose_endpoints(
    space: &AddressSpace,
    names: &InfraNames,
    namespace: &str,
    infra: &SpaceInfra<'_>,
    observed: &mut Observed,
) {
    let mut load_balancers = Vec::new();
    let mut routes = Vec::new();
    for (endpoint, wanted) in expose::exposed(space) {
        // Kept while it asks for that kind, even when it cannot be made now: a mistake in a
        // manifest does not take down what clients use until it is fixed.
        let name = expose::name(names, endpoint);
        match wanted.type_ {
            ExposeType::LoadBalancer => load_balancers.push(name),
            ExposeType::Route => routes.push(name),
        }
        let exposure = match expose::exposure(names, namespace, endpoint, wanted, observed.ca_pem.as_deref())
        {
            Ok(exposure) => exposure,
            Err(why) => {
                observed.problems.push(why);
                continue;
            }
        };
        let applied = match exposure {
            expose::Exposure::LoadBalancer(service) => infra
                .apply(&*service)
                .await
                .map(|s| expose::Exposure::LoadBalancer(Box::new(s))),
            expose::Exposure::Route(route) => infra
                .apply(&*route)
                .await
                .map(|r| expose::Exposure::Route(Box::new(r))),
        };
        match applied {
            Ok(applied) => {
                observed
                    .external
                    .insert(endpoint.name.clone(), expose::external(&applied));
            }
            Err(err) => {
                observed.problems.push(expose::apply_failed(&err, wanted));
                // What clients outside were told stays until the call succeeds again: no export
                // or certificate churns for a passing failure.
                if let Some(recorded) = expose::recorded(space, &endpoint.name) {
                    observed.external.insert(endpoint.name.clone(), recorded);
                }
            }
        }
    }
    if let Err(err) = infra.prune_exposures(&load_balancers, &routes).await {
        observed.problems.push(one_line(&err));
    }
}

/// Removes the space's infrastructure; the exports go with the space (they are owned by it).
async fn cleanup(space: &AddressSpace, ctx: &Context) -> Result<Action, ReconcileError> {
    let namespace = space.namespace().unwrap_or_default();
    let name = space.name_any();
    let names = InfraNames::new(&namespace, &name);
    SpaceInfra::new(&ctx.client, &ctx.settings.broker.namespace, &names)
        .delete_all()
        .await?;
    ctx.spaces
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&(namespace.clone(), name.clone()));
    // No broker is left to hold messages: retained addresses let go.
    listed(ctx).await?;
    let mut members = Members::default();
    ctx.members.refresh(&namespace, &name, &mut members);
    let addresses = Api::<Address>::namespaced(ctx.client.clone(), &namespace);
    for address in members.addresses.iter().filter(|a| retention::has_finalizer(a)) {
        set_finalizer(&addresses, &namespace, &address.name_any(), false).await?;
    }
    orphans::orphan(ctx, &namespace, &members.addresses, &members.users).await;
    let kept = match ctx.settings.delete_policy {
        DeletePolicy::Delete => "",
        DeletePolicy::Retain => "; its data volume is kept",
    };
    info!(namespace, name, "address space deleted{kept}");
    Ok(Action::await_change())
}

/// Provides the certificate `amqps` serves; a problem goes into `observed`. Returns whether
/// OpenShift's service CA provides it (the Service then asks for it).
async fn certificate(
    space: &AddressSpace,
    names: &InfraNames,
    ctx: &Context,
    infra: &SpaceInfra<'_>,
    observed: &mut Observed,
) -> Result<bool, ReconcileError> {
    let ca = infra.secret(&names.ca_secret()).await?;
    let tls = infra.secret(&names.tls_secret()).await?;
    let namespace = ctx.settings.broker.namespace.as_str();
    // The management API's certificate first: it makes the space's CA if there is none yet.
    let management_tls = infra.secret(&names.management_tls_secret()).await?;
    let management = match certificates::management(
        names,
        namespace,
        &names.management_host(namespace),
        ca.as_ref(),
        management_tls.as_ref(),
    ) {
        Ok(management) => management,
        Err(err) => {
            observed.problems.push(err.to_string());
            return Ok(false);
        }
    };
    infra.apply(&management.ca).await?;
    infra.apply(&management.tls).await?;
    let ca = Some(management.ca);
    let wildcard = match &ctx.settings.wildcard_secret {
        Some(secret) => infra.secret(secret).await?,
        None => None,
    };
    let cert: Option<&CertSpec> = space.spec.certificate_endpoint().and_then(|e| e.cert.as_ref());
    let existing = Existing {
        ca: ca.as_ref(),
        tls: tls.as_ref(),
        wildcard: wildcard.as_ref(),
    };
    match certificates::plan(
        names,
        namespace,
        cert,
        &[
            certificates::hosts(names, namespace),
            expose::certificate_hosts(space),
        ]
        .concat(),
        existing,
    ) {
        Ok(TlsPlan::Write(secrets)) => {
            if let Some(own) = secrets.ca.as_ref().filter(|own| Some(*own) != ca.as_ref()) {
                infra.apply(own).await?;
            }
            infra.apply(&secrets.tls).await?;
            observed.ca_pem = secrets.ca_pem;
            Ok(false)
        }
        Ok(TlsPlan::OpenShift) => Ok(true),
        Err(err) => {
            observed.problems.push(err.to_string());
            Ok(false)
        }
    }
}

/// Adds or removes [`retention::FINALIZER`] on Address `name`, guarded by its resource version.
async fn set_finalizer(
    api: &Api<Address>,
    namespace: &str,
    name: &str,
    present: bool,
) -> Result<(), ReconcileError> {
    let fail = tenant_error("update the finalizers of", "Address", namespace, name);
    let Some(address) = api
        .get_opt(name)
        .await
        .map_err(tenant_error("read", "Address", namespace, name))?
    else {
        return Ok(());
    };
    if address.finalizers().iter().any(|f| f == retention::FINALIZER) == present {
        return Ok(());
    }
    let mut finalizers: Vec<String> = address.finalizers().to_vec();
    finalizers.retain(|f| f != retention::FINALIZER);
    if present {
        finalizers.push(retention::FINALIZER.to_owned());
    }
    let patch = serde_json::json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": address.resource_version()}
    });
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        // Gone meanwhile: nothing left to guard or release.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(fail(err)),
        Ok(_) => Ok(()),
    }
}

/// Writes `status` into `resource`'s status subresource (server-side apply: fields it no longer
/// has are removed).
pub(crate) async fn write_status<K>(
    ctx: &Context,
    resource: &K,
    status: &impl Serialize,
) -> Result<(), ReconcileError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let namespace = resource.namespace().unwrap_or_default();
    let name = resource.name_any();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(tenant_error(
        "write the status of",
        &K::kind(&()),
        &namespace,
        &name,
    ))?;
    Ok(())
}

/// Publishes an event about `space`; an event that cannot be written is only logged.
async fn publish(ctx: &Context, space: &AddressSpace, type_: EventType, reason: &str, note: String) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &space.object_ref(&())).await {
        debug!(error = %err, "failed to publish an event");
    }
}

pub(crate) fn tenant_error(
    action: &'static str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> impl FnOnce(kube::Error) -> ReconcileError {
    let kind = kind.to_owned();
    let namespace = namespace.to_owned();
    let name = name.to_owned();
    move |source| ReconcileError::Tenant {
        action,
        kind,
        namespace,
        name,
        source,
    }
}

mod memory;
#[cfg(test)]
mod tests;
