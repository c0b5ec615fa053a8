//! The project's own examples: every manifest under `examples/` reads cleanly and the rules accept
//! the team's address space, addresses and users.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::collections::BTreeMap;

use enmasse_types::{
    broker_config::{AddressReport, BrokerReport},
    evaluate::evaluate,
    resources::common::Phase,
};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use tests::{catalog, read_documents, repo_root};

fn now() -> Time {
    Time(Timestamp::from_second(1_700_000_000).unwrap())
}

#[test]
fn every_document_under_examples_reads_without_error() {
    let root = repo_root().join("examples");
    let documents = read_documents(&[&root]).unwrap();
    assert!(documents.len() >= 20, "only {} documents found", documents.len());
    for (file, document) in documents {
        if let Err(err) = document {
            panic!("{}: {}", file.display(), enmasse_types::error::one_line(&err));
        }
    }
}

#[test]
fn the_team_space_is_admitted_and_waits_for_its_broker() {
    let catalog = catalog(&[&repo_root().join("examples")]).unwrap();
    let tenants = catalog.tenants("default");
    let team1 = tenants
        .iter()
        .find(|t| t.namespace == "team1")
        .expect("team1 namespace");
    let evaluation = evaluate(&team1.as_tenant(), &catalog.infra(), &BTreeMap::new(), &now());

    let space = &evaluation.spaces["app"];
    assert_eq!(
        space.status.phase,
        Some(Phase::Configuring),
        "{:?}",
        space.status.messages
    );
    assert!(!space.status.is_ready, "nothing is ready before a broker says so");
    assert_eq!(space.status.messages, ["waiting for the broker to report"]);
    let config = space.config.as_ref().expect("a broker config");
    let addresses: Vec<&str> = config.addresses.iter().map(|a| a.address.as_str()).collect();
    assert_eq!(addresses, ["confirmations", "orders"]);
    let users: Vec<&str> = config.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(users, ["system:serviceaccount:team1:default", "developer"]);

    for (name, status) in &evaluation.addresses {
        assert_eq!(
            status.phase,
            Some(Phase::Configuring),
            "{name}: {:?}",
            status.messages
        );
        assert_eq!(status.plan_status.as_ref().unwrap().name, "standard-small-queue");
    }
    for (name, status) in &evaluation.users {
        assert_eq!(
            status.phase,
            Some(Phase::Configuring),
            "{name}: {:?}",
            status.message
        );
    }
}

#[test]
fn the_team_space_is_ready_once_its_broker_serves_the_config() {
    let catalog = catalog(&[&repo_root().join("examples")]).unwrap();
    let team1 = catalog
        .tenants("default")
        .into_iter()
        .find(|t| t.namespace == "team1")
        .unwrap();
    let first = evaluate(&team1.as_tenant(), &catalog.infra(), &BTreeMap::new(), &now());
    let config = first.spaces["app"].config.clone().unwrap();

    let report = BrokerReport {
        revision: config.revision(),
        addresses: config
            .addresses
            .iter()
            .map(|a| AddressReport::serving(a.address.clone(), 0))
            .collect(),
        problems: vec![],
    };
    let reports = BTreeMap::from([("app".to_owned(), report)]);
    let evaluation = evaluate(&team1.as_tenant(), &catalog.infra(), &reports, &now());
    let space = &evaluation.spaces["app"].status;
    assert!(space.is_ready);
    assert_eq!(space.phase, Some(Phase::Active));
    assert_eq!(space.applied_plan.as_deref(), Some("standard-small"));
    assert!(
        evaluation
            .addresses
            .values()
            .all(|s| s.is_ready && s.phase == Some(Phase::Active))
    );
    assert!(evaluation.users.values().all(|s| s.phase == Some(Phase::Active)));
    let ready = space.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True");
}
