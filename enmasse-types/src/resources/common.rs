//! Pieces shared by several kinds: the lifecycle phase, Kubernetes conditions, pod templates and
//! resource settings.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{Affinity, PodSecurityContext, ResourceRequirements, Toleration},
    apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time},
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a resource is in its life, with EnMasse's names.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
pub enum Phase {
    /// Accepted but not configured: waiting for a dependency, or refused by a quota.
    #[default]
    Pending,
    /// Admitted and being set up; not serving yet.
    Configuring,
    /// Serving, as confirmed by the component that serves it.
    Active,
    /// Cannot be served until its manifest (or something it names) is fixed.
    Failed,
    /// Being deleted.
    Terminating,
}

impl Phase {
    /// The name EnMasse gives this phase, as it appears in `status.phase`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Configuring => "Configuring",
            Self::Active => "Active",
            Self::Failed => "Failed",
            Self::Terminating => "Terminating",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The condition type every EnMasse resource reports.
pub const READY_CONDITION: &str = "Ready";

/// Builds the `Ready` condition for a resource, keeping the transition time of `previous` when the
/// status did not change, as Kubernetes conventions ask.
///
/// `now` is passed in so that the function stays pure and its callers decide the clock.
pub fn ready_condition(
    previous: &[Condition],
    ready: bool,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if ready { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == READY_CONDITION && c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: READY_CONDITION.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation,
        last_transition_time,
    }
}

/// Whether `a` and `b` are the same version of one object, as an API server tells it: every change
/// gets a new resource version, and an object deleted and made again a new uid. `None` when either
/// lacks a uid or a resource version (a manifest that no API server gave).
pub fn same_version(a: &ObjectMeta, b: &ObjectMeta) -> Option<bool> {
    match (&a.uid, &a.resource_version, &b.uid, &b.resource_version) {
        (Some(a_uid), Some(a_version), Some(b_uid), Some(b_version)) => {
            Some(a_uid == b_uid && a_version == b_version)
        }
        _ => None,
    }
}

/// Replaces the condition of the same type in `conditions`, or appends it.
pub fn set_condition(conditions: &mut Vec<Condition>, condition: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        Some(existing) => *existing = condition,
        None => conditions.push(condition),
    }
}

/// The schema of a Kubernetes type without its (long) upstream descriptions.
///
/// The upstream descriptions of types such as `Affinity` would make a CRD larger than the 256 KiB
/// that `kubectl apply` can record in its last-applied annotation; what those fields mean is
/// documented by Kubernetes itself.
pub(crate) fn terse_schema<T: JsonSchema>(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove("description");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut schema = generator.subschema_for::<T>().to_value();
    strip(&mut schema);
    schemars::Schema::try_from(schema).unwrap_or_default()
}

/// `status.phase` and `status.message` as EnMasse 0.31 gave plans, users and authentication services.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SimpleStatus {
    /// Where the resource is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Why the resource is in that phase, when it is not `Active`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Kubernetes conditions; `Ready` is always present once the resource was evaluated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The status of what the operations team provides (plans and infra configs): whether it can be
/// used, which address spaces use it, and which of its fields this implementation does not act on.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InfraStatus {
    /// `Active` when it can be used, `Failed` when it names what does not exist or cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Why it is `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Kubernetes conditions; `Ready` mirrors the phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The address spaces that use it, as `namespace/name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_by: Vec<String>,
    /// Fields set in its spec that this implementation reads and does not act on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsupported_fields: Vec<String>,
}

/// Memory (and, for brokers, storage) given to one component.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentResources {
    /// Memory request and limit, as a Kubernetes quantity (`512Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// CPU request, as a Kubernetes quantity (`500m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Size of the persistent volume, as a Kubernetes quantity (`2Gi`). Brokers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

/// Labels, scheduling and security settings merged into a component's pods.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    /// Metadata added to the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<PodTemplateMetadata>,
    /// Scheduling and security settings for the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<PodTemplateSpec>,
}

/// The metadata part of a [`PodTemplate`].
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateMetadata {
    /// Labels added to the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The spec part of a [`PodTemplate`].
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateSpec {
    /// Node and pod affinity for the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "terse_schema::<Option<Affinity>>")]
    pub affinity: Option<Affinity>,
    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "terse_schema::<Vec<Toleration>>")]
    pub tolerations: Vec<Toleration>,
    /// The priority class of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// The pods' security context (for example `fsGroup` for volume permissions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "terse_schema::<Option<PodSecurityContext>>")]
    pub security_context: Option<PodSecurityContext>,
    /// Resource requests and limits, overriding the component's `resources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "terse_schema::<Option<ResourceRequirements>>")]
    pub resources: Option<ResourceRequirements>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn ready_condition_keeps_the_transition_time_while_the_status_holds() {
        let first = ready_condition(&[], false, "Pending", "waiting", Some(1), &at(10));
        let again = ready_condition(
            std::slice::from_ref(&first),
            false,
            "Pending",
            "still waiting",
            Some(2),
            &at(20),
        );
        assert_eq!(again.last_transition_time, at(10));
        assert_eq!(again.message, "still waiting");

        let flipped = ready_condition(&[again], true, "Active", "", Some(2), &at(30));
        assert_eq!(flipped.last_transition_time, at(30));
        assert_eq!(flipped.status, "True");
    }

    #[test]
    fn set_condition_replaces_the_condition_of_the_same_type() {
        let mut conditions = vec![ready_condition(&[], false, "Pending", "", None, &at(1))];
        set_condition(
            &mut conditions,
            ready_condition(&[], true, "Active", "", None, &at(2)),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].status, "True");
    }
}
