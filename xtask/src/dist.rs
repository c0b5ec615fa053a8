//! `cargo xtask dist`: the release bundle an operations team unpacks and commits.
//!
//! `dist/enmasse-<version>.tar.gz` holds one directory, `enmasse-<version>/`:
//!
//! - `install/crds/`: the CustomResourceDefinitions (from `deploy/crds/`);
//! - `install/`: the namespace, RBAC, tenant roles and the operator's Deployment (`deploy/install/`);
//! - `install/defaults/`: plans, infra configs and authentication services (`examples/gitops/infra/`),
//!   to apply into the operator's namespace;
//! - `examples/`: a team's manifests, as in the post (`examples/gitops/team1/`);
//! - `argocd/`: the health checks to merge into Argo CD's settings (`deploy/argocd/`);
//! - `monitoring/`: PodMonitors, alert rules and a Grafana dashboard (`deploy/monitoring/`);
//! - `install/kustomization.yaml`: the CRDs, RBAC and Deployment in one `kubectl apply -k install/`,
//!   with the images of this release; `kustomization.yaml`: that and the monitoring;
//! - `SHA256SUMS`: the checksum of every file above.
//!
//! Next to the tarball, `enmasse-<version>.tar.gz.sha256` holds the tarball's own checksum.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

use crate::exec;

/// The version the bundle carries: the workspace's.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where each part of the bundle comes from: (source directory, directory in the bundle).
const PARTS: [(&str, &str); 6] = [
    ("deploy/crds", "install/crds"),
    ("deploy/install", "install"),
    ("deploy/argocd", "argocd"),
    ("deploy/monitoring", "monitoring"),
    ("examples/gitops/infra", "install/defaults"),
    ("examples/gitops/team1", "examples"),
];

/// The images of a release, as the Deployment names them.
const OPERATOR_IMAGE: &str = "enmasse-operator";
const BROKER_IMAGE: &str = "enmasse-broker";

/// How the bundle's kustomizations begin.
const KUSTOMIZATION_HEAD: &str = "# Written by `cargo xtask dist`.\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n";

/// Fails unless the operator's Deployment in `install` runs this release's images: its own
/// container and the broker image it hands the brokers (`ENMASSE_BROKER_IMAGE`), which no
/// kustomization can retag.
fn check_image_tags(install: &Path) -> anyhow::Result<()> {
    let path = install.join("20-operator.yaml");
    let text = fs::read_to_string(&path).with_context(|| format!("failed to read {}", path.display()))?;
    for image in [OPERATOR_IMAGE, BROKER_IMAGE] {
        let wanted = format!("{image}:{VERSION}");
        // The tag whole, not the start of a longer one.
        let named = text.match_indices(&wanted).any(|(at, _)| {
            !text[at + wanted.len()..]
                .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        });
        if !named {
            bail!("{} does not name {wanted}: the release's image", path.display());
        }
    }
    Ok(())
}

/// Builds the bundle under `<root>/dist`.
pub(crate) fn run(root: &Path) -> anyhow::Result<()> {
    let tarball = build(root, &root.join("dist"))?;
    println!("{}", tarball.display());
    Ok(())
}

/// Builds the bundle into `out`; returns the tarball's path.
pub(crate) fn build(root: &Path, out: &Path) -> anyhow::Result<PathBuf> {
    let name = format!("enmasse-{VERSION}");
    let stage = out.join(&name);
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("failed to clear {}", stage.display()))?;
    }
    let mut files = Vec::new();
    for (source, target) in PARTS {
        let source = root.join(source);
        let target_dir = stage.join(target);
        fs::create_dir_all(&target_dir)
            .with_context(|| format!("failed to create {}", target_dir.display()))?;
        for path in yaml_files(&source)? {
            let file_name = path.file_name().context("a file without a name")?;
            fs::copy(&path, target_dir.join(file_name))
                .with_context(|| format!("failed to copy {}", path.display()))?;
            files.push(format!("{target}/{}", file_name.to_string_lossy()));
        }
    }
    if files.is_empty() {
        bail!("nothing to bundle under {}", root.display());
    }
    files.sort();
    check_image_tags(&stage.join("install"))?;
    let install: Vec<&String> = files
        .iter()
        .filter(|f| f.starts_with("install/") && !f.starts_with("install/defaults/"))
        .collect();
    let mut install_kustomization = String::from(KUSTOMIZATION_HEAD);
    for file in &install {
        install_kustomization.push_str(&format!("- {}\n", &file["install/".len()..]));
    }
    install_kustomization.push_str(&format!(
        "images:\n- name: {OPERATOR_IMAGE}\n  newTag: {VERSION}\n"
    ));
    fs::write(stage.join("install/kustomization.yaml"), install_kustomization)
        .context("failed to write install/kustomization.yaml")?;
    let mut root_kustomization = format!("{KUSTOMIZATION_HEAD}- install\n");
    // Not Argo CD's settings: an Application syncing the bundle would own argocd-cm, and
    // deleting it would delete them. They are merged once, by hand.
    for file in files.iter().filter(|f| f.starts_with("monitoring/")) {
        root_kustomization.push_str(&format!("- {file}\n"));
    }
    fs::write(stage.join("kustomization.yaml"), root_kustomization)
        .context("failed to write kustomization.yaml")?;
    files.push("install/kustomization.yaml".to_owned());
    files.push("kustomization.yaml".to_owned());
    files.sort();
    let sums = checksums(&stage, &files)?;
    fs::write(stage.join("SHA256SUMS"), sums).context("failed to write SHA256SUMS")?;

    let tarball = out.join(format!("{name}.tar.gz"));
    // Sorted, with fixed owners and times, so that the same sources give the same bundle.
    exec::run(
        Command::new("tar")
            .env("GZIP", "-n")
            .args([
                "--sort=name",
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                "--mtime=@0",
                "-czf",
            ])
            .arg(&tarball)
            .arg("-C")
            .arg(out)
            .arg(&name),
    )?;
    let tarball_name = format!("{name}.tar.gz");
    let sum = checksums(out, &[tarball_name])?;
    fs::write(out.join(format!("{name}.tar.gz.sha256")), sum)
        .context("failed to write the tarball's checksum")?;
    Ok(tarball)
}

/// The `.yaml` files directly in `dir`.
fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("failed to read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "yaml") {
            files.push(path);
        }
    }
    Ok(files)
}

/// `sha256sum` lines for `files`, relative to `dir`.
fn checksums(dir: &Path, files: &[String]) -> anyhow::Result<String> {
    let output = Command::new("sha256sum")
        .args(files)
        .current_dir(dir)
        .output()
        .context("failed to run sha256sum")?;
    if !output.status.success() {
        bail!(
            "sha256sum failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).context("sha256sum wrote something other than text")
}

#[cfg(test)]
mod tests;
