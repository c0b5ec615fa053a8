//! `AddressSpacePlan` and `AddressPlan` (`admin.enmasse.io/v1beta2`): the sizes of messaging an
//! operations team offers, in EnMasse's credits (1.0 credit = one pod's worth of a resource).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    address::{AddressType, MessageRedelivery, MessageTtl},
    address_space::AddressSpaceType,
    common::InfraStatus,
};

/// A size of address space: its quota and the address plans it offers.
#[derive(CustomResource, Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "admin.enmasse.io",
    version = "v1beta2",
    kind = "AddressSpacePlan",
    namespaced,
    status = "InfraStatus",
    derive = "PartialEq",
    shortname = "asp",
    category = "enmasse",
    doc = "A plan for address spaces: the quota and the address plans offered",
    printcolumn(
        name = "Type",
        type_ = "string",
        json_path = ".spec.addressSpaceType",
        description = "The address space type"
    ),
    printcolumn(
        name = "Display Name",
        type_ = "string",
        json_path = ".spec.displayName",
        priority = 1
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct AddressSpacePlanSpec {
    /// The type of address space the plan is for.
    pub address_space_type: AddressSpaceType,
    /// The infra config (`StandardInfraConfig` or `BrokeredInfraConfig`) spaces on this plan run with.
    pub infra_config_ref: String,
    /// The most credits the space's addresses may need, per resource.
    pub resource_limits: ResourceLimits,
    /// The address plans spaces on this plan may use.
    pub address_plans: Vec<String>,
    /// The name shown to users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Where the plan is listed among the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_order: Option<i32>,
    /// One line about the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_description: Option<String>,
    /// A paragraph about the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_description: Option<String>,
}

/// Credit limits per resource. A missing limit does not limit.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceLimits {
    /// Broker credits (one credit is one broker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<f64>,
    /// Router credits (one credit is one router).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<f64>,
    /// Broker and router credits together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<f64>,
}

/// A size of address: its type and the credits it takes.
#[derive(CustomResource, Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "admin.enmasse.io",
    version = "v1beta2",
    kind = "AddressPlan",
    namespaced,
    status = "InfraStatus",
    derive = "PartialEq",
    shortname = "ap",
    category = "enmasse",
    doc = "A plan for addresses: the address type and the credits it takes",
    printcolumn(
        name = "Type",
        type_ = "string",
        json_path = ".spec.addressType",
        description = "The address type"
    ),
    printcolumn(
        name = "Display Name",
        type_ = "string",
        json_path = ".spec.displayName",
        priority = 1
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct AddressPlanSpec {
    /// The type of address the plan is for.
    pub address_type: AddressType,
    /// Credits an address on this plan takes, per resource.
    pub resources: PlanResources,
    /// For queues: how many brokers the queue is spread over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    /// The name shown to users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Where the plan is listed among the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_order: Option<i32>,
    /// One line about the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_description: Option<String>,
    /// A paragraph about the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_description: Option<String>,
    /// TTL bounds for addresses on this plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_ttl: Option<MessageTtl>,
    /// Redelivery settings for addresses on this plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_redelivery: Option<MessageRedelivery>,
    /// Most messages an address on this plan holds before senders get no more credit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u64>,
    /// Most bytes of message an address on this plan holds before senders get no more credit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Largest single message, in bytes, an address on this plan accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<u64>,
}

/// Credits one address takes.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanResources {
    /// Router credits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<f64>,
    /// Broker credits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<f64>,
}
