//! The EnMasse kinds, with EnMasse's API groups, versions and field names, so that EnMasse
//! manifests apply unchanged.

pub mod address;
pub mod address_space;
pub mod authentication_service;
pub mod common;
pub mod infra_config;
pub mod messaging_user;
pub mod plans;
