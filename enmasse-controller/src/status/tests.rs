//! Every way the infrastructure holds a space back from `Active`, and what the status then says.

use enmasse_types::resources::address_space::{AddressSpaceSpec, AddressSpaceType, EndpointSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

fn at(seconds: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
}

fn space(previous: Option<Phase>) -> AddressSpace {
    AddressSpace {
        metadata: ObjectMeta {
            name: Some("app".into()),
            namespace: Some("team1".into()),
            generation: Some(3),
            ..ObjectMeta::default()
        },
        spec: AddressSpaceSpec {
            type_: AddressSpaceType::Standard,
            plan: "standard-small".into(),
            authentication_service: None,
            endpoints: vec![EndpointSpec {
                name: "messaging".into(),
                service: "messaging".into(),
                expose: None,
                cert: None,
                exports: vec![],
            }],
            network_policy: None,
        },
        status: previous.map(|phase| AddressSpaceStatus {
            phase: Some(phase),
            ..AddressSpaceStatus::default()
        }),
    }
}

fn verdict(phase: Phase) -> AddressSpaceStatus {
    AddressSpaceStatus {
        is_ready: phase == Phase::Active,
        phase: Some(phase),
        applied_plan: Some("standard-small".into()),
        ..AddressSpaceStatus::default()
    }
}

fn healthy() -> Observed {
    Observed {
        broker_ready: true,
        problems: vec![],
        ca_pem: Some("CA".into()),
        external: Default::default(),
    }
}

fn status(space: &AddressSpace, verdict: AddressSpaceStatus, observed: &Observed) -> AddressSpaceStatus {
    let names = InfraNames::new("team1", "app");
    space_status(space, verdict, observed, &names, "enmasse-infra", &at(100))
}

#[test]
fn a_space_whose_broker_serves_the_latest_config_and_whose_infra_is_whole_is_active() {
    let status = status(&space(None), verdict(Phase::Active), &healthy());
    assert!(status.is_ready);
    assert_eq!(status.phase, Some(Phase::Active));
    assert_eq!(status.ca_cert.as_deref(), Some("CA"));
    let endpoint = &status.endpoint_statuses[0];
    assert!(
        endpoint
            .service_host
            .as_deref()
            .unwrap()
            .ends_with(".enmasse-infra.svc")
    );
    assert_eq!(
        endpoint.service_ports.iter().map(|p| p.port).collect::<Vec<_>>(),
        [5672, 5671]
    );
    let ready = &status.conditions[0];
    assert_eq!(
        (ready.status.as_str(), ready.observed_generation),
        ("True", Some(3))
    );
    assert_eq!(status.applied_plan.as_deref(), Some("standard-small"));
}

#[test]
fn a_broker_that_is_not_ready_keeps_a_new_space_configuring_and_fails_a_serving_one() {
    let down = Observed {
        broker_ready: false,
        ..healthy()
    };
    let starting = status(&space(Some(Phase::Configuring)), verdict(Phase::Active), &down);
    assert_eq!(starting.phase, Some(Phase::Configuring));
    assert!(!starting.is_ready);
    assert!(starting.messages[0].starts_with("The following StatefulSets are not ready: [broker-app-"));

    let lost = status(&space(Some(Phase::Active)), verdict(Phase::Active), &down);
    assert_eq!(lost.phase, Some(Phase::Failed));
    assert_eq!(lost.conditions[0].status, "False");
    assert_eq!(lost.conditions[0].reason, "Failed");
}

#[test]
fn a_serving_space_whose_broker_cannot_be_reached_fails_but_one_being_updated_configures() {
    let unreachable = Observed {
        problems: vec!["failed to reach the broker broker-app-0 at 10.1.2.3:8080".into()],
        ..healthy()
    };
    let lost = status(
        &space(Some(Phase::Active)),
        verdict(Phase::Configuring),
        &unreachable,
    );
    assert_eq!(lost.phase, Some(Phase::Failed));

    let updating = status(
        &space(Some(Phase::Active)),
        verdict(Phase::Configuring),
        &healthy(),
    );
    assert_eq!(updating.phase, Some(Phase::Configuring));
}

#[test]
fn a_problem_with_the_certificate_or_an_export_holds_the_space_back_and_is_named() {
    let observed = Observed {
        problems: vec!["failed to write export messaging-config in namespace team1: forbidden".into()],
        ..healthy()
    };
    let status = status(&space(None), verdict(Phase::Active), &observed);
    assert_eq!(status.phase, Some(Phase::Configuring));
    assert!(
        status
            .messages
            .iter()
            .any(|m| m.contains("export messaging-config"))
    );
    assert!(status.conditions[0].message.contains("forbidden"));
}

#[test]
fn what_the_manifests_say_stands_when_the_infrastructure_is_fine() {
    let mut pending = verdict(Phase::Pending);
    pending.messages = vec!["address space plan large not found".into()];
    let status = status(&space(None), pending, &healthy());
    assert_eq!(status.phase, Some(Phase::Pending));
    assert_eq!(status.messages, ["address space plan large not found"]);
}

#[test]
fn each_endpoint_reports_the_ports_of_its_service_and_one_nothing_serves_reports_none() {
    let mut space = space(None);
    for service in ["messaging-wss", "mqtt", "console"] {
        space.spec.endpoints.push(EndpointSpec {
            name: service.into(),
            service: service.into(),
            expose: None,
            cert: None,
            exports: vec![],
        });
    }
    let status = status(&space, verdict(Phase::Active), &healthy());
    let reported: Vec<(&str, Vec<(&str, u16)>)> = status
        .endpoint_statuses
        .iter()
        .map(|e| {
            let ports = e
                .service_ports
                .iter()
                .map(|p| (p.name.as_str(), p.port))
                .collect();
            (e.name.as_str(), ports)
        })
        .collect();
    assert_eq!(
        reported,
        [
            ("messaging", vec![("amqp", 5672), ("amqps", 5671)]),
            ("messaging-wss", vec![("https", 443)]),
        ]
    );
}
