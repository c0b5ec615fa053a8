//! The bundle as an operations team receives it: unpacked, every YAML in it must parse and name
//! only kinds that the bundle itself defines or that Kubernetes ships.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::collections::BTreeSet;

use serde_json::Value;

use super::*;

/// The kinds the bundle may use, by `apiVersion`: Kubernetes' own, and the Prometheus
/// Operator's for the monitoring.
const KUBERNETES: [(&str, &str); 13] = [
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every YAML file under `dir`, recursively, but kustomize's own.
fn all_yaml(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all_yaml(&path, found);
        } else if path.extension().is_some_and(|e| e == "yaml")
            && path.file_name().is_some_and(|n| n != "kustomization.yaml")
        {
            found.push(path);
        }
    }
}

/// Builds and unpacks the bundle into a directory of its own, named for `test`; returns the
/// scratch directory and the unpacked bundle.
fn unpacked(test: &str) -> (PathBuf, PathBuf) {
    let out = std::env::temp_dir().join(format!("enmasse-dist-{test}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&out);
    let tarball = build(&root(), &out).unwrap();
    let unpacked = out.join("unpacked");
    fs::create_dir_all(&unpacked).unwrap();
    exec::run(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&unpacked),
    )
    .unwrap();
    let bundle = unpacked.join(format!("enmasse-{VERSION}"));
    (out, bundle)
}

#[test]
fn the_kustomizations_install_every_file_of_install_with_the_release_images() {
    let (out, bundle) = unpacked("kustomize");
    let read = |path: PathBuf| -> Value {
        serde_saphyr::from_str(&fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let install = read(bundle.join("install/kustomization.yaml"));
    let listed: BTreeSet<String> = install["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    let mut on_disk = BTreeSet::new();
    for dir in ["install", "install/crds"] {
        for path in yaml_files(&bundle.join(dir)).unwrap() {
            let name = path.strip_prefix(bundle.join("install")).unwrap();
            if name != Path::new("kustomization.yaml") {
                on_disk.insert(name.to_string_lossy().into_owned());
            }
        }
    }
    assert_eq!(
        listed, on_disk,
        "install/kustomization.yaml lists every file and no other"
    );
    assert!(listed.iter().any(|r| r.starts_with("crds/")));
    assert_eq!(
        install["images"],
        serde_json::json!([{"name": OPERATOR_IMAGE, "newTag": VERSION}])
    );

    let whole = read(bundle.join("kustomization.yaml"));
    let resources: Vec<&str> = whole["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(
        resources,
        [
            "install",
            "monitoring/grafana-dashboard.yaml",
            "monitoring/pod-monitors.yaml",
            "monitoring/prometheus-rules.yaml"
        ]
    );
    for resource in resources {
        assert!(bundle.join(resource).exists(), "{resource}");
    }
    let _ = fs::remove_dir_all(&out);
}

#[test]
fn a_deployment_naming_other_images_than_the_release_fails_the_bundle() {
    let dir = std::env::temp_dir().join(format!("enmasse-dist-tags-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let deployment = fs::read_to_string(root().join("deploy/install/20-operator.yaml")).unwrap();
    fs::write(dir.join("20-operator.yaml"), &deployment).unwrap();
    check_image_tags(&dir).unwrap();
    fs::write(
        dir.join("20-operator.yaml"),
        deployment.replace(
            &format!("{BROKER_IMAGE}:{VERSION}"),
            &format!("{BROKER_IMAGE}:latest"),
        ),
    )
    .unwrap();
    let err = check_image_tags(&dir).unwrap_err().to_string();
    assert!(err.contains(&format!("{BROKER_IMAGE}:{VERSION}")), "{err}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn the_unpacked_bundle_parses_and_names_only_kinds_it_defines_or_kubernetes_and_prometheus_ship() {
    let (out, bundle) = unpacked("kinds");
    for part in ["install/crds", "install/defaults", "examples"] {
        assert!(bundle.join(part).is_dir(), "{part} in the bundle");
    }

    // Every file the checksums list is there, unchanged.
    exec::run(
        Command::new("sha256sum")
            .args(["--check", "--quiet", "SHA256SUMS"])
            .current_dir(&bundle),
    )
    .unwrap();

    let mut files = Vec::new();
    all_yaml(&bundle, &mut files);
    let documents: Vec<(PathBuf, Value)> = files
        .iter()
        .flat_map(|path| {
            let text = fs::read_to_string(path).unwrap();
            let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            // The EnMasse manifests must also pass the operator's own reading of them.
            for document in enmasse_types::manifests::parse(&text) {
                document.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            documents
                .into_iter()
                .filter(|d| !d.is_null())
                .map(|d| (path.clone(), d))
        })
        .collect();

    let mut known: BTreeSet<(String, String)> = KUBERNETES
        .iter()
        .map(|(v, k)| ((*v).to_owned(), (*k).to_owned()))
        .collect();
    for (_, crd) in documents
        .iter()
        .filter(|(_, d)| d["kind"] == "CustomResourceDefinition")
    {
        let group = crd["spec"]["group"].as_str().unwrap();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
        for version in crd["spec"]["versions"].as_array().unwrap() {
            let version = version["name"].as_str().unwrap();
            known.insert((format!("{group}/{version}"), kind.to_owned()));
        }
    }
    assert!(
        known.len() > KUBERNETES.len(),
        "the bundle defines the EnMasse kinds"
    );
    for (path, document) in &documents {
        let api_version = document["apiVersion"].as_str().unwrap_or_default().to_owned();
        let kind = document["kind"].as_str().unwrap_or_default().to_owned();
        assert!(
            known.contains(&(api_version.clone(), kind.clone())),
            "{}: {api_version} {kind} is neither defined by the bundle nor shipped by Kubernetes or the Prometheus Operator",
            path.display()
        );
    }
    let _ = fs::remove_dir_all(&out);
}
