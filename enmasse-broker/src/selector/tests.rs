//! Selector tests: every operator, the three-valued logic tables, type rules, errors and bounds.

use std::{borrow::Cow, collections::HashMap};

use proptest::prelude::*;

use super::{Fields, MAX_CHARS, MAX_DEPTH, Selector, SelectorError, Value, eval};

/// A message whose fields are a map.
struct Message(HashMap<String, Value<'static>>);

impl Fields for Message {
    fn field(&self, identifier: &str) -> Option<Value<'_>> {
        self.0.get(identifier).cloned()
    }
}

fn message(fields: &[(&str, Value<'static>)]) -> Message {
    Message(fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect())
}

fn text(s: &str) -> Value<'static> {
    Value::Str(Cow::Owned(s.to_owned()))
}

fn parse(selector: &str) -> Selector {
    Selector::parse(selector).unwrap_or_else(|e| panic!("{selector:?} should parse: {e}"))
}

fn selects(selector: &str, fields: &[(&str, Value<'static>)]) -> bool {
    parse(selector).matches(&message(fields))
}

/// The three-valued truth of `selector`, told apart by also evaluating its negation.
fn truth(selector: &str, fields: &[(&str, Value<'static>)]) -> Option<bool> {
    let message = message(fields);
    let positive = parse(selector).matches(&message);
    let negative = parse(&format!("NOT ({selector})")).matches(&message);
    match (positive, negative) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        (false, false) => None,
        (true, true) => panic!("{selector:?} and its negation are both true"),
    }
}

fn error(selector: &str) -> SelectorError {
    match Selector::parse(selector) {
        Ok(parsed) => panic!("{selector:?} should not parse, got {parsed:?}"),
        Err(e) => e,
    }
}

fn column(selector: &str) -> usize {
    match error(selector) {
        SelectorError::Token { column, .. }
        | SelectorError::Syntax { column, .. }
        | SelectorError::Type { column, .. }
        | SelectorError::TooDeep { column, .. } => column,
        other => panic!("{selector:?}: no column in {other:?}"),
    }
}

// Literals and identifiers.

#[test]
fn a_string_literal_with_a_doubled_quote_holds_one_quote() {
    assert!(selects("name = 'O''Brien'", &[("name", text("O'Brien"))]));
    assert!(selects("name = ''", &[("name", text(""))]));
}

#[test]
fn exact_literals_are_decimal_hex_octal_signed_or_suffixed() {
    let n = |v| [("n", Value::Long(v))];
    assert!(selects("n = 57", &n(57)));
    assert!(selects("n = -957", &n(-957)));
    assert!(selects("n = +62", &n(62)));
    assert!(selects("n = 0x1F", &n(31)));
    assert!(selects("n = 0X1f", &n(31)));
    assert!(selects("n = 017", &n(15)));
    assert!(selects("n = 57L", &n(57)));
    assert!(selects("n = 0", &n(0)));
    assert!(selects("n = -9223372036854775808", &n(i64::MIN)));
    assert!(selects("n = 9223372036854775807", &n(i64::MAX)));
}

#[test]
fn approximate_literals_take_points_exponents_and_suffixes() {
    let x = |v| [("x", Value::Double(v))];
    assert!(selects("x = 7E3", &x(7000.0)));
    assert!(selects("x = -57.9E2", &x(-5790.0)));
    assert!(selects("x = 7.", &x(7.0)));
    assert!(selects("x = .5", &x(0.5)));
    assert!(selects("x = 1.5e-1", &x(0.15)));
    assert!(selects("x = 2.5F", &x(2.5)));
    assert!(selects("x = 2D", &x(2.0)));
}

#[test]
fn an_integer_literal_beyond_64_bits_is_refused() {
    assert!(matches!(
        error("n = 9223372036854775808"),
        SelectorError::Token { column: 5, .. }
    ));
    assert!(matches!(
        error("n = 99999999999999999999"),
        SelectorError::Token { column: 5, .. }
    ));
    assert!(matches!(
        error("n = 0x10000000000000000"),
        SelectorError::Token { .. }
    ));
    assert!(matches!(error("n = 1E400"), SelectorError::Token { .. }));
}

#[test]
fn malformed_numbers_are_refused_at_their_column() {
    assert_eq!(column("n = 12ab"), 5);
    assert_eq!(column("n = 1.2.3"), 5);
    assert_eq!(column("n = 08"), 5);
    assert_eq!(column("n = 0x"), 5);
    assert_eq!(column("n = 1e"), 5);
}

#[test]
fn boolean_literals_and_keywords_ignore_case() {
    let on = [("flag", Value::Bool(true)), ("n", Value::Long(5))];
    assert!(selects("flag = true", &on));
    assert!(selects("flag = TRUE AND flag <> False", &on));
    assert!(selects(
        "n between 1 and 9 or n not in ('x') and n is not null",
        &[("n", text("y"))]
    ));
    assert!(selects("n BeTwEeN 1 AnD 9", &on));
}

#[test]
fn identifiers_are_case_sensitive_and_may_hold_dots_dollars_and_letters_of_any_script() {
    assert!(selects("Color = 'red'", &[("Color", text("red"))]));
    assert!(!selects("color = 'red'", &[("Color", text("red"))]));
    assert!(selects(
        "a.b = 1 AND $x = 2 AND _y = 3",
        &[
            ("a.b", Value::Long(1)),
            ("$x", Value::Long(2)),
            ("_y", Value::Long(3)),
        ]
    ));
    assert!(selects("größe > 1", &[("größe", Value::Long(2))]));
}

#[test]
fn a_double_quoted_identifier_may_hold_anything() {
    assert!(selects(r#""my key" = 1"#, &[("my key", Value::Long(1))]));
    assert!(selects(r#""AND" = 1"#, &[("AND", Value::Long(1))]));
    assert!(selects(r#""say ""hi""" = 1"#, &[(r#"say "hi""#, Value::Long(1))]));
}

#[test]
fn a_keyword_is_not_an_identifier() {
    assert!(matches!(
        error("AND = 1"),
        SelectorError::Syntax { column: 1, .. }
    ));
    assert!(matches!(
        error("a = LIKE"),
        SelectorError::Syntax { column: 5, .. }
    ));
}

// Arithmetic.

#[test]
fn multiplication_binds_tighter_than_addition_and_parentheses_tighter_still() {
    let abc = [
        ("a", Value::Long(1)),
        ("b", Value::Long(2)),
        ("c", Value::Long(3)),
    ];
    assert!(selects("a + b * c = 7", &abc));
    assert!(selects("(a + b) * c = 9", &abc));
    assert!(selects("c - b - a = 0", &abc));
    assert!(selects("-a * -b = 2", &abc));
    assert!(selects("-(a - c) = 2", &abc));
    assert!(selects("+a = 1", &abc));
}

#[test]
fn integer_division_truncates_and_a_double_makes_it_exact() {
    let n = [("n", Value::Long(7))];
    assert!(selects("n / 2 = 3", &n));
    assert!(selects("-n / 2 = -3", &n));
    assert!(selects("n / 2.0 = 3.5", &n));
    assert!(selects("n * 0.5 = 3.5", &n));
}

#[test]
fn longs_and_doubles_compare_by_value() {
    assert!(selects("n = 1.0", &[("n", Value::Long(1))]));
    assert!(selects("x = 1", &[("x", Value::Double(1.0))]));
    assert!(selects("x < 2", &[("x", Value::Double(1.5))]));
    assert!(selects(
        "n + x = 2.5",
        &[("n", Value::Long(1)), ("x", Value::Double(1.5))]
    ));
}

#[test]
fn integer_overflow_is_unknown() {
    let max = [("n", Value::Long(i64::MAX)), ("m", Value::Long(i64::MIN))];
    assert_eq!(truth("n + 1 > 0", &max), None);
    assert_eq!(truth("m - 1 < 0", &max), None);
    assert_eq!(truth("n * 2 > 0", &max), None);
    assert_eq!(truth("-m > 0", &max), None);
    assert_eq!(truth("m / -1 > 0", &max), None);
    assert_eq!(truth("n + 0 > 0", &max), Some(true));
}

#[test]
fn division_by_zero_is_unknown() {
    let n = [
        ("n", Value::Long(1)),
        ("x", Value::Double(1.0)),
        ("zero", Value::Long(0)),
    ];
    assert_eq!(truth("n / 0 = 0", &n), None);
    assert_eq!(truth("x / 0 = 0", &n), None);
    assert_eq!(truth("n / 0.0 = 0", &n), None);
    assert_eq!(truth("n / zero = 0", &n), None);
}

#[test]
fn arithmetic_on_a_non_number_or_an_absent_field_is_unknown() {
    let s = [("s", text("1")), ("b", Value::Bool(true))];
    assert_eq!(truth("s + 1 = 2", &s), None);
    assert_eq!(truth("-s = -1", &s), None);
    assert_eq!(truth("b * 1 = 1", &s), None);
    assert_eq!(truth("missing + 1 = 2", &s), None);
}

// Comparisons.

#[test]
fn every_comparison_orders_numbers() {
    let n = [("n", Value::Long(5))];
    for (selector, expected) in [
        ("n = 5", true),
        ("n = 6", false),
        ("n <> 5", false),
        ("n <> 6", true),
        ("n < 6", true),
        ("n < 5", false),
        ("n <= 5", true),
        ("n <= 4", false),
        ("n > 4", true),
        ("n > 5", false),
        ("n >= 5", true),
        ("n >= 6", false),
    ] {
        assert_eq!(truth(selector, &n), Some(expected), "{selector}");
    }
}

#[test]
fn strings_and_booleans_compare_only_for_equality() {
    let f = [
        ("s", text("b")),
        ("t", text("a")),
        ("b", Value::Bool(true)),
        ("c", Value::Bool(false)),
    ];
    assert_eq!(truth("s = 'b'", &f), Some(true));
    assert_eq!(truth("s <> 'b'", &f), Some(false));
    assert_eq!(truth("s = t", &f), Some(false));
    assert_eq!(truth("s > t", &f), None);
    assert_eq!(truth("b = TRUE", &f), Some(true));
    assert_eq!(truth("b <> c", &f), Some(true));
    assert_eq!(truth("b > c", &f), None);
}

#[test]
fn comparing_different_types_is_unknown_for_equal_and_not_equal_alike() {
    let f = [("s", text("1")), ("n", Value::Long(1)), ("b", Value::Bool(true))];
    for selector in [
        "s = 1",
        "s <> 1",
        "n = '1'",
        "n <> '1'",
        "b = 1",
        "b <> 'true'",
        "s = n",
        "n < s",
    ] {
        assert_eq!(truth(selector, &f), None, "{selector}");
    }
}

#[test]
fn a_comparison_with_an_absent_field_or_null_is_unknown() {
    assert_eq!(truth("missing = 1", &[]), None);
    assert_eq!(truth("missing <> 1", &[]), None);
    assert_eq!(truth("NULL = NULL", &[]), None);
    assert_eq!(truth("n = NULL", &[("n", Value::Long(1))]), None);
}

#[test]
fn a_comparison_result_can_itself_be_compared() {
    let n = [("n", Value::Long(5)), ("flag", Value::Bool(true))];
    assert!(selects("(n > 1) = TRUE", &n));
    assert!(selects("flag = (n > 1)", &n));
}

// BETWEEN, IN, LIKE, IS NULL.

#[test]
fn between_includes_both_ends_and_not_between_excludes_them() {
    for (n, inside) in [(14, false), (15, true), (17, true), (19, true), (20, false)] {
        let f = [("age", Value::Long(n))];
        assert_eq!(truth("age BETWEEN 15 AND 19", &f), Some(inside), "{n}");
        assert_eq!(truth("age NOT BETWEEN 15 AND 19", &f), Some(!inside), "{n}");
    }
    assert!(selects("x BETWEEN 1 AND 2.5", &[("x", Value::Double(2.5))]));
    assert!(selects(
        "n BETWEEN lo + 1 AND hi * 2",
        &[
            ("n", Value::Long(4)),
            ("lo", Value::Long(2)),
            ("hi", Value::Long(2)),
        ]
    ));
}

#[test]
fn between_is_two_comparisons_joined_by_and_in_three_valued_logic() {
    let f = [("n", Value::Long(5)), ("s", text("5"))];
    assert_eq!(truth("missing BETWEEN 1 AND 9", &f), None);
    assert_eq!(truth("missing NOT BETWEEN 1 AND 9", &f), None);
    assert_eq!(truth("n BETWEEN missing AND 9", &f), None, "unknown AND true");
    assert_eq!(
        truth("n NOT BETWEEN 1 AND missing", &f),
        None,
        "NOT (true AND unknown)"
    );
    assert_eq!(
        truth("n BETWEEN missing AND 4", &f),
        Some(false),
        "unknown AND false"
    );
    assert_eq!(
        truth("n NOT BETWEEN 6 AND missing", &f),
        Some(true),
        "NOT (false AND unknown)"
    );
    assert_eq!(truth("s BETWEEN 1 AND 9", &f), None);
}

#[test]
fn like_on_a_text_longer_than_its_bound_is_unknown() {
    let long = "a".repeat(eval::MAX_LIKE_TEXT + 1);
    let f = [("t", text(&long))];
    assert_eq!(truth("t LIKE 'a%'", &f), None);
    assert_eq!(truth("t NOT LIKE 'a%'", &f), None);
}

#[test]
fn in_matches_any_listed_string_exactly() {
    let f = [("country", text("France"))];
    assert_eq!(truth("country IN ('UK', 'US', 'France')", &f), Some(true));
    assert_eq!(truth("country IN ('UK', 'france')", &f), Some(false));
    assert_eq!(truth("country NOT IN ('UK', 'US')", &f), Some(true));
    assert_eq!(truth("country NOT IN ('France')", &f), Some(false));
}

#[test]
fn in_with_an_absent_or_non_string_field_is_unknown_and_so_is_not_in() {
    let f = [("n", Value::Long(1))];
    assert_eq!(truth("missing IN ('a')", &f), None);
    assert_eq!(truth("missing NOT IN ('a')", &f), None);
    assert_eq!(truth("n IN ('1')", &f), None);
    assert_eq!(truth("n NOT IN ('1')", &f), None);
}

#[test]
fn in_takes_string_literals_only() {
    assert!(matches!(
        error("s IN (1)"),
        SelectorError::Syntax { column: 7, .. }
    ));
    assert!(matches!(
        error("s IN ()"),
        SelectorError::Syntax { column: 7, .. }
    ));
    assert!(matches!(
        error("s IN ('a' 'b')"),
        SelectorError::Syntax { column: 11, .. }
    ));
    assert!(matches!(
        error("s IN 'a'"),
        SelectorError::Syntax { column: 6, .. }
    ));
}

#[test]
fn like_percent_matches_any_run_and_underscore_one_character() {
    let word = |w: &str| [("w", text(w))];
    assert_eq!(truth("w LIKE '12%3'", &word("123")), Some(true));
    assert_eq!(truth("w LIKE '12%3'", &word("12993")), Some(true));
    assert_eq!(truth("w LIKE '12%3'", &word("1234")), Some(false));
    assert_eq!(truth("w LIKE 'l_se'", &word("lose")), Some(true));
    assert_eq!(truth("w LIKE 'l_se'", &word("loose")), Some(false));
    assert_eq!(truth("w LIKE '%'", &word("")), Some(true));
    assert_eq!(truth("w LIKE ''", &word("")), Some(true));
    assert_eq!(truth("w LIKE '_'", &word("")), Some(false));
    assert_eq!(truth("w LIKE 'abc'", &word("ABC")), Some(false));
    assert_eq!(truth("w NOT LIKE 'a%'", &word("abc")), Some(false));
    assert_eq!(truth("w NOT LIKE 'b%'", &word("abc")), Some(true));
}

#[test]
fn like_underscore_matches_one_character_not_one_byte() {
    assert!(selects("w LIKE 'caf_'", &[("w", text("café"))]));
    assert!(selects("w LIKE '_%_'", &[("w", text("日本"))]));
    assert!(!selects("w LIKE '__'", &[("w", text("é"))]));
}

#[test]
fn a_like_pattern_with_an_escape_matches_a_literal_percent() {
    let f = |w: &str| [("w", text(w))];
    assert_eq!(truth(r"w LIKE '\_%' ESCAPE '\'", &f("_foo")), Some(true));
    assert_eq!(truth(r"w LIKE '\_%' ESCAPE '\'", &f("bar")), Some(false));
    assert_eq!(truth("w LIKE '100!%' ESCAPE '!'", &f("100%")), Some(true));
    assert_eq!(truth("w LIKE '100!%' ESCAPE '!'", &f("1000")), Some(false));
    assert_eq!(truth("w LIKE 'a!!b' ESCAPE '!'", &f("a!b")), Some(true));
}

#[test]
fn an_escape_must_be_one_character_and_may_not_end_the_pattern() {
    assert!(matches!(
        error("w LIKE 'a' ESCAPE 'ab'"),
        SelectorError::Syntax { column: 19, .. }
    ));
    assert!(matches!(
        error("w LIKE 'a' ESCAPE ''"),
        SelectorError::Syntax { column: 19, .. }
    ));
    assert!(matches!(
        error("w LIKE 'a!' ESCAPE '!'"),
        SelectorError::Token { column: 8, .. }
    ));
    assert!(matches!(
        error("w LIKE a"),
        SelectorError::Syntax { column: 8, .. }
    ));
}

#[test]
fn like_with_an_absent_or_non_string_field_is_unknown_and_so_is_not_like() {
    let f = [("n", Value::Long(1))];
    assert_eq!(truth("missing LIKE '%'", &f), None);
    assert_eq!(truth("missing NOT LIKE 'a'", &f), None);
    assert_eq!(truth("n LIKE '%'", &f), None);
}

#[test]
fn is_null_holds_for_an_absent_field_only() {
    let f = [("s", text("")), ("b", Value::Bool(false))];
    assert_eq!(truth("missing IS NULL", &f), Some(true));
    assert_eq!(truth("missing IS NOT NULL", &f), Some(false));
    assert_eq!(truth("s IS NULL", &f), Some(false));
    assert_eq!(truth("b IS NOT NULL", &f), Some(true));
    assert_eq!(truth("missing + 1 IS NULL", &f), Some(true));
}

// Logic.

fn logic_fields() -> [(&'static str, Value<'static>); 2] {
    [("t", Value::Bool(true)), ("f", Value::Bool(false))]
}

/// The identifier holding each truth value: `u` is absent, so unknown.
fn named(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "t",
        Some(false) => "f",
        None => "u",
    }
}

const TRUTHS: [Option<bool>; 3] = [Some(true), Some(false), None];

#[test]
fn and_follows_the_three_valued_truth_table() {
    for a in TRUTHS {
        for b in TRUTHS {
            let expected = match (a, b) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            };
            let selector = format!("{} AND {}", named(a), named(b));
            assert_eq!(truth(&selector, &logic_fields()), expected, "{selector}");
        }
    }
}

#[test]
fn or_follows_the_three_valued_truth_table() {
    for a in TRUTHS {
        for b in TRUTHS {
            let expected = match (a, b) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            };
            let selector = format!("{} OR {}", named(a), named(b));
            assert_eq!(truth(&selector, &logic_fields()), expected, "{selector}");
        }
    }
}

#[test]
fn not_follows_the_three_valued_truth_table() {
    for a in TRUTHS {
        let selector = format!("NOT {}", named(a));
        assert_eq!(truth(&selector, &logic_fields()), a.map(|b| !b), "{selector}");
    }
    assert_eq!(truth("NOT NOT t", &logic_fields()), Some(true));
}

#[test]
fn not_binds_looser_than_a_comparison_and_and_tighter_than_or() {
    let f = [
        ("n", Value::Long(1)),
        ("t", Value::Bool(true)),
        ("f", Value::Bool(false)),
    ];
    assert!(selects("NOT n = 2", &f));
    assert!(selects("t OR t AND f", &f));
    assert!(!selects("(t OR t) AND f", &f));
    assert!(selects("NOT f AND t", &f));
}

#[test]
fn a_boolean_field_selects_by_itself_and_any_other_type_does_not() {
    assert!(selects("flag", &[("flag", Value::Bool(true))]));
    assert!(!selects("flag", &[("flag", Value::Bool(false))]));
    assert_eq!(truth("flag", &[("flag", Value::Long(1))]), None);
    assert_eq!(truth("flag", &[("flag", text("true"))]), None);
    assert_eq!(truth("flag", &[]), None);
}

#[test]
fn a_long_chain_of_ors_parses_and_evaluates_without_deep_recursion() {
    let terms: Vec<String> = (0..300).map(|i| format!("n = {i}")).collect();
    let selector = terms.join(" OR ");
    assert!(selects(&selector, &[("n", Value::Long(299))]));
    assert!(!selects(&selector, &[("n", Value::Long(300))]));
    let sum = format!("n{} = 500", " + 1".repeat(500));
    assert!(selects(&sum, &[("n", Value::Long(0))]));
}

// Refused at parse.

#[test]
fn a_selector_that_is_obviously_not_boolean_is_refused() {
    for selector in ["1", "'yes'", "a + 1", "-a", "(1.5)"] {
        assert!(
            matches!(error(selector), SelectorError::Type { column: 1, .. }),
            "{selector}"
        );
    }
}

#[test]
fn operands_of_the_wrong_literal_type_are_refused_at_their_column() {
    for (selector, at) in [
        ("1 AND a", 1),
        ("a OR 'x'", 6),
        ("NOT 5", 5),
        ("'x' + 1 = 2", 1),
        ("a * TRUE = 2", 5),
        ("-'x' = 1", 2),
        ("'a' < 'b'", 1),
        ("a >= FALSE", 6),
        ("TRUE = 1", 8),
        ("'1' <> 1", 8),
        ("5 LIKE 'a'", 1),
        ("5 IN ('a')", 1),
        ("'a' BETWEEN 1 AND 2", 1),
        ("a BETWEEN 'x' AND 2", 11),
        ("(a = 1) + 1 = 2", 1),
    ] {
        match error(selector) {
            SelectorError::Type { column, .. } => assert_eq!(column, at, "{selector}"),
            other => panic!("{selector}: {other:?}"),
        }
    }
}

#[test]
fn a_syntax_error_names_what_was_expected_and_what_was_found_where() {
    let e = error("a = ");
    assert_eq!(
        e,
        SelectorError::Syntax {
            column: 5,
            expected: "an identifier, a literal or `(`",
            found: "end of selector".to_owned(),
        }
    );
    assert_eq!(
        e.to_string(),
        "syntax error at column 5: expected an identifier, a literal or `(`, found end of selector"
    );
    assert_eq!(column("a = 1 b = 2"), 7);
    assert_eq!(column("(a = 1"), 7);
    assert_eq!(column("a = 1)"), 6);
    assert_eq!(column("a NOT b"), 7);
    assert_eq!(column("a IS 1"), 6);
    assert_eq!(column("a = b = c"), 7);
    assert_eq!(column("a BETWEEN 1 OR 2"), 13);
}

#[test]
fn a_lexical_error_names_its_column() {
    assert_eq!(error("a = 'open").to_string(), "unterminated string at column 5");
    assert_eq!(column(r#"a = "open"#), 5);
    assert_eq!(error("a ! b").to_string(), "unexpected character `!` at column 3");
    assert_eq!(column("a != b"), 3);
    assert_eq!(column("a = 1 ;"), 7);
}

#[test]
fn columns_count_characters_not_bytes() {
    assert_eq!(column("'ééé' = a )"), 11);
    assert_eq!(column("日本 = 1 !"), 8);
}

#[test]
fn an_error_quotes_at_most_a_short_piece_of_the_peers_text() {
    let long = "x".repeat(1000);
    let message = error(&format!("a = 1 {long}")).to_string();
    assert!(message.len() < 150, "{message}");
}

#[test]
fn an_empty_or_blank_selector_is_an_error_the_caller_treats_as_none() {
    assert_eq!(error(""), SelectorError::Empty);
    assert_eq!(error(" \t\r\n "), SelectorError::Empty);
}

// Bounds.

#[test]
fn a_selector_of_the_maximum_length_parses_and_one_more_character_is_too_long() {
    let at_max = format!("a = '{}'", "x".repeat(MAX_CHARS - 6));
    assert_eq!(at_max.chars().count(), MAX_CHARS);
    assert!(Selector::parse(&at_max).is_ok());
    let over = format!("a = '{}'", "x".repeat(MAX_CHARS - 5));
    assert_eq!(
        error(&over),
        SelectorError::TooLong {
            len: MAX_CHARS + 1,
            max: MAX_CHARS
        }
    );
}

#[test]
fn the_length_bound_counts_characters_not_bytes() {
    let wide = format!("a = '{}'", "é".repeat(MAX_CHARS - 6));
    assert!(wide.len() > MAX_CHARS);
    assert!(Selector::parse(&wide).is_ok());
}

#[test]
fn nesting_up_to_the_limit_parses_and_one_level_more_is_too_deep() {
    let parens = |n: usize| format!("{}a = 1{}", "(".repeat(n), ")".repeat(n));
    assert!(selects(&parens(MAX_DEPTH), &[("a", Value::Long(1))]));
    assert_eq!(
        error(&parens(MAX_DEPTH + 1)),
        SelectorError::TooDeep {
            column: MAX_DEPTH + 1,
            max: MAX_DEPTH
        }
    );

    let nots = |n: usize| format!("{}a", "NOT ".repeat(n));
    assert!(selects(&nots(MAX_DEPTH), &[("a", Value::Bool(true))]));
    assert!(matches!(
        error(&nots(MAX_DEPTH + 1)),
        SelectorError::TooDeep { .. }
    ));

    let signs = |n: usize| format!("{}a = 1", "- ".repeat(n));
    assert!(selects(&signs(MAX_DEPTH), &[("a", Value::Long(1))]));
    assert!(matches!(
        error(&signs(MAX_DEPTH + 1)),
        SelectorError::TooDeep { .. }
    ));
}

#[test]
fn hostile_nesting_to_the_length_limit_is_refused_without_overflowing_the_stack() {
    for unit in ["(", "NOT ", "-", "NOT (-("] {
        let hostile = unit.repeat(MAX_CHARS / unit.len());
        assert!(matches!(error(&hostile), SelectorError::TooDeep { .. }), "{unit}");
    }
}

#[test]
fn a_pathological_like_pattern_finishes() {
    let selector = parse("w LIKE '%a%a%a%a%a%a%a%b'");
    // The longest text LIKE matches.
    let run = eval::MAX_LIKE_TEXT - 1;
    let long = message(&[("w", text(&"a".repeat(run)))]);
    assert!(!selector.matches(&long));
    let ends_in_b = message(&[("w", text(&format!("{}b", "a".repeat(run))))]);
    assert!(selector.matches(&ends_in_b));
}

#[test]
fn a_selector_can_be_shared_between_tasks() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Selector>();
    shareable::<SelectorError>();
}

#[test]
fn the_selector_keeps_its_text() {
    let text = "  a = 'x'  ";
    assert_eq!(parse(text).text(), text);
}

// Properties.

/// A plain dynamic-programming LIKE, to check the greedy matcher against.
fn reference_like(pattern: &[char], text: &[char]) -> bool {
    // matched[j]: whether the pattern so far matches text[..j].
    let mut matched = vec![false; text.len() + 1];
    matched[0] = true;
    for &p in pattern {
        let mut next = vec![false; text.len() + 1];
        for j in 0..=text.len() {
            next[j] = match p {
                '%' => matched[j] || (j > 0 && next[j - 1]),
                '_' => j > 0 && matched[j - 1],
                c => j > 0 && matched[j - 1] && text[j - 1] == c,
            };
        }
        matched = next;
    }
    matched[text.len()]
}

const SOUP: [&str; 33] = [
    "a", "b.c", "s", "n", "x", "'x'", "'%a_'", "1", "0", "2.5", "0x1F", "-", "+", "*", "/", "(", ")", ",",
    "=", "<>", "<", ">=", "AND", "OR", "NOT", "BETWEEN", "IN", "LIKE", "ESCAPE", "IS", "NULL", "TRUE", "''",
];

fn soup_message() -> Message {
    message(&[
        ("a", Value::Bool(true)),
        ("b.c", Value::Long(i64::MAX)),
        ("s", text("xa_")),
        ("n", Value::Long(i64::MIN)),
        ("x", Value::Double(f64::NAN)),
    ])
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(input in any::<String>()) {
        if let Ok(selector) = Selector::parse(&input) {
            selector.matches(&soup_message());
        }
    }

    #[test]
    fn arbitrary_selector_like_text_never_panics(input in "[a-c0-9 '\"()=<>+*/.,%_!eExL-]{0,60}") {
        if let Ok(selector) = Selector::parse(&input) {
            selector.matches(&soup_message());
        }
    }

    #[test]
    fn arbitrary_token_soups_never_panic(
        tokens in prop::collection::vec(prop::sample::select(SOUP.to_vec()), 0..40),
    ) {
        let text = tokens.join(" ");
        let negated = format!("NOT ({text})");
        if let (Ok(selector), Ok(negation)) = (Selector::parse(&text), Selector::parse(&negated)) {
            let message = soup_message();
            prop_assert!(!(selector.matches(&message) && negation.matches(&message)), "{}", text);
        }
    }

    #[test]
    fn arithmetic_on_any_integers_never_panics(a in any::<i64>(), b in any::<i64>()) {
        let fields = message(&[("a", Value::Long(a)), ("b", Value::Long(b))]);
        for selector in ["a + b > 0", "a - b > 0", "a * b > 0", "a / b > 0", "-a > b", "a / (b - b) = 0"] {
            parse(selector).matches(&fields);
        }
    }

    #[test]
    fn like_agrees_with_a_reference_matcher(pattern in "[ab%_]{0,8}", text in "[ab]{0,10}") {
        let selector = parse(&format!("w LIKE '{pattern}'"));
        let chars = |s: &str| s.chars().collect::<Vec<_>>();
        let expected = reference_like(&chars(&pattern), &chars(&text));
        prop_assert_eq!(selector.matches(&message(&[("w", Value::Str(Cow::Owned(text)))])), expected);
    }
}
