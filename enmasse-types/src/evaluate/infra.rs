//! The status of what the operations team provides: address space plans, address plans, infra
//! configs and authentication services.
//!
//! Each gets `Active`, or `Failed` with what to fix (a plan naming an infra config or address
//! plan that does not exist, a size that does not read, an authentication service of a type this
//! implementation does not serve); the address spaces that use it; and the fields set in its spec
//! that this implementation reads and does not act on. Fields that only describe an object to
//! people (`displayName`, `displayOrder`, `shortDescription`, `longDescription`) have nothing to
//! act on and are not listed.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use serde::Serialize;
use serde_json::Value;

use super::{Infra, name_of, space::chosen_authentication_service};
use crate::{
    quantity,
    resources::{
        address::Address,
        address_space::{AddressSpace, AddressSpaceType},
        authentication_service::{AuthenticationServiceStatus, AuthenticationServiceType},
        common::{InfraStatus, Phase, ready_condition},
        infra_config::StandardBrokerInfra,
    },
};

/// Fields that only describe an object to people.
const DESCRIPTIVE: [&str; 4] = [
    "displayName",
    "displayOrder",
    "shortDescription",
    "longDescription",
];

/// What an AddressSpacePlan's spec says that is acted on.
const SPACE_PLAN_FIELDS: [&str; 4] = [
    "addressSpaceType",
    "infraConfigRef",
    "resourceLimits",
    "addressPlans",
];

/// What an AddressPlan's spec says that is acted on (`resources` and `partitions` as quota).
const ADDRESS_PLAN_FIELDS: [&str; 8] = [
    "addressType",
    "resources",
    "partitions",
    "messageTtl",
    "messageRedelivery",
    "maxDepth",
    "maxBytes",
    "maxMessageSize",
];

/// What a BrokeredInfraConfig's spec says that is acted on (of a pod template, the type keeps
/// only what the broker's StatefulSet takes).
const BROKERED_INFRA_FIELDS: [&str; 6] = [
    "networkPolicy",
    "broker.resources",
    "broker.addressFullPolicy",
    "broker.globalMaxSize",
    "broker.storageClassName",
    "broker.podTemplate",
];

/// What a StandardInfraConfig's spec says that is acted on, beyond [`BROKERED_INFRA_FIELDS`].
const STANDARD_INFRA_FIELDS: [&str; 1] = ["router.policy"];

/// What an AuthenticationService's spec says that is acted on. The `external` settings are
/// refused with the type itself.
const AUTHENTICATION_FIELDS: [&str; 2] = ["type", "external"];

/// The status each object of the operations team's should have, by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InfraStatuses {
    /// AddressSpacePlans.
    pub space_plans: BTreeMap<String, InfraStatus>,
    /// AddressPlans.
    pub address_plans: BTreeMap<String, InfraStatus>,
    /// StandardInfraConfigs.
    pub standard_infra_configs: BTreeMap<String, InfraStatus>,
    /// BrokeredInfraConfigs.
    pub brokered_infra_configs: BTreeMap<String, InfraStatus>,
    /// AuthenticationServices.
    pub authentication_services: BTreeMap<String, AuthenticationServiceStatus>,
}

/// The statuses of `infra`'s objects, given every address space and address of the cluster.
pub fn infra_statuses(
    infra: &Infra<'_>,
    spaces: &[AddressSpace],
    addresses: &[Address],
    now: &Time,
) -> InfraStatuses {
    let mut statuses = InfraStatuses::default();
    // A space uses the plan its spec names and the one in force while a change waits.
    let plans_of = |space: &AddressSpace| {
        std::iter::once(space.spec.plan.clone())
            .chain(space.status.as_ref().and_then(|s| s.applied_plan.clone()))
            .collect::<Vec<String>>()
    };
    let uses_config = |space: &AddressSpace, config: &str| {
        let names = plans_of(space);
        infra.space_plans.iter().any(|p| {
            p.spec.address_space_type == space.spec.type_
                && names.iter().any(|name| name == name_of(&p.metadata))
                && p.spec.infra_config_ref == config
        })
    };
    for plan in infra.space_plans {
        let name = name_of(&plan.metadata);
        let used_by = users(spaces, |space| {
            space.spec.type_ == plan.spec.address_space_type && plans_of(space).iter().any(|p| p == name)
        });
        let infra_found = match plan.spec.address_space_type {
            AddressSpaceType::Standard => infra
                .standard_infra_configs
                .iter()
                .any(|c| name_of(&c.metadata) == plan.spec.infra_config_ref),
            AddressSpaceType::Brokered => infra
                .brokered_infra_configs
                .iter()
                .any(|c| name_of(&c.metadata) == plan.spec.infra_config_ref),
        };
        let mut problems = Vec::new();
        if !infra_found {
            problems.push(format!(
                "infraConfigRef {} names no {} infra config",
                plan.spec.infra_config_ref,
                plan.spec.address_space_type.as_str()
            ));
        }
        let missing: Vec<&str> = plan
            .spec
            .address_plans
            .iter()
            .filter(|wanted| {
                !infra
                    .address_plans
                    .iter()
                    .any(|p| name_of(&p.metadata) == wanted.as_str())
            })
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "addressPlans names no AddressPlan {}",
                missing.join(", ")
            ));
        }
        let status = infra_status(
            &plan.metadata,
            plan.status.as_ref().map(|s| &s.conditions),
            &problems,
            used_by,
            unsupported(&plan.spec, &SPACE_PLAN_FIELDS),
            now,
        );
        statuses.space_plans.insert(name.to_owned(), status);
    }
    for plan in infra.address_plans {
        let name = name_of(&plan.metadata);
        let spaces_with = |space: &AddressSpace| {
            let namespace = space.metadata.namespace.as_deref().unwrap_or_default();
            let prefix = format!("{}.", name_of(&space.metadata));
            addresses.iter().any(|a| {
                a.metadata.namespace.as_deref().unwrap_or_default() == namespace
                    && name_of(&a.metadata).starts_with(&prefix)
                    && (a.spec.plan == name
                        || a.status
                            .as_ref()
                            .and_then(|s| s.plan_status.as_ref())
                            .is_some_and(|p| p.name == name))
            })
        };
        let used_by = users(spaces, spaces_with);
        let status = infra_status(
            &plan.metadata,
            plan.status.as_ref().map(|s| &s.conditions),
            &[],
            used_by,
            unsupported(&plan.spec, &ADDRESS_PLAN_FIELDS),
            now,
        );
        statuses.address_plans.insert(name.to_owned(), status);
    }
    let config_users = |type_: AddressSpaceType, name: &str| {
        users(spaces, |space| {
            space.spec.type_ == type_ && uses_config(space, name)
        })
    };
    let mut standard_fields = BROKERED_INFRA_FIELDS.to_vec();
    standard_fields.extend(STANDARD_INFRA_FIELDS);
    for config in infra.standard_infra_configs {
        let name = name_of(&config.metadata);
        let problems = memory_problems(config.spec.broker.as_ref());
        let status = infra_status(
            &config.metadata,
            config.status.as_ref().map(|s| &s.conditions),
            &problems,
            config_users(AddressSpaceType::Standard, name),
            unsupported(&config.spec, &standard_fields),
            now,
        );
        statuses.standard_infra_configs.insert(name.to_owned(), status);
    }
    for config in infra.brokered_infra_configs {
        let name = name_of(&config.metadata);
        let broker = config.spec.broker.as_ref().map(|b| StandardBrokerInfra {
            resources: b.resources.clone(),
            global_max_size: b.global_max_size.clone(),
            ..StandardBrokerInfra::default()
        });
        let problems = memory_problems(broker.as_ref());
        let status = infra_status(
            &config.metadata,
            config.status.as_ref().map(|s| &s.conditions),
            &problems,
            config_users(AddressSpaceType::Brokered, name),
            unsupported(&config.spec, &BROKERED_INFRA_FIELDS),
            now,
        );
        statuses.brokered_infra_configs.insert(name.to_owned(), status);
    }
    for service in infra.authentication_services {
        let name = name_of(&service.metadata);
        let used_by = users(spaces, |space| {
            chosen_authentication_service(space, infra.authentication_services)
                .is_some_and(|chosen| name_of(&chosen.metadata) == name)
        });
        let problems = match service.spec.type_ {
            AuthenticationServiceType::External => {
                vec!["type external is not supported yet: spaces that use it are Failed".to_owned()]
            }
            _ => Vec::new(),
        };
        let previous = service.status.clone().unwrap_or_default();
        let status = infra_status(
            &service.metadata,
            Some(&previous.conditions),
            &problems,
            used_by,
            unsupported(&service.spec, &AUTHENTICATION_FIELDS),
            now,
        );
        statuses.authentication_services.insert(
            name.to_owned(),
            AuthenticationServiceStatus {
                phase: status.phase,
                message: status.message,
                conditions: status.conditions,
                observed_generation: status.observed_generation,
                used_by: status.used_by,
                unsupported_fields: status.unsupported_fields,
                ..previous
            },
        );
    }
    statuses
}

/// What is wrong with a broker's memory settings: sizes that do not read.
fn memory_problems(broker: Option<&StandardBrokerInfra>) -> Vec<String> {
    let Some(broker) = broker else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    if let Some(global) = &broker.global_max_size
        && let Err(err) = quantity::bytes(global)
    {
        problems.push(format!("broker.globalMaxSize {err}"));
    }
    if let Some(memory) = broker.resources.as_ref().and_then(|r| r.memory.as_deref())
        && let Err(err) = quantity::bytes(memory)
    {
        problems.push(format!("broker.resources.memory {err}"));
    }
    problems
}

/// The spaces `uses` selects, as `namespace/name`, sorted.
fn users(spaces: &[AddressSpace], uses: impl Fn(&AddressSpace) -> bool) -> Vec<String> {
    let found: BTreeSet<String> = spaces
        .iter()
        .filter(|space| uses(space))
        .map(|space| {
            format!(
                "{}/{}",
                space.metadata.namespace.as_deref().unwrap_or_default(),
                name_of(&space.metadata)
            )
        })
        .collect();
    found.into_iter().collect()
}

/// An object's status: `Failed` with `problems`, or `Active`.
fn infra_status(
    metadata: &ObjectMeta,
    previous: Option<&Vec<Condition>>,
    problems: &[String],
    used_by: Vec<String>,
    unsupported_fields: Vec<String>,
    now: &Time,
) -> InfraStatus {
    let (phase, message, reason) = match problems {
        [] => (Phase::Active, None, "Active"),
        _ => (Phase::Failed, Some(problems.join("; ")), "Failed"),
    };
    let generation = metadata.generation;
    let ready = ready_condition(
        previous.map(Vec::as_slice).unwrap_or_default(),
        phase == Phase::Active,
        reason,
        message.as_deref().unwrap_or_default(),
        generation,
        now,
    );
    InfraStatus {
        phase: Some(phase),
        message,
        conditions: vec![ready],
        observed_generation: generation,
        used_by,
        unsupported_fields,
    }
}

/// The fields set in `spec` (as its manifest names them) that are neither in `acted_on` (dotted
/// paths; a path covers what is under it) nor descriptive. A field wholly unsupported is named
/// once, not each field under it.
pub(crate) fn unsupported(spec: &impl Serialize, acted_on: &[&str]) -> Vec<String> {
    fn walk(path: &str, value: &Value, acted_on: &[&str], out: &mut Vec<String>) {
        let empty = match value {
            Value::Null => true,
            Value::Object(fields) => fields.is_empty(),
            Value::Array(items) => items.is_empty(),
            _ => false,
        };
        if empty
            || acted_on
                .iter()
                .any(|a| path == *a || path.starts_with(&format!("{a}.")))
        {
            return;
        }
        let below = format!("{path}.");
        match value {
            Value::Object(fields) if acted_on.iter().any(|a| a.starts_with(&below)) => {
                for (key, value) in fields {
                    walk(&format!("{below}{key}"), value, acted_on, out);
                }
            }
            _ => out.push(path.to_owned()),
        }
    }
    let mut out = Vec::new();
    if let Ok(Value::Object(fields)) = serde_json::to_value(spec) {
        for (key, value) in &fields {
            if !DESCRIPTIVE.contains(&key.as_str()) {
                walk(key, value, acted_on, &mut out);
            }
        }
    }
    out
}
