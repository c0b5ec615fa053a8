//! The status of the operations team's objects, on the project's own GitOps example: which spaces
//! use each plan, infra config and authentication service, what is wrong with one that cannot be
//! used, and which of the fields set in it are not acted on.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use enmasse_types::{
    catalog::{Catalog, TenantResources},
    evaluate::{InfraStatuses, infra_statuses},
    resources::{authentication_service::AuthenticationServiceType, common::Phase},
};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use tests::example_team;

fn now() -> Time {
    Time(Timestamp::from_second(1_700_000_000).unwrap())
}

fn example() -> (Catalog, TenantResources) {
    example_team().unwrap()
}

fn statuses(catalog: &Catalog, team: &TenantResources) -> InfraStatuses {
    infra_statuses(&catalog.infra(), &team.spaces, &team.addresses, &now())
}

#[test]
fn every_object_of_the_example_is_active_and_names_the_spaces_that_use_it() {
    let (catalog, team) = example();
    let statuses = statuses(&catalog, &team);
    let app = vec!["team1/app".to_owned()];

    let plan = &statuses.space_plans["standard-small"];
    assert_eq!(plan.phase, Some(Phase::Active), "{plan:?}");
    assert_eq!(plan.used_by, app);
    assert_eq!(plan.conditions[0].status, "True");
    assert!(statuses.space_plans["standard-medium"].used_by.is_empty());

    assert_eq!(statuses.address_plans["standard-small-queue"].used_by, app);
    assert!(statuses.address_plans["standard-small-topic"].used_by.is_empty());
    assert_eq!(statuses.standard_infra_configs["default-minimal"].used_by, app);
    assert!(statuses.standard_infra_configs["default"].used_by.is_empty());
    let service = &statuses.authentication_services["standard-authservice"];
    assert_eq!((service.phase, &service.used_by), (Some(Phase::Active), &app));
    for status in statuses
        .space_plans
        .values()
        .chain(statuses.address_plans.values())
        .chain(statuses.standard_infra_configs.values())
        .chain(statuses.brokered_infra_configs.values())
    {
        assert_eq!(status.phase, Some(Phase::Active), "{status:?}");
    }
}

#[test]
fn the_fields_an_infra_config_sets_and_nothing_acts_on_are_named() {
    let (catalog, team) = example();
    let statuses = statuses(&catalog, &team);
    // The example sizes the admin and router pods EnMasse ran; this implementation runs neither.
    assert_eq!(
        statuses.standard_infra_configs["default"].unsupported_fields,
        [
            "admin",
            "router.linkCapacity",
            "router.minReplicas",
            "router.resources"
        ]
    );
    // Plans set only what is acted on, and what describes them to people.
    assert!(
        statuses
            .space_plans
            .values()
            .chain(statuses.address_plans.values())
            .all(|s| s.unsupported_fields.is_empty())
    );
}

#[test]
fn the_brokers_pod_template_is_acted_on_and_the_routers_is_named() {
    let (mut catalog, team) = example();
    let mut config = catalog.standard_infra_configs[0].clone();
    let template: enmasse_types::resources::common::PodTemplate = serde_json::from_value(serde_json::json!({
        "metadata": {"labels": {"team": "a"}},
        "spec": {"priorityClassName": "high"}
    }))
    .unwrap();
    config.spec.broker.as_mut().unwrap().pod_template = Some(template.clone());
    config.spec.router.as_mut().unwrap().pod_template = Some(template);
    config.metadata.name = Some("templated".into());
    catalog.standard_infra_configs.push(config);
    let unsupported = &statuses(&catalog, &team).standard_infra_configs["templated"].unsupported_fields;
    assert!(
        unsupported.contains(&"router.podTemplate".to_owned()),
        "{unsupported:?}"
    );
    assert!(
        !unsupported.iter().any(|f| f.starts_with("broker.")),
        "{unsupported:?}"
    );
}

#[test]
fn what_cannot_be_used_is_failed_with_what_to_fix() {
    let (mut catalog, team) = example();
    let plan = catalog
        .space_plans
        .iter_mut()
        .find(|p| p.metadata.name.as_deref() == Some("standard-medium"))
        .unwrap();
    plan.spec.infra_config_ref = "nowhere".into();
    plan.spec.address_plans.push("no-such-plan".into());
    catalog.standard_infra_configs[0]
        .spec
        .broker
        .as_mut()
        .unwrap()
        .global_max_size = Some("lots".into());
    catalog.authentication_services[0].spec.type_ = AuthenticationServiceType::External;
    let statuses = statuses(&catalog, &team);

    let plan = &statuses.space_plans["standard-medium"];
    assert_eq!(plan.phase, Some(Phase::Failed));
    let message = plan.message.as_deref().unwrap();
    assert!(message.contains("infraConfigRef nowhere"), "{message}");
    assert!(message.contains("no-such-plan"), "{message}");
    assert_eq!(plan.conditions[0].status, "False");

    let config = statuses
        .standard_infra_configs
        .values()
        .find(|s| s.phase == Some(Phase::Failed))
        .unwrap();
    assert!(
        config.message.as_deref().unwrap().contains("globalMaxSize"),
        "{config:?}"
    );

    let service = statuses
        .authentication_services
        .values()
        .find(|s| s.phase == Some(Phase::Failed))
        .unwrap();
    assert!(
        service.message.as_deref().unwrap().contains("external"),
        "{service:?}"
    );
}

#[test]
fn a_space_names_the_endpoints_nothing_serves_and_a_second_certificate_and_exports_only_what_is_served() {
    let (catalog, mut team) = example();
    let space = &mut team.spaces[0];
    space.spec.endpoints[0].expose = Some(
        serde_json::from_value(serde_json::json!({"type": "loadbalancer", "loadBalancerPorts": ["amqps"]}))
            .unwrap(),
    );
    space.spec.endpoints.push(
        serde_json::from_value(serde_json::json!({
            "name": "mqtt",
            "service": "mqtt",
            "exports": [{"kind": "ConfigMap", "name": "mqtt-config"}]
        }))
        .unwrap(),
    );
    // The broker serves one certificate, the messaging endpoint's, on the WebSocket port too.
    space.spec.endpoints[1].cert =
        Some(serde_json::from_value(serde_json::json!({"provider": "selfsigned"})).unwrap());
    let evaluation =
        enmasse_types::evaluate::evaluate(&team.as_tenant(), &catalog.infra(), &Default::default(), &now());
    assert_eq!(
        evaluation.spaces["app"].status.unsupported_fields,
        [
            "endpoints[websocket].cert (the broker serves endpoints[messaging]'s certificate on every port)",
            "endpoints[mqtt] (service mqtt)"
        ],
        "expose is the operator's to act on (the standalone broker names it itself)"
    );

    let endpoint = enmasse_types::exports::Endpoint {
        host: "broker.example".into(),
        ports: [("amqps".to_owned(), 5671), ("https".to_owned(), 443)]
            .into_iter()
            .collect(),
        ca_pem: None,
        external: Default::default(),
    };
    let exported: Vec<String> = enmasse_types::exports::exports(&team.spaces[0], &endpoint)
        .iter()
        .map(|e| e.name().to_owned())
        .collect();
    assert_eq!(
        exported,
        ["messaging-config", "websocket-config"],
        "no details for an endpoint nothing serves"
    );
}
