//! What the operator names and labels the infrastructure of one address space.
//!
//! A space's infrastructure lives in the operator's namespace. Its names derive from the space's
//! namespace and name alone, so that the same space always maps to the same objects: an operator
//! restart, or a space deleted and committed again, finds and adopts what is there instead of
//! creating a second broker next to the first.

use std::collections::BTreeMap;

/// The label that ties an object to a space's infrastructure.
pub const INFRA_LABEL: &str = "enmasse.io/infra";
/// The label naming the space's namespace.
pub const SPACE_NAMESPACE_LABEL: &str = "enmasse.io/address-space-namespace";
/// The label naming the space.
pub const SPACE_LABEL: &str = "enmasse.io/address-space";
/// Who manages the objects, as Kubernetes' recommended labels say.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "enmasse-operator");
/// The label of what exposes an endpoint outside the cluster (a load balancer Service, a Route),
/// by which the operator finds those the space no longer asks for.
pub const EXPOSURE_LABEL: &str = "enmasse.io/exposure";

/// Longest prefix of a space name kept in object names: a StatefulSet's pods add `-0`, and its
/// controller-revision label a hash, within the 63 characters of a label value.
const NAME_PART: usize = 30;

/// The names of one address space's infrastructure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfraNames {
    /// The space's namespace.
    pub space_namespace: String,
    /// The space's name.
    pub space: String,
    /// `<space>-<hash>`: unique per namespace and space, a valid DNS label.
    pub id: String,
}

impl InfraNames {
    /// The names of the infrastructure of space `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Self {
        let part: String = name.chars().take(NAME_PART).collect();
        let part = part.trim_end_matches('-');
        Self {
            space_namespace: namespace.to_owned(),
            space: name.to_owned(),
            id: format!("{part}-{:08x}", fnv1a(&format!("{namespace}/{name}")) as u32),
        }
    }

    /// The broker's StatefulSet and Service.
    pub fn broker(&self) -> String {
        format!("broker-{}", self.id)
    }

    /// The Secret with the certificate `amqps` serves (`kubernetes.io/tls`).
    pub fn tls_secret(&self) -> String {
        format!("broker-{}-tls", self.id)
    }

    /// The Secret with the token the broker's management API asks of the operator.
    pub fn management_secret(&self) -> String {
        format!("broker-{}-management", self.id)
    }

    /// The Secret with the certificate the broker's management API serves (`kubernetes.io/tls`),
    /// issued from the space's CA.
    pub fn management_tls_secret(&self) -> String {
        format!("broker-{}-management-tls", self.id)
    }

    /// The name the management API's certificate carries, which the operator verifies: the pod's
    /// name under the broker's Service, though the operator connects to the pod's IP.
    pub fn management_host(&self, infra_namespace: &str) -> String {
        format!("{}.{}.{infra_namespace}.svc", self.pod(), self.broker())
    }

    /// The NetworkPolicy that admits clients and the operator to the broker.
    pub fn network_policy(&self) -> String {
        format!("broker-{}", self.id)
    }

    /// The broker's one pod.
    pub fn pod(&self) -> String {
        format!("broker-{}-0", self.id)
    }

    /// The Secret with the space's own CA (`selfsigned`).
    pub fn ca_secret(&self) -> String {
        format!("broker-{}-ca", self.id)
    }

    /// The labels of every object of the space's infrastructure.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (INFRA_LABEL.to_owned(), self.id.clone()),
            (SPACE_NAMESPACE_LABEL.to_owned(), self.space_namespace.clone()),
            (SPACE_LABEL.to_owned(), self.space.clone()),
            (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
            ("app.kubernetes.io/name".to_owned(), "enmasse-broker".to_owned()),
        ])
    }

    /// The labels that select the broker's pods.
    pub fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(INFRA_LABEL.to_owned(), self.id.clone())])
    }

    /// A label selector (`key=value`) for everything of this space's infrastructure.
    pub fn label_selector(&self) -> String {
        format!("{INFRA_LABEL}={}", self.id)
    }

    /// The labels of what exposes one of the space's endpoints.
    pub fn exposure_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels();
        labels.insert(EXPOSURE_LABEL.to_owned(), "true".to_owned());
        labels
    }

    /// A label selector for what exposes the space's endpoints.
    pub fn exposure_selector(&self) -> String {
        format!("{},{EXPOSURE_LABEL}=true", self.label_selector())
    }

    /// The host clients in the cluster connect to.
    pub fn host(&self, infra_namespace: &str) -> String {
        format!("{}.{infra_namespace}.svc", self.broker())
    }
}

/// FNV-1a, 64 bits: stable across processes and versions, unlike `std`'s hasher.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_space_always_gets_the_same_names_and_others_get_others() {
        let app = InfraNames::new("team1", "app");
        assert_eq!(app, InfraNames::new("team1", "app"));
        assert_ne!(app.id, InfraNames::new("team2", "app").id);
        assert!(app.id.starts_with("app-") && app.id.len() == "app-".len() + 8);
        assert_eq!(app.broker(), format!("broker-{}", app.id));
        assert_eq!(
            app.host("enmasse-infra"),
            format!("broker-{}.enmasse-infra.svc", app.id)
        );
    }

    #[test]
    fn a_long_space_name_still_gives_names_kubernetes_accepts() {
        let names = InfraNames::new("team1", &format!("{}-{}", "a".repeat(29), "b".repeat(30)));
        for name in [names.broker(), names.tls_secret(), names.ca_secret()] {
            assert!(name.len() + "-0".len() <= 52, "{name}");
            assert!(!name.contains("--"), "{name}");
        }
    }
}
