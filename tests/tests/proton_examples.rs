//! Qpid Proton's own example suite (`test_examples.py`, shipped in Debian's
//! `libqpid-proton11-dev-examples`) against the broker: a conformance test nobody here wrote.
//!
//! The suite expects a broker on `localhost:5672` serving a queue `examples`, so each example
//! runs against a fresh broker on that port, one after another. The peers are installed by
//! `cargo xtask test`; a missing suite fails this test, it never skips it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::{path::Path, sync::Arc, time::Duration};

use enmasse_auth::authenticator::AcceptAll;
use enmasse_broker::{
    broker::{Broker, Settings},
    server,
};
use enmasse_types::{
    broker_config::{Authentication, BrokerAddress, BrokerConfig, SpaceConfig},
    resources::{
        address::AddressType, address_space::AddressSpaceType,
        authentication_service::AuthenticationServiceType,
    },
};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

const EXAMPLES: &str = "/usr/share/proton/examples/python";

/// Every example of the suite that uses a broker; the `direct` ones and tornado's need none.
const PASSING: [&str; 10] = [
    "test_helloworld",
    "test_helloworld_blocking",
    "test_simple_send_recv",
    "test_db_send_recv",
    "test_client_server",
    "test_sync_client_server",
    "test_selected_recv",
    "test_client_server_tx",
    "test_sync_client_server_tx",
    "test_tx_send_tx_recv",
];

fn config() -> BrokerConfig {
    BrokerConfig {
        space: SpaceConfig::new(
            "examples",
            "examples",
            AddressSpaceType::Standard,
            "standard-small",
            Authentication {
                service: "none-authservice".into(),
                type_: AuthenticationServiceType::None,
            },
        ),
        addresses: [BrokerAddress::new(
            "examples.examples",
            "examples",
            AddressType::Queue,
            "plan",
        )]
        .into(),
        users: vec![],
    }
}

/// Runs one example test of the suite against a fresh broker on `localhost:5672`.
async fn run_example(test: &str, scratch: &Path) -> Result<(), String> {
    let broker = Broker::new(Settings::default(), Arc::new(AcceptAll));
    broker.apply(config(), Arc::new(AcceptAll));
    let listener = server::bind("127.0.0.1:5672".parse().unwrap())
        .map_err(|e| format!("port 5672 is needed by Proton's suite and is not free: {e}"))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(enmasse_broker::housekeeping::run(
        broker.clone(),
        shutdown.clone(),
    ));
    let serving = tokio::spawn(server::run(listener, broker, shutdown.clone()));
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new("/usr/bin/python3")
            .args([
                "-m",
                "unittest",
                "-v",
                &format!("test_examples.ExamplesTest.{test}"),
            ])
            // The examples run as scripts found on PATH: Debian's python3 must come first.
            .env("PATH", "/usr/bin:/bin")
            .env("PYTHONPATH", EXAMPLES)
            .current_dir(scratch)
            .kill_on_drop(true)
            .output(),
    )
    .await;
    shutdown.cancel();
    let _ = serving.await;
    let output = output
        .map_err(|_| format!("{test} hung for 120 s (a lost credit, disposition or settlement)"))?
        .map_err(|e| format!("failed to start Debian's python3 for {test}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{test} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qpid_protons_example_suite_passes_against_the_broker() {
    assert!(
        Path::new(EXAMPLES).join("test_examples.py").is_file(),
        "Proton's example suite is missing: `cargo xtask test` installs libqpid-proton11-dev-examples"
    );
    let scratch = std::env::temp_dir().join(format!("enmasse-proton-examples-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let mut failures = Vec::new();
    for test in PASSING {
        if let Err(failure) = run_example(test, &scratch).await {
            failures.push(failure);
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
