//! End-to-end scenarios across the EnMasse crates.
//!
//! The scenarios live under `tests/`: each file drives the public API of several crates the way a
//! user would, over the project's own example manifests.
