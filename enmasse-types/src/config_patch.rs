//! A change to the config a broker serves (`PATCH /config`): the addresses added, changed and
//! removed, with the space's settings and users whole (they are few). An operator that changed
//! one address of thousands sends that address, not megabytes of JSON.
//!
//! A patch names the revision of the config it changes (`base`). A broker that serves another
//! refuses it, and the sender pushes the whole config instead: a patch is never applied to a
//! config it was not made from.

use serde::{Deserialize, Serialize};

use crate::broker_config::{BrokerAddress, BrokerConfig, BrokerUser, ByAddress, SpaceConfig};

/// A change to a broker's config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigPatch {
    /// The revision of the config it changes, as the broker reports it.
    pub base: String,
    /// The space, whole.
    pub space: SpaceConfig,
    /// The users, whole.
    pub users: Vec<BrokerUser>,
    /// The addresses no longer served, by address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// The addresses added or changed, whole (applied after `removed`).
    #[serde(default, skip_serializing_if = "ByAddress::is_empty")]
    pub addresses: ByAddress<BrokerAddress>,
}

impl BrokerConfig {
    /// Applies `patch` (whose base the caller checked).
    pub fn apply(&mut self, patch: ConfigPatch) {
        self.space = patch.space;
        self.users = patch.users;
        self.addresses.change(&patch.removed, patch.addresses);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        broker_config::{Authentication, SpaceConfig},
        resources::{
            address::AddressType, address_space::AddressSpaceType,
            authentication_service::AuthenticationServiceType,
        },
    };

    fn address(name: &str, plan: &str) -> BrokerAddress {
        BrokerAddress::new(name, name, AddressType::Queue, plan)
    }

    fn config<const N: usize>(addresses: [BrokerAddress; N]) -> BrokerConfig {
        BrokerConfig {
            space: SpaceConfig::new(
                "team1",
                "app",
                AddressSpaceType::Standard,
                "standard-small",
                Authentication {
                    service: "none".into(),
                    type_: AuthenticationServiceType::None,
                },
            ),
            addresses: addresses.into(),
            users: vec![],
        }
    }

    #[test]
    fn a_patch_adds_changes_and_removes_addresses_and_gives_the_config_it_was_made_for() {
        let mut before = config([
            address("a", "small"),
            address("b", "small"),
            address("c", "small"),
        ]);
        let after = config([
            address("a", "large"),
            address("c", "small"),
            address("d", "small"),
        ]);
        before.apply(ConfigPatch {
            base: before.revision(),
            space: after.space.clone(),
            users: vec![],
            removed: vec!["b".into(), "a".into()],
            addresses: ByAddress::from([address("d", "small"), address("a", "large")]),
        });
        assert_eq!(before, after);
        assert_eq!(before.revision(), after.revision());
    }
}
