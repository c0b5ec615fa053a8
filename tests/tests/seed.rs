//! The post "Gitops and EnMasse": its manifests are accepted unchanged, keep their values through
//! the types, and its slips are reported clearly instead of stopping anything.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::collections::BTreeMap;

use enmasse_types::{
    evaluate::{Tenant, evaluate},
    manifests::{self, Manifest},
    resources::common::Phase,
};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use serde_json::Value;
use tests::{catalog, repo_root};

fn seed_text() -> String {
    std::fs::read_to_string(repo_root().join("tests/fixtures/seed-team1.yaml")).unwrap()
}

/// The seed's documents as plain YAML values, one per document.
fn seed_values() -> Vec<Value> {
    seed_text()
        .split("\n---\n")
        .map(|doc| serde_saphyr::from_str::<Value>(doc).unwrap())
        .collect()
}

#[test]
fn every_seed_document_is_read_and_unrelated_kinds_are_passed_over() {
    let documents: Vec<Manifest> = manifests::parse(&seed_text())
        .into_iter()
        .map(|d| d.unwrap().manifest)
        .collect();
    let kinds: Vec<&str> = documents.iter().map(Manifest::kind).collect();
    assert_eq!(
        kinds,
        [
            "AddressSpace",
            "Address",
            "MessagingUser",
            "Role",
            "RoleBinding",
            "Deployment"
        ]
    );
    assert!(matches!(documents[3], Manifest::Other { .. }));
}

#[test]
fn the_seed_resources_serialize_back_with_the_same_values() {
    let documents = manifests::parse(&seed_text());
    let values = seed_values();
    for (document, original) in documents.into_iter().zip(values).take(3) {
        let back = match document.unwrap().manifest {
            Manifest::AddressSpace(r) => serde_json::to_value(&r).unwrap(),
            Manifest::Address(r) => serde_json::to_value(&r).unwrap(),
            Manifest::MessagingUser(r) => serde_json::to_value(&r).unwrap(),
            other => panic!("unexpected {}", other.kind()),
        };
        assert_eq!(back, original);
    }
}

#[test]
fn the_misnamed_seed_user_is_reported_against_its_missing_space() {
    let catalog = catalog(&[&repo_root().join("examples/gitops/infra")]).unwrap();
    let mut seed = enmasse_types::catalog::Catalog::default();
    for document in manifests::parse(&seed_text()) {
        seed.add(document.unwrap().manifest);
    }
    let tenant = Tenant {
        namespace: "team1",
        spaces: &seed.spaces,
        addresses: &seed.addresses,
        users: &seed.users,
    };
    let now = Time(Timestamp::from_second(1_700_000_000).unwrap());
    let evaluation = evaluate(&tenant, &catalog.infra(), &BTreeMap::new(), &now);

    let user = &evaluation.users["myspace.app"];
    assert_eq!(user.phase, Some(Phase::Pending));
    assert_eq!(user.message.as_deref(), Some("address space myspace not found"));
    // The rest of the seed is served regardless.
    assert_eq!(evaluation.addresses["app.orders"].phase, Some(Phase::Configuring));
    assert!(evaluation.spaces["app"].config.is_some());
}
