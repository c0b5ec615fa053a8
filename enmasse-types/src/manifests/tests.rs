//! Tests for reading manifests.
