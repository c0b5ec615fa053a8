//! Entries kept by their address: what a broker's config and report hold for each of thousands of
//! addresses. One address added, replaced or removed is a lookup in a tree, not a move of every
//! entry after it, as keeping a sorted list would be. On the wire it is the same JSON array,
//! sorted by address; an array that lists one address twice is refused.

use std::collections::{BTreeMap, btree_map};
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};

/// An entry about one address.
pub trait Addressed {
    /// The AMQP address the entry is about.
    fn address(&self) -> &str;
}

/// Entries kept by their address, one each, iterated in address order.
///
/// An entry is never changed in place: it is replaced whole ([`Self::insert`]), so the address it
/// is kept under is always its own.
#[derive(Clone, PartialEq, Eq)]
pub struct ByAddress<T>(BTreeMap<String, T>);

impl<T> Default for ByAddress<T> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

impl<T: Addressed> ByAddress<T> {
    /// None.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `entry` in, and gives back the entry of the same address it replaces.
    pub fn insert(&mut self, entry: T) -> Option<T> {
        self.0.insert(entry.address().to_owned(), entry)
    }

    /// Takes out the entries of the addresses `removed`, then puts in each of `upserted`.
    pub fn change(&mut self, removed: &[String], upserted: impl IntoIterator<Item = T>) {
        for gone in removed {
            self.0.remove(gone);
        }
        self.extend(upserted);
    }
}

impl<T> ByAddress<T> {
    /// How many addresses.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entry of `address`.
    pub fn get(&self, address: &str) -> Option<&T> {
        self.0.get(address)
    }

    /// Whether `address` has an entry.
    pub fn contains(&self, address: &str) -> bool {
        self.0.contains_key(address)
    }

    /// Takes out the entry of `address`.
    pub fn remove(&mut self, address: &str) -> Option<T> {
        self.0.remove(address)
    }

    /// Keeps only the entries `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.0.retain(|_, entry| keep(entry));
    }

    /// The entries, in address order.
    pub fn iter(&self) -> btree_map::Values<'_, String, T> {
        self.0.values()
    }

    /// The addresses, in order.
    pub fn addresses(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.0.keys().map(String::as_str)
    }
}

impl<T: Addressed> FromIterator<T> for ByAddress<T> {
    /// Of two entries of one address, the later is kept.
    fn from_iter<I: IntoIterator<Item = T>>(entries: I) -> Self {
        let mut all = Self::new();
        all.extend(entries);
        all
    }
}

impl<T: Addressed> Extend<T> for ByAddress<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, entries: I) {
        for entry in entries {
            self.insert(entry);
        }
    }
}

impl<T: Addressed> From<Vec<T>> for ByAddress<T> {
    fn from(entries: Vec<T>) -> Self {
        entries.into_iter().collect()
    }
}

impl<T: Addressed, const N: usize> From<[T; N]> for ByAddress<T> {
    fn from(entries: [T; N]) -> Self {
        entries.into_iter().collect()
    }
}

impl<T> IntoIterator for ByAddress<T> {
    type Item = T;
    type IntoIter = btree_map::IntoValues<String, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_values()
    }
}

impl<'a, T> IntoIterator for &'a ByAddress<T> {
    type Item = &'a T;
    type IntoIter = btree_map::Values<'a, String, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.values()
    }
}

impl<T: fmt::Debug> fmt::Debug for ByAddress<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.values()).finish()
    }
}

impl<T: Serialize> Serialize for ByAddress<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.values())
    }
}

impl<'de, T: Deserialize<'de> + Addressed> Deserialize<'de> for ByAddress<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(EntriesVisitor(PhantomData))
    }
}

struct EntriesVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de> + Addressed> Visitor<'de> for EntriesVisitor<T> {
    type Value = ByAddress<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of addresses, each listed once")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut all = ByAddress::new();
        while let Some(entry) = seq.next_element::<T>()? {
            let address = entry.address().to_owned();
            if all.insert(entry).is_some() {
                return Err(de::Error::custom(format_args!(
                    "the address {address:?} is listed more than once"
                )));
            }
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Entry {
        address: String,
        depth: u64,
    }

    impl Addressed for Entry {
        fn address(&self) -> &str {
            &self.address
        }
    }

    fn entry(address: &str, depth: u64) -> Entry {
        Entry {
            address: address.into(),
            depth,
        }
    }

    #[test]
    fn entries_are_written_as_a_list_sorted_by_address_and_read_back_the_same() {
        let entries = ByAddress::from([entry("b", 1), entry("a", 2)]);
        let json = serde_json::to_string(&entries).unwrap();
        assert_eq!(json, r#"[{"address":"a","depth":2},{"address":"b","depth":1}]"#);
        assert_eq!(serde_json::from_str::<ByAddress<Entry>>(&json).unwrap(), entries);
    }

    #[test]
    fn a_list_that_names_one_address_twice_is_refused_naming_it() {
        let json = r#"[{"address":"a","depth":1},{"address":"b","depth":1},{"address":"a","depth":2}]"#;
        let error = serde_json::from_str::<ByAddress<Entry>>(json).unwrap_err();
        assert!(
            error
                .to_string()
                .contains(r#"the address "a" is listed more than once"#),
            "{error}"
        );
    }

    #[test]
    fn an_entry_put_in_replaces_the_one_of_its_address() {
        let mut entries = ByAddress::from([entry("a", 1), entry("b", 1)]);
        assert_eq!(entries.insert(entry("a", 5)), Some(entry("a", 1)));
        assert_eq!(entries.get("a"), Some(&entry("a", 5)));
        assert_eq!(entries.remove("b"), Some(entry("b", 1)));
        assert_eq!(entries.addresses().collect::<Vec<_>>(), ["a"]);
    }
}
