//! The EnMasse operator for Kubernetes.
//!
//! It reconciles `AddressSpace`s into broker workloads (StatefulSet, Service, TLS Secret), writes each
//! space's endpoint exports into the tenant namespace, pushes every broker the configuration that
//! `enmasse-types` derives from the space's manifests, reads back what the broker really serves and
//! writes the status that follows from it. The decisions are pure functions; the API conversation
//! is kept apart from them.
//!
//! - [`names`]: what a space's infrastructure is called and how it is labelled;
//! - [`workload`]: the broker's StatefulSet and Service;
//! - [`certificates`]: the Secrets of the certificate `amqps` serves, per cert provider;
//! - [`status`]: a space's status, held to what the operator saw of its infrastructure;
//! - [`exports`]: writing the exports into the team's namespace within the post's Role;
//! - [`expose`]: load balancers and routes for endpoints exposed outside the cluster;
//! - [`members`]: the Addresses and MessagingUsers the watches bring, and what changed of each space;
//! - [`space`]: one pass over an address space, its members and its broker;
//! - [`orphans`]: the status of Addresses and users whose space does not exist;
//! - [`infra_status`]: the status of plans, infra configs and authentication services;
//! - [`operator`]: the Lease, the watches and the controllers that run the passes.

pub mod brokers;
pub mod certificates;
pub mod context;
pub mod exports;
pub mod expose;
pub mod http;
pub mod infra;
pub mod infra_status;
pub mod lease;
pub mod members;
pub mod metrics;
pub mod names;
pub mod network_policy;
pub mod operator;
pub mod orphans;
pub mod retention;
pub mod space;
pub mod status;
#[cfg(test)]
mod testing;

// The unit tests (the reconcile benchmark among them) run with the allocator the operator runs with.
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
pub mod workload;
