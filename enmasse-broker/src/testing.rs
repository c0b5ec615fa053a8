//! Configs for the crate's unit tests.

use enmasse_types::{
    broker_config::{Authentication, BrokerAddress, BrokerConfig, SpaceConfig},
    resources::{
        address::AddressType, address_space::AddressSpaceType,
        authentication_service::AuthenticationServiceType,
    },
};

/// The address `name` of the space `app`, of `type_`, below `topic` if it is a subscription.
pub(crate) fn address(name: &str, type_: AddressType, topic: Option<&str>) -> BrokerAddress {
    let mut address = BrokerAddress::new(&format!("app.{name}"), name, type_, "plan");
    address.topic = topic.map(str::to_owned);
    address
}

/// The space `team1/app` serving `addresses`, everyone let in.
pub(crate) fn config(addresses: impl IntoIterator<Item = BrokerAddress>) -> BrokerConfig {
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
        addresses: addresses.into_iter().collect(),
        users: vec![],
    }
}
