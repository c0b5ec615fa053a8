//! The queue's bounds, competing consumers and settlements.

use std::time::Duration;

use super::*;
use crate::address::policy::{Redelivery, now_millis};
use crate::message::testing::message;

/// Pushes `count` messages of `size` bytes, each under room reserved before; returns their ids.
pub(super) fn push_all(queue: &Queue, count: usize, size: usize) -> Vec<u64> {
    (0..count)
        .map(|_| {
            let m = message("q", size);
            let id = m.id;
            queue.push(m).unwrap_or_else(|err| panic!("pushed: {err}"));
            id
        })
        .collect()
}

fn limits(max_depth: u64, max_bytes: u64, max_message_size: u64) -> AddressLimits {
    AddressLimits {
        max_depth,
        max_bytes,
        max_message_size,
    }
}

#[test]
fn credit_is_granted_only_while_there_is_room() {
    let queue = Queue::new(limits(3, 1_000, 100));
    assert_eq!(queue.reserve(2), 2);
    assert_eq!(queue.reserve(5), 1, "one slot left");
    assert_eq!(queue.reserve(5), 0);
    for _ in 0..3 {
        queue.push(message("q", 10)).unwrap();
    }
    assert_eq!(queue.stats().depth(), 3);
    assert_eq!(queue.reserve(1), 0, "full");
}

#[test]
fn the_bytes_bound_stops_credit_too() {
    let queue = Queue::new(limits(100, 25, 100));
    assert_eq!(queue.reserve(3), 3);
    for _ in 0..3 {
        queue.push(message("q", 10)).unwrap();
    }
    assert_eq!(queue.reserve(1), 0, "30 bytes held, the bound is 25");
}

#[test]
fn a_message_larger_than_the_limit_is_refused_and_its_room_returned() {
    let queue = Queue::new(limits(1, 1_000, 100));
    assert_eq!(queue.reserve(1), 1);
    assert_eq!(
        queue.push(message("q", 101)),
        Err(PushError::TooLarge {
            size: 101,
            limit: 100
        })
    );
    assert_eq!(queue.reserve(1), 1, "the refused message took no room");
}

#[tokio::test]
async fn each_message_goes_to_one_consumer_in_order() {
    let queue = Queue::new(limits(10, 1_000, 100));
    queue.reserve(3);
    let sent = push_all(&queue, 3, 1);
    let mut got = Vec::new();
    for _ in 0..3 {
        let m = queue.pop().await.unwrap();
        queue.settle(m.id, Settlement::Accepted);
        got.push(m.id);
    }
    assert_eq!(got, sent);
    assert_eq!(
        queue.stats(),
        QueueStats {
            messages_in: 3,
            messages_out: 3,
            ..Default::default()
        }
    );
}

#[tokio::test]
async fn a_returned_message_comes_back_first_its_count_raised_only_by_a_failed_delivery() {
    let queue = Queue::new(limits(10, 1_000, 100));
    queue.reserve(2);
    queue.push(message("q", 1)).unwrap();
    queue.push(message("q", 1)).unwrap();
    let first = queue.pop().await.unwrap();
    queue.settle(first.id, Settlement::Released);
    let again = queue.pop().await.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(again.delivery_count, 0, "a release is not a failed delivery");
    assert!(matches!(
        queue.settle(again.id, Settlement::Modified),
        AfterSettle::Redelivering(m) if m.delivery_count == 1
    ));
    assert_eq!(queue.pop().await.unwrap().delivery_count, 1);
}

#[tokio::test]
async fn a_message_past_its_attempts_is_given_up_and_a_delayed_one_waits_for_the_tick() {
    let queue = Queue::new(limits(10, 1_000, 100));
    queue.set_redelivery(Redelivery {
        max_attempts: Some(2),
        delay: Duration::from_millis(1_000),
        multiplier: 1.0,
        max_delay: None,
    });
    queue.reserve(1);
    queue.push(message("q", 1)).unwrap();
    let first = queue.try_pop().unwrap();
    queue.settle(first.id, Settlement::Modified);
    assert!(queue.try_pop().is_none(), "it waits out the delay");
    assert_eq!(queue.stats().delayed, 1);
    assert!(queue.tick(now_millis()).is_empty());
    assert!(queue.try_pop().is_none(), "not yet");
    assert!(queue.tick(now_millis() + 1_001).is_empty());
    let again = queue.try_pop().expect("back after the delay");
    assert!(matches!(
        queue.settle(again.id, Settlement::Modified),
        AfterSettle::GivenUp(m) if m.delivery_count == 2
    ));
    assert_eq!(queue.stats().depth(), 0);
}

#[tokio::test]
async fn an_expired_message_is_set_aside_and_handed_over_by_the_tick() {
    let queue = Queue::new(limits(10, 1_000, 100));
    queue.reserve(2);
    let mut stale = message("q", 1);
    stale.set_expires_at(Some(1));
    let mut later = message("q", 1);
    later.set_expires_at(Some(now_millis() + 60_000));
    let (stale_id, later_id) = (stale.id, later.id);
    queue.push(stale).unwrap();
    queue.push(later).unwrap();
    assert!(queue.has_timed());
    assert_eq!(
        queue.try_pop().map(|m| m.id),
        Some(later_id),
        "never the expired one"
    );
    let expired = queue.tick(now_millis());
    assert_eq!(expired.iter().map(|m| m.id).collect::<Vec<_>>(), [stale_id]);
    assert_eq!(queue.stats().expired, 1);
}

#[tokio::test]
async fn a_rejected_message_is_not_delivered_again() {
    let queue = Queue::new(limits(10, 1_000, 100));
    queue.reserve(1);
    queue.push(message("q", 1)).unwrap();
    let m = queue.pop().await.unwrap();
    queue.settle(m.id, Settlement::Rejected);
    assert!(queue.try_pop().is_none());
    assert_eq!(queue.stats().depth(), 0);
}

#[tokio::test]
async fn a_waiting_sender_is_woken_when_a_consumer_frees_room() {
    let queue = Queue::new(limits(1, 1_000, 100));
    queue.reserve(1);
    queue.push(message("q", 1)).unwrap();
    let waiter = tokio::spawn({
        let queue = queue.clone();
        async move { queue.wait_for_room().await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiter.is_finished(), "no room yet");
    let m = queue.pop().await.unwrap();
    queue.settle(m.id, Settlement::Accepted);
    tokio::time::timeout(Duration::from_secs(1), waiter)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_waiting_consumer_is_woken_by_a_new_message() {
    let queue = Queue::new(limits(10, 1_000, 100));
    let consumer = tokio::spawn({
        let queue = queue.clone();
        async move { queue.pop().await.map(|m| m.id) }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    queue.reserve(1);
    let m = message("q", 1);
    let id = m.id;
    queue.push(m).unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(1), consumer)
            .await
            .unwrap()
            .unwrap(),
        Some(id)
    );
}

#[tokio::test]
async fn closing_wakes_consumers_and_refuses_senders() {
    let queue = Queue::new(limits(10, 1_000, 100));
    let consumer = tokio::spawn({
        let queue = queue.clone();
        async move { queue.pop().await.is_none() }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    queue.close();
    assert!(
        tokio::time::timeout(Duration::from_secs(1), consumer)
            .await
            .unwrap()
            .unwrap()
    );
    assert_eq!(queue.reserve(1), 0);
}

#[tokio::test]
async fn messages_that_come_back_keep_their_original_order() {
    let queue = Queue::new(limits(10, 1_000, 100));
    queue.reserve(4);
    for _ in 0..4 {
        queue.push(message("q", 1)).unwrap();
    }
    let taken: Vec<Message> = [
        queue.pop().await.unwrap(),
        queue.pop().await.unwrap(),
        queue.pop().await.unwrap(),
    ]
    .into();
    // Settled back in another order than they were taken in.
    for m in [&taken[1], &taken[2], &taken[0]] {
        queue.settle(m.id, Settlement::Modified);
    }
    let mut order = Vec::new();
    while let Some(m) = queue.try_pop() {
        order.push(m.id);
    }
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(order, sorted);
    assert_eq!(order.len(), 4);
}

#[test]
fn a_message_queued_after_a_later_one_still_takes_its_place_by_arrival() {
    let queue = Queue::new(limits(10, 1_000, 100));
    queue.reserve(3);
    let (first, second, third) = (message("q", 1), message("q", 1), message("q", 1));
    let ids = [first.id, second.id, third.id];
    // The first was durable, and its sync completed after the others were queued.
    queue.push(second).unwrap();
    queue.push(third).unwrap();
    queue.push(first).unwrap();
    let order: Vec<u64> = std::iter::from_fn(|| queue.try_pop()).map(|m| m.id).collect();
    assert_eq!(order, ids);
}

#[test]
fn a_restored_message_is_taken_in_whatever_the_bounds() {
    let queue = Queue::new(limits(1, 1_000, 100));
    assert_eq!(queue.reserve(1), 1);
    queue.push(message("q", 1)).unwrap();
    queue.restore(message("q", 500));
    assert_eq!(queue.stats().depth(), 2);
    assert_eq!(queue.stats().bytes, 501);
    assert_eq!(queue.reserve(1), 0, "no credit until it drains below its bounds");
}

#[tokio::test]
async fn with_a_consumer_attached_senders_get_credit_as_it_drains_not_up_to_the_depth_bound() {
    let queue = Queue::new(limits(1_000_000, 1 << 40, 100));
    assert_eq!(queue.reserve(5_000), 5_000, "without consumers, to the bounds");
    queue.unreserve(5_000);
    queue.consumer_joined();
    assert_eq!(
        queue.reserve(5_000) as u64,
        PACE,
        "with a consumer, up to the pace"
    );
    for _ in 0..PACE {
        queue.push(message("q", 1)).unwrap();
    }
    assert_eq!(queue.reserve(1), 0, "paced");
    let waiting = tokio::spawn({
        let queue = queue.clone();
        async move { queue.wait_for_room().await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiting.is_finished());
    // The consumer takes half the queue: the waiting sender hears of it.
    for _ in 0..=PACE / 2 {
        queue.try_pop().unwrap();
    }
    tokio::time::timeout(Duration::from_secs(1), waiting)
        .await
        .expect("the sender is woken")
        .unwrap();
    queue.consumer_left();
    assert!(
        queue.reserve(1_000_000) > 900_000,
        "back to the bounds once the consumer leaves"
    );
}

#[test]
fn a_backlog_the_consumer_found_does_not_stop_senders() {
    let queue = Queue::new(limits(1_000_000, 1 << 40, 100));
    assert_eq!(queue.reserve(5_000), 5_000);
    for _ in 0..5_000 {
        queue.push(message("q", 1)).unwrap();
    }
    queue.consumer_joined();
    assert_eq!(
        queue.reserve(u32::MAX) as u64,
        PACE,
        "senders may still run the pace ahead of the backlog"
    );
}

#[tokio::test]
async fn many_messages_expiring_at_once_leave_the_others_in_order() {
    let queue = Queue::new(limits(10_000, 1_000_000, 100));
    queue.reserve(1_000);
    let mut kept = Vec::new();
    for n in 0..1_000 {
        let mut m = message("q", 1);
        if n % 2 == 0 {
            m.set_expires_at(Some(1));
        } else {
            kept.push(m.id);
        }
        queue.push(m).unwrap();
    }
    assert_eq!(queue.tick(now_millis()).len(), 500);
    let mut left = Vec::new();
    while let Some(m) = queue.try_pop() {
        left.push(m.id);
    }
    assert_eq!(left, kept);
}
