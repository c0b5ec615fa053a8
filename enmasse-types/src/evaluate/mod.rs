//! The verdict on a namespace's manifests: which broker config each address space gets, and the
//! status every address space, address and user should have.
//!
//! [`evaluate`] is the one function the operator and the standalone broker both call. It is pure:
//! the manifests, the infrastructure (plans, infra configs, authentication services), what each
//! broker reports it serves, and the clock go in; configs and statuses come out. A bad manifest
//! never stops the others: it gets `Failed` (fix the manifest) or `Pending` (waiting for something
//! it names) with a message saying what is wrong, and the rest are served.

mod address;
mod applied;
mod incremental;
mod infra;
mod memo;
mod space;
mod user;

pub use applied::{APPLIED_CONDITION, HoldReason, waits_for_drain};
pub use incremental::{Changes, Incremental};
pub use infra::{InfraStatuses, infra_statuses};

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::{
    broker_config::{AddressesDigest, BrokerConfig, BrokerReport},
    resources::{
        address::{Address, AddressStatus},
        address_space::{AddressSpace, AddressSpaceStatus},
        authentication_service::AuthenticationService,
        common::SimpleStatus,
        infra_config::{BrokeredInfraConfig, StandardInfraConfig},
        messaging_user::MessagingUser,
        plans::{AddressPlan, AddressSpacePlan},
    },
};

/// What the operations team provides: plans, infra configs and authentication services.
#[derive(Clone, Copy, Debug, Default)]
pub struct Infra<'a> {
    /// Address space plans.
    pub space_plans: &'a [AddressSpacePlan],
    /// Address plans.
    pub address_plans: &'a [AddressPlan],
    /// Infra configs of standard spaces.
    pub standard_infra_configs: &'a [StandardInfraConfig],
    /// Infra configs of brokered spaces.
    pub brokered_infra_configs: &'a [BrokeredInfraConfig],
    /// Authentication services.
    pub authentication_services: &'a [AuthenticationService],
}

/// What one team has committed to one namespace.
#[derive(Clone, Copy, Debug)]
pub struct Tenant<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// Its address spaces.
    pub spaces: &'a [AddressSpace],
    /// Its addresses.
    pub addresses: &'a [Address],
    /// Its messaging users.
    pub users: &'a [MessagingUser],
}

/// What is known of the running brokers, by address space name.
pub type Reports = BTreeMap<String, BrokerReport>;

/// The verdict on one namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    /// Each address space, by name.
    pub spaces: BTreeMap<String, SpaceVerdict>,
    /// The status each address should have, by resource name.
    pub addresses: BTreeMap<String, AddressStatus>,
    /// The status each messaging user should have, by resource name.
    pub users: BTreeMap<String, SimpleStatus>,
}

/// The verdict on one address space.
#[derive(Clone, Debug, PartialEq)]
pub struct SpaceVerdict {
    /// The status the space should have.
    pub status: AddressSpaceStatus,
    /// What its broker should serve; `None` while the space cannot be served.
    pub config: Option<BrokerConfig>,
    /// The revision of `config` ([`BrokerConfig::revision`]), hashed once; empty without one.
    pub revision: String,
    /// The digest of `config`'s addresses: the revision of the config with other users (password
    /// keys given, say) is [`BrokerConfig::revision_with`] it, without hashing them again.
    pub digest: AddressesDigest,
}

/// What an evaluation of some of a space's addresses changed of the config its broker is to serve:
/// the config is the one before with `removed` taken out and `upserted` put in (or replaced).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServedChanges {
    /// The addresses taken out, by address (one changed is taken out and put in again).
    pub removed: Vec<String>,
    /// The addresses put in, by address.
    pub upserted: Vec<String>,
}

/// Evaluates one namespace's manifests against the infrastructure and what the brokers report.
pub fn evaluate(tenant: &Tenant<'_>, infra: &Infra<'_>, reports: &Reports, now: &Time) -> Evaluation {
    let mut evaluation = Evaluation::default();
    let grouped = group_by_space(tenant, now, &mut evaluation);
    for space in sorted(tenant.spaces) {
        let name = name_of(&space.metadata);
        let members = grouped.get(name).cloned().unwrap_or_default();
        space::evaluate_space(
            tenant.namespace,
            space,
            &members,
            infra,
            reports.get(name),
            now,
            &mut evaluation,
            None,
        );
    }
    evaluation
}

/// The addresses and users of one address space.
#[derive(Clone, Debug, Default)]
struct Members<'a> {
    addresses: Vec<&'a Address>,
    users: Vec<&'a MessagingUser>,
}

/// Sorts addresses and users into their spaces; those with a malformed name or an unknown space get
/// their status here.
fn group_by_space<'a>(
    tenant: &Tenant<'a>,
    now: &Time,
    evaluation: &mut Evaluation,
) -> BTreeMap<&'a str, Members<'a>> {
    let spaces = space_names(tenant);
    let mut grouped: BTreeMap<&str, Members<'_>> = BTreeMap::new();
    for address in sorted(tenant.addresses) {
        let name = name_of(&address.metadata);
        match space_of(name, &spaces) {
            Ok(space) => grouped.entry(space).or_default().addresses.push(address),
            Err((phase, message)) => {
                let status = address::status(address, phase, vec![message], None, now);
                evaluation.addresses.insert(name.to_owned(), status);
            }
        }
    }
    for (space, users) in users_by_space(tenant, &spaces, now, evaluation) {
        grouped.entry(space).or_default().users = users;
    }
    grouped
}

/// Sorts users into their spaces; those with a malformed name or an unknown space get their status
/// here.
fn users_by_space<'a>(
    tenant: &Tenant<'a>,
    spaces: &[&str],
    now: &Time,
    evaluation: &mut Evaluation,
) -> BTreeMap<&'a str, Vec<&'a MessagingUser>> {
    let mut grouped: BTreeMap<&str, Vec<&MessagingUser>> = BTreeMap::new();
    for user in sorted(tenant.users) {
        let name = name_of(&user.metadata);
        match space_of(name, spaces) {
            Ok(space) => grouped.entry(space).or_default().push(user),
            Err((phase, message)) => {
                evaluation
                    .users
                    .insert(name.to_owned(), user::status(user, phase, Some(message), now));
            }
        }
    }
    grouped
}

/// The names of the tenant's spaces.
fn space_names<'a>(tenant: &Tenant<'a>) -> Vec<&'a str> {
    tenant.spaces.iter().map(|s| name_of(&s.metadata)).collect()
}

/// The addresses of space `space` among the tenant's, by creation, then name (as
/// [`group_by_space`] gives them).
fn addresses_of<'a>(tenant: &Tenant<'a>, space: &str, spaces: &[&str]) -> Vec<&'a Address> {
    let mut addresses: Vec<&Address> = tenant
        .addresses
        .iter()
        .filter(|a| space_of(name_of(&a.metadata), spaces).is_ok_and(|s| s == space))
        .collect();
    addresses.sort_by(|a, b| creation_order(*a).cmp(&creation_order(*b)));
    addresses
}

/// The space a resource named `<space>.<name>` belongs to.
fn space_of<'a>(
    name: &'a str,
    spaces: &[&str],
) -> Result<&'a str, (crate::resources::common::Phase, String)> {
    use crate::resources::common::Phase;
    match crate::names::split_resource_name(name) {
        Err(err) => Err((Phase::Failed, crate::error::one_line(&err))),
        Ok((space, _)) if spaces.contains(&space) => Ok(space),
        Ok((space, _)) => Err((Phase::Pending, format!("address space {space} not found"))),
    }
}

/// `metadata.name`, or the empty string (which every name rule refuses).
fn name_of(metadata: &ObjectMeta) -> &str {
    metadata.name.as_deref().unwrap_or_default()
}

/// Resources in the order they were created (then by name): the first one wins a conflict.
fn sorted<'a, K: kube::Resource>(resources: &'a [K]) -> Vec<&'a K> {
    let mut sorted: Vec<&'a K> = resources.iter().collect();
    sorted.sort_by(|a, b| creation_order(*a).cmp(&creation_order(*b)));
    sorted
}

/// Where a resource comes in [`sorted`].
fn creation_order<K: kube::Resource>(resource: &K) -> impl Ord + '_ {
    (
        resource.meta().creation_timestamp.as_ref().map(|t| &t.0),
        resource.meta().name.as_ref(),
    )
}
