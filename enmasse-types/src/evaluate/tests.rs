//! The namespace verdict, scenario by scenario, over the example infrastructure.

use std::collections::BTreeMap;

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

use super::*;
use crate::{
    broker_config::{AddressReport, ByAddress, SpaceConfig},
    catalog::Catalog,
    manifests,
    resources::{common::Phase, infra_config::AddressFullPolicy},
};

const INFRA: &[&str] = &[
    include_str!("../../../examples/gitops/infra/standard-plans.yaml"),
    include_str!("../../../examples/gitops/infra/brokered-plans.yaml"),
    include_str!("../../../examples/gitops/infra/infra-configs.yaml"),
    include_str!("../../../examples/gitops/infra/authentication-services.yaml"),
];

const SPACE: &str = "apiVersion: enmasse.io/v1beta1
kind: AddressSpace
metadata: {name: app, namespace: team1}
spec: {type: standard, plan: standard-small}
";

fn at(seconds: i64) -> Time {
    Time(Timestamp::from_second(seconds).unwrap())
}

fn catalog(tenant_yaml: &[&str]) -> Catalog {
    let mut catalog = Catalog::default();
    for text in INFRA.iter().chain(tenant_yaml) {
        for document in manifests::parse(text) {
            catalog.add(document.unwrap().manifest);
        }
    }
    catalog
}

fn run(catalog: &Catalog) -> Evaluation {
    run_with(catalog, &Reports::new())
}

fn run_with(catalog: &Catalog, reports: &Reports) -> Evaluation {
    let tenant = Tenant {
        namespace: "team1",
        spaces: &catalog.spaces,
        addresses: &catalog.addresses,
        users: &catalog.users,
    };
    evaluate(&tenant, &catalog.infra(), reports, &at(100))
}

fn address(name: &str, address: &str, type_: &str, plan: &str) -> String {
    format!(
        "apiVersion: enmasse.io/v1beta1\nkind: Address\nmetadata: {{name: {name}}}\nspec: {{address: {address}, type: {type_}, plan: {plan}}}\n"
    )
}

fn user(name: &str, username: &str, authentication: &str, rules: &str) -> String {
    format!(
        "apiVersion: user.enmasse.io/v1beta1\nkind: MessagingUser\nmetadata: {{name: {name}}}\nspec:\n  username: {username}\n  authentication: {authentication}\n  authorization: {rules}\n"
    )
}

fn queue(name: &str) -> String {
    address(&format!("app.{name}"), name, "queue", "standard-small-queue")
}

fn phase_and_message(evaluation: &Evaluation, name: &str) -> (Phase, String) {
    let status = &evaluation.addresses[name];
    (status.phase.unwrap(), status.messages.join("; "))
}

#[test]
fn an_address_with_a_malformed_name_fails_and_names_the_field() {
    let c = catalog(&[
        SPACE,
        &address("orders", "orders", "queue", "standard-small-queue"),
    ]);
    let (phase, message) = phase_and_message(&run(&c), "orders");
    assert_eq!(phase, Phase::Failed);
    assert!(
        message.starts_with("invalid metadata.name \"orders\": must be <address space>.<name>"),
        "{message}"
    );
}

#[test]
fn an_address_type_the_space_type_lacks_fails_and_lists_the_available_ones() {
    let brokered = SPACE.replace(
        "type: standard, plan: standard-small",
        "type: brokered, plan: brokered-single-broker",
    );
    let c = catalog(&[
        &brokered,
        &address("app.a", "a", "anycast", "standard-small-anycast"),
    ]);
    let (phase, message) = phase_and_message(&run(&c), "app.a");
    assert_eq!(phase, Phase::Failed);
    assert_eq!(
        message,
        "address type anycast is not available in a brokered address space (available: queue, topic, deadletter)"
    );
}

#[test]
fn address_plans_must_exist_be_offered_and_match_the_type() {
    let c = catalog(&[
        SPACE,
        &address("app.a", "a", "queue", "no-such-plan"),
        &address("app.b", "b", "queue", "standard-large-queue"),
        &address("app.c", "c", "topic", "standard-small-queue"),
    ]);
    let evaluation = run(&c);
    assert_eq!(
        phase_and_message(&evaluation, "app.a"),
        (Phase::Pending, "address plan no-such-plan not found".into())
    );
    let (phase, message) = phase_and_message(&evaluation, "app.b");
    assert_eq!(phase, Phase::Failed);
    assert!(message.starts_with(
        "address plan standard-large-queue is not offered by address space plan standard-small"
    ));
    assert_eq!(
        phase_and_message(&evaluation, "app.c"),
        (
            Phase::Failed,
            "address plan standard-small-queue is for queue addresses, not topic".into()
        )
    );
}

#[test]
fn a_second_address_with_the_same_address_fails_and_the_first_is_served() {
    let c = catalog(&[
        SPACE,
        &queue("orders"),
        &address("app.orders2", "orders", "queue", "standard-small-queue"),
    ]);
    let evaluation = run(&c);
    assert_eq!(evaluation.addresses["app.orders"].phase, Some(Phase::Configuring));
    assert_eq!(
        phase_and_message(&evaluation, "app.orders2"),
        (
            Phase::Failed,
            "Address 'orders' already exists with resource name 'app.orders'".into()
        )
    );
    assert_eq!(
        evaluation.spaces["app"].config.as_ref().unwrap().addresses.len(),
        1
    );
}

#[test]
fn a_subscription_needs_its_topic() {
    let subscription = |name: &str, topic: &str| {
        format!(
            "apiVersion: enmasse.io/v1beta1\nkind: Address\nmetadata: {{name: app.{name}}}\nspec: {{address: {name}, type: subscription, plan: standard-small-subscription{topic}}}\n"
        )
    };
    let c = catalog(&[
        SPACE,
        &subscription("no-topic", ""),
        &subscription("missing", ", topic: nowhere"),
        &subscription("wrong", ", topic: orders"),
        &subscription("good", ", topic: events"),
        &queue("orders"),
        &address("app.events", "events", "topic", "standard-small-topic"),
    ]);
    let evaluation = run(&c);
    assert_eq!(
        phase_and_message(&evaluation, "app.no-topic"),
        (Phase::Failed, "spec.topic is required for a subscription".into())
    );
    assert_eq!(
        phase_and_message(&evaluation, "app.missing"),
        (
            Phase::Pending,
            "spec.topic: topic address \"nowhere\" not found in the address space".into()
        )
    );
    assert_eq!(
        phase_and_message(&evaluation, "app.wrong"),
        (
            Phase::Failed,
            "spec.topic: \"orders\" is a queue, not a topic".into()
        )
    );
    assert_eq!(evaluation.addresses["app.good"].phase, Some(Phase::Configuring));
    let config = evaluation.spaces["app"].config.clone().unwrap();
    assert_eq!(config.address("good").unwrap().topic.as_deref(), Some("events"));
}

#[test]
fn an_address_over_quota_stays_pending_and_the_others_are_served() {
    // standard-small allows one broker; standard-medium-queue takes a tenth of one.
    let mut tenant = vec![SPACE.to_owned()];
    for i in 0..11 {
        tenant.push(address(
            &format!("app.q{i:02}"),
            &format!("q{i:02}"),
            "queue",
            "standard-medium-queue",
        ));
    }
    let refs: Vec<&str> = tenant.iter().map(String::as_str).collect();
    let evaluation = run(&catalog(&refs));
    let (phase, message) = phase_and_message(&evaluation, "app.q10");
    assert_eq!(phase, Phase::Pending);
    assert!(message.starts_with("Quota exceeded"), "{message}");
    assert_eq!(
        evaluation.spaces["app"].config.as_ref().unwrap().addresses.len(),
        10
    );
}

#[test]
fn a_space_whose_plan_is_missing_waits_and_so_do_its_addresses() {
    let c = catalog(&[
        &SPACE.replace("plan: standard-small", "plan: gold"),
        &queue("orders"),
    ]);
    let evaluation = run(&c);
    let space = &evaluation.spaces["app"];
    assert_eq!(space.status.phase, Some(Phase::Pending));
    assert_eq!(space.status.messages, ["address space plan gold not found"]);
    assert!(space.config.is_none());
    assert_eq!(
        phase_and_message(&evaluation, "app.orders"),
        (
            Phase::Pending,
            "address space app is not ready: address space plan gold not found".into()
        )
    );
}

#[test]
fn a_space_on_a_plan_for_another_type_fails() {
    let c = catalog(&[&SPACE.replace("plan: standard-small", "plan: brokered-single-broker")]);
    let status = &run(&c).spaces["app"].status;
    assert_eq!(status.phase, Some(Phase::Failed));
    assert_eq!(
        status.messages,
        ["address space plan brokered-single-broker is for brokered address spaces, not standard"]
    );
}

#[test]
fn a_space_names_an_authentication_service_that_must_exist() {
    let space = SPACE.replace(
        "plan: standard-small}",
        "plan: standard-small, authenticationService: {name: ldap}}",
    );
    let status = &run(&catalog(&[&space])).spaces["app"].status;
    assert_eq!(status.phase, Some(Phase::Pending));
    assert_eq!(status.messages, ["authentication service ldap not found"]);
}

#[test]
fn a_space_without_a_named_service_gets_the_standard_one() {
    let config = run(&catalog(&[SPACE])).spaces["app"].config.clone().unwrap();
    assert_eq!(config.space.authentication.service, "standard-authservice");
}

/// A space admitted on `standard-medium` with three large queues (a broker each), now asked to
/// move to `plan`.
fn space_moving_to(plan: &str) -> Catalog {
    let mut c = catalog(&[&SPACE.replace("plan: standard-small", &format!("plan: {plan}"))]);
    c.spaces[0].status = Some(AddressSpaceStatus {
        applied_plan: Some("standard-medium".into()),
        ..Default::default()
    });
    for i in 0..3 {
        let yaml = address(
            &format!("app.big{i}"),
            &format!("big{i}"),
            "queue",
            "standard-large-queue",
        );
        let mut doc = manifests::parse(&yaml);
        let manifests::Manifest::Address(mut a) = doc.remove(0).unwrap().manifest else {
            unreachable!()
        };
        let admitted = crate::resources::address::PlanStatus {
            name: "standard-large-queue".into(),
            ..Default::default()
        };
        a.status = Some(AddressStatus {
            phase: Some(Phase::Active),
            plan_status: Some(admitted),
            ..Default::default()
        });
        c.addresses.push(*a);
    }
    c
}

#[test]
fn a_plan_change_the_addresses_would_not_fit_keeps_the_old_plan() {
    let mut c = space_moving_to("standard-small");
    // Give the small plan the large queue plan so that only the quota stands in the way.
    c.space_plans
        .iter_mut()
        .find(|p| p.metadata.name.as_deref() == Some("standard-small"))
        .unwrap()
        .spec
        .address_plans
        .push("standard-large-queue".into());
    let evaluation = run(&c);
    let space = &evaluation.spaces["app"];
    assert_eq!(space.status.applied_plan.as_deref(), Some("standard-medium"));
    assert_eq!(space.config.as_ref().unwrap().space.plan, "standard-medium");
    assert!(space.status.messages.iter().any(|m| m
        == "Unable to apply plan standard-small to address space team1:app: quota exceeded for resource broker; plan standard-medium stays applied"));
    assert!(
        evaluation
            .addresses
            .values()
            .all(|s| s.phase == Some(Phase::Configuring)),
        "nothing is evicted"
    );
}

#[test]
fn a_plan_change_that_drops_an_address_plan_in_use_keeps_the_old_plan() {
    let evaluation = run(&space_moving_to("standard-small"));
    let messages = &evaluation.spaces["app"].status.messages;
    assert!(
        messages[0]
            .contains("address plan standard-large-queue of address big0 is not offered by standard-small"),
        "{messages:?}"
    );
}

#[test]
fn a_plan_change_that_fits_is_applied() {
    let mut c = space_moving_to("standard-medium");
    c.spaces[0].status.as_mut().unwrap().applied_plan = Some("standard-small".into());
    let evaluation = run(&c);
    assert_eq!(
        evaluation.spaces["app"].status.applied_plan.as_deref(),
        Some("standard-medium")
    );
}

#[test]
fn users_with_broken_credentials_or_rules_fail_with_the_reason() {
    let c = catalog(&[
        SPACE,
        &user("app.nopass", "alice", "{type: password}", "[]"),
        &user(
            "app.notb64",
            "bob",
            "{type: password, password: 'not base64!'}",
            "[]",
        ),
        &user("app.sa", "carol", "{type: serviceaccount}", "[]"),
        &user("app.fed", "dave", "{type: federated, provider: openshift}", "[]"),
        &user(
            "app.rules",
            "erin",
            "{type: password, password: ZXJpbg==}",
            "[{operations: [send]}]",
        ),
    ]);
    let evaluation = run(&c);
    let message = |name: &str| {
        let status = &evaluation.users[name];
        assert_eq!(status.phase, Some(Phase::Failed), "{name}");
        status.message.clone().unwrap()
    };
    assert_eq!(
        message("app.nopass"),
        "spec.authentication.password is required for a password user"
    );
    assert_eq!(
        message("app.notb64"),
        "spec.authentication.password must be base64-encoded"
    );
    assert!(message("app.sa").contains("system:serviceaccount:<namespace>:<name>"));
    assert!(message("app.fed").starts_with("federated users are not supported"));
    assert_eq!(
        message("app.rules"),
        "invalid spec.authorization[0].addresses \"[]\": is required for the send, recv and view operations"
    );
    assert!(evaluation.spaces["app"].config.as_ref().unwrap().users.is_empty());
}

#[test]
fn a_username_may_be_used_once_per_space() {
    let c = catalog(&[
        SPACE,
        &user("app.a", "alice", "{type: password, password: YQ==}", "[]"),
        &user("app.b", "alice", "{type: password, password: Yg==}", "[]"),
    ]);
    let evaluation = run(&c);
    assert_eq!(evaluation.users["app.a"].phase, Some(Phase::Configuring));
    assert_eq!(
        evaluation.users["app.b"].message.as_deref(),
        Some("username alice is already used by MessagingUser app.a")
    );
}

#[test]
fn users_of_a_none_service_space_are_active_and_told_so() {
    let space = SPACE.replace(
        "plan: standard-small}",
        "plan: standard-small, authenticationService: {name: none-authservice}}",
    );
    let c = catalog(&[
        &space,
        &user("app.a", "alice", "{type: password, password: YQ==}", "[]"),
    ]);
    let status = &run(&c).users["app.a"];
    assert_eq!(status.phase, Some(Phase::Active));
    assert!(
        status
            .message
            .as_deref()
            .unwrap()
            .contains("every client is accepted")
    );
}

#[test]
fn readiness_comes_from_the_broker_report_address_by_address() {
    let c = catalog(&[SPACE, &queue("orders"), &queue("audit")]);
    let config = run(&c).spaces["app"].config.clone().unwrap();
    let report = BrokerReport {
        revision: config.revision(),
        addresses: ByAddress::from([
            AddressReport {
                address: "orders".into(),
                type_: None,
                topic: None,
                ready: true,
                message: None,
                depth: 7,
                messages_expired: 2,
                messages_dead_lettered: 1,
                messages_dropped: 0,
            },
            AddressReport {
                address: "audit".into(),
                type_: None,
                topic: None,
                ready: false,
                message: Some("journal full".into()),
                depth: 0,
                messages_expired: 0,
                messages_dead_lettered: 0,
                messages_dropped: 0,
            },
        ]),
        problems: vec![],
    };
    let evaluation = run_with(&c, &BTreeMap::from([("app".into(), report.clone())]));
    assert!(evaluation.addresses["app.orders"].is_ready);
    assert_eq!(evaluation.addresses["app.orders"].depth, Some(7));
    assert_eq!(evaluation.addresses["app.orders"].messages_expired, Some(2));
    assert_eq!(evaluation.addresses["app.orders"].messages_dead_lettered, Some(1));
    assert_eq!(
        phase_and_message(&evaluation, "app.audit"),
        (Phase::Configuring, "journal full".into())
    );
    assert!(evaluation.spaces["app"].status.is_ready);

    // A broker that cannot serve the config fully says why, and the space is not ready.
    let troubled = BrokerReport {
        problems: vec!["authentication is unavailable".into()],
        ..report.clone()
    };
    let evaluation = run_with(&c, &BTreeMap::from([("app".into(), troubled)]));
    let space = &evaluation.spaces["app"].status;
    assert_eq!(space.phase, Some(Phase::Configuring));
    assert_eq!(space.messages, ["authentication is unavailable"]);

    // A report of an older config leaves the space configuring, whatever it says of addresses.
    let stale = BrokerReport {
        revision: "0000000000000000".into(),
        ..report
    };
    let evaluation = run_with(&c, &BTreeMap::from([("app".into(), stale)]));
    let space = &evaluation.spaces["app"].status;
    assert_eq!(space.phase, Some(Phase::Configuring));
    assert!(
        space
            .messages
            .last()
            .unwrap()
            .starts_with("the broker serves configuration 0000000000000000")
    );
}

#[test]
fn statuses_record_the_generation_and_keep_the_transition_time() {
    let mut c = catalog(&[SPACE, &queue("orders")]);
    c.addresses[0].metadata.generation = Some(3);
    let first = run(&c);
    let status = first.addresses["app.orders"].clone();
    assert_eq!(status.observed_generation, Some(3));
    assert_eq!(status.conditions[0].last_transition_time, at(100));

    c.addresses[0].status = Some(status);
    let tenant = Tenant {
        namespace: "team1",
        spaces: &c.spaces,
        addresses: &c.addresses,
        users: &c.users,
    };
    let later = evaluate(&tenant, &c.infra(), &Reports::new(), &at(500));
    assert_eq!(
        later.addresses["app.orders"].conditions[0].last_transition_time,
        at(100)
    );
}

#[test]
fn redelivery_is_in_force_only_where_a_queue_redelivers() {
    let with_redelivery = |name: &str, type_: &str, plan: &str| {
        format!(
            "apiVersion: enmasse.io/v1beta1\nkind: Address\nmetadata: {{name: app.{name}}}\nspec: {{address: {name}, type: {type_}, plan: {plan}, messageRedelivery: {{maximumDeliveryAttempts: 3}}}}\n"
        )
    };
    let c = catalog(&[
        SPACE,
        &with_redelivery("orders", "queue", "standard-small-queue"),
        &with_redelivery("news", "topic", "standard-small-topic"),
    ]);
    let evaluation = run(&c);
    let attempts = |name: &str| {
        evaluation.addresses[name]
            .message_redelivery
            .as_ref()
            .and_then(|r| r.maximum_delivery_attempts)
    };
    assert_eq!(attempts("app.orders"), Some(3));
    assert_ne!(
        phase_and_message(&evaluation, "app.news").0,
        Phase::Failed,
        "the topic is served"
    );
    assert_eq!(
        attempts("app.news"),
        None,
        "a topic's receivers do not redeliver: not claimed"
    );
}

#[test]
fn the_infra_configs_router_policy_reaches_the_broker_config() {
    let with_policy = include_str!("../../../examples/gitops/infra/infra-configs.yaml").replace(
        "    linkCapacity: 250\n",
        "    linkCapacity: 250\n    policy:\n      maxConnectionsPerUser: 5\n      maxSessionsPerConnection: 3\n",
    );
    let mut catalog = Catalog::default();
    for text in [INFRA[0], INFRA[1], with_policy.as_str(), INFRA[3], SPACE] {
        for document in manifests::parse(text) {
            catalog.add(document.unwrap().manifest);
        }
    }
    let config = run(&catalog).spaces["app"].config.clone().unwrap();
    let policy = config
        .space
        .connection_policy
        .expect("the router policy is in force");
    assert_eq!(policy.max_connections_per_user, Some(5));
    assert_eq!(policy.max_sessions_per_connection, Some(3));
    assert_eq!(
        run(&self::catalog(&[SPACE])).spaces["app"]
            .config
            .clone()
            .unwrap()
            .space
            .connection_policy,
        None
    );
}

const INFRA_CONFIGS: &str = include_str!("../../../examples/gitops/infra/infra-configs.yaml");

/// The space's broker settings and status messages, with `infra_configs` for the example's.
fn space_on(infra_configs: &str) -> (SpaceConfig, String) {
    let mut catalog = Catalog::default();
    for text in [INFRA[0], INFRA[1], infra_configs, INFRA[3], SPACE] {
        for document in manifests::parse(text) {
            catalog.add(document.unwrap().manifest);
        }
    }
    let evaluation = run(&catalog);
    let space = &evaluation.spaces["app"];
    (
        space.config.clone().unwrap().space,
        space.status.messages.join("; "),
    )
}

#[test]
fn the_global_max_size_is_the_infra_configs_or_a_quarter_of_the_brokers_memory() {
    let global = |infra_configs: &str| {
        let (space, messages) = space_on(infra_configs);
        (space.global_max_size, messages)
    };
    assert_eq!(global(INFRA_CONFIGS).0, Some(128 << 20), "a quarter of 512Mi");
    let explicit = INFRA_CONFIGS.replace(
        "    addressFullPolicy: FAIL\n",
        "    addressFullPolicy: FAIL\n    globalMaxSize: 64Mi\n",
    );
    assert_eq!(global(&explicit).0, Some(64 << 20));
    let broken = INFRA_CONFIGS.replace(
        "    addressFullPolicy: FAIL\n",
        "    addressFullPolicy: FAIL\n    globalMaxSize: lots\n",
    );
    let (size, messages) = global(&broken);
    assert_eq!(size, Some(128 << 20), "the quarter of the memory, then");
    assert!(
        messages.contains("globalMaxSize") && messages.contains("lots"),
        "{messages}"
    );
}

#[test]
fn the_infra_configs_address_full_policy_reaches_the_broker_config() {
    assert_eq!(
        space_on(INFRA_CONFIGS).0.address_full_policy,
        Some(AddressFullPolicy::Fail)
    );
    let (paged, _) = space_on(&INFRA_CONFIGS.replace("addressFullPolicy: FAIL", "addressFullPolicy: PAGE"));
    assert_eq!(paged.address_full_policy, Some(AddressFullPolicy::Page));
}

mod held;
mod incremental;
