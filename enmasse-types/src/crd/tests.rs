//! Checks that every generated CRD is one the API server accepts and returns unchanged.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use super::{all, to_canonical_json};

/// Keywords that may not appear inside `anyOf`/`oneOf`/`allOf`/`not` in a structural schema.
const FORBIDDEN_IN_JUNCTORS: &[&str] = &[
    "type",
    "description",
    "default",
    "nullable",
    "additionalProperties",
];

/// Walks a schema and collects every way it breaks Kubernetes's structural-schema rules.
fn structural_violations(schema: &Value, path: &str, in_junctor: bool, out: &mut Vec<String>) {
    let Some(map) = schema.as_object() else {
        out.push(format!("{path}: schema is not an object"));
        return;
    };
    let preserves = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let int_or_string = map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if !in_junctor && !preserves && !int_or_string && !map.contains_key("type") {
        out.push(format!("{path}: no type"));
    }
    if in_junctor {
        for key in FORBIDDEN_IN_JUNCTORS {
            if map.contains_key(*key) {
                out.push(format!("{path}: `{key}` inside a junctor"));
            }
        }
    }
    for key in ["$ref", "definitions", "$defs", "deprecated"] {
        if map.contains_key(key) {
            out.push(format!("{path}: `{key}` is not allowed"));
        }
    }
    if map.contains_key("properties") && map.contains_key("additionalProperties") {
        out.push(format!("{path}: both properties and additionalProperties"));
    }
    if let Some(Value::Object(properties)) = map.get("properties") {
        if properties.is_empty() {
            out.push(format!("{path}: empty properties"));
        }
        for (name, child) in properties {
            structural_violations(child, &format!("{path}.{name}"), in_junctor, out);
        }
    }
    if let Some(items) = map.get("items") {
        structural_violations(items, &format!("{path}[]"), in_junctor, out);
    }
    if let Some(additional) = map.get("additionalProperties").filter(|v| v.is_object()) {
        structural_violations(additional, &format!("{path}{{*}}"), in_junctor, out);
    }
    for junctor in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(branches)) = map.get(junctor)
            && !int_or_string
        {
            for (i, branch) in branches.iter().enumerate() {
                structural_violations(branch, &format!("{path}/{junctor}[{i}]"), true, out);
            }
        }
    }
}

fn schemas(crd: &Value) -> Vec<(String, &Value)> {
    crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_owned(),
                &v["schema"]["openAPIV3Schema"],
            )
        })
        .collect()
}

#[test]
fn every_crd_schema_is_structural() {
    for crd in all() {
        let json = to_canonical_json(&crd).unwrap();
        for (version, schema) in schemas(&json) {
            let mut violations = Vec::new();
            structural_violations(schema, "", false, &mut violations);
            assert!(
                violations.is_empty(),
                "{} {version}: {violations:#?}",
                crd.spec.names.kind
            );
            let metadata = &schema["properties"]["metadata"];
            assert!(
                metadata.is_null() || metadata.as_object().unwrap().keys().all(|k| k == "type"),
                "{}: metadata may only be typed, got {metadata}",
                crd.spec.names.kind
            );
        }
    }
}

#[test]
fn every_crd_reads_back_from_the_api_types_without_a_difference() {
    for crd in all() {
        let written = to_canonical_json(&crd).unwrap();
        let stored: CustomResourceDefinition = serde_json::from_value(written.clone()).unwrap();
        let read_back = to_canonical_json(&stored).unwrap();
        assert_eq!(
            written, read_back,
            "{} changed on a round trip",
            crd.spec.names.kind
        );
    }
}

#[test]
fn canonical_crds_hold_no_value_the_api_server_would_drop() {
    fn check(value: &Value, path: &str) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let here = format!("{path}.{key}");
                    match child {
                        Value::Bool(false) => assert!(
                            !super::OMITTED_WHEN_FALSE.contains(&key.as_str()),
                            "{here} is false"
                        ),
                        Value::Object(inner) if inner.is_empty() => {
                            assert!(here.ends_with("subresources.status"), "{here} is empty")
                        }
                        Value::Array(items) if items.is_empty() => panic!("{here} is an empty list"),
                        Value::Null => panic!("{here} is null"),
                        Value::Number(n) => {
                            assert!(!n.is_f64() || n.as_f64().unwrap().fract() != 0.0, "{here}: {n}")
                        }
                        _ => {}
                    }
                    check(child, &here);
                }
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, v)| check(v, &format!("{path}[{i}]"))),
            _ => {}
        }
    }
    for crd in all() {
        check(&to_canonical_json(&crd).unwrap(), &crd.spec.names.kind);
    }
}

#[test]
fn every_crd_fits_in_the_last_applied_annotation_of_kubectl_apply() {
    for crd in all() {
        let size = serde_json::to_vec(&to_canonical_json(&crd).unwrap())
            .unwrap()
            .len();
        assert!(size < 200 * 1024, "{} is {size} bytes", crd.spec.names.kind);
    }
}

#[test]
fn every_kind_serves_the_status_subresource_and_prints_its_age() {
    for crd in all() {
        for version in &crd.spec.versions {
            assert!(version.served && version.storage);
            assert!(
                version
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some()
            );
            let columns = version.additional_printer_columns.as_deref().unwrap_or_default();
            assert!(columns.iter().any(|c| c.name == "Age"), "{}", crd.spec.names.kind);
        }
    }
}
