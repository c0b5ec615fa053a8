//! `enmasse validate` and `enmasse status`.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use enmasse_client::{
    management::Management,
    resources::Resources,
    validate::{self, Severity},
};
use enmasse_types::resources::common::Phase;
use serde_json::Value;

use crate::Output;

/// `enmasse validate`.
#[derive(Debug, clap::Args)]
pub(crate) struct ValidateArgs {
    /// Directories (read recursively) or files of manifests.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// The namespace of resources that name none (as `kubectl apply -n` would).
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Fail on warnings too.
    #[arg(long)]
    strict: bool,
    /// How to print the findings.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

/// `enmasse status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// Read the AddressSpaces, Addresses and MessagingUsers of a cluster namespace (through the
    /// kubeconfig or the pod's service account) instead of a standalone broker.
    #[arg(long)]
    cluster: bool,
    /// The namespace to read with --cluster; the kubeconfig's by default.
    #[arg(long, short = 'n', requires = "cluster")]
    namespace: Option<String>,
    /// The broker's management API, host:port.
    #[arg(long, env = "ENMASSE_MANAGEMENT", default_value = "127.0.0.1:8080")]
    management: String,
    /// The management token, if the broker asks for one (--management-token-file).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// How to print the status.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

/// Validates, and tells whether the manifests may be merged.
pub(crate) fn validate(args: ValidateArgs) -> anyhow::Result<bool> {
    let report = validate::validate(&args.paths, &args.namespace).context("failed to read the manifests")?;
    let errors = report.count(Severity::Error);
    let warnings = report.count(Severity::Warning);
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Text => {
            for finding in &report.findings {
                let severity = match finding.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                };
                let resource = finding
                    .resource
                    .as_ref()
                    .map(|r| format!("{r}: "))
                    .unwrap_or_default();
                println!(
                    "{}:{}: {severity}: {resource}{}",
                    finding.file.display(),
                    finding.line,
                    finding.message
                );
            }
            println!(
                "{} files, {} resources: {errors} error{}, {warnings} warning{}",
                report.files,
                report.resources,
                plural(errors),
                plural(warnings)
            );
        }
    }
    Ok(errors == 0 && (!args.strict || warnings == 0))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Prints the status of what a standalone broker serves, or of a cluster namespace's resources;
/// tells whether all of it is ready.
pub(crate) async fn status(args: StatusArgs) -> anyhow::Result<bool> {
    if args.cluster {
        return cluster_status(args).await;
    }
    let token = match &args.token_file {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("failed to read the management token {}", file.display()))?,
        ),
        None => None,
    };
    let management = Management {
        address: args.management.clone(),
        token,
        timeout: Duration::from_secs(args.timeout),
        tls: None,
    };
    let status = management.get_json("/status").await?;
    let statuses = &status["manifests"]["statuses"];
    let mut active = true;
    let mut rows: Vec<[String; 4]> = Vec::new();
    for (kind, key) in [
        ("AddressSpace", "addressSpaces"),
        ("Address", "addresses"),
        ("MessagingUser", "users"),
    ] {
        for (name, resource) in statuses[key].as_object().into_iter().flatten() {
            let phase = resource["phase"].as_str().unwrap_or("Pending").to_owned();
            active &= phase == "Active";
            rows.push([kind.to_owned(), name.clone(), phase, messages(resource)]);
        }
    }
    if rows.is_empty() {
        active = false;
    }
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&status)?),
        Output::Text => print_status(&status, &rows),
    }
    Ok(active)
}

/// `enmasse status --cluster`: what the operator wrote into the resources' statuses.
async fn cluster_status(args: StatusArgs) -> anyhow::Result<bool> {
    let resources = Resources::connect(args.namespace.as_deref()).await?;
    let statuses = resources.statuses().await?;
    let ready = !statuses.is_empty() && statuses.iter().all(|s| s.readiness.ready);
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&statuses)?),
        Output::Text => {
            println!("namespace {}", resources.namespace());
            let rows: Vec<[String; 4]> = statuses
                .iter()
                .map(|s| {
                    let phase = match (&s.readiness.phase, s.readiness.ready) {
                        (Some(phase), true) => format!("{phase:?}"),
                        (Some(phase), false) if *phase == Phase::Active => "Active (stale)".to_owned(),
                        (Some(phase), false) => format!("{phase:?}"),
                        (None, _) => "no status".to_owned(),
                    };
                    [
                        s.kind.clone(),
                        s.name.clone(),
                        phase,
                        s.readiness.messages.join("; "),
                    ]
                })
                .collect();
            let depths: Vec<(&str, u64)> = statuses
                .iter()
                .filter_map(|s| Some((s.name.as_str(), s.depth?)))
                .collect();
            print_rows(&rows, &depths);
        }
    }
    Ok(ready)
}

/// The messages of a status, whether it has `messages` (spaces, addresses) or `message` (users).
fn messages(status: &Value) -> String {
    match (&status["messages"], &status["message"]) {
        (Value::Array(list), _) => list
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("; "),
        (_, Value::String(message)) => message.clone(),
        _ => String::new(),
    }
}

fn print_status(status: &Value, rows: &[[String; 4]]) {
    let manifests = &status["manifests"];
    match manifests["addressSpace"].as_str() {
        Some(space) => println!(
            "serving {space} (revision {})",
            status["revision"].as_str().unwrap_or("none")
        ),
        None => println!("serving no address space"),
    }
    for message in manifests["messages"].as_array().into_iter().flatten() {
        println!("  {}", message.as_str().unwrap_or_default());
    }
    for problem in manifests["problems"].as_array().into_iter().flatten() {
        println!(
            "  {}: {}",
            problem["file"].as_str().unwrap_or_default(),
            problem["problem"].as_str().unwrap_or_default()
        );
    }
    let depths: Vec<(&str, u64)> = status["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| Some((a["address"].as_str()?, a["depth"].as_u64()?)))
        .collect();
    print_rows(rows, &depths);
}

/// A table of kind, name, phase and messages, then the messages each address holds.
fn print_rows(rows: &[[String; 4]], depths: &[(&str, u64)]) {
    let width = |i: usize| rows.iter().map(|r| r[i].len()).max().unwrap_or(0);
    let (kind, name, phase) = (width(0).max(4), width(1).max(4), width(2).max(5));
    println!("{:kind$}  {:name$}  {:phase$}  MESSAGES", "KIND", "NAME", "PHASE");
    for [k, n, p, m] in rows {
        println!("{k:kind$}  {n:name$}  {p:phase$}  {m}");
    }
    if !depths.is_empty() {
        println!();
        for &(address, depth) in depths {
            println!(
                "{address}: {depth} message{} stored",
                if depth == 1 { "" } else { "s" }
            );
        }
    }
}
