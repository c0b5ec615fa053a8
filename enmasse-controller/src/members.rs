//! The Addresses and MessagingUsers of every namespace, as the space controller's watches see
//! them, and which of them changed since each space's last pass.
//!
//! A pass reads its space's members here rather than listing them from the API server. The
//! watches record the name of each member they bring, by space, in a journal; a pass copies out of
//! the store only the members the journal names, so that one address added to a space of
//! thousands costs a pass one lookup, not a walk over every Address of the cluster. A relist (a
//! watch that starts again and lists everything) says nothing of what changed: every space reads
//! its members whole once after it, and so does a space whose journal grew past
//! [`JOURNAL_PER_SPACE`] names before its pass.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use enmasse_types::resources::{address::Address, common::same_version, messaging_user::MessagingUser};
use kube::runtime::{
    reflector::{self, ObjectRef, Store, store::Writer},
    watcher,
};

/// How many changed members a journal keeps for one space before it says "read it whole" instead:
/// a space whose pass is held back (its namespace busy, the operator starting) must not make the
/// journal grow without bound.
const JOURNAL_PER_SPACE: usize = 4096;

/// How many spaces a journal keeps changes for: names of a space that never has a pass (an Address
/// named for a space that does not exist) stay until the next relist, and must not pile up. Beyond
/// this, every space reads its members whole once, as after a relist.
const JOURNAL_SPACES: usize = 16_384;

/// The Addresses and MessagingUsers of every namespace, kept current by the space controller's
/// watches, with what changed of each space.
#[derive(Clone)]
pub struct MemberStores {
    addresses: MemberStore<Address>,
    users: MemberStore<MessagingUser>,
}

/// One kind's store and its journal.
struct MemberStore<K: 'static + kube::Resource<DynamicType = ()>> {
    store: Store<K>,
    journal: Arc<Mutex<Journal>>,
}

impl<K: 'static + kube::Resource<DynamicType = ()>> Clone for MemberStore<K> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            journal: self.journal.clone(),
        }
    }
}

/// The writing side of [`MemberStores`], fed by the watches (or by a test).
pub struct MemberWriters {
    /// Addresses.
    pub addresses: MemberWriter<Address>,
    /// Messaging users.
    pub users: MemberWriter<MessagingUser>,
}

/// Applies one kind's watch events to its store, and records in its journal what they changed.
pub struct MemberWriter<K: 'static + kube::Resource<DynamicType = ()> + Clone> {
    store: Writer<K>,
    journal: Arc<Mutex<Journal>>,
}

/// The Addresses and MessagingUsers of one space (named `<space>.<name>`).
#[derive(Debug, Default)]
pub struct Members {
    /// Its addresses.
    pub addresses: Kept<Address>,
    /// Its users.
    pub users: Kept<MessagingUser>,
    /// The relist of each kind they were last read whole after (see [`Journal::relists`]); `None`
    /// before the first read.
    read: (Option<u64>, Option<u64>),
}

/// Members of one kind, in no particular order, found by name: one added or removed is put in or
/// taken out where it is, and nothing else moves (a sorted list would shift thousands).
#[derive(Debug)]
pub struct Kept<K> {
    items: Vec<K>,
    /// Where each is among `items`, by name.
    index: HashMap<String, usize>,
}

impl<K> Default for Kept<K> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<K> std::ops::Deref for Kept<K> {
    type Target = [K];

    fn deref(&self) -> &[K] {
        &self.items
    }
}

impl<K: kube::Resource> FromIterator<K> for Kept<K> {
    fn from_iter<I: IntoIterator<Item = K>>(objects: I) -> Self {
        let mut kept = Self::default();
        for object in objects {
            kept.put(object);
        }
        kept
    }
}

impl<K: kube::Resource> Kept<K> {
    /// The member named `name`.
    pub fn get(&self, name: &str) -> Option<&K> {
        self.index.get(name).map(|&i| &self.items[i])
    }

    /// Puts in `object`, or replaces the member of its name.
    fn put(&mut self, object: K) {
        let name = object.meta().name.clone().unwrap_or_default();
        match self.index.get(&name) {
            Some(&i) => self.items[i] = object,
            None => {
                self.index.insert(name, self.items.len());
                self.items.push(object);
            }
        }
    }

    /// Takes out the member named `name`: the last takes its place.
    fn take(&mut self, name: &str) -> Option<K> {
        let i = self.index.remove(name)?;
        let taken = self.items.swap_remove(i);
        if let Some(moved) = self.items.get(i) {
            self.index
                .insert(moved.meta().name.clone().unwrap_or_default(), i);
        }
        Some(taken)
    }
}

/// What a watch changed of each space since the space last read its members.
#[derive(Debug, Default)]
struct Journal {
    /// How many relists the watch completed (and times the journal was let go for its size):
    /// members read before the last one are read whole.
    relists: u64,
    /// The names of the members changed, by namespace and space.
    changed: HashMap<(String, String), Pending>,
}

/// What a space has to read again.
#[derive(Debug, PartialEq)]
enum Pending {
    /// These members, by name.
    Names(HashSet<String>),
    /// All of them: more changed than the journal keeps.
    Whole,
}

impl Journal {
    /// Records what `event` changes: the member it brings, or, at the end of a relist, everything.
    fn record<K: kube::Resource>(&mut self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::Apply(object) | watcher::Event::Delete(object) => {
                let meta = object.meta();
                // A member belongs to the space named before the first dot, as `evaluate` reads it.
                let (Some(namespace), Some((space, _))) = (
                    meta.namespace.as_deref(),
                    meta.name.as_deref().and_then(|n| n.split_once('.')),
                ) else {
                    return;
                };
                let Some(name) = meta.name.as_deref() else { return };
                if self.changed.len() >= JOURNAL_SPACES {
                    self.relists += 1;
                    self.changed.clear();
                }
                let pending = self
                    .changed
                    .entry((namespace.to_owned(), space.to_owned()))
                    .or_insert_with(|| Pending::Names(HashSet::new()));
                if let Pending::Names(names) = pending {
                    if names.len() < JOURNAL_PER_SPACE {
                        names.insert(name.to_owned());
                    } else if !names.contains(name) {
                        *pending = Pending::Whole;
                    }
                }
            }
            watcher::Event::InitDone => {
                self.relists += 1;
                self.changed.clear();
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }

    /// Takes what space `space` of `namespace` has to read again, given the relist its members
    /// were last read whole after: `None` when they are to be read whole.
    fn take(&mut self, namespace: &str, space: &str, read: Option<u64>) -> Option<HashSet<String>> {
        let pending = self.changed.remove(&(namespace.to_owned(), space.to_owned()));
        if read != Some(self.relists) {
            return None;
        }
        match pending {
            None => Some(HashSet::new()),
            Some(Pending::Names(names)) => Some(names),
            Some(Pending::Whole) => None,
        }
    }
}

impl<K> MemberWriter<K>
where
    K: 'static + kube::Resource<DynamicType = ()> + Clone,
{
    /// Applies `event` to the store, then records it in the journal. In that order: a pass that
    /// takes a name from the journal finds the store at least as new as the event that put it
    /// there.
    pub fn apply(&mut self, event: &watcher::Event<K>) {
        self.store.apply_watcher_event(event);
        self.journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(event);
    }

    /// Brings the store to `objects` the way a watch does once it has listed: one event per object
    /// added, changed (by resource version) or gone, or a relist while the store has not listed.
    #[cfg(test)]
    pub(crate) fn watch(&mut self, objects: Vec<K>) {
        use futures_util::FutureExt as _;
        let reader = self.store.as_reader();
        if reader.wait_until_ready().now_or_never().is_none() {
            self.apply(&watcher::Event::Init);
            for object in objects {
                self.apply(&watcher::Event::InitApply(object));
            }
            self.apply(&watcher::Event::InitDone);
            return;
        }
        let mut gone: HashMap<ObjectRef<K>, Arc<K>> = reader
            .state()
            .into_iter()
            .map(|k| (ObjectRef::from_obj(&*k), k))
            .collect();
        for object in objects {
            let known = gone.remove(&ObjectRef::from_obj(&object));
            if known.is_none_or(|k| k.meta().resource_version != object.meta().resource_version) {
                self.apply(&watcher::Event::Apply(object));
            }
        }
        for object in gone.into_values() {
            self.apply(&watcher::Event::Delete(K::clone(&object)));
        }
    }
}

impl MemberStores {
    /// Empty stores and their writers.
    pub fn new() -> (Self, MemberWriters) {
        fn kind<K: 'static + kube::Resource<DynamicType = ()> + Clone>() -> (MemberStore<K>, MemberWriter<K>)
        {
            let (store, writer) = reflector::store();
            let journal = Arc::new(Mutex::new(Journal::default()));
            (
                MemberStore {
                    store,
                    journal: journal.clone(),
                },
                MemberWriter {
                    store: writer,
                    journal,
                },
            )
        }
        let (addresses, addresses_writer) = kind();
        let (users, users_writer) = kind();
        (
            Self { addresses, users },
            MemberWriters {
                addresses: addresses_writer,
                users: users_writer,
            },
        )
    }

    /// Waits until both watches have listed their kind once: a space judged against a partial
    /// list would have addresses it does not know of removed from its broker.
    pub async fn synced(&self) -> bool {
        self.addresses.store.wait_until_ready().await.is_ok()
            && self.users.store.wait_until_ready().await.is_ok()
    }

    /// Brings `members` of space `space` of `namespace` up to what the watches last saw: only the
    /// members the journal names are looked up and copied, unless they are to be read whole.
    /// Returns the names of the addresses that may have changed; `None` when they were read whole.
    pub fn refresh(&self, namespace: &str, space: &str, members: &mut Members) -> Option<HashSet<String>> {
        self.users
            .refresh(namespace, space, &mut members.users, &mut members.read.1);
        self.addresses
            .refresh(namespace, space, &mut members.addresses, &mut members.read.0)
    }
}

impl<K> MemberStore<K>
where
    K: 'static + kube::Resource<DynamicType = ()> + Clone,
{
    /// Brings `kept`, last read whole after relist `read`, up to the members of `space` of
    /// `namespace` in the store. Returns the names looked up; `None` when read whole.
    fn refresh(
        &self,
        namespace: &str,
        space: &str,
        kept: &mut Kept<K>,
        read: &mut Option<u64>,
    ) -> Option<HashSet<String>> {
        let (relists, changed) = {
            let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
            (journal.relists, journal.take(namespace, space, *read))
        };
        match &changed {
            Some(names) => {
                for name in names {
                    let current = self.store.get(&ObjectRef::new(name).within(namespace));
                    update(kept, name, current);
                }
            }
            None => read_whole(&self.store, namespace, space, kept),
        }
        *read = Some(relists);
        changed
    }
}

/// Puts `current`, the member named `name` as the store holds it (`None`: gone), in `kept`; a
/// member of the same version is kept as it is.
fn update<K: kube::Resource + Clone>(kept: &mut Kept<K>, name: &str, current: Option<Arc<K>>) {
    match (kept.get(name), current) {
        (Some(k), Some(object)) if same_version(k.meta(), object.meta()) == Some(true) => {}
        (_, Some(object)) => kept.put(K::clone(&object)),
        (_, None) => {
            kept.take(name);
        }
    }
}

/// Makes `kept` the members of `space` of `namespace` in `store`, walking every object of the
/// store; only the members new or changed since are copied.
fn read_whole<K>(store: &Store<K>, namespace: &str, space: &str, kept: &mut Kept<K>)
where
    K: 'static + kube::Resource<DynamicType = ()> + Clone,
{
    let ours = |k: &Arc<K>| {
        k.meta().namespace.as_deref() == Some(namespace)
            && k.meta()
                .name
                .as_deref()
                .and_then(|n| n.split_once('.'))
                .is_some_and(|(owner, _)| owner == space)
    };
    let mut before = std::mem::take(kept);
    for object in store.state().into_iter().filter(ours) {
        let name = object.meta().name.as_deref().unwrap_or_default();
        match before.take(name) {
            Some(k) if same_version(k.meta(), object.meta()) == Some(true) => kept.put(k),
            _ => kept.put(K::clone(&object)),
        }
    }
}

#[cfg(test)]
mod tests;
