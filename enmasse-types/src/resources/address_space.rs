//! `AddressSpace` (`enmasse.io/v1beta1`): a private group of addresses with its own endpoints,
//! plan and authentication service.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::networking::v1::{NetworkPolicyEgressRule, NetworkPolicyIngressRule},
    apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Phase, terse_schema};

/// What a team asks for: a space of a type and plan, its endpoints, and who authenticates its clients.
#[derive(CustomResource, Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "enmasse.io",
    version = "v1beta1",
    kind = "AddressSpace",
    namespaced,
    status = "AddressSpaceStatus",
    derive = "PartialEq",
    shortname = "as",
    category = "enmasse",
    doc = "A group of addresses that share endpoints, a plan and authentication",
    printcolumn(
        name = "Type",
        type_ = "string",
        json_path = ".spec.type",
        description = "The address space type"
    ),
    printcolumn(
        name = "Plan",
        type_ = "string",
        json_path = ".spec.plan",
        description = "The address space plan"
    ),
    printcolumn(
        name = "Ready",
        type_ = "boolean",
        json_path = ".status.isReady",
        description = "Whether the address space is serving"
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
        description = "Why the address space is not ready"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AddressSpaceSpec {
    /// `standard` or `brokered`: which address types the space offers.
    #[serde(rename = "type")]
    pub type_: AddressSpaceType,
    /// The `AddressSpacePlan` that sets the space's quota and offers its address plans.
    pub plan: String,
    /// The `AuthenticationService` that authenticates the space's clients; the default one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_service: Option<AuthenticationServiceRef>,
    /// How clients reach the space, and where the connection details are exported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointSpec>,
    /// Network policy for the space's pods, replacing the infra config's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,
}

/// The two kinds of address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AddressSpaceType {
    /// Scales to many addresses and connections: anycast, multicast, queue, topic and subscription.
    Standard,
    /// One broker with JMS-style semantics: queue and topic.
    Brokered,
}

impl AddressSpaceType {
    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Brokered => "brokered",
        }
    }
}

impl std::fmt::Display for AddressSpaceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Names the authentication service of a space.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationServiceRef {
    /// The `AuthenticationService` resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Legacy: the service type (`none`, `standard`, `external`) from before services had names.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Host, port and realm overrides; the service must allow them (`allowOverride`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<AuthenticationServiceOverrides>,
}

/// Overrides of an external authentication service's settings for one space.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationServiceOverrides {
    /// The host to authenticate against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The port to authenticate against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The realm, instead of `<namespace>-<space>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
}

/// One way into the space.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSpec {
    /// The endpoint's name, unique in the space; names the export keys' port.
    pub name: String,
    /// Which service it exposes: `messaging`, `messaging-wss`, `mqtt` or `console`.
    pub service: String,
    /// How it is exposed outside the cluster; inside only when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<ExposeSpec>,
    /// Where its TLS certificate comes from; `selfsigned` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<CertSpec>,
    /// Objects written into the space's namespace with the endpoint's host, ports and CA.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<ExportSpec>,
}

/// The endpoint service of AMQP on the broker.
pub const MESSAGING_SERVICE: &str = "messaging";

/// The endpoint service of AMQP over WebSocket, in TLS, on the broker.
pub const MESSAGING_WSS_SERVICE: &str = "messaging-wss";

/// The endpoint services EnMasse defines, served or not.
pub const ENDPOINT_SERVICES: &[&str] = &[MESSAGING_SERVICE, MESSAGING_WSS_SERVICE, "mqtt", "console"];

impl EndpointSpec {
    /// Whether something serves it (`messaging`, `messaging-wss`); `mqtt` and `console` are
    /// accepted and not served.
    pub fn is_served(&self) -> bool {
        !self.port_names().is_empty()
    }

    /// The ports of its service, by the names its status and exports give them: `amqp` and
    /// `amqps` for `messaging`, `https` for `messaging-wss` (as EnMasse named them); none for a
    /// service nothing serves.
    pub fn port_names(&self) -> &'static [&'static str] {
        match self.service.as_str() {
            MESSAGING_SERVICE => &["amqp", "amqps"],
            MESSAGING_WSS_SERVICE => &["https"],
            _ => &[],
        }
    }

    /// The port of its service that serves TLS, which a route carries: `amqps` for `messaging`,
    /// `https` for `messaging-wss`.
    pub fn tls_port_name(&self) -> Option<&'static str> {
        match self.service.as_str() {
            MESSAGING_SERVICE => Some("amqps"),
            MESSAGING_WSS_SERVICE => Some("https"),
            _ => None,
        }
    }
}

impl AddressSpaceSpec {
    /// The endpoint whose `cert` the broker serves on all its TLS ports: the `messaging` one, else
    /// the first served.
    pub fn certificate_endpoint(&self) -> Option<&EndpointSpec> {
        self.endpoints
            .iter()
            .find(|e| e.service == MESSAGING_SERVICE)
            .or_else(|| self.endpoints.iter().find(|e| e.is_served()))
    }

    /// The served endpoints that ask to be exposed outside the cluster (or, on one machine,
    /// beyond loopback), with how.
    pub fn exposed_endpoints(&self) -> impl Iterator<Item = (&EndpointSpec, &ExposeSpec)> {
        self.endpoints
            .iter()
            .filter(|e| e.is_served())
            .filter_map(|e| Some((e, e.expose.as_ref()?)))
    }
}

/// How an endpoint is exposed outside the cluster.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExposeSpec {
    /// `route` (OpenShift) or `loadbalancer`.
    #[serde(rename = "type")]
    pub type_: ExposeType,
    /// The route's host; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_host: Option<String>,
    /// The service port the route targets (`amqps`, `https`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_service_port: Option<String>,
    /// Where TLS ends for a route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_tls_termination: Option<RouteTlsTermination>,
    /// Annotations for the route or load balancer service.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The service ports the load balancer exposes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_ports: Vec<String>,
    /// Client address ranges the load balancer admits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_source_ranges: Vec<String>,
}

/// The ways an endpoint can be exposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ExposeType {
    /// An OpenShift route.
    Route,
    /// A Service of type `LoadBalancer`.
    #[serde(rename = "loadbalancer")]
    LoadBalancer,
}

/// Where TLS ends for a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RouteTlsTermination {
    /// The route passes TLS through to the endpoint.
    Passthrough,
    /// The route ends TLS and opens a new TLS connection to the endpoint.
    Reencrypt,
}

/// Where an endpoint's certificate comes from.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertSpec {
    /// `selfsigned`, `openshift`, `certBundle` or `wildcard`.
    pub provider: CertProvider,
    /// The Secret that holds (or will hold) the certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// For `certBundle`: the private key, base64-encoded PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<String>,
    /// For `certBundle`: the certificate chain, base64-encoded PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<String>,
}

/// The certificate providers EnMasse knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CertProvider {
    /// A CA per address space, generated by the operator, signs the endpoint's certificate.
    Selfsigned,
    /// The OpenShift service CA issues the certificate.
    Openshift,
    /// The certificate and key are given in the manifest.
    CertBundle,
    /// A wildcard certificate configured on the operator.
    Wildcard,
}

/// An object written into the space's namespace with an endpoint's connection details.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportSpec {
    /// `ConfigMap`, `Secret` or `Service` (an `ExternalName` service).
    pub kind: ExportKind,
    /// The object's name.
    pub name: String,
}

/// The kinds of export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum ExportKind {
    /// A ConfigMap with `service.host`, `service.port.<port>` and `ca.crt`.
    ConfigMap,
    /// A Secret with the same keys.
    Secret,
    /// An `ExternalName` Service pointing at the endpoint's host.
    Service,
}

/// Network policy rules for the space's pods.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Allowed incoming traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "terse_schema::<Vec<NetworkPolicyIngressRule>>")]
    pub ingress: Vec<NetworkPolicyIngressRule>,
    /// Allowed outgoing traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "terse_schema::<Vec<NetworkPolicyEgressRule>>")]
    pub egress: Vec<NetworkPolicyEgressRule>,
}

/// What is true of an address space, written only by the component that serves it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddressSpaceStatus {
    /// Whether the space's broker is serving, as the broker itself reports.
    #[serde(default)]
    pub is_ready: bool,
    /// Where the space is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Why the space is not ready, one cause per line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
    /// The CA certificate (PEM) clients trust to reach the messaging endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// Where each endpoint really is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoint_statuses: Vec<EndpointStatus>,
    /// The plan in force. It differs from `spec.plan` while a plan change is refused (for example
    /// because the addresses would exceed the new plan's quota).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_plan: Option<String>,
    /// Kubernetes conditions; `Ready` mirrors `isReady`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Fields set in its spec that this implementation reads and does not act on: an endpoint's
    /// `cert.secretName`, endpoints of a service nothing serves, the legacy
    /// `authenticationService.type`, and, on one machine, an endpoint's `expose`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsupported_fields: Vec<String>,
}

/// Where one endpoint really is.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStatus {
    /// The endpoint's name.
    pub name: String,
    /// The endpoint's certificate (PEM), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// The host clients inside the cluster connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_host: Option<String>,
    /// The ports clients inside the cluster connect to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_ports: Vec<PortStatus>,
    /// The host clients outside the cluster connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_host: Option<String>,
    /// The ports clients outside the cluster connect to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_ports: Vec<PortStatus>,
}

/// A named port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct PortStatus {
    /// The port's name (`amqp`, `amqps`).
    pub name: String,
    /// The port number.
    pub port: u16,
}
