//! The NetworkPolicy of a space's broker: the operator alone reaches the management port, and
//! clients reach the messaging ports, from where the space's `networkPolicy` says (anywhere
//! without one). The space's `networkPolicy` replaces its infra config's, as in EnMasse; its
//! egress rules, if any, bound what the broker may reach.

use enmasse_types::{evaluate::Infra, resources::address_space::AddressSpace};
use k8s_openapi::{
    api::networking::v1::{
        NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
        NetworkPolicyPort, NetworkPolicySpec,
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};

use crate::{
    names::InfraNames,
    workload::{AMQP_PORT, AMQPS_PORT, MANAGEMENT_PORT, WSS_PORT},
};

/// The label of the operator's pods (as its Deployment sets it), which alone may reach the
/// management port.
pub const OPERATOR_POD_LABEL: (&str, &str) = ("app.kubernetes.io/name", "enmasse-operator");

/// The label of the namespaces whose pods may scrape the brokers' metrics (Prometheus's): they
/// reach the management port, where `/metrics` needs no token and the rest does.
pub const SCRAPER_NAMESPACE_LABEL: (&str, &str) = ("enmasse.io/scrape-metrics", "true");

/// The ingress and egress rules a space asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rules {
    /// Who may reach the messaging ports; anyone when empty.
    pub ingress: Vec<NetworkPolicyIngressRule>,
    /// Where the broker may connect; anywhere when empty.
    pub egress: Vec<NetworkPolicyEgressRule>,
}

/// The rules of `space`: its own `networkPolicy`, or else its plan's infra config's.
pub fn rules(space: &AddressSpace, infra: &Infra<'_>, plan: &str) -> Rules {
    if let Some(own) = &space.spec.network_policy {
        return Rules {
            ingress: own.ingress.clone(),
            egress: own.egress.clone(),
        };
    }
    let Some(config) = infra
        .space_plans
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(plan))
        .map(|p| p.spec.infra_config_ref.as_str())
    else {
        return Rules::default();
    };
    let named = |metadata: &ObjectMeta| metadata.name.as_deref() == Some(config);
    let policy = infra
        .standard_infra_configs
        .iter()
        .find(|c| named(&c.metadata))
        .and_then(|c| c.spec.network_policy.clone())
        .or_else(|| {
            infra
                .brokered_infra_configs
                .iter()
                .find(|c| named(&c.metadata))
                .and_then(|c| c.spec.network_policy.clone())
        });
    policy.map_or_else(Rules::default, |p| Rules {
        ingress: p.ingress,
        egress: p.egress,
    })
}

/// A selector of what carries the label `(key, value)`.
fn selecting((key, value): (&str, &str)) -> LabelSelector {
    LabelSelector {
        match_labels: Some([(key.to_owned(), value.to_owned())].into()),
        ..LabelSelector::default()
    }
}

/// The NetworkPolicy of the broker of `names`, in `namespace`, from `rules`.
pub fn network_policy(names: &InfraNames, namespace: &str, rules: &Rules) -> NetworkPolicy {
    let port = |port: u16| NetworkPolicyPort {
        port: Some(IntOrString::Int(i32::from(port))),
        protocol: Some("TCP".to_owned()),
        ..NetworkPolicyPort::default()
    };
    let messaging = || vec![port(AMQP_PORT), port(AMQPS_PORT), port(WSS_PORT)];
    let operator = NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            pod_selector: Some(selecting(OPERATOR_POD_LABEL)),
            ..NetworkPolicyPeer::default()
        }]),
        ports: Some(vec![port(MANAGEMENT_PORT)]),
    };
    let clients: Vec<NetworkPolicyIngressRule> = match rules.ingress.is_empty() {
        true => vec![NetworkPolicyIngressRule {
            from: None,
            ports: Some(messaging()),
        }],
        // Each rule admits its peers to the messaging ports only, whatever ports it names.
        false => rules
            .ingress
            .iter()
            .map(|rule| NetworkPolicyIngressRule {
                from: rule.from.clone(),
                ports: Some(messaging()),
            })
            .collect(),
    };
    let scrapers = NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(selecting(SCRAPER_NAMESPACE_LABEL)),
            ..NetworkPolicyPeer::default()
        }]),
        ports: Some(vec![port(MANAGEMENT_PORT)]),
    };
    let mut policy_types = vec!["Ingress".to_owned()];
    if !rules.egress.is_empty() {
        policy_types.push("Egress".to_owned());
    }
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(names.network_policy()),
            namespace: Some(namespace.to_owned()),
            labels: Some(names.labels()),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(names.selector()),
                ..LabelSelector::default()
            }),
            ingress: Some(
                std::iter::once(operator)
                    .chain(clients)
                    .chain(std::iter::once(scrapers))
                    .collect(),
            ),
            egress: (!rules.egress.is_empty()).then(|| rules.egress.clone()),
            policy_types: Some(policy_types),
        }),
    }
}

#[cfg(test)]
mod tests;
