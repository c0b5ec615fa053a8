//! Authorization at attach, revocation of live links, and isolation between address spaces.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod common;

use std::{sync::Arc, time::Duration};

use common::{address, config, within};
use enmasse_auth::authenticator::{RefuseAll, for_config, password_credential};
use enmasse_broker::{
    broker::{Broker, Settings},
    management::{Control, Pushed},
};
use enmasse_types::{
    broker_config::{BrokerConfig, BrokerUser, Credential, PasswordKeys},
    resources::{
        address::AddressType,
        authentication_service::AuthenticationServiceType,
        messaging_user::{AuthorizationRule, Operation},
    },
};
use fe2o3_amqp::{Connection, Receiver, Sender, Session};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A standard space with the queues `orders` and `audit`, and `alice` (password `secret`) holding
/// `operations` on `orders`.
fn space(operations: &[Operation]) -> BrokerConfig {
    let mut config = config(vec![
        address("orders", AddressType::Queue),
        address("audit", AddressType::Queue),
    ]);
    config.space.authentication.type_ = AuthenticationServiceType::Standard;
    if !operations.is_empty() {
        config.users.push(BrokerUser {
            resource: "app.alice".into(),
            username: "alice".into(),
            credential: Credential::Password {
                keys: None,
                namespace: "team1".into(),
            },
            authorization: vec![AuthorizationRule {
                operations: operations.to_vec(),
                addresses: vec!["orders".into()],
            }],
        });
    }
    config
}

fn apply(broker: &Broker, config: BrokerConfig) {
    let authenticator = for_config(&config, None, |_| Some(b"secret".to_vec()));
    broker.apply(config, authenticator);
}

async fn start(config: BrokerConfig) -> (Arc<Broker>, String, CancellationToken) {
    let broker = Broker::new(
        // These tests log in with PLAIN over plain TCP on loopback.
        Settings {
            plain_without_tls: true,
            ..Settings::default()
        },
        Arc::new(RefuseAll::new("not configured".into())),
    );
    apply(&broker, config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(enmasse_broker::server::run(
        listener,
        broker.clone(),
        shutdown.clone(),
    ));
    (broker, format!("amqp://alice:secret@{addr}"), shutdown)
}

#[tokio::test]
async fn each_direction_needs_its_own_right() {
    let (_broker, url, _shutdown) = start(space(&[Operation::Send])).await;
    let mut connection = Connection::open("alice", url.as_str()).await.unwrap();
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut sender = Sender::attach(&mut session, "s", "orders").await.unwrap();
    within("send", sender.send("order")).await.unwrap();
    // Each refusal on a session of its own: fe2o3's client cannot attach again on a session that
    // had an attach refused (Qpid Proton can, see the interop tests).
    let mut second = Session::begin(&mut connection).await.unwrap();
    let refused = Receiver::attach(&mut second, "r", "orders").await.unwrap_err();
    let text = format!("{refused:?}");
    assert!(
        text.contains("UnauthorizedAccess") && text.contains("may not receive from"),
        "{text}"
    );
    let mut third = Session::begin(&mut connection).await.unwrap();
    let refused = Sender::attach(&mut third, "s2", "audit").await.unwrap_err();
    assert!(
        format!("{refused:?}").contains("UnauthorizedAccess"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_right_taken_away_detaches_the_link_that_used_it_within_a_second() {
    let (broker, url, _shutdown) = start(space(&[Operation::Send, Operation::Recv])).await;
    let mut connection = Connection::open("alice", url.as_str()).await.unwrap();
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut sender = Sender::attach(&mut session, "s", "orders").await.unwrap();
    let mut receiver = Receiver::attach(&mut session, "r", "orders").await.unwrap();

    apply(&broker, space(&[Operation::Recv]));
    let detached = tokio::time::timeout(Duration::from_secs(1), sender.on_detach())
        .await
        .expect("detached within a second");
    let text = format!("{detached:?}");
    assert!(
        text.contains("UnauthorizedAccess") && text.contains("may no longer send to"),
        "{text}"
    );

    // The receiver keeps its right and keeps working.
    let (_c2, mut session2) = {
        let mut c = Connection::open("alice2", url.as_str()).await.unwrap();
        let s = Session::begin(&mut c).await.unwrap();
        (c, s)
    };
    assert!(
        Sender::attach(&mut session2, "s3", "orders").await.is_err(),
        "no new sender either"
    );
    apply(&broker, space(&[Operation::Send, Operation::Recv]));
    // fe2o3's client cannot attach again on a session that had an attach refused (Qpid Proton can,
    // see the interop tests), so the next sender gets a session of its own.
    let mut session3 = Session::begin(&mut connection).await.unwrap();
    let mut again = Sender::attach(&mut session3, "s4", "orders").await.unwrap();
    within("send", again.send("still here")).await.unwrap();
    let delivery = within("receive", receiver.recv::<String>()).await.unwrap();
    assert_eq!(delivery.body(), "still here");

    // A deleted user loses every link.
    apply(&broker, space(&[]));
    let err = tokio::time::timeout(Duration::from_secs(1), receiver.recv::<String>())
        .await
        .expect("detached")
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("may no longer receive from"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_user_of_one_address_space_cannot_reach_another() {
    let (_a, url_a, _s1) = start(space(&[Operation::Send])).await;
    let mut other = space(&[]);
    other.space.name = "other".into();
    let (_b, url_b, _s2) = start(other).await;
    assert!(Connection::open("alice", url_a.as_str()).await.is_ok());
    assert!(
        Connection::open("alice", url_b.as_str()).await.is_err(),
        "alice is not a user of space other"
    );
}

#[tokio::test]
async fn a_peer_that_keeps_guessing_is_slowed_down() {
    let (_broker, url, _shutdown) = start(space(&[Operation::Send])).await;
    let wrong = url.replace("alice:secret", "alice:guess");
    for _ in 0..enmasse_broker::throttle::FREE_FAILURES {
        assert!(Connection::open("guess", wrong.as_str()).await.is_err());
    }
    let started = std::time::Instant::now();
    assert!(Connection::open("guess", wrong.as_str()).await.is_err());
    assert!(
        started.elapsed() >= enmasse_broker::throttle::FIRST_DELAY,
        "{:?}",
        started.elapsed()
    );
    // The right password still gets in, after the wait, and clears the record.
    assert!(Connection::open("alice", url.as_str()).await.is_ok());
    let started = std::time::Instant::now();
    assert!(Connection::open("alice", url.as_str()).await.is_ok());
    assert!(started.elapsed() < enmasse_broker::throttle::FIRST_DELAY);
}

#[tokio::test]
async fn a_password_is_not_asked_for_in_clear_unless_allowed() {
    let broker = Broker::new(
        Settings::default(),
        Arc::new(RefuseAll::new("not configured".into())),
    );
    apply(&broker, space(&[Operation::Send]));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(enmasse_broker::server::run(listener, broker, shutdown.clone()));
    let refused = Connection::open("alice", format!("amqp://alice:secret@{addr}").as_str()).await;
    assert!(refused.is_err(), "PLAIN is not offered without TLS");
    shutdown.cancel();
}

#[tokio::test]
async fn a_pushed_config_lets_a_password_user_in_by_its_keys_alone() {
    // What the operator pushes: the password's SCRAM keys, never the password.
    let keys = password_credential("team1", "app.alice", b"secret".to_vec()).to_keys();
    let mut config = space(&[Operation::Send]);
    config.users[0].credential = Credential::Password {
        namespace: "team1".into(),
        keys: Some(keys.clone()),
    };
    let (broker, url, _shutdown) = start(space(&[])).await;
    let pushed = Pushed {
        broker: broker.clone(),
        tokens: None,
        saved: None,
    };
    pushed.apply(config.clone()).unwrap();

    let mut connection = Connection::open("alice", url.as_str()).await.unwrap();
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut sender = Sender::attach(&mut session, "s", "orders").await.unwrap();
    within("send", sender.send("order")).await.unwrap();
    let wrong = url.replace(":secret@", ":guess@");
    assert!(Connection::open("mallory", wrong.as_str()).await.is_err());

    // Keys that cannot be used are refused with the user's name, and the config in force stays.
    let mut broken = config;
    broken.users[0].credential = Credential::Password {
        namespace: "team1".into(),
        keys: Some(PasswordKeys {
            stored_key: "not base64!".into(),
            ..keys
        }),
    };
    let refused = pushed.apply(broken).unwrap_err();
    assert!(
        refused.contains("app.alice") && refused.contains("storedKey"),
        "{refused}"
    );
    assert!(Connection::open("alice-again", url.as_str()).await.is_ok());
}

/// A login as `user` with `password`, from the loopback address `from`.
async fn login_from(addr: std::net::SocketAddr, from: [u8; 4], user: &str, password: &str) -> bool {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::from((from, 0))).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    Connection::builder()
        .container_id("guess")
        .sasl_profile(fe2o3_amqp::sasl_profile::SaslProfile::Plain {
            username: user.to_owned(),
            password: password.to_owned(),
        })
        .open_with_stream(stream)
        .await
        .is_ok()
}

#[tokio::test]
async fn guessing_one_users_password_from_many_addresses_is_slowed_down_too() {
    let (_broker, url, _shutdown) = start(space(&[Operation::Send])).await;
    let addr: std::net::SocketAddr = url.rsplit_once('@').unwrap().1.parse().unwrap();
    // One guess from each of several addresses: no address fails often enough to be slowed.
    for n in 0..=enmasse_broker::throttle::FREE_FAILURES as u8 {
        assert!(!login_from(addr, [127, 0, 1, n + 1], "alice", "guess").await);
    }
    let started = std::time::Instant::now();
    assert!(!login_from(addr, [127, 0, 2, 1], "alice", "guess").await);
    assert!(
        started.elapsed() >= enmasse_broker::throttle::FIRST_DELAY,
        "the username takes turns whatever the address: {:?}",
        started.elapsed()
    );
    // Another user, from yet another address, is not slowed.
    let started = std::time::Instant::now();
    assert!(!login_from(addr, [127, 0, 3, 1], "bob", "guess").await);
    assert!(
        started.elapsed() < enmasse_broker::throttle::FIRST_DELAY,
        "{:?}",
        started.elapsed()
    );
}
