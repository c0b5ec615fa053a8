//! The error every rule returns when a manifest value breaks it.

use std::error::Error;

/// A value in a manifest that breaks one of EnMasse's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} {value:?}")]
pub struct InvalidField {
    /// Where the value is, as a dotted path (`metadata.name`, `spec.authorization[0].addresses[1]`).
    pub field: String,
    /// The value as written.
    pub value: String,
    /// The rule it breaks.
    #[source]
    pub violation: Violation,
}

impl InvalidField {
    /// An invalid value at `field`.
    pub fn new(field: impl Into<String>, value: impl Into<String>, violation: Violation) -> Self {
        Self {
            field: field.into(),
            value: value.into(),
            violation,
        }
    }

    /// The same error at `prefix.field` (for a rule checked on part of a resource).
    #[must_use]
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

/// The rules a manifest value can break.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// The value is empty where something is required.
    #[error("must not be empty")]
    Empty,
    /// The value is longer than allowed.
    #[error("must be at most {max} characters long")]
    TooLong {
        /// The longest allowed.
        max: usize,
    },
    /// The value does not follow a grammar.
    #[error("must {expected}")]
    Grammar {
        /// The grammar, in words.
        expected: &'static str,
    },
    /// The resource name does not start with its address space's name.
    #[error("must be <address space>.<name>, as in \"myspace.{example}\"")]
    NotInSpace {
        /// A name the user could have meant.
        example: String,
    },
    /// The value contains white space.
    #[error("must not contain white space")]
    Whitespace,
    /// The value uses a character sequence reserved for another purpose.
    #[error("must not contain {sequence:?}: {purpose}")]
    Reserved {
        /// The reserved sequence.
        sequence: &'static str,
        /// What it is reserved for.
        purpose: &'static str,
    },
    /// A wildcard where it has no meaning.
    #[error("may only use {allowed}")]
    Wildcard {
        /// The wildcards allowed here, in words.
        allowed: &'static str,
    },
    /// A required field is missing.
    #[error("is required {when}")]
    Missing {
        /// When it is required.
        when: &'static str,
    },
    /// The number is out of range.
    #[error("must be {range}")]
    OutOfRange {
        /// The allowed range, in words.
        range: &'static str,
    },
}

/// Renders an error and its causes on one line, as status messages and logs show them.
pub fn one_line(error: &dyn Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}
