//! The EnMasse operator for Kubernetes.
//!
//! It reconciles `AddressSpace`s into broker workloads (StatefulSet, Service, TLS Secret), writes each
//! space's endpoint exports into the tenant namespace, pushes every broker the configuration that
//! `enmasse-types` derives from the space's manifests, reads back what the broker really serves and
//! writes the status that follows from it.
//!
//! Nothing is implemented here yet: the reconcilers arrive with the operator milestone. The rules it
//! will apply already live in `enmasse-types`, so that this crate and the standalone broker reach the
//! same verdict on the same manifests.
