//! Paging: the page file, and a paging queue's memory and order.

use std::sync::Arc;

use enmasse_types::{broker_config::AddressLimits, resources::infra_config::AddressFullPolicy};

use super::PageFile;
use crate::address::queue::tests::push_all;
use crate::{
    address::queue::{Queue, Settlement},
    limits::MemoryBudget,
    message::testing::{durable, message},
};

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("enmasse-page-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A queue under PAGE paging into `dir`, in memory at most `max_depth` messages, with a broker
/// budget of `global` bytes.
fn paging(dir: &std::path::Path, max_depth: u64, global: u64) -> (Arc<Queue>, Arc<MemoryBudget>) {
    let queue = Queue::new(AddressLimits {
        max_depth,
        max_bytes: 1 << 30,
        max_message_size: 1 << 20,
    });
    let budget = Arc::new(MemoryBudget::default());
    budget.set_policy(Some(AddressFullPolicy::Page));
    budget.set_max(Some(global));
    budget.set_paging_dir(dir).unwrap();
    queue.set_budget(budget.clone());
    (queue, budget)
}

#[test]
fn a_page_deletes_each_segment_once_read_past() {
    let dir = scratch("segments");
    let mut page = PageFile::with_segments(dir.join("0"), 40).unwrap();
    let sent: Vec<u64> = (0..6)
        .map(|_| {
            let m = message("q", 10);
            page.append(&m).unwrap();
            m.id
        })
        .collect();
    let segments = || std::fs::read_dir(dir.join("0")).unwrap().count();
    let before = segments();
    assert!(before >= 3, "{before} segments");
    let got: Vec<u64> = (0..4).map(|_| page.take().unwrap().unwrap().id).collect();
    assert!(segments() < before, "the segments read past are gone");
    let rest: Vec<u64> = std::iter::from_fn(|| page.take().unwrap())
        .map(|m| m.id)
        .collect();
    assert_eq!([got, rest].concat(), sent);
}

#[test]
fn a_page_gives_back_what_it_was_given_and_leaves_no_file_once_dropped() {
    let dir = scratch("file");
    let mut page = PageFile::create(dir.join("0")).unwrap();
    let mut first = durable("orders", 10);
    first.delivery_count = 3;
    first.set_expires_at(Some(4_102_444_800_000));
    page.append(&first).unwrap();
    let second = message("orders/eu", 20);
    page.append(&second).unwrap();

    assert_eq!(page.head_size().unwrap(), Some(10));
    let back = page.take().unwrap().unwrap();
    assert_eq!(
        (
            back.id,
            back.size,
            back.delivery_count,
            back.expires_at(),
            back.durable
        ),
        (first.id, 10, 3, first.expires_at(), true)
    );
    assert_eq!(back.encoded, first.encoded);
    let back = page.take().unwrap().unwrap();
    assert_eq!((back.id, &*back.address), (second.id, "orders/eu"));
    assert!(page.take().unwrap().is_none());
    drop(page);
    assert!(!dir.join("0").exists(), "an empty page leaves no file");
}

#[test]
fn a_paging_queue_takes_beyond_its_share_keeps_memory_within_it_and_serves_in_order() {
    let dir = scratch("queue");
    let (queue, budget) = paging(&dir, 50, 1_000_000);
    assert_eq!(queue.reserve(500), 500, "credit is not withheld for fullness");
    let ids = push_all(&queue, 500, 100);
    assert_eq!(queue.stats().depth(), 500);
    assert!(queue.stats().paged >= 450, "{:?}", queue.stats());
    assert!(
        budget.used() <= 50 * 100,
        "memory holds the share only: {}",
        budget.used()
    );

    let mut got = Vec::new();
    while let Some(m) = queue.try_pop() {
        assert!(budget.used() <= 51 * 100);
        queue.settle(m.id, Settlement::Accepted);
        got.push(m.id);
    }
    assert_eq!(got, ids, "every message, in order");
    assert_eq!(budget.used(), 0);
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none(), "no page left");
}

#[test]
fn a_released_message_comes_back_before_the_paged_ones() {
    let dir = scratch("released");
    let (queue, _) = paging(&dir, 2, 1_000_000);
    queue.reserve(5);
    let ids = push_all(&queue, 5, 10);
    let first = queue.try_pop().unwrap();
    queue.settle(first.id, Settlement::Released);
    let mut got = Vec::new();
    while let Some(m) = queue.try_pop() {
        queue.settle(m.id, Settlement::Accepted);
        got.push(m.id);
    }
    assert_eq!(got, ids);
}

#[test]
fn the_global_max_size_pages_a_queue_under_its_own_bounds() {
    let dir = scratch("global");
    let (queue, budget) = paging(&dir, 1_000_000, 8_000);
    queue.reserve(100);
    for _ in 0..100 {
        queue.push(message("q", 100)).unwrap();
    }
    assert!(budget.used() <= 8_000, "{}", budget.used());
    assert_eq!(queue.stats().depth(), 100);
}

#[test]
fn recovered_messages_past_the_share_are_paged_too() {
    let dir = scratch("restore");
    let (queue, budget) = paging(&dir, 10, 1_000_000);
    for _ in 0..100 {
        queue.restore(durable("q", 10));
    }
    assert!(budget.used() <= 10 * 10);
    assert_eq!(queue.stats().depth(), 100);
}

#[test]
fn closing_a_paging_queue_removes_its_page_and_gives_back_its_memory() {
    let dir = scratch("close");
    let (queue, budget) = paging(&dir, 5, 1_000_000);
    queue.reserve(20);
    for _ in 0..20 {
        queue.push(message("q", 10)).unwrap();
    }
    assert_eq!(queue.close(), 20);
    assert_eq!(budget.used(), 0);
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
}

#[test]
fn without_a_paging_directory_page_withholds_credit_as_block_does() {
    let queue = Queue::new(AddressLimits {
        max_depth: 1,
        max_bytes: 1_000,
        max_message_size: 100,
    });
    let budget = Arc::new(MemoryBudget::default());
    budget.set_policy(Some(AddressFullPolicy::Page));
    queue.set_budget(budget);
    assert_eq!(queue.reserve(5), 1);
}

#[test]
fn a_consumer_reaches_the_live_messages_behind_a_paged_run_that_expired() {
    let dir = scratch("expired");
    let (queue, _) = paging(&dir, 10, 1_000_000);
    queue.reserve(3_000);
    for _ in 0..2_000 {
        let mut m = message("q", 10);
        m.set_expires_at(Some(1));
        queue.push(m).unwrap();
    }
    let live = message("q", 10);
    let live_id = live.id;
    queue.push(live).unwrap();
    // A consumer's takes and the housekeeping's ticks, as the broker runs them.
    let mut taken = None;
    for _ in 0..1_000 {
        taken = queue.try_pop();
        if taken.is_some() {
            break;
        }
        queue.tick(crate::address::policy::now_millis());
    }
    assert_eq!(taken.map(|m| m.id), Some(live_id));
}
