//! `StandardInfraConfig` and `BrokeredInfraConfig` (`admin.enmasse.io/v1beta1`): how the pods of
//! the spaces on a plan are sized and scheduled.

use k8s_openapi::api::networking::v1::{NetworkPolicyEgressRule, NetworkPolicyIngressRule};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ComponentResources, InfraStatus, PodTemplate, terse_schema};

/// Infrastructure of `standard` address spaces.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "admin.enmasse.io",
    version = "v1beta1",
    kind = "StandardInfraConfig",
    namespaced,
    status = "InfraStatus",
    derive = "PartialEq",
    shortname = "sinfra",
    category = "enmasse",
    doc = "How the pods of standard address spaces are sized and scheduled",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct StandardInfraConfigSpec {
    /// The operator version this config is for; others skip upgrading to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Network policy for the spaces' pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<InfraNetworkPolicy>,
    /// The per-space admin component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminInfra>,
    /// The brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<StandardBrokerInfra>,
    /// The routers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<RouterInfra>,
}

/// Infrastructure of `brokered` address spaces.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "admin.enmasse.io",
    version = "v1beta1",
    kind = "BrokeredInfraConfig",
    namespaced,
    status = "InfraStatus",
    derive = "PartialEq",
    shortname = "binfra",
    category = "enmasse",
    doc = "How the pods of brokered address spaces are sized and scheduled",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct BrokeredInfraConfigSpec {
    /// The operator version this config is for; others skip upgrading to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Network policy for the spaces' pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<InfraNetworkPolicy>,
    /// The per-space admin component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminInfra>,
    /// The broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<BrokerInfra>,
}

/// Network policy rules for a plan's spaces.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InfraNetworkPolicy {
    /// Allowed incoming traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "terse_schema::<Vec<NetworkPolicyIngressRule>>")]
    pub ingress: Vec<NetworkPolicyIngressRule>,
    /// Allowed outgoing traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "terse_schema::<Vec<NetworkPolicyEgressRule>>")]
    pub egress: Vec<NetworkPolicyEgressRule>,
}

/// The admin component's settings.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminInfra {
    /// Memory and CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ComponentResources>,
    /// Labels, scheduling and security for its pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplate>,
}

/// What a broker does when an address is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AddressFullPolicy {
    /// Senders get no credit until there is room.
    Block,
    /// Messages are refused.
    Fail,
    /// Messages are paged to disk.
    Page,
    /// Messages are dropped.
    Drop,
}

/// A brokered space's broker settings.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerInfra {
    /// Memory, CPU and storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ComponentResources>,
    /// What happens when an address is full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_full_policy: Option<AddressFullPolicy>,
    /// The most memory all addresses may hold together, as a quantity (`256Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_max_size: Option<String>,
    /// The storage class of the broker's volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Whether a larger `storage` resizes the existing volume claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_persistent_volume_claim: Option<bool>,
    /// Labels, scheduling and security for its pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplate>,
}

/// A standard space's broker settings.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StandardBrokerInfra {
    /// Memory, CPU and storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ComponentResources>,
    /// What happens when an address is full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_full_policy: Option<AddressFullPolicy>,
    /// The most memory all addresses may hold together, as a quantity (`256Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_max_size: Option<String>,
    /// The storage class of the broker's volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Whether a larger `storage` resizes the existing volume claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_persistent_volume_claim: Option<bool>,
    /// Idle timeout of the broker's connections, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_idle_timeout: Option<u32>,
    /// Worker threads of the broker's connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_worker_threads: Option<u32>,
    /// Labels, scheduling and security for its pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplate>,
}

/// A standard space's router settings.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouterInfra {
    /// The fewest routers to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<u32>,
    /// Memory and CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ComponentResources>,
    /// Credit a router grants each link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_capacity: Option<u32>,
    /// Seconds a new connection has to finish its handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_timeout: Option<u32>,
    /// Seconds of silence before a connection is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<u32>,
    /// Worker threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_threads: Option<u32>,
    /// Connection limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<RouterPolicy>,
    /// Labels, scheduling and security for its pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplate>,
}

/// Connection limits of a space.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouterPolicy {
    /// Connections in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Connections per user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_user: Option<u32>,
    /// Connections per client host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_host: Option<u32>,
    /// Sessions per connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions_per_connection: Option<u32>,
    /// Senders per connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_senders_per_connection: Option<u32>,
    /// Receivers per connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_receivers_per_connection: Option<u32>,
}
