//! Reading manifests: every document on its own, bad fields named by path.

use super::*;
use crate::resources::address::AddressType;

const ADDRESS: &str = "apiVersion: enmasse.io/v1beta1
kind: Address
metadata:
  name: app.orders
spec:
  address: orders
  type: queue
  plan: standard-small-queue
";

fn problem(text: &str) -> DocumentError {
    let mut results = parse(text);
    assert_eq!(results.len(), 1, "{results:?}");
    results.remove(0).unwrap_err()
}

#[test]
fn a_typed_address_is_read_with_its_values() {
    let documents = parse(ADDRESS);
    let Ok(Document {
        line: 1,
        manifest: Manifest::Address(address),
    }) = &documents[0]
    else {
        panic!("{documents:?}")
    };
    assert_eq!(address.spec.address, "orders");
    assert_eq!(address.spec.type_, AddressType::Queue);
}

#[test]
fn a_broken_document_does_not_hide_the_others() {
    let text = format!("{ADDRESS}---\nkind: [unclosed\n---\n{ADDRESS}");
    let results = parse(&text);
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok());
    let err = results[1].as_ref().unwrap_err();
    assert_eq!(err.line, 10);
    assert!(matches!(err.problem, DocumentProblem::Syntax(_)));
    assert_eq!(results[2].as_ref().unwrap().line, 12);
}

#[test]
fn empty_and_comment_only_documents_are_skipped() {
    assert!(parse("").is_empty());
    assert!(parse("---\n# nothing here\n---\n\n").is_empty());
}

#[test]
fn a_wrong_enum_value_names_its_field() {
    let err = problem(&ADDRESS.replace("type: queue", "type: qeue"));
    let DocumentProblem::InvalidField { path, message } = &err.problem else {
        panic!("{err:?}")
    };
    assert_eq!(path, "spec.type");
    assert!(message.contains("qeue"), "{message}");
    assert_eq!(err.kind.as_deref(), Some("Address"));
    assert_eq!(err.name.as_deref(), Some("app.orders"));
}

#[test]
fn a_misspelt_field_is_reported_by_its_path() {
    let err = problem(&format!("{ADDRESS}  adress: orders\n"));
    assert_eq!(
        err.problem,
        DocumentProblem::UnknownFields(vec!["spec.adress".into()])
    );
    let line = crate::error::one_line(&err);
    assert_eq!(
        line,
        "document at line 1 (Address app.orders): unknown field spec.adress"
    );
}

#[test]
fn a_missing_required_field_is_named() {
    let err = problem(&ADDRESS.replace("  plan: standard-small-queue\n", ""));
    let DocumentProblem::InvalidField { message, .. } = &err.problem else {
        panic!("{err:?}")
    };
    assert!(message.contains("plan"), "{message}");
}

#[test]
fn an_enmasse_kind_in_an_unserved_version_says_which_version_to_use() {
    let err = problem(&ADDRESS.replace("enmasse.io/v1beta1", "enmasse.io/v1alpha1"));
    assert_eq!(
        err.problem,
        DocumentProblem::UnsupportedVersion {
            api_version: "enmasse.io/v1alpha1".into(),
            kind: "Address".into(),
            served: "enmasse.io/v1beta1"
        }
    );
}

#[test]
fn kinds_of_other_groups_are_passed_over_even_when_their_names_match() {
    let text = "apiVersion: example.com/v1\nkind: Address\nmetadata:\n  name: x\n";
    let documents = parse(text);
    assert!(matches!(
        &documents[0],
        Ok(Document {
            manifest: Manifest::Other { .. },
            ..
        })
    ));
}

#[test]
fn a_document_without_a_kind_is_an_error() {
    let err = problem("apiVersion: v1\nmetadata:\n  name: x\n");
    assert_eq!(err.problem, DocumentProblem::MissingField("kind"));
    assert!(parse("just a string\n")[0].is_err());
}

#[test]
fn a_document_may_start_on_its_marker_line() {
    let text = format!("--- {ADDRESS}");
    assert!(parse(&text)[0].is_ok());
}

#[test]
fn thousands_of_documents_read_on_every_core_come_back_in_order_with_their_lines() {
    let mut text = String::new();
    for n in 0..3 * DOCUMENTS_PER_THREAD + 7 {
        match n % 97 {
            0 => text.push_str("---\nkind: [unclosed\n"),
            1 => text.push_str("---\n# nothing but a comment\n"),
            _ => text.push_str(&format!(
                "---\napiVersion: enmasse.io/v1beta1\nkind: Address\nmetadata: {{name: app.q{n}}}\nspec: {{address: q{n}, type: queue, plan: p}}\n"
            )),
        }
    }
    let parsed = parse(&text);
    let one_thread = parse_all(&split_documents(&text));
    assert_eq!(parsed, one_thread);
    assert!(
        parsed.iter().filter(|r| r.is_err()).count() >= 8,
        "the broken documents are reported"
    );
    let lines: Vec<usize> = parsed
        .iter()
        .map(|r| r.as_ref().map_or_else(|e| e.line, |d| d.line))
        .collect();
    assert!(lines.windows(2).all(|w| w[0] < w[1]), "in the order of the text");
}
