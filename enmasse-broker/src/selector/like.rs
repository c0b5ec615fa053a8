//! `LIKE` patterns: compiled once at parse, matched over chars without exponential backtracking.

/// One element of a compiled pattern.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Part {
    /// This character and no other.
    Char(char),
    /// `_`: any one character.
    One,
    /// `%`: any run of characters, the empty one included.
    Any,
}

/// A compiled `LIKE` pattern.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Pattern {
    parts: Vec<Part>,
}

impl Pattern {
    /// Compiles `pattern`, where `escape` makes the character after it stand for itself. Fails
    /// when the pattern ends in its escape character.
    pub(super) fn compile(pattern: &str, escape: Option<char>) -> Option<Self> {
        let mut parts = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            let part = if Some(c) == escape {
                Part::Char(chars.next()?)
            } else {
                match c {
                    // `%%` matches what `%` does; one keeps the matcher's work down.
                    '%' if parts.last() == Some(&Part::Any) => continue,
                    '%' => Part::Any,
                    '_' => Part::One,
                    c => Part::Char(c),
                }
            };
            parts.push(part);
        }
        Some(Self { parts })
    }

    /// Whether all of `text` matches.
    ///
    /// Greedy, with one point to come back to: the latest `%`. A mismatch lets that `%` swallow
    /// one more character and resumes after it. An earlier `%` never needs revisiting, since the
    /// latest one can absorb whatever it would have, so the work is O(pattern × text) at worst.
    pub(super) fn matches(&self, text: &str) -> bool {
        let char_at = |byte: usize| text.get(byte..).and_then(|rest| rest.chars().next());
        // The next part to match and the byte offset of the next character of text.
        let (mut part, mut at) = (0, 0);
        // The part after the latest `%`, and where in text that `%` stops for now.
        let mut resume: Option<(usize, usize)> = None;
        while let Some(c) = char_at(at) {
            match self.parts.get(part) {
                Some(Part::Any) => {
                    part += 1;
                    resume = Some((part, at));
                }
                Some(Part::One) => {
                    part += 1;
                    at += c.len_utf8();
                }
                Some(Part::Char(wanted)) if *wanted == c => {
                    part += 1;
                    at += c.len_utf8();
                }
                _ => {
                    let Some((after, stop)) = resume else {
                        return false;
                    };
                    let stop = stop + char_at(stop).map_or(1, char::len_utf8);
                    resume = Some((after, stop));
                    (part, at) = (after, stop);
                }
            }
        }
        self.parts
            .get(part..)
            .unwrap_or_default()
            .iter()
            .all(|p| *p == Part::Any)
    }
}
