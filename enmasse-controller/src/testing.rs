//! A small in-memory Kubernetes API server for reconcile scenarios, served through tower-test.
//!
//! It keeps objects by URL path and answers what the operator asks: get, list, create, replace,
//! delete, and the three patch types (server-side apply as a merge, JSON merge patch, JSON patch),
//! with resource versions that conflict as the real server's do. Rules can refuse requests, as a
//! missing Role would. Every request is recorded for the scenario to check.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use http::{Method, Request, Response};
use kube::{Client, client::Body};
use serde_json::{Value, json};
use tower_test::mock;

/// The server's state, shared with the scenario.
#[derive(Default)]
pub(crate) struct State {
    objects: BTreeMap<String, Value>,
    version: u64,
    refusals: Vec<(Method, String, u16)>,
    /// Every request: method and path.
    pub(crate) requests: Vec<(Method, String)>,
}

/// A fake API server.
#[derive(Clone, Default)]
pub(crate) struct FakeApi {
    state: Arc<Mutex<State>>,
}

impl FakeApi {
    /// A client whose requests this server answers, until the client is dropped.
    pub(crate) fn client(&self) -> Client {
        let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
        let state = self.state.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let body = body.collect_bytes().await.unwrap_or_default();
                let content_type = parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let (status, answer) =
                    state
                        .lock()
                        .unwrap()
                        .answer(&parts.method, parts.uri.path(), &content_type, body);
                respond.send_response(
                    Response::builder()
                        .status(status)
                        .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                        .unwrap(),
                );
            }
        });
        Client::new(service, "default")
    }

    /// Puts `object` at `path` (`/api/v1/namespaces/ns/pods/name`).
    pub(crate) fn put(&self, path: &str, object: Value) {
        let mut state = self.state.lock().unwrap();
        state.store(path.to_owned(), object);
    }

    /// The object at `path`.
    pub(crate) fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }

    /// Changes the object at `path` in place.
    pub(crate) fn edit(&self, path: &str, change: impl FnOnce(&mut Value)) {
        let mut state = self.state.lock().unwrap();
        if let Some(mut object) = state.objects.get(path).cloned() {
            change(&mut object);
            state.store(path.to_owned(), object);
        }
    }

    /// Answers `method` on `path` with `status` from now on.
    pub(crate) fn refuse(&self, method: Method, path: &str, status: u16) {
        let mut state = self.state.lock().unwrap();
        state.refusals.push((method, path.to_owned(), status));
    }

    /// The requests so far, as `METHOD path`, and forgets them.
    pub(crate) fn take_requests(&self) -> Vec<String> {
        let mut state = self.state.lock().unwrap();
        std::mem::take(&mut state.requests)
            .into_iter()
            .map(|(m, p)| format!("{m} {p}"))
            .collect()
    }
}

impl State {
    fn store(&mut self, path: String, mut object: Value) {
        self.version += 1;
        object["metadata"]["resourceVersion"] = json!(self.version.to_string());
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = json!(format!("uid-{}", self.version));
        }
        self.objects.insert(path, object);
    }

    fn answer(&mut self, method: &Method, path: &str, content_type: &str, body: Value) -> (u16, Value) {
        self.requests.push((method.clone(), path.to_owned()));
        if let Some((_, _, status)) = self.refusals.iter().find(|(m, p, _)| m == method && p == path) {
            return (*status, failure(*status, "refused by the scenario"));
        }
        let (path, subresource) = match path.strip_suffix("/status") {
            Some(item) if self.objects.contains_key(item) => (item.to_owned(), true),
            _ => (path.to_owned(), false),
        };
        match *method {
            Method::GET => match self.objects.get(&path) {
                Some(object) => (200, object.clone()),
                None if is_collection(&path) => (200, self.list(&path)),
                None => (404, failure(404, "not found")),
            },
            Method::POST => {
                let name = body["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                let item = format!("{path}/{name}");
                if self.objects.contains_key(&item) {
                    return (409, failure(409, "already exists"));
                }
                self.store(item.clone(), body);
                (201, self.objects[&item].clone())
            }
            Method::PUT => {
                let Some(current) = self.objects.get(&path) else {
                    return (404, failure(404, "not found"));
                };
                if stale(current, &body) {
                    return (409, failure(409, "the object has been modified"));
                }
                self.store(path.clone(), body);
                (200, self.objects[&path].clone())
            }
            Method::PATCH => self.patch(path, subresource, content_type, body),
            Method::DELETE => match self.objects.remove(&path) {
                Some(_) => (
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                ),
                None => (404, failure(404, "not found")),
            },
            _ => (405, failure(405, "method not allowed")),
        }
    }

    fn patch(&mut self, path: String, subresource: bool, content_type: &str, body: Value) -> (u16, Value) {
        let current = self.objects.get(&path).cloned();
        let mut object = match (current, content_type) {
            (Some(current), _) => current,
            (None, "application/apply-patch+yaml") if !subresource => json!({}),
            (None, _) => return (404, failure(404, "not found")),
        };
        match content_type {
            "application/apply-patch+yaml" if subresource => object["status"] = body["status"].clone(),
            "application/apply-patch+yaml" => {
                // The applied fields replace ours; what others set (the status) stays.
                let status = object["status"].take();
                let metadata = object["metadata"].clone();
                object = body;
                for key in ["uid", "resourceVersion", "deletionTimestamp", "finalizers"] {
                    if !metadata[key].is_null() {
                        object["metadata"][key] = metadata[key].clone();
                    }
                }
                if !status.is_null() {
                    object["status"] = status;
                }
            }
            "application/merge-patch+json" => {
                if stale(&object, &body) {
                    return (409, failure(409, "the object has been modified"));
                }
                json_patch::merge(&mut object, &body);
            }
            "application/json-patch+json" => {
                // The API server reads an absent field as null, for `test` too.
                if object["metadata"]["finalizers"].is_null() {
                    object["metadata"]["finalizers"] = Value::Null;
                }
                let Ok(patch) = serde_json::from_value::<json_patch::Patch>(body) else {
                    return (400, failure(400, "not a JSON patch"));
                };
                if json_patch::patch(&mut object, &patch).is_err() {
                    return (422, failure(422, "the JSON patch's test failed"));
                }
            }
            other => return (415, failure(415, &format!("unsupported patch type {other}"))),
        }
        self.store(path.clone(), object);
        (200, self.objects[&path].clone())
    }

    fn list(&self, collection: &str) -> Value {
        let prefix = format!("{collection}/");
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|(path, _)| path.strip_prefix(&prefix).is_some_and(|rest| !rest.contains('/')))
            .map(|(_, object)| object.clone())
            .collect();
        json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": self.version.to_string()}, "items": items})
    }
}

/// Whether `body` names a resource version other than `current`'s.
fn stale(current: &Value, body: &Value) -> bool {
    let given = &body["metadata"]["resourceVersion"];
    !given.is_null() && *given != current["metadata"]["resourceVersion"]
}

/// Collections end in a plural resource name; items add a name after it.
fn is_collection(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let after_namespace = segments
        .iter()
        .position(|s| *s == "namespaces")
        .map(|i| segments.len() - i);
    after_namespace == Some(3)
}

fn failure(code: u16, message: &str) -> Value {
    let reason = match code {
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        422 => "Invalid",
        _ => "BadRequest",
    };
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code, "reason": reason})
}
