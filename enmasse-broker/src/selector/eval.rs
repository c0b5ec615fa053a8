//! Evaluates a parsed selector against a message's fields in SQL's three-valued logic, where
//! `None` is *unknown*: an absent field, mismatched types, overflow or division by zero.

use std::{borrow::Cow, cmp::Ordering};

use super::{
    Fields, Value,
    parser::{ArithmeticOp, CompareOp, Expr, Sign},
};

/// The longest text, in bytes, `LIKE` matches; a longer one makes it unknown.
pub(super) const MAX_LIKE_TEXT: usize = 64 * 1024;

/// The truth of `expr`: `None` when unknown, or when it yields something other than a boolean.
pub(super) fn truth(expr: &Expr, fields: &dyn Fields) -> Option<bool> {
    match expr {
        Expr::Not(operand) => truth(operand, fields).map(|b| !b),
        // False wins over unknown in AND, true wins in OR.
        Expr::And(terms) => decide(terms, fields, false),
        Expr::Or(terms) => decide(terms, fields, true),
        Expr::Compare(left, op, right) => compare(&value(left, fields)?, *op, &value(right, fields)?),
        Expr::Between {
            value: operand,
            low,
            high,
        } => {
            // `v BETWEEN a AND b` is `v >= a AND v <= b` (JMS 2.0, 3.8.1.1): a NULL bound makes
            // its half unknown, and the other half may still make the whole false.
            let operand = value(operand, fields)?;
            let above = value(low, fields).and_then(|low| compare(&operand, CompareOp::Ge, &low));
            let below = value(high, fields).and_then(|high| compare(&operand, CompareOp::Le, &high));
            decide_pair(above, below)
        }
        Expr::In { value: operand, list } => match value(operand, fields)? {
            Value::Str(text) => Some(list.iter().any(|item| **item == *text)),
            _ => None,
        },
        Expr::Like {
            value: operand,
            pattern,
        } => match value(operand, fields)? {
            // Matching costs up to pattern × text: a longer text is not matched, but unknown.
            Value::Str(text) if text.len() <= MAX_LIKE_TEXT => Some(pattern.matches(&text)),
            _ => None,
        },
        Expr::IsNull(operand) => Some(value(operand, fields).is_none()),
        Expr::Literal(_) | Expr::Null | Expr::Field(_) | Expr::Unary(..) | Expr::Arithmetic(..) => {
            match value(expr, fields)? {
                Value::Bool(b) => Some(b),
                _ => None,
            }
        }
    }
}

/// The value of `expr`; `None` is SQL's NULL.
pub(super) fn value<'a>(expr: &'a Expr, fields: &'a dyn Fields) -> Option<Value<'a>> {
    match expr {
        Expr::Literal(literal) => Some(borrow(literal)),
        Expr::Null => None,
        Expr::Field(name) => fields.field(name),
        Expr::Unary(sign, operand) => match (sign, number(&value(operand, fields)?)?) {
            (Sign::Plus, n) => Some(n.into()),
            (Sign::Minus, Number::Long(n)) => n.checked_neg().map(Value::Long),
            (Sign::Minus, Number::Double(x)) => Some(Value::Double(-x)),
        },
        Expr::Arithmetic(first, rest) => {
            let mut total = number(&value(first, fields)?)?;
            for (op, operand) in rest {
                total = arithmetic(total, *op, number(&value(operand, fields)?)?)?;
            }
            Some(total.into())
        }
        Expr::Not(_)
        | Expr::And(_)
        | Expr::Or(_)
        | Expr::Compare(..)
        | Expr::Between { .. }
        | Expr::In { .. }
        | Expr::Like { .. }
        | Expr::IsNull(_) => truth(expr, fields).map(Value::Bool),
    }
}

/// AND (`decisive` false) or OR (`decisive` true) over `terms`.
fn decide(terms: &[Expr], fields: &dyn Fields, decisive: bool) -> Option<bool> {
    let mut result = Some(!decisive);
    for term in terms {
        match truth(term, fields) {
            Some(b) if b == decisive => return Some(decisive),
            Some(_) => {}
            None => result = None,
        }
    }
    result
}

/// AND of two truths.
fn decide_pair(left: Option<bool>, right: Option<bool>) -> Option<bool> {
    match (left, right) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn borrow<'a>(literal: &'a Value<'_>) -> Value<'a> {
    match literal {
        Value::Bool(b) => Value::Bool(*b),
        Value::Long(n) => Value::Long(*n),
        Value::Double(x) => Value::Double(*x),
        Value::Str(text) => Value::Str(Cow::Borrowed(text)),
    }
}

#[derive(Clone, Copy, Debug)]
enum Number {
    Long(i64),
    Double(f64),
}

impl Number {
    fn to_f64(self) -> f64 {
        match self {
            // Rounds above 2^53, as Java's promotion does.
            Number::Long(n) => n as f64,
            Number::Double(x) => x,
        }
    }
}

impl From<Number> for Value<'_> {
    fn from(n: Number) -> Self {
        match n {
            Number::Long(n) => Value::Long(n),
            Number::Double(x) => Value::Double(x),
        }
    }
}

fn number(value: &Value<'_>) -> Option<Number> {
    match value {
        Value::Long(n) => Some(Number::Long(*n)),
        Value::Double(x) => Some(Number::Double(*x)),
        Value::Bool(_) | Value::Str(_) => None,
    }
}

/// Longs stay exact (`None` on overflow, and on division by zero); a double makes both doubles.
fn arithmetic(left: Number, op: ArithmeticOp, right: Number) -> Option<Number> {
    if let (Number::Long(a), Number::Long(b)) = (left, right) {
        let result = match op {
            ArithmeticOp::Add => a.checked_add(b),
            ArithmeticOp::Subtract => a.checked_sub(b),
            ArithmeticOp::Multiply => a.checked_mul(b),
            ArithmeticOp::Divide => a.checked_div(b),
        };
        return result.map(Number::Long);
    }
    let (a, b) = (left.to_f64(), right.to_f64());
    let result = match op {
        ArithmeticOp::Add => a + b,
        ArithmeticOp::Subtract => a - b,
        ArithmeticOp::Multiply => a * b,
        ArithmeticOp::Divide if b == 0.0 => return None,
        ArithmeticOp::Divide => a / b,
    };
    Some(Number::Double(result))
}

/// Numbers compare by value; strings and booleans only by `=` and `<>`; anything else is unknown.
fn compare(left: &Value<'_>, op: CompareOp, right: &Value<'_>) -> Option<bool> {
    let ordering = match (left, right) {
        (Value::Str(a), Value::Str(b)) => return equality(op, a == b),
        (Value::Bool(a), Value::Bool(b)) => return equality(op, a == b),
        _ => match (number(left)?, number(right)?) {
            (Number::Long(a), Number::Long(b)) => a.cmp(&b),
            (a, b) => a.to_f64().partial_cmp(&b.to_f64())?,
        },
    };
    Some(match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
    })
}

fn equality(op: CompareOp, same: bool) -> Option<bool> {
    match op {
        CompareOp::Eq => Some(same),
        CompareOp::Ne => Some(!same),
        CompareOp::Lt | CompareOp::Le | CompareOp::Gt | CompareOp::Ge => None,
    }
}
