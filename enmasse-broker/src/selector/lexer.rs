//! Turns selector text into tokens, each with the column it starts at.

use super::SelectorError;

/// One token of a selector.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Str(String),
    /// An exact number's magnitude, at most 2^63 so that `-9223372036854775808` can be written;
    /// a sign in front is a token of its own.
    Int(u64),
    Float(f64),
    Kw(Keyword),
    LParen,
    RParen,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    End,
}

/// The reserved words, matched case-insensitively.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Keyword {
    Null,
    True,
    False,
    Not,
    And,
    Or,
    Between,
    Like,
    In,
    Is,
    Escape,
}

const KEYWORDS: [(&str, Keyword); 11] = [
    ("NULL", Keyword::Null),
    ("TRUE", Keyword::True),
    ("FALSE", Keyword::False),
    ("NOT", Keyword::Not),
    ("AND", Keyword::And),
    ("OR", Keyword::Or),
    ("BETWEEN", Keyword::Between),
    ("LIKE", Keyword::Like),
    ("IN", Keyword::In),
    ("IS", Keyword::Is),
    ("ESCAPE", Keyword::Escape),
];

impl Keyword {
    fn name(self) -> &'static str {
        KEYWORDS
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("?", |(name, _)| name)
    }
}

/// A token and the 1-based column of its first character.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) column: usize,
}

impl Tok {
    /// How an error message names this token.
    pub(super) fn describe(&self) -> String {
        let fixed = match self {
            Tok::Ident(name) => return format!("identifier `{}`", shorten(name)),
            Tok::Str(text) => return format!("string '{}'", shorten(text)),
            Tok::Int(n) => return format!("number {n}"),
            Tok::Float(x) => return format!("number {x}"),
            Tok::Kw(k) => return format!("`{}`", k.name()),
            Tok::LParen => "`(`",
            Tok::RParen => "`)`",
            Tok::Comma => "`,`",
            Tok::Plus => "`+`",
            Tok::Minus => "`-`",
            Tok::Star => "`*`",
            Tok::Slash => "`/`",
            Tok::Eq => "`=`",
            Tok::Ne => "`<>`",
            Tok::Lt => "`<`",
            Tok::Le => "`<=`",
            Tok::Gt => "`>`",
            Tok::Ge => "`>=`",
            Tok::End => "end of selector",
        };
        fixed.to_owned()
    }
}

/// Peer-supplied text cut short enough to quote in an error message.
pub(super) fn shorten(text: &str) -> String {
    const MAX: usize = 32;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", text.get(..end).unwrap_or_default()),
        None => text.to_owned(),
    }
}

/// The tokens of `text`, ending with [`Tok::End`].
pub(super) fn tokenize(text: &str) -> Result<Vec<Token>, SelectorError> {
    let mut cursor = Cursor {
        chars: text.chars().collect(),
        pos: 0,
    };
    let mut tokens = Vec::new();
    loop {
        while cursor.peek().is_some_and(char::is_whitespace) {
            cursor.pos += 1;
        }
        let column = cursor.pos + 1;
        let Some(c) = cursor.peek() else {
            tokens.push(Token {
                tok: Tok::End,
                column,
            });
            return Ok(tokens);
        };
        let tok = match c {
            '\'' => Tok::Str(
                cursor
                    .quoted('\'')
                    .ok_or_else(|| invalid(column, "unterminated string"))?,
            ),
            '"' => Tok::Ident(
                cursor
                    .quoted('"')
                    .ok_or_else(|| invalid(column, "unterminated quoted identifier"))?,
            ),
            '0'..='9' => cursor.number(column)?,
            '.' if cursor.peek_at(1).is_some_and(|c| c.is_ascii_digit()) => cursor.number(column)?,
            c if is_identifier_start(c) => cursor.word(),
            _ => cursor.operator(column)?,
        };
        tokens.push(Token { tok, column });
    }
}

/// Java's identifier characters, plus `.` after the first so that `a.b` is one name.
fn is_identifier_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

fn is_identifier_part(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || c == '.'
}

fn invalid(column: usize, what: impl Into<String>) -> SelectorError {
    SelectorError::Token {
        column,
        what: what.into(),
    }
}

struct Cursor {
    chars: Vec<char>,
    pos: usize,
}

impl Cursor {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn eat(&mut self, wanted: impl Fn(char) -> bool) -> bool {
        let hit = self.peek().is_some_and(wanted);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn take_while(&mut self, wanted: impl Fn(char) -> bool) -> String {
        let start = self.pos;
        while self.eat(&wanted) {}
        self.since(start)
    }

    fn since(&self, start: usize) -> String {
        self.chars
            .get(start..self.pos)
            .unwrap_or_default()
            .iter()
            .collect()
    }

    /// Text between `quote`s, a doubled quote standing for one; `None` if it never closes.
    fn quoted(&mut self, quote: char) -> Option<String> {
        self.pos += 1;
        let mut text = String::new();
        loop {
            let c = self.peek()?;
            self.pos += 1;
            if c == quote && !self.eat(|c| c == quote) {
                return Some(text);
            }
            text.push(c);
        }
    }

    fn word(&mut self) -> Tok {
        let word = self.take_while(is_identifier_part);
        match KEYWORDS.iter().find(|(name, _)| name.eq_ignore_ascii_case(&word)) {
            Some((_, keyword)) => Tok::Kw(*keyword),
            None => Tok::Ident(word),
        }
    }

    /// `0x1F`, `017` (octal), `57`, `57L`, `7.`, `.5`, `-57.9E2` less its sign, `7F`, `7D`.
    fn number(&mut self, column: usize) -> Result<Tok, SelectorError> {
        let start = self.pos;
        let hex = self.peek() == Some('0') && matches!(self.peek_at(1), Some('x' | 'X'));
        let (digits, radix, mut float) = if hex {
            self.pos += 2;
            (self.take_while(|c| c.is_ascii_hexdigit()), 16, false)
        } else {
            let mut digits = self.take_while(|c| c.is_ascii_digit());
            let mut float = false;
            if self.eat(|c| c == '.') {
                digits.push('.');
                digits.push_str(&self.take_while(|c| c.is_ascii_digit()));
                float = true;
            }
            let signed = matches!(self.peek_at(1), Some('+' | '-'));
            let exponent_digit = self.peek_at(if signed { 2 } else { 1 });
            if matches!(self.peek(), Some('e' | 'E')) && exponent_digit.is_some_and(|c| c.is_ascii_digit()) {
                let marker = self.pos;
                self.pos += if signed { 2 } else { 1 };
                digits.push_str(&self.since(marker));
                digits.push_str(&self.take_while(|c| c.is_ascii_digit()));
                float = true;
            }
            let octal = !float && digits.len() > 1 && digits.starts_with('0');
            (digits, if octal { 8 } else { 10 }, float)
        };
        if !hex && self.eat(|c| matches!(c, 'f' | 'F' | 'd' | 'D')) {
            float = true;
        } else if !float {
            self.eat(|c| matches!(c, 'l' | 'L'));
        }
        // `12ab` or `1.2.3` is one malformed number, not a number and a name.
        let trailing = self.peek().is_some_and(is_identifier_part);
        self.take_while(is_identifier_part);
        let lexeme = self.since(start);
        let malformed = || invalid(column, format!("malformed number `{}`", shorten(&lexeme)));
        if trailing {
            return Err(malformed());
        }
        if float {
            let value: f64 = digits.parse().map_err(|_| malformed())?;
            if !value.is_finite() {
                return Err(invalid(
                    column,
                    format!("number `{}` out of range", shorten(&lexeme)),
                ));
            }
            return Ok(Tok::Float(value));
        }
        let magnitude = u64::from_str_radix(&digits, radix).map_err(|e| {
            if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) {
                invalid(column, format!("integer `{}` out of range", shorten(&lexeme)))
            } else {
                malformed()
            }
        })?;
        if magnitude > i64::MIN.unsigned_abs() {
            return Err(invalid(
                column,
                format!("integer `{}` out of range", shorten(&lexeme)),
            ));
        }
        Ok(Tok::Int(magnitude))
    }

    fn operator(&mut self, column: usize) -> Result<Tok, SelectorError> {
        let c = self.peek().unwrap_or_default();
        self.pos += 1;
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            '+' => Tok::Plus,
            '-' => Tok::Minus,
            '*' => Tok::Star,
            '/' => Tok::Slash,
            '=' => Tok::Eq,
            '<' if self.eat(|c| c == '=') => Tok::Le,
            '<' if self.eat(|c| c == '>') => Tok::Ne,
            '<' => Tok::Lt,
            '>' if self.eat(|c| c == '=') => Tok::Ge,
            '>' => Tok::Gt,
            '!' if self.peek() == Some('=') => return Err(invalid(column, "`!=` (not equal is `<>`)")),
            _ => return Err(invalid(column, format!("unexpected character `{c}`"))),
        };
        Ok(tok)
    }
}
