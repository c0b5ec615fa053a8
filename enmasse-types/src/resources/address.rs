//! `Address` (`enmasse.io/v1beta1`): one address of a space, named `<space>.<name>`, with a type
//! that decides its semantics and a plan that decides its share of the space's quota.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Phase;
use crate::broker_config::AddressLimits;

/// What a team asks for: an address of a type, on a plan.
#[derive(CustomResource, Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "enmasse.io",
    version = "v1beta1",
    kind = "Address",
    namespaced,
    status = "AddressStatus",
    derive = "PartialEq",
    category = "enmasse",
    doc = "An address in an address space: a queue, topic, subscription, anycast or multicast address",
    printcolumn(
        name = "Address",
        type_ = "string",
        json_path = ".spec.address",
        description = "The AMQP address"
    ),
    printcolumn(
        name = "Type",
        type_ = "string",
        json_path = ".spec.type",
        description = "The address type"
    ),
    printcolumn(
        name = "Plan",
        type_ = "string",
        json_path = ".spec.plan",
        description = "The address plan"
    ),
    printcolumn(
        name = "Ready",
        type_ = "boolean",
        json_path = ".status.isReady",
        description = "Whether the broker serves the address"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "The lifecycle phase"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.messages[0]",
        priority = 1,
        description = "Why the address is not ready"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AddressSpec {
    /// The AMQP address clients attach to; unique within the space.
    pub address: String,
    /// The semantics: `anycast`, `multicast`, `queue`, `topic`, `subscription` or `deadletter`.
    #[serde(rename = "type")]
    pub type_: AddressType,
    /// The `AddressPlan`, which must be offered by the space's plan and be for this type.
    pub plan: String,
    /// Deprecated: the space, which the resource name already says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_space: Option<String>,
    /// For a subscription: the topic address it is fed by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// For a subscription: consumer limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<SubscriptionSpec>,
    /// Bounds on message time-to-live; may only narrow the plan's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_ttl: Option<MessageTtl>,
    /// The `deadletter` address that receives expired messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
    /// The `deadletter` address that receives messages past their delivery attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadletter: Option<String>,
    /// Redelivery limits and delays; overrides the plan's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_redelivery: Option<MessageRedelivery>,
}

/// The address types, each with its own semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AddressType {
    /// Direct from a sender to one attached receiver, never stored.
    Anycast,
    /// To every attached receiver, pre-settled, never stored.
    Multicast,
    /// Store and forward; each message to one consumer.
    Queue,
    /// Publish and subscribe; every attached receiver gets every message.
    Topic,
    /// A durable queue fed by a topic.
    Subscription,
    /// A queue that collects dead and expired messages of other addresses.
    Deadletter,
}

impl AddressType {
    /// Every address type, in the order EnMasse documents them.
    pub const ALL: [Self; 6] = [
        Self::Anycast,
        Self::Multicast,
        Self::Queue,
        Self::Topic,
        Self::Subscription,
        Self::Deadletter,
    ];

    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anycast => "anycast",
            Self::Multicast => "multicast",
            Self::Queue => "queue",
            Self::Topic => "topic",
            Self::Subscription => "subscription",
            Self::Deadletter => "deadletter",
        }
    }

    /// Whether messages sent to this type are kept by the broker until consumed.
    pub fn stores_messages(self) -> bool {
        matches!(
            self,
            Self::Queue | Self::Topic | Self::Subscription | Self::Deadletter
        )
    }
}

impl std::fmt::Display for AddressType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Consumer limits of a subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionSpec {
    /// How many receivers may consume the subscription at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_consumers: Option<u32>,
}

/// Bounds on message time-to-live, in milliseconds. Incoming TTLs are clamped into them; a message
/// without a TTL gets `maximum`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageTtl {
    /// The shortest TTL a message keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<u64>,
    /// The longest TTL a message keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<u64>,
}

/// Redelivery limits and delays.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageRedelivery {
    /// Deliveries before a message goes to the dead-letter address; `-1` for no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_delivery_attempts: Option<i32>,
    /// Milliseconds before a released message is delivered again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redelivery_delay: Option<u64>,
    /// Factor applied to the delay on each further attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redelivery_delay_multiplier: Option<f64>,
    /// The longest delay, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_delivery_delay: Option<u64>,
}

/// What is true of an address, written only by the component that serves it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddressStatus {
    /// Whether the broker serves the address, as the broker itself reports.
    #[serde(default)]
    pub is_ready: bool,
    /// Where the address is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Why the address is not ready, one cause per line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
    /// The plan in force and the credits it takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_status: Option<PlanStatus>,
    /// Which brokers hold the address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub broker_statuses: Vec<BrokerStatus>,
    /// The TTL bounds in force, from the plan narrowed by the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_ttl: Option<MessageTtl>,
    /// The redelivery settings in force, from the plan overridden by the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_redelivery: Option<MessageRedelivery>,
    /// The subscription limits in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<SubscriptionSpec>,
    /// How much the address may hold, from its plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<AddressLimits>,
    /// The messages the broker holds for the address, as it last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u64>,
    /// Messages that expired at the address since its broker started, as it last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_expired: Option<u64>,
    /// Messages given up at the address (rejected, or past their delivery attempts) since its
    /// broker started, as it last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_dead_lettered: Option<u64>,
    /// Messages dropped at the address to make room (the `DROP` full policy) since its broker
    /// started, as it last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_dropped: Option<u64>,
    /// Kubernetes conditions; `Ready` mirrors `isReady`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The plan an address is configured with, and the credits it takes.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanStatus {
    /// The `AddressPlan`.
    pub name: String,
    /// How many partitions the address is spread over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    /// Credits per resource (`router`, `broker`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, f64>,
}

/// One broker that holds an address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    /// The broker cluster (StatefulSet) holding the address.
    pub cluster_id: String,
    /// The broker's AMQP container id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// `Active`, `Migrating` or `Draining`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<BrokerState>,
}

/// How a broker holds an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum BrokerState {
    /// Receives and delivers messages.
    Active,
    /// Being replaced after a plan change.
    Migrating,
    /// Only delivers what it still holds.
    Draining,
}
