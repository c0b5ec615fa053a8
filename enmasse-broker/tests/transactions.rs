//! Local transactions frame by frame (AMQP 1.0, part 4): the coordinator declares, a message sent
//! in a transaction is held until its commit and gone with its rollback, an outcome given in a
//! transaction takes effect only at its commit, and a discharge of a transaction not open is
//! refused with its condition. Qpid Proton's own `tx_*` examples and the interop check drive the
//! same with a real client; the crash test shows a commit surviving `kill -9`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod common;

use common::{
    address, config,
    raw::{Raw, data_message},
    start,
};
use enmasse_broker::amqp::{
    encode::Encoder,
    performative::{AttachReply, DeliveryState, Performative, Role, Terminus},
    sections,
};
use enmasse_types::resources::address::AddressType;

const COORDINATOR: u32 = 0;
const SENDER: u32 = 1;
const RECEIVER: u32 = 2;

/// Attaches a coordinator link for local transactions.
async fn coordinator(raw: &mut Raw) {
    let target = Terminus {
        coordinator: true,
        capabilities: vec!["amqp:local-transactions".to_owned()],
        ..Terminus::default()
    };
    let source = Terminus::default();
    raw.send(0, |e| {
        e.attach(&AttachReply {
            name: "txn-ctrl",
            handle: COORDINATOR,
            role: Role::Sender,
            snd_settle_mode: 0,
            source: Some(&source),
            target: Some(&target),
            initial_delivery_count: Some(0),
            max_message_size: None,
        })
    })
    .await;
    let frame = raw
        .next_of("attach", |p| matches!(p, Performative::Attach(_)))
        .await;
    let Performative::Attach(reply) = frame.performative() else {
        unreachable!()
    };
    let target = reply.target.expect("the coordinator is attached");
    assert!(
        target.coordinator && target.has_capability("amqp:local-transactions"),
        "{target:?}"
    );
}

/// Sends one transfer of `payload` on `handle` as delivery `id`, in transaction `txn` if any.
async fn transfer(raw: &mut Raw, handle: u32, id: u32, txn: Option<&[u8]>, payload: &[u8]) {
    let mut out = Vec::new();
    enmasse_broker::amqp::frame::write(
        &mut out,
        enmasse_broker::amqp::frame::AMQP_FRAME,
        0,
        |e| {
            e.descriptor(0x14);
            let mut l = e.list();
            l.field(|e| e.uint(handle));
            l.field(|e| e.uint(id));
            l.field(|e| e.binary(&id.to_be_bytes()));
            l.field(|e| e.uint(0));
            l.absent(); // settled
            l.absent(); // more
            l.absent(); // rcv-settle-mode
            if let Some(txn) = txn {
                l.field(|e| {
                    e.descriptor(0x34);
                    let mut state = e.list();
                    state.field(|e| e.binary(txn));
                    state.end();
                });
            }
            l.end();
        },
        payload,
    );
    raw.write(&out).await;
}

/// A control message: `code` (declare 0x31, discharge 0x32) with its fields.
fn control(code: u64, fields: impl FnOnce(&mut enmasse_broker::amqp::encode::ListEncoder<'_>)) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = Encoder::new(&mut out);
    e.descriptor(0x77);
    e.descriptor(code);
    let mut l = e.list();
    fields(&mut l);
    l.end();
    out
}

/// The state of the next disposition the broker sends.
async fn disposition(raw: &mut Raw) -> DeliveryState {
    let frame = raw
        .next_of("disposition", |p| matches!(p, Performative::Disposition(_)))
        .await;
    let Performative::Disposition(disposition) = frame.performative() else {
        unreachable!()
    };
    disposition.state.expect("a disposition with a state")
}

async fn declare(raw: &mut Raw, id: u32) -> Vec<u8> {
    transfer(raw, COORDINATOR, id, None, &control(0x31, |_| {})).await;
    match disposition(raw).await {
        DeliveryState::Declared(txn) => txn,
        other => panic!("a declare answered with {other:?}"),
    }
}

async fn discharge(raw: &mut Raw, id: u32, txn: &[u8], fail: bool) -> DeliveryState {
    let body = control(0x32, |l| {
        l.field(|e| e.binary(txn));
        l.field(|e| e.bool(fail));
    });
    transfer(raw, COORDINATOR, id, None, &body).await;
    disposition(raw).await
}

#[tokio::test]
async fn a_message_sent_in_a_transaction_is_held_until_the_commit_and_gone_with_a_rollback() {
    let broker = start(config(vec![address("orders", AddressType::Queue)])).await;
    let depth = || broker.broker.table().get("orders").unwrap().depth();
    let mut raw = Raw::session(broker.addr).await;
    coordinator(&mut raw).await;
    raw.attach("sender", SENDER, Role::Sender, "orders").await;

    let txn = declare(&mut raw, 0).await;
    transfer(&mut raw, SENDER, 1, Some(&txn), &data_message(10)).await;
    let held = disposition(&mut raw).await;
    assert!(
        matches!(&held, DeliveryState::Transactional { txn_id, outcome: Some(outcome) }
            if *txn_id == txn && **outcome == DeliveryState::Accepted),
        "{held:?}"
    );
    assert_eq!(depth(), 0, "held until the commit");
    assert_eq!(discharge(&mut raw, 2, &txn, false).await, DeliveryState::Accepted);
    assert_eq!(depth(), 1);

    let rolled_back = declare(&mut raw, 3).await;
    assert_ne!(rolled_back, txn);
    transfer(&mut raw, SENDER, 4, Some(&rolled_back), &data_message(10)).await;
    disposition(&mut raw).await;
    assert_eq!(
        discharge(&mut raw, 5, &rolled_back, true).await,
        DeliveryState::Accepted
    );
    assert_eq!(depth(), 1, "nothing of the rolled-back transaction");

    let again = discharge(&mut raw, 6, &rolled_back, false).await;
    assert!(
        matches!(&again, DeliveryState::Rejected(Some(error)) if error.condition == "amqp:transaction:unknown-id"),
        "{again:?}"
    );
}

#[tokio::test]
async fn an_outcome_given_in_a_transaction_takes_effect_only_at_its_commit() {
    let broker = start(config(vec![address("orders", AddressType::Queue)])).await;
    let depth = || broker.broker.table().get("orders").unwrap().depth();
    let mut raw = Raw::session(broker.addr).await;
    coordinator(&mut raw).await;
    raw.attach("sender", SENDER, Role::Sender, "orders").await;
    transfer(&mut raw, SENDER, 0, None, &data_message(10)).await;
    disposition(&mut raw).await;
    raw.attach("receiver", RECEIVER, Role::Receiver, "orders").await;

    // Accepted in a transaction that is rolled back: the message comes back, a failed delivery.
    for (round, commit) in [(0u32, false), (1, true)] {
        // One credit a round; the link's delivery count is the rounds before.
        raw.flow(RECEIVER, round, 1, false).await;
        let frame = raw
            .next_of("transfer", |p| matches!(p, Performative::Transfer(_)))
            .await;
        let Performative::Transfer(sent) = frame.performative() else {
            unreachable!()
        };
        let header = sections::parse(frame.payload()).unwrap().header;
        assert_eq!(
            header.delivery_count, round,
            "the rollback counted as a failed delivery"
        );
        let txn = declare(&mut raw, 1 + 2 * round).await;
        let delivery_id = sent.delivery_id.unwrap();
        raw.send(0, |e| {
            e.descriptor(0x15);
            let mut l = e.list();
            l.field(|e| e.bool(true));
            l.field(|e| e.uint(delivery_id));
            l.absent();
            l.field(|e| e.bool(true));
            l.field(|e| {
                e.descriptor(0x34);
                let mut state = e.list();
                state.field(|e| e.binary(&txn));
                state.field(|e| {
                    e.descriptor(0x24);
                    e.list().end();
                });
                state.end();
            });
            l.end();
        })
        .await;
        assert_eq!(depth(), 1, "held by the transaction");
        assert_eq!(
            discharge(&mut raw, 2 + 2 * round, &txn, !commit).await,
            DeliveryState::Accepted
        );
    }
    assert_eq!(depth(), 0, "accepted at the commit");
}
