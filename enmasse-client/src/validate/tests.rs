use std::path::Path;

use super::*;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/gitops")
}

/// A scratch directory holding `files`.
fn directory(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("enmasse-validate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir
}

#[test]
fn the_examples_pass_with_nothing_to_say() {
    let report = validate(&[examples()], "default").unwrap();
    assert_eq!(report.findings, vec![], "{report:#?}");
    assert!(report.files >= 8 && report.resources >= 10, "{report:?}");
}

#[test]
fn a_wrong_value_is_an_error_naming_file_line_field_and_value() {
    let dir = directory(
        "value",
        &[(
            "addresses.yaml",
            "apiVersion: enmasse.io/v1beta1\nkind: Address\nmetadata:\n  name: app.orders\n  namespace: team1\nspec:\n  address: orders\n  type: queue\n  plan: standard-small-queue\n---\napiVersion: enmasse.io/v1beta1\nkind: Address\nmetadata:\n  name: app.invoices\n  namespace: team1\nspec:\n  address: invoices\n  type: queu\n  plan: standard-small-queue\n",
        )],
    );
    let report = validate(
        &[examples().join("infra"), examples().join("team1"), dir.clone()],
        "default",
    )
    .unwrap();
    let errors: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert_eq!(errors.len(), 1, "{report:#?}");
    let error = errors[0];
    assert_eq!(error.file, dir.join("addresses.yaml"));
    assert_eq!(error.line, 11);
    assert_eq!(error.resource.as_deref(), Some("Address app.invoices"));
    assert!(
        error.message.contains("spec.type") && error.message.contains("queu"),
        "{}",
        error.message
    );
}

#[test]
fn a_resource_the_rules_refuse_is_an_error_and_one_waiting_for_a_plan_a_warning() {
    let dir = directory(
        "rules",
        &[(
            "team.yaml",
            "apiVersion: enmasse.io/v1beta1\nkind: AddressSpace\nmetadata:\n  name: app\n  namespace: team1\nspec:\n  type: standard\n  plan: no-such-plan\n---\napiVersion: enmasse.io/v1beta1\nkind: Address\nmetadata:\n  name: orders\n  namespace: team1\nspec:\n  address: orders\n  type: queue\n  plan: standard-small-queue\n",
        )],
    );
    let report = validate(std::slice::from_ref(&dir), "default").unwrap();
    let found: Vec<(Severity, usize, Option<&str>)> = report
        .findings
        .iter()
        .map(|f| (f.severity, f.line, f.resource.as_deref()))
        .collect();
    assert_eq!(
        found,
        vec![
            (Severity::Warning, 1, Some("AddressSpace app")),
            (Severity::Error, 10, Some("Address orders")),
        ],
        "{report:#?}"
    );
    assert!(report.findings[0].message.contains("no-such-plan"), "{report:#?}");
    assert_eq!(report.count(Severity::Error), 1);
}

#[test]
fn a_file_that_is_not_yaml_is_an_error_and_the_others_are_still_checked() {
    let dir = directory("syntax", &[("broken.yaml", "kind: [unclosed\n")]);
    let report = validate(&[examples(), dir.clone()], "default").unwrap();
    assert_eq!(report.findings.len(), 1, "{report:#?}");
    assert_eq!(report.findings[0].file, dir.join("broken.yaml"));
    assert!(report.resources >= 10);
}
