//! The broker workload against the example infra configs and plans.

use enmasse_types::{catalog::Catalog, manifests};

use super::*;

fn settings() -> BrokerSettings {
    BrokerSettings {
        namespace: "enmasse-infra".into(),
        image: "quay.io/enmasse/broker:1".into(),
        image_pull_policy: "IfNotPresent".into(),
        service_account: "enmasse-broker".into(),
        retain_volumes: false,
    }
}

fn catalog(texts: &[&str]) -> Catalog {
    let mut catalog = Catalog::default();
    for text in texts {
        for document in manifests::parse(text) {
            catalog.add(document.unwrap().manifest);
        }
    }
    catalog
}

const PLAN: &str = "apiVersion: admin.enmasse.io/v1beta2
kind: AddressSpacePlan
metadata: {name: small}
spec:
  addressSpaceType: standard
  infraConfigRef: sized
  resourceLimits: {broker: 1.0, router: 1.0, aggregate: 2.0}
  addressPlans: []
";

fn infra_config(broker: &str) -> String {
    format!(
        "apiVersion: admin.enmasse.io/v1beta1
kind: StandardInfraConfig
metadata: {{name: sized}}
spec:
  broker:
{broker}"
    )
}

fn broker(broker: &str) -> BrokerInfra {
    let config = infra_config(broker);
    let catalog = catalog(&[PLAN, &config]);
    broker_infra(&catalog.infra(), "small").unwrap()
}

fn pod(set: &StatefulSet) -> PodSpec {
    set.spec.clone().template.spec.unwrap()
}

#[test]
fn the_plan_leads_to_its_infra_config_and_its_broker_settings() {
    let infra = broker("    resources: {memory: 1Gi, storage: 5Gi}\n    storageClassName: fast\n");
    assert_eq!(infra.resources.memory.as_deref(), Some("1Gi"));
    assert_eq!(infra.resources.storage.as_deref(), Some("5Gi"));
    assert_eq!(infra.storage_class_name.as_deref(), Some("fast"));
    let catalog = catalog(&[PLAN]);
    assert_eq!(
        broker_infra(&catalog.infra(), "small"),
        None,
        "no infra config, no broker"
    );
    assert_eq!(
        broker_infra(&catalog.infra(), "large"),
        None,
        "no plan, no broker"
    );
}

#[test]
fn storage_becomes_a_volume_claim_of_that_size_and_class() {
    let names = InfraNames::new("team1", "app");
    let set = stateful_set(
        &names,
        &settings(),
        &broker("    resources: {memory: 512Mi, storage: 2Gi}\n    storageClassName: fast\n"),
    );
    let claims = set.spec.clone().volume_claim_templates.unwrap();
    let claim = claims[0].spec.clone().unwrap();
    assert_eq!(claim.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(
        claim.resources.unwrap().requests.unwrap()["storage"],
        Quantity("2Gi".into())
    );
    let volumes = pod(&set).volumes.unwrap();
    assert!(
        volumes.iter().all(|v| v.name != "data"),
        "the claim is the data volume"
    );
}

#[test]
fn without_storage_the_data_lives_only_as_long_as_the_pod() {
    let names = InfraNames::new("team1", "app");
    let set = stateful_set(&names, &settings(), &broker("    resources: {memory: 512Mi}\n"));
    assert_eq!(set.spec.clone().volume_claim_templates, None);
    let volumes = pod(&set).volumes.unwrap();
    assert!(volumes.iter().any(|v| v.name == "data" && v.empty_dir.is_some()));
}

#[test]
fn the_broker_can_write_its_journal_on_a_fresh_volume_unless_the_pod_template_says_otherwise() {
    let names = InfraNames::new("team1", "app");
    let set = stateful_set(
        &names,
        &settings(),
        &broker("    resources: {memory: 512Mi, storage: 2Gi}\n"),
    );
    let context = pod(&set).security_context.unwrap();
    assert_eq!(
        context.fs_group,
        Some(IMAGE_USER),
        "the volume is group-owned by the image's user"
    );
    assert_eq!(context.run_as_non_root, Some(true));

    let own = broker(
        "    resources: {memory: 512Mi}\n    podTemplate:\n      spec:\n        securityContext: {runAsUser: 1000, fsGroup: 2000}\n",
    );
    let context = pod(&stateful_set(&names, &settings(), &own))
        .security_context
        .unwrap();
    assert_eq!((context.run_as_user, context.fs_group), (Some(1000), Some(2000)));
}

#[test]
fn memory_is_request_and_limit_unless_the_pod_template_says_otherwise() {
    let names = InfraNames::new("team1", "app");
    let set = stateful_set(
        &names,
        &settings(),
        &broker("    resources: {memory: 512Mi, cpu: 500m}\n"),
    );
    let resources = pod(&set).containers[0].resources.clone().unwrap();
    assert_eq!(resources.limits.unwrap()["memory"], Quantity("512Mi".into()));
    let requests = resources.requests.unwrap();
    assert_eq!(requests["memory"], Quantity("512Mi".into()));
    assert_eq!(requests["cpu"], Quantity("500m".into()));

    let set = stateful_set(
        &names,
        &settings(),
        &broker(
            "    resources: {memory: 512Mi}
    podTemplate:
      metadata: {labels: {team: one, enmasse.io/infra: stolen}}
      spec:
        priorityClassName: high
        resources: {limits: {memory: 2Gi}}
",
        ),
    );
    let pod_spec = pod(&set);
    assert_eq!(
        pod_spec.containers[0].resources.clone().unwrap().limits.unwrap()["memory"],
        Quantity("2Gi".into())
    );
    assert_eq!(pod_spec.priority_class_name.as_deref(), Some("high"));
    let labels = set.spec.template.metadata.unwrap().labels.unwrap();
    assert_eq!(labels["team"], "one");
    assert_eq!(
        labels[crate::names::INFRA_LABEL],
        names.id,
        "the selector's label cannot be taken over"
    );
}

#[test]
fn the_broker_serves_the_mounted_certificate_and_reviews_tokens_with_the_api_server() {
    let names = InfraNames::new("team1", "app");
    let set = stateful_set(&names, &settings(), &BrokerInfra::default());
    let pod_spec = pod(&set);
    let container = &pod_spec.containers[0];
    let args = container.args.clone().unwrap();
    for wanted in ["--tls-dir", "--kubernetes-token-review", "--management"] {
        assert!(args.iter().any(|a| a == wanted), "{wanted} in {args:?}");
    }
    let tls = pod_spec
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "tls")
        .unwrap();
    assert_eq!(tls.secret.unwrap().secret_name, Some(names.tls_secret()));
    assert_eq!(pod_spec.service_account_name.as_deref(), Some("enmasse-broker"));
    let readiness = container.readiness_probe.clone().unwrap().http_get.unwrap();
    assert_eq!(readiness.path.as_deref(), Some("/readyz"));
    assert_eq!(set.metadata.namespace.as_deref(), Some("enmasse-infra"));
}

#[test]
fn the_management_api_is_guarded_by_the_token_from_the_spaces_management_secret() {
    let names = InfraNames::new("team1", "app");
    let set = stateful_set(&names, &settings(), &BrokerInfra::default());
    let pod_spec = pod(&set);
    let args = pod_spec.containers[0].args.clone().unwrap();
    let flag = args.iter().position(|a| a == "--management-token-file").unwrap();
    assert_eq!(args[flag + 1], "/etc/enmasse/management/token");
    let volume = pod_spec
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "management")
        .unwrap();
    assert_eq!(
        volume.secret.unwrap().secret_name,
        Some(names.management_secret())
    );
}

#[test]
fn the_management_api_serves_tls_with_the_certificate_of_its_secret_and_is_probed_so() {
    let names = InfraNames::new("team1", "app");
    let set = stateful_set(&names, &settings(), &BrokerInfra::default());
    let pod_spec = pod(&set);
    let container = &pod_spec.containers[0];
    let args = container.args.clone().unwrap();
    let flag = args.iter().position(|a| a == "--management-tls-dir").unwrap();
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == args[flag + 1])
        .unwrap();
    let volume = pod_spec
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == mount.name)
        .unwrap();
    assert_eq!(
        volume.secret.unwrap().secret_name,
        Some(names.management_tls_secret())
    );
    for probe in [&container.readiness_probe, &container.liveness_probe] {
        let get = probe.clone().unwrap().http_get.unwrap();
        assert_eq!(get.scheme.as_deref(), Some("HTTPS"));
    }
}

#[test]
fn a_deleted_spaces_volume_is_kept_only_under_the_retain_policy() {
    let names = InfraNames::new("team1", "app");
    let when_deleted = |retain_volumes: bool| {
        let settings = BrokerSettings {
            retain_volumes,
            ..settings()
        };
        let set = stateful_set(&names, &settings, &BrokerInfra::default());
        set.spec
            .persistent_volume_claim_retention_policy
            .unwrap()
            .when_deleted
            .unwrap()
    };
    assert_eq!(when_deleted(false), "Delete");
    assert_eq!(when_deleted(true), "Retain");
}

#[test]
fn the_service_asks_openshift_for_a_certificate_only_for_the_openshift_provider() {
    let names = InfraNames::new("team1", "app");
    let plain = service(&names, &settings(), false);
    assert_eq!(plain.metadata.annotations, None);
    let ports: Vec<i32> = plain
        .spec
        .unwrap()
        .ports
        .unwrap()
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, [5672, 5671, 443, 8080]);
    let openshift = service(&names, &settings(), true);
    assert_eq!(
        openshift.metadata.annotations.unwrap()[OPENSHIFT_SERVING_CERT],
        names.tls_secret()
    );
}
