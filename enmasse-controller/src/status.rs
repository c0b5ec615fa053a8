//! The status of an address space in a cluster: the verdict on its manifests (from
//! `enmasse_types::evaluate`, which already weighs what its broker reports), held to what the
//! operator saw of its infrastructure. A space is ready only when its broker runs, serves the
//! latest configuration, has its certificate and its exports are written: never merely because
//! the API calls were made.

use std::collections::BTreeMap;

use enmasse_types::{
    exports::External,
    resources::{
        address_space::{AddressSpace, AddressSpaceStatus, EndpointStatus, PortStatus},
        common::{Phase, ready_condition, set_condition},
    },
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{names::InfraNames, workload};

/// What the operator saw of a space's infrastructure in one reconcile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Whether the broker's pod is ready (its StatefulSet has a ready replica).
    pub broker_ready: bool,
    /// What failed: the certificate, an export, the configuration push. Each names its cause.
    pub problems: Vec<String>,
    /// The CA clients trust, when the certificate has one.
    pub ca_pem: Option<String>,
    /// Where clients outside reach each exposed endpoint, by endpoint name.
    pub external: BTreeMap<String, External>,
}

/// The space's status: `verdict` (what the manifests and the broker's report say), held to
/// `observed`, with the endpoints and CA the operator provides.
pub fn space_status(
    space: &AddressSpace,
    verdict: AddressSpaceStatus,
    observed: &Observed,
    names: &InfraNames,
    infra_namespace: &str,
    now: &Time,
) -> AddressSpaceStatus {
    // Failed by what the operator saw is still a space that was serving: it stays Failed while
    // held back, instead of turning Configuring on the next pass.
    let was_active = space
        .status
        .as_ref()
        .is_some_and(|s| matches!(s.phase, Some(Phase::Active | Phase::Failed)));
    let mut messages = verdict.messages.clone();
    if !observed.broker_ready {
        messages.push(format!(
            "The following StatefulSets are not ready: [{}]",
            names.broker()
        ));
    }
    messages.extend(observed.problems.iter().cloned());
    let held_back = !observed.broker_ready || !observed.problems.is_empty();
    let phase = match verdict.phase {
        // A space that was serving and stopped is Failed, as in EnMasse; one on its way is Configuring.
        Some(Phase::Active | Phase::Configuring) if held_back && was_active => Phase::Failed,
        Some(Phase::Active) if held_back => Phase::Configuring,
        Some(phase) => phase,
        None => Phase::Pending,
    };
    let ready = phase == Phase::Active;
    let mut conditions = verdict.conditions.clone();
    let previous = space
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let condition = ready_condition(
        previous,
        ready,
        phase.as_str(),
        &messages.join("; "),
        space.metadata.generation,
        now,
    );
    set_condition(&mut conditions, condition);
    AddressSpaceStatus {
        is_ready: ready,
        phase: Some(phase),
        messages,
        ca_cert: observed.ca_pem.clone(),
        endpoint_statuses: endpoint_statuses(space, names, infra_namespace, observed),
        conditions,
        ..verdict
    }
}

/// Where each of the space's served endpoints is: the broker's Service. Endpoints nothing serves
/// have no place to report; the status names them among its unsupported fields.
fn endpoint_statuses(
    space: &AddressSpace,
    names: &InfraNames,
    infra_namespace: &str,
    observed: &Observed,
) -> Vec<EndpointStatus> {
    let ports = workload::client_ports();
    space
        .spec
        .endpoints
        .iter()
        .filter(|endpoint| endpoint.is_served())
        .map(|endpoint| {
            let external = observed.external.get(&endpoint.name);
            EndpointStatus {
                name: endpoint.name.clone(),
                // A PEM, which the operator does not keep here (`caCert` holds the CA).
                cert: None,
                service_host: Some(names.host(infra_namespace)),
                service_ports: endpoint
                    .port_names()
                    .iter()
                    .filter_map(|name| {
                        Some(PortStatus {
                            name: (*name).to_owned(),
                            port: *ports.get(*name)?,
                        })
                    })
                    .collect(),
                external_host: external.and_then(|e| e.host.clone()),
                external_ports: external
                    .iter()
                    .flat_map(|e| &e.ports)
                    .map(|(name, port)| PortStatus {
                        name: name.clone(),
                        port: *port,
                    })
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
