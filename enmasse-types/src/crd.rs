//! The CustomResourceDefinitions of every kind, as the operator installs them and `cargo xtask
//! codegen` writes them under `deploy/crds/`.
//!
//! The schemas are derived from the Rust types and then put in the form the API server stores, so
//! that `kubectl apply` followed by a read shows no difference (GitOps tools diff exactly that):
//! no `false` flags the server drops, no empty objects or lists. Every schema is structural.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use crate::resources::{
    address::Address,
    address_space::AddressSpace,
    authentication_service::AuthenticationService,
    infra_config::{BrokeredInfraConfig, StandardInfraConfig},
    messaging_user::MessagingUser,
    plans::{AddressPlan, AddressSpacePlan},
};

/// Every CRD of the project, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        AddressSpace::crd(),
        Address::crd(),
        MessagingUser::crd(),
        AddressSpacePlan::crd(),
        AddressPlan::crd(),
        StandardInfraConfig::crd(),
        BrokeredInfraConfig::crd(),
        AuthenticationService::crd(),
    ]
}

/// A CRD as the JSON document the API server would store and return.
pub fn to_canonical_json(crd: &CustomResourceDefinition) -> Result<Value, serde_json::Error> {
    let mut value = serde_json::to_value(crd)?;
    canonicalize(&mut value);
    Ok(value)
}

/// Drops what the API server drops on write (fields equal to their omitted default) and writes
/// numbers the way it does.
fn canonicalize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for child in map.values_mut() {
                canonicalize(child);
            }
            map.retain(|key, child| match child {
                // `subresources.status: {}` means "enable the status subresource": keep it.
                Value::Object(inner) => !inner.is_empty() || key == "status",
                Value::Array(items) => !items.is_empty(),
                Value::Bool(false) => !OMITTED_WHEN_FALSE.contains(&key.as_str()),
                Value::Null => false,
                _ => true,
            });
        }
        Value::Array(items) => items.iter_mut().for_each(canonicalize),
        // Go writes a whole float64 such as `minimum: 0` without a fraction.
        Value::Number(number) => {
            if let Some(float) = number.as_f64().filter(|f| number.is_f64() && f.fract() == 0.0)
                && float.abs() < 9.0e15
            {
                *value = Value::from(float as i64);
            }
        }
        _ => {}
    }
}

/// Boolean fields the API server omits when false (`omitempty` in the Go types).
const OMITTED_WHEN_FALSE: &[&str] = &[
    "deprecated",
    "nullable",
    "uniqueItems",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
];

/// The file name a CRD is written to under `deploy/crds/`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!(
        "{}.yaml",
        crd.metadata.name.as_deref().unwrap_or(&crd.spec.names.plural)
    )
}

#[cfg(test)]
mod tests;
