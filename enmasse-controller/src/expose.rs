//! Endpoints exposed outside the cluster (`spec.endpoints[].expose`): a Service of type
//! `LoadBalancer`, or an OpenShift Route, per served endpoint that asks for one; and where
//! clients outside then reach it, read back from what the API server says of those objects.
//!
//! A load balancer exposes the ports of the endpoint's service (`amqp` and `amqps` for
//! `messaging`, `https` for `messaging-wss`), or those of them `loadBalancerPorts` names, admitting
//! `loadBalancerSourceRanges`. A route carries TLS to the service's TLS port (`amqps`, `https`):
//! `passthrough` (the default) hands the TLS connection to the broker, whose certificate then
//! names the route's host; `reencrypt` ends TLS at the router, which connects again trusting the
//! space's CA. Annotations go on either.

use enmasse_types::{
    exports::External,
    resources::address_space::{AddressSpace, EndpointSpec, ExposeSpec, ExposeType, RouteTlsTermination},
};
use k8s_openapi::{
    NamespaceResourceScope,
    api::core::v1::{Service, ServicePort, ServiceSpec},
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};
use serde::{Deserialize, Serialize};

use crate::{names::InfraNames, workload};

/// The port a route's clients connect to.
const ROUTE_PORT: u16 = 443;

/// What exposes one endpoint.
#[derive(Clone, Debug, PartialEq)]
pub enum Exposure {
    /// A Service of type `LoadBalancer`.
    LoadBalancer(Box<Service>),
    /// An OpenShift Route.
    Route(Box<Route>),
}

/// The name of what exposes `endpoint`: the broker's name and the endpoint's.
pub fn name(names: &InfraNames, endpoint: &EndpointSpec) -> String {
    format!("{}-{}", names.broker(), endpoint.name)
}

/// The served endpoints of `space` that ask to be exposed.
pub fn exposed(space: &AddressSpace) -> impl Iterator<Item = (&EndpointSpec, &ExposeSpec)> {
    space.spec.exposed_endpoints()
}

/// What exposes `endpoint` as `expose` asks, in `namespace`; `Err` says why it cannot be.
/// `ca_pem` is the space's CA, which a reencrypting route trusts.
pub fn exposure(
    names: &InfraNames,
    namespace: &str,
    endpoint: &EndpointSpec,
    expose: &ExposeSpec,
    ca_pem: Option<&str>,
) -> Result<Exposure, String> {
    let name = name(names, endpoint);
    if let Err(invalid) = enmasse_types::names::check_service_name(&name) {
        return Err(format!(
            "endpoint {}: {name} is not a valid object name: {}",
            endpoint.name,
            enmasse_types::error::one_line(&invalid)
        ));
    }
    let metadata = ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_owned()),
        labels: Some(names.exposure_labels()),
        annotations: (!expose.annotations.is_empty()).then(|| expose.annotations.clone()),
        ..ObjectMeta::default()
    };
    match expose.type_ {
        ExposeType::LoadBalancer => {
            let served = endpoint.port_names();
            let wanted: Vec<&str> = match expose.load_balancer_ports.is_empty() {
                true => served.to_vec(),
                false => expose.load_balancer_ports.iter().map(String::as_str).collect(),
            };
            let numbers = workload::client_ports();
            let mut ports: Vec<ServicePort> = Vec::new();
            for port in wanted {
                if ports.iter().any(|p| p.name.as_deref() == Some(port)) {
                    continue;
                }
                let Some(number) = numbers.get(port).filter(|_| served.contains(&port)) else {
                    return Err(format!(
                        "endpoint {}: loadBalancerPorts names {port:?}; service {} serves {}",
                        endpoint.name,
                        endpoint.service,
                        served.join(" and ")
                    ));
                };
                ports.push(ServicePort {
                    name: Some(port.to_owned()),
                    port: i32::from(*number),
                    target_port: Some(IntOrString::String(port.to_owned())),
                    protocol: Some("TCP".to_owned()),
                    ..ServicePort::default()
                });
            }
            Ok(Exposure::LoadBalancer(Box::new(Service {
                metadata,
                spec: Some(ServiceSpec {
                    type_: Some("LoadBalancer".to_owned()),
                    selector: Some(names.selector()),
                    ports: Some(ports),
                    load_balancer_source_ranges: (!expose.load_balancer_source_ranges.is_empty())
                        .then(|| expose.load_balancer_source_ranges.clone()),
                    ..ServiceSpec::default()
                }),
                ..Service::default()
            })))
        }
        ExposeType::Route => {
            // A route carries TLS: only the service's TLS port can take it.
            let tls_port = endpoint.tls_port_name().unwrap_or("amqps");
            let target = expose.route_service_port.as_deref().unwrap_or(tls_port);
            if target != tls_port {
                return Err(format!(
                    "endpoint {}: routeServicePort {target:?}; a route carries TLS, which service {} serves on {tls_port}",
                    endpoint.name, endpoint.service
                ));
            }
            let termination = expose
                .route_tls_termination
                .unwrap_or(RouteTlsTermination::Passthrough);
            let tls = match termination {
                RouteTlsTermination::Passthrough => RouteTls {
                    termination: "passthrough".to_owned(),
                    destination_ca_certificate: None,
                },
                // Without a CA of the space's own (the openshift provider's service CA, a
                // bundle's), the router trusts what it trusts by default.
                RouteTlsTermination::Reencrypt => RouteTls {
                    termination: "reencrypt".to_owned(),
                    destination_ca_certificate: ca_pem.map(str::to_owned),
                },
            };
            Ok(Exposure::Route(Box::new(Route {
                api_version: <Route as k8s_openapi::Resource>::API_VERSION.to_owned(),
                kind: <Route as k8s_openapi::Resource>::KIND.to_owned(),
                metadata,
                spec: RouteSpec {
                    host: expose.route_host.clone(),
                    to: RouteTarget {
                        kind: "Service".to_owned(),
                        name: names.broker(),
                    },
                    port: Some(RoutePort {
                        target_port: target.to_owned(),
                    }),
                    tls: Some(tls),
                },
                status: None,
            })))
        }
    }
}

/// Where clients outside reach what `applied` (as the API server returned it) exposes.
pub fn external(applied: &Exposure) -> External {
    match applied {
        Exposure::LoadBalancer(service) => External {
            host: service
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .and_then(|ingress| ingress.first())
                .and_then(|i| i.hostname.clone().or_else(|| i.ip.clone())),
            ports: service
                .spec
                .iter()
                .flat_map(|s| s.ports.iter().flatten())
                .filter_map(|p| Some((p.name.clone()?, u16::try_from(p.port).ok()?)))
                .collect(),
        },
        Exposure::Route(route) => External {
            host: route.spec.host.clone().or_else(|| {
                route
                    .status
                    .as_ref()
                    .and_then(|s| s.ingress.first())
                    .and_then(|i| i.host.clone())
            }),
            ports: route
                .spec
                .port
                .iter()
                .map(|p| (p.target_port.clone(), ROUTE_PORT))
                .collect(),
        },
    }
}

/// The hosts clients outside use that the broker's certificate must name: each passthrough
/// route's `routeHost`, and each exposed endpoint's external host the space's status already
/// records (a load balancer's hostname once it has one; addresses are not names).
pub fn certificate_hosts(space: &AddressSpace) -> Vec<String> {
    let mut hosts = Vec::new();
    for (endpoint, expose) in exposed(space) {
        let passthrough = expose.route_tls_termination != Some(RouteTlsTermination::Reencrypt);
        if expose.type_ == ExposeType::Route
            && passthrough
            && let Some(host) = &expose.route_host
        {
            hosts.push(host.clone());
        }
        let recorded = space
            .status
            .iter()
            .flat_map(|s| &s.endpoint_statuses)
            .find(|s| s.name == endpoint.name)
            .and_then(|s| s.external_host.clone())
            .filter(|host| host.parse::<std::net::IpAddr>().is_err());
        if let Some(host) = recorded
            && !hosts.contains(&host)
        {
            hosts.push(host);
        }
    }
    hosts
}

/// Where the space's status last said clients outside reach `endpoint`.
pub fn recorded(space: &AddressSpace, endpoint: &str) -> Option<External> {
    let status = space
        .status
        .as_ref()?
        .endpoint_statuses
        .iter()
        .find(|s| s.name == endpoint && s.external_host.is_some())?;
    Some(External {
        host: status.external_host.clone(),
        ports: status
            .external_ports
            .iter()
            .map(|p| (p.name.clone(), p.port))
            .collect(),
    })
}

/// What the status says of an exposure the API server refused: a route on a cluster without
/// OpenShift's Route API says so.
pub fn apply_failed(err: &crate::infra::InfraError, expose: &ExposeSpec) -> String {
    let missing_api = matches!(
        err,
        crate::infra::InfraError::Api { source: kube::Error::Api(status), .. } if status.code == 404
    );
    match (expose.type_, missing_api) {
        (ExposeType::Route, true) => "expose type route needs OpenShift's Route API (route.openshift.io), which this cluster does not serve; use type loadbalancer".to_owned(),
        _ => enmasse_types::error::one_line(err),
    }
}

/// An OpenShift Route (`route.openshift.io/v1`), as much of it as exposing an endpoint uses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// `route.openshift.io/v1`.
    pub api_version: String,
    /// `Route`.
    pub kind: String,
    /// Its name, namespace, labels and annotations.
    pub metadata: ObjectMeta,
    /// What it routes.
    pub spec: RouteSpec,
    /// What the router admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RouteStatus>,
}

/// A Route's spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    /// The host clients use; the router generates one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The Service it routes to.
    pub to: RouteTarget,
    /// The Service port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<RoutePort>,
    /// How TLS is handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RouteTls>,
}

/// The object a Route sends to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTarget {
    /// `Service`.
    pub kind: String,
    /// Its name.
    pub name: String,
}

/// The Service port a Route targets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutePort {
    /// The port's name.
    pub target_port: String,
}

/// A Route's TLS.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTls {
    /// `passthrough` or `reencrypt`.
    pub termination: String,
    /// For `reencrypt`: the CA the router trusts for the broker's certificate. OpenShift spells
    /// it `destinationCACertificate`, which camelCase would not.
    #[serde(
        default,
        rename = "destinationCACertificate",
        skip_serializing_if = "Option::is_none"
    )]
    pub destination_ca_certificate: Option<String>,
}

/// What the routers admitted of a Route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    /// One entry per router.
    #[serde(default)]
    pub ingress: Vec<RouteIngress>,
}

/// One router's admission of a Route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteIngress {
    /// The host it serves the Route on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl k8s_openapi::Resource for Route {
    const API_VERSION: &'static str = "route.openshift.io/v1";
    const GROUP: &'static str = "route.openshift.io";
    const KIND: &'static str = "Route";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "routes";
    type Scope = NamespaceResourceScope;
}

impl k8s_openapi::Metadata for Route {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests;
