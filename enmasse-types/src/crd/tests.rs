//! Checks that every generated CRD is one the API server accepts and returns unchanged.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use proptest::strategy::Strategy as _;
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

/// Generates JSON documents that the CRD schema accepts, so that every kind can be checked to read
/// and write them back unchanged.
mod documents {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    const TIMES: &[&str] = &["2024-01-02T03:04:05Z", "2026-11-24T23:59:59Z"];

    /// Any document the schema at `schema` accepts (without nulls: an absent field is the same).
    pub(super) fn conforming(schema: &Value) -> BoxedStrategy<Value> {
        if let Some(Value::Array(values)) = schema.get("enum") {
            return proptest::sample::select(values.clone()).boxed();
        }
        if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
            return "[1-9][0-9]{0,2}".prop_map(Value::String).boxed();
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("string") if schema.get("format").and_then(Value::as_str) == Some("date-time") => {
                proptest::sample::select(TIMES)
                    .prop_map(|t| Value::String(t.to_owned()))
                    .boxed()
            }
            Some("string") => "[a-z0-9.-]{0,8}".prop_map(Value::String).boxed(),
            Some("integer") => (0u32..5000).prop_map(Value::from).boxed(),
            Some("number") => (0u32..5000)
                .prop_map(|n| Value::from(f64::from(n) / 1000.0))
                .boxed(),
            Some("boolean") => any::<bool>().prop_map(Value::Bool).boxed(),
            Some("array") => {
                let item = conforming(&schema["items"]);
                prop::collection::vec(item, 0..3).prop_map(Value::Array).boxed()
            }
            Some("object") => object(schema),
            other => panic!("no generator for schema type {other:?}"),
        }
    }

    fn object(schema: &Value) -> BoxedStrategy<Value> {
        if let Some(additional) = schema.get("additionalProperties").filter(|v| v.is_object()) {
            let values = conforming(additional);
            return prop::collection::btree_map("[a-z]{1,5}", values, 0..3)
                .prop_map(|map| Value::Object(map.into_iter().collect()))
                .boxed();
        }
        let Some(Value::Object(properties)) = schema.get("properties") else {
            // An untyped object (such as `metadata`): give it a name.
            return "[a-z]{1,8}"
                .prop_map(|name| serde_json::json!({ "name": name }))
                .boxed();
        };
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut fields: Vec<BoxedStrategy<Option<(String, Value)>>> = Vec::new();
        for (name, child) in properties {
            let name = name.clone();
            let value = conforming(child);
            let always = required.contains(&name.as_str()) || child.get("default").is_some();
            fields.push(if always {
                value.prop_map(move |v| Some((name.clone(), v))).boxed()
            } else {
                proptest::option::of(value)
                    .prop_map(move |v| v.map(|v| (name.clone(), v)))
                    .boxed()
            });
        }
        fields
            .prop_map(|entries| Value::Object(entries.into_iter().flatten().collect::<Map<String, Value>>()))
            .boxed()
    }

    /// Drops what serialization may leave out (nulls, empty lists and objects) and compares numbers
    /// by value.
    pub(super) fn normalized(value: &Value) -> Option<Value> {
        match value {
            Value::Null => None,
            Value::Number(n) => n.as_f64().map(Value::from),
            Value::Array(items) => {
                let items: Vec<Value> = items.iter().filter_map(normalized).collect();
                (!items.is_empty()).then_some(Value::Array(items))
            }
            Value::Object(map) => {
                let map: Map<String, Value> = map
                    .iter()
                    .filter_map(|(k, v)| normalized(v).map(|v| (k.clone(), v)))
                    .collect();
                (!map.is_empty()).then_some(Value::Object(map))
            }
            other => Some(other.clone()),
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    #[test]
    fn every_kind_reads_what_its_schema_accepts_and_writes_it_back_unchanged(
        (kind, api_version, document) in proptest::sample::select(all()).prop_flat_map(|crd| {
            let version = &crd.spec.versions[0];
            let schema = serde_json::to_value(&version.schema.as_ref().unwrap().open_api_v3_schema).unwrap();
            let kind = crd.spec.names.kind.clone();
            let api_version = format!("{}/{}", crd.spec.group, version.name);
            (proptest::strategy::Just(kind), proptest::strategy::Just(api_version), documents::conforming(&schema))
        })
    ) {
        use proptest::prelude::*;
        let mut document = document;
        document["apiVersion"] = Value::from(api_version);
        document["kind"] = Value::from(kind.clone());
        // The API server always gives an object its metadata; the schema leaves it to it.
        if document.get("metadata").is_none() {
            document["metadata"] = serde_json::json!({ "name": "generated" });
        }
        let manifest = crate::manifests::typed(&kind, document.clone())
            .map_err(|e| TestCaseError::fail(format!("{kind}: {e}\n{document:#}")))?;
        let written = match manifest {
            crate::manifests::Manifest::AddressSpace(r) => serde_json::to_value(r),
            crate::manifests::Manifest::Address(r) => serde_json::to_value(r),
            crate::manifests::Manifest::MessagingUser(r) => serde_json::to_value(r),
            crate::manifests::Manifest::AddressSpacePlan(r) => serde_json::to_value(r),
            crate::manifests::Manifest::AddressPlan(r) => serde_json::to_value(r),
            crate::manifests::Manifest::StandardInfraConfig(r) => serde_json::to_value(r),
            crate::manifests::Manifest::BrokeredInfraConfig(r) => serde_json::to_value(r),
            crate::manifests::Manifest::AuthenticationService(r) => serde_json::to_value(r),
            other => panic!("{} is not an EnMasse kind", other.kind()),
        }
        .unwrap();
        prop_assert_eq!(documents::normalized(&written), documents::normalized(&document));
    }
}
