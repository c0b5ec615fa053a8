//! The AMQP engine against a peer that writes frames by hand: hostile input (deep nesting, lying
//! lengths, short and oversized frames, oversized message streams) leaves the broker alive and
//! serving; link names are unique per direction; drain delivers what waits and then completes;
//! the attach reply claims only what the broker does; a silent peer is reaped.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use common::{
    address, config,
    raw::{Raw, data_message},
    start, start_with, within,
};
use enmasse_broker::{
    amqp::{
        encode::Encoder,
        performative::{DeliveryState, Performative, Role, SELECTOR_FILTER as SELECTOR, condition},
    },
    broker::Settings,
};
use enmasse_types::resources::address::AddressType;
use fe2o3_amqp::{Receiver, Sender, types::messaging::Outcome};

/// The broker still serves a real client after what a test sent it.
async fn still_serves(broker: &common::Running) {
    let (_connection, mut session) = broker.client().await;
    let mut sender = Sender::attach(&mut session, "alive", "orders").await.unwrap();
    let outcome = within("send after the attack", sender.send("still here"))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");
}

/// Sends `bodies` to `orders` with a real client, each accepted before the next.
async fn send_all(broker: &common::Running, bodies: impl IntoIterator<Item = String>) {
    let (_connection, mut session) = broker.client().await;
    let mut sender = Sender::attach(&mut session, "s", "orders").await.unwrap();
    for body in bodies {
        within("send", sender.send(body)).await.unwrap();
    }
}

async fn orders() -> common::Running {
    start(config(vec![address("orders", AddressType::Queue)])).await
}

/// Connections of the broker counted open, once they have had a moment to end.
async fn open_connections(broker: &common::Running, expected: u64) -> u64 {
    let mut open = 0;
    for _ in 0..50 {
        open = broker.broker.counters().connections_open.load(Ordering::Relaxed);
        if open == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    open
}

#[tokio::test]
async fn a_begin_nesting_three_thousand_described_values_is_a_decode_error_not_a_crash() {
    let broker = orders().await;
    let mut raw = Raw::open(broker.addr, 65_536, None).await;
    raw.send(0, |e| {
        e.descriptor(0x11);
        let mut l = e.list();
        l.absent();
        l.field(|e| e.uint(0));
        l.field(|e| e.uint(100));
        l.field(|e| e.uint(100));
        l.absent();
        l.absent();
        l.absent();
        l.field(|e| {
            for _ in 0..3000 {
                e.descriptor(1);
            }
            e.null();
        });
        l.end();
    })
    .await;
    let error = raw.close_error().await;
    assert_eq!(error.condition, condition::DECODE_ERROR, "{error}");
    assert!(error.to_string().contains("nest deeper"), "{error}");
    still_serves(&broker).await;
    assert_eq!(open_connections(&broker, 0).await, 0, "no phantom in the gauge");
}

#[tokio::test]
async fn a_string_that_claims_four_gigabytes_in_sixty_bytes_allocates_nothing() {
    let broker = orders().await;
    let mut raw = Raw::session(broker.addr).await;
    // An attach whose name claims 0xFFFFFFF0 bytes and carries 8.
    raw.send(0, |e| {
        e.descriptor(0x12);
        let mut l = e.list();
        l.field(|e| e.raw(&[0xb1, 0xff, 0xff, 0xff, 0xf0]));
        l.field(|e| e.raw(b"12345678"));
        l.end();
    })
    .await;
    let error = raw.close_error().await;
    assert_eq!(error.condition, condition::DECODE_ERROR, "{error}");
    still_serves(&broker).await;
}

#[tokio::test]
async fn frames_whose_size_is_below_their_own_header_are_a_framing_error() {
    let broker = orders().await;
    for size in 4u8..8 {
        let mut raw = Raw::open(broker.addr, 65_536, None).await;
        raw.write(&[0, 0, 0, size, 2, 0, 0, 0]).await;
        let error = raw.close_error().await;
        assert_eq!(error.condition, condition::FRAMING_ERROR, "size {size}: {error}");
    }
    still_serves(&broker).await;
    assert_eq!(open_connections(&broker, 0).await, 0);
}

#[tokio::test]
async fn a_frame_larger_than_the_max_frame_size_is_refused_before_it_is_read() {
    let broker = orders().await;
    let mut raw = Raw::open(broker.addr, 65_536, None).await;
    // It claims 1 GiB and sends a header only.
    raw.write(&[0x40, 0, 0, 0, 2, 0, 0, 0]).await;
    let error = raw.close_error().await;
    assert_eq!(error.condition, condition::FRAMING_ERROR, "{error}");
    assert!(error.to_string().contains("max-frame-size"), "{error}");
    still_serves(&broker).await;
}

#[tokio::test]
async fn a_message_stream_over_the_limit_is_refused_at_the_frame_that_crosses_it() {
    let mut small = address("orders", AddressType::Queue);
    small.limits.max_message_size = 10_000;
    let broker = start(config(vec![small])).await;
    let mut raw = Raw::session(broker.addr).await;
    let attach = raw.attach("big", 0, Role::Sender, "orders").await;
    let Performative::Attach(reply) = attach.performative() else {
        unreachable!()
    };
    assert_eq!(reply.max_message_size, Some(10_000), "the limit is announced");
    raw.next_of("credit", |p| matches!(p, Performative::Flow(_)))
        .await;

    // 4 KiB frames: the third crosses 10,000 bytes.
    let message = data_message(1 << 20);
    let mut chunks = message.chunks(4096);
    raw.transfer(0, Some(0), true, chunks.next().unwrap()).await;
    raw.transfer(0, None, true, chunks.next().unwrap()).await;
    raw.transfer(0, None, true, chunks.next().unwrap()).await;
    let refused = raw
        .next_of("disposition", |p| matches!(p, Performative::Disposition(_)))
        .await;
    let Performative::Disposition(disposition) = refused.performative() else {
        unreachable!()
    };
    assert_eq!(disposition.first, 0);
    let Some(DeliveryState::Rejected(Some(error))) = disposition.state else {
        panic!("{disposition:?}")
    };
    assert_eq!(error.condition, condition::MESSAGE_SIZE_EXCEEDED);

    // The rest of the megabyte is dropped unread; the next message is taken.
    let rest: Vec<&[u8]> = chunks.collect();
    for (i, chunk) in rest.iter().enumerate() {
        raw.transfer(0, None, i + 1 < rest.len(), chunk).await;
    }
    raw.transfer(0, Some(1), false, &data_message(100)).await;
    let accepted = raw
        .next_of("disposition", |p| matches!(p, Performative::Disposition(_)))
        .await;
    let Performative::Disposition(disposition) = accepted.performative() else {
        unreachable!()
    };
    assert_eq!(
        (disposition.first, disposition.state),
        (1, Some(DeliveryState::Accepted))
    );
    assert_eq!(broker.broker.table().get("orders").unwrap().depth(), 1);
}

#[tokio::test]
async fn a_value_body_of_many_frames_arrives_intact() {
    let broker = orders().await;
    let (_connection, mut session) = broker.client().await;
    let body = "0123456789".repeat(30_000);
    let mut sender = Sender::attach(&mut session, "s", "orders").await.unwrap();
    let outcome = within("send 300 KB", sender.send(body.clone())).await.unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");
    let mut receiver = Receiver::attach(&mut session, "r", "orders").await.unwrap();
    let delivery = within("receive 300 KB", receiver.recv::<String>()).await.unwrap();
    assert_eq!(delivery.body(), &body);
    receiver.accept(&delivery).await.unwrap();
}

#[tokio::test]
async fn a_sender_and_a_receiver_may_share_a_link_name() {
    let broker = orders().await;
    let mut raw = Raw::session(broker.addr).await;
    let receiver = raw.attach("same", 0, Role::Receiver, "orders").await;
    let sender = raw.attach("same", 1, Role::Sender, "orders").await;
    for frame in [receiver, sender] {
        let Performative::Attach(reply) = frame.performative() else {
            unreachable!()
        };
        assert!(
            reply.source.is_some() && reply.target.is_some(),
            "attached: {reply:?}"
        );
    }
    // The same name twice in one direction is refused, and the session goes on.
    let again = raw.attach("same", 2, Role::Sender, "orders").await;
    let Performative::Attach(reply) = again.performative() else {
        unreachable!()
    };
    assert!(reply.target.is_none(), "refused: {reply:?}");
}

#[tokio::test]
async fn drain_delivers_what_is_waiting_and_then_completes() {
    let broker = orders().await;
    send_all(&broker, (0..3).map(|i| format!("m{i}"))).await;
    let mut raw = Raw::session(broker.addr).await;
    raw.attach("r", 0, Role::Receiver, "orders").await;
    raw.flow(0, 0, 10, true).await;
    for _ in 0..3 {
        raw.next_of("transfer", |p| matches!(p, Performative::Transfer(_)))
            .await;
    }
    let flow = raw.next_of("flow", |p| matches!(p, Performative::Flow(_))).await;
    let Performative::Flow(flow) = flow.performative() else {
        unreachable!()
    };
    assert_eq!(
        (flow.delivery_count, flow.link_credit, flow.drain),
        (Some(10), Some(0), true),
        "three sent, the other seven given up: {flow:?}"
    );
}

/// An attach of a receiving peer whose source asks for a filter (by its descriptor, with a string
/// value, under the key `jms-selector`), browsing, or a durable terminus that never expires.
async fn attach_source(
    raw: &mut Raw,
    address: &str,
    handle: u32,
    durable: u32,
    mode: Option<&str>,
    filter: Option<(u64, &str)>,
) -> Performative<'static> {
    raw.send(0, |e| {
        e.descriptor(0x12);
        let mut l = e.list();
        l.field(|e| e.string(&format!("r{handle}")));
        l.field(|e| e.uint(handle));
        l.field(|e| e.bool(true));
        l.absent();
        l.absent();
        l.field(|e: &mut Encoder<'_>| {
            e.descriptor(0x28);
            let mut s = e.list();
            s.field(|e| e.string(address));
            s.field(|e| e.uint(durable));
            s.field(|e| e.symbol("never"));
            s.absent();
            s.absent();
            s.absent();
            s.optional(mode, Encoder::symbol);
            if let Some((descriptor, text)) = filter {
                s.field(|e| {
                    e.map(|m| {
                        m.entry(
                            |e| e.symbol("jms-selector"),
                            |e| {
                                e.descriptor(descriptor);
                                e.string(text);
                            },
                        )
                    })
                });
            }
            s.end();
        });
        l.end();
    })
    .await;
    let frame = raw
        .next_of("attach", |p| matches!(p, Performative::Attach(_)))
        .await;
    match frame.performative() {
        Performative::Attach(attach) => Performative::Attach(attach),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn the_attach_reply_claims_only_what_the_broker_does() {
    let broker = orders().await;
    let mut raw = Raw::session(broker.addr).await;

    let Performative::Attach(durable) = attach_source(&mut raw, "orders", 0, 2, None, None).await else {
        unreachable!()
    };
    let source = durable.source.expect("attached");
    assert_eq!(
        source.durable, 0,
        "the broker keeps no terminus state: {source:?}"
    );
    assert_eq!(source.distribution_mode.as_deref(), Some("move"));

    let Performative::Attach(selector) = attach_source(
        &mut raw,
        "orders",
        1,
        0,
        None,
        Some((SELECTOR, "colour = 'green'")),
    )
    .await
    else {
        unreachable!()
    };
    let source = selector.source.expect("a selector is applied");
    assert_eq!(
        source.selector(),
        Some("colour = 'green'"),
        "the reply names the selector in force: {source:?}"
    );

    let Performative::Attach(unknown) =
        attach_source(&mut raw, "orders", 3, 0, None, Some((0x0000_468C_0000_0001, "x"))).await
    else {
        unreachable!()
    };
    assert!(
        unknown.source.is_none(),
        "a filter the broker does not apply is refused"
    );
    let error = detach_error(&mut raw).await;
    assert_eq!(error.condition, condition::NOT_IMPLEMENTED);
    assert!(error.to_string().contains("jms-selector"), "{error}");

    let Performative::Attach(broken) =
        attach_source(&mut raw, "orders", 4, 0, None, Some((SELECTOR, "colour = "))).await
    else {
        unreachable!()
    };
    assert!(
        broken.source.is_none(),
        "a selector that does not parse is refused"
    );
    let error = detach_error(&mut raw).await;
    assert_eq!(error.condition, condition::INVALID_FIELD);
    assert!(error.to_string().contains("column"), "{error}");

    let Performative::Attach(browse) = attach_source(&mut raw, "orders", 2, 0, Some("copy"), None).await
    else {
        unreachable!()
    };
    let source = browse.source.expect("a queue may be browsed");
    assert_eq!(source.distribution_mode.as_deref(), Some("copy"));
}

/// The error of the next detach.
async fn detach_error(raw: &mut Raw) -> enmasse_broker::amqp::performative::ErrorInfo {
    let detach = raw
        .next_of("detach", |p| matches!(p, Performative::Detach(_)))
        .await;
    let Performative::Detach(detach) = detach.performative() else {
        unreachable!()
    };
    detach.error.expect("the detach names why")
}

/// The next message a browser is shown: settled, with the body `expected`.
async fn shown(raw: &mut Raw, expected: &str) {
    let frame = raw
        .next_of("transfer", |p| matches!(p, Performative::Transfer(_)))
        .await;
    let Performative::Transfer(transfer) = frame.performative() else {
        unreachable!()
    };
    assert_eq!(transfer.settled, Some(true), "a browser's copies are settled");
    assert!(
        frame.payload().ends_with(expected.as_bytes()),
        "{expected:?} next"
    );
}

#[tokio::test]
async fn a_browser_is_shown_every_waiting_message_and_leaves_them_to_the_consumers() {
    let broker = orders().await;
    send_all(&broker, (0..3).map(|i| format!("m{i}"))).await;
    let mut raw = Raw::session(broker.addr).await;
    attach_source(&mut raw, "orders", 0, 0, Some("copy"), None).await;
    raw.flow(0, 0, 10, false).await;
    for i in 0..3 {
        shown(&mut raw, &format!("m{i}")).await;
    }
    // A message that arrives while the browser waits is shown too.
    send_all(&broker, ["m3".to_owned()]).await;
    shown(&mut raw, "m3").await;
    assert_eq!(
        broker.broker.table().get("orders").unwrap().depth(),
        4,
        "nothing was taken"
    );

    let (_connection, mut session) = broker.client().await;
    let mut receiver = Receiver::attach(&mut session, "r", "orders").await.unwrap();
    for i in 0..4 {
        let delivery = within("consume", receiver.recv::<String>()).await.unwrap();
        assert_eq!(
            delivery.body(),
            &format!("m{i}"),
            "in order, none locked by the browser"
        );
        receiver.accept(&delivery).await.unwrap();
    }
}

#[tokio::test]
async fn browsing_a_topic_is_refused_as_not_implemented() {
    let broker = start(config(vec![address("events", AddressType::Topic)])).await;
    let mut raw = Raw::session(broker.addr).await;
    let Performative::Attach(reply) = attach_source(&mut raw, "events", 0, 0, Some("copy"), None).await
    else {
        unreachable!()
    };
    assert!(reply.source.is_none(), "refused");
    let detach = raw
        .next_of("detach", |p| matches!(p, Performative::Detach(_)))
        .await;
    let Performative::Detach(detach) = detach.performative() else {
        unreachable!()
    };
    assert_eq!(detach.error.unwrap().condition, condition::NOT_IMPLEMENTED);
}

#[tokio::test]
async fn a_coordinator_for_distributed_transactions_is_refused_and_the_connection_goes_on() {
    let broker = orders().await;
    let mut raw = Raw::session(broker.addr).await;
    raw.send(0, |e| {
        e.descriptor(0x12);
        let mut l = e.list();
        l.field(|e| e.string("txn"));
        l.field(|e| e.uint(0));
        l.field(|e| e.bool(false));
        l.absent();
        l.absent();
        l.field(|e| {
            e.descriptor(0x28);
            e.list().end();
        });
        l.field(|e| {
            e.descriptor(0x30);
            let mut c = e.list();
            c.field(|e| e.symbols(&["amqp:distributed-transactions"]));
            c.end();
        });
        l.end();
    })
    .await;
    let detach = raw
        .next_of("detach", |p| matches!(p, Performative::Detach(_)))
        .await;
    let Performative::Detach(detach) = detach.performative() else {
        unreachable!()
    };
    let error = detach.error.unwrap();
    assert_eq!(error.condition, condition::NOT_IMPLEMENTED);
    assert!(error.to_string().contains("only local transactions"), "{error}");
    let next = raw.attach("after", 1, Role::Sender, "orders").await;
    let Performative::Attach(reply) = next.performative() else {
        unreachable!()
    };
    assert!(reply.target.is_some());
}

#[tokio::test]
async fn a_silent_peer_is_closed_once_the_idle_time_out_it_was_offered_passes() {
    let settings = Settings {
        idle_timeout: Duration::from_millis(300),
        ..Settings::default()
    };
    let broker = start_with(settings, config(vec![address("orders", AddressType::Queue)])).await;
    let mut raw = Raw::open(broker.addr, 65_536, Some(100)).await;
    let error = raw.close_error().await;
    assert_eq!(error.condition, condition::RESOURCE_LIMIT_EXCEEDED, "{error}");
    assert_eq!(open_connections(&broker, 0).await, 0);
}

#[tokio::test]
async fn a_drain_completes_even_when_the_peer_holds_all_the_unsettled_messages_allowed() {
    let settings = Settings {
        max_in_flight: 2,
        ..Settings::default()
    };
    let broker = start_with(settings, config(vec![address("orders", AddressType::Queue)])).await;
    send_all(&broker, (0..5).map(|i| format!("m{i}"))).await;
    let mut raw = Raw::session(broker.addr).await;
    raw.attach("r", 0, Role::Receiver, "orders").await;
    raw.flow(0, 0, 10, false).await;
    for _ in 0..2 {
        raw.next_of("transfer", |p| matches!(p, Performative::Transfer(_)))
            .await;
    }
    // Two unsettled: the link may send no more. A drain is still answered.
    raw.flow(0, 2, 8, true).await;
    let flow = raw.next_of("flow", |p| matches!(p, Performative::Flow(_))).await;
    let Performative::Flow(flow) = flow.performative() else {
        unreachable!()
    };
    assert_eq!(
        (flow.delivery_count, flow.link_credit, flow.drain),
        (Some(10), Some(0), true)
    );
}

#[tokio::test]
async fn a_peer_that_asks_for_a_heartbeat_every_millisecond_does_not_make_the_broker_spin() {
    let broker = orders().await;
    let mut raw = Raw::open(broker.addr, 65_536, Some(1)).await;
    let mut received = 0;
    let mut chunk = [0u8; 4096];
    let until = tokio::time::Instant::now() + Duration::from_millis(1200);
    while let Ok(Ok(n)) =
        tokio::time::timeout_at(until, tokio::io::AsyncReadExt::read(&mut raw.stream, &mut chunk)).await
    {
        if n == 0 {
            break;
        }
        received += n;
    }
    assert!(received <= 8 * 4, "{received} bytes of heartbeats in 1.2 s");
    assert!(received >= 8, "a heartbeat is sent");
}
