//! JMS message selectors: the SQL-92 subset of JMS 2.0 §3.8.1 that a consumer sends in the
//! `apache.org:selector-filter:string` filter, parsed once when it attaches and evaluated per message.
//!
//! The text comes from a network peer, so parsing is bounded: at most 4096 characters and 32 levels
//! of nesting, and a `LIKE` pattern is compiled once into a form that matches in O(pattern × value)
//! at worst. Evaluation never fails: whatever cannot be computed (an absent field, mismatched types,
//! overflow, division by zero) is SQL's *unknown*, which does not select.
//!
//! Where the spec leaves room:
//! - An empty or all-whitespace selector is an error ([`SelectorError::Empty`]); the caller treats
//!   it as no selector at all.
//! - Exact literals follow Artemis: decimal (`57`), hex (`0x1F`), and octal when written with a
//!   leading zero (`017` is 15), with an optional `L` suffix. One whose magnitude does not fit a
//!   64-bit signed integer is refused at parse; write it with an exponent (`1E20`) for a double.
//!   A decimal number with an `F` or `D` suffix, a point or an exponent is a double.
//! - Integer arithmetic that overflows is unknown, as is division by zero (integer or double).
//! - Identifiers are Java identifiers that may also contain `.` (AMQP property names such as `a.b`);
//!   a name in double quotes (`"my key"`, `""` for a quote) is an identifier whatever it contains.
//! - Types are checked at parse where the selector itself shows a mismatch: `1 AND a`, `'x' + 1`,
//!   `'a' < 'b'`, `TRUE = 1` and a bare `a + 1` are refused. Where an identifier hides the type,
//!   a mismatch found at evaluation is unknown.
//! - `IN` and `LIKE` are unknown when any operand is (and so are their `NOT` forms); `BETWEEN` is
//!   `>=` and `<=` joined by `AND`, so a NULL bound leaves the other half to decide. Comparisons do
//!   not chain (`a = b = c` is refused).
//! - `LIKE` is unknown for a text longer than 64 KiB: its cost is pattern × text, and a selector is
//!   evaluated for every message.

use std::borrow::Cow;

mod eval;
mod lexer;
mod like;
mod parser;
#[cfg(test)]
mod tests;

/// The longest selector accepted, in characters.
const MAX_CHARS: usize = 4096;
/// How deeply parentheses, `NOT` and unary signs may nest.
const MAX_DEPTH: usize = 32;

/// A parsed selector.
#[derive(Clone, Debug)]
pub struct Selector {
    text: Box<str>,
    root: parser::Expr,
}

impl Selector {
    /// Parses `text`. Errors name what is wrong and where (1-based column, counted in chars).
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        // Bytes bound chars from above, so only a long text needs counting.
        if text.len() > MAX_CHARS {
            let len = text.chars().count();
            if len > MAX_CHARS {
                return Err(SelectorError::TooLong { len, max: MAX_CHARS });
            }
        }
        if text.trim().is_empty() {
            return Err(SelectorError::Empty);
        }
        let tokens = lexer::tokenize(text)?;
        let root = parser::parse(&tokens)?;
        Ok(Self {
            text: text.into(),
            root,
        })
    }

    /// Whether a message with these fields is selected (SQL three-valued logic: unknown => not
    /// selected).
    pub fn matches(&self, fields: &dyn Fields) -> bool {
        eval::truth(&self.root, fields) == Some(true)
    }

    /// The text it was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// A field's value as the selector sees it; an absent field is `None` (SQL NULL).
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// A boolean.
    Bool(bool),
    /// Any exact number: AMQP's signed and unsigned integers up to 64 bits that fit.
    Long(i64),
    /// Any approximate number: AMQP's float and double.
    Double(f64),
    /// A string (or symbol).
    Str(Cow<'a, str>),
}

/// Looks up identifiers in a message (the broker implements this over properties, application
/// properties and header).
pub trait Fields {
    /// The value of the field `identifier` names (case-sensitive), or `None` when it is absent or
    /// of a type selectors cannot see.
    fn field(&self, identifier: &str) -> Option<Value<'_>>;
}

/// Why a selector was refused. Columns are 1-based and counted in characters.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SelectorError {
    /// The text is empty or only whitespace.
    #[error("empty selector")]
    Empty,
    /// The text is longer than allowed.
    #[error("selector is {len} characters long, more than the {max} allowed")]
    TooLong {
        /// Its length in characters.
        len: usize,
        /// The most allowed.
        max: usize,
    },
    /// Parentheses, `NOT` or unary signs nest deeper than allowed.
    #[error("selector nests deeper than {max} levels at column {column}")]
    TooDeep {
        /// Where the nesting went past the limit.
        column: usize,
        /// The deepest nesting allowed.
        max: usize,
    },
    /// Characters that make no token: an unterminated string, a malformed number, a stray `!`.
    #[error("{what} at column {column}")]
    Token {
        /// Where the token starts.
        column: usize,
        /// What is wrong with it.
        what: String,
    },
    /// A token where the grammar wants another.
    #[error("syntax error at column {column}: expected {expected}, found {found}")]
    Syntax {
        /// Where the unexpected token starts.
        column: usize,
        /// What the grammar allows there.
        expected: &'static str,
        /// The token found instead.
        found: String,
    },
    /// An operand whose type the selector itself shows cannot work there, like `'x' + 1`.
    #[error("type error at column {column}: {message}")]
    Type {
        /// Where the operand starts.
        column: usize,
        /// What was expected and found.
        message: String,
    },
}
