//! The `enmasse` binary as a developer runs it: a send/receive round trip against the standalone
//! broker, `validate` on good and broken manifests, and `status`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::process::Output;

use tests::{
    repo_root,
    standalone::{Running, standalone},
};
use tokio::process::Command;

async fn broker() -> Running {
    standalone(
        vec![
            repo_root().join("examples/gitops/infra"),
            repo_root().join("tests/fixtures/client"),
        ],
        2,
        None,
        None,
    )
    .await
}

async fn enmasse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_enmasse"))
        .args(args)
        .env_remove("ENMASSE_URL")
        .env_remove("ENMASSE_PASSWORD")
        .output()
        .await
        .unwrap()
}

/// `enmasse send` of one message to `address` through the broker's export, as alice with `password`.
async fn send_as_alice(broker: &Running, password: &str, address: &str, extra: &[&str]) -> Output {
    let export = broker.data_dir.join("exports/client-config.yaml");
    let mut args = vec![
        "send",
        "--export",
        export.to_str().unwrap(),
        "--username",
        "alice",
        "--password",
        password,
        "--address",
        address,
        "--body",
        "over tls",
    ];
    args.extend_from_slice(extra);
    enmasse(&args).await
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn what_send_sends_receive_prints_one_body_per_line() {
    let broker = broker().await;
    let url = format!("amqp://alice:alice-password@{}", broker.addr);
    let sent = enmasse(&[
        "send",
        "--url",
        &url,
        "--address",
        "orders",
        "--count",
        "5",
        "--body",
        "hello",
    ])
    .await;
    assert!(sent.status.success(), "{}", stderr(&sent));
    assert_eq!(stdout(&sent), "sent 5 to orders: 5 accepted\n");

    let received = enmasse(&["receive", "--url", &url, "--address", "orders", "--count", "5"]).await;
    assert!(received.status.success(), "{}", stderr(&received));
    assert_eq!(stdout(&received), "hello\n".repeat(5));

    // Nothing is left: asking for one more waits out its timeout, says so and fails.
    let empty = enmasse(&[
        "receive",
        "--url",
        &url,
        "--address",
        "orders",
        "--timeout",
        "1",
        "--output",
        "json",
    ])
    .await;
    assert!(!empty.status.success());
    assert_eq!(stderr(&empty), "received 0 of 1 messages from orders within 1s\n");
    let json: serde_json::Value = serde_json::from_str(&stdout(&empty)).unwrap();
    assert_eq!(json["messages"], serde_json::json!([]));
}

#[tokio::test]
async fn send_over_tls_from_the_export_and_refusals_fail_with_the_reason() {
    let broker = broker().await;
    let sent = send_as_alice(&broker, "alice-password", "orders", &["--output", "json"]).await;
    assert!(sent.status.success(), "{}", stderr(&sent));
    let json: serde_json::Value = serde_json::from_str(&stdout(&sent)).unwrap();
    assert_eq!(json["accepted"], 1);

    let refused = send_as_alice(&broker, "alice-password", "elsewhere", &[]).await;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).starts_with(
            "error: the broker refused to let this client send to elsewhere: amqp:unauthorized-access"
        ),
        "{}",
        stderr(&refused)
    );
    let wrong = send_as_alice(&broker, "wrong", "orders", &[]).await;
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("refused the login of alice"),
        "{}",
        stderr(&wrong)
    );
}

#[tokio::test]
async fn validate_passes_the_examples_and_names_file_line_field_and_value_of_a_broken_manifest() {
    let examples = repo_root().join("examples/gitops");
    let good = enmasse(&["validate", examples.to_str().unwrap()]).await;
    assert!(good.status.success(), "{}", stdout(&good));
    assert!(
        stdout(&good).ends_with("resources: 0 errors, 0 warnings\n"),
        "{}",
        stdout(&good)
    );

    let dir = std::env::temp_dir().join(format!("enmasse-cli-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("addresses.yaml");
    std::fs::write(
        &broken,
        "apiVersion: enmasse.io/v1beta1\nkind: Address\nmetadata:\n  name: app.orders\n  namespace: team1\nspec:\n  address: orders\n  type: queu\n  plan: standard-small-queue\n",
    )
    .unwrap();
    let bad = enmasse(&[
        "validate",
        examples.join("infra").to_str().unwrap(),
        dir.to_str().unwrap(),
    ])
    .await;
    assert!(!bad.status.success());
    let out = stdout(&bad);
    let line = out.lines().next().unwrap();
    assert!(
        line.starts_with(&format!("{}:1: error: Address app.orders: ", broken.display())),
        "{out}"
    );
    assert!(line.contains("spec.type") && line.contains("queu"), "{out}");
    assert!(out.ends_with("1 error, 0 warnings\n"), "{out}");
}

#[tokio::test]
async fn status_lists_the_space_its_addresses_and_users_with_their_phase() {
    let broker = broker().await;
    let management = broker.management_addr.to_string();
    let status = enmasse(&["status", "--management", &management]).await;
    assert!(status.status.success(), "{}", stderr(&status));
    let out = stdout(&status);
    assert!(out.starts_with("serving tests/client (revision "), "{out}");
    for row in [
        "AddressSpace   client",
        "Address        client.orders",
        "Address        client.work",
        "MessagingUser  client.alice",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("{row}: {out}"));
        assert!(line.contains("Active"), "{line}");
    }
    let json = enmasse(&["status", "--management", &management, "--output", "json"]).await;
    let value: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(value["manifests"]["addressSpace"], "tests/client");

    let unreachable = enmasse(&["status", "--management", "127.0.0.1:1"]).await;
    assert!(!unreachable.status.success());
    assert_eq!(
        stderr(&unreachable),
        "error: failed to reach the management API at 127.0.0.1:1: Connection refused (os error 111)\n"
    );
}

#[tokio::test]
async fn status_of_a_cluster_without_a_kubeconfig_says_so() {
    let output = Command::new(env!("CARGO_BIN_EXE_enmasse"))
        .args(["status", "--cluster", "--namespace", "team1"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("failed to find a Kubernetes API server"),
        "{}",
        stderr(&output)
    );
}
