//! Exposing endpoints: what is made for each `expose`, and where clients outside then connect.

use enmasse_types::resources::address_space::AddressSpace;
use serde_json::json;

use super::*;

fn space(expose: serde_json::Value) -> AddressSpace {
    serde_json::from_value(json!({
        "metadata": {"name": "app", "namespace": "team1"},
        "spec": {"type": "standard", "plan": "standard-small", "endpoints": [
            {"name": "messaging", "service": "messaging", "expose": expose},
            {"name": "mqtt", "service": "mqtt", "expose": {"type": "loadbalancer"}}
        ]}
    }))
    .unwrap()
}

fn render(space: &AddressSpace, ca: Option<&str>) -> Result<Exposure, String> {
    let names = InfraNames::new("team1", "app");
    let (endpoint, expose) = exposed(space).next().expect("the messaging endpoint is exposed");
    exposure(&names, "enmasse-infra", endpoint, expose, ca)
}

#[test]
fn a_load_balancer_exposes_the_ports_named_to_the_ranges_given_with_the_annotations() {
    let space = space(json!({
        "type": "loadbalancer",
        "loadBalancerPorts": ["amqps"],
        "loadBalancerSourceRanges": ["10.0.0.0/8"],
        "annotations": {"service.beta.kubernetes.io/aws-load-balancer-internal": "true"}
    }));
    assert_eq!(
        exposed(&space).count(),
        1,
        "an endpoint nothing serves is not exposed"
    );
    let Ok(Exposure::LoadBalancer(service)) = render(&space, None) else {
        panic!("a load balancer");
    };
    let names = InfraNames::new("team1", "app");
    assert_eq!(
        service.metadata.name,
        Some(format!("{}-messaging", names.broker()))
    );
    assert_eq!(
        service.metadata.annotations.as_ref().unwrap()["service.beta.kubernetes.io/aws-load-balancer-internal"],
        "true"
    );
    let spec = service.spec.as_ref().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(spec.selector.as_ref(), Some(&names.selector()));
    let ports: Vec<(Option<&str>, i32)> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.as_deref(), p.port))
        .collect();
    assert_eq!(ports, [(Some("amqps"), 5671)]);
    assert_eq!(
        spec.load_balancer_source_ranges,
        Some(vec!["10.0.0.0/8".to_owned()])
    );
}

#[test]
fn a_load_balancer_without_ports_named_exposes_amqp_and_amqps_and_refuses_others() {
    let Ok(Exposure::LoadBalancer(service)) = render(&space(json!({"type": "loadbalancer"})), None) else {
        panic!("a load balancer");
    };
    assert_eq!(service.spec.unwrap().ports.unwrap().len(), 2);
    let refused = render(
        &space(json!({"type": "loadbalancer", "loadBalancerPorts": ["https"]})),
        None,
    );
    assert!(
        refused
            .unwrap_err()
            .contains("\"https\"; service messaging serves amqp and amqps")
    );
    let Ok(Exposure::LoadBalancer(once)) = render(
        &space(json!({"type": "loadbalancer", "loadBalancerPorts": ["amqps", "amqps"]})),
        None,
    ) else {
        panic!("a load balancer");
    };
    assert_eq!(
        once.spec.unwrap().ports.unwrap().len(),
        1,
        "a port named twice is exposed once"
    );
}

#[test]
fn the_external_host_of_a_load_balancer_is_what_the_cloud_gave_it() {
    let Ok(Exposure::LoadBalancer(mut service)) = render(&space(json!({"type": "loadbalancer"})), None)
    else {
        panic!("a load balancer");
    };
    let pending = external(&Exposure::LoadBalancer(service.clone()));
    assert_eq!(pending.host, None, "no host until the load balancer has one");
    service.status =
        Some(serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}})).unwrap());
    let ready = external(&Exposure::LoadBalancer(service));
    assert_eq!(ready.host.as_deref(), Some("203.0.113.7"));
    assert_eq!(ready.ports.get("amqps"), Some(&5671));
}

#[test]
fn a_passthrough_route_sends_tls_to_amqps_and_the_certificate_names_its_host() {
    let space = space(json!({"type": "route", "routeHost": "messaging.apps.example.com"}));
    let Ok(Exposure::Route(route)) = render(&space, None) else {
        panic!("a route");
    };
    assert_eq!(route.api_version, "route.openshift.io/v1");
    assert_eq!(route.spec.host.as_deref(), Some("messaging.apps.example.com"));
    assert_eq!(route.spec.to.name, InfraNames::new("team1", "app").broker());
    assert_eq!(route.spec.port.as_ref().unwrap().target_port, "amqps");
    assert_eq!(route.spec.tls.as_ref().unwrap().termination, "passthrough");
    assert_eq!(certificate_hosts(&space), ["messaging.apps.example.com"]);
    let reached = external(&Exposure::Route(route));
    assert_eq!(reached.host.as_deref(), Some("messaging.apps.example.com"));
    assert_eq!(reached.ports.get("amqps"), Some(&443));
}

#[test]
fn a_reencrypting_route_trusts_the_spaces_ca_when_it_has_one() {
    let space = space(json!({"type": "route", "routeTlsTermination": "reencrypt"}));
    let Ok(Exposure::Route(by_default)) = render(&space, None) else {
        panic!("a route");
    };
    assert_eq!(
        by_default.spec.tls.unwrap().destination_ca_certificate,
        None,
        "the router's own trust (OpenShift's service CA)"
    );
    let Ok(Exposure::Route(mut route)) = render(&space, Some("CA PEM")) else {
        panic!("a route");
    };
    let tls = route.spec.tls.clone().unwrap();
    assert_eq!(
        (
            tls.termination.as_str(),
            tls.destination_ca_certificate.as_deref()
        ),
        ("reencrypt", Some("CA PEM"))
    );
    assert!(
        certificate_hosts(&space).is_empty(),
        "the router, not the client, checks the broker"
    );
    // A generated host is read back from the router's admission.
    route.status =
        Some(serde_json::from_value(json!({"ingress": [{"host": "app-team1.apps.example.com"}]})).unwrap());
    assert_eq!(
        external(&Exposure::Route(route)).host.as_deref(),
        Some("app-team1.apps.example.com")
    );
}

#[test]
fn an_endpoint_whose_name_cannot_name_an_object_is_refused() {
    let mut space = space(json!({"type": "loadbalancer"}));
    space.spec.endpoints[0].name = "Messaging_Outside".into();
    assert!(
        render(&space, None)
            .unwrap_err()
            .contains("not a valid object name")
    );
}

#[test]
fn a_route_to_the_plain_port_is_refused() {
    let refused = render(&space(json!({"type": "route", "routeServicePort": "amqp"})), None);
    assert!(refused.unwrap_err().contains("amqps"));
}

#[test]
fn a_websocket_endpoint_is_exposed_on_https_by_a_load_balancer_or_a_reencrypting_route() {
    let names = InfraNames::new("team1", "app");
    let websocket = |expose: serde_json::Value| -> AddressSpace {
        serde_json::from_value(json!({
            "metadata": {"name": "app", "namespace": "team1"},
            "spec": {"type": "standard", "plan": "standard-small", "endpoints": [
                {"name": "websocket", "service": "messaging-wss", "expose": expose}
            ]}
        }))
        .unwrap()
    };
    let render = |space: &AddressSpace| {
        let (endpoint, expose) = exposed(space).next().expect("the websocket endpoint is exposed");
        exposure(&names, "enmasse-infra", endpoint, expose, Some("CA"))
    };
    let Ok(Exposure::LoadBalancer(service)) = render(&websocket(json!({"type": "loadbalancer"}))) else {
        panic!("a load balancer");
    };
    let ports: Vec<(Option<String>, i32)> = service
        .spec
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name, p.port))
        .collect();
    assert_eq!(ports, [(Some("https".to_owned()), 443)]);
    let Ok(Exposure::Route(route)) = render(&websocket(
        json!({"type": "route", "routeTlsTermination": "reencrypt"}),
    )) else {
        panic!("a route");
    };
    assert_eq!(route.spec.port.as_ref().unwrap().target_port, "https");
    assert_eq!(route.spec.tls.as_ref().unwrap().termination, "reencrypt");
    let refused = render(&websocket(json!({"type": "route", "routeServicePort": "amqps"})));
    assert!(
        refused
            .unwrap_err()
            .contains("service messaging-wss serves on https")
    );
}
