//! Clients nobody here wrote, against the standalone broker: Qpid Proton (Python) and rhea
//! (Node.js) each send to and receive from a queue and a topic; Proton logs in as a MessagingUser
//! of the GitOps example and is held to its rights.
//!
//! The peers are installed by `cargo xtask test`; a missing peer fails these tests, it never skips
//! them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::{path::PathBuf, sync::Arc, time::Duration};

use tests::repo_root;
use tests::standalone::{Running, exported_ca, exported_ca_of, standalone};
use tokio::process::Command;

/// The standalone broker on the interop fixture, on a free port.
async fn broker() -> Running {
    standalone(
        vec![
            repo_root().join("examples/gitops/infra"),
            repo_root().join("tests/fixtures/interop"),
        ],
        2,
        None,
        None,
    )
    .await
}

/// The standalone broker on the project's GitOps example, whose space authenticates its
/// MessagingUsers.
async fn example_broker() -> Running {
    standalone(vec![repo_root().join("examples/gitops")], 2, None, None).await
}

/// The `amqps` URL of a running broker and the CA file its export tells clients to trust.
fn tls_endpoint(broker: &Running) -> (String, PathBuf) {
    (
        format!("amqps://localhost:{}", broker.tls_addr.port()),
        exported_ca(broker),
    )
}

/// Runs a client to completion and fails the test with its output unless it printed "ok ...";
/// returns what it printed.
async fn run_client(program: &str, script: PathBuf, args: &[&str]) -> String {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(program)
            .arg(&script)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{} timed out", script.display()))
    .unwrap_or_else(|e| {
        panic!("failed to start {program} (is the peer installed? run `cargo xtask test`): {e}")
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.starts_with("ok "),
        "{} {args:?} failed ({}):\n{stdout}\n{stderr}",
        script.display(),
        output.status
    );
    stdout.into_owned()
}

/// The arguments that log a client in over TLS, trusting the exported CA.
fn login<'a>(url: &'a str, ca: &'a str, user: &'a str, password: &'a str) -> [&'a str; 8] {
    ["--url", url, "--ca", ca, "--user", user, "--password", password]
}

async fn proton(args: &[&str]) -> String {
    run_client(
        "/usr/bin/python3",
        repo_root().join("tests/interop/proton_client.py"),
        args,
    )
    .await
}

async fn rhea(args: &[&str]) -> String {
    run_client("node", repo_root().join("tests/interop/rhea_client.js"), args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qpid_proton_python_sends_to_and_receives_from_a_queue() {
    let broker = broker().await;
    let url = format!("amqp://{}", broker.addr);
    proton(&["--url", &url, "--address", "orders", "--count", "50"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qpid_proton_python_publishes_to_and_subscribes_on_a_topic() {
    let broker = broker().await;
    let url = format!("amqp://{}", broker.addr);
    proton(&["--url", &url, "--address", "events", "--count", "20", "--topic"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rhea_sends_to_and_receives_from_a_queue() {
    let broker = broker().await;
    let url = format!("amqp://{}", broker.addr);
    rhea(&["--url", &url, "--address", "orders", "--count", "50"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rhea_publishes_to_and_subscribes_on_a_topic() {
    let broker = broker().await;
    let url = format!("amqp://{}", broker.addr);
    rhea(&["--url", &url, "--address", "events", "--count", "20", "--topic"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qpid_proton_is_refused_an_address_outside_the_users_rights() {
    let broker = example_broker().await;
    let (url, ca) = tls_endpoint(&broker);
    let ca = ca.to_str().unwrap();
    let developer = login(&url, ca, "developer", "developer");
    let refused = proton(&[&developer[..], &["--address", "audit", "--expect-refusal"]].concat()).await;
    assert!(refused.contains("amqp:unauthorized-access"), "{refused}");
    assert!(
        refused.contains(r#"user "developer" may not send to address "audit""#),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qpid_proton_with_a_wrong_password_is_refused() {
    let broker = example_broker().await;
    let (url, ca) = tls_endpoint(&broker);
    let ca = ca.to_str().unwrap();
    let output = Command::new("/usr/bin/python3")
        .arg(repo_root().join("tests/interop/proton_client.py"))
        .args(login(&url, ca, "developer", "wrong"))
        .args(["--address", "orders", "--count", "1"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Authentication failed"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qpid_proton_logs_in_with_a_service_account_token_and_gets_that_users_rights() {
    let tokens = std::env::temp_dir().join(format!("enmasse-interop-tokens-{}", std::process::id()));
    std::fs::write(&tokens, "pod-token-1 system:serviceaccount:team1:default\n").unwrap();
    let broker = standalone(
        vec![repo_root().join("examples/gitops")],
        2,
        Some(tokens.clone()),
        None,
    )
    .await;
    let (url, ca) = tls_endpoint(&broker);
    let ca = ca.to_str().unwrap();
    let account = login(&url, ca, "@@serviceaccount@@", "pod-token-1");
    // The application's user may send confirmations, and not send orders.
    proton(
        &[
            &account[..],
            &["--address", "confirmations", "--count", "5", "--send-only"],
        ]
        .concat(),
    )
    .await;
    let refused = proton(&[&account[..], &["--address", "orders", "--expect-refusal"]].concat()).await;
    assert!(
        refused.contains("system:serviceaccount:team1:default"),
        "{refused}"
    );
    let _ = std::fs::remove_file(tokens);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qpid_proton_logs_in_as_the_examples_developer_over_tls_with_the_exported_ca_and_uses_its_queue() {
    let broker = example_broker().await;
    let (url, ca) = tls_endpoint(&broker);
    let ca = ca.to_str().unwrap();
    let developer = login(&url, ca, "developer", "developer");
    proton(&[&developer[..], &["--address", "orders", "--count", "10"]].concat()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rhea_connects_over_tls_with_the_exported_ca() {
    let broker = example_broker().await;
    let (url, ca) = tls_endpoint(&broker);
    let ca = ca.to_str().unwrap();
    let developer = login(&url, ca, "developer", "developer");
    rhea(&[&developer[..], &["--address", "orders", "--count", "10"]].concat()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rhea_logs_in_over_websocket_in_tls_with_the_websocket_export_and_uses_its_queue() {
    let broker = example_broker().await;
    let ca = exported_ca_of(&broker, "websocket-config");
    let url = format!("wss://localhost:{}", broker.wss_addr.port());
    let developer = login(&url, ca.to_str().unwrap(), "developer", "developer");
    rhea(&[&developer[..], &["--address", "orders", "--count", "200"]].concat()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_accepted_just_before_a_client_leaves_are_not_delivered_again() {
    let broker = broker().await;
    let url = format!("amqp://{}", broker.addr);
    // Each run sends its own messages and must get exactly those back: an accept lost when the
    // previous client closed would hand its messages to the next run.
    for run in ["first", "second", "third", "fourth"] {
        proton(&["--url", &url, "--address", "orders", "--count", "5", "--tag", run]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enmasse_bench_runs_over_tls_and_sasl_against_the_example() {
    let broker = example_broker().await;
    let ca = exported_ca(&broker);
    let options = enmasse_client::bench::Options {
        url: format!("amqps://developer:developer@localhost:{}", broker.tls_addr.port()),
        address: "orders".into(),
        count: 2_000,
        size: 16,
        producers: 1,
        consumers: 1,
        window: 100,
        credit: 100,
        presettled: false,
        durable: true,
        rate: None,
        ca: Some(ca),
    };
    let progress = Arc::new(enmasse_client::bench::Progress::default());
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        enmasse_client::bench::run(options, progress),
    )
    .await
    .expect("the bench finished")
    .unwrap();
    assert_eq!(report.received, 2_000);
    assert_eq!(report.refused, 0);
}

/// The behaviour checks of Qpid Proton and of rhea.
const PROTON_SPEC: (&str, &str) = ("/usr/bin/python3", "proton_spec.py");
const RHEA_SPEC: (&str, &str) = ("node", "rhea_spec.js");

/// Runs one AMQP behaviour check with Qpid Proton and with rhea, each against a fresh broker (the
/// checks share the queue `orders`).
async fn spec(case: &str) {
    spec_with(case, &[PROTON_SPEC, RHEA_SPEC]).await;
}

/// Runs one AMQP behaviour check with each of `clients`, each against a fresh broker.
async fn spec_with(case: &str, clients: &[(&str, &str)]) {
    for (program, script) in clients.iter().copied() {
        let broker = broker().await;
        let url = format!("amqp://{}", broker.addr);
        run_client(
            program,
            repo_root().join("tests/interop").join(script),
            &["--url", &url, "--case", case],
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_and_a_receiver_may_share_a_link_name_with_proton_and_rhea() {
    spec("shared-name").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_from_proton_and_rhea_delivers_what_waits_and_then_completes() {
    spec("drain").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_string_body_of_many_frames_from_proton_and_rhea_arrives_intact() {
    spec("large-value").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_from_proton_and_rhea_takes_what_it_selects_and_leaves_the_rest() {
    spec("selector").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_terminus_asked_for_by_proton_and_rhea_is_answered_with_the_one_in_force() {
    spec("durable-terminus").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_of_proton_and_rhea_sees_the_queue_and_leaves_it_to_the_consumers() {
    spec("browse").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proton_and_rhea_are_offered_an_idle_time_out() {
    spec("idle-offer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_of_proton_commits_and_rolls_back() {
    // rhea has no transaction API; Proton's own tx examples run in proton_examples.rs too.
    spec_with("transaction", &[PROTON_SPEC]).await;
}

/// Proton's request/response is Proton's own example suite (`client_server` in
/// `proton_examples.rs`); this is rhea's, client and server in one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rhea_request_and_response_go_through_a_temporary_queue_and_the_anonymous_relay() {
    spec_with("request-response", &[RHEA_SPEC]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_subscription_of_proton_and_rhea_keeps_what_was_published_while_away() {
    spec("durable-subscription").await;
}
