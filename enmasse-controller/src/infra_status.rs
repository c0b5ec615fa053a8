//! Writes the status of the plans, infra configs and authentication services of the operator's
//! namespace: whether each can be used, the address spaces that use it, and the fields set in it
//! that nothing acts on (see `enmasse_types::evaluate::infra_statuses`).
//!
//! It runs once the infra stores have listed, again whenever one of those objects changes, and
//! every [`REFRESH`] so that the spaces using them stay current. The same lists of the cluster's
//! address spaces and addresses give the metrics their census. A status is written only when it
//! differs from the one the object has, so a settled cluster sees no writes.

use std::{sync::Arc, time::Duration};

use enmasse_types::{
    error::one_line,
    evaluate::infra_statuses,
    resources::{address::Address, address_space::AddressSpace},
};
use k8s_openapi::{NamespaceResourceScope, apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, Resource, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::{context::Context, infra::FIELD_MANAGER};

/// How often the statuses are computed again without a change to the objects themselves.
pub const REFRESH: Duration = Duration::from_secs(60);

/// Why the statuses could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InfraStatusError {
    /// The address spaces or addresses of the cluster could not be listed.
    #[error("failed to list the cluster's {kind}")]
    List {
        /// The kind.
        kind: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// A status could not be written.
    #[error("failed to write the status of {kind} {namespace}/{name}")]
    Write {
        /// The kind.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
}

/// Writes the statuses now, then whenever `changed` is notified or [`REFRESH`] passes, until
/// `stop` is cancelled.
pub async fn run(ctx: Arc<Context>, changed: Arc<Notify>, stop: CancellationToken) {
    loop {
        if let Err(err) = write_all(&ctx).await {
            warn!(error = %one_line(&err), "failed to write the status of plans, infra configs and authentication services");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = changed.notified() => {}
            () = tokio::time::sleep(REFRESH) => {}
        }
    }
}

/// Computes every status and writes those that changed; returns how many were written. A write
/// that fails does not keep the others from being tried; the first failure is returned.
pub async fn write_all(ctx: &Context) -> Result<usize, InfraStatusError> {
    let spaces = list::<AddressSpace>(ctx).await?;
    let addresses = list::<Address>(ctx).await?;
    ctx.metrics.census(&spaces, &addresses);
    let snapshot = ctx.infra.snapshot();
    let infra = snapshot.infra();
    let statuses = infra_statuses(&infra, &spaces, &addresses, &Time(Timestamp::now()));
    let namespace = ctx.settings.broker.namespace.as_str();
    let mut written = 0;
    let mut first_failure = None;
    let mut count = |result: Result<usize, InfraStatusError>| match result {
        Ok(n) => written += n,
        Err(err) => {
            first_failure.get_or_insert(err);
        }
    };
    for plan in infra.space_plans {
        let wanted = statuses.space_plans.get(&plan.name_any());
        count(write_if_changed(ctx, namespace, plan, plan.status.as_ref(), wanted).await);
    }
    for plan in infra.address_plans {
        let wanted = statuses.address_plans.get(&plan.name_any());
        count(write_if_changed(ctx, namespace, plan, plan.status.as_ref(), wanted).await);
    }
    for config in infra.standard_infra_configs {
        let wanted = statuses.standard_infra_configs.get(&config.name_any());
        count(write_if_changed(ctx, namespace, config, config.status.as_ref(), wanted).await);
    }
    for config in infra.brokered_infra_configs {
        let wanted = statuses.brokered_infra_configs.get(&config.name_any());
        count(write_if_changed(ctx, namespace, config, config.status.as_ref(), wanted).await);
    }
    for service in infra.authentication_services {
        let wanted = statuses.authentication_services.get(&service.name_any());
        count(write_if_changed(ctx, namespace, service, service.status.as_ref(), wanted).await);
    }
    match first_failure {
        Some(err) => Err(err),
        None => Ok(written),
    }
}

async fn list<K>(ctx: &Context) -> Result<Vec<K>, InfraStatusError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    Api::<K>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await
        .map(|list| list.items)
        .map_err(|source| InfraStatusError::List {
            kind: K::kind(&()).into_owned(),
            source,
        })
}

/// Writes `wanted` as the status of `object` unless it already has it; 1 if it wrote.
async fn write_if_changed<K, S>(
    ctx: &Context,
    namespace: &str,
    object: &K,
    current: Option<&S>,
    wanted: Option<&S>,
) -> Result<usize, InfraStatusError>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    let Some(wanted) = wanted.filter(|wanted| current != Some(*wanted)) else {
        return Ok(0);
    };
    let name = object.name_any();
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": wanted,
    });
    Api::<K>::namespaced(ctx.client.clone(), namespace)
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|source| InfraStatusError::Write {
            kind: K::kind(&()).into_owned(),
            namespace: namespace.to_owned(),
            name,
            source,
        })?;
    Ok(1)
}
