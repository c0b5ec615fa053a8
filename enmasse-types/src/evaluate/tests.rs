//! Tests of the namespace verdict.
