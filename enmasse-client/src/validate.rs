//! `enmasse validate`: the GitOps pre-merge check, offline.
//!
//! It reads the manifests below the paths given as the standalone broker does, then runs the rules
//! the operator runs (`enmasse_types::evaluate`), with no broker: a document that cannot be read
//! is an error naming its field and value, a resource the rules refuse (`Failed`) is an error, and
//! one left waiting for something the directories do not hold (`Pending`: a plan, an address
//! space) is a warning. Each finding names the file and the line where its document starts.

use std::{collections::BTreeMap, path::PathBuf};

use enmasse_types::{
    catalog::Catalog,
    error::one_line,
    evaluate::{Reports, evaluate},
    manifests::{self, Manifest},
    resources::common::Phase,
};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The manifests must change before they are merged.
    Error,
    /// Something the directories do not hold is missing; the cluster may have it.
    Warning,
}

/// One thing wrong with one manifest.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// The file.
    pub file: PathBuf,
    /// The line where the document starts (1-based; 0 for the whole file).
    pub line: usize,
    /// `Kind name`, when known.
    pub resource: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// What the check found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// YAML files read.
    pub files: usize,
    /// EnMasse resources read.
    pub resources: usize,
    /// What is wrong, by file and line.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The number of findings of `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == severity).count()
    }
}

/// Checks every manifest below `paths`; resources without a namespace belong to `namespace`.
/// Fails only if a directory cannot be listed.
pub fn validate(paths: &[PathBuf], namespace: &str) -> std::io::Result<Report> {
    let files = manifests::read_files(paths)?;
    let mut report = Report {
        files: files.len(),
        ..Report::default()
    };
    let mut catalog = Catalog::default();
    // Where each resource was read: (kind, namespace, name) -> (file, line).
    let mut origins: BTreeMap<(String, String, String), (PathBuf, usize)> = BTreeMap::new();
    for (file, text) in files {
        let text = match text {
            Ok(text) => text,
            Err(err) => {
                report.findings.push(Finding {
                    severity: Severity::Error,
                    file,
                    line: 0,
                    resource: None,
                    message: err,
                });
                continue;
            }
        };
        for document in manifests::parse(&text) {
            match document {
                Ok(document) => {
                    if let Some((kind, ns, name)) = identity(&document.manifest, namespace) {
                        report.resources += 1;
                        origins
                            .entry((kind, ns, name))
                            .or_insert((file.clone(), document.line));
                    }
                    catalog.add(document.manifest);
                }
                Err(err) => report.findings.push(Finding {
                    severity: Severity::Error,
                    file: file.clone(),
                    line: err.line,
                    resource: err.kind.as_ref().map(|kind| match &err.name {
                        Some(name) => format!("{kind} {name}"),
                        None => kind.clone(),
                    }),
                    message: one_line(&err.problem),
                }),
            }
        }
    }

    let now = Time(Timestamp::now());
    for tenant in catalog.tenants(namespace) {
        let evaluation = evaluate(&tenant.as_tenant(), &catalog.infra(), &Reports::new(), &now);
        let spaces = evaluation
            .spaces
            .iter()
            .map(|(name, v)| ("AddressSpace", name, v.status.phase, v.status.messages.join("; ")));
        let addresses = evaluation
            .addresses
            .iter()
            .map(|(name, s)| ("Address", name, s.phase, s.messages.join("; ")));
        let users = evaluation.users.iter().map(|(name, s)| {
            (
                "MessagingUser",
                name,
                s.phase,
                s.message.clone().unwrap_or_default(),
            )
        });
        for (kind, name, phase, message) in spaces.chain(addresses).chain(users) {
            let severity = match phase {
                Some(Phase::Failed) => Severity::Error,
                Some(Phase::Pending) => Severity::Warning,
                _ => continue,
            };
            let key = (kind.to_owned(), tenant.namespace.clone(), name.clone());
            let (file, line) = origins.get(&key).cloned().unwrap_or_default();
            report.findings.push(Finding {
                severity,
                file,
                line,
                resource: Some(format!("{kind} {name}")),
                message,
            });
        }
    }
    report
        .findings
        .sort_by(|a, b| (&a.file, a.line, &a.resource).cmp(&(&b.file, b.line, &b.resource)));
    Ok(report)
}

/// Kind, namespace and name of an EnMasse resource; `None` for other kinds.
fn identity(manifest: &Manifest, default_namespace: &str) -> Option<(String, String, String)> {
    let meta = match manifest {
        Manifest::AddressSpace(r) => &r.metadata,
        Manifest::Address(r) => &r.metadata,
        Manifest::MessagingUser(r) => &r.metadata,
        Manifest::AddressSpacePlan(r) => &r.metadata,
        Manifest::AddressPlan(r) => &r.metadata,
        Manifest::StandardInfraConfig(r) => &r.metadata,
        Manifest::BrokeredInfraConfig(r) => &r.metadata,
        Manifest::AuthenticationService(r) => &r.metadata,
        _ => return None,
    };
    Some((
        manifest.kind().to_owned(),
        meta.namespace
            .clone()
            .unwrap_or_else(|| default_namespace.to_owned()),
        meta.name.clone().unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests;
