//! Writing a space's exports into the team's namespace with no more rights than the post's Role
//! grants: `create` on the kind, and `get`, `update`, `patch` on the export's own name. So an export
//! is read, then created or replaced; it is never listed, and never deleted by the operator
//! (deleting the space deletes it, through its owner reference).

use enmasse_types::exports::Export;
use k8s_openapi::{NamespaceResourceScope, api::core::v1::Service};
use kube::{
    Api, Client, Resource,
    api::{ObjectMeta, PostParams},
};
use serde::{Serialize, de::DeserializeOwned};

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The namespace does not let the operator write the export.
    #[error(
        "the operator may not write {kind} {name} in namespace {namespace}: grant its service account \
         create on {resource} and get, update on {name} there (a Role and RoleBinding, as in \
         examples/gitops/team1/rbac.yaml)"
    )]
    Forbidden {
        /// The export's kind.
        kind: &'static str,
        /// The kind's API resource (`configmaps`).
        resource: &'static str,
        /// The export's name.
        name: String,
        /// The team's namespace.
        namespace: String,
    },
    /// The API server refused or failed the request.
    #[error("failed to write {kind} {name} in namespace {namespace}")]
    Api {
        /// The export's kind.
        kind: &'static str,
        /// The export's name.
        name: String,
        /// The team's namespace.
        namespace: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
}

/// Creates or updates `export` in its namespace; an export already as it should be is left alone.
pub async fn write(client: &Client, export: &Export) -> Result<(), ExportError> {
    match export {
        Export::ConfigMap(object) => {
            upsert(client, object.clone(), "configmaps", |a, b| a.data == b.data).await
        }
        Export::Secret(object) => upsert(client, object.clone(), "secrets", |a, b| a.data == b.data).await,
        Export::Service(object) => {
            upsert(client, (**object).clone(), "services", |a, b| {
                let target = |s: &Service| s.spec.as_ref().and_then(|spec| spec.external_name.clone());
                target(a) == target(b)
            })
            .await
        }
    }
}

async fn upsert<K>(
    client: &Client,
    desired: K,
    resource: &'static str,
    same_content: impl Fn(&K, &K) -> bool,
) -> Result<(), ExportError>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + k8s_openapi::Resource
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let meta: &ObjectMeta = desired.meta();
    let name = meta.name.clone().unwrap_or_default();
    let namespace = meta.namespace.clone().unwrap_or_default();
    let kind = <K as k8s_openapi::Resource>::KIND;
    let fail = |source: kube::Error| match &source {
        kube::Error::Api(status) if status.code == 403 => ExportError::Forbidden {
            kind,
            resource,
            name: name.clone(),
            namespace: namespace.clone(),
        },
        _ => ExportError::Api {
            kind,
            name: name.clone(),
            namespace: namespace.clone(),
            source,
        },
    };
    let api: Api<K> = Api::namespaced(client.clone(), &namespace);
    match api.get_opt(&name).await.map_err(fail)? {
        None => {
            api.create(&PostParams::default(), &desired).await.map_err(fail)?;
        }
        Some(current) => {
            let owners_kept = current.meta().owner_references == desired.meta().owner_references;
            if owners_kept && same_content(&current, &desired) {
                return Ok(());
            }
            let mut replacement = desired.clone();
            replacement.meta_mut().resource_version = current.meta().resource_version.clone();
            // Keep what others put on the object: labels and annotations are not ours to drop.
            replacement.meta_mut().labels = current.meta().labels.clone();
            replacement.meta_mut().annotations = current.meta().annotations.clone();
            api.replace(&name, &PostParams::default(), &replacement)
                .await
                .map_err(fail)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
