//! What the operator renders for the project's GitOps example (the broker's StatefulSet, Service
//! and NetworkPolicy, a load balancer and both kinds of Route), and the monitoring bundle's
//! PodMonitors and PrometheusRule, checked against schemas nobody here wrote:
//! `tests/interop/check_schemas.mjs` runs kubernetes-models' validators and reads OpenShift's
//! route types. Both come from `cargo xtask test`'s setup; a missing one fails the test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::{path::PathBuf, process::Command};

use enmasse_controller::{
    expose::{self, Exposure},
    names::InfraNames,
    network_policy,
    workload::{self, BrokerSettings},
};
use enmasse_types::resources::address_space::AddressSpace;
use serde_json::{Value, json};
use tests::repo_root;

fn settings() -> BrokerSettings {
    BrokerSettings {
        namespace: "enmasse-infra".into(),
        image: "quay.io/enmasse/broker:1".into(),
        image_pull_policy: "IfNotPresent".into(),
        service_account: "enmasse-broker".into(),
        retain_volumes: false,
    }
}

/// The example's space with its endpoints exposed as `messaging` and `websocket` say.
fn exposed(messaging: Value, websocket: Value) -> AddressSpace {
    let (_, team) = tests::example_team().unwrap();
    let mut space = team.spaces[0].clone();
    space.spec.endpoints[0].expose = Some(serde_json::from_value(messaging).unwrap());
    space.spec.endpoints[1].expose = Some(serde_json::from_value(websocket).unwrap());
    space
}

/// Every object the operator renders for the example, as JSON.
fn rendered() -> Vec<(String, Value)> {
    let (catalog, team) = tests::example_team().unwrap();
    let space = &team.spaces[0];
    let names = InfraNames::new("team1", "app");
    let infra = catalog.infra();
    let broker =
        workload::broker_infra(&infra, &space.spec.plan).expect("the example's plan has an infra config");
    let mut objects = vec![
        (
            "statefulset".to_owned(),
            serde_json::to_value(workload::stateful_set(&names, &settings(), &broker)).unwrap(),
        ),
        (
            "service".to_owned(),
            serde_json::to_value(workload::service(&names, &settings(), true)).unwrap(),
        ),
        (
            "networkpolicy".to_owned(),
            serde_json::to_value(network_policy::network_policy(
                &names,
                "enmasse-infra",
                &network_policy::rules(space, &infra, &space.spec.plan),
            ))
            .unwrap(),
        ),
    ];
    let spaces = [
        exposed(
            json!({"type": "loadbalancer", "loadBalancerSourceRanges": ["10.0.0.0/8"], "annotations": {"a": "b"}}),
            json!({"type": "route", "routeHost": "ws.apps.example.com", "routeTlsTermination": "reencrypt"}),
        ),
        exposed(
            json!({"type": "route", "routeHost": "amqps.apps.example.com"}),
            json!({"type": "loadbalancer", "loadBalancerPorts": ["https"]}),
        ),
    ];
    for (n, space) in spaces.iter().enumerate() {
        for (endpoint, wanted) in expose::exposed(space) {
            let exposure =
                expose::exposure(&names, "enmasse-infra", endpoint, wanted, Some("CA PEM")).unwrap();
            let value = match exposure {
                Exposure::LoadBalancer(service) => serde_json::to_value(*service).unwrap(),
                Exposure::Route(route) => serde_json::to_value(*route).unwrap(),
            };
            objects.push((format!("{}-{n}", endpoint.name), value));
        }
    }
    objects
}

/// The monitoring bundle's objects, as JSON.
fn monitoring() -> Vec<(String, Value)> {
    let dir = repo_root().join("deploy/monitoring");
    let mut objects = Vec::new();
    for file in ["pod-monitors.yaml", "prometheus-rules.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        for (n, document) in text.split("\n---\n").enumerate() {
            let value: Value = serde_saphyr::from_str(document).unwrap();
            objects.push((format!("{file}-{n}"), value));
        }
    }
    objects
}

/// Runs the schema check on `objects`; returns whether it passed and what it said.
fn check(name: &str, objects: &[(String, Value)]) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("enmasse-schemas-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<PathBuf> = objects
        .iter()
        .map(|(file, value)| {
            let path = dir.join(format!("{file}.json"));
            std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
            path
        })
        .collect();
    let output = Command::new("node")
        .arg(repo_root().join("tests/interop/check_schemas.mjs"))
        .args(&files)
        .output()
        .expect("node (run `cargo xtask test`, which installs the schema checks)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    (output.status.success(), said)
}

#[test]
fn what_the_operator_renders_passes_the_kubernetes_and_openshift_schemas() {
    let objects = rendered();
    let kinds: Vec<&str> = objects.iter().filter_map(|(_, o)| o["kind"].as_str()).collect();
    assert!(
        kinds.contains(&"Route") && kinds.contains(&"StatefulSet"),
        "{kinds:?}"
    );
    let (passed, said) = check("rendered", &objects);
    assert!(
        passed && said.starts_with(&format!("ok {}", objects.len())),
        "{said}"
    );
}

#[test]
fn the_monitoring_bundle_passes_the_prometheus_operators_schemas() {
    let objects = monitoring();
    let (passed, said) = check("monitoring", &objects);
    assert!(
        passed && said.starts_with(&format!("ok {}", objects.len())),
        "{said}"
    );
}

#[test]
fn the_check_fails_on_a_wrong_type_a_missing_field_and_a_field_a_route_does_not_have() {
    let mut objects = rendered();
    let (_, service) = objects.iter_mut().find(|(n, _)| n == "service").unwrap();
    service["spec"]["ports"][0]["port"] = json!("5672");
    let (_, route) = objects.iter_mut().find(|(_, o)| o["kind"] == "Route").unwrap();
    route["spec"]["tls"]["terminaton"] = json!("passthrough");
    let mut rules = monitoring();
    let (_, rule) = rules
        .iter_mut()
        .find(|(_, o)| o["kind"] == "PrometheusRule")
        .unwrap();
    rule["spec"]["groups"][0]["rules"][0]
        .as_object_mut()
        .unwrap()
        .remove("expr");
    objects.extend(rules);
    let (passed, said) = check("broken", &objects);
    assert!(!passed, "{said}");
    for expected in [
        "spec/ports/0/port must be integer",
        "spec.tls.terminaton: not a field of TLSConfig",
        "must have required property expr",
    ] {
        assert!(said.contains(expected), "{expected:?} not in:\n{said}");
    }
}
