//! The Argo CD health check (`deploy/argocd/health.lua`), run by a Lua interpreter (Debian's
//! `lua5.4`, installed by `cargo xtask test`) on the objects as the operator leaves them: statuses
//! made by the project's own rules for the GitOps example, in each phase it goes through. The
//! check is read from the generated `argocd-cm` patch, so what is tested is what Argo CD gets.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::{collections::BTreeMap, fmt::Write as _, process::Command};

use enmasse_types::{
    broker_config::{AddressReport, BrokerReport},
    catalog::{Catalog, TenantResources},
    evaluate::{Evaluation, Reports, evaluate},
    resources::address::AddressType,
};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use serde_json::Value;
use tests::{example_team, repo_root};

/// What the check said.
#[derive(Debug, PartialEq, Eq)]
struct Health {
    status: String,
    message: String,
}

/// The health check of `kind` (as Argo CD names it, `group_Kind`) from the generated patch.
fn check_of(kind: &str) -> String {
    let path = repo_root().join("deploy/argocd/argocd-cm-health.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let patch: Value = serde_saphyr::from_str(&text).unwrap();
    let key = format!("resource.customizations.health.{kind}");
    patch["data"][key.as_str()]
        .as_str()
        .unwrap_or_else(|| panic!("{} has no {key}", path.display()))
        .to_owned()
}

/// Runs the check of `kind` on `object` (as JSON, which Argo CD hands Lua as tables).
fn health(kind: &str, object: &Value) -> Health {
    let script = format!(
        "obj = {}\nlocal check = assert(load({}))\nlocal hs = check()\nio.write(hs.status, '\\n', hs.message or '')",
        lua(object),
        lua(&Value::String(check_of(kind)))
    );
    let output = Command::new("lua5.4")
        .args(["-e", &script])
        .output()
        .expect("lua5.4 runs (cargo xtask test installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let (status, message) = text.split_once('\n').unwrap();
    Health {
        status: status.to_owned(),
        message: message.to_owned(),
    }
}

/// `value` as a Lua constructor: objects as tables with string keys, arrays as sequences.
fn lua(value: &Value) -> String {
    match value {
        Value::Null => "nil".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let mut out = String::from("\"");
            for byte in s.bytes() {
                match byte {
                    b'"' | b'\\' => {
                        out.push('\\');
                        out.push(char::from(byte));
                    }
                    b' '..=b'~' => out.push(char::from(byte)),
                    _ => {
                        let _ = write!(out, "\\{byte:03}");
                    }
                }
            }
            out.push('"');
            out
        }
        Value::Array(items) => format!("{{{}}}", items.iter().map(lua).collect::<Vec<_>>().join(", ")),
        Value::Object(fields) => format!(
            "{{{}}}",
            fields
                .iter()
                .map(|(k, v)| format!("[{}] = {}", lua(&Value::String(k.clone())), lua(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn now() -> Time {
    Time(Timestamp::from_second(1_700_000_000).unwrap())
}

/// The example's team, and the infrastructure it runs on.
fn team() -> (Catalog, TenantResources) {
    example_team().unwrap()
}

fn run(catalog: &Catalog, team: &TenantResources, reports: &Reports) -> Evaluation {
    evaluate(&team.as_tenant(), &catalog.infra(), reports, &now())
}

/// The example's broker, serving every address of `evaluation`'s config as a queue holding
/// `depth` messages.
fn serving(evaluation: &Evaluation, depth: u64) -> Reports {
    let config = evaluation.spaces["app"].config.clone().unwrap();
    let report = BrokerReport {
        revision: config.revision(),
        addresses: config
            .addresses
            .iter()
            .map(|a| AddressReport {
                type_: Some(AddressType::Queue),
                ..AddressReport::serving(a.address.clone(), depth)
            })
            .collect(),
        problems: vec![],
    };
    BTreeMap::from([("app".to_owned(), report)])
}

/// The team's objects with the statuses of `evaluation`, as the operator writes them.
fn with_statuses(team: &TenantResources, evaluation: &Evaluation) -> TenantResources {
    let mut team = team.clone();
    for space in &mut team.spaces {
        let name = space.metadata.name.clone().unwrap();
        space.status = Some(evaluation.spaces[&name].status.clone());
    }
    for address in &mut team.addresses {
        let name = address.metadata.name.clone().unwrap();
        address.status = Some(evaluation.addresses[&name].clone());
    }
    for user in &mut team.users {
        let name = user.metadata.name.clone().unwrap();
        user.status = Some(evaluation.users[&name].clone());
    }
    team
}

/// The health of every object of `team`, by kind and name.
fn healths(team: &TenantResources) -> Vec<(String, Health)> {
    let mut all = Vec::new();
    for space in &team.spaces {
        let object = serde_json::to_value(space).unwrap();
        all.push((
            format!("space {}", space.metadata.name.as_deref().unwrap()),
            health("enmasse.io_AddressSpace", &object),
        ));
    }
    for address in &team.addresses {
        let object = serde_json::to_value(address).unwrap();
        all.push((
            format!("address {}", address.metadata.name.as_deref().unwrap()),
            health("enmasse.io_Address", &object),
        ));
    }
    for user in &team.users {
        let object = serde_json::to_value(user).unwrap();
        all.push((
            format!("user {}", user.metadata.name.as_deref().unwrap()),
            health("user.enmasse.io_MessagingUser", &object),
        ));
    }
    all
}

/// The health of the team's first address.
fn first_address(team: &TenantResources) -> Health {
    health(
        "enmasse.io_Address",
        &serde_json::to_value(&team.addresses[0]).unwrap(),
    )
}

#[test]
fn every_kind_is_progressing_before_the_operator_writes_a_status() {
    let (_, team) = team();
    for (name, health) in healths(&team) {
        assert_eq!(
            health,
            Health {
                status: "Progressing".into(),
                message: "Waiting for the operator".into()
            },
            "{name}"
        );
    }
}

#[test]
fn every_kind_is_progressing_while_configuring_and_healthy_once_served() {
    let (catalog, team) = team();
    let configuring = run(&catalog, &team, &Reports::new());
    for (name, health) in healths(&with_statuses(&team, &configuring)) {
        assert_eq!(health.status, "Progressing", "{name}: {health:?}");
    }
    let space = &healths(&with_statuses(&team, &configuring))[0].1;
    assert_eq!(space.message, "waiting for the broker to report");

    let active = run(&catalog, &team, &serving(&configuring, 0));
    for (name, health) in healths(&with_statuses(&team, &active)) {
        assert_eq!(health.status, "Healthy", "{name}: {health:?}");
    }
}

#[test]
fn a_manifest_the_rules_refuse_is_degraded_with_their_reason() {
    let (catalog, mut team) = team();
    // A subscription must name its topic.
    team.addresses[0].spec.type_ = AddressType::Subscription;
    team.addresses[0].spec.plan = "standard-small-subscription".into();
    team.addresses[0].spec.topic = None;
    let evaluation = run(&catalog, &team, &Reports::new());
    let refused = first_address(&with_statuses(&team, &evaluation));
    assert_eq!(refused.status, "Degraded", "{refused:?}");
    assert!(refused.message.contains("spec.topic"), "{refused:?}");
}

#[test]
fn a_generation_the_operator_has_not_seen_is_progressing() {
    let (catalog, team) = team();
    let configuring = run(&catalog, &team, &Reports::new());
    let active = run(&catalog, &team, &serving(&configuring, 0));
    let mut team = with_statuses(&team, &active);
    let space = &mut team.spaces[0];
    space.metadata.generation = Some(3);
    space.status.as_mut().unwrap().observed_generation = Some(2);
    let object = serde_json::to_value(&*space).unwrap();
    assert_eq!(
        health("enmasse.io_AddressSpace", &object),
        Health {
            status: "Progressing".into(),
            message: "Waiting for the operator to see generation 3".into()
        }
    );
}

#[test]
fn an_edit_held_on_the_applied_plan_is_degraded_and_one_waiting_for_a_drain_is_progressing() {
    let (catalog, team) = team();
    let configuring = run(&catalog, &team, &Reports::new());
    let reports = serving(&configuring, 5);
    let served = with_statuses(&team, &run(&catalog, &team, &reports));

    // A plan that does not exist: the address keeps serving on the one it has.
    let mut edited = served.clone();
    edited.addresses[0].spec.plan = "no-such-plan".into();
    let evaluation = run(&catalog, &edited, &reports);
    let health = first_address(&with_statuses(&edited, &evaluation));
    assert_eq!(health.status, "Degraded", "{health:?}");
    assert!(health.message.contains("no-such-plan"), "{health:?}");

    // A type change of an address that holds messages waits until they are consumed.
    let mut edited = served;
    edited.addresses[0].spec.type_ = AddressType::Topic;
    edited.addresses[0].spec.plan = "standard-small-topic".into();
    let evaluation = run(&catalog, &edited, &reports);
    let health = first_address(&with_statuses(&edited, &evaluation));
    assert_eq!(health.status, "Progressing", "{health:?}");
    assert!(health.message.contains("consumed"), "{health:?}");
}

#[test]
fn a_space_whose_plan_change_was_refused_is_degraded() {
    let (catalog, team) = team();
    let configuring = run(&catalog, &team, &Reports::new());
    let reports = serving(&configuring, 0);
    let mut served = with_statuses(&team, &run(&catalog, &team, &reports));
    served.spaces[0].spec.plan = "no-such-plan".into();
    let evaluation = run(&catalog, &served, &reports);
    let space = &with_statuses(&served, &evaluation).spaces[0];
    let status = space.status.as_ref().unwrap();
    assert_eq!(
        status.applied_plan.as_deref(),
        Some("standard-small"),
        "{status:?}"
    );
    let health = health("enmasse.io_AddressSpace", &serde_json::to_value(space).unwrap());
    assert_eq!(health.status, "Degraded", "{health:?} for {status:?}");
}
