//! A message stream far over the size limit leaves the broker small: it is refused at the frame
//! that crosses the limit and the rest is dropped unread, not gathered. Alone in its test binary,
//! so that the process's memory is the broker's and this peer's only.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod common;

use common::{address, config, raw::Raw, start};
use enmasse_broker::amqp::performative::{DeliveryState, Performative, Role, condition};
use enmasse_types::resources::address::AddressType;

/// This process's resident memory, in bytes.
fn resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn a_stream_of_a_quarter_gigabyte_is_refused_early_and_the_broker_stays_small() {
    let broker = start(config(vec![address("orders", AddressType::Queue)])).await;
    let mut raw = Raw::session(broker.addr).await;
    raw.attach("big", 0, Role::Sender, "orders").await;
    raw.next_of("credit", |p| matches!(p, Performative::Flow(_)))
        .await;
    let before = resident();

    // A data section that claims 256 MiB, sent in 64,000-byte frames.
    const TOTAL: usize = 256 << 20;
    let mut first = vec![0x00, 0x53, 0x75, 0xb0];
    first.extend_from_slice(&(TOTAL as u32).to_be_bytes());
    first.resize(64_000, b'x');
    raw.transfer(0, Some(0), true, &first).await;
    let chunk = vec![b'x'; 64_000];
    let mut sent = first.len();
    while sent + chunk.len() < TOTAL {
        raw.transfer(0, None, true, &chunk).await;
        sent += chunk.len();
    }
    raw.transfer(0, None, false, &chunk[..TOTAL + 8 - sent]).await;

    let refused = raw
        .next_of("disposition", |p| matches!(p, Performative::Disposition(_)))
        .await;
    let Performative::Disposition(disposition) = refused.performative() else {
        unreachable!()
    };
    let Some(DeliveryState::Rejected(Some(error))) = disposition.state else {
        panic!("{disposition:?}")
    };
    assert_eq!(error.condition, condition::MESSAGE_SIZE_EXCEEDED);
    let grown = resident().saturating_sub(before);
    assert!(
        grown < 24 << 20,
        "the process grew by {} MiB for a 256 MiB stream refused at 8 MiB",
        grown >> 20
    );

    // Still serving: the next message on the same link is taken.
    raw.transfer(0, Some(1), false, &common::raw::data_message(16))
        .await;
    let accepted = raw
        .next_of("disposition", |p| matches!(p, Performative::Disposition(_)))
        .await;
    let Performative::Disposition(disposition) = accepted.performative() else {
        unreachable!()
    };
    assert_eq!(disposition.state, Some(DeliveryState::Accepted));
}
