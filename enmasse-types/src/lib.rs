//! EnMasse resource types, their rules, and the broker config contract.
//!
//! Everything here is a pure function of its inputs: no I/O, no clock, no async. The operator and the
//! standalone broker both call these rules, so they reach the same verdict on the same manifests.
//!
//! - [`resources`]: the kinds (`AddressSpace`, `Address`, `MessagingUser`, plans, infra configs,
//!   authentication services) with EnMasse's field names.

pub mod admission;
pub mod base64;
pub mod broker_config;
pub mod by_address;
pub mod catalog;
pub mod config_patch;
pub mod crd;
pub mod credits;
pub mod error;
pub mod evaluate;
pub mod exports;
pub mod manifests;
pub mod names;
pub mod patterns;
pub mod policy;
pub mod quantity;
pub mod report_changes;
pub mod resources;
