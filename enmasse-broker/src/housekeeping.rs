//! The broker's clock work: every [`TICK`], each queue that holds messages that expire or wait
//! out a redelivery delay moves on to now. Expired messages go to their address's expiry address
//! (or are dropped and counted); messages whose delay is over wait for a consumer again; messages
//! a full queue dropped to make room (`DROP`) are counted and forgotten.
//!
//! A message is never delivered past its expiry time whatever the tick: a queue sets expired
//! messages aside when a consumer would take them. The tick only moves them on, and brings back
//! delayed messages, so a delay is kept to within a tick.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{
    address::policy::now_millis,
    broker::Broker,
    deadletter::{self, Reason},
};

/// How often queues move on.
pub const TICK: Duration = Duration::from_millis(50);

/// Runs the broker's clock work until `shutdown`.
pub async fn run(broker: Arc<Broker>, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => tick(&broker),
        }
    }
}

/// One pass over every address: a flag read per queue, the work only where there is some.
pub fn tick(broker: &Arc<Broker>) {
    let now = now_millis();
    let table = broker.table();
    for entry in table.entries().into_iter().chain(table.temporary_entries()) {
        for queue in entry.queues() {
            if !queue.has_timed() {
                continue;
            }
            for dropped in queue.take_dropped() {
                deadletter::drop_for_room(broker, &entry, dropped);
            }
            for expired in queue.tick(now) {
                deadletter::give_up(broker, &entry, expired, Reason::Expired);
            }
        }
    }
}
