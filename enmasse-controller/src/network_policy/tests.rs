//! Who the broker's NetworkPolicy admits, and from which rules.

use enmasse_types::{catalog::Catalog, manifests};
use k8s_openapi::api::networking::v1::{IPBlock, NetworkPolicyPeer};

use super::*;

fn names() -> InfraNames {
    InfraNames::new("team1", "app")
}

fn ports(rule: &NetworkPolicyIngressRule) -> Vec<i32> {
    rule.ports
        .iter()
        .flatten()
        .filter_map(|p| match p.port {
            Some(IntOrString::Int(port)) => Some(port),
            _ => None,
        })
        .collect()
}

fn from_block(cidr: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_owned(),
            except: None,
        }),
        ..NetworkPolicyPeer::default()
    }
}

#[test]
fn only_the_operator_reaches_the_management_port_and_anyone_the_messaging_ports() {
    let policy = network_policy(&names(), "enmasse-infra", &Rules::default());
    let spec = policy.spec.unwrap();
    assert_eq!(spec.pod_selector.unwrap().match_labels, Some(names().selector()));
    assert_eq!(spec.policy_types, Some(vec!["Ingress".to_owned()]));
    let ingress = spec.ingress.unwrap();
    assert_eq!(ingress.len(), 3);
    let operator = &ingress[0];
    assert_eq!(ports(operator), [i32::from(MANAGEMENT_PORT)]);
    let labels = operator.from.as_ref().unwrap()[0]
        .pod_selector
        .as_ref()
        .unwrap()
        .match_labels
        .clone()
        .unwrap();
    assert_eq!(
        labels.get(OPERATOR_POD_LABEL.0).map(String::as_str),
        Some(OPERATOR_POD_LABEL.1)
    );
    assert_eq!(
        ports(&ingress[1]),
        [i32::from(AMQP_PORT), i32::from(AMQPS_PORT), i32::from(WSS_PORT)]
    );
    assert!(ingress[1].from.is_none(), "from anywhere");
    let scrapers = &ingress[2];
    assert_eq!(ports(scrapers), [i32::from(MANAGEMENT_PORT)]);
    let namespaces = scrapers.from.as_ref().unwrap()[0]
        .namespace_selector
        .as_ref()
        .unwrap();
    assert_eq!(
        namespaces.match_labels.as_ref().unwrap()["enmasse.io/scrape-metrics"],
        "true",
        "the namespaces labelled for scraping reach the metrics"
    );
    assert!(
        ingress
            .iter()
            .all(|rule| rule.from.is_some() || !ports(rule).contains(&i32::from(MANAGEMENT_PORT))),
        "nobody else reaches the management port"
    );
}

#[test]
fn the_spaces_rules_admit_their_peers_to_the_messaging_ports_only() {
    let rules = Rules {
        ingress: vec![NetworkPolicyIngressRule {
            from: Some(vec![from_block("10.0.0.0/8")]),
            ports: Some(vec![NetworkPolicyPort {
                port: Some(IntOrString::Int(i32::from(MANAGEMENT_PORT))),
                ..NetworkPolicyPort::default()
            }]),
        }],
        egress: vec![NetworkPolicyEgressRule::default()],
    };
    let spec = network_policy(&names(), "enmasse-infra", &rules).spec.unwrap();
    let ingress = spec.ingress.unwrap();
    assert_eq!(ingress.len(), 3);
    assert_eq!(ingress[1].from, Some(vec![from_block("10.0.0.0/8")]));
    assert_eq!(
        ports(&ingress[1]),
        [i32::from(AMQP_PORT), i32::from(AMQPS_PORT), i32::from(WSS_PORT)],
        "the management port a rule names is not opened"
    );
    assert_eq!(
        spec.policy_types,
        Some(vec!["Ingress".to_owned(), "Egress".to_owned()])
    );
    assert_eq!(spec.egress.unwrap().len(), 1);
}

#[test]
fn a_spaces_own_network_policy_replaces_its_infra_configs() {
    let mut catalog = Catalog::default();
    let infra = [
        include_str!("../../../examples/gitops/infra/standard-plans.yaml"),
        "apiVersion: admin.enmasse.io/v1beta1
kind: StandardInfraConfig
metadata: {name: default-minimal}
spec:
  networkPolicy:
    ingress:
    - from: [{ipBlock: {cidr: 192.168.0.0/16}}]
",
    ];
    for text in infra {
        for document in manifests::parse(text) {
            catalog.add(document.unwrap().manifest);
        }
    }
    let space_yaml = |policy: &str| {
        format!(
            "apiVersion: enmasse.io/v1beta1\nkind: AddressSpace\nmetadata: {{name: app, namespace: team1}}\nspec:\n  type: standard\n  plan: standard-small\n{policy}"
        )
    };
    let space = |policy: &str| {
        let mut document = manifests::parse(&space_yaml(policy));
        match document.remove(0).unwrap().manifest {
            manifests::Manifest::AddressSpace(space) => *space,
            _ => unreachable!(),
        }
    };
    let from_infra = rules(&space(""), &catalog.infra(), "standard-small");
    assert_eq!(
        from_infra.ingress[0].from,
        Some(vec![from_block("192.168.0.0/16")])
    );
    let own = rules(
        &space("  networkPolicy:\n    ingress:\n    - from: [{ipBlock: {cidr: 10.1.0.0/16}}]\n"),
        &catalog.infra(),
        "standard-small",
    );
    assert_eq!(own.ingress[0].from, Some(vec![from_block("10.1.0.0/16")]));
}
