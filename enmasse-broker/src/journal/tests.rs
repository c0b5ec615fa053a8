//! The journal on real files: what was accepted and not settled comes back in order, a torn tail
//! is cut off and reported, and settled segments are reclaimed.

use std::{path::PathBuf, sync::Arc};

use super::*;
use crate::amqp::encode::Encoder;

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("enmasse-journal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A durable message `id` to `address`, its message id naming it.
fn message(id: u64, address: &str) -> Message {
    let mut encoded = Vec::new();
    let mut enc = Encoder::new(&mut encoded);
    enc.descriptor(0x73); // properties, with the message id
    let mut properties = enc.list();
    properties.field(|e| e.string(&format!("m{id}")));
    properties.end();
    enc.descriptor(0x75);
    enc.binary(b"");
    Message::decode(id, encoded.into(), Arc::from(address)).unwrap()
}

async fn persist(journal: &Journal, message: &Message) {
    match journal.persist(&message.address, message) {
        Persisted::Later(persisting) => persisting.await.unwrap(),
        Persisted::Now => panic!("a journal persists later, after its sync"),
    }
}

fn ids(recovery: &Recovery) -> Vec<(u64, &str)> {
    recovery.messages.iter().map(|m| (m.id, &*m.address)).collect()
}

fn segment_files(dir: &Path) -> Vec<u64> {
    segments::list(dir).unwrap()
}

#[tokio::test]
async fn what_was_accepted_and_not_settled_comes_back_in_order_with_its_content() {
    let dir = dir("order");
    let (journal, recovery) = Journal::open(&dir, JournalOptions::default()).unwrap();
    assert!(recovery.messages.is_empty() && recovery.tears.is_empty());
    for id in 1..=5 {
        persist(&journal, &message(id, if id % 2 == 0 { "b" } else { "a" })).await;
    }
    journal.forget("a", 3);
    journal.forget("a", 99); // never journaled: nothing to write
    journal.sync().await;
    drop(journal);

    let (journal, recovery) = Journal::open(&dir, JournalOptions::default()).unwrap();
    assert_eq!(ids(&recovery), [(1, "a"), (2, "b"), (4, "b"), (5, "a")]);
    assert_eq!(
        recovery.last_id, 5,
        "new ids start above every id the journal saw"
    );
    assert_eq!(recovery.messages[2].encoded, &message(4, "b").encoded[..]);
    assert_eq!(
        recovery.bytes,
        recovery
            .messages
            .iter()
            .map(|m| m.encoded.len() as u64)
            .sum::<u64>()
    );

    // Settled after the restart, gone after the next.
    journal.forget("b", 2);
    journal.forget_address("a");
    drop(journal);
    let (_journal, recovery) = Journal::open(&dir, JournalOptions::default()).unwrap();
    assert_eq!(ids(&recovery), [(4, "b")]);
}

#[tokio::test]
async fn a_torn_or_scribbled_tail_is_cut_off_reported_and_never_served() {
    let dir = dir("torn");
    let (journal, _) = Journal::open(&dir, JournalOptions::default()).unwrap();
    for id in 1..=3 {
        persist(&journal, &message(id, "q")).await;
    }
    drop(journal);
    let last = *segment_files(&dir).last().unwrap();
    let path = segments::path(&dir, last);
    let whole = std::fs::read(&path).unwrap();

    // The power went out in the middle of the third record.
    std::fs::write(&path, &whole[..whole.len() - 10]).unwrap();
    let (journal, recovery) = Journal::open(&dir, JournalOptions::default()).unwrap();
    assert_eq!(ids(&recovery), [(1, "q"), (2, "q")]);
    assert_eq!(recovery.tears.len(), 1);
    assert!(
        recovery.tears[0].contains("a record cut short"),
        "{:?}",
        recovery.tears
    );
    drop(journal);

    // Scribbled over: the second record's body is garbage, so it and all after it go.
    let mut scribbled = whole.clone();
    let second = record::MAGIC.len() + (whole.len() - record::MAGIC.len()) / 3 + 12;
    scribbled[second] ^= 0xff;
    std::fs::write(&path, &scribbled).unwrap();
    let (journal, recovery) = Journal::open(&dir, JournalOptions::default()).unwrap();
    assert_eq!(ids(&recovery), [(1, "q")]);
    assert!(recovery.tears[0].contains("checksum"), "{:?}", recovery.tears);
    drop(journal);

    // The cut is made on disk: the next start finds a clean journal.
    let (_journal, recovery) = Journal::open(&dir, JournalOptions::default()).unwrap();
    assert_eq!(ids(&recovery), [(1, "q")]);
    assert!(recovery.tears.is_empty(), "{:?}", recovery.tears);
}

#[tokio::test]
async fn a_segment_whose_messages_are_all_settled_is_deleted() {
    let dir = dir("reclaim");
    let options = JournalOptions { segment_size: 4096 };
    let (journal, _) = Journal::open(&dir, options).unwrap();
    for id in 1..=200 {
        persist(&journal, &message(id, "q")).await;
        journal.forget("q", id);
    }
    journal.sync().await;
    assert!(
        segment_files(&dir).len() <= 2,
        "settled segments are deleted as the journal rolls: {:?}",
        segment_files(&dir)
    );
    drop(journal);
    let (_journal, recovery) = Journal::open(&dir, options).unwrap();
    assert!(recovery.messages.is_empty());
    assert_eq!(recovery.last_id, 200);
}

#[tokio::test]
async fn an_old_unsettled_message_is_copied_forward_instead_of_keeping_every_segment() {
    let dir = dir("compact");
    let options = JournalOptions { segment_size: 4096 };
    let (journal, _) = Journal::open(&dir, options).unwrap();
    // Message 1 is never consumed; a stream of others comes and goes behind it.
    persist(&journal, &message(1, "slow")).await;
    for id in 2..=500 {
        persist(&journal, &message(id, "fast")).await;
        journal.forget("fast", id);
    }
    journal.sync().await;
    let files = segment_files(&dir);
    assert!(
        files.len() <= 3,
        "the old message does not pin the journal: {files:?}"
    );
    assert!(
        !files.contains(&1),
        "the first segment went, its message copied forward"
    );
    drop(journal);

    let (journal, recovery) = Journal::open(&dir, options).unwrap();
    assert_eq!(ids(&recovery), [(1, "slow")]);
    // Settling it after it moved removes it for good.
    journal.forget("slow", 1);
    drop(journal);
    let (_journal, recovery) = Journal::open(&dir, options).unwrap();
    assert!(recovery.messages.is_empty());
}

#[tokio::test]
async fn a_closed_journal_refuses_to_persist() {
    let dir = dir("closed");
    let (journal, _) = Journal::open(&dir, JournalOptions::default()).unwrap();
    journal.close();
    let Persisted::Later(persisting) = journal.persist("q", &message(1, "q")) else {
        panic!("refused later");
    };
    assert_eq!(
        persisting.await,
        Err(StoreError("the journal is closed".to_owned()))
    );
}

#[tokio::test]
async fn a_new_count_is_kept_and_never_brings_back_a_message_settled_meanwhile() {
    let dir = dir("recount");
    let (journal, _) = Journal::open(&dir, JournalOptions::default()).unwrap();
    let mut counted = message(1, "q");
    persist(&journal, &counted).await;
    counted.delivery_count = 2;
    journal.recount("q", &counted);
    let gone = message(2, "q");
    persist(&journal, &gone).await;
    journal.forget("q", 2);
    // Counted after it was settled (a consumer elsewhere was faster): nothing to keep.
    journal.recount("q", &gone);
    let dropped = message(3, "r");
    persist(&journal, &dropped).await;
    journal.forget_address("r");
    journal.recount("r", &dropped);
    journal.sync().await;
    drop(journal);

    let (_journal, recovery) = Journal::open(&dir, JournalOptions::default()).unwrap();
    assert_eq!(ids(&recovery), [(1, "q")]);
    let recovered = Message::decode(1, recovery.messages[0].encoded.clone().into(), Arc::from("q")).unwrap();
    assert_eq!(recovered.delivery_count, 2);
}

#[tokio::test]
async fn a_transaction_record_keeps_its_adds_and_removes_together() {
    let dir = dir("transaction");
    let (journal, _) = Journal::open(&dir, JournalOptions::default()).unwrap();
    persist(&journal, &message(1, "q")).await;
    let (a, b) = (message(2, "q"), message(3, "audit"));
    match journal.commit(&[("q", &a), ("audit", &b)], &[1]) {
        Persisted::Later(persisting) => persisting.await.unwrap(),
        Persisted::Now => panic!("a journal commits after its sync"),
    }
    drop(journal);
    let (journal, recovery) = Journal::open(&dir, JournalOptions::default()).unwrap();
    assert_eq!(ids(&recovery), [(2, "q"), (3, "audit")]);
    // An add inside a transaction record is settled on its own like any other.
    journal.forget("q", 2);
    journal.sync().await;
    drop(journal);
    let (_journal, recovery) = Journal::open(&dir, JournalOptions::default()).unwrap();
    assert_eq!(ids(&recovery), [(3, "audit")]);
}
