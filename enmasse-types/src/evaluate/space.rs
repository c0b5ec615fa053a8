//! The address space: its plan, infra config and authentication service, plan changes, and the
//! space's own status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    Evaluation, Infra, Members, SpaceVerdict, address,
    memo::{self, AddressMemo, Candidates, Told},
    name_of, user,
};
use crate::{
    admission::Limits,
    broker_config::{
        AddressesDigest, Authentication, BrokerAddress, BrokerConfig, BrokerReport, ByAddress, SpaceConfig,
    },
    error::one_line,
    names, quantity,
    resources::{
        address::Address,
        address_space::{
            AddressSpace, AddressSpaceStatus, AddressSpaceType, CertProvider, ENDPOINT_SERVICES, EndpointSpec,
        },
        authentication_service::{AuthenticationService, AuthenticationServiceType},
        common::{ComponentResources, Phase, ready_condition, set_condition},
        infra_config::{AddressFullPolicy, RouterPolicy},
        messaging_user::MessagingUser,
        plans::AddressSpacePlanSpec,
    },
};

/// An address space whose plan, infra config and authentication service were all found.
pub(super) struct Resolved<'a> {
    pub(super) namespace: &'a str,
    pub(super) name: &'a str,
    pub(super) type_: AddressSpaceType,
    pub(super) plan_name: &'a str,
    pub(super) plan: &'a AddressSpacePlanSpec,
    pub(super) limits: Limits,
    pub(super) authentication: Authentication,
    /// The connection limits of its infra config's router.
    pub(super) policy: Option<RouterPolicy>,
    /// The bytes all its broker's queues may hold together.
    pub(super) global_max_size: Option<u64>,
    /// What a full address does (its infra config's broker `addressFullPolicy`).
    pub(super) full_policy: Option<AddressFullPolicy>,
}

/// Why a space cannot be served: its phase and the causes.
pub(super) type Unresolved = (Phase, Vec<String>);

/// Evaluates one space with its addresses and users, writing every verdict into `out`. With a
/// `memo` of the last evaluation (whose verdicts `out` holds), only the addresses that changed
/// are evaluated again where that gives the same verdict; the memo is kept up to date.
#[allow(clippy::too_many_arguments)]
pub(super) fn evaluate_space<'a>(
    namespace: &str,
    space: &AddressSpace,
    members: &Members<'a>,
    infra: &Infra<'a>,
    report: Option<&BrokerReport>,
    now: &Time,
    out: &mut Evaluation,
    mut memo: Option<&mut AddressMemo>,
) {
    let name = name_of(&space.metadata);
    let (resolved, mut messages) = match resolve(namespace, space, infra, &members.addresses) {
        Ok(resolved) => resolved,
        Err((phase, messages)) => {
            if let Some(memo) = memo {
                memo.clear();
            }
            let why = format!("address space {name} is not ready: {}", messages.join("; "));
            for address in &members.addresses {
                let status = address::waiting_for_space(address, &why, now);
                out.addresses
                    .insert(name_of(&address.metadata).to_owned(), status);
            }
            for u in &members.users {
                out.users.insert(
                    name_of(&u.metadata).to_owned(),
                    user::status(u, Phase::Pending, Some(why.clone()), now),
                );
            }
            let status = space_status(space, phase, messages, None, now);
            out.spaces.insert(
                name.to_owned(),
                SpaceVerdict {
                    status,
                    config: None,
                    revision: String::new(),
                    digest: AddressesDigest::default(),
                },
            );
            return;
        }
    };

    let ordered = address::in_order(&members.addresses);
    let again = memo.as_deref_mut().and_then(|memo| {
        let previous = take_served(out, name)?;
        memo::again(
            &resolved,
            Candidates::All(&ordered),
            infra,
            report,
            now,
            &mut out.addresses,
            memo,
            previous,
        )
    });
    let (addresses, address_messages, digest) = match again {
        Some(again) => again,
        None => {
            let mut traces = memo.is_some().then(Vec::new);
            let whole = address::evaluate_addresses(
                &resolved,
                &ordered,
                infra,
                report,
                now,
                &mut out.addresses,
                traces.as_mut(),
            );
            let digest = AddressesDigest::of(&whole.0);
            if let (Some(memo), Some(traces)) = (memo, traces) {
                memo.remember(&traces, report, &out.addresses);
                memo.digest = digest;
                memo.admitted = whole.2;
            }
            (whole.0, whole.1, digest)
        }
    };
    messages.extend(address_messages);
    finish(
        space,
        &resolved,
        messages,
        (addresses, digest),
        &members.users,
        report,
        now,
        out,
    );
}

/// Evaluates again only the addresses of a space that `told` says changed, with the memo of the
/// last evaluation (whose verdicts `out` holds), as [`evaluate_space`] does. False when that is not
/// enough (the space cannot be served, or a change reaches further): the caller forgets the memo
/// and evaluates the space whole, and `out` holds what it overwrites then.
#[allow(clippy::too_many_arguments)]
pub(super) fn evaluate_told<'a>(
    namespace: &str,
    space: &AddressSpace,
    told: &Told<'a, '_>,
    users: &[&'a MessagingUser],
    infra: &Infra<'a>,
    report: Option<&BrokerReport>,
    now: &Time,
    out: &mut Evaluation,
    memo: &mut AddressMemo,
) -> bool {
    let name = name_of(&space.metadata);
    // The addresses are read only for a plan change, which the caller evaluates whole.
    let Ok((resolved, mut messages)) = resolve(namespace, space, infra, &[]) else {
        return false;
    };
    let Some(previous) = take_served(out, name) else {
        return false;
    };
    let Some((addresses, address_messages, digest)) = memo::again(
        &resolved,
        Candidates::Told(told),
        infra,
        report,
        now,
        &mut out.addresses,
        memo,
        previous,
    ) else {
        return false;
    };
    messages.extend(address_messages);
    finish(
        space,
        &resolved,
        messages,
        (addresses, digest),
        users,
        report,
        now,
        out,
    );
    true
}

/// What the broker of space `name` was to serve after the last evaluation, taken out of `out`:
/// the unchanged addresses keep their part.
fn take_served(out: &mut Evaluation, name: &str) -> Option<ByAddress<BrokerAddress>> {
    out.spaces
        .get_mut(name)
        .and_then(|v| v.config.as_mut())
        .map(|c| std::mem::take(&mut c.addresses))
}

/// The space's users, config and status, once its addresses are evaluated: `served` is what its
/// broker is to serve of them, with its digest.
#[allow(clippy::too_many_arguments)]
fn finish(
    space: &AddressSpace,
    resolved: &Resolved<'_>,
    mut messages: Vec<String>,
    served: (ByAddress<BrokerAddress>, AddressesDigest),
    users: &[&MessagingUser],
    report: Option<&BrokerReport>,
    now: &Time,
    out: &mut Evaluation,
) {
    let (addresses, digest) = served;
    let (namespace, name) = (resolved.namespace, resolved.name);
    let users = user::evaluate_users(resolved, users);
    let config = BrokerConfig {
        space: SpaceConfig {
            connection_policy: resolved.policy.clone(),
            global_max_size: resolved.global_max_size,
            address_full_policy: resolved.full_policy,
            ..SpaceConfig::new(
                namespace,
                name,
                resolved.type_,
                resolved.plan_name,
                resolved.authentication.clone(),
            )
        },
        addresses,
        users: users
            .iter()
            .filter_map(|(_, verdict)| verdict.as_ref().ok().cloned())
            .collect(),
    };
    let revision = config.revision_with(digest);
    let applied = report.is_some_and(|r| r.revision == revision && r.problems.is_empty());
    for (u, verdict) in &users {
        let status = match verdict {
            Err((phase, message)) => user::status(u, *phase, Some(message.clone()), now),
            Ok(_) if resolved.authentication.type_ == AuthenticationServiceType::None => {
                let message = format!(
                    "authentication service {} is of type none: every client is accepted with every right",
                    resolved.authentication.service
                );
                user::status(u, Phase::Active, Some(message), now)
            }
            Ok(_) if applied => user::status(u, Phase::Active, None, now),
            Ok(_) => user::status(
                u,
                Phase::Configuring,
                Some("waiting for the broker to apply the user".into()),
                now,
            ),
        };
        out.users.insert(name_of(&u.metadata).to_owned(), status);
    }

    let phase = if applied {
        Phase::Active
    } else {
        match report {
            None => messages.push("waiting for the broker to report".to_owned()),
            Some(r) if r.revision.is_empty() => messages.push(format!(
                "the broker has no configuration yet (it has just started, or restarted); the latest is {revision}"
            )),
            Some(r) if r.revision != revision => messages.push(format!(
                "the broker serves configuration {}, not the latest ({revision})",
                r.revision
            )),
            Some(r) => messages.extend(r.problems.iter().cloned()),
        }
        Phase::Configuring
    };
    let status = space_status(space, phase, messages, Some(resolved.plan_name), now);
    out.spaces.insert(
        name.to_owned(),
        SpaceVerdict {
            status,
            config: Some(config),
            revision,
            digest,
        },
    );
}

/// Finds what the space needs; the second value holds notes that do not stop the space.
fn resolve<'a>(
    namespace: &'a str,
    space: &'a AddressSpace,
    infra: &Infra<'a>,
    addresses: &[&Address],
) -> Result<(Resolved<'a>, Vec<String>), Unresolved> {
    let name = name_of(&space.metadata);
    let failed = |message: String| (Phase::Failed, vec![message]);
    names::check_space_name(name).map_err(|e| failed(one_line(&e)))?;
    check_endpoints(&space.spec.endpoints).map_err(failed)?;

    let type_ = space.spec.type_;
    let mut notes = Vec::new();
    let wanted = space.spec.plan.as_str();
    let applied = space.status.as_ref().and_then(|s| s.applied_plan.as_deref());
    let (plan_name, plan, limits) = match applied {
        Some(old) if old != wanted => match find_plan(infra, type_, old) {
            // The old plan is gone: nothing to fall back to.
            Err(_) => find_plan(infra, type_, wanted).map(|(plan, limits)| (wanted, plan, limits))?,
            Ok((old_plan, old_limits)) => {
                let change = find_plan(infra, type_, wanted)
                    .map_err(|(_, messages)| messages.join("; "))
                    .and_then(|(plan, limits)| {
                        address::plan_change_fits(wanted, plan, &limits, addresses, infra)
                            .map(|()| (plan, limits))
                    });
                match change {
                    Ok((plan, limits)) => (wanted, plan, limits),
                    Err(why) => {
                        notes.push(format!(
                            "Unable to apply plan {wanted} to address space {namespace}:{name}: {why}; plan {old} stays applied"
                        ));
                        (old, old_plan, old_limits)
                    }
                }
            }
        },
        _ => find_plan(infra, type_, wanted).map(|(plan, limits)| (wanted, plan, limits))?,
    };

    let infra_found = match type_ {
        AddressSpaceType::Standard => infra
            .standard_infra_configs
            .iter()
            .any(|c| name_of(&c.metadata) == plan.infra_config_ref),
        AddressSpaceType::Brokered => infra
            .brokered_infra_configs
            .iter()
            .any(|c| name_of(&c.metadata) == plan.infra_config_ref),
    };
    if !infra_found {
        let kind = if type_ == AddressSpaceType::Standard {
            "StandardInfraConfig"
        } else {
            "BrokeredInfraConfig"
        };
        return Err((
            Phase::Pending,
            vec![format!(
                "{kind} {} of plan {plan_name} not found",
                plan.infra_config_ref
            )],
        ));
    }

    let authentication = authentication(space, infra.authentication_services)?;
    let policy = infra
        .standard_infra_configs
        .iter()
        .filter(|_| type_ == AddressSpaceType::Standard)
        .find(|c| name_of(&c.metadata) == plan.infra_config_ref)
        .and_then(|c| c.spec.router.as_ref())
        .and_then(|router| router.policy.clone());
    let broker = broker_memory(infra, type_, &plan.infra_config_ref);
    let (global_max_size, memory_note) = global_max_size(broker.as_ref(), &plan.infra_config_ref);
    notes.extend(memory_note);
    let full_policy = broker.and_then(|b| b.full_policy);
    let resolved = Resolved {
        namespace,
        name,
        type_,
        plan_name,
        plan,
        limits,
        authentication,
        policy,
        global_max_size,
        full_policy,
    };
    Ok((resolved, notes))
}

/// What the infra config says of the broker's memory: its `globalMaxSize`, its memory, and its
/// `addressFullPolicy`.
struct BrokerMemory {
    global_max_size: Option<String>,
    memory: Option<String>,
    full_policy: Option<AddressFullPolicy>,
}

fn broker_memory(infra: &Infra<'_>, type_: AddressSpaceType, config: &str) -> Option<BrokerMemory> {
    let of = |global: &Option<String>, resources: &Option<ComponentResources>, policy| BrokerMemory {
        global_max_size: global.clone(),
        memory: resources.as_ref().and_then(|r| r.memory.clone()),
        full_policy: policy,
    };
    match type_ {
        AddressSpaceType::Standard => infra
            .standard_infra_configs
            .iter()
            .find(|c| name_of(&c.metadata) == config)
            .and_then(|c| c.spec.broker.as_ref())
            .map(|b| of(&b.global_max_size, &b.resources, b.address_full_policy)),
        AddressSpaceType::Brokered => infra
            .brokered_infra_configs
            .iter()
            .find(|c| name_of(&c.metadata) == config)
            .and_then(|c| c.spec.broker.as_ref())
            .map(|b| of(&b.global_max_size, &b.resources, b.address_full_policy)),
    }
}

/// The bytes all the broker's queues may hold together: the infra config's broker
/// `globalMaxSize`, or a quarter of the broker's memory (EnMasse 0.32's default), or no bound
/// when neither is set. A size that does not read is noted, and the other rule applies.
fn global_max_size(broker: Option<&BrokerMemory>, config: &str) -> (Option<u64>, Option<String>) {
    let Some(broker) = broker else {
        return (None, None);
    };
    let mut note = None;
    if let Some(global) = &broker.global_max_size {
        match quantity::bytes(global) {
            Ok(bytes) => return (Some(bytes), None),
            Err(err) => note = Some(format!("infra config {config}: broker.globalMaxSize {err}")),
        }
    }
    let quarter = broker
        .memory
        .as_deref()
        .and_then(|memory| quantity::bytes(memory).ok())
        .map(|bytes| bytes / 4);
    (quarter, note)
}

/// Finds a space plan for a space of `type_`.
fn find_plan<'a>(
    infra: &Infra<'a>,
    type_: AddressSpaceType,
    name: &str,
) -> Result<(&'a AddressSpacePlanSpec, Limits), Unresolved> {
    let plan = infra
        .space_plans
        .iter()
        .find(|p| name_of(&p.metadata) == name)
        .ok_or_else(|| {
            (
                Phase::Pending,
                vec![format!("address space plan {name} not found")],
            )
        })?;
    if plan.spec.address_space_type != type_ {
        let message = format!(
            "address space plan {name} is for {} address spaces, not {type_}",
            plan.spec.address_space_type
        );
        return Err((Phase::Failed, vec![message]));
    }
    let limits = Limits::from_plan(&plan.spec.resource_limits).map_err(|e| {
        (
            Phase::Failed,
            vec![format!("address space plan {name}: {}", one_line(&e))],
        )
    })?;
    Ok((&plan.spec, limits))
}

/// The authentication service `space` uses: the one it names, or else the first of type
/// `standard` by name, or else the first of type `none`, as EnMasse chose.
pub(super) fn chosen_authentication_service<'a>(
    space: &AddressSpace,
    services: &'a [AuthenticationService],
) -> Option<&'a AuthenticationService> {
    let by_type = |t: AuthenticationServiceType| {
        let mut of_type: Vec<&AuthenticationService> =
            services.iter().filter(|s| s.spec.type_ == t).collect();
        of_type.sort_by_key(|s| name_of(&s.metadata));
        of_type.first().copied()
    };
    match space
        .spec
        .authentication_service
        .as_ref()
        .and_then(|r| r.name.as_deref())
    {
        Some(name) => services.iter().find(|s| name_of(&s.metadata) == name),
        None => {
            by_type(AuthenticationServiceType::Standard).or_else(|| by_type(AuthenticationServiceType::None))
        }
    }
}

fn authentication(
    space: &AddressSpace,
    services: &[AuthenticationService],
) -> Result<Authentication, Unresolved> {
    let reference = space.spec.authentication_service.as_ref();
    let service = match chosen_authentication_service(space, services) {
        Some(service) => service,
        None => {
            let message = match reference.and_then(|r| r.name.as_deref()) {
                Some(name) => format!("authentication service {name} not found"),
                None => "no authentication service of type standard or none is defined".to_owned(),
            };
            return Err((Phase::Pending, vec![message]));
        }
    };
    let service_name = name_of(&service.metadata).to_owned();
    let overrides = reference.and_then(|r| r.overrides.as_ref());
    let allows_override = service
        .spec
        .external
        .as_ref()
        .and_then(|e| e.allow_override)
        .unwrap_or(false);
    if overrides.is_some() && !allows_override {
        let message = format!(
            "authentication service {service_name} does not allow overrides (spec.external.allowOverride)"
        );
        return Err((Phase::Failed, vec![message]));
    }
    if service.spec.type_ == AuthenticationServiceType::External {
        let message =
            format!("authentication service {service_name} is of type external, which is not supported yet");
        return Err((Phase::Failed, vec![message]));
    }
    Ok(Authentication {
        service: service_name,
        type_: service.spec.type_,
    })
}

/// Checks the endpoints: unique names, known services, complete certificates, valid exports.
fn check_endpoints(endpoints: &[EndpointSpec]) -> Result<(), String> {
    let mut seen = Vec::new();
    for (i, endpoint) in endpoints.iter().enumerate() {
        let field = format!("spec.endpoints[{i}]");
        if seen.contains(&endpoint.name.as_str()) {
            return Err(format!(
                "{field}.name {:?} is used by another endpoint",
                endpoint.name
            ));
        }
        seen.push(&endpoint.name);
        if !ENDPOINT_SERVICES.contains(&endpoint.service.as_str()) {
            return Err(format!(
                "{field}.service {:?} is not one of {}",
                endpoint.service,
                ENDPOINT_SERVICES.join(", ")
            ));
        }
        if let Some(cert) = endpoint
            .cert
            .as_ref()
            .filter(|c| c.provider == CertProvider::CertBundle)
        {
            for (key, value) in [("tlsKey", &cert.tls_key), ("tlsCert", &cert.tls_cert)] {
                match value {
                    None => {
                        return Err(format!(
                            "{field}.cert.{key} is required for the certBundle provider"
                        ));
                    }
                    Some(v) if !crate::base64::is_valid(v) => {
                        return Err(format!("{field}.cert.{key} must be base64-encoded PEM"));
                    }
                    Some(_) => {}
                }
            }
        }
        for (j, export) in endpoint.exports.iter().enumerate() {
            names::check_object_name(&export.name)
                .map_err(|e| format!("{field}.exports[{j}].name {:?}: {}", export.name, e.violation))?;
        }
    }
    Ok(())
}

/// Builds the space's status, keeping what other parts of its writer record (endpoints, CA).
fn space_status(
    space: &AddressSpace,
    phase: Phase,
    messages: Vec<String>,
    applied_plan: Option<&str>,
    now: &Time,
) -> AddressSpaceStatus {
    let previous = space.status.clone().unwrap_or_default();
    let ready = phase == Phase::Active;
    let generation = space.metadata.generation;
    let reason = phase.as_str();
    let mut conditions = previous.conditions.clone();
    let condition = ready_condition(
        &previous.conditions,
        ready,
        reason,
        &messages.join("; "),
        generation,
        now,
    );
    set_condition(&mut conditions, condition);
    AddressSpaceStatus {
        is_ready: ready,
        phase: Some(phase),
        messages,
        applied_plan: applied_plan.map(str::to_owned).or(previous.applied_plan),
        conditions,
        observed_generation: generation,
        unsupported_fields: unsupported_fields(space),
        ..previous
    }
}

/// The fields of `space` this implementation reads and does not act on.
fn unsupported_fields(space: &AddressSpace) -> Vec<String> {
    let mut fields = Vec::new();
    if space
        .spec
        .authentication_service
        .as_ref()
        .is_some_and(|r| r.type_.is_some())
    {
        fields.push("authenticationService.type".to_owned());
    }
    let certificate = space.spec.certificate_endpoint();
    for endpoint in &space.spec.endpoints {
        let at = format!("endpoints[{}]", endpoint.name);
        if !endpoint.is_served() {
            // Nothing serves it: the whole endpoint, whatever it says.
            fields.push(format!("{at} (service {})", endpoint.service));
            continue;
        }
        if endpoint.cert.as_ref().is_some_and(|c| c.secret_name.is_some()) {
            fields.push(format!("{at}.cert.secretName"));
        }
        // One broker serves one certificate on all its TLS ports.
        if let Some(serving) = certificate.filter(|c| c.name != endpoint.name)
            && endpoint.cert.is_some()
            && endpoint.cert != serving.cert
        {
            fields.push(format!(
                "{at}.cert (the broker serves endpoints[{}]'s certificate on every port)",
                serving.name
            ));
        }
    }
    fields
}
