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
    budget.set_paging_dir(dir, None).unwrap();
    queue.set_budget(budget.clone());
    (queue, budget)
}

#[test]
fn a_page_deletes_each_segment_once_read_past() {
    let dir = scratch("segments");
    let mut page = PageFile::with_segments(dir.join("0"), None, 40).unwrap();
    let sent: Vec<u64> = (0..6)
        .map(|_| {
            let m = message("q", 10);
            page.append(&m, 0).unwrap();
            m.id
        })
        .collect();
    let segments = || std::fs::read_dir(dir.join("0")).unwrap().count();
    let before = segments();
    assert!(before >= 3, "{before} segments");
    let got: Vec<u64> = (0..4).map(|_| page.take().unwrap().unwrap().0.id).collect();
    page.release_before(page.taken());
    assert!(segments() < before, "the segments read past are gone");
    let rest: Vec<u64> = std::iter::from_fn(|| page.take().unwrap())
        .map(|(m, _)| m.id)
        .collect();
    assert_eq!([got, rest].concat(), sent);
}

#[test]
fn a_page_gives_back_what_it_was_given_and_leaves_no_file_once_discarded() {
    let dir = scratch("file");
    let mut page = PageFile::create(dir.join("0"), None).unwrap();
    let mut first = durable("orders", 10);
    first.delivery_count = 3;
    first.set_expires_at(Some(4_102_444_800_000));
    page.append(&first, 0).unwrap();
    let second = message("orders/eu", 20);
    page.append(&second, 0).unwrap();

    assert_eq!(page.head_size().unwrap(), Some(10));
    let (back, _) = page.take().unwrap().unwrap();
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
    let (back, _) = page.take().unwrap().unwrap();
    assert_eq!((back.id, &*back.address), (second.id, "orders/eu"));
    assert!(page.take().unwrap().is_none());
    page.discard();
    drop(page);
    assert!(!dir.join("0").exists(), "a discarded page leaves no file");
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

/// A store that notes what it was asked to keep.
#[derive(Debug, Default)]
struct Noted(std::sync::Mutex<Vec<u64>>);

impl crate::store::MessageStore for Noted {
    fn persist(&self, _address: &str, message: &crate::message::Message) -> crate::store::Persisted {
        self.0.lock().unwrap().push(message.id);
        crate::store::Persisted::Now
    }
    fn forget(&self, _address: &str, _id: u64) {}
    fn recount(&self, _address: &str, _message: &crate::message::Message) {}
    fn forget_address(&self, _address: &str) {}
    fn commit(
        &self,
        _adds: &[(&str, &crate::message::Message)],
        _removes: &[u64],
    ) -> crate::store::Persisted {
        crate::store::Persisted::Now
    }
}

/// A queue of `orders` under PAGE paging into `dir`, in memory at most `max_depth` messages, whose
/// broker keeps durable messages in a store that notes what it was given.
fn journaled_paging(dir: &std::path::Path, max_depth: u64) -> (Arc<Queue>, Arc<Noted>) {
    let store = Arc::new(Noted::default());
    let budget = Arc::new(MemoryBudget::default());
    budget.set_policy(Some(AddressFullPolicy::Page));
    budget.set_max(Some(1_000_000));
    budget.set_paging_dir(dir, Some(store.clone())).unwrap();
    let queue = Queue::new(AddressLimits {
        max_depth,
        max_bytes: 1 << 30,
        max_message_size: 1 << 20,
    });
    queue.set_budget(budget);
    queue.set_store_key("orders");
    (queue, store)
}

#[tokio::test]
async fn durable_messages_paged_as_only_copies_are_journaled_before_a_consumer_gets_them() {
    let dir = scratch("only-copies");
    let (queue, store) = journaled_paging(&dir, 10);

    queue.reserve(100);
    let mut sent = Vec::new();
    let mut journaled_now = Vec::new();
    for _ in 0..100 {
        let m = durable("orders", 10);
        sent.push(m.id);
        queue.admit(m.size).unwrap();
        match queue.page_durable(m) {
            Ok(wait) => wait.safe().await.unwrap(),
            Err(m) => {
                journaled_now.push(m.id);
                queue.push_admitted(m).unwrap();
            }
        }
    }
    assert_eq!(
        journaled_now.len(),
        10,
        "the memory share is journaled as it comes"
    );
    assert!(
        store.0.lock().unwrap().is_empty(),
        "the paged ones are not journaled on arrival"
    );

    let mut got = Vec::new();
    while got.len() < sent.len() {
        let m = tokio::time::timeout(std::time::Duration::from_secs(5), queue.pop())
            .await
            .expect("every message comes back")
            .unwrap();
        let paged = !journaled_now.contains(&m.id);
        assert!(
            !paged || store.0.lock().unwrap().contains(&m.id),
            "message {} was handed out before it was journaled",
            m.id
        );
        queue.settle(m.id, Settlement::Accepted);
        got.push(m.id);
    }
    assert_eq!(got, sent, "in order");
    assert_eq!(store.0.lock().unwrap().len(), 90);
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "the emptied page is gone"
    );
}

#[tokio::test]
async fn a_durable_message_made_safe_after_later_ones_were_paged_keeps_its_place() {
    let dir = scratch("late");
    let (queue, _) = journaled_paging(&dir, 4);
    queue.reserve(100);

    // Three fill memory but for one place; the fourth is journaled, slowly.
    let mut sent = Vec::new();
    for _ in 0..3 {
        let m = durable("orders", 10);
        sent.push(m.id);
        queue.admit(m.size).unwrap();
        let m = queue.page_durable(m).expect_err("memory has room");
        queue.push_admitted(m).unwrap();
    }
    let slow = durable("orders", 10);
    sent.push(slow.id);
    queue.admit(slow.size).unwrap();
    let slow = queue.page_durable(slow).expect_err("memory has room");
    // The one after it is journaled at once and fills memory; those after it are paged.
    let quick = durable("orders", 10);
    sent.push(quick.id);
    queue.admit(quick.size).unwrap();
    let quick = queue.page_durable(quick).expect_err("memory has room");
    queue.push_admitted(quick).unwrap();
    for _ in 0..5 {
        let m = durable("orders", 10);
        sent.push(m.id);
        queue.admit(m.size).unwrap();
        queue
            .page_durable(m)
            .expect("memory is full")
            .safe()
            .await
            .unwrap();
    }
    // The slow one is safe only now.
    queue.push_admitted(slow).unwrap();
    // Another is safe only after the next ones filled memory.
    let mut got = Vec::new();
    take(&queue, &mut got, sent.len()).await;
    let slower = durable("orders", 10);
    let next = durable("orders", 10);
    sent.extend([slower.id, next.id]);
    queue.admit(slower.size).unwrap();
    let slower = queue.page_durable(slower).expect_err("memory has room");
    queue.admit(next.size).unwrap();
    let next = queue.page_durable(next).expect_err("memory has room");
    queue.push_admitted(next).unwrap();
    for _ in 0..3 {
        let m = durable("orders", 10);
        sent.push(m.id);
        queue.admit(m.size).unwrap();
        let m = queue.page_durable(m).expect_err("memory has room");
        queue.push_admitted(m).unwrap();
    }
    // Memory is full of later messages when the slower one is safe: it still goes first.
    queue.push_admitted(slower).unwrap();

    take(&queue, &mut got, sent.len()).await;
    assert_eq!(got, sent, "in the order they were sent");
}

/// Takes and accepts messages from `queue` into `got` until it holds `n`.
async fn take(queue: &Queue, got: &mut Vec<u64>, n: usize) {
    while got.len() < n {
        let m = tokio::time::timeout(std::time::Duration::from_secs(5), queue.pop())
            .await
            .expect("every message comes back")
            .unwrap();
        queue.settle(m.id, Settlement::Accepted);
        got.push(m.id);
    }
}

/// A page in `dir` holding records flagged `flags` for `orders`, as a crashed run left it.
fn left_page(dir: &std::path::Path, flags: &[u8]) -> Vec<u64> {
    let mut page = PageFile::create(dir.to_owned(), Some("orders")).unwrap();
    let mut ids = Vec::new();
    for &flags in flags {
        let m = durable("orders", 10);
        ids.push(m.id);
        page.append(&m, flags).unwrap();
    }
    page.flush_for_sync().unwrap();
    // A crash: nothing of the page's own clean-up runs.
    std::mem::forget(page);
    ids
}

fn read_all(left: super::LeftPage) -> Vec<u64> {
    let mut page = *left.page;
    std::iter::from_fn(|| page.take().unwrap())
        .map(|(m, _)| m.id)
        .collect()
}

#[test]
fn a_restart_gives_back_the_only_copies_past_the_cursor_that_the_journal_does_not_hold_once() {
    let dir = scratch("left").join("7");
    let mut page = PageFile::create(dir.clone(), Some("orders")).unwrap();
    let ids: Vec<u64> = [1u8, 1, 0, 1, 1]
        .iter()
        .map(|&flags| {
            let m = durable("orders", 10);
            page.append(&m, flags).unwrap();
            m.id
        })
        .collect();
    // The first was read back and journaled, and the cursor moved past it.
    assert_eq!(page.take().unwrap().unwrap().0.id, ids[0]);
    let (cursor_file, seq) = page.cursor_slot();
    super::file::write_cursor(&cursor_file, seq, page.taken()).unwrap();
    page.flush_for_sync().unwrap();
    drop(page);

    // The second was being read back: the journal has it.
    let journaled = [ids[1]].into_iter().collect();
    let left = super::recover(&dir, &journaled)
        .unwrap()
        .expect("a page to take back");
    assert_eq!(
        (left.queue.as_str(), left.messages, left.bytes),
        ("orders", 2, 20)
    );
    assert_eq!(left.last_id, ids[4]);
    drop(left);

    // Served from the journal and consumed since: a second restart does not give it back.
    let left = super::recover(&dir, &Default::default())
        .unwrap()
        .expect("a page to take back");
    assert_eq!(left.messages, 2);
    assert_eq!(read_all(left), [ids[3], ids[4]]);
}

#[test]
fn a_record_cut_short_ends_what_a_restart_finds() {
    let dir = scratch("torn").join("0");
    let ids = left_page(&dir, &[1, 1, 1]);
    let segment = super::file::segment_path(&dir, 0);
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let left = super::recover(&dir, &Default::default()).unwrap().unwrap();
    assert_eq!(left.messages, 2);
    assert_eq!(read_all(left), ids[..2]);
}

#[test]
fn a_page_with_nothing_to_give_back_is_removed_at_a_restart() {
    let dir = scratch("nothing").join("0");
    left_page(&dir, &[0, 0]);
    assert!(super::recover(&dir, &Default::default()).unwrap().is_none());
    assert!(!dir.exists());
}

#[test]
fn a_cursor_write_cut_short_leaves_the_one_before() {
    let dir = scratch("cursor");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cursor");
    let at = |segment, offset| super::file::Position { segment, offset };
    super::file::write_cursor(&path, 1, at(0, 100)).unwrap();
    super::file::write_cursor(&path, 2, at(1, 40)).unwrap();
    assert_eq!(super::file::read_cursor(&dir).unwrap(), Some((2, at(1, 40))));
    // Slot of the second write, torn.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    assert_eq!(super::file::read_cursor(&dir).unwrap(), Some((1, at(0, 100))));
}

mod order {
    use proptest::prelude::*;

    use super::*;

    /// Sends `sent` durable messages through a paging queue whose memory holds `depth`; each
    /// one not paged at once waits in the journal, and `finish` says, after each arrival, how
    /// many of those waiting are safe now (the oldest waiting first when `oldest`, else the
    /// newest). Returns the order a consumer gets them in.
    fn run(sent: usize, depth: u64, finish: &[(u8, bool)]) -> (Vec<u64>, Vec<u64>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let dir = scratch(&format!("order-{}", rand_suffix()));
            let (queue, _) = journaled_paging(&dir, depth);
            queue.reserve(u32::MAX);
            let mut ids = Vec::new();
            let mut waiting: Vec<crate::message::Message> = Vec::new();
            for n in 0..sent {
                let m = durable("orders", 10);
                ids.push(m.id);
                queue.admit(m.size).unwrap();
                match queue.page_durable(m) {
                    Ok(wait) => wait.safe().await.unwrap(),
                    Err(m) => waiting.push(m),
                }
                let (count, oldest) = finish.get(n).copied().unwrap_or((0, true));
                for _ in 0..usize::from(count).min(waiting.len()) {
                    let m = match oldest {
                        true => waiting.remove(0),
                        false => waiting.pop().unwrap(),
                    };
                    queue.push_admitted(m).unwrap();
                }
            }
            while let Some(m) = waiting.pop() {
                queue.push_admitted(m).unwrap();
            }
            let mut got = Vec::new();
            take(&queue, &mut got, sent).await;
            let _ = std::fs::remove_dir_all(&dir);
            (ids, got)
        })
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn durable_messages_come_out_in_the_order_sent_however_their_journal_writes_finish(
            sent in 5usize..80,
            depth in 1u64..20,
            finish in prop::collection::vec((0u8..4, any::<bool>()), 0..80),
        ) {
            let (ids, got) = run(sent, depth, &finish);
            prop_assert_eq!(got, ids);
        }
    }
}
