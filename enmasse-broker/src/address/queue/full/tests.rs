//! What full queues do under each `addressFullPolicy`.

use std::sync::Arc;

use enmasse_types::{broker_config::AddressLimits, resources::infra_config::AddressFullPolicy};

use super::FullLimit;
use crate::address::queue::tests::push_all;
use crate::{
    address::queue::{PushError, Queue, Settlement},
    limits::MemoryBudget,
    message::testing::message,
};

fn queue(policy: AddressFullPolicy, max_depth: u64, max_bytes: u64) -> (Arc<Queue>, Arc<MemoryBudget>) {
    let queue = Queue::new(AddressLimits {
        max_depth,
        max_bytes,
        max_message_size: 1_000,
    });
    let budget = Arc::new(MemoryBudget::default());
    budget.set_policy(Some(policy));
    queue.set_budget(budget.clone());
    (queue, budget)
}

#[test]
fn under_fail_credit_is_not_withheld_and_what_does_not_fit_is_refused_naming_the_bound() {
    let (queue, _) = queue(AddressFullPolicy::Fail, 2, 1_000);
    assert_eq!(queue.reserve(5), 5, "credit beyond the bound");
    queue.push(message("q", 10)).unwrap();
    queue.push(message("q", 10)).unwrap();
    assert_eq!(
        queue.push(message("q", 10)),
        Err(PushError::Full(FullLimit::Depth(2)))
    );
    assert_eq!(queue.admit(10), Err(PushError::Full(FullLimit::Depth(2))));
    assert_eq!(queue.stats().depth(), 2, "nothing held was touched");

    let (queue, _) = queue_with_bytes();
    queue.reserve(2);
    queue.push(message("q", 60)).unwrap();
    assert_eq!(
        queue.push(message("q", 60)),
        Err(PushError::Full(FullLimit::Bytes(100)))
    );
}

fn queue_with_bytes() -> (Arc<Queue>, Arc<MemoryBudget>) {
    queue(AddressFullPolicy::Fail, 100, 100)
}

#[test]
fn under_fail_the_global_max_size_refuses_too() {
    let (queue, budget) = queue(AddressFullPolicy::Fail, 100, 10_000);
    budget.set_max(Some(50));
    queue.reserve(2);
    queue.push(message("q", 40)).unwrap();
    assert_eq!(
        queue.push(message("q", 40)),
        Err(PushError::Full(FullLimit::Global))
    );
    assert_eq!(budget.used(), 40);
}

#[test]
fn under_fail_a_message_admitted_before_it_was_made_safe_is_queued_whatever_came_since() {
    let (queue, _) = queue(AddressFullPolicy::Fail, 1, 1_000);
    queue.reserve(2);
    queue.admit(10).unwrap();
    queue.push(message("q", 10)).unwrap();
    queue.push_admitted(message("q", 10)).unwrap();
    assert_eq!(queue.stats().depth(), 2);
}

#[test]
fn under_drop_the_oldest_waiting_messages_make_room_and_are_counted() {
    let (queue, budget) = queue(AddressFullPolicy::Drop, 3, 1_000);
    assert_eq!(queue.reserve(5), 5);
    let ids = push_all(&queue, 5, 10);
    assert_eq!(queue.stats().depth(), 3);
    assert_eq!(queue.stats().dropped, 2);
    let dropped: Vec<u64> = queue.take_dropped().iter().map(|m| m.id).collect();
    assert_eq!(dropped, ids[..2], "the oldest two");
    assert_eq!(budget.used(), 30, "their bytes left the budget");
    assert!(queue.has_timed(), "housekeeping is told");
    let kept: Vec<u64> = (0..3).filter_map(|_| queue.try_pop()).map(|m| m.id).collect();
    assert_eq!(kept, ids[2..], "the newest stay, in order");
}

#[test]
fn under_drop_messages_in_flight_are_kept_and_the_newcomer_goes_when_nothing_older_waits() {
    let (queue, _) = queue(AddressFullPolicy::Drop, 1, 1_000);
    queue.reserve(2);
    queue.push(message("q", 10)).unwrap();
    let delivered = queue.try_pop().unwrap();
    let newcomer = message("q", 10);
    let newcomer_id = newcomer.id;
    queue.push(newcomer).unwrap();
    let dropped: Vec<u64> = queue.take_dropped().iter().map(|m| m.id).collect();
    assert_eq!(dropped, [newcomer_id]);
    assert_eq!(queue.stats().in_flight, 1);
    queue.settle(delivered.id, Settlement::Accepted);
}

#[test]
fn under_drop_a_full_broker_drops_from_the_queue_that_takes_a_message() {
    let (queue, budget) = queue(AddressFullPolicy::Drop, 100, 10_000);
    budget.set_max(Some(25));
    queue.reserve(3);
    for _ in 0..3 {
        queue.push(message("q", 10)).unwrap();
    }
    assert_eq!(queue.stats().depth(), 2);
    assert!(budget.used() <= 25);
}

#[test]
fn under_block_and_page_a_full_queue_withholds_credit() {
    for policy in [AddressFullPolicy::Block, AddressFullPolicy::Page] {
        let (queue, _) = queue(policy, 1, 1_000);
        assert_eq!(queue.reserve(5), 1, "{policy:?}");
    }
}
