//! The export writes against a mock API server, request by request, within the post's Role.

use std::collections::BTreeMap;

use enmasse_types::exports::{self as rules, Endpoint};
use enmasse_types::resources::address_space::{
    AddressSpace, AddressSpaceSpec, AddressSpaceType, EndpointSpec, ExportKind, ExportSpec,
};
use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock;

use super::*;

/// One expected request and the answer to it.
struct Exchange {
    method: Method,
    path: &'static str,
    status: u16,
    answer: Value,
}

/// Runs `exchanges` in order against the code under test; returns the request bodies.
async fn conversation(exchanges: Vec<Exchange>, export: Export) -> (Result<(), ExportError>, Vec<Value>) {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        let mut bodies = Vec::new();
        for exchange in exchanges {
            let (request, respond) = handle.next_request().await.expect("the expected request");
            assert_eq!(request.method(), exchange.method);
            assert_eq!(request.uri().path(), exchange.path);
            let body = request.into_body().collect_bytes().await.unwrap();
            bodies.push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            let answer = serde_json::to_vec(&exchange.answer).unwrap();
            respond.send_response(
                Response::builder()
                    .status(exchange.status)
                    .body(Body::from(answer))
                    .unwrap(),
            );
        }
        bodies
    });
    let client = Client::new(service, "default");
    let result = write(&client, &export).await;
    drop(client);
    (result, server.await.unwrap())
}

fn export() -> Export {
    let space = AddressSpace {
        metadata: ObjectMeta {
            name: Some("app".into()),
            namespace: Some("team1".into()),
            uid: Some("u-1".into()),
            ..ObjectMeta::default()
        },
        spec: AddressSpaceSpec {
            type_: AddressSpaceType::Standard,
            plan: "standard-small".into(),
            authentication_service: None,
            endpoints: vec![EndpointSpec {
                name: "messaging".into(),
                service: "messaging".into(),
                expose: None,
                cert: None,
                exports: vec![ExportSpec {
                    kind: ExportKind::ConfigMap,
                    name: "messaging-config".into(),
                }],
            }],
            network_policy: None,
        },
        status: None,
    };
    let endpoint = Endpoint {
        host: "broker-app.enmasse-infra.svc".into(),
        ports: BTreeMap::from([("amqps".into(), 5671)]),
        ca_pem: Some("CA".into()),
        external: BTreeMap::new(),
    };
    rules::exports(&space, &endpoint).remove(0)
}

const PATH: &str = "/api/v1/namespaces/team1/configmaps/messaging-config";
const COLLECTION: &str = "/api/v1/namespaces/team1/configmaps";

fn status(code: u16, reason: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "message": reason, "reason": reason, "code": code})
}

fn stored(data: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": "messaging-config", "namespace": "team1", "resourceVersion": "7",
            "labels": {"team": "one"},
            "ownerReferences": [{"apiVersion": "enmasse.io/v1beta1", "kind": "AddressSpace", "name": "app", "uid": "u-1", "controller": true}],
        },
        "data": data,
    })
}

#[tokio::test]
async fn a_missing_export_is_read_then_created() {
    let (result, bodies) = conversation(
        vec![
            Exchange {
                method: Method::GET,
                path: PATH,
                status: 404,
                answer: status(404, "NotFound"),
            },
            Exchange {
                method: Method::POST,
                path: COLLECTION,
                status: 201,
                answer: stored(json!({})),
            },
        ],
        export(),
    )
    .await;
    result.unwrap();
    assert_eq!(bodies[1]["data"]["service.port.amqps"], "5671");
    assert_eq!(bodies[1]["data"]["ca.crt"], "CA");
    assert_eq!(bodies[1]["metadata"]["ownerReferences"][0]["uid"], "u-1");
}

#[tokio::test]
async fn a_changed_export_is_replaced_keeping_what_others_put_on_it() {
    let (result, bodies) = conversation(
        vec![
            Exchange {
                method: Method::GET,
                path: PATH,
                status: 200,
                answer: stored(json!({"service.host": "old"})),
            },
            Exchange {
                method: Method::PUT,
                path: PATH,
                status: 200,
                answer: stored(json!({})),
            },
        ],
        export(),
    )
    .await;
    result.unwrap();
    assert_eq!(
        bodies[1]["metadata"]["resourceVersion"], "7",
        "an update, not a blind overwrite"
    );
    assert_eq!(bodies[1]["metadata"]["labels"]["team"], "one");
    assert_eq!(bodies[1]["data"]["service.host"], "broker-app.enmasse-infra.svc");
}

#[tokio::test]
async fn an_export_already_as_it_should_be_is_only_read() {
    let current = match export() {
        Export::ConfigMap(map) => serde_json::to_value(map.data).unwrap(),
        other => panic!("{other:?}"),
    };
    let (result, bodies) = conversation(
        vec![Exchange {
            method: Method::GET,
            path: PATH,
            status: 200,
            answer: stored(current),
        }],
        export(),
    )
    .await;
    result.unwrap();
    assert_eq!(bodies.len(), 1);
}

#[tokio::test]
async fn a_namespace_without_the_grant_gets_a_message_saying_which_role_to_add() {
    let (result, _) = conversation(
        vec![
            Exchange {
                method: Method::GET,
                path: PATH,
                status: 404,
                answer: status(404, "NotFound"),
            },
            Exchange {
                method: Method::POST,
                path: COLLECTION,
                status: 403,
                answer: status(403, "Forbidden"),
            },
        ],
        export(),
    )
    .await;
    let err = result.unwrap_err();
    assert!(matches!(err, ExportError::Forbidden { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("ConfigMap messaging-config in namespace team1"),
        "{text}"
    );
    assert!(text.contains("create on configmaps"), "{text}");
}
