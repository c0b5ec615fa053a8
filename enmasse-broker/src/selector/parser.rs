//! The selector grammar, by recursive descent, into an expression tree; types are checked where
//! the text itself shows them.
//!
//! From loosest to tightest binding:
//!
//! ```text
//! or         := and (OR and)*
//! and        := not (AND not)*
//! not        := NOT not | comparison
//! comparison := sum [ (= | <> | < | <= | > | >=) sum
//!                   | [NOT] BETWEEN sum AND sum
//!                   | [NOT] IN ( string (, string)* )
//!                   | [NOT] LIKE string [ESCAPE string]
//!                   | IS [NOT] NULL ]
//! sum        := product ((+ | -) product)*
//! product    := unary ((* | /) unary)*
//! unary      := (+ | -) unary | primary
//! primary    := literal | identifier | ( or )
//! ```
//!
//! Only `(`, `NOT` and unary signs recurse, and they count against the depth limit; runs of `AND`,
//! `OR` and arithmetic become one node each, so the tree is no deeper than the nesting.

use std::borrow::Cow;

use super::{
    MAX_DEPTH, SelectorError, Value,
    lexer::{Keyword, Tok, Token},
    like::Pattern,
};

/// A node of a parsed selector.
#[derive(Clone, Debug)]
pub(super) enum Expr {
    Literal(Value<'static>),
    Null,
    Field(Box<str>),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Unary(Sign, Box<Expr>),
    /// Operators of one precedence level, applied left to right.
    Arithmetic(Box<Expr>, Vec<(ArithmeticOp, Expr)>),
    Compare(Box<Expr>, CompareOp, Box<Expr>),
    Between {
        value: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
    },
    In {
        value: Box<Expr>,
        list: Vec<Box<str>>,
    },
    Like {
        value: Box<Expr>,
        pattern: Pattern,
    },
    IsNull(Box<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sign {
    Plus,
    Minus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ArithmeticOp {
    Add,
    Subtract,
    Multiply,
    Divide,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// What an expression yields, as far as the text shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bool,
    Number,
    String,
    /// An identifier or `NULL`: anything, known only per message.
    Unknown,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Bool => "a boolean",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Unknown => "a value",
        }
    }
}

impl Expr {
    fn kind(&self) -> Kind {
        match self {
            Expr::Literal(Value::Bool(_)) => Kind::Bool,
            Expr::Literal(Value::Long(_) | Value::Double(_)) => Kind::Number,
            Expr::Literal(Value::Str(_)) => Kind::String,
            Expr::Null | Expr::Field(_) => Kind::Unknown,
            Expr::Unary(..) | Expr::Arithmetic(..) => Kind::Number,
            Expr::Not(_)
            | Expr::And(_)
            | Expr::Or(_)
            | Expr::Compare(..)
            | Expr::Between { .. }
            | Expr::In { .. }
            | Expr::Like { .. }
            | Expr::IsNull(_) => Kind::Bool,
        }
    }
}

/// Parses `tokens`, which end with [`Tok::End`], into a boolean expression.
pub(super) fn parse(tokens: &[Token]) -> Result<Expr, SelectorError> {
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let column = parser.column();
    let root = parser.or()?;
    if *parser.peek() != Tok::End {
        return Err(parser.unexpected("`AND`, `OR` or end of selector"));
    }
    want(&root, Kind::Bool, column, "the selector")?;
    Ok(root)
}

/// Refuses `expr`, found at `column` as an operand of `what`, if it is known not to be `kind`.
fn want(expr: &Expr, kind: Kind, column: usize, what: &str) -> Result<(), SelectorError> {
    let found = expr.kind();
    if found == kind || found == Kind::Unknown {
        return Ok(());
    }
    let message = format!("{what} needs {}, found {}", kind.name(), found.name());
    Err(SelectorError::Type { column, message })
}

fn not_if(negated: bool, expr: Expr) -> Expr {
    if negated { Expr::Not(Box::new(expr)) } else { expr }
}

struct Parser<'t> {
    tokens: &'t [Token],
    pos: usize,
    depth: usize,
}

type Parsed = Result<Expr, SelectorError>;

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.tokens.get(self.pos).map_or(&Tok::End, |t| &t.tok)
    }

    fn column(&self) -> usize {
        self.tokens
            .get(self.pos)
            .or(self.tokens.last())
            .map_or(1, |t| t.column)
    }

    fn bump(&mut self) {
        self.pos = (self.pos + 1).min(self.tokens.len());
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        let hit = self.peek() == tok;
        if hit {
            self.bump();
        }
        hit
    }

    fn eat_keyword(&mut self, keyword: Keyword) -> bool {
        self.eat(&Tok::Kw(keyword))
    }

    fn expect(&mut self, tok: Tok, expected: &'static str) -> Result<(), SelectorError> {
        if self.eat(&tok) {
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn unexpected(&self, expected: &'static str) -> SelectorError {
        SelectorError::Syntax {
            column: self.column(),
            expected,
            found: self.peek().describe(),
        }
    }

    fn string(&mut self, expected: &'static str) -> Result<String, SelectorError> {
        match self.peek() {
            Tok::Str(text) => {
                let text = text.clone();
                self.bump();
                Ok(text)
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    /// Goes one level deeper for the construct at `column`, or fails past the limit.
    fn enter(&mut self, column: usize) -> Result<(), SelectorError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(SelectorError::TooDeep {
                column,
                max: MAX_DEPTH,
            });
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn or(&mut self) -> Parsed {
        self.logical(Keyword::Or, Self::and, Expr::Or)
    }

    fn and(&mut self) -> Parsed {
        self.logical(Keyword::And, Self::not, Expr::And)
    }

    /// A run of `operand`s joined by `keyword`, as one node.
    fn logical(
        &mut self,
        keyword: Keyword,
        operand: fn(&mut Self) -> Parsed,
        node: fn(Vec<Expr>) -> Expr,
    ) -> Parsed {
        let what = if keyword == Keyword::And { "`AND`" } else { "`OR`" };
        let column = self.column();
        let first = operand(self)?;
        if *self.peek() != Tok::Kw(keyword) {
            return Ok(first);
        }
        want(&first, Kind::Bool, column, what)?;
        let mut terms = vec![first];
        while self.eat_keyword(keyword) {
            let column = self.column();
            let term = operand(self)?;
            want(&term, Kind::Bool, column, what)?;
            terms.push(term);
        }
        Ok(node(terms))
    }

    fn not(&mut self) -> Parsed {
        let column = self.column();
        if !self.eat_keyword(Keyword::Not) {
            return self.comparison();
        }
        self.enter(column)?;
        let operand_column = self.column();
        let operand = self.not()?;
        self.leave();
        want(&operand, Kind::Bool, operand_column, "`NOT`")?;
        Ok(Expr::Not(Box::new(operand)))
    }

    fn comparison(&mut self) -> Parsed {
        let column = self.column();
        let left = self.sum()?;
        if let Some(op) = compare_op(self.peek()) {
            self.bump();
            let right_column = self.column();
            let right = self.sum()?;
            check_comparison(op, (&left, column), (&right, right_column))?;
            return Ok(Expr::Compare(Box::new(left), op, Box::new(right)));
        }
        if self.eat_keyword(Keyword::Is) {
            let negated = self.eat_keyword(Keyword::Not);
            self.expect(Tok::Kw(Keyword::Null), "`NULL`")?;
            return Ok(not_if(negated, Expr::IsNull(Box::new(left))));
        }
        let negated = self.eat_keyword(Keyword::Not);
        let value = Box::new(left);
        let expr = if self.eat_keyword(Keyword::Between) {
            want(&value, Kind::Number, column, "`BETWEEN`")?;
            let low = self.bound()?;
            self.expect(Tok::Kw(Keyword::And), "`AND`")?;
            let high = self.bound()?;
            Expr::Between { value, low, high }
        } else if self.eat_keyword(Keyword::In) {
            want(&value, Kind::String, column, "`IN`")?;
            Expr::In {
                value,
                list: self.in_list()?,
            }
        } else if self.eat_keyword(Keyword::Like) {
            want(&value, Kind::String, column, "`LIKE`")?;
            Expr::Like {
                value,
                pattern: self.like_pattern()?,
            }
        } else if negated {
            return Err(self.unexpected("`BETWEEN`, `IN` or `LIKE`"));
        } else {
            return Ok(*value);
        };
        Ok(not_if(negated, expr))
    }

    fn bound(&mut self) -> Result<Box<Expr>, SelectorError> {
        let column = self.column();
        let bound = self.sum()?;
        want(&bound, Kind::Number, column, "`BETWEEN`")?;
        Ok(Box::new(bound))
    }

    fn in_list(&mut self) -> Result<Vec<Box<str>>, SelectorError> {
        self.expect(Tok::LParen, "`(`")?;
        let mut list = vec![self.string("a string literal")?.into()];
        while self.eat(&Tok::Comma) {
            list.push(self.string("a string literal")?.into());
        }
        self.expect(Tok::RParen, "`,` or `)`")?;
        Ok(list)
    }

    fn like_pattern(&mut self) -> Result<Pattern, SelectorError> {
        let column = self.column();
        let pattern = self.string("a string pattern")?;
        let mut escape = None;
        if self.eat_keyword(Keyword::Escape) {
            let escape_column = self.column();
            let text = self.string("a string of one character")?;
            let mut chars = text.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                return Err(SelectorError::Syntax {
                    column: escape_column,
                    expected: "a string of one character",
                    found: Tok::Str(text).describe(),
                });
            };
            escape = Some(c);
        }
        Pattern::compile(&pattern, escape).ok_or_else(|| SelectorError::Token {
            column,
            what: "LIKE pattern ending in its escape character".to_owned(),
        })
    }

    fn sum(&mut self) -> Parsed {
        self.arithmetic(Self::product, |tok| match tok {
            Tok::Plus => Some((ArithmeticOp::Add, "`+`")),
            Tok::Minus => Some((ArithmeticOp::Subtract, "`-`")),
            _ => None,
        })
    }

    fn product(&mut self) -> Parsed {
        self.arithmetic(Self::unary, |tok| match tok {
            Tok::Star => Some((ArithmeticOp::Multiply, "`*`")),
            Tok::Slash => Some((ArithmeticOp::Divide, "`/`")),
            _ => None,
        })
    }

    /// A run of `operand`s joined by the operators `op` knows, as one node.
    fn arithmetic(
        &mut self,
        operand: fn(&mut Self) -> Parsed,
        op: fn(&Tok) -> Option<(ArithmeticOp, &'static str)>,
    ) -> Parsed {
        let column = self.column();
        let first = operand(self)?;
        let Some((_, what)) = op(self.peek()) else {
            return Ok(first);
        };
        want(&first, Kind::Number, column, what)?;
        let mut rest = Vec::new();
        while let Some((op, what)) = op(self.peek()) {
            self.bump();
            let column = self.column();
            let next = operand(self)?;
            want(&next, Kind::Number, column, what)?;
            rest.push((op, next));
        }
        Ok(Expr::Arithmetic(Box::new(first), rest))
    }

    fn unary(&mut self) -> Parsed {
        let column = self.column();
        let sign = match self.peek() {
            Tok::Plus => Sign::Plus,
            Tok::Minus => Sign::Minus,
            _ => return self.primary(),
        };
        self.bump();
        // A signed number is one literal, so that -9223372036854775808 fits.
        let negative = sign == Sign::Minus;
        match *self.peek() {
            Tok::Int(magnitude) => {
                self.bump();
                return integer(magnitude, negative, column);
            }
            Tok::Float(x) => {
                self.bump();
                return Ok(Expr::Literal(Value::Double(if negative { -x } else { x })));
            }
            _ => {}
        }
        self.enter(column)?;
        let operand_column = self.column();
        let operand = self.unary()?;
        self.leave();
        want(
            &operand,
            Kind::Number,
            operand_column,
            if negative { "`-`" } else { "`+`" },
        )?;
        Ok(Expr::Unary(sign, Box::new(operand)))
    }

    fn primary(&mut self) -> Parsed {
        let column = self.column();
        let expr = match self.peek() {
            Tok::LParen => {
                self.bump();
                self.enter(column)?;
                let inner = self.or()?;
                self.leave();
                self.expect(Tok::RParen, "`)`")?;
                return Ok(inner);
            }
            Tok::Int(magnitude) => integer(*magnitude, false, column)?,
            Tok::Float(x) => Expr::Literal(Value::Double(*x)),
            Tok::Str(text) => Expr::Literal(Value::Str(Cow::Owned(text.clone()))),
            Tok::Ident(name) => Expr::Field(name.as_str().into()),
            Tok::Kw(Keyword::True) => Expr::Literal(Value::Bool(true)),
            Tok::Kw(Keyword::False) => Expr::Literal(Value::Bool(false)),
            Tok::Kw(Keyword::Null) => Expr::Null,
            _ => return Err(self.unexpected("an identifier, a literal or `(`")),
        };
        self.bump();
        Ok(expr)
    }
}

fn compare_op(tok: &Tok) -> Option<CompareOp> {
    Some(match tok {
        Tok::Eq => CompareOp::Eq,
        Tok::Ne => CompareOp::Ne,
        Tok::Lt => CompareOp::Lt,
        Tok::Le => CompareOp::Le,
        Tok::Gt => CompareOp::Gt,
        Tok::Ge => CompareOp::Ge,
        _ => return None,
    })
}

/// `=` and `<>` take any two operands of one kind; the orderings take numbers only.
fn check_comparison(op: CompareOp, left: (&Expr, usize), right: (&Expr, usize)) -> Result<(), SelectorError> {
    let (left_kind, right_kind) = (left.0.kind(), right.0.kind());
    match op {
        CompareOp::Eq | CompareOp::Ne => {
            if left_kind == Kind::Unknown || right_kind == Kind::Unknown || left_kind == right_kind {
                return Ok(());
            }
            let message = format!("cannot compare {} with {}", left_kind.name(), right_kind.name());
            Err(SelectorError::Type {
                column: right.1,
                message,
            })
        }
        _ => {
            want(left.0, Kind::Number, left.1, "an ordering comparison")?;
            want(right.0, Kind::Number, right.1, "an ordering comparison")
        }
    }
}

/// The literal for a number `magnitude` written after a minus sign or not.
fn integer(magnitude: u64, negative: bool, column: usize) -> Parsed {
    let value = if negative {
        0_i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    };
    let value = value.ok_or_else(|| SelectorError::Token {
        column,
        what: format!("integer {magnitude} out of range"),
    })?;
    Ok(Expr::Literal(Value::Long(value)))
}
