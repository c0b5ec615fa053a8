//! The broker workload of one address space: its StatefulSet and Service, as pure functions of the
//! space's names, its infra config and the operator's settings.
//!
//! The broker runs the configuration the operator pushes to its management API, serves `amqps`
//! with the certificate mounted from the space's TLS Secret, and reviews service-account tokens
//! with the API server.

use std::collections::BTreeMap;

use enmasse_types::{
    evaluate::Infra,
    resources::{
        address_space::AddressSpaceType,
        common::{ComponentResources, PodTemplate},
    },
};
use k8s_openapi::{
    api::{
        apps::v1::{StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec},
        core::v1::{
            Container, ContainerPort, EmptyDirVolumeSource, HTTPGetAction, PersistentVolumeClaim,
            PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
            ResourceRequirements, SecretVolumeSource, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
            VolumeResourceRequirements,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};

use crate::names::InfraNames;

/// The port of plain AMQP.
pub const AMQP_PORT: u16 = 5672;
/// The port of AMQP over TLS.
pub const AMQPS_PORT: u16 = 5671;
/// The broker's port of AMQP over WebSocket in TLS (`messaging-wss`).
pub const WSS_PORT: u16 = 8443;
/// The Service port of AMQP over WebSocket, `https`, as EnMasse numbered it.
pub const WSS_SERVICE_PORT: u16 = 443;
/// The port of the broker's management API.
pub const MANAGEMENT_PORT: u16 = 8080;

/// The broker Service's ports that clients use, by name: `amqp` and `amqps` (the `messaging`
/// endpoint), `https` (`messaging-wss`).
pub fn client_ports() -> BTreeMap<String, u16> {
    BTreeMap::from([
        ("amqp".to_owned(), AMQP_PORT),
        ("amqps".to_owned(), AMQPS_PORT),
        ("https".to_owned(), WSS_SERVICE_PORT),
    ])
}
/// Where the broker keeps its data.
const DATA_DIR: &str = "/var/lib/enmasse";
/// Where the TLS Secret is mounted.
const TLS_DIR: &str = "/etc/enmasse/tls";
/// Where the management token Secret is mounted.
const MANAGEMENT_DIR: &str = "/etc/enmasse/management";
/// Where the management API's certificate is mounted.
const MANAGEMENT_TLS_DIR: &str = "/etc/enmasse/management-tls";
/// The management token's key in its Secret.
pub const MANAGEMENT_TOKEN: &str = "token";
/// The annotation by which OpenShift's service CA issues a serving certificate into a Secret.
pub const OPENSHIFT_SERVING_CERT: &str = "service.beta.openshift.io/serving-cert-secret-name";

/// How the operator runs brokers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerSettings {
    /// The namespace the infrastructure lives in (the operator's).
    pub namespace: String,
    /// The broker image.
    pub image: String,
    /// The image pull policy (`IfNotPresent`, `Always`).
    pub image_pull_policy: String,
    /// The service account brokers run as; it needs the right to create TokenReviews.
    pub service_account: String,
    /// Whether a deleted space's data volume is kept (delete policy `retain`), so that the space
    /// committed again finds its messages.
    pub retain_volumes: bool,
}

/// What the space's infra config asks of its broker.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BrokerInfra {
    /// Memory, CPU and storage.
    pub resources: ComponentResources,
    /// The storage class of the data volume.
    pub storage_class_name: Option<String>,
    /// Labels and scheduling for the pod.
    pub pod_template: Option<PodTemplate>,
}

/// What the infra config of space plan `plan` asks of the broker (`None` if the plan or its infra
/// config is missing: the space's status already says so).
pub fn broker_infra(infra: &Infra<'_>, plan: &str) -> Option<BrokerInfra> {
    let plan = infra
        .space_plans
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(plan))?;
    let wanted = plan.spec.infra_config_ref.as_str();
    let named = |metadata: &ObjectMeta| metadata.name.as_deref() == Some(wanted);
    let found = match plan.spec.address_space_type {
        AddressSpaceType::Standard => infra
            .standard_infra_configs
            .iter()
            .find(|c| named(&c.metadata))
            .map(|c| {
                c.spec
                    .broker
                    .clone()
                    .map(|b| (b.resources, b.storage_class_name, b.pod_template))
            }),
        AddressSpaceType::Brokered => infra
            .brokered_infra_configs
            .iter()
            .find(|c| named(&c.metadata))
            .map(|c| {
                c.spec
                    .broker
                    .clone()
                    .map(|b| (b.resources, b.storage_class_name, b.pod_template))
            }),
    }?;
    let (resources, storage_class_name, pod_template) = found.unwrap_or_default();
    Some(BrokerInfra {
        resources: resources.unwrap_or_default(),
        storage_class_name,
        pod_template,
    })
}

/// The user the broker image runs as (distroless's `nonroot`).
const IMAGE_USER: i64 = 65532;

/// The pod's security context: the infra config's, with the volumes group-owned by the image's
/// user unless it says otherwise, so that the broker can write its journal on a freshly
/// provisioned (root-owned) volume.
fn security_context(configured: Option<PodSecurityContext>) -> PodSecurityContext {
    let mut context = configured.unwrap_or_else(|| PodSecurityContext {
        run_as_non_root: Some(true),
        ..PodSecurityContext::default()
    });
    context.fs_group.get_or_insert(IMAGE_USER);
    context
}

/// The broker's StatefulSet: one replica, its data on a volume claim when the infra config gives
/// it storage, its certificate from the space's TLS Secret.
pub fn stateful_set(names: &InfraNames, settings: &BrokerSettings, infra: &BrokerInfra) -> StatefulSet {
    let template = infra.pod_template.clone().unwrap_or_default();
    let mut pod_labels = names.labels();
    if let Some(metadata) = &template.metadata {
        for (key, value) in &metadata.labels {
            pod_labels.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    let pod = template.spec.unwrap_or_default();
    let storage = infra.resources.storage.clone();
    let secret_volume = |name: &str, secret: String| Volume {
        name: name.to_owned(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    };
    let mut volumes = vec![
        secret_volume("tls", names.tls_secret()),
        secret_volume("management", names.management_secret()),
        secret_volume("management-tls", names.management_tls_secret()),
    ];
    if storage.is_none() {
        volumes.push(Volume {
            name: "data".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
    }
    let claims = storage.map(|storage| {
        vec![PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("data".to_owned()),
                labels: Some(names.labels()),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
                storage_class_name: infra.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".to_owned(), Quantity(storage))])),
                    ..VolumeResourceRequirements::default()
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaim::default()
        }]
    });
    StatefulSet {
        metadata: metadata(names, settings, names.broker()),
        spec: StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(names.broker()),
            selector: LabelSelector {
                match_labels: Some(names.selector()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(settings.service_account.clone()),
                    containers: vec![container(settings, infra, pod.resources)],
                    volumes: Some(volumes),
                    affinity: pod.affinity,
                    tolerations: (!pod.tolerations.is_empty()).then_some(pod.tolerations),
                    priority_class_name: pod.priority_class_name,
                    security_context: Some(security_context(pod.security_context)),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: claims,
            persistent_volume_claim_retention_policy: Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_deleted: Some(
                    if settings.retain_volumes {
                        "Retain"
                    } else {
                        "Delete"
                    }
                    .to_owned(),
                ),
                when_scaled: Some("Retain".to_owned()),
            }),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    }
}

fn container(
    settings: &BrokerSettings,
    infra: &BrokerInfra,
    resources: Option<ResourceRequirements>,
) -> Container {
    let args = [
        "--listen",
        &format!("0.0.0.0:{AMQP_PORT}"),
        "--listen-tls",
        &format!("0.0.0.0:{AMQPS_PORT}"),
        "--listen-wss",
        &format!("0.0.0.0:{WSS_PORT}"),
        "--management",
        &format!("0.0.0.0:{MANAGEMENT_PORT}"),
        "--data-dir",
        DATA_DIR,
        "--tls-dir",
        TLS_DIR,
        "--kubernetes-token-review",
        "--management-token-file",
        &format!("{MANAGEMENT_DIR}/{MANAGEMENT_TOKEN}"),
        "--management-tls-dir",
        MANAGEMENT_TLS_DIR,
    ]
    .map(str::to_owned)
    .to_vec();
    let port = |name: &str, port: u16| ContainerPort {
        name: Some(name.to_owned()),
        container_port: i32::from(port),
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    };
    let probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("management".to_owned()),
            // The management API serves TLS; the kubelet does not verify probes' certificates.
            scheme: Some("HTTPS".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(5),
        ..Probe::default()
    };
    Container {
        name: "broker".to_owned(),
        image: Some(settings.image.clone()),
        image_pull_policy: Some(settings.image_pull_policy.clone()),
        args: Some(args),
        ports: Some(vec![
            port("amqp", AMQP_PORT),
            port("amqps", AMQPS_PORT),
            port("https", WSS_PORT),
            port("management", MANAGEMENT_PORT),
        ]),
        resources: Some(resources.unwrap_or_else(|| requirements(&infra.resources))),
        readiness_probe: Some(probe("/readyz")),
        liveness_probe: Some(Probe {
            initial_delay_seconds: Some(10),
            ..probe("/healthz")
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "data".to_owned(),
                mount_path: DATA_DIR.to_owned(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "tls".to_owned(),
                mount_path: TLS_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "management".to_owned(),
                mount_path: MANAGEMENT_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "management-tls".to_owned(),
                mount_path: MANAGEMENT_TLS_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    }
}

/// Memory as request and limit (a broker that outgrows it is restarted rather than starving its
/// node), CPU as request only.
fn requirements(resources: &ComponentResources) -> ResourceRequirements {
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    if let Some(memory) = &resources.memory {
        requests.insert("memory".to_owned(), Quantity(memory.clone()));
        limits.insert("memory".to_owned(), Quantity(memory.clone()));
    }
    if let Some(cpu) = &resources.cpu {
        requests.insert("cpu".to_owned(), Quantity(cpu.clone()));
    }
    ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..ResourceRequirements::default()
    }
}

/// The broker's Service: `amqp`, `amqps`, `https` (AMQP over WebSocket) and `management`. With the `openshift` cert provider it
/// asks OpenShift's service CA for the serving certificate.
pub fn service(names: &InfraNames, settings: &BrokerSettings, openshift_serving_cert: bool) -> Service {
    let mut metadata = metadata(names, settings, names.broker());
    if openshift_serving_cert {
        metadata.annotations = Some(BTreeMap::from([(
            OPENSHIFT_SERVING_CERT.to_owned(),
            names.tls_secret(),
        )]));
    }
    let port = |name: &str, port: u16| ServicePort {
        name: Some(name.to_owned()),
        port: i32::from(port),
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    };
    Service {
        metadata,
        spec: Some(ServiceSpec {
            selector: Some(names.selector()),
            ports: Some(vec![
                port("amqp", AMQP_PORT),
                port("amqps", AMQPS_PORT),
                port("https", WSS_SERVICE_PORT),
                port("management", MANAGEMENT_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn metadata(names: &InfraNames, settings: &BrokerSettings, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(settings.namespace.clone()),
        labels: Some(names.labels()),
        ..ObjectMeta::default()
    }
}

#[cfg(test)]
mod tests;
