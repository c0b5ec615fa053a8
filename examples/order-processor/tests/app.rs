//! The example application against the standalone broker serving the example manifests: orders
//! sent by a requester come back confirmed, each naming its order.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::{process::Stdio, time::Duration};

use enmasse_client::{Backoff, Credentials, Message, MessagingConfig, Requester};
use tests::{
    repo_root,
    standalone::{exported_ca, standalone},
};
use tokio::{io::AsyncReadExt, process::Command};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_confirms_each_order_and_names_it() {
    let broker = standalone(vec![repo_root().join("examples/gitops")], 2, None, None).await;
    // The post's wiring, with the exported CA and the developer's password standing in for the
    // pod's service account.
    let mut app = Command::new(env!("CARGO_BIN_EXE_order-processor"))
        .env("MESSAGING_HOST", "127.0.0.1")
        .env("MESSAGING_PORT", broker.tls_addr.port().to_string())
        .env("MESSAGING_CA_FILE", exported_ca(&broker))
        .env("MESSAGING_USERNAME", "developer")
        .env("MESSAGING_PASSWORD", "developer")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let config = MessagingConfig::new("127.0.0.1", broker.tls_addr.port())
        .tls_ca_file(&exported_ca(&broker))
        .unwrap()
        .credentials(Credentials::Scram {
            username: "developer".into(),
            password: "developer".into(),
        });
    let mut shop = Requester::open(config, "orders", "confirmations", Backoff::default())
        .await
        .unwrap();
    for n in 1..=3 {
        let id = format!("order-{n}");
        let confirmation = shop
            .request(
                Message::text(format!("{n} apples")).message_id(&id),
                Duration::from_secs(20),
            )
            .await
            .unwrap();
        assert_eq!(confirmation.text().as_deref(), Some("Confirmed!"));
        assert_eq!(confirmation.correlation_id(), Some(id));
    }

    let pid = app.id().unwrap().to_string();
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(stopped.success());
    let status = tokio::time::timeout(Duration::from_secs(10), app.wait())
        .await
        .expect("stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    let mut printed = String::new();
    app.stdout
        .take()
        .unwrap()
        .read_to_string(&mut printed)
        .await
        .unwrap();
    assert_eq!(
        printed,
        "confirmed order order-1\nconfirmed order order-2\nconfirmed order order-3\n"
    );
}
