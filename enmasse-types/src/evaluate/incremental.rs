//! [`Incremental`]: the verdict kept from one evaluation to the next, and only what a change can
//! affect evaluated again.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Resource, core::object::HasSpec};

use super::{
    Evaluation, Infra, Members, Reports, ServedChanges, Tenant, address, addresses_of, group_by_space,
    memo::{AddressMemo, Told},
    name_of, sorted, space, space_names, space_of, users_by_space,
};
use crate::resources::{
    address::Address,
    address_space::{AddressSpace, AddressSpaceSpec},
    authentication_service::AuthenticationServiceSpec,
    infra_config::{BrokeredInfraConfigSpec, StandardInfraConfigSpec},
    plans::{AddressPlanSpec, AddressSpacePlanSpec},
};

/// Evaluates one namespace again and again, as [`super::evaluate`] does, keeping the verdict
/// between evaluations: an address is evaluated again only when it, or its broker's report of it,
/// changed, and nothing it changed reaches other addresses (see the `memo` module). Anything else
/// (the space, its plan, the infrastructure, an address others depend on) makes its space be
/// evaluated whole. The verdict is always the one [`super::evaluate`] gives for the same input.
///
/// Each address's status is meant to be given back as it was last evaluated, as the API server
/// (or the standalone broker) does: an address whose status did not come out as it went in is
/// evaluated again next time.
#[derive(Debug, Default)]
pub struct Incremental {
    namespace: String,
    infra: OwnedInfra,
    evaluation: Evaluation,
    spaces: BTreeMap<String, SpaceMemo>,
    /// The addresses and users given a status outside any space (a malformed name, an unknown
    /// space): few, and evaluated every time.
    outside: (Vec<String>, Vec<String>),
    evaluated: usize,
    looked_at: usize,
    /// Whether a uid and resource version tell an unchanged resource (see [`Self::trusting_versions`]).
    versions: bool,
}

/// What changed of a namespace since an [`Incremental`] evaluator's last evaluation, as its caller
/// knows it (from a watch's events, and a broker's report of what changed since it last asked):
/// given these, the evaluator looks at the addresses named here, not at every address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// The resource names of the addresses created, changed or deleted since.
    pub addresses: BTreeSet<String>,
    /// Each space whose broker's report is the one the last evaluation was given but for some
    /// addresses, with those addresses (`spec.address`). A space missing here is evaluated as if
    /// any address's report changed.
    pub reported: BTreeMap<String, BTreeSet<String>>,
}

/// What is remembered of one space.
#[derive(Debug, Default)]
struct SpaceMemo {
    /// What its addresses were evaluated against: its spec and the plan applied.
    context: Option<(AddressSpaceSpec, Option<String>)>,
    addresses: AddressMemo,
    /// The resource names of its members, whose verdicts `evaluation` holds.
    members: (HashSet<String>, HashSet<String>),
}

/// The infrastructure as it was last evaluated against: the names and specs of each kind, in
/// order (what `evaluate` reads of them; a status or resource version that changed is no change).
#[derive(Debug, Default, PartialEq)]
struct OwnedInfra {
    space_plans: Vec<(Option<String>, AddressSpacePlanSpec)>,
    address_plans: Vec<(Option<String>, AddressPlanSpec)>,
    standard_infra_configs: Vec<(Option<String>, StandardInfraConfigSpec)>,
    brokered_infra_configs: Vec<(Option<String>, BrokeredInfraConfigSpec)>,
    authentication_services: Vec<(Option<String>, AuthenticationServiceSpec)>,
}

/// The name and spec of each of `resources`.
fn named_specs<K: Resource + HasSpec>(resources: &[K]) -> Vec<(Option<String>, K::Spec)>
where
    K::Spec: Clone,
{
    resources
        .iter()
        .map(|r| (r.meta().name.clone(), r.spec().clone()))
        .collect()
}

/// Whether `owned` holds the names and specs of `resources`, in order.
fn same_specs<K: Resource + HasSpec>(owned: &[(Option<String>, K::Spec)], resources: &[K]) -> bool
where
    K::Spec: PartialEq,
{
    owned.len() == resources.len()
        && owned
            .iter()
            .zip(resources)
            .all(|((name, spec), r)| *name == r.meta().name && spec == r.spec())
}

impl OwnedInfra {
    fn of(infra: &Infra<'_>) -> Self {
        Self {
            space_plans: named_specs(infra.space_plans),
            address_plans: named_specs(infra.address_plans),
            standard_infra_configs: named_specs(infra.standard_infra_configs),
            brokered_infra_configs: named_specs(infra.brokered_infra_configs),
            authentication_services: named_specs(infra.authentication_services),
        }
    }

    fn is(&self, infra: &Infra<'_>) -> bool {
        same_specs(&self.space_plans, infra.space_plans)
            && same_specs(&self.address_plans, infra.address_plans)
            && same_specs(&self.standard_infra_configs, infra.standard_infra_configs)
            && same_specs(&self.brokered_infra_configs, infra.brokered_infra_configs)
            && same_specs(&self.authentication_services, infra.authentication_services)
    }
}

impl Incremental {
    /// An evaluator that remembers nothing yet: its first evaluation is whole.
    pub fn new() -> Self {
        Self::default()
    }

    /// An evaluator for resources an API server gives, which gives every change a new resource
    /// version: an address whose uid and resource version are the same is taken as unchanged
    /// without comparing it field by field. Not for manifests as read from files, whose versions
    /// (if any were left in them) say nothing of their edits, unless their reader gives each a
    /// version of its own, as the standalone broker does.
    pub fn trusting_versions() -> Self {
        Self {
            versions: true,
            ..Self::default()
        }
    }

    /// Forgets what it remembers of each space's addresses, keeping the last verdict (and so the
    /// statuses a caller carries back): the next evaluation of each space is whole. For a caller
    /// that cannot trust what it remembers (an evaluation a panic left half-way).
    pub fn forget(&mut self) {
        for memo in self.spaces.values_mut() {
            memo.addresses.clear();
        }
    }

    /// The verdict on `tenant`, as [`super::evaluate`] gives it.
    pub fn evaluate(
        &mut self,
        tenant: &Tenant<'_>,
        infra: &Infra<'_>,
        reports: &Reports,
        now: &Time,
    ) -> &Evaluation {
        if self.namespace != tenant.namespace || !self.infra.is(infra) {
            *self = Self {
                namespace: tenant.namespace.to_owned(),
                infra: OwnedInfra::of(infra),
                versions: self.versions,
                ..Self::default()
            };
        }
        let out = &mut self.evaluation;
        for name in self.outside.0.drain(..) {
            out.addresses.remove(&name);
        }
        for name in self.outside.1.drain(..) {
            out.users.remove(&name);
        }
        let mut outside = Evaluation::default();
        let grouped = group_by_space(tenant, now, &mut outside);

        let spaces: HashSet<&str> = tenant.spaces.iter().map(|s| name_of(&s.metadata)).collect();
        self.spaces.retain(|name, memo| {
            let keep = spaces.contains(name.as_str());
            if !keep {
                forget(out, name, memo);
            }
            keep
        });
        self.evaluated = 0;
        self.looked_at = 0;
        for space in sorted(tenant.spaces) {
            let name = name_of(&space.metadata);
            let members = grouped.get(name).cloned().unwrap_or_default();
            let memo = self.spaces.entry(name.to_owned()).or_default();
            // Members gone take their verdicts with them.
            let addresses = members.addresses.iter().map(|a| name_of(&a.metadata));
            track(&mut memo.members.0, addresses, &mut out.addresses);
            let users = members.users.iter().map(|u| name_of(&u.metadata));
            track(&mut memo.members.1, users, &mut out.users);
            let context = context(space);
            // A plan change reads every address to see whether they fit: the space is whole.
            if memo.context.as_ref() != Some(&context)
                || context.1.as_ref().is_some_and(|a| *a != context.0.plan)
            {
                memo.addresses.clear();
            }
            memo.context = Some(context);
            memo.addresses.versions = self.versions;
            space::evaluate_space(
                tenant.namespace,
                space,
                &members,
                infra,
                reports.get(name),
                now,
                out,
                Some(&mut memo.addresses),
            );
            self.evaluated += memo.addresses.evaluated;
            self.looked_at += memo.addresses.looked_at;
        }
        self.outside = (
            outside.addresses.keys().cloned().collect(),
            outside.users.keys().cloned().collect(),
        );
        out.addresses.append(&mut outside.addresses);
        out.users.append(&mut outside.users);
        &self.evaluation
    }

    /// The verdict on `tenant`, as [`Self::evaluate`] gives it, from what `changes` says changed
    /// since the last evaluation: only those addresses are looked at, and those whose status did
    /// not come out as it went in. Anything `changes` cannot tell (a space, its plan or the
    /// infrastructure changed, a report given whole, an address outside any space) is evaluated
    /// as [`Self::evaluate`] does.
    ///
    /// The caller vouches for `changes`: every address not named in it is the resource the last
    /// evaluation was given, and so is its report. It gives `tenant.addresses` one resource to a
    /// name, `find` to look one up by name among them, and the reports of the spaces in
    /// `changes.reported`.
    pub fn evaluate_changes<'t>(
        &mut self,
        tenant: &Tenant<'t>,
        find: &dyn Fn(&str) -> Option<&'t Address>,
        infra: &Infra<'t>,
        reports: &Reports,
        now: &Time,
        changes: &Changes,
    ) -> &Evaluation {
        let spaces = space_names(tenant);
        if !self.follows(tenant, &spaces, infra, changes) {
            return self.evaluate(tenant, infra, reports, now);
        }
        let out = &mut self.evaluation;
        for name in self.outside.1.drain(..) {
            out.users.remove(&name);
        }
        let mut outside = Evaluation::default();
        let mut users = users_by_space(tenant, &spaces, now, &mut outside);
        let mut changed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for name in &changes.addresses {
            if let Ok(space) = space_of(name, &spaces) {
                changed.entry(space).or_default().push(name);
            }
        }
        self.evaluated = 0;
        self.looked_at = 0;
        for space in sorted(tenant.spaces) {
            let name = name_of(&space.metadata);
            let Some(memo) = self.spaces.get_mut(name) else {
                continue;
            };
            let names = changed.remove(name).unwrap_or_default();
            // Members gone take their verdicts with them.
            for &address in &names {
                if find(address).is_some() {
                    memo.members.0.insert(address.to_owned());
                } else if memo.members.0.remove(address) {
                    out.addresses.remove(address);
                }
            }
            let users = users.remove(name).unwrap_or_default();
            let names_of = users.iter().map(|u| name_of(&u.metadata));
            track(&mut memo.members.1, names_of, &mut out.users);
            let reported: Vec<&str> = changes
                .reported
                .get(name)
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect();
            let ordered = || address::in_order(&addresses_of(tenant, name, &spaces));
            let told = Told {
                names: &names,
                reported: &reported,
                find,
                ordered: &ordered,
            };
            let report = reports.get(name);
            memo.addresses.versions = self.versions;
            let evaluated = space::evaluate_told(
                tenant.namespace,
                space,
                &told,
                &users,
                infra,
                report,
                now,
                out,
                &mut memo.addresses,
            );
            if !evaluated {
                memo.addresses.clear();
                let members = Members {
                    addresses: addresses_of(tenant, name, &spaces),
                    users,
                };
                // Whole, as `evaluate` does it: members gone without a word take their verdicts.
                let names = members.addresses.iter().map(|a| name_of(&a.metadata));
                track(&mut memo.members.0, names, &mut out.addresses);
                space::evaluate_space(
                    tenant.namespace,
                    space,
                    &members,
                    infra,
                    report,
                    now,
                    out,
                    Some(&mut memo.addresses),
                );
            }
            self.evaluated += memo.addresses.evaluated;
            self.looked_at += memo.addresses.looked_at;
        }
        self.outside.1 = outside.users.keys().cloned().collect();
        out.users.append(&mut outside.users);
        &self.evaluation
    }

    /// Whether `changes` can tell what changed since the last evaluation: the same namespace,
    /// infrastructure and spaces (each with the plan it asks for applied), every report given as
    /// changes, and every address named of a known space, as every address was last time.
    fn follows(&self, tenant: &Tenant<'_>, spaces: &[&str], infra: &Infra<'_>, changes: &Changes) -> bool {
        self.namespace == tenant.namespace
            && self.outside.0.is_empty()
            && tenant.spaces.len() == self.spaces.len()
            && tenant.spaces.iter().all(|space| {
                let name = name_of(&space.metadata);
                let context = context(space);
                changes.reported.contains_key(name)
                    && context.1.as_ref().is_none_or(|a| *a == context.0.plan)
                    && self
                        .spaces
                        .get(name)
                        .is_some_and(|memo| memo.context.as_ref() == Some(&context))
            })
            && changes
                .addresses
                .iter()
                .all(|name| space_of(name, spaces).is_ok())
            && self.infra.is(infra)
    }

    /// The last verdict.
    pub fn evaluation(&self) -> &Evaluation {
        &self.evaluation
    }

    /// The last verdict, for a caller that adds what it knows to the spaces' statuses.
    pub fn evaluation_mut(&mut self) -> &mut Evaluation {
        &mut self.evaluation
    }

    /// How many of the spaces' addresses the last evaluation looked at: all of a space evaluated
    /// whole, only those that changed otherwise.
    pub fn evaluated(&self) -> usize {
        self.evaluated
    }

    /// How many of the spaces' addresses the last evaluation looked at to find those that changed:
    /// all of them when it compared each with what it remembers, only those it was told of (and
    /// those not settled) when it was told what changed.
    pub fn looked_at(&self) -> usize {
        self.looked_at
    }

    /// How many addresses of `space` the last evaluation's admission placed: all of them, unless it
    /// resumed from what the one before kept (`None`: it kept nothing).
    pub fn placed(&self, space: &str) -> Option<usize> {
        Some(self.spaces.get(space)?.addresses.admitted.as_ref()?.placed)
    }

    /// What the last evaluation of `space` changed of the config its broker is to serve, when it
    /// evaluated only some addresses (`None`: the config may differ from the one before in any
    /// address). The space's settings and users are not covered: a caller sends them whole.
    pub fn served_changes(&self, space: &str) -> Option<&ServedChanges> {
        self.spaces.get(space)?.addresses.served_changes.as_ref()
    }

    /// The addresses of `space` the last evaluation evaluated again, by resource name, when it did
    /// not evaluate the space whole (`None`: any address may have a new status). Every other
    /// address of the space came out with the status it went in with, so a caller writing the
    /// statuses back need look only at these.
    pub fn evaluated_again(&self, space: &str) -> Option<&[String]> {
        self.spaces.get(space)?.addresses.again.as_deref()
    }
}

/// What a space's addresses are evaluated against, besides each other and the infrastructure.
fn context(space: &AddressSpace) -> (AddressSpaceSpec, Option<String>) {
    let applied = space.status.as_ref().and_then(|s| s.applied_plan.clone());
    (space.spec.clone(), applied)
}

/// Makes `known` the names of `current`, removing the verdicts in `out` of those that are gone;
/// only names not known before are copied.
fn track<'a, V>(
    known: &mut HashSet<String>,
    current: impl Iterator<Item = &'a str>,
    out: &mut BTreeMap<String, V>,
) {
    let current: HashSet<&str> = current.collect();
    known.retain(|name| {
        let keep = current.contains(name.as_str());
        if !keep {
            out.remove(name);
        }
        keep
    });
    for name in current {
        if !known.contains(name) {
            known.insert(name.to_owned());
        }
    }
}

/// Removes a space that is gone, with its members' verdicts.
fn forget(out: &mut Evaluation, name: &str, memo: &SpaceMemo) {
    out.spaces.remove(name);
    for address in &memo.members.0 {
        out.addresses.remove(address);
    }
    for user in &memo.members.1 {
        out.users.remove(user);
    }
}
