//! Plan admission: whether an address fits its space's quota, with EnMasse's credit semantics.
//!
//! An address plan says how many credits an address takes of each resource; one credit is one
//! pod's worth. A space plan limits how many *pods* the space's addresses may need:
//!
//! - routers needed = ⌈Σ router credits⌉;
//! - brokers needed = the pooled brokers in use (addresses of less than one broker credit, and every
//!   queue, are packed first-fit into brokers of capacity 1, a queue's partitions onto distinct
//!   brokers) plus ⌈credit⌉ for each topic of one broker credit or more (a sharded topic);
//! - aggregate = routers needed + brokers needed;
//! - a subscription lives on its topic's broker; the subscriptions of one broker may take at most
//!   that broker's capacity, and do not count towards the broker or aggregate limit.
//!
//! Addresses are admitted one at a time, so an admitted address is never displaced by a later one:
//! addresses admitted before keep their place (a subscription with its topic, even when the topic
//! moves to a new plan or its broker shrinks), then the others follow in the order given, topics
//! before subscriptions. An address that would need more than a limit stays `Pending` with
//! "Quota exceeded". This implementation serves a space from one broker process: the pod counts are
//! the quota EnMasse would have enforced, not processes it starts.

use std::{borrow::Borrow, collections::BTreeMap};

use crate::{
    credits::Credits,
    error::{InvalidField, Violation},
    resources::{
        address::{AddressType, PlanStatus},
        plans::{AddressPlanSpec, ResourceLimits},
    },
};

/// A space plan's limits, in credits. `None` does not limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Routers.
    pub router: Option<Credits>,
    /// Brokers.
    pub broker: Option<Credits>,
    /// Routers and brokers together.
    pub aggregate: Option<Credits>,
}

impl Limits {
    /// Reads the limits of a space plan.
    pub fn from_plan(limits: &ResourceLimits) -> Result<Self, InvalidField> {
        let read = |name: &str, value: Option<f64>| {
            value
                .map(|v| {
                    Credits::from_plan(v)
                        .map_err(|e| invalid_number(&format!("spec.resourceLimits.{name}"), v, e))
                })
                .transpose()
        };
        Ok(Self {
            router: read("router", limits.router)?,
            broker: read("broker", limits.broker)?,
            aggregate: read("aggregate", limits.aggregate)?,
        })
    }

    fn get(&self, resource: Resource) -> Option<Credits> {
        match resource {
            Resource::Router => self.router,
            Resource::Broker => self.broker,
            Resource::Aggregate => self.aggregate,
        }
    }
}

fn invalid_number(field: &str, value: f64, violation: Violation) -> InvalidField {
    InvalidField::new(field, value.to_string(), violation)
}

/// A resource a space plan limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// Routers.
    Router,
    /// Brokers.
    Broker,
    /// Routers and brokers together.
    Aggregate,
}

impl Resource {
    /// The name used in plans and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Router => "router",
            Self::Broker => "broker",
            Self::Aggregate => "aggregate",
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one address asks of the quota.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The address (`spec.address`).
    pub address: String,
    /// The address type.
    pub type_: AddressType,
    /// For a subscription, its topic's address.
    pub topic: Option<String>,
    /// The address plan's name.
    pub plan: String,
    /// Router credits.
    pub router: Credits,
    /// Broker credits.
    pub broker: Credits,
    /// Partitions the plan asks for (queues only).
    pub partitions: Option<u32>,
    /// Whether the address was admitted before, on this plan: it keeps its place.
    pub previously_admitted: bool,
}

impl Request {
    /// The request of an address of `type_` on `plan`.
    pub fn new(
        address: &str,
        type_: AddressType,
        topic: Option<&str>,
        plan_name: &str,
        plan: &AddressPlanSpec,
    ) -> Result<Self, InvalidField> {
        let read = |name: &str, value: Option<f64>| {
            Credits::from_plan(value.unwrap_or(0.0))
                .map_err(|e| invalid_number(&format!("spec.resources.{name}"), value.unwrap_or(0.0), e))
        };
        Ok(Self {
            address: address.to_owned(),
            type_,
            topic: topic.map(str::to_owned),
            plan: plan_name.to_owned(),
            router: read("router", plan.resources.router)?,
            broker: read("broker", plan.resources.broker)?,
            partitions: plan.partitions,
            previously_admitted: false,
        })
    }
}

/// Whether one address was admitted.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Admitted: the plan in force and the credits the address takes.
    Admitted(PlanStatus),
    /// Admitting the address would need more of `resource` than the space plan allows.
    QuotaExceeded {
        /// The resource.
        resource: Resource,
        /// Pods of it the space would need.
        needed: u64,
        /// What the plan allows.
        limit: Credits,
    },
    /// The subscription's topic is not admitted (yet).
    TopicNotAdmitted {
        /// The topic's address.
        topic: String,
    },
    /// The subscriptions on the topic's broker would take more than the broker's capacity.
    SubscriptionsFull {
        /// The topic's address.
        topic: String,
    },
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Admitted(plan) => write!(f, "admitted on plan {}", plan.name),
            Self::QuotaExceeded {
                resource,
                needed,
                limit,
            } => write!(
                f,
                "Quota exceeded: the address space would need {needed} {resource} credit(s), its plan allows {limit}"
            ),
            Self::TopicNotAdmitted { topic } => write!(f, "topic {topic:?} is not configured yet"),
            Self::SubscriptionsFull { topic } => {
                write!(
                    f,
                    "Quota exceeded: the broker of topic {topic:?} holds no more subscriptions"
                )
            }
        }
    }
}

/// Pods the admitted addresses need.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needed {
    /// Routers.
    pub router: u64,
    /// Brokers.
    pub broker: u64,
}

impl Needed {
    /// Pods of `resource`.
    pub fn of(&self, resource: Resource) -> u64 {
        match resource {
            Resource::Router => self.router,
            Resource::Broker => self.broker,
            Resource::Aggregate => self.router + self.broker,
        }
    }
}

/// The result of admitting a space's addresses.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// One verdict per request, in the order of the requests.
    pub verdicts: Vec<Verdict>,
    /// Pods the admitted addresses need.
    pub needed: Needed,
    /// A limit the previously admitted addresses already exceed (after a plan was edited in place):
    /// they stay admitted, and no new address is.
    pub exceeded: Option<(Resource, u64, Credits)>,
}

/// Where an address's broker credit lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Pooled(usize),
    Sharded(usize),
}

#[derive(Clone, Debug, Default)]
struct Usage {
    router: Credits,
    pooled: Vec<Credits>,
    sharded: Vec<u64>,
    topics: BTreeMap<String, Slot>,
    subscriptions: BTreeMap<Slot, Credits>,
    /// The brokers `pooled` and `sharded` need, kept as they grow: `needed` is asked at every
    /// address, and a space may have thousands.
    brokers: u64,
}

impl Usage {
    fn needed(&self) -> Needed {
        Needed {
            router: self.router.ceil_units(),
            broker: self.brokers,
        }
    }

    fn capacity(&self, slot: Slot) -> Credits {
        match slot {
            Slot::Pooled(_) => Credits::ONE,
            Slot::Sharded(i) => Credits::units(self.sharded.get(i).copied().unwrap_or(1)),
        }
    }

    /// Places one address, or says why it cannot be placed regardless of limits.
    fn place(&mut self, request: &Request) -> Result<u32, Verdict> {
        self.router += request.router;
        match request.type_ {
            AddressType::Anycast | AddressType::Multicast if request.broker == Credits::ZERO => Ok(1),
            AddressType::Subscription => {
                let topic = request.topic.clone().unwrap_or_default();
                let slot = *self
                    .topics
                    .get(&topic)
                    .ok_or(Verdict::TopicNotAdmitted { topic: topic.clone() })?;
                let capacity = self.capacity(slot);
                let used = self.subscriptions.entry(slot).or_default();
                // One admitted before keeps its place when its topic's broker shrinks.
                if *used + request.broker > capacity && !request.previously_admitted {
                    return Err(Verdict::SubscriptionsFull { topic });
                }
                *used += request.broker;
                Ok(1)
            }
            AddressType::Topic if request.broker >= Credits::ONE => {
                self.sharded.push(request.broker.ceil_units());
                self.brokers += request.broker.ceil_units();
                self.topics
                    .insert(request.address.clone(), Slot::Sharded(self.sharded.len() - 1));
                Ok(1)
            }
            _ => {
                let partitions = match request.type_ {
                    AddressType::Queue | AddressType::Deadletter => {
                        let by_credit = u32::try_from(request.broker.ceil_units()).unwrap_or(u32::MAX);
                        request.partitions.unwrap_or(1).max(by_credit).max(1)
                    }
                    _ => 1,
                };
                let share = request.broker.share(partitions);
                let mut taken = Vec::new();
                for _ in 0..partitions {
                    let fit = (0..self.pooled.len())
                        .find(|i| !taken.contains(i) && self.pooled[*i] + share <= Credits::ONE);
                    let index = fit.unwrap_or_else(|| {
                        self.pooled.push(Credits::ZERO);
                        self.pooled.len() - 1
                    });
                    let before = self.pooled[index].ceil_units();
                    self.pooled[index] += share;
                    self.brokers = self.brokers - before + self.pooled[index].ceil_units();
                    taken.push(index);
                }
                if request.type_ == AddressType::Topic {
                    self.topics
                        .insert(request.address.clone(), Slot::Pooled(taken[0]));
                }
                Ok(partitions)
            }
        }
    }
}

fn first_exceeded(needed: Needed, limits: &Limits) -> Option<(Resource, u64, Credits)> {
    [Resource::Router, Resource::Broker, Resource::Aggregate]
        .into_iter()
        .find_map(|resource| {
            let limit = limits.get(resource)?;
            let pods = needed.of(resource);
            (Credits::units(pods) > limit).then_some((resource, pods, limit))
        })
}

fn plan_status(request: &Request, partitions: u32) -> PlanStatus {
    let mut resources = BTreeMap::new();
    resources.insert("router".to_owned(), request.router.as_f64());
    resources.insert("broker".to_owned(), request.broker.as_f64());
    PlanStatus {
        name: request.plan.clone(),
        partitions: Some(partitions),
        resources,
    }
}

/// Admits a space's addresses against its plan's limits. See the module documentation for the
/// order and the semantics.
pub fn admit<R: Borrow<Request>>(limits: &Limits, requests: &[R]) -> Outcome {
    admit_keeping(limits, requests, 0).0
}

/// [`admit`], keeping what a caller needs to place more addresses later without placing these
/// again: the admission after every address, and the admission before each of the last `keep`
/// addresses placed (with the index of its request), in the order they were placed.
pub fn admit_keeping<R: Borrow<Request>>(limits: &Limits, requests: &[R], keep: usize) -> (Outcome, Kept) {
    let requests: Vec<&Request> = requests.iter().map(Borrow::borrow).collect();
    let order = order(&requests);
    let mut admitter = Admitter::new(*limits);
    let mut before = Vec::with_capacity(keep.min(order.len()));
    let mut verdicts: Vec<(usize, Verdict)> = Vec::with_capacity(requests.len());
    let kept_from = order.len().saturating_sub(keep);
    let preceding = kept_from.checked_sub(1).map(|at| order[at]);
    let placed = order.len();
    for (placed, i) in order.into_iter().enumerate() {
        if placed >= kept_from {
            before.push((i, admitter.clone()));
        }
        verdicts.push((i, admitter.place(requests[i])));
    }
    verdicts.sort_by_key(|(i, _)| *i);
    let outcome = Outcome {
        verdicts: verdicts.into_iter().map(|(_, verdict)| verdict).collect(),
        needed: admitter.needed(),
        exceeded: admitter.exceeded(),
    };
    let kept = Kept {
        after: admitter,
        before,
        preceding,
        placed,
    };
    (outcome, kept)
}

/// What [`admit_keeping`] keeps.
#[derive(Clone, Debug)]
pub struct Kept {
    /// The admission after every address.
    pub after: Admitter,
    /// The admission before each of the last addresses placed, with the index of its request, in
    /// the order they were placed.
    pub before: Vec<(usize, Admitter)>,
    /// The index of the request placed just before those, if there was one.
    pub preceding: Option<usize>,
    /// How many were placed.
    pub placed: usize,
}

/// The order addresses are placed in, by index into `requests`: stable, those that keep their
/// place first, then the other non-subscriptions, then the other subscriptions.
pub fn order(requests: &[&Request]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..requests.len()).collect();
    // A subscription keeps its place with its topic: one whose topic moves to a new plan is
    // placed after it, still within the quota it had.
    let kept_topics: std::collections::BTreeSet<&str> = requests
        .iter()
        .filter(|r| r.type_ == AddressType::Topic && r.previously_admitted)
        .map(|r| r.address.as_str())
        .collect();
    let keeps_place = |r: &Request| {
        r.previously_admitted
            && (r.type_ != AddressType::Subscription
                || r.topic.as_deref().is_some_and(|t| kept_topics.contains(t)))
    };
    order.sort_by_key(|&i| {
        (
            !keeps_place(requests[i]),
            requests[i].type_ == AddressType::Subscription,
        )
    });
    order
}

/// Admission under way: the addresses placed so far, in [`order`]. Placing an address never
/// changes the verdict of one placed before it, so one kept after placing every address places
/// those that come after all of them with the verdicts [`admit`] gives.
#[derive(Clone, Debug)]
pub struct Admitter {
    limits: Limits,
    usage: Usage,
    /// Only previously admitted addresses were placed so far.
    grandfathering: bool,
    /// The limit those already exceeded, found when the first other address came.
    exceeded: Option<(Resource, u64, Credits)>,
}

impl Admitter {
    /// Nothing placed yet, against `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            usage: Usage::default(),
            grandfathering: true,
            exceeded: None,
        }
    }

    /// Places `request` after all those placed so far.
    pub fn place(&mut self, request: &Request) -> Verdict {
        if self.grandfathering && !request.previously_admitted {
            self.grandfathering = false;
            self.exceeded = first_exceeded(self.usage.needed(), &self.limits);
        }
        if request.previously_admitted {
            // Kept whatever the limits, so placed at once; a placement refused changed nothing
            // but the router credit it added.
            let router = self.usage.router;
            return match self.usage.place(request) {
                Err(refusal) => {
                    self.usage.router = router;
                    refusal
                }
                Ok(partitions) => Verdict::Admitted(plan_status(request, partitions)),
            };
        }
        let mut attempt = self.usage.clone();
        match attempt.place(request) {
            Err(refusal) => refusal,
            Ok(partitions) => match first_exceeded(attempt.needed(), &self.limits) {
                Some((resource, needed, limit)) => Verdict::QuotaExceeded {
                    resource,
                    needed,
                    limit,
                },
                None => {
                    self.usage = attempt;
                    Verdict::Admitted(plan_status(request, partitions))
                }
            },
        }
    }

    /// Pods the addresses admitted so far need.
    pub fn needed(&self) -> Needed {
        self.usage.needed()
    }

    /// A limit the previously admitted addresses exceed ([`Outcome::exceeded`]), once every
    /// address is placed.
    pub fn exceeded(&self) -> Option<(Resource, u64, Credits)> {
        if self.grandfathering {
            first_exceeded(self.usage.needed(), &self.limits)
        } else {
            self.exceeded
        }
    }
}

#[cfg(test)]
mod tests;
