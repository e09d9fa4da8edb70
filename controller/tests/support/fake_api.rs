//! A small in-memory Kubernetes API for reconciler unit tests (the kube-rs `tower-test`
//! pattern): objects are JSON kept by their API path; GET, LIST (with equality label
//! selectors), POST, PATCH (merge and apply, on the object or its status), PUT and DELETE
//! behave like the API server for what the reconcilers use, and every request is recorded
//! so a test can assert the exact writes. The real API server is the end-to-end suite's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

/// One request as the reconciler sent it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Value,
}

impl Call {
    /// `POST jobs`, `PATCH backupsets/shop/status`, …: the method and the path's tail after
    /// the namespace.
    pub fn short(&self) -> String {
        let tail = self
            .path
            .split_once("/namespaces/")
            .map(|(_, t)| t.split_once('/').map_or(t, |(_, r)| r))
            .unwrap_or(&self.path);
        format!("{} {tail}", self.method)
    }

    /// Whether it changed anything (a dry run changes nothing).
    pub fn is_write(&self) -> bool {
        self.method != Method::GET && !self.dry_run()
    }

    pub fn dry_run(&self) -> bool {
        self.query.split('&').any(|kv| kv == "dryRun=All")
    }
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<String, Value>,
    calls: Vec<Call>,
    version: u64,
}

/// The fake API and a client talking to it.
#[derive(Clone, Debug)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

/// JSON merge patch (RFC 7386).
pub fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn matches_selector(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let labels = &obj["metadata"]["labels"];
        match term.split_once('=') {
            Some((k, v)) => labels[k.trim_end_matches('=')] == v,
            None => !labels[term].is_null(),
        }
    })
}

fn decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl FakeApi {
    /// A fake API and a client of it (with `namespace` as default).
    pub fn new() -> (FakeApi, kube::Client) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api = FakeApi {
            state: Arc::new(Mutex::new(State::default())),
        };
        let server = api.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let (code, out) = server.handle(&parts, body);
                let response = Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&out).unwrap_or_default()))
                    .expect("a valid response");
                send.send_response(response);
            }
        });
        (api, kube::Client::new(service, "default"))
    }

    /// Put an object in as it is (its path from its apiVersion, kind and namespace).
    pub fn put(&self, obj: Value) {
        let path = path_of(&obj);
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.version += 1;
        let mut obj = obj;
        let v = s.version.to_string();
        let meta = obj["metadata"].as_object_mut().expect("metadata");
        meta.entry("resourceVersion").or_insert(json!(v));
        meta.entry("uid").or_insert(json!(format!("uid-{v}")));
        meta.entry("generation").or_insert(json!(1));
        meta.entry("creationTimestamp")
            .or_insert(json!("2026-12-01T00:00:00Z"));
        s.objects.insert(path, obj);
    }

    /// The object at an API path, if any.
    pub fn get(&self, path: &str) -> Option<Value> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.objects.get(path).cloned()
    }

    /// Change an object in place.
    pub fn edit(&self, path: &str, f: impl FnOnce(&mut Value)) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.version += 1;
        let v = s.version.to_string();
        if let Some(o) = s.objects.get_mut(path) {
            f(o);
            o["metadata"]["resourceVersion"] = json!(v);
        }
    }

    /// The requests so far, and forget them.
    pub fn take_calls(&self) -> Vec<Call> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut s.calls)
    }

    /// The writes so far (`POST jobs`, …), and forget every request.
    pub fn take_writes(&self) -> Vec<Call> {
        self.take_calls()
            .into_iter()
            .filter(Call::is_write)
            .collect()
    }

    fn handle(&self, parts: &http::request::Parts, body: Value) -> (StatusCode, Value) {
        let path = parts.uri.path().to_owned();
        let query = parts.uri.query().unwrap_or_default().to_owned();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.calls.push(Call {
            method: parts.method.clone(),
            path: path.clone(),
            query: query.clone(),
            body: body.clone(),
        });
        let params: BTreeMap<String, String> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), decode(v)))
            .collect();
        let metadata_only = parts
            .headers
            .get("accept")
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("as=PartialObjectMetadata"));
        let (object_path, subresource) = match path.strip_suffix("/status") {
            Some(p) => (p.to_owned(), true),
            None => (path.clone(), false),
        };
        s.version += 1;
        let version = s.version.to_string();
        match parts.method {
            Method::GET => {
                if let Some(o) = s.objects.get(&object_path) {
                    let mut o = o.clone();
                    if metadata_only {
                        o = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                                   "metadata": o["metadata"]});
                    }
                    return (StatusCode::OK, o);
                }
                // A collection: the objects of that resource (in that namespace).
                if let Some((prefix, ns, plural)) = collection(&path) {
                    let selector = params.get("labelSelector").cloned().unwrap_or_default();
                    let items: Vec<Value> = s
                        .objects
                        .iter()
                        .filter(|(k, _)| {
                            collection_of(k).is_some_and(|(p2, ns2, pl2)| {
                                p2 == prefix && pl2 == plural && (ns.is_none() || ns2 == ns)
                            })
                        })
                        .map(|(_, v)| v.clone())
                        .filter(|v| matches_selector(v, &selector))
                        .collect();
                    return (
                        StatusCode::OK,
                        json!({"apiVersion": "v1", "kind": "List",
                               "metadata": {"resourceVersion": version}, "items": items}),
                    );
                }
                (
                    StatusCode::NOT_FOUND,
                    status(404, "NotFound", &format!("{path} not found")),
                )
            }
            Method::POST if params.get("dryRun").is_some_and(|v| v == "All") => {
                (StatusCode::CREATED, body)
            }
            Method::POST => {
                let name = body["metadata"]["name"].as_str().unwrap_or_default();
                let key = format!("{path}/{name}");
                if s.objects.contains_key(&key) {
                    return (
                        StatusCode::CONFLICT,
                        status(409, "AlreadyExists", &format!("{name} already exists")),
                    );
                }
                let mut o = body;
                o["metadata"]["resourceVersion"] = json!(version);
                o["metadata"]["uid"] = json!(format!("uid-{version}"));
                o["metadata"]["creationTimestamp"] = json!("2026-12-01T00:00:00Z");
                // Events are kept too, under their own path.
                s.objects.insert(key, o.clone());
                (StatusCode::CREATED, o)
            }
            Method::PATCH | Method::PUT => {
                let Some(current) = s.objects.get(&object_path).cloned() else {
                    return (
                        StatusCode::NOT_FOUND,
                        status(404, "NotFound", &format!("{path} not found")),
                    );
                };
                if let Some(rv) = body["metadata"]["resourceVersion"].as_str()
                    && current["metadata"]["resourceVersion"].as_str() != Some(rv)
                {
                    return (
                        StatusCode::CONFLICT,
                        status(409, "Conflict", "the object has been modified"),
                    );
                }
                let mut o = current.clone();
                if parts.method == Method::PUT {
                    o = body;
                } else if subresource {
                    // The controller's field manager applies the whole status and owns it
                    // alone: server-side apply then drops what it no longer sets, as a
                    // replacement does (a merge would keep it).
                    o["status"] = body["status"].clone();
                } else {
                    let mut patch = body;
                    if let Some(m) = patch["metadata"].as_object_mut() {
                        m.remove("resourceVersion");
                    }
                    if patch.get("spec").is_some() && patch["spec"] != current["spec"] {
                        let g = current["metadata"]["generation"].as_i64().unwrap_or(1);
                        o["metadata"]["generation"] = json!(g + 1);
                    }
                    merge(&mut o, &patch);
                }
                o["metadata"]["resourceVersion"] = json!(version);
                // An object being deleted goes once its last finalizer does.
                let deleting = !o["metadata"]["deletionTimestamp"].is_null();
                let finalizers = o["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty());
                if deleting && !finalizers {
                    s.objects.remove(&object_path);
                } else {
                    s.objects.insert(object_path, o.clone());
                }
                (StatusCode::OK, o)
            }
            Method::DELETE => match s.objects.remove(&object_path) {
                Some(o) => (StatusCode::OK, o),
                None => (
                    StatusCode::NOT_FOUND,
                    status(404, "NotFound", &format!("{path} not found")),
                ),
            },
            _ => (
                StatusCode::METHOD_NOT_ALLOWED,
                status(405, "MethodNotAllowed", "not in the fake"),
            ),
        }
    }
}

/// `(group-version prefix, namespace, plural)` of a collection path, if it is one.
fn collection(path: &str) -> Option<(String, Option<String>, String)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let gv = if parts.first() == Some(&"api") { 2 } else { 3 };
    let prefix = parts.get(..gv)?.join("/");
    match &parts[gv..] {
        [plural] => Some((prefix, None, (*plural).to_owned())),
        ["namespaces", ns, plural] => Some((prefix, Some((*ns).to_owned()), (*plural).to_owned())),
        _ => None,
    }
}

/// The collection an object path belongs to.
fn collection_of(path: &str) -> Option<(String, Option<String>, String)> {
    let (parent, _) = path.rsplit_once('/')?;
    collection(parent)
}

/// The API path of an object.
pub fn path_of(obj: &Value) -> String {
    let api_version = obj["apiVersion"].as_str().unwrap_or("v1");
    let kind = obj["kind"].as_str().unwrap_or_default();
    let plural = match kind {
        "PersistentVolumeClaim" => "persistentvolumeclaims".to_owned(),
        k => format!("{}s", k.to_lowercase()),
    };
    let base = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{base}/namespaces/{ns}/{plural}/{name}"),
        None => format!("{base}/{plural}/{name}"),
    }
}
