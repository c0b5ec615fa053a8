//! The message store seam: a durable message's delivery is accepted only once the store says the
//! message is safe, and the store forgets it once a consumer settled it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{address, config, serve, within};
use enmasse_auth::authenticator::AcceptAll;
use enmasse_broker::{
    broker::{Broker, Settings},
    message::Message as Stored,
    store::{MessageStore, Persisted, StoreError},
};
use enmasse_types::{broker_config::BrokerAddress, resources::address::AddressType};
use fe2o3_amqp::{
    Connection, Receiver, Sender, Session,
    connection::ConnectionHandle,
    session::SessionHandle,
    types::messaging::{Header, Message, Outcome},
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A store whose writes complete only when the test opens the gate.
#[derive(Debug, Default)]
struct Gated {
    gate: Arc<Notify>,
    persisted: Mutex<Vec<u64>>,
    forgotten: Mutex<Vec<u64>>,
    fail: bool,
}

impl MessageStore for Gated {
    fn persist(&self, _address: &str, message: &Stored) -> Persisted {
        let gate = self.gate.clone();
        let id = message.id;
        self.persisted.lock().unwrap().push(id);
        let fail = self.fail;
        Persisted::Later(Box::pin(async move {
            gate.notified().await;
            if fail {
                Err(StoreError("disk full".into()))
            } else {
                Ok(())
            }
        }))
    }

    fn forget(&self, _address: &str, id: u64) {
        self.forgotten.lock().unwrap().push(id);
    }

    fn forget_address(&self, _address: &str) {}

    fn recount(&self, _address: &str, _message: &Stored) {}

    fn commit(&self, _adds: &[(&str, &Stored)], _removes: &[u64]) -> Persisted {
        Persisted::Now
    }
}

async fn broker_with(store: Arc<Gated>) -> (Arc<Broker>, std::net::SocketAddr, CancellationToken) {
    broker_serving(store, vec![address("orders", AddressType::Queue)]).await
}

async fn broker_serving(
    store: Arc<Gated>,
    addresses: Vec<BrokerAddress>,
) -> (Arc<Broker>, std::net::SocketAddr, CancellationToken) {
    let broker = Broker::with_store(Settings::default(), Arc::new(AcceptAll), store);
    broker.apply(config(addresses), Arc::new(AcceptAll));
    let running = serve(broker).await;
    (running.broker, running.addr, running.shutdown)
}

/// A client connection with a sender to `orders`.
async fn sender_to_orders(addr: std::net::SocketAddr) -> (ConnectionHandle<()>, SessionHandle<()>, Sender) {
    sender_to(addr, "orders").await
}

async fn sender_to(
    addr: std::net::SocketAddr,
    address: &str,
) -> (ConnectionHandle<()>, SessionHandle<()>, Sender) {
    let mut connection = Connection::open("c", format!("amqp://{addr}").as_str())
        .await
        .unwrap();
    let mut session = Session::begin(&mut connection).await.unwrap();
    let sender = Sender::attach(&mut session, "s", address).await.unwrap();
    (connection, session, sender)
}

/// A topic `events` with the subscriptions `audit` and `billing`.
fn topic_with_subscriptions() -> Vec<BrokerAddress> {
    let mut addresses = vec![address("events", AddressType::Topic)];
    for name in ["audit", "billing"] {
        let mut subscription = address(name, AddressType::Subscription);
        subscription.topic = Some("events".to_owned());
        addresses.push(subscription);
    }
    addresses
}

fn depths(broker: &Broker) -> [u64; 2] {
    ["audit", "billing"].map(|name| broker.table().get(name).unwrap().depth())
}

fn durable(body: &str) -> Message<fe2o3_amqp::types::messaging::AmqpValue<String>> {
    Message::builder()
        .header(Header::builder().durable(true).build())
        .value(body.to_owned())
        .build()
}

#[tokio::test]
async fn a_durable_message_is_accepted_only_once_the_store_has_it() {
    let store = Arc::new(Gated::default());
    let (broker, addr, _shutdown) = broker_with(store.clone()).await;
    let (_connection, mut session, mut sender) = sender_to_orders(addr).await;

    let sending = tokio::spawn(async move { sender.send(durable("safe")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !sending.is_finished(),
        "not accepted while the store has not confirmed"
    );
    assert_eq!(
        broker.table().get("orders").unwrap().depth(),
        0,
        "not queued before it is safe"
    );

    store.gate.notify_waiters();
    let outcome = within("accepted", sending).await.unwrap().unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");

    let mut receiver = Receiver::attach(&mut session, "r", "orders").await.unwrap();
    let delivery = within("receive", receiver.recv::<String>()).await.unwrap();
    receiver.accept(&delivery).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(*store.forgotten.lock().unwrap(), *store.persisted.lock().unwrap());
}

#[tokio::test]
async fn a_message_the_store_fails_to_keep_is_released_not_accepted() {
    let store = Arc::new(Gated {
        fail: true,
        ..Gated::default()
    });
    let (broker, addr, _shutdown) = broker_with(store.clone()).await;
    let (_connection, _session, mut sender) = sender_to_orders(addr).await;
    let sending = tokio::spawn(async move { sender.send(durable("lost")).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    store.gate.notify_waiters();
    let outcome = within("settled", sending).await.unwrap().unwrap();
    assert!(matches!(outcome, Outcome::Released(_)), "{outcome:?}");
    assert_eq!(broker.table().get("orders").unwrap().depth(), 0);
}

#[tokio::test]
async fn a_message_that_is_not_durable_never_waits_for_the_store() {
    let store = Arc::new(Gated::default());
    let (_broker, addr, _shutdown) = broker_with(store.clone()).await;
    let (_connection, _session, mut sender) = sender_to_orders(addr).await;
    let outcome = within("accepted at once", sender.send("fleeting")).await.unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)));
    assert!(store.persisted.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_topic_message_is_accepted_once_every_subscription_has_its_copy_safe() {
    let store = Arc::new(Gated::default());
    let (broker, addr, _shutdown) = broker_serving(store.clone(), topic_with_subscriptions()).await;
    let (_connection, _session, mut sender) = sender_to(addr, "events").await;
    let sending = tokio::spawn(async move { sender.send(durable("fan")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!sending.is_finished());
    assert_eq!(depths(&broker), [0, 0], "no copy is queued before it is safe");
    let persisted = store.persisted.lock().unwrap().clone();
    assert_eq!(
        persisted.len(),
        2,
        "one copy per subscription, each with its own id"
    );
    assert_ne!(persisted[0], persisted[1]);

    store.gate.notify_waiters();
    let outcome = within("accepted", sending).await.unwrap().unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");
    assert_eq!(depths(&broker), [1, 1]);
}

#[tokio::test]
async fn a_topic_message_a_copy_of_which_the_store_fails_to_keep_is_released_and_queued_nowhere() {
    let store = Arc::new(Gated {
        fail: true,
        ..Gated::default()
    });
    let (broker, addr, _shutdown) = broker_serving(store.clone(), topic_with_subscriptions()).await;
    let (_connection, _session, mut sender) = sender_to(addr, "events").await;
    let sending = tokio::spawn(async move { sender.send(durable("lost")).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    store.gate.notify_waiters();
    let outcome = within("settled", sending).await.unwrap().unwrap();
    assert!(matches!(outcome, Outcome::Released(_)), "{outcome:?}");
    assert_eq!(depths(&broker), [0, 0]);
    let mut forgotten = store.forgotten.lock().unwrap().clone();
    forgotten.sort_unstable();
    assert_eq!(
        forgotten,
        *store.persisted.lock().unwrap(),
        "whatever the store did keep is forgotten again"
    );
}
