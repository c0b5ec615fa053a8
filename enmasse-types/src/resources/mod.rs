//! The EnMasse kinds, with EnMasse's API groups, versions and field names, so that EnMasse
//! manifests apply unchanged.

// kube's derive takes one `printcolumn(type_ = ...)` per column, which clippy mistakes for a
// repeated attribute.
#![allow(
    clippy::duplicated_attributes,
    reason = "several printcolumn attributes are intended"
)]

pub mod address;
pub mod address_space;
pub mod authentication_service;
pub mod common;
pub mod infra_config;
pub mod messaging_user;
pub mod plans;
