//! Endpoint exports: the objects an `AddressSpace` asks for in `spec.endpoints[].exports`, which
//! tell the team's applications where the messaging endpoint is.
//!
//! The operator writes them into the space's namespace; the standalone broker writes the same
//! objects as files. Keys as EnMasse wrote them: `service.host`, `service.port.<port>` (`amqp`,
//! `amqps`) and `ca.crt`; a `Service` export is an `ExternalName` service pointing at the host.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Secret, Service, ServiceSpec},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};

use crate::resources::address_space::{AddressSpace, EndpointSpec, ExportKind};

/// Where a space's messaging endpoint is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// The host clients connect to.
    pub host: String,
    /// The ports that listen, by name (`amqp`, `amqps`, `https`), of all served endpoints.
    pub ports: BTreeMap<String, u16>,
    /// The CA certificate (PEM) that `amqps` chains to, when clients need one.
    pub ca_pem: Option<String>,
    /// Where clients outside the cluster reach each exposed endpoint, by endpoint name.
    pub external: BTreeMap<String, External>,
}

impl Endpoint {
    /// The ports of `served`'s service (the ones [`EndpointSpec::port_names`] names) that listen.
    pub fn ports_of<'a>(&'a self, served: &EndpointSpec) -> impl Iterator<Item = (&'a str, u16)> + 'a {
        let names = served.port_names();
        self.ports
            .iter()
            .filter(move |(name, _)| names.contains(&name.as_str()))
            .map(|(name, port)| (name.as_str(), *port))
    }
}

/// Where clients outside the cluster reach an exposed endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct External {
    /// The host (or address) to connect to; `None` until the load balancer or router has one.
    pub host: Option<String>,
    /// The ports, by name.
    pub ports: BTreeMap<String, u16>,
}

/// One object to write into the space's namespace; it serializes as the object itself.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Export {
    /// A ConfigMap with the keys.
    ConfigMap(ConfigMap),
    /// A Secret with the keys.
    Secret(Secret),
    /// An `ExternalName` Service pointing at the host.
    Service(Box<Service>),
}

impl Export {
    /// The object's name.
    pub fn name(&self) -> &str {
        let metadata = match self {
            Self::ConfigMap(o) => &o.metadata,
            Self::Secret(o) => &o.metadata,
            Self::Service(o) => &o.metadata,
        };
        metadata.name.as_deref().unwrap_or_default()
    }

    /// The object's kind.
    pub fn kind(&self) -> ExportKind {
        match self {
            Self::ConfigMap(_) => ExportKind::ConfigMap,
            Self::Secret(_) => ExportKind::Secret,
            Self::Service(_) => ExportKind::Service,
        }
    }
}

/// The keys of a ConfigMap or Secret export of `served`: the Service's host and the ports of the
/// endpoint's service, and, once the endpoint is reachable from outside, `external.host` and
/// `external.port.<name>`.
pub fn keys(
    endpoint: &Endpoint,
    served: &EndpointSpec,
    external: Option<&External>,
) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::from([("service.host".to_owned(), endpoint.host.clone())]);
    for (name, port) in endpoint.ports_of(served) {
        keys.insert(format!("service.port.{name}"), port.to_string());
    }
    if let Some(external) = external
        && let Some(host) = &external.host
    {
        keys.insert("external.host".to_owned(), host.clone());
        for (name, port) in &external.ports {
            keys.insert(format!("external.port.{name}"), port.to_string());
        }
    }
    if let Some(ca) = &endpoint.ca_pem {
        keys.insert("ca.crt".to_owned(), ca.clone());
    }
    keys
}

/// Every export `space` asks for of its served endpoints, with `endpoint`'s details. Each is owned by the space (when it
/// has a uid, as it does in a cluster), so that deleting the space deletes its exports.
pub fn exports(space: &AddressSpace, endpoint: &Endpoint) -> Vec<Export> {
    let owner = owner_reference(space);
    let metadata = |name: &str| ObjectMeta {
        name: Some(name.to_owned()),
        namespace: space.metadata.namespace.clone(),
        owner_references: owner.clone().map(|o| vec![o]),
        ..ObjectMeta::default()
    };
    let mut exports = Vec::new();
    // Only a served endpoint has a host and ports to export.
    for (served, spec) in space
        .spec
        .endpoints
        .iter()
        .filter(|e| e.is_served())
        .flat_map(|e| e.exports.iter().map(move |spec| (e, spec)))
    {
        let keys = keys(endpoint, served, endpoint.external.get(&served.name));
        exports.push(match spec.kind {
            ExportKind::ConfigMap => Export::ConfigMap(ConfigMap {
                metadata: metadata(&spec.name),
                data: Some(keys.clone()),
                ..ConfigMap::default()
            }),
            ExportKind::Secret => Export::Secret(Secret {
                metadata: metadata(&spec.name),
                data: Some(
                    keys.iter()
                        .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
                        .collect(),
                ),
                ..Secret::default()
            }),
            ExportKind::Service => Export::Service(Box::new(Service {
                metadata: metadata(&spec.name),
                spec: Some(ServiceSpec {
                    type_: Some("ExternalName".to_owned()),
                    external_name: Some(endpoint.host.clone()),
                    ..ServiceSpec::default()
                }),
                ..Service::default()
            })),
        });
    }
    exports
}

fn owner_reference(space: &AddressSpace) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "enmasse.io/v1beta1".to_owned(),
        kind: "AddressSpace".to_owned(),
        name: space.metadata.name.clone()?,
        uid: space.metadata.uid.clone()?,
        block_owner_deletion: None,
        controller: Some(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests;

    fn space(exports: &str) -> AddressSpace {
        let text = format!(
            "apiVersion: enmasse.io/v1beta1
kind: AddressSpace
metadata: {{name: app, namespace: team1, uid: '1234'}}
spec:
  type: standard
  plan: standard-small
  endpoints:
  - name: messaging
    service: messaging
    exports:
{exports}"
        );
        match manifests::parse(&text).pop() {
            Some(Ok(document)) => match document.manifest {
                manifests::Manifest::AddressSpace(space) => *space,
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    fn endpoint() -> Endpoint {
        Endpoint {
            host: "broker-app.enmasse-infra.svc".into(),
            ports: BTreeMap::from([("amqp".into(), 5672), ("amqps".into(), 5671)]),
            ca_pem: Some("-----BEGIN CERTIFICATE-----\n".into()),
            external: BTreeMap::new(),
        }
    }

    #[test]
    fn a_config_map_export_carries_the_host_the_ports_and_the_ca() {
        let exports = exports(
            &space("    - {kind: ConfigMap, name: messaging-config}"),
            &endpoint(),
        );
        let [Export::ConfigMap(map)] = exports.as_slice() else {
            panic!("{exports:?}")
        };
        let data = map.data.clone().unwrap();
        assert_eq!(data["service.host"], "broker-app.enmasse-infra.svc");
        assert_eq!(data["service.port.amqps"], "5671");
        assert_eq!(data["service.port.amqp"], "5672");
        assert!(data["ca.crt"].starts_with("-----BEGIN"));
        assert_eq!(map.metadata.namespace.as_deref(), Some("team1"));
        let owner = &map.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("AddressSpace", "1234")
        );
    }

    #[test]
    fn secret_and_service_exports_say_the_same_in_their_own_form() {
        let exports = exports(
            &space("    - {kind: Secret, name: s}\n    - {kind: Service, name: svc}"),
            &endpoint(),
        );
        let [Export::Secret(secret), Export::Service(service)] = exports.as_slice() else {
            panic!("{exports:?}")
        };
        let data = secret.data.clone().unwrap();
        assert_eq!(data["service.port.amqps"].0, b"5671");
        let spec = service.spec.clone().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ExternalName"));
        assert_eq!(
            spec.external_name.as_deref(),
            Some("broker-app.enmasse-infra.svc")
        );
    }

    #[test]
    fn an_endpoint_exports_only_the_ports_of_its_own_service() {
        let mut space = space("    - {kind: ConfigMap, name: amqp-config}");
        let mut websocket = space.spec.endpoints[0].clone();
        websocket.name = "websocket".into();
        websocket.service = "messaging-wss".into();
        websocket.exports[0].name = "websocket-config".into();
        space.spec.endpoints.push(websocket);
        let mut endpoint = endpoint();
        endpoint.ports.insert("https".into(), 443);
        let exports = exports(&space, &endpoint);
        let [Export::ConfigMap(amqp), Export::ConfigMap(websocket)] = exports.as_slice() else {
            panic!("{exports:?}")
        };
        let ports = |map: &ConfigMap| -> Vec<String> {
            let data = map.data.clone().unwrap();
            data.keys()
                .filter(|k| k.starts_with("service.port."))
                .cloned()
                .collect()
        };
        assert_eq!(ports(amqp), ["service.port.amqp", "service.port.amqps"]);
        assert_eq!(ports(websocket), ["service.port.https"]);
    }
}
