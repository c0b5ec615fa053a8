//! `MessagingUser` (`user.enmasse.io/v1beta1`): an identity of a space, named `<space>.<user>`,
//! with what it may do on which addresses.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::SimpleStatus;

/// What a team asks for: a user that authenticates a certain way and holds certain rights.
#[derive(CustomResource, Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "user.enmasse.io",
    version = "v1beta1",
    kind = "MessagingUser",
    namespaced,
    status = "SimpleStatus",
    derive = "PartialEq",
    shortname = "msgusr",
    category = "enmasse",
    doc = "A user of an address space and what it may do",
    printcolumn(
        name = "Username",
        type_ = "string",
        json_path = ".spec.username",
        description = "The name the user logs in with"
    ),
    printcolumn(
        name = "Type",
        type_ = "string",
        json_path = ".spec.authentication.type",
        description = "How the user authenticates"
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
        json_path = ".status.message",
        priority = 1,
        description = "Why the user is not active"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MessagingUserSpec {
    /// The name the user logs in with; for a service account, `system:serviceaccount:<ns>:<name>`.
    pub username: String,
    /// How the user proves who it is.
    pub authentication: UserAuthentication,
    /// What the user may do, on which addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization: Vec<AuthorizationRule>,
}

/// How a user proves who it is.
///
/// `Debug` never prints the password.
#[derive(Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserAuthentication {
    /// `password`, `serviceaccount` or `federated`.
    #[serde(rename = "type")]
    pub type_: AuthenticationType,
    /// For `password`: the password, base64-encoded. Kept only as a salted hash once read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// For `federated`: the identity provider (for example `openshift`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// For `federated`: the user's id at the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated_userid: Option<String>,
    /// For `federated`: the user's name at the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated_username: Option<String>,
}

impl std::fmt::Debug for UserAuthentication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAuthentication")
            .field("type_", &self.type_)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("provider", &self.provider)
            .field("federated_userid", &self.federated_userid)
            .field("federated_username", &self.federated_username)
            .finish()
    }
}

/// The ways a user can authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AuthenticationType {
    /// A username and password, over SASL PLAIN or SCRAM.
    Password,
    /// A Kubernetes service-account token, sent as the password of `@@serviceaccount@@`.
    #[serde(rename = "serviceaccount")]
    ServiceAccount,
    /// An identity held by an external identity provider.
    Federated,
}

impl AuthenticationType {
    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::ServiceAccount => "serviceaccount",
            Self::Federated => "federated",
        }
    }
}

/// Operations on some addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationRule {
    /// What the user may do.
    pub operations: Vec<Operation>,
    /// Address patterns the operations apply to; required for `send`, `recv` and `view`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    /// Attach a sender (a link whose target is the address).
    Send,
    /// Attach a receiver (a link whose source is the address).
    Recv,
    /// Read the status of addresses.
    View,
    /// Everything, on every address of the space.
    Manage,
}

impl Operation {
    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Recv => "recv",
            Self::View => "view",
            Self::Manage => "manage",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
