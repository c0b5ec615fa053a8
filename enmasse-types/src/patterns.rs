//! Address patterns: the addresses a `MessagingUser`'s rights cover, and the topic filters receivers
//! subscribe with.
//!
//! In a `standard` space a pattern is an address, or a prefix followed by `*` (`top*` covers `topic`
//! and `topic/sub`). In a `brokered` space patterns are words separated by `/`: `+` stands for
//! exactly one word, `#` (or `*`, its EnMasse spelling) for any number of words, zero included
//! (`topic/+` covers `topic/sub` but not `topic/s/sub`; `topic/#` covers both, and `topic`).
//! Topic filters use the brokered form.

use crate::{
    error::{InvalidField, Violation},
    resources::address_space::AddressSpaceType,
};

/// A pattern of addresses.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AddressPattern {
    /// Exactly this address.
    Exact(String),
    /// Every address that starts with this prefix (`*` alone is the empty prefix: everything).
    Prefix(String),
    /// `/`-separated words with `+` and `#` wildcards.
    Words(WordPattern),
}

impl AddressPattern {
    /// Parses a pattern as written in a `MessagingUser` of a space of the given type.
    pub fn parse(pattern: &str, space_type: AddressSpaceType) -> Result<Self, InvalidField> {
        let invalid = |v| InvalidField::new("", pattern, v);
        if pattern.is_empty() {
            return Err(invalid(Violation::Empty));
        }
        if pattern.chars().any(char::is_whitespace) {
            return Err(invalid(Violation::Whitespace));
        }
        match space_type {
            AddressSpaceType::Standard => match pattern.find('*') {
                None => Ok(Self::Exact(pattern.to_owned())),
                Some(at) if at == pattern.len() - 1 => Ok(Self::Prefix(pattern[..at].to_owned())),
                Some(_) => Err(invalid(Violation::Wildcard {
                    allowed: "a single '*' at the end in a standard address space",
                })),
            },
            AddressSpaceType::Brokered => {
                let words = WordPattern::parse(pattern, true).map_err(invalid)?;
                Ok(if words.has_wildcards() {
                    Self::Words(words)
                } else {
                    Self::Exact(pattern.to_owned())
                })
            }
        }
    }

    /// Whether the pattern covers `address`.
    pub fn matches(&self, address: &str) -> bool {
        match self {
            Self::Exact(exact) => exact == address,
            Self::Prefix(prefix) => address.starts_with(prefix.as_str()),
            Self::Words(words) => words.matches(address),
        }
    }
}

/// One word of a [`WordPattern`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Word {
    /// This word exactly.
    Literal(String),
    /// Any one word (`+`).
    One,
    /// Any number of words, zero included (`#`).
    Any,
}

/// A `/`-separated pattern with `+` (one word) and `#` (any words) wildcards.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WordPattern {
    words: Vec<Word>,
}

impl WordPattern {
    /// Parses a pattern; with `star_is_any`, a `*` word means `#` as in EnMasse's brokered patterns.
    pub fn parse(pattern: &str, star_is_any: bool) -> Result<Self, Violation> {
        if pattern.is_empty() {
            return Err(Violation::Empty);
        }
        let mut words = Vec::new();
        for word in pattern.split('/') {
            words.push(match word {
                "+" => Word::One,
                "#" => Word::Any,
                "*" if star_is_any => Word::Any,
                _ if word.contains(['+', '#']) || (star_is_any && word.contains('*')) => {
                    return Err(Violation::Wildcard {
                        allowed: "'+' and '#' as whole '/'-separated words",
                    });
                }
                _ => Word::Literal(word.to_owned()),
            });
        }
        Ok(Self { words })
    }

    /// Whether any word is a wildcard.
    pub fn has_wildcards(&self) -> bool {
        self.words.iter().any(|w| !matches!(w, Word::Literal(_)))
    }

    /// Whether the pattern covers `address`.
    ///
    /// Runs in O(words × pattern words) without recursion: `#` is matched like `*` in a glob, by
    /// remembering the last `#` and retrying from one word further on a mismatch.
    pub fn matches(&self, address: &str) -> bool {
        let subject: Vec<&str> = address.split('/').collect();
        let (mut p, mut s) = (0, 0);
        let mut backtrack: Option<(usize, usize)> = None;
        while s < subject.len() {
            match self.words.get(p) {
                Some(Word::Any) => {
                    backtrack = Some((p, s));
                    p += 1;
                }
                Some(Word::One) => {
                    p += 1;
                    s += 1;
                }
                Some(Word::Literal(word)) if word == subject[s] => {
                    p += 1;
                    s += 1;
                }
                _ => match backtrack {
                    Some((any_at, from)) => {
                        p = any_at + 1;
                        s = from + 1;
                        backtrack = Some((any_at, from + 1));
                    }
                    None => return false,
                },
            }
        }
        self.words[p..].iter().all(|w| *w == Word::Any)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn standard(p: &str) -> AddressPattern {
        AddressPattern::parse(p, AddressSpaceType::Standard).unwrap()
    }

    fn brokered(p: &str) -> AddressPattern {
        AddressPattern::parse(p, AddressSpaceType::Brokered).unwrap()
    }

    #[test]
    fn standard_patterns_are_exact_or_a_trailing_star_prefix() {
        assert!(standard("orders").matches("orders"));
        assert!(!standard("orders").matches("orders2"));
        assert!(standard("top*").matches("topic"));
        assert!(standard("top*").matches("topic/sub"));
        assert!(!standard("top*").matches("to"));
        assert!(standard("*").matches("anything/at/all"));
        assert!(AddressPattern::parse("a*b", AddressSpaceType::Standard).is_err());
        assert!(AddressPattern::parse("", AddressSpaceType::Standard).is_err());
    }

    #[test]
    fn brokered_patterns_match_whole_words() {
        assert!(brokered("topic/+").matches("topic/sub"));
        assert!(!brokered("topic/+").matches("topic/s/sub"));
        assert!(!brokered("topic/+").matches("topic"));
        assert!(brokered("topic/*").matches("topic/sub"));
        assert!(brokered("topic/*").matches("topic/s/sub"));
        assert!(brokered("topic/#").matches("topic"));
        assert!(brokered("#/temp").matches("a/b/temp"));
        assert!(!brokered("#/temp").matches("a/b/temperature"));
        assert!(brokered("orders").matches("orders"));
        assert!(AddressPattern::parse("top+c", AddressSpaceType::Brokered).is_err());
    }

    /// The obvious recursive definition, to check the iterative matcher against.
    fn reference(pattern: &[Word], subject: &[&str]) -> bool {
        match (pattern.first(), subject.first()) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some(Word::Any), _) => {
                reference(&pattern[1..], subject)
                    || (!subject.is_empty() && reference(pattern, &subject[1..]))
            }
            (Some(_), None) => false,
            (Some(Word::One), Some(_)) => reference(&pattern[1..], &subject[1..]),
            (Some(Word::Literal(w)), Some(s)) => w == s && reference(&pattern[1..], &subject[1..]),
        }
    }

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just("".to_owned()),
            Just("ab".to_owned())
        ]
    }

    proptest! {
        #[test]
        fn word_patterns_agree_with_the_recursive_definition(
            pattern in prop::collection::vec(prop_oneof![
                word().prop_map(Word::Literal), Just(Word::One), Just(Word::Any)
            ], 1..6),
            subject in prop::collection::vec(word(), 1..7),
        ) {
            let text: Vec<String> = pattern.iter().map(|w| match w {
                Word::Literal(l) => l.clone(),
                Word::One => "+".to_owned(),
                Word::Any => "#".to_owned(),
            }).collect();
            prop_assume!(!text.join("/").is_empty());
            let parsed = WordPattern::parse(&text.join("/"), false).unwrap();
            let subject_refs: Vec<&str> = subject.iter().map(String::as_str).collect();
            prop_assert_eq!(parsed.matches(&subject.join("/")), reference(&pattern, &subject_refs));
        }

        #[test]
        fn standard_prefix_patterns_agree_with_starts_with(prefix in "[a-c/]{0,4}", address in "[a-c/]{0,6}") {
            let pattern = standard(&format!("{prefix}*"));
            prop_assert_eq!(pattern.matches(&address), address.starts_with(&prefix));
        }
    }
}
