//! `AuthenticationService` (`admin.enmasse.io/v1beta1`): who authenticates the clients of the spaces
//! that name it.
//!
//! In this implementation `none` accepts every client with full rights, `standard` is the built-in
//! credential store fed by `MessagingUser`s (no Keycloak), and `external` names a SASL server
//! elsewhere. The Keycloak-specific settings of `standard` are accepted so that EnMasse manifests
//! apply unchanged, and reported as unused.

use k8s_openapi::api::core::v1::{ResourceRequirements, SecretReference};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::terse_schema;

/// An authentication service for address spaces.
#[derive(CustomResource, Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "admin.enmasse.io",
    version = "v1beta1",
    kind = "AuthenticationService",
    namespaced,
    status = "AuthenticationServiceStatus",
    derive = "PartialEq",
    shortname = "authsvc",
    category = "enmasse",
    doc = "Who authenticates the clients of the address spaces that name this service",
    printcolumn(
        name = "Type",
        type_ = "string",
        json_path = ".spec.type",
        description = "The service type"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "The lifecycle phase"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationServiceSpec {
    /// `none`, `standard` or `external`.
    #[serde(rename = "type")]
    pub type_: AuthenticationServiceType,
    /// The realm clients authenticate in; `<namespace>-<space>` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// Settings of a `none` service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub none: Option<NoneAuthServiceSettings>,
    /// Settings of a `standard` service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard: Option<StandardAuthServiceSettings>,
    /// Settings of an `external` service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalAuthServiceSettings>,
}

/// The kinds of authentication service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AuthenticationServiceType {
    /// Every client is accepted, anonymously or with any password, and may do everything.
    None,
    /// Clients are `MessagingUser`s, with passwords or service-account tokens.
    Standard,
    /// A SASL server elsewhere authenticates the clients.
    External,
}

impl AuthenticationServiceType {
    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Standard => "standard",
            Self::External => "external",
        }
    }
}

/// A container image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageOverride {
    /// The image reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When the image is pulled (`Always`, `IfNotPresent`, `Never`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<String>,
}

/// Settings of a `none` authentication service.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NoneAuthServiceSettings {
    /// The Secret with the service's TLS certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "terse_schema::<Option<SecretReference>>")]
    pub certificate_secret: Option<SecretReference>,
    /// The image to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageOverride>,
    /// Resource requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "terse_schema::<Option<ResourceRequirements>>")]
    pub resources: Option<ResourceRequirements>,
    /// How many replicas to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
}

/// Settings of a `standard` authentication service. EnMasse ran Keycloak here; this implementation
/// keeps its credentials itself and does not use these settings.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StandardAuthServiceSettings {
    /// The Secret with the admin credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "terse_schema::<Option<SecretReference>>")]
    pub credentials_secret: Option<SecretReference>,
    /// The Secret with the service's TLS certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "terse_schema::<Option<SecretReference>>")]
    pub certificate_secret: Option<SecretReference>,
    /// The service account it runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// The name of its Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_name: Option<String>,
    /// The name of its Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// The name of its route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_name: Option<String>,
    /// The image to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageOverride>,
    /// The init container image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_image: Option<ImageOverride>,
    /// JVM options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jvm_options: Option<String>,
    /// Resource requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "terse_schema::<Option<ResourceRequirements>>")]
    pub resources: Option<ResourceRequirements>,
    /// Where it keeps its data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<AuthServiceStorage>,
    /// Its database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datasource: Option<AuthServiceDatasource>,
    /// How many replicas to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
}

/// Storage of a `standard` authentication service.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthServiceStorage {
    /// `ephemeral` or `persistent-claim`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The storage class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// The volume size, as a quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// The claim's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_name: Option<String>,
    /// Whether the claim is deleted with the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_claim: Option<bool>,
}

/// The database of a `standard` authentication service.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthServiceDatasource {
    /// `h2` or `postgresql`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The database host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The database port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The database name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The Secret with the database credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "terse_schema::<Option<SecretReference>>")]
    pub credentials_secret: Option<SecretReference>,
}

/// Settings of an `external` authentication service.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalAuthServiceSettings {
    /// The SASL server's host.
    pub host: String,
    /// The SASL server's port.
    pub port: u16,
    /// The Secret with the CA that signed the server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "terse_schema::<Option<SecretReference>>")]
    pub ca_cert_secret: Option<SecretReference>,
    /// The Secret with the client certificate to present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "terse_schema::<Option<SecretReference>>")]
    pub client_cert_secret: Option<SecretReference>,
    /// Whether address spaces may override host, port and realm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_override: Option<bool>,
}

/// Where an authentication service can be reached.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationServiceStatus {
    /// The host it listens on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The port it listens on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The Secret with its CA certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "terse_schema::<Option<SecretReference>>")]
    pub ca_cert_secret: Option<SecretReference>,
    /// The Secret with the client certificate to present to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "terse_schema::<Option<SecretReference>>")]
    pub client_cert_secret: Option<SecretReference>,
    /// Where it is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<super::common::Phase>,
    /// Why it is not active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Kubernetes conditions; `Ready` mirrors the phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
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
