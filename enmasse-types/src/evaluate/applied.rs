//! What an address was last served as: the type, topic and plan its messages are held under.
//!
//! When what an address's spec asks cannot be served (its new plan does not exist, is not offered,
//! does not fit the quota, or its type changes while it holds messages), the address stays as it
//! was served, with a condition saying why, so that no edit of an address or of a plan removes the
//! messages it holds. EnMasse kept an address on its applied plan the same way.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::{Infra, address::find_address_plan};
use crate::{
    broker_config::BrokerReport,
    resources::{
        address::{Address, AddressStatus, AddressType, PlanStatus},
        plans::{AddressPlanSpec, PlanResources},
    },
};

/// The condition saying whether the address is served as its spec asks.
pub const APPLIED_CONDITION: &str = "Applied";

/// An address as it is served, or as its spec asks to serve it.
#[derive(Clone, Debug)]
pub(super) struct Applied<'a> {
    /// The address plan's name.
    pub plan_name: String,
    /// The plan: as the operations team defines it now, or, once it is gone, as the address's
    /// status recorded it.
    pub plan: Cow<'a, AddressPlanSpec>,
    /// The plan as the address's status recorded it, for when the plan as defined now cannot be
    /// served (it was edited to credits that do not read).
    pub recorded: Option<AddressPlanSpec>,
    /// The address type.
    pub type_: AddressType,
    /// For a subscription, its topic.
    pub topic: Option<String>,
}

/// Why an address is served otherwise than its spec asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldReason {
    /// What the spec asks cannot be served (a plan missing, not offered, over quota...): a change
    /// of the spec or of the plans ends it.
    Refused,
    /// A change of type or topic waits until the address holds no messages: the broker's report
    /// ends it.
    Draining,
}

impl HoldReason {
    /// The reason of the [`APPLIED_CONDITION`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refused => "Held",
            Self::Draining => "Draining",
        }
    }
}

/// An address served otherwise than its spec asks, and why.
#[derive(Clone, Debug)]
pub(super) struct Hold {
    pub reason: HoldReason,
    pub message: String,
}

/// What `address` was last served as, if it was: its status names the plan it was admitted on
/// (only a served address's status does, whatever its phase now), and the broker's report the
/// type and topic it serves it as (the spec's, when the broker has not said).
pub(super) fn applied<'a>(
    address: &Address,
    infra: &Infra<'a>,
    report: Option<&BrokerReport>,
) -> Option<Applied<'a>> {
    let status = address.status.as_ref()?;
    let plan_status = status.plan_status.as_ref()?;
    let spec = &address.spec;
    let reported = report
        .and_then(|r| r.address(&spec.address))
        .filter(|r| r.type_.is_some());
    let (type_, topic) = match reported {
        Some(r) => (r.type_.unwrap_or(spec.type_), r.topic.clone()),
        None => (
            spec.type_,
            spec.topic
                .clone()
                .filter(|_| spec.type_ == AddressType::Subscription),
        ),
    };
    let recorded = recorded(status, plan_status, type_);
    let (plan, recorded) = match find_address_plan(infra, &plan_status.name, type_) {
        Ok(plan) => (Cow::Borrowed(plan), Some(recorded)),
        Err(_) => (Cow::Owned(recorded), None),
    };
    Some(Applied {
        plan_name: plan_status.name.clone(),
        plan,
        recorded,
        type_,
        topic,
    })
}

/// A plan that is gone, as far as the address's status recorded what it gave the address.
fn recorded(status: &AddressStatus, plan_status: &PlanStatus, type_: AddressType) -> AddressPlanSpec {
    AddressPlanSpec {
        address_type: type_,
        resources: PlanResources {
            router: plan_status.resources.get("router").copied(),
            broker: plan_status.resources.get("broker").copied(),
        },
        partitions: plan_status.partitions,
        display_name: None,
        display_order: None,
        short_description: None,
        long_description: None,
        message_ttl: status.message_ttl.clone(),
        message_redelivery: status.message_redelivery.clone(),
        max_depth: status.limits.map(|l| l.max_depth),
        max_bytes: status.limits.map(|l| l.max_bytes),
        max_message_size: status.limits.map(|l| l.max_message_size),
    }
}

/// The [`APPLIED_CONDITION`] of a served address: true, or false with why it is `held`.
pub(super) fn applied_condition(address: &Address, held: Option<&Hold>, now: &Time) -> Condition {
    let status = if held.is_some() { "False" } else { "True" };
    let last_transition_time = address
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .find(|c| c.type_ == APPLIED_CONDITION && c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: APPLIED_CONDITION.to_owned(),
        status: status.to_owned(),
        reason: held.map_or("Applied", |h| h.reason.as_str()).to_owned(),
        message: held.map(|h| h.message.clone()).unwrap_or_default(),
        observed_generation: address.metadata.generation,
        last_transition_time,
    }
}

/// Whether an address with this status waits for its messages to be consumed before a change of
/// its spec is applied: only what its broker reports ends that, so the caller looks again soon.
pub fn waits_for_drain(status: &AddressStatus) -> bool {
    status.conditions.iter().any(|c| {
        c.type_ == APPLIED_CONDITION && c.status == "False" && c.reason == HoldReason::Draining.as_str()
    })
}
