//! `addressFullPolicy: PAGE` end to end: a queue takes a backlog far past its memory share, the
//! broker's memory stays within `globalMaxSize`, and every message comes back in order.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod common;

use std::{sync::Arc, time::Duration};

use common::{address, config, start_with, within};
use enmasse_auth::authenticator::AcceptAll;
use enmasse_broker::{
    broker::{Broker, Settings},
    journal::{Journal, JournalOptions},
    recovery,
};
use enmasse_types::resources::{address::AddressType, infra_config::AddressFullPolicy};
use fe2o3_amqp::{
    Receiver, Sender,
    types::messaging::{Header, Message},
};

const BACKLOG: usize = 20_000;
const GLOBAL: u64 = 256 * 1024;

#[tokio::test]
async fn a_queue_pages_a_backlog_past_the_global_max_size_and_serves_it_back_in_order() {
    let paging = std::env::temp_dir().join(format!("enmasse-paging-it-{}", std::process::id()));
    let mut orders = address("orders", AddressType::Queue);
    orders.limits.max_depth = 100;
    let mut config = config(vec![orders]);
    config.space.address_full_policy = Some(AddressFullPolicy::Page);
    config.space.global_max_size = Some(GLOBAL);
    let settings = Settings {
        credit_window: 200,
        paging_dir: Some(paging.clone()),
        ..Settings::default()
    };
    let broker = start_with(settings, config).await;
    let budget = broker.broker.table().budget().clone();

    let (_connection, mut session) = broker.client().await;
    let mut sender = Sender::attach(&mut session, "s", "orders").await.unwrap();
    let body = "x".repeat(100);
    let mut peak = 0;
    for i in 0..BACKLOG {
        let outcome = within("accepted", sender.send(format!("{i:06}{body}")))
            .await
            .unwrap();
        assert!(outcome.is_accepted(), "{outcome:?}");
        peak = peak.max(budget.used());
    }
    assert!(peak <= GLOBAL, "memory stayed within globalMaxSize: {peak}");
    let orders = broker.broker.table().get("orders").unwrap();
    assert_eq!(
        orders.depth(),
        BACKLOG as u64,
        "the depth bound is a memory share, not a limit"
    );
    assert!(
        std::fs::read_dir(&paging).unwrap().next().is_some(),
        "a page on disk"
    );

    let mut receiver = Receiver::attach(&mut session, "r", "orders").await.unwrap();
    for i in 0..BACKLOG {
        let delivery = within("a paged message", receiver.recv::<String>())
            .await
            .unwrap();
        assert_eq!(&delivery.body()[..6], format!("{i:06}"), "in order");
        receiver.accept(&delivery).await.unwrap();
        peak = peak.max(budget.used());
    }
    assert!(
        peak <= GLOBAL + 16 * 1024,
        "reading back stays within it too: {peak}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(orders.depth(), 0);
    assert!(
        std::fs::read_dir(&paging).unwrap().next().is_none(),
        "the page's files are gone once it is read"
    );
    let _ = std::fs::remove_dir_all(&paging);
}

#[tokio::test]
async fn durable_paged_messages_come_back_after_a_restart_paged_again_and_in_order() {
    let root = std::env::temp_dir().join(format!("enmasse-paging-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut orders = address("orders", AddressType::Queue);
    orders.limits.max_depth = 50;
    let mut config = config(vec![orders]);
    config.space.address_full_policy = Some(AddressFullPolicy::Page);
    let start = |config: enmasse_types::broker_config::BrokerConfig| {
        let root = root.clone();
        async move {
            let (journal, recovery) =
                Journal::open(&root.join("journal"), JournalOptions::default()).unwrap();
            let settings = Settings {
                paging_dir: Some(root.join("paging")),
                ..Settings::default()
            };
            let broker = Broker::with_store(settings, Arc::new(AcceptAll), journal.clone());
            recovery::restore(&broker, recovery);
            broker.apply(config, Arc::new(AcceptAll));
            (common::serve(broker).await, journal)
        }
    };

    let (running, journal) = start(config.clone()).await;
    let (_connection, mut session) = running.client().await;
    let mut sender = Sender::attach(&mut session, "s", "orders").await.unwrap();
    for i in 0..500 {
        let message = Message::builder()
            .header(Header::builder().durable(true).build())
            .value(format!("{i:04}"))
            .build();
        let outcome = within("accepted", sender.send(message)).await.unwrap();
        assert!(outcome.is_accepted(), "{outcome:?}");
    }
    let queue = running.broker.table().get("orders").unwrap();
    assert!(queue.queues()[0].stats().paged > 0, "paged before the restart");
    running.shutdown.cancel();
    journal.sync().await;
    journal.close();

    let (running, journal) = start(config).await;
    let queue = running.broker.table().get("orders").unwrap();
    assert_eq!(queue.depth(), 500);
    assert!(
        queue.queues()[0].stats().paged >= 450,
        "paged again past the share of 50"
    );
    let (_connection, mut session) = running.client().await;
    let mut receiver = Receiver::attach(&mut session, "r", "orders").await.unwrap();
    for i in 0..500 {
        let delivery = within("a recovered message", receiver.recv::<String>())
            .await
            .unwrap();
        assert_eq!(delivery.body(), &format!("{i:04}"));
        receiver.accept(&delivery).await.unwrap();
    }
    running.shutdown.cancel();
    journal.sync().await;
    journal.close();
    let _ = std::fs::remove_dir_all(&root);
}
