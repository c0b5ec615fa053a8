//! A small in-memory Kubernetes API server, served through tower-test, for the operator's
//! reconcile scenarios and the client's resource tests.
//!
//! It keeps objects by URL path and answers what a kube client asks: get, list (in a namespace or
//! across all), watch, create, replace, delete, and the three patch types (server-side apply as a
//! merge, JSON merge patch, JSON patch), with resource versions that conflict as the real server's
//! do. A watch streams every change after the resource version it names, as the real server's
//! does, so kube-runtime's watchers and controllers run against it unchanged. Rules can refuse
//! requests, as a missing Role would. Every request is recorded for the scenario to check.

#![allow(clippy::unwrap_used, reason = "a test fixture fails by panicking")]

use std::{
    collections::BTreeMap,
    convert::Infallible,
    sync::{Arc, Mutex},
};

use enmasse_types::manifests::{self, Manifest};
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Bytes, Frame};
use kube::{Client, client::Body};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower_test::mock;

/// The manifests of the example file `path` (under `examples/gitops/`).
pub fn example(path: &str) -> Vec<Manifest> {
    let file = format!("{}/../examples/gitops/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&file).unwrap();
    manifests::parse(&text)
        .into_iter()
        .map(|d| d.unwrap().manifest)
        .collect()
}

/// What the fake server answers with: a whole body, or a watch's stream of events.
type Answer = UnsyncBoxBody<Bytes, Infallible>;

/// The server's state, shared with the scenario.
#[derive(Default)]
pub struct State {
    objects: BTreeMap<String, Value>,
    version: u64,
    /// Every change, in order: resource version, event type, path and object.
    history: Vec<(u64, &'static str, String, Value)>,
    /// Open watches: what they watch, and where their events go.
    watches: Vec<(Collection, mpsc::UnboundedSender<Bytes>)>,
    refusals: Vec<(Method, String, u16)>,
    /// Every request since the scenario last took them: method and path.
    pub requests: Vec<(Method, String)>,
    /// Every request since the server started, as `METHOD path`.
    all_requests: Vec<String>,
}

/// A fake API server.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

impl FakeApi {
    /// A client whose requests this server answers, until the client is dropped.
    pub fn client(&self) -> Client {
        let (service, mut handle) = mock::pair::<Request<Body>, Response<Answer>>();
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
                let path = parts.uri.path();
                let query = parts.uri.query().unwrap_or_default();
                let mut state = state.lock().unwrap();
                let response = match watch_from(query) {
                    Some(version) if parts.method == Method::GET => {
                        state.requests.push((Method::GET, format!("{path}?watch")));
                        state.all_requests.push(format!("GET {path}?watch"));
                        state.watch(Collection::selecting(path, query), version)
                    }
                    _ => {
                        let (status, answer) = state.answer(&parts.method, path, query, &content_type, body);
                        Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::from(serde_json::to_vec(&answer).unwrap())).boxed_unsync())
                            .unwrap()
                    }
                };
                respond.send_response(response);
            }
        });
        Client::new(service, "default")
    }

    /// Puts `object` at `path` (`/api/v1/namespaces/ns/pods/name`).
    pub fn put(&self, path: &str, object: Value) {
        let mut state = self.state.lock().unwrap();
        state.store(path.to_owned(), object);
    }

    /// Puts `object` where the API server keeps it: in its own namespace, else in `namespace`.
    pub fn put_resource<K>(&self, namespace: &str, object: &K)
    where
        K: kube::Resource<DynamicType = ()> + serde::Serialize,
    {
        let meta = object.meta();
        let namespace = meta.namespace.clone().unwrap_or_else(|| namespace.to_owned());
        let name = meta.name.clone().unwrap_or_default();
        let mut value = serde_json::to_value(object).unwrap();
        value["metadata"]["namespace"] = json!(namespace);
        self.put(&format!("{}/{name}", K::url_path(&(), Some(&namespace))), value);
    }

    /// Puts every EnMasse resource of the example file `path` (under `examples/gitops/`).
    pub fn put_example(&self, namespace: &str, path: &str) {
        for manifest in example(path) {
            match manifest {
                Manifest::AddressSpace(r) => self.put_resource(namespace, &*r),
                Manifest::Address(r) => self.put_resource(namespace, &*r),
                Manifest::MessagingUser(r) => self.put_resource(namespace, &*r),
                Manifest::AddressSpacePlan(r) => self.put_resource(namespace, &*r),
                Manifest::AddressPlan(r) => self.put_resource(namespace, &*r),
                Manifest::StandardInfraConfig(r) => self.put_resource(namespace, &*r),
                Manifest::BrokeredInfraConfig(r) => self.put_resource(namespace, &*r),
                Manifest::AuthenticationService(r) => self.put_resource(namespace, &*r),
                _ => {}
            }
        }
    }

    /// The object at `path`.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }

    /// Changes the object at `path` in place.
    pub fn edit(&self, path: &str, change: impl FnOnce(&mut Value)) {
        let mut state = self.state.lock().unwrap();
        if let Some(mut object) = state.objects.get(path).cloned() {
            change(&mut object);
            state.store(path.to_owned(), object);
        }
    }

    /// Answers `method` on `path` with `status` from now on.
    pub fn refuse(&self, method: Method, path: &str, status: u16) {
        let mut state = self.state.lock().unwrap();
        state.refusals.push((method, path.to_owned(), status));
    }

    /// Answers every request again, refused before or not.
    pub fn accept_all(&self) {
        self.state.lock().unwrap().refusals.clear();
    }

    /// Every request since the server started, as `METHOD path` (`GET path?watch` for a watch).
    pub fn all_requests(&self) -> Vec<String> {
        self.state.lock().unwrap().all_requests.clone()
    }

    /// The requests so far, as `METHOD path`, and forgets them.
    pub fn take_requests(&self) -> Vec<String> {
        let mut state = self.state.lock().unwrap();
        std::mem::take(&mut state.requests)
            .into_iter()
            .map(|(m, p)| format!("{m} {p}"))
            .collect()
    }
}

impl State {
    fn store(&mut self, path: String, mut object: Value) {
        if let Some(current) = self.objects.get(&path) {
            // As the real server does, a write that changes nothing keeps the resource version and
            // tells no watch.
            object["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
            object["metadata"]["uid"] = current["metadata"]["uid"].clone();
            object["metadata"]["creationTimestamp"] = current["metadata"]["creationTimestamp"].clone();
            if *current == object {
                return;
            }
        }
        self.version += 1;
        object["metadata"]["resourceVersion"] = json!(self.version.to_string());
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = json!(format!("uid-{}", self.version));
        }
        // Stamped when it is made, to the second, as the real server does.
        if object["metadata"]["creationTimestamp"].is_null() {
            let now = k8s_openapi::jiff::Timestamp::now().as_second();
            if let Ok(now) = k8s_openapi::jiff::Timestamp::from_second(now) {
                object["metadata"]["creationTimestamp"] = json!(now.to_string());
            }
        }
        let event = if self.objects.contains_key(&path) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.objects.insert(path.clone(), object.clone());
        self.record(event, path, object);
    }

    fn remove(&mut self, path: &str) -> Option<Value> {
        let mut object = self.objects.remove(path)?;
        self.version += 1;
        object["metadata"]["resourceVersion"] = json!(self.version.to_string());
        self.record("DELETED", path.to_owned(), object.clone());
        Some(object)
    }

    /// Keeps a change for watches yet to come, and sends it to the open ones.
    fn record(&mut self, event: &'static str, path: String, object: Value) {
        let line = event_line(event, &object);
        self.watches.retain(|(collection, events)| {
            !collection.holds(&path, &object) || events.send(line.clone()).is_ok()
        });
        self.history.push((self.version, event, path, object));
    }

    /// Opens a watch on `collection`, from just after resource version `from`.
    fn watch(&mut self, collection: Collection, from: u64) -> Response<Answer> {
        let (events, received) = mpsc::unbounded_channel();
        for (_, event, item, object) in self.history.iter().filter(|(version, ..)| *version > from) {
            if collection.holds(item, object) {
                let _ = events.send(event_line(event, object));
            }
        }
        self.watches.push((collection, events));
        let stream = futures_util::stream::unfold(received, |mut received| async move {
            let line = received.recv().await?;
            Some((Ok(Frame::data(line)), received))
        });
        Response::builder()
            .status(200)
            .body(StreamBody::new(stream).boxed_unsync())
            .unwrap()
    }

    fn answer(
        &mut self,
        method: &Method,
        path: &str,
        query: &str,
        content_type: &str,
        body: Value,
    ) -> (u16, Value) {
        self.requests.push((method.clone(), path.to_owned()));
        self.all_requests.push(format!("{method} {path}"));
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
                None if Collection::parse(&path).name.is_none() => {
                    (200, self.list(&path, Collection::selecting(&path, query)))
                }
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
            Method::DELETE => match self.remove(&path) {
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

    fn list(&self, path: &str, collection: Collection) -> Value {
        // The items of a namespaced collection are the paths under its own, as etcd keeps them: a
        // list of services does not walk every Address.
        let under = format!("{}/", path.trim_end_matches('/'));
        let objects: Box<dyn Iterator<Item = (&String, &Value)>> = match collection.namespace {
            Some(_) => Box::new(
                self.objects
                    .range(under.clone()..)
                    .take_while(|(item, _)| item.starts_with(&under)),
            ),
            None => Box::new(self.objects.iter()),
        };
        let items: Vec<Value> = objects
            .filter(|(item, object)| collection.holds(item, object))
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

/// A resource path taken apart: `/apis/{group}/{version}[/namespaces/{ns}]/{plural}[/{name}]`, or
/// `/api/v1/...` for the core group.
#[derive(Debug, PartialEq)]
pub struct Collection {
    group_version: String,
    /// The namespace, if the path names one.
    pub namespace: Option<String>,
    /// The resource, such as `addresses`.
    pub plural: String,
    /// The object's name, for an item.
    pub name: Option<String>,
    /// The subresource, such as `status`.
    pub subresource: Option<String>,
    /// The one name a `fieldSelector=metadata.name=...` keeps, for a list or a watch.
    selected: Option<String>,
    /// The labels a `labelSelector=k=v,...` requires, for a list or a watch.
    labels: Vec<(String, String)>,
}

impl Collection {
    /// Takes `path` apart.
    pub fn parse(path: &str) -> Self {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let start = if segments.first() == Some(&"api") { 2 } else { 3 };
        let group_version = segments[..start.min(segments.len())].join("/");
        let mut rest = &segments[start.min(segments.len())..];
        let mut namespace = None;
        if rest.len() > 2 && rest[0] == "namespaces" {
            namespace = Some(rest[1].to_owned());
            rest = &rest[2..];
        }
        Self {
            group_version,
            namespace,
            plural: rest.first().copied().unwrap_or_default().to_owned(),
            name: rest.get(1).map(|name| (*name).to_owned()),
            subresource: rest.get(2).map(|sub| (*sub).to_owned()),
            selected: None,
            labels: Vec::new(),
        }
    }

    /// The API group: `enmasse.io`, or the empty string for the core group.
    pub fn group(&self) -> &str {
        self.group_version
            .split('/')
            .nth(1)
            .filter(|_| self.group_version.starts_with("apis/"))
            .unwrap_or_default()
    }

    /// Whether `object`, at `path`, belongs to this collection (in its namespace, or in any if the
    /// collection names none, with the labels it selects).
    fn holds(&self, path: &str, object: &Value) -> bool {
        let item = Self::parse(path);
        item.name.is_some()
            && item.subresource.is_none()
            && item.group_version == self.group_version
            && item.plural == self.plural
            && (self.namespace.is_none() || item.namespace == self.namespace)
            && (self.selected.is_none() || item.name == self.selected)
            && self
                .labels
                .iter()
                .all(|(key, value)| object["metadata"]["labels"][key] == *value)
    }

    /// The collection at `path`, narrowed to one name if `query` selects `metadata.name`, as
    /// kube-runtime's `await_condition` asks.
    fn selecting(path: &str, query: &str) -> Self {
        let decode = |value: &str| {
            value
                .replace("%3D", "=")
                .replace("%3d", "=")
                .replace("%2C", ",")
                .replace("%2c", ",")
                .replace("%2F", "/")
                .replace("%2f", "/")
        };
        let selected = query.split('&').find_map(|pair| {
            let value = decode(pair.strip_prefix("fieldSelector=")?);
            value.strip_prefix("metadata.name=").map(str::to_owned)
        });
        let labels = query
            .split('&')
            .filter_map(|pair| pair.strip_prefix("labelSelector="))
            .flat_map(|value| {
                decode(value)
                    .split(',')
                    .map(|term| {
                        let (key, value) = term
                            .split_once("==")
                            .or_else(|| term.split_once('='))
                            .filter(|(key, _)| !key.ends_with('!'))
                            .unwrap_or_else(|| panic!("the fake API server understands only equality label selectors, not {term:?}"));
                        (key.to_owned(), value.to_owned())
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        Self {
            selected,
            labels,
            ..Self::parse(path)
        }
    }
}

/// The resource version a watch request starts after, if the query asks for a watch.
fn watch_from(query: &str) -> Option<u64> {
    let mut watch = false;
    let mut from = 0;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("watch", value)) => watch = value == "true" || value == "1",
            Some(("resourceVersion", value)) => from = value.parse().unwrap_or(0),
            _ => {}
        }
    }
    watch.then_some(from)
}

/// One line of a watch's stream.
fn event_line(event: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": event, "object": object})).unwrap();
    line.push(b'\n');
    Bytes::from(line)
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
