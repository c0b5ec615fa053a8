//! Addresses: their rules, references, quota, and status.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    Infra,
    applied::{Applied, Hold, HoldReason, applied, applied_condition},
    memo::{Checkpoint, KEEP},
    name_of,
    space::Resolved,
};
use crate::{
    admission::{self, Limits, Request, Verdict},
    broker_config::{
        AddressLimits, BrokerAddress, BrokerReport, ByAddress, DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH,
        DEFAULT_MAX_MESSAGE_SIZE,
    },
    error::one_line,
    names,
    resources::{
        address::{
            Address, AddressStatus, AddressType, MessageRedelivery, MessageTtl, PlanStatus, SubscriptionSpec,
        },
        address_space::AddressSpaceType,
        common::{Phase, ready_condition, set_condition},
        plans::{AddressPlanSpec, AddressSpacePlanSpec},
    },
};

/// The address types each space type offers.
pub(crate) fn allowed_types(space_type: AddressSpaceType) -> &'static [AddressType] {
    match space_type {
        AddressSpaceType::Standard => &[
            AddressType::Anycast,
            AddressType::Multicast,
            AddressType::Queue,
            AddressType::Topic,
            AddressType::Subscription,
            AddressType::Deadletter,
        ],
        AddressSpaceType::Brokered => &[AddressType::Queue, AddressType::Topic, AddressType::Deadletter],
    }
}

/// Why an address is not served.
pub(super) type Refusal = (Phase, String);

/// An address that passed its own rules, with what it is served as: what its spec asks, or what
/// it was last served as while the spec cannot be served.
pub(super) struct Checked<'a> {
    pub(super) address: &'a Address,
    pub(super) served: Applied<'a>,
    pub(super) request: Request,
    /// Why the spec is not what is served.
    pub(super) held: Option<Hold>,
    /// What the address was last served as, when the spec asks for something else: served again
    /// if the spec's plan is not admitted.
    pub(super) fallback: Option<Applied<'a>>,
}

impl<'a> Checked<'a> {
    /// Serves the address as it was last served, because of `why`; false when there is nothing
    /// to fall back to.
    pub(super) fn fall_back(&mut self, why: &str) -> bool {
        let Some(applied) = self.fallback.take() else {
            return false;
        };
        match held(self.address, applied, HoldReason::Refused, why) {
            Ok(held) => {
                *self = held;
                true
            }
            Err(_) => false,
        }
    }
}

/// What an admitted address is served with.
pub(super) struct Served {
    plan_status: PlanStatus,
    message_ttl: Option<MessageTtl>,
    message_redelivery: Option<MessageRedelivery>,
    subscription: Option<SubscriptionSpec>,
    limits: AddressLimits,
}

/// What one evaluation found of one address, for [`super::memo`] to remember: what references
/// to it saw, and what it asked of the quota and was given.
pub(super) struct Trace<'a> {
    pub(super) address: &'a Address,
    /// The type it passed its own rules as, and the type it was served as once it was settled
    /// (a fallback may change it); `None` if it did not pass its own rules or was a duplicate.
    pub(super) types: Option<(AddressType, AddressType)>,
    /// Its last request to the quota and the verdict, when it got that far.
    pub(super) admission: Option<(Request, Verdict)>,
    /// Whether admission moved it back to what it was served as.
    pub(super) fell_back_at_admission: bool,
}

impl<'a> Trace<'a> {
    /// Nothing found yet of `address`.
    pub(super) fn new(address: &'a Address) -> Self {
        Self {
            address,
            types: None,
            admission: None,
            fell_back_at_admission: false,
        }
    }
}

/// Where each checked address is among `checked`, by its address: the first resource took it, so
/// there is one.
pub(super) fn by_address<'a>(checked: &[Checked<'a>]) -> HashMap<&'a str, usize> {
    checked
        .iter()
        .enumerate()
        .map(|(i, c)| (c.address.spec.address.as_str(), i))
        .collect()
}

/// The addresses of a space in the order they are evaluated in: those served before first (a
/// served address wins over a newer resource of the same address: its messages are there), then
/// as given (by creation, then name).
pub(super) fn in_order<'a>(addresses: &[&'a Address]) -> Vec<&'a Address> {
    let mut addresses = addresses.to_vec();
    addresses.sort_by_key(|a| not_served_before(a));
    addresses
}

/// Where `address` comes in [`in_order`] of addresses given by creation, then name.
pub(super) fn order_key(address: &Address) -> impl Ord + '_ {
    (not_served_before(address), super::creation_order(address))
}

/// Whether no earlier evaluation gave `address` a plan: it comes after those that have one.
fn not_served_before(address: &Address) -> bool {
    address.status.as_ref().is_none_or(|s| s.plan_status.is_none())
}

/// Evaluates a space's addresses, given [`in_order`]: statuses go into `out`; the admitted ones
/// are returned for the broker config, with notes for the space's status. With `trace`, what
/// became of each address is recorded there.
pub(super) fn evaluate_addresses<'a>(
    space: &Resolved<'_>,
    addresses: &[&'a Address],
    infra: &Infra<'a>,
    report: Option<&BrokerReport>,
    now: &Time,
    out: &mut BTreeMap<String, AddressStatus>,
    mut trace: Option<&mut Vec<Trace<'a>>>,
) -> (ByAddress<BrokerAddress>, Vec<String>, Option<Checkpoint>) {
    // Sized up front: a `Checked` is large, and growing a vector of 10,000 of them copies and
    // faults in its pages again at each doubling.
    let mut checked: Vec<Checked<'_>> = Vec::with_capacity(addresses.len());
    // The resource that took each address first: one lookup per address, not a scan.
    let mut taken: HashMap<&str, &Address> = HashMap::with_capacity(addresses.len());
    // Where each address's trace is, by resource name.
    let mut traced: HashMap<&str, usize> =
        HashMap::with_capacity(if trace.is_some() { addresses.len() } else { 0 });
    for &address in addresses {
        if let Some(trace) = trace.as_deref_mut() {
            traced.insert(name_of(&address.metadata), trace.len());
            trace.push(Trace::new(address));
        }
        let duplicate = taken.get(address.spec.address.as_str()).map(|first| {
            (
                Phase::Failed,
                format!(
                    "Address '{}' already exists with resource name '{}'",
                    address.spec.address,
                    name_of(&first.metadata)
                ),
            )
        });
        match duplicate.map_or_else(|| check(space, address, infra, report), Err) {
            Ok(c) => {
                taken.insert(address.spec.address.as_str(), address);
                checked.push(c);
            }
            Err((phase, message)) => refuse(out, address, phase, message, now),
        }
    }
    let checked_types: Vec<AddressType> = checked.iter().map(|c| c.served.type_).collect();
    let index = by_address(&checked);

    // References between addresses, then the settings in force; an address that was served
    // before and whose new spec fails here stays as it was.
    let mut settled: Vec<Option<Served>> = Vec::with_capacity(checked.len());
    for i in 0..checked.len() {
        let verdict = settle(&mut checked, i, |checked, target| {
            index.get(target).map(|&j| checked[j].served.type_)
        });
        match verdict {
            Ok(served) => settled.push(Some(served)),
            Err((phase, message)) => {
                refuse(out, checked[i].address, phase, message, now);
                settled.push(None);
            }
        }
    }
    if let Some(trace) = trace.as_deref_mut() {
        for (c, first) in checked.iter().zip(checked_types) {
            trace[traced[name_of(&c.address.metadata)]].types = Some((first, c.served.type_));
        }
    }
    let mut candidates: Vec<Checked<'_>> = Vec::with_capacity(checked.len());
    let mut served_with: Vec<Result<Served, Refusal>> = Vec::with_capacity(checked.len());
    for (c, served) in checked.into_iter().zip(settled) {
        if let Some(served) = served {
            candidates.push(c);
            served_with.push(Ok(served));
        }
    }

    // Admission; an address whose new plan does not fit stays on the plan it was admitted on.
    let mut fell_back = vec![false; candidates.len()];
    // What a later evaluation of the changed addresses resumes from, when traced for one.
    let keep = if trace.is_some() { KEEP } else { 0 };
    let (outcome, kept) = loop {
        let requests: Vec<&Request> = candidates.iter().map(|c| &c.request).collect();
        let (outcome, kept) = admission::admit_keeping(&space.limits, &requests, keep);
        let mut moved = false;
        for (i, verdict) in outcome.verdicts.iter().enumerate() {
            if matches!(verdict, Verdict::Admitted(_)) || candidates[i].fallback.is_none() {
                continue;
            }
            let why = format!("plan {}: {verdict}", candidates[i].address.spec.plan);
            if candidates[i].fall_back(&why) {
                served_with[i] = Ok(settings_held(&candidates[i]));
                fell_back[i] = true;
                moved = true;
            }
        }
        if !moved {
            break (outcome, kept);
        }
    };
    let checkpoint = trace
        .is_some()
        .then(|| Checkpoint::of(kept, |i| name_of(&candidates[i].address.metadata).to_owned()));
    if let Some(trace) = trace {
        for ((c, verdict), fell_back) in candidates.iter().zip(&outcome.verdicts).zip(fell_back) {
            let at = &mut trace[traced[name_of(&c.address.metadata)]];
            at.admission = Some((c.request.clone(), verdict.clone()));
            at.fell_back_at_admission = fell_back;
        }
    }
    let notes = exceeded_note(space, outcome.exceeded);

    let mut served = ByAddress::new();
    for ((c, settings), verdict) in candidates.into_iter().zip(served_with).zip(outcome.verdicts) {
        if let Some(address) = conclude(&c, settings, verdict, report, now, out) {
            served.insert(address);
        }
    }
    (served, notes, checkpoint)
}

/// Resolves the references of the `i`th checked address and its settings; one that fails falls
/// back to what it was served as, when it was. `type_of` says what type an address of the space
/// is served as, as the `i`th sees it: those before it are settled (a fallback may have changed
/// their type), those after it are not yet.
pub(super) fn settle<'a>(
    checked: &mut [Checked<'a>],
    i: usize,
    type_of: impl Fn(&[Checked<'a>], &str) -> Option<AddressType>,
) -> Result<Served, Refusal> {
    let mut verdict =
        references(&checked[i], |target| type_of(checked, target)).and_then(|()| settings(&checked[i]));
    if let Err((_, why)) = &verdict {
        let why = why.clone();
        if checked[i].fall_back(&why) {
            verdict = references(&checked[i], |target| type_of(checked, target))
                .map(|()| settings_held(&checked[i]));
        }
    }
    verdict
}

/// The note for the space's status when the admitted addresses already need more than the plan
/// allows.
pub(super) fn exceeded_note(
    space: &Resolved<'_>,
    exceeded: Option<(admission::Resource, u64, crate::credits::Credits)>,
) -> Vec<String> {
    exceeded
        .iter()
        .map(|(resource, needed, limit)| {
            format!(
                "the admitted addresses need {needed} {resource} credit(s) but plan {} allows {limit}: no new address is admitted",
                space.plan_name
            )
        })
        .collect()
}

/// Writes the status of a candidate that went through admission, and returns what its broker
/// serves if it was admitted.
pub(super) fn conclude(
    c: &Checked<'_>,
    settings: Result<Served, Refusal>,
    verdict: Verdict,
    report: Option<&BrokerReport>,
    now: &Time,
    out: &mut BTreeMap<String, AddressStatus>,
) -> Option<BrokerAddress> {
    let settings = match (settings, verdict) {
        (Ok(settings), Verdict::Admitted(plan_status)) => Served {
            plan_status,
            ..settings
        },
        (Err((phase, message)), _) => {
            refuse(out, c.address, phase, message, now);
            return None;
        }
        (Ok(_), verdict) => {
            refuse(out, c.address, Phase::Pending, verdict.to_string(), now);
            return None;
        }
    };
    let spec = &c.address.spec;
    let reported = report.and_then(|r| r.address(&spec.address));
    let (phase, mut messages) = match reported {
        Some(r) if r.ready => (Phase::Active, Vec::new()),
        Some(r) => (
            Phase::Configuring,
            vec![
                r.message
                    .clone()
                    .unwrap_or_else(|| "the broker reports the address as not ready".into()),
            ],
        ),
        None => (
            Phase::Configuring,
            vec!["waiting for the broker to serve the address".to_owned()],
        ),
    };
    messages.extend(c.held.as_ref().map(|h| h.message.clone()));
    let served = BrokerAddress {
        resource: name_of(&c.address.metadata).to_owned(),
        address: spec.address.clone(),
        type_: c.served.type_,
        plan: c.served.plan_name.clone(),
        topic: c.served.topic.clone(),
        max_consumers: settings.subscription.as_ref().and_then(|s| s.max_consumers),
        limits: settings.limits,
        message_ttl: settings.message_ttl.clone(),
        message_redelivery: settings.message_redelivery.clone(),
        deadletter: spec.deadletter.clone(),
        expiry: spec.expiry.clone(),
    };
    let mut address_status = status(c.address, phase, messages, Some(settings), now);
    set_condition(
        &mut address_status.conditions,
        applied_condition(c.address, c.held.as_ref(), now),
    );
    address_status.depth = reported.map(|r| r.depth);
    address_status.messages_expired = reported.map(|r| r.messages_expired);
    address_status.messages_dead_lettered = reported.map(|r| r.messages_dead_lettered);
    address_status.messages_dropped = reported.map(|r| r.messages_dropped);
    out.insert(name_of(&c.address.metadata).to_owned(), address_status);
    Some(served)
}

pub(super) fn refuse(
    out: &mut BTreeMap<String, AddressStatus>,
    address: &Address,
    phase: Phase,
    message: String,
    now: &Time,
) {
    out.insert(
        name_of(&address.metadata).to_owned(),
        status(address, phase, vec![message], None, now),
    );
}

/// The address's own rules, its plan, and what it asks of the quota. An address that was served
/// before stays as it was served while what its spec now asks cannot be served, so that no edit of
/// its spec or of a plan removes its messages.
pub(super) fn check<'a>(
    space: &Resolved<'_>,
    address: &'a Address,
    infra: &Infra<'a>,
    report: Option<&BrokerReport>,
) -> Result<Checked<'a>, Refusal> {
    let spec = &address.spec;
    let failed = |message: String| (Phase::Failed, message);
    if let Some(claimed) = spec
        .address_space
        .as_deref()
        .filter(|claimed| *claimed != space.name)
    {
        return Err(failed(format!(
            "spec.addressSpace {claimed:?} does not match the address space {} of metadata.name",
            space.name
        )));
    }
    names::check_address(&spec.address).map_err(|e| failed(one_line(&e)))?;

    let applied = applied(address, infra, report);
    let topic = spec
        .topic
        .clone()
        .filter(|_| spec.type_ == AddressType::Subscription);
    if let Some(applied) = applied.as_ref()
        && (applied.type_, applied.topic.as_ref()) != (spec.type_, topic.as_ref())
        && let Some(depth) = report
            .and_then(|r| r.address(&spec.address))
            .map(|r| r.depth)
            .filter(|depth| *depth > 0)
    {
        let why = match &topic {
            Some(topic) if applied.type_ == spec.type_ => format!("the move to topic {topic:?}"),
            _ => format!("the change of type from {} to {}", applied.type_, spec.type_),
        };
        let why = format!("{why} waits until the address's {depth} message(s) are consumed");
        return held(address, applied.clone(), HoldReason::Draining, &why);
    }

    match wanted(space, address, infra) {
        Ok((plan, mut request)) => {
            request.previously_admitted = applied
                .as_ref()
                .is_some_and(|a| a.plan_name == spec.plan && a.type_ == spec.type_);
            Ok(Checked {
                address,
                served: Applied {
                    plan_name: spec.plan.clone(),
                    plan: Cow::Borrowed(plan),
                    recorded: None,
                    type_: spec.type_,
                    topic,
                },
                request,
                held: None,
                fallback: applied,
            })
        }
        Err(refusal) => match applied {
            Some(applied) => held(address, applied, HoldReason::Refused, &refusal.1).map_err(|_| refusal),
            None => Err(refusal),
        },
    }
}

/// `address` served as `applied` rather than as its spec asks, because of `why`.
fn held<'a>(
    address: &'a Address,
    mut applied: Applied<'a>,
    reason: HoldReason,
    why: &str,
) -> Result<Checked<'a>, Refusal> {
    let request = |plan: &AddressPlanSpec, applied: &Applied<'_>| {
        Request::new(
            &address.spec.address,
            applied.type_,
            applied.topic.as_deref(),
            &applied.plan_name,
            plan,
        )
    };
    let mut request = match request(&applied.plan, &applied) {
        Ok(request) => request,
        // The plan was edited into one that does not read: what the status recorded serves.
        Err(err) => match applied.recorded.take() {
            Some(recorded) => {
                let request = request(&recorded, &applied);
                applied.plan = Cow::Owned(recorded);
                request.map_err(|_| err)
            }
            None => Err(err),
        }
        .map_err(|e| {
            (
                Phase::Failed,
                format!("address plan {}: {}", applied.plan_name, one_line(&e)),
            )
        })?,
    };
    request.previously_admitted = true;
    let message = format!(
        "{why}; it stays a {} on plan {}, as it is served",
        applied.type_, applied.plan_name
    );
    Ok(Checked {
        address,
        served: applied,
        request,
        held: Some(Hold { reason, message }),
        fallback: None,
    })
}

/// An address waiting for its space, which cannot be served just now: `Pending`, keeping what its
/// status says is in force, since its broker keeps serving it meanwhile.
pub(super) fn waiting_for_space(address: &Address, why: &str, now: &Time) -> AddressStatus {
    let mut status = status(address, Phase::Pending, vec![why.to_owned()], None, now);
    if let Some(previous) = &address.status {
        status.plan_status = previous.plan_status.clone();
        status.limits = previous.limits;
        status.message_ttl = previous.message_ttl.clone();
        status.message_redelivery = previous.message_redelivery.clone();
        status.subscription = previous.subscription.clone();
    }
    status
}

/// What the spec asks: a type the space offers, on a plan that exists, fits the type and is
/// offered by the space's plan.
fn wanted<'a>(
    space: &Resolved<'_>,
    address: &Address,
    infra: &Infra<'a>,
) -> Result<(&'a AddressPlanSpec, Request), Refusal> {
    let spec = &address.spec;
    let failed = |message: String| (Phase::Failed, message);
    let allowed = allowed_types(space.type_);
    if !allowed.contains(&spec.type_) {
        let names: Vec<&str> = allowed.iter().map(|t| t.as_str()).collect();
        return Err(failed(format!(
            "address type {} is not available in a {} address space (available: {})",
            spec.type_,
            space.type_,
            names.join(", ")
        )));
    }
    let plan = find_address_plan(infra, &spec.plan, spec.type_)?;
    if !space.plan.address_plans.contains(&spec.plan) {
        return Err(failed(format!(
            "address plan {} is not offered by address space plan {} (offered: {})",
            spec.plan,
            space.plan_name,
            space.plan.address_plans.join(", ")
        )));
    }
    let request = Request::new(&spec.address, spec.type_, spec.topic.as_deref(), &spec.plan, plan)
        .map_err(|e| failed(format!("address plan {}: {}", spec.plan, one_line(&e))))?;
    Ok((plan, request))
}

pub(super) fn find_address_plan<'a>(
    infra: &Infra<'a>,
    name: &str,
    type_: AddressType,
) -> Result<&'a AddressPlanSpec, Refusal> {
    let plan = infra
        .address_plans
        .iter()
        .find(|p| name_of(&p.metadata) == name)
        .ok_or_else(|| (Phase::Pending, format!("address plan {name} not found")))?;
    if plan.spec.address_type != type_ {
        return Err((
            Phase::Failed,
            format!(
                "address plan {name} is for {} addresses, not {type_}",
                plan.spec.address_type
            ),
        ));
    }
    Ok(&plan.spec)
}

/// A subscription's topic and the dead-letter addresses must be addresses of the right type.
fn references(c: &Checked<'_>, type_of: impl Fn(&str) -> Option<AddressType>) -> Result<(), Refusal> {
    let spec = &c.address.spec;
    let mut wanted: Vec<(&str, &str, AddressType)> = Vec::new();
    if c.served.type_ == AddressType::Subscription {
        let topic = c
            .served
            .topic
            .as_deref()
            .ok_or((Phase::Failed, "spec.topic is required for a subscription".into()))?;
        wanted.push(("spec.topic", topic, AddressType::Topic));
    }
    // A held address keeps serving with dead-letter addresses that do not resolve: the broker
    // drops what it would move there, and the hold's message says why.
    if c.held.is_none() {
        if let Some(deadletter) = &spec.deadletter {
            wanted.push(("spec.deadletter", deadletter, AddressType::Deadletter));
        }
        if let Some(expiry) = &spec.expiry {
            wanted.push(("spec.expiry", expiry, AddressType::Deadletter));
        }
    }
    for (field, target, type_) in wanted {
        match type_of(target) {
            None => {
                return Err((
                    Phase::Pending,
                    format!("{field}: {type_} address {target:?} not found in the address space"),
                ));
            }
            Some(other) if other != type_ => {
                return Err((
                    Phase::Failed,
                    format!("{field}: {target:?} is a {other}, not a {type_}"),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The TTL, redelivery and subscription settings in force: the plan's, narrowed or overridden by
/// the address.
fn settings(c: &Checked<'_>) -> Result<Served, Refusal> {
    let spec = &c.address.spec;
    let plan = &c.served.plan;
    let plan_ttl = plan.message_ttl.clone().unwrap_or_default();
    let own_ttl = spec.message_ttl.clone().unwrap_or_default();
    if let (Some(min), Some(max)) = (own_ttl.minimum, own_ttl.maximum)
        && min > max
    {
        return Err((
            Phase::Failed,
            format!("spec.messageTtl.minimum {min} is above spec.messageTtl.maximum {max}"),
        ));
    }
    let narrow = |plan: Option<u64>, own: Option<u64>, pick: fn(u64, u64) -> u64| match (plan, own) {
        (Some(p), Some(o)) => Some(pick(p, o)),
        (p, o) => p.or(o),
    };
    let ttl = MessageTtl {
        minimum: narrow(plan_ttl.minimum, own_ttl.minimum, u64::max),
        maximum: narrow(plan_ttl.maximum, own_ttl.maximum, u64::min),
    };
    if let (Some(min), Some(max)) = (ttl.minimum, ttl.maximum)
        && min > max
    {
        return Err((
            Phase::Failed,
            format!(
                "spec.messageTtl leaves no TTL within plan {}: minimum {min} is above maximum {max}",
                c.served.plan_name
            ),
        ));
    }
    let plan_redelivery = plan.message_redelivery.clone().unwrap_or_default();
    let own = spec.message_redelivery.clone().unwrap_or_default();
    let redelivery = MessageRedelivery {
        maximum_delivery_attempts: own
            .maximum_delivery_attempts
            .or(plan_redelivery.maximum_delivery_attempts),
        redelivery_delay: own.redelivery_delay.or(plan_redelivery.redelivery_delay),
        redelivery_delay_multiplier: own
            .redelivery_delay_multiplier
            .or(plan_redelivery.redelivery_delay_multiplier),
        maximum_delivery_delay: own
            .maximum_delivery_delay
            .or(plan_redelivery.maximum_delivery_delay),
    };
    // Redelivery is what a queue does with a message that comes back: only addresses that queue
    // for competing consumers have it in force.
    let redelivers = matches!(
        c.served.type_,
        AddressType::Queue | AddressType::Subscription | AddressType::Deadletter
    );
    Ok(Served {
        plan_status: PlanStatus::default(),
        message_ttl: (ttl != MessageTtl::default()).then_some(ttl),
        message_redelivery: (redelivers && redelivery != MessageRedelivery::default()).then_some(redelivery),
        subscription: spec
            .subscription
            .clone()
            .filter(|_| c.served.type_ == AddressType::Subscription),
        limits: plan_limits(plan),
    })
}

/// The settings of a held address: as its spec and plan give them, or, when they do not make
/// sense together, the TTL and redelivery its status recorded as in force.
pub(super) fn settings_held(c: &Checked<'_>) -> Served {
    settings(c).unwrap_or_else(|_| {
        let recorded = c.address.status.clone().unwrap_or_default();
        let plan = &c.served.plan;
        Served {
            plan_status: PlanStatus::default(),
            message_ttl: recorded.message_ttl,
            message_redelivery: recorded.message_redelivery,
            subscription: recorded.subscription,
            limits: plan_limits(plan),
        }
    })
}

/// How much an address on `plan` may hold.
fn plan_limits(plan: &AddressPlanSpec) -> AddressLimits {
    AddressLimits {
        max_depth: plan.max_depth.unwrap_or(DEFAULT_MAX_DEPTH),
        max_bytes: plan.max_bytes.unwrap_or(DEFAULT_MAX_BYTES),
        max_message_size: plan.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE_SIZE),
    }
}

/// Whether the addresses served now would fit a new space plan: every address plan they use must be
/// offered by it, and admitting them all must stay within its limits.
pub(super) fn plan_change_fits(
    plan_name: &str,
    plan: &AddressSpacePlanSpec,
    limits: &Limits,
    addresses: &[&Address],
    infra: &Infra<'_>,
) -> Result<(), String> {
    let mut requests = Vec::new();
    for address in addresses {
        // What the address is served as, which may not be what its spec asks just now.
        let Some(applied) = applied(address, infra, None) else {
            continue;
        };
        let name = &applied.plan_name;
        if !plan.address_plans.iter().any(|p| p == name) {
            return Err(format!(
                "address plan {name} of address {} is not offered by {plan_name}",
                address.spec.address
            ));
        }
        let request = Request::new(
            &address.spec.address,
            applied.type_,
            applied.topic.as_deref(),
            name,
            &applied.plan,
        )
        .map_err(|e| one_line(&e))?;
        requests.push(request);
    }
    let outcome = admission::admit(limits, &requests);
    match outcome
        .verdicts
        .iter()
        .find(|v| !matches!(v, Verdict::Admitted(_)))
    {
        Some(Verdict::QuotaExceeded { resource, .. }) => {
            Err(format!("quota exceeded for resource {resource}"))
        }
        Some(other) => Err(other.to_string()),
        None => Ok(()),
    }
}

/// Builds an address's status, keeping its conditions' transition times.
pub(super) fn status(
    address: &Address,
    phase: Phase,
    messages: Vec<String>,
    served: Option<Served>,
    now: &Time,
) -> AddressStatus {
    let previous = address.status.clone().unwrap_or_default();
    let ready = phase == Phase::Active;
    let generation = address.metadata.generation;
    let mut conditions = previous.conditions.clone();
    let condition = ready_condition(
        &previous.conditions,
        ready,
        phase.as_str(),
        &messages.join("; "),
        generation,
        now,
    );
    set_condition(&mut conditions, condition);
    let (plan_status, message_ttl, message_redelivery, subscription, limits) = match served {
        Some(s) => (
            Some(s.plan_status),
            s.message_ttl,
            s.message_redelivery,
            s.subscription,
            Some(s.limits),
        ),
        None => (None, None, None, None, None),
    };
    AddressStatus {
        is_ready: ready,
        phase: Some(phase),
        messages,
        plan_status,
        broker_statuses: previous.broker_statuses,
        message_ttl,
        message_redelivery,
        subscription,
        limits,
        depth: None,
        messages_expired: None,
        messages_dead_lettered: None,
        messages_dropped: None,
        conditions,
        observed_generation: generation,
    }
}
