//! The running operator: leader election, the watches, the AddressSpace controller, and the HTTP
//! endpoint for probes and metrics.
//!
//! Only the replica that holds the Lease watches and acts. The plans, infra configs and
//! authentication services of the operator's namespace are mirrored in stores; a change to any of
//! them reconciles every space, and writes their own statuses again ([`infra_status`]). A space is also reconciled when one of its Addresses or
//! MessagingUsers changes, when its broker's StatefulSet changes (a pod that restarted or became
//! ready), when one of its Services changes (a load balancer got its address), and every resync
//! period.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use enmasse_types::{
    error::one_line,
    resources::{address::Address, address_space::AddressSpace, messaging_user::MessagingUser},
};
use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Service};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::ObjectMeta,
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        events::{Recorder, Reporter},
        reflector::{self, ObjectRef, store::Writer},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{info, warn};

use crate::{
    brokers::Brokers,
    context::{Context, InfraStores, Settings},
    infra_status,
    lease::Elector,
    members::{MemberStores, MemberWriter},
    metrics::Metrics,
    names::{MANAGED_BY, SPACE_LABEL, SPACE_NAMESPACE_LABEL},
    orphans,
    space::{self, ReconcileError},
};

/// How long a failed reconcile waits before it is tried again.
const RETRY: Duration = Duration::from_secs(15);

/// How the operator runs, beyond the reconcile settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// What every reconcile needs to know.
    pub settings: Settings,
    /// This replica's name in the Lease (its pod name).
    pub identity: String,
    /// The Lease's name, in the operator's namespace.
    pub lease_name: String,
    /// How long a Lease holds without renewal.
    pub lease_duration: Duration,
}

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorError {
    /// Another replica took over, or the Lease could not be renewed in time.
    #[error("lost the lease {0}: stopped acting so that one replica alone acts")]
    LostLease(String),
    /// The HTTP endpoint could not listen.
    #[error("failed to listen on {addr} for probes and metrics")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Runs the operator until `shutdown` is cancelled or leadership is lost, reaching the brokers
/// through `brokers`.
pub async fn run(
    client: Client,
    options: Options,
    brokers: Arc<dyn Brokers>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), OperatorError> {
    let namespace = options.settings.broker.namespace.clone();
    let elector = Elector::new(
        client.clone(),
        &namespace,
        &options.lease_name,
        &options.identity,
        options.lease_duration,
    );
    info!(lease = %options.lease_name, identity = %options.identity, "waiting to lead");
    let Some(leadership) = elector.lead(shutdown.clone()).await else {
        return Ok(());
    };
    metrics.set_leader(true);
    let lost = leadership.lost.clone();
    let outcome = tokio::select! {
        biased;
        // Dropping the controller aborts the reconciles in flight: none may outlive the Lease.
        () = lost.cancelled() => Err(OperatorError::LostLease(options.lease_name.clone())),
        () = control(client, &options, brokers, metrics.clone(), shutdown) => Ok(()),
    };
    metrics.set_leader(false);
    leadership.step_down().await;
    outcome
}

/// Watches and reconciles until `stop` is cancelled.
async fn control(
    client: Client,
    options: &Options,
    brokers: Arc<dyn Brokers>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let namespace = options.settings.broker.namespace.clone();
    let (stores, writers) = InfraStores::new();
    let (changed, mut infra_changed) = mpsc::channel::<()>(1);
    let status_changed = Arc::new(Notify::new());
    let changed = Changed {
        spaces: changed,
        statuses: status_changed.clone(),
    };
    let watches = TaskTracker::new();
    let c = &client;
    let n = namespace.as_str();
    watches.spawn(mirror(
        Api::namespaced(c.clone(), n),
        writers.space_plans,
        changed.clone(),
        stop.clone(),
    ));
    watches.spawn(mirror(
        Api::namespaced(c.clone(), n),
        writers.address_plans,
        changed.clone(),
        stop.clone(),
    ));
    watches.spawn(mirror(
        Api::namespaced(c.clone(), n),
        writers.standard_infra_configs,
        changed.clone(),
        stop.clone(),
    ));
    watches.spawn(mirror(
        Api::namespaced(c.clone(), n),
        writers.brokered_infra_configs,
        changed.clone(),
        stop.clone(),
    ));
    watches.spawn(mirror(
        Api::namespaced(c.clone(), n),
        writers.authentication_services,
        changed,
        stop.clone(),
    ));
    watches.close();

    // Judge no space against a partial view: a plan not listed yet is not a missing plan.
    tokio::select! {
        _ = stores.synced() => info!("plans, infra configs and authentication services listed"),
        () = stop.cancelled() => {
            watches.wait().await;
            return;
        }
    }
    // The members' watches are the space controller's own: each change reaches the store before
    // it triggers the reconcile of its space.
    let (members, member_writers) = MemberStores::new();
    let addresses = members_watched(Api::<Address>::all(client.clone()), member_writers.addresses);
    let users = members_watched(Api::<MessagingUser>::all(client.clone()), member_writers.users);
    let reporter = Reporter {
        controller: "enmasse-operator".to_owned(),
        instance: Some(options.identity.clone()),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        settings: options.settings.clone(),
        brokers,
        infra: stores,
        recorder: Recorder::new(client.clone(), reporter),
        metrics,
        credentials: Default::default(),
        members,
        spaces: Default::default(),
    });
    let infra_changes = futures_util::stream::poll_fn(move |cx| infra_changed.poll_recv(cx));
    let managed = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    let spaces = Controller::new(
        Api::<AddressSpace>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<StatefulSet>::namespaced(client.clone(), &namespace),
        watcher::Config::default().labels(&managed),
        |set| space_of_infra(&set.metadata),
    )
    // A load balancer that gets its address reaches the space's status and exports.
    .watches(
        Api::<Service>::namespaced(client.clone(), &namespace),
        watcher::Config::default().labels(&managed),
        |service| space_of_infra(&service.metadata),
    )
    .watches_stream(addresses, |address| space_of_member(&address.metadata))
    .watches_stream(users, |user| space_of_member(&user.metadata))
    .reconcile_all_on(infra_changes)
    .graceful_shutdown_on(stop.clone().cancelled_owned())
    .run(space::reconcile, retry, ctx.clone())
    .for_each(log_failure);
    let orphan_addresses = Controller::new(Api::<Address>::all(client.clone()), watcher::Config::default())
        .graceful_shutdown_on(stop.clone().cancelled_owned())
        .run(orphans::reconcile_address, retry, ctx.clone())
        .for_each(log_failure);
    let orphan_users = Controller::new(Api::<MessagingUser>::all(client), watcher::Config::default())
        .graceful_shutdown_on(stop.clone().cancelled_owned())
        .run(orphans::reconcile_user, retry, ctx.clone())
        .for_each(log_failure);
    let statuses = infra_status::run(ctx, status_changed, stop.clone());
    tokio::join!(spaces, orphan_addresses, orphan_users, statuses);
    stop.cancel();
    watches.wait().await;
}

/// Who hears of a change to the plans, infra configs and authentication services.
#[derive(Clone)]
struct Changed {
    /// The space controller, which reconciles every space.
    spaces: mpsc::Sender<()>,
    /// The writer of their own statuses.
    statuses: Arc<Notify>,
}

/// Mirrors kind `K` of the operator's namespace into `writer`; each change is told to `changed`.
async fn mirror<K>(api: Api<K>, writer: Writer<K>, changed: Changed, stop: CancellationToken)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let events = reflector::reflector(writer, watcher(api, watcher::Config::default()).default_backoff());
    let mut events = std::pin::pin!(events);
    // The spec each object was last seen with: a write of its status alone (the operator's own)
    // changes nothing a space depends on.
    let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = events.next() => event,
        };
        match event {
            None => return,
            Some(Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object))) => {
                let spec = serde_json::to_value(&object)
                    .map(|value| value["spec"].to_string())
                    .unwrap_or_default();
                if seen.insert(object.name_any(), spec.clone()).as_ref() != Some(&spec) {
                    // A full channel already holds a change that will reconcile everything.
                    let _ = changed.spaces.try_send(());
                    changed.statuses.notify_one();
                }
            }
            Some(Ok(watcher::Event::Delete(object))) => {
                seen.remove(&object.name_any());
                let _ = changed.spaces.try_send(());
                changed.statuses.notify_one();
            }
            Some(Ok(watcher::Event::InitDone)) => {
                let _ = changed.spaces.try_send(());
                changed.statuses.notify_one();
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => warn!(kind = %K::kind(&()), error = %one_line(&err), "watch failed; retrying"),
        }
    }
}

/// The members of kind `K` that `api` watches, each once it is in the store and recorded in the
/// journal of what changed (see [`crate::members`]).
fn members_watched<K>(
    api: Api<K>,
    mut writer: MemberWriter<K>,
) -> impl futures_util::Stream<Item = watcher::Result<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .inspect_ok(move |event| writer.apply(event))
        .touched_objects()
}

/// The space an Address or MessagingUser (`<space>.<name>`) belongs to.
fn space_of_member(metadata: &ObjectMeta) -> Option<ObjectRef<AddressSpace>> {
    let (space, _) = metadata.name.as_deref()?.split_once('.')?;
    Some(ObjectRef::new(space).within(metadata.namespace.as_deref()?))
}

/// The space a piece of infrastructure belongs to, by its labels.
fn space_of_infra(metadata: &ObjectMeta) -> Option<ObjectRef<AddressSpace>> {
    let labels = metadata.labels.as_ref()?;
    Some(ObjectRef::new(labels.get(SPACE_LABEL)?).within(labels.get(SPACE_NAMESPACE_LABEL)?))
}

/// What the controllers do after a failed reconcile: try again after a while.
fn retry<K: Resource<DynamicType = ()>>(object: Arc<K>, err: &ReconcileError, _ctx: Arc<Context>) -> Action {
    let name = object.meta().name.as_deref().unwrap_or_default();
    let namespace = object.meta().namespace.as_deref().unwrap_or_default();
    warn!(kind = %K::kind(&()), namespace, name, error = %one_line(err), "reconcile failed; retrying in {RETRY:?}");
    Action::requeue(RETRY)
}

async fn log_failure<T, E: std::error::Error>(result: Result<T, E>) {
    if let Err(err) = result {
        warn!(error = %one_line(&err), "reconcile failed");
    }
}

#[cfg(test)]
mod tests;
