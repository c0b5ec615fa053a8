//! A set of manifests sorted by kind and namespace, ready for [`crate::evaluate`].
//!
//! The standalone broker and `enmasse validate` read a directory into a [`Catalog`]; the operator
//! gets the same shapes from its watches. Resources without `metadata.namespace` belong to the
//! namespace the caller names (the one `kubectl apply -n` would use).

use std::collections::BTreeSet;

use crate::{
    evaluate::{Evaluation, Infra, Tenant},
    manifests::Manifest,
    resources::{
        address::Address,
        address_space::AddressSpace,
        authentication_service::AuthenticationService,
        infra_config::{BrokeredInfraConfig, StandardInfraConfig},
        messaging_user::MessagingUser,
        plans::{AddressPlan, AddressSpacePlan},
    },
};

/// Manifests by kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Catalog {
    /// Address spaces.
    pub spaces: Vec<AddressSpace>,
    /// Addresses.
    pub addresses: Vec<Address>,
    /// Messaging users.
    pub users: Vec<MessagingUser>,
    /// Address space plans.
    pub space_plans: Vec<AddressSpacePlan>,
    /// Address plans.
    pub address_plans: Vec<AddressPlan>,
    /// Standard infra configs.
    pub standard_infra_configs: Vec<StandardInfraConfig>,
    /// Brokered infra configs.
    pub brokered_infra_configs: Vec<BrokeredInfraConfig>,
    /// Authentication services.
    pub authentication_services: Vec<AuthenticationService>,
    /// How many manifests of other kinds were passed over.
    pub others: usize,
}

/// One namespace's tenant resources, owned.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TenantResources {
    /// The namespace.
    pub namespace: String,
    /// Its address spaces.
    pub spaces: Vec<AddressSpace>,
    /// Its addresses.
    pub addresses: Vec<Address>,
    /// Its messaging users.
    pub users: Vec<MessagingUser>,
}

impl TenantResources {
    /// Borrows the resources for [`crate::evaluate::evaluate`].
    pub fn as_tenant(&self) -> Tenant<'_> {
        Tenant {
            namespace: &self.namespace,
            spaces: &self.spaces,
            addresses: &self.addresses,
            users: &self.users,
        }
    }

    /// Gives every resource the status `evaluation` gave it (or none), as an API server returns
    /// a resource once its status is written.
    pub fn carry_statuses(&mut self, evaluation: &Evaluation) {
        for space in &mut self.spaces {
            let name = space.metadata.name.as_deref().unwrap_or_default();
            space.status = evaluation.spaces.get(name).map(|v| v.status.clone());
        }
        for address in &mut self.addresses {
            let name = address.metadata.name.as_deref();
            let carried = name.and_then(|n| evaluation.addresses.get(n));
            // Copied only when it differs: carried back after each evaluation, most are the same.
            if address.status.as_ref() != carried {
                address.status = carried.cloned();
            }
        }
        for user in &mut self.users {
            let name = user.metadata.name.as_deref();
            user.status = name.and_then(|n| evaluation.users.get(n)).cloned();
        }
    }
}

impl Catalog {
    /// Adds one manifest.
    pub fn add(&mut self, manifest: Manifest) {
        match manifest {
            Manifest::AddressSpace(r) => self.spaces.push(*r),
            Manifest::Address(r) => self.addresses.push(*r),
            Manifest::MessagingUser(r) => self.users.push(*r),
            Manifest::AddressSpacePlan(r) => self.space_plans.push(*r),
            Manifest::AddressPlan(r) => self.address_plans.push(*r),
            Manifest::StandardInfraConfig(r) => self.standard_infra_configs.push(*r),
            Manifest::BrokeredInfraConfig(r) => self.brokered_infra_configs.push(*r),
            Manifest::AuthenticationService(r) => self.authentication_services.push(*r),
            Manifest::Other { .. } => self.others += 1,
        }
    }

    /// The infrastructure for [`crate::evaluate::evaluate`].
    pub fn infra(&self) -> Infra<'_> {
        Infra {
            space_plans: &self.space_plans,
            address_plans: &self.address_plans,
            standard_infra_configs: &self.standard_infra_configs,
            brokered_infra_configs: &self.brokered_infra_configs,
            authentication_services: &self.authentication_services,
        }
    }

    /// The tenant resources of every namespace that has any, sorted by namespace.
    pub fn tenants(&self, default_namespace: &str) -> Vec<TenantResources> {
        let namespace_of = |ns: &Option<String>| ns.clone().unwrap_or_else(|| default_namespace.to_owned());
        let namespaces: BTreeSet<String> = self
            .spaces
            .iter()
            .map(|r| &r.metadata.namespace)
            .chain(self.addresses.iter().map(|r| &r.metadata.namespace))
            .chain(self.users.iter().map(|r| &r.metadata.namespace))
            .map(namespace_of)
            .collect();
        namespaces
            .into_iter()
            .map(|namespace| {
                let here = |ns: &Option<String>| namespace_of(ns) == namespace;
                TenantResources {
                    spaces: self
                        .spaces
                        .iter()
                        .filter(|r| here(&r.metadata.namespace))
                        .cloned()
                        .collect(),
                    addresses: self
                        .addresses
                        .iter()
                        .filter(|r| here(&r.metadata.namespace))
                        .cloned()
                        .collect(),
                    users: self
                        .users
                        .iter()
                        .filter(|r| here(&r.metadata.namespace))
                        .cloned()
                        .collect(),
                    namespace,
                }
            })
            .collect()
    }
}
