//! The EnMasse resources of a namespace, through the Kubernetes API: apply an AddressSpace, Address
//! or MessagingUser, wait until the operator says it is ready, and read the space's export.
//!
//! "Ready" is what the operator wrote, and only for the generation applied: a status left from
//! before the last change never counts. A resource that does not get there in time is an error
//! carrying its phase and the operator's messages, which say why.

use std::{collections::BTreeMap, fmt::Debug, time::Duration};

use enmasse_types::resources::{
    address::Address,
    address_space::{AddressSpace, ExportKind},
    common::Phase,
    messaging_user::MessagingUser,
};
use k8s_openapi::{
    NamespaceResourceScope,
    api::core::v1::{ConfigMap, Secret},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::config::{ConfigError, MessagingConfig};

/// The field manager of applies made through this client.
pub const FIELD_MANAGER: &str = "enmasse-client";

/// Why a resource operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceError {
    /// No client could be built from the kubeconfig or the pod's service account.
    #[error("failed to find a Kubernetes API server (kubeconfig or in-cluster service account)")]
    Connect(#[source] kube::Error),
    /// The API server refused or failed a request.
    #[error("failed to {operation} {kind} {namespace}/{name}")]
    Api {
        /// `apply`, `read` or `list`.
        operation: &'static str,
        /// The kind.
        kind: String,
        /// The namespace.
        namespace: String,
        /// The name (empty for a list).
        name: String,
        /// The API server's answer.
        #[source]
        source: kube::Error,
    },
    /// Watching a resource failed.
    #[error("failed to watch {kind} {namespace}/{name}")]
    Watch {
        /// The kind.
        kind: String,
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
        /// Why.
        #[source]
        source: kube::runtime::wait::Error,
    },
    /// The resource was not ready in time.
    #[error("{kind} {namespace}/{name} is not ready after {after:?}: {}", describe(.phase, .messages))]
    NotReady {
        /// The kind.
        kind: String,
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
        /// How long was waited.
        after: Duration,
        /// The phase the operator last wrote, if any.
        phase: Option<Phase>,
        /// The operator's messages: why it is not ready.
        messages: Vec<String>,
    },
    /// The address space exports nothing a client can connect with.
    #[error("address space {namespace}/{space} has no ConfigMap or Secret export to connect with")]
    NoExport {
        /// The namespace.
        namespace: String,
        /// The space.
        space: String,
    },
    /// An export was found but does not describe an endpoint.
    #[error("the export {kind} {namespace}/{name} cannot be used")]
    Export {
        /// `ConfigMap` or `Secret`.
        kind: &'static str,
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
        /// What is wrong with it.
        #[source]
        source: ConfigError,
    },
}

fn describe(phase: &Option<Phase>, messages: &[String]) -> String {
    let phase = match phase {
        Some(phase) => format!("phase {phase:?}"),
        None => "no status yet (is the operator running?)".to_owned(),
    };
    match messages {
        [] => phase,
        messages => format!("{phase}: {}", messages.join("; ")),
    }
}

/// Where a resource stands, as its status says.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// Ready, by a status of the current generation.
    pub ready: bool,
    /// The phase.
    pub phase: Option<Phase>,
    /// Why it is not ready.
    pub messages: Vec<String>,
}

/// One resource of [`Resources::statuses`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// `AddressSpace`, `Address` or `MessagingUser`.
    pub kind: String,
    /// The resource's name.
    pub name: String,
    /// Where it stands.
    #[serde(flatten)]
    pub readiness: Readiness,
    /// For an address, the messages it holds, as the broker last reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<u64>,
}

impl ResourceStatus {
    fn of<K: TenantResource>(resource: &K, depth: Option<u64>) -> Self {
        Self {
            kind: K::kind(&()).into_owned(),
            name: resource.name_any(),
            readiness: resource.readiness(),
            depth,
        }
    }
}

/// A kind a team keeps in its namespace, and how to read its readiness.
pub trait TenantResource:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// Where it stands. A status computed from an older generation is not ready.
    fn readiness(&self) -> Readiness;
}

/// Whether a status computed from `observed` speaks for the resource's current generation. The API
/// server numbers generations; a status without one is taken as current only if the server numbers
/// none either.
fn current(meta: &kube::api::ObjectMeta, observed: Option<i64>) -> bool {
    match meta.generation {
        Some(generation) => observed.is_some_and(|observed| observed >= generation),
        None => true,
    }
}

impl TenantResource for AddressSpace {
    fn readiness(&self) -> Readiness {
        let status = self.status.clone().unwrap_or_default();
        Readiness {
            ready: status.is_ready && current(self.meta(), status.observed_generation),
            phase: status.phase,
            messages: status.messages,
        }
    }
}

impl TenantResource for Address {
    fn readiness(&self) -> Readiness {
        let status = self.status.clone().unwrap_or_default();
        Readiness {
            ready: status.is_ready && current(self.meta(), status.observed_generation),
            phase: status.phase,
            messages: status.messages,
        }
    }
}

impl TenantResource for MessagingUser {
    fn readiness(&self) -> Readiness {
        let status = self.status.clone().unwrap_or_default();
        Readiness {
            ready: status.phase == Some(Phase::Active) && current(self.meta(), status.observed_generation),
            phase: status.phase,
            messages: status.message.into_iter().collect(),
        }
    }
}

/// The EnMasse resources of one namespace.
#[derive(Clone)]
pub struct Resources {
    client: Client,
    namespace: String,
}

impl Resources {
    /// Resources in `namespace` (else the kubeconfig's or the pod's namespace), through the
    /// kubeconfig or the pod's service account.
    pub async fn connect(namespace: Option<&str>) -> Result<Self, ResourceError> {
        let client = Client::try_default().await.map_err(ResourceError::Connect)?;
        let namespace = namespace.map_or_else(|| client.default_namespace().to_owned(), str::to_owned);
        Ok(Self::new(client, namespace))
    }

    /// Resources in `namespace` through `client`.
    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        Self {
            client,
            namespace: namespace.into(),
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Applies `resource` (server-side apply, as [`FIELD_MANAGER`]) and returns what the server
    /// holds.
    pub async fn apply<K: TenantResource>(&self, resource: &K) -> Result<K, ResourceError> {
        let name = resource.name_any();
        let mut resource = resource.clone();
        resource.meta_mut().namespace = Some(self.namespace.clone());
        resource.meta_mut().managed_fields = None;
        resource.meta_mut().resource_version = None;
        self.api::<K>()
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&resource),
            )
            .await
            .map_err(|source| self.failed::<K>("apply", &name, source))
    }

    /// The resource `name`.
    pub async fn get<K: TenantResource>(&self, name: &str) -> Result<K, ResourceError> {
        self.api::<K>()
            .get(name)
            .await
            .map_err(|source| self.failed::<K>("read", name, source))
    }

    /// Every resource of the kind in the namespace.
    pub async fn list<K: TenantResource>(&self) -> Result<Vec<K>, ResourceError> {
        self.api::<K>()
            .list(&ListParams::default())
            .await
            .map(|list| list.items)
            .map_err(|source| self.failed::<K>("list", "", source))
    }

    /// Waits up to `timeout` until the resource `name` is ready ([`TenantResource::readiness`]),
    /// watching it; if it is not, fails with its phase and the operator's messages.
    pub async fn wait_ready<K: TenantResource>(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<K, ResourceError> {
        let ready = |resource: Option<&K>| resource.is_some_and(|r| r.readiness().ready);
        let waited = tokio::time::timeout(
            timeout,
            kube::runtime::wait::await_condition(self.api::<K>(), name, ready),
        )
        .await;
        match waited {
            Ok(Ok(Some(resource))) => Ok(resource),
            Ok(Err(source)) => Err(ResourceError::Watch {
                kind: K::kind(&()).into_owned(),
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                source,
            }),
            // Timed out, or the watch ended: say where the resource stands.
            Ok(Ok(None)) | Err(_) => {
                let readiness = match self.api::<K>().get_opt(name).await {
                    Ok(Some(resource)) => resource.readiness(),
                    Ok(None) => Readiness {
                        messages: vec!["it does not exist".to_owned()],
                        ..Readiness::default()
                    },
                    Err(source) => return Err(self.failed::<K>("read", name, source)),
                };
                Err(ResourceError::NotReady {
                    kind: K::kind(&()).into_owned(),
                    namespace: self.namespace.clone(),
                    name: name.to_owned(),
                    after: timeout,
                    phase: readiness.phase,
                    messages: readiness.messages,
                })
            }
        }
    }

    /// Every AddressSpace, Address and MessagingUser of the namespace, with where it stands, in
    /// that order and by name.
    pub async fn statuses(&self) -> Result<Vec<ResourceStatus>, ResourceError> {
        let mut statuses = Vec::new();
        for space in self.list::<AddressSpace>().await? {
            statuses.push(ResourceStatus::of(&space, None));
        }
        for address in self.list::<Address>().await? {
            let depth = address.status.as_ref().and_then(|status| status.depth);
            statuses.push(ResourceStatus::of(&address, depth));
        }
        for user in self.list::<MessagingUser>().await? {
            statuses.push(ResourceStatus::of(&user, None));
        }
        Ok(statuses)
    }

    /// How to connect to the address space `space`: the first ConfigMap or Secret one of its
    /// endpoints exports into the namespace (a Service export carries no CA).
    pub async fn export(&self, space: &str) -> Result<MessagingConfig, ResourceError> {
        let space_resource: AddressSpace = self.get(space).await?;
        let exports = space_resource
            .spec
            .endpoints
            .iter()
            .flat_map(|endpoint| endpoint.exports.iter());
        for export in exports {
            let data = match export.kind {
                ExportKind::ConfigMap => {
                    let map: ConfigMap = self.get_core(&export.name).await?;
                    map.data.unwrap_or_default()
                }
                ExportKind::Secret => {
                    let secret: Secret = self.get_core(&export.name).await?;
                    let mut data: BTreeMap<String, String> = secret.string_data.unwrap_or_default();
                    for (key, value) in secret.data.unwrap_or_default() {
                        data.insert(key, String::from_utf8_lossy(&value.0).into_owned());
                    }
                    data
                }
                ExportKind::Service => continue,
            };
            return MessagingConfig::from_export(&data).map_err(|source| ResourceError::Export {
                kind: if export.kind == ExportKind::Secret {
                    "Secret"
                } else {
                    "ConfigMap"
                },
                namespace: self.namespace.clone(),
                name: export.name.clone(),
                source,
            });
        }
        Err(ResourceError::NoExport {
            namespace: self.namespace.clone(),
            space: space.to_owned(),
        })
    }

    fn api<K: TenantResource>(&self) -> Api<K> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn get_core<K>(&self, name: &str) -> Result<K, ResourceError>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + DeserializeOwned,
    {
        Api::<K>::namespaced(self.client.clone(), &self.namespace)
            .get(name)
            .await
            .map_err(|source| ResourceError::Api {
                operation: "read",
                kind: K::kind(&()).into_owned(),
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                source,
            })
    }

    fn failed<K: TenantResource>(
        &self,
        operation: &'static str,
        name: &str,
        source: kube::Error,
    ) -> ResourceError {
        ResourceError::Api {
            operation,
            kind: K::kind(&()).into_owned(),
            namespace: self.namespace.clone(),
            name: name.to_owned(),
            source,
        }
    }
}
