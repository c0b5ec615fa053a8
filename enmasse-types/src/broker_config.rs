//! The broker config contract: the document that tells one broker which addresses and users it
//! serves, and the report a broker gives back about what it really serves.
//!
//! The operator pushes a [`BrokerConfig`] through the broker's management API; the standalone
//! broker builds the same document from a directory of manifests. Both build it with
//! [`crate::evaluate`], so a space gets the same broker whichever way it runs. The contract never
//! holds a password: a password user names the `MessagingUser` its secret is read from.

use serde::{Deserialize, Serialize};

pub use crate::by_address::{Addressed, ByAddress};
use crate::resources::{
    address::{AddressType, MessageRedelivery, MessageTtl},
    address_space::AddressSpaceType,
    authentication_service::AuthenticationServiceType,
    infra_config::{AddressFullPolicy, RouterPolicy},
    messaging_user::AuthorizationRule,
};

/// Messages a stored address holds when its plan sets no `maxDepth`.
pub const DEFAULT_MAX_DEPTH: u64 = 100_000;
/// Bytes of message a stored address holds when its plan sets no `maxBytes`.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// The largest message an address accepts when its plan sets no `maxMessageSize`.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 8 * 1024 * 1024;

/// Everything one broker serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerConfig {
    /// The address space the broker serves.
    pub space: SpaceConfig,
    /// The addresses (a list sorted by address on the wire).
    pub addresses: ByAddress<BrokerAddress>,
    /// The users, sorted by username.
    pub users: Vec<BrokerUser>,
}

/// The addresses of a config, as its revision takes them: the sum of each one's own hash. A sum
/// does not depend on the order, and is kept as addresses come and go without hashing the others
/// again (a config of 10,000 addresses is megabytes of JSON).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddressesDigest(u64);

impl AddressesDigest {
    /// The digest of `addresses`.
    pub fn of<'a>(addresses: impl IntoIterator<Item = &'a BrokerAddress>) -> Self {
        let mut digest = Self::default();
        for address in addresses {
            digest.add(address);
        }
        digest
    }

    /// Adds `address`.
    pub fn add(&mut self, address: &BrokerAddress) {
        self.0 = self.0.wrapping_add(address_hash(address));
    }

    /// Takes away `address`, added before.
    pub fn remove(&mut self, address: &BrokerAddress) {
        self.0 = self.0.wrapping_sub(address_hash(address));
    }
}

/// The FNV-1a hash of one address's canonical JSON.
fn address_hash(address: &BrokerAddress) -> u64 {
    let mut hash = Fnv1a::new();
    let _ = serde_json::to_writer(&mut hash, address);
    hash.0
}

/// A 64-bit FNV-1a hash, fed as a writer.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl std::io::Write for Fnv1a {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 = bytes.iter().fold(self.0, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl BrokerConfig {
    /// A short fingerprint of the whole document. A broker reports the revision it has applied, so
    /// the operator can tell a broker that serves the latest config from one that does not.
    pub fn revision(&self) -> String {
        self.revision_with(AddressesDigest::of(&self.addresses))
    }

    /// [`Self::revision`], given the digest of [`Self::addresses`] that the caller kept as they
    /// changed: only the space and the users are hashed.
    pub fn revision_with(&self, addresses: AddressesDigest) -> String {
        // FNV-1a over the canonical JSON: stable across processes, and the same for a broker and
        // an operator of one release (a broker of another release reports revisions this one
        // never gives, and is pushed until it runs this one). The JSON is hashed as it is
        // written, never held.
        let mut hash = Fnv1a::new();
        // Writing into a hash cannot fail, and the config's types always serialize.
        let _ = serde_json::to_writer(&mut hash, &self.space);
        let _ = serde_json::to_writer(&mut hash, &self.users);
        let _ = std::io::Write::write_all(&mut hash, &addresses.0.to_le_bytes());
        format!("{:016x}", hash.0)
    }

    /// The address with this `spec.address`.
    pub fn address(&self, address: &str) -> Option<&BrokerAddress> {
        self.addresses.get(address)
    }
}

/// The space a broker serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpaceConfig {
    /// The namespace of the `AddressSpace`.
    pub namespace: String,
    /// The name of the `AddressSpace`.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub type_: AddressSpaceType,
    /// The space plan in force.
    pub plan: String,
    /// Who authenticates the space's clients.
    pub authentication: Authentication,
    /// The connection limits in force (a standard space's infra config's `router.policy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_policy: Option<RouterPolicy>,
    /// Bytes of message all the broker's queues may hold together: the infra config's broker
    /// `globalMaxSize`, or a quarter of its memory, as EnMasse 0.32 set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_max_size: Option<u64>,
    /// What a full address does: the infra config's broker `addressFullPolicy` (`BLOCK` without
    /// one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_full_policy: Option<AddressFullPolicy>,
}

impl SpaceConfig {
    /// A space with no connection limits.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        type_: AddressSpaceType,
        plan: impl Into<String>,
        authentication: Authentication,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            type_,
            plan: plan.into(),
            authentication,
            connection_policy: None,
            global_max_size: None,
            address_full_policy: None,
        }
    }
}

/// Who authenticates a space's clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    /// The `AuthenticationService`.
    pub service: String,
    /// Its type: `none` accepts every client with every right; `standard` accepts the users below.
    #[serde(rename = "type")]
    pub type_: AuthenticationServiceType,
}

/// One address a broker serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerAddress {
    /// The `Address` resource (`<space>.<name>`).
    pub resource: String,
    /// The AMQP address.
    pub address: String,
    /// Its semantics.
    #[serde(rename = "type")]
    pub type_: AddressType,
    /// The address plan.
    pub plan: String,
    /// For a subscription: the topic it is fed by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// For a subscription: how many receivers may consume it at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_consumers: Option<u32>,
    /// How much the address may hold.
    pub limits: AddressLimits,
    /// TTL bounds in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_ttl: Option<MessageTtl>,
    /// Redelivery settings in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_redelivery: Option<MessageRedelivery>,
    /// The dead-letter address for messages past their delivery attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadletter: Option<String>,
    /// The dead-letter address for expired messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
}

impl Addressed for BrokerAddress {
    fn address(&self) -> &str {
        &self.address
    }
}

impl BrokerAddress {
    /// An address with the default limits and no optional settings.
    pub fn new(resource: &str, address: &str, type_: AddressType, plan: &str) -> Self {
        Self {
            resource: resource.to_owned(),
            address: address.to_owned(),
            type_,
            plan: plan.to_owned(),
            topic: None,
            max_consumers: None,
            limits: AddressLimits::default(),
            message_ttl: None,
            message_redelivery: None,
            deadletter: None,
            expiry: None,
        }
    }
}

/// How much one address may hold: senders get credit only while there is room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddressLimits {
    /// Messages held at most.
    pub max_depth: u64,
    /// Bytes of message held at most.
    pub max_bytes: u64,
    /// The largest single message accepted.
    pub max_message_size: u64,
}

impl Default for AddressLimits {
    fn default() -> Self {
        Self {
            max_depth: DEFAULT_MAX_DEPTH,
            max_bytes: DEFAULT_MAX_BYTES,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

/// One user a broker authenticates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerUser {
    /// The `MessagingUser` resource (`<space>.<name>`).
    pub resource: String,
    /// The name the user logs in with.
    pub username: String,
    /// How the user proves who it is.
    pub credential: Credential,
    /// What the user may do; compile with [`crate::policy::Policy::compile`].
    pub authorization: Vec<AuthorizationRule>,
}

/// How a user proves who it is, without the secret itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Credential {
    /// A password, read from the `MessagingUser` resource `namespace/resource` and kept only as a
    /// salted hash by whoever reads it.
    Password {
        /// The namespace of the `MessagingUser`.
        namespace: String,
        /// The password as SCRAM keeps it, filled in by whoever read the password (the operator),
        /// so that a broker can check logins without ever holding it. Without keys, the broker
        /// reads the password from the manifest itself (standalone mode) or refuses the user.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keys: Option<PasswordKeys>,
    },
    /// A Kubernetes service-account token for this account.
    #[serde(rename = "serviceaccount")]
    ServiceAccount {
        /// The service account's namespace.
        namespace: String,
        /// The service account's name.
        name: String,
    },
}

/// A password as SCRAM-SHA-256 keeps it (RFC 5802, section 3): enough to check a SASL PLAIN or
/// SCRAM-SHA-256 login, not enough to log in.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordKeys {
    /// The salt, base64.
    pub salt: String,
    /// PBKDF2-HMAC-SHA-256 iterations.
    pub iterations: u32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`, base64.
    pub stored_key: String,
    /// `HMAC(SaltedPassword, "Server Key")`, base64.
    pub server_key: String,
}

impl std::fmt::Debug for PasswordKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordKeys")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// What a broker reports it really serves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerReport {
    /// The revision of the config the broker has applied.
    pub revision: String,
    /// The addresses it serves (a list sorted by address on the wire).
    pub addresses: ByAddress<AddressReport>,
    /// What keeps the broker from serving the config fully (for example an authentication
    /// service it cannot run); empty when nothing does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl BrokerReport {
    /// The report of the address with this `spec.address`.
    pub fn address(&self, address: &str) -> Option<&AddressReport> {
        self.addresses.get(address)
    }
}

/// What a broker reports about one address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressReport {
    /// The AMQP address.
    pub address: String,
    /// The type the broker serves it as (absent from brokers that predate it).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<AddressType>,
    /// For a subscription, the topic the broker serves it on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Whether clients can attach to it.
    pub ready: bool,
    /// Why it is not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The messages it holds, waiting for a consumer.
    #[serde(default)]
    pub depth: u64,
    /// Messages that expired there since the broker started (moved to the expiry address or
    /// dropped).
    #[serde(default)]
    pub messages_expired: u64,
    /// Messages given up there since the broker started, rejected or past their delivery attempts
    /// (moved to the dead-letter address or dropped).
    #[serde(default)]
    pub messages_dead_lettered: u64,
    /// Messages dropped there to make room since the broker started (the `DROP` full policy).
    #[serde(default)]
    pub messages_dropped: u64,
}

impl Addressed for AddressReport {
    fn address(&self) -> &str {
        &self.address
    }
}

impl AddressReport {
    /// An address served and ready, holding `depth` messages, nothing expired or given up.
    pub fn serving(address: impl Into<String>, depth: u64) -> Self {
        Self {
            address: address.into(),
            type_: None,
            topic: None,
            ready: true,
            message: None,
            depth,
            messages_expired: 0,
            messages_dead_lettered: 0,
            messages_dropped: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BrokerConfig {
        BrokerConfig {
            space: SpaceConfig::new(
                "team1",
                "app",
                AddressSpaceType::Standard,
                "standard-small",
                Authentication {
                    service: "standard-authservice".into(),
                    type_: AuthenticationServiceType::Standard,
                },
            ),
            addresses: ByAddress::new(),
            users: vec![BrokerUser {
                resource: "app.user".into(),
                username: "system:serviceaccount:team1:default".into(),
                credential: Credential::ServiceAccount {
                    namespace: "team1".into(),
                    name: "default".into(),
                },
                authorization: vec![],
            }],
        }
    }

    #[test]
    fn the_revision_changes_with_the_content_and_only_with_it() {
        let a = config();
        assert_eq!(a.revision(), config().revision());
        let mut b = config();
        b.space.plan = "standard-medium".into();
        assert_ne!(a.revision(), b.revision());
        assert_eq!(a.revision().len(), 16);
    }

    #[test]
    fn a_digest_kept_as_addresses_come_and_go_gives_the_revision_of_the_whole() {
        let queue =
            |name: &str| BrokerAddress::new(&format!("app.{name}"), name, AddressType::Queue, "small");
        let mut config = config();
        config.addresses = ByAddress::from([queue("a"), queue("b")]);
        let mut digest = AddressesDigest::of(&config.addresses);
        assert_eq!(config.revision_with(digest), config.revision());

        let before = config.revision();
        let larger = BrokerAddress {
            plan: "large".into(),
            ..queue("a")
        };
        digest.add(&larger);
        digest.remove(&config.addresses.insert(larger).unwrap());
        assert_eq!(config.revision_with(digest), config.revision());
        assert_ne!(
            config.revision(),
            before,
            "one address changed is another revision"
        );

        digest.remove(&config.addresses.remove("b").unwrap());
        assert_eq!(config.revision_with(digest), config.revision());
    }

    #[test]
    fn the_contract_round_trips_through_json() {
        let json = serde_json::to_string(&config()).unwrap();
        assert!(
            json.contains(r#""credential":{"type":"serviceaccount","namespace":"team1","name":"default"}"#)
        );
        let back: BrokerConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config());
    }
}
