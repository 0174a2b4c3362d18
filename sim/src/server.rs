//! The HTTPS front: TLS, bearer-token authentication, injected latency and faults, the
//! request log, routing of `/api` and `/apis` paths to verbs, query parameters (selectors,
//! pagination, dry run, field validation), Table negotiation, and watch streams.

use crate::cluster::{Cluster, FaultOutcome, LogEntry, USER};
use crate::discovery;
use crate::error::{ApiError, ApiResult};
use crate::ops::{self, DeleteOpts, Sub, WriteOpts};
use crate::resources::{self, ResourceType};
use crate::selector::{FieldSelector, LabelSelector, allowed_fields};
use crate::store::{Change, EventType, name_of, ns_of};
use crate::table::{self, Include};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

pub type Body = BoxBody<Bytes, Infallible>;

pub struct ServerCtx {
    pub cluster: Arc<Cluster>,
    pub token: String,
    pub address: String,
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-cache, private")
        .body(full(serde_json::to_vec(v).unwrap_or_default()))
        .expect("valid response")
}

fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = json_response(e.code, &e.to_status());
    // Upstream's priority-and-fairness and 503s tell clients when to come back.
    if e.code == 429 || e.code == 503 {
        r.headers_mut()
            .insert("Retry-After", hyper::header::HeaderValue::from_static("1"));
    }
    r
}

fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// A parsed resource path.
struct Target {
    rt: &'static ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_resource_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let owned = |s: &&str| s.to_string();
    let (namespace, rest) = match rest {
        ["namespaces", ns, r, tail @ ..] if resources::find(group, version, r).is_some() => {
            (Some(ns.to_string()), {
                let mut v = vec![*r];
                v.extend_from_slice(tail);
                v
            })
        }
        other => (None, other.to_vec()),
    };
    let rt = resources::find(group, version, rest.first()?)?;
    if rest.len() > 3 {
        return None;
    }
    Some(Target {
        rt,
        namespace,
        name: rest.get(1).map(owned),
        sub: rest.get(2).map(owned),
    })
}

pub async fn handle(
    ctx: Arc<ServerCtx>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let arrived = ctx.cluster.next_request_seq();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let content_type = header("content-type");
    let accept = header("accept");
    let auth = header("authorization");
    // Impersonation (`kubectl --as`, `--as-group`): the sim's user may impersonate anyone.
    let user = Some(header("impersonate-user"))
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| USER.to_string());
    let groups: Vec<String> = req
        .headers()
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok().map(String::from))
        .collect();
    let user_agent = header("user-agent");
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let latency = ctx.cluster.timing().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = if auth != format!("Bearer {}", ctx.token)
        && !matches!(path.as_str(), "/healthz" | "/livez" | "/readyz")
    {
        error_response(&ApiError::unauthorized())
    } else {
        let who = Who { user, groups };
        route(
            &ctx,
            &who,
            &method,
            &path,
            &query,
            &content_type,
            &accept,
            &body,
        )
        .await
    };
    ctx.cluster.record(LogEntry {
        method: method.to_string(),
        path,
        query,
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
        code: response.status().as_u16(),
        user_agent,
        arrived,
        completed: ctx.cluster.next_request_seq(),
    });
    Ok(response)
}

/// The authenticated (or impersonated) user of a request.
struct Who {
    user: String,
    groups: Vec<String>,
}

#[allow(clippy::too_many_arguments)]
async fn route(
    ctx: &ServerCtx,
    who: &Who,
    method: &Method,
    path: &str,
    query: &str,
    content_type: &str,
    accept: &str,
    body: &Bytes,
) -> Response<Body> {
    let c = &ctx.cluster;
    if method == Method::GET {
        let doc = match path.trim_end_matches('/') {
            "/version" => Some(discovery::version()),
            "/api" => Some(discovery::api_versions(&ctx.address)),
            "/apis" => Some(discovery::api_group_list()),
            "/openapi/v3" => Some(discovery::openapi_root()),
            "/healthz" | "/livez" | "/readyz" => {
                return Response::builder()
                    .status(200)
                    .header("Content-Type", "text/plain")
                    .body(full("ok"))
                    .expect("response");
            }
            p => {
                let segs: Vec<&str> = p.trim_matches('/').split('/').collect();
                match segs.as_slice() {
                    ["api", v] => discovery::resource_list("", v),
                    ["apis", g] => discovery::api_group(g),
                    ["apis", g, v] => discovery::resource_list(g, v),
                    ["openapi", "v3", rest @ ..] => {
                        discovery::openapi_group_version(&rest.join("/"))
                    }
                    _ => None,
                }
            }
        };
        if let Some(d) = doc {
            return json_response(200, &d);
        }
    }
    let Some(target) = parse_resource_path(path) else {
        return json_response(
            404,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "the server could not find the requested resource", "reason": "NotFound", "details": {}, "code": 404}),
        );
    };
    let q = parse_query(query);
    match serve_resource(who, c, method, &target, &q, content_type, accept, body).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve_resource(
    who: &Who,
    c: &Cluster,
    method: &Method,
    t: &Target,
    q: &HashMap<String, String>,
    content_type: &str,
    accept: &str,
    body: &Bytes,
) -> ApiResult<Response<Body>> {
    let rt = t.rt;
    let ns = t.namespace.clone().unwrap_or_default();
    if !rt.namespaced && t.namespace.is_some() {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let sub = Sub::parse(t.sub.as_deref())
        .filter(|s| s.name().is_none_or(|n| rt.subresources.contains(&n)))
        .ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        })?;
    let watching = q.get("watch").is_some_and(|w| w == "1" || w == "true");
    let verb = match (method.as_str(), t.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if watching => "watch",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return Err(ApiError::method_not_allowed()),
    };
    if !rt.verbs.contains(&verb) {
        return Err(ApiError::method_not_allowed());
    }
    let fault_resource = match &t.sub {
        Some(s) => format!("{}/{s}", rt.plural),
        None => rt.plural.to_string(),
    };
    let name = t.name.clone().unwrap_or_default();
    if !rt.is_review() && !c.rbac_allows(verb, rt.group, &fault_resource, t.namespace.is_none()) {
        return Err(ApiError::forbidden(
            rt,
            &name,
            &who.user,
            verb,
            t.sub.as_deref(),
            t.namespace.as_deref(),
        ));
    }
    match c.check_faults(verb, &fault_resource, &name) {
        FaultOutcome::Pass => {}
        FaultOutcome::Fail(code) => {
            let mut e = ApiError::for_code(code);
            if code == 409 && !name.is_empty() {
                e = ApiError::conflict(rt, &name);
            }
            return Err(e);
        }
        FaultOutcome::Forbidden => {
            return Err(ApiError::forbidden(
                rt,
                &name,
                &who.user,
                verb,
                t.sub.as_deref(),
                t.namespace.as_deref(),
            ));
        }
    }
    let dry_run = q.get("dryRun").is_some_and(|d| d == "All");
    if q.get("dryRun").is_some_and(|d| !d.is_empty() && d != "All") {
        return Err(ApiError::bad_request(format!(
            "Invalid dry run value: {}",
            q["dryRun"]
        )));
    }
    let strict = q.get("fieldValidation").is_some_and(|v| v == "Strict");
    let wopts = WriteOpts { dry_run, strict };
    let wants_table = accept.contains("as=Table");
    let include = Include::parse(q.get("includeObject").map(String::as_str));
    let parse_body = || -> ApiResult<Value> {
        serde_json::from_slice(body).map_err(|e| {
            if content_type.contains("protobuf") {
                ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    "the simulator speaks JSON only",
                )
            } else {
                ApiError::bad_request(format!("json: {e}"))
            }
        })
    };
    match verb {
        "get" => {
            let obj = ops::get(c, rt, &ns, &name, sub)?;
            if wants_table && sub == Sub::Main {
                let stored = ops::to_stored(rt, obj.clone());
                let rv = obj["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                return Ok(json_response(
                    200,
                    &table::table(rt, &[stored], &rv, None, include),
                ));
            }
            Ok(json_response(200, &obj))
        }
        "list" => list(c, rt, t.namespace.as_deref(), q, wants_table, include)
            .map(|v| json_response(200, &v)),
        "watch" => watch(c, rt, t.namespace.clone(), q, wants_table, include),
        "create" if rt.is_review() => {
            let review_body = if content_type.contains("protobuf") {
                crate::proto::decode_review(body)
                    .ok_or_else(|| ApiError::bad_request("could not decode protobuf review"))?
            } else {
                parse_body()?
            };
            Ok(json_response(201, &review(c, who, rt, review_body)))
        }
        "create" => Ok(json_response(
            201,
            &ops::create(c, rt, &ns, parse_body()?, &wopts)?,
        )),
        "update" => Ok(json_response(
            200,
            &ops::update(c, rt, &ns, &name, parse_body()?, sub, &wopts)?,
        )),
        "patch" => {
            if content_type.starts_with("application/apply-patch") {
                return Err(ApiError::unsupported_media_type(content_type));
            }
            Ok(json_response(
                200,
                &ops::patch(c, rt, &ns, &name, content_type, body, sub, &wopts)?,
            ))
        }
        "delete" => {
            let mut opts = delete_opts(q, body)?;
            opts.dry_run |= dry_run;
            Ok(json_response(200, &ops::delete(c, rt, &ns, &name, &opts)?))
        }
        "deletecollection" => {
            let mut opts = delete_opts(q, body)?;
            opts.dry_run |= dry_run;
            let items = list(c, rt, t.namespace.as_deref(), q, false, include)?;
            let mut deleted = Vec::new();
            for o in items["items"].as_array().cloned().unwrap_or_default() {
                deleted.push(ops::delete(c, rt, ns_of(&o), name_of(&o), &opts)?);
            }
            Ok(json_response(
                200,
                &json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(), "metadata": {}, "items": deleted}),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn delete_opts(q: &HashMap<String, String>, body: &Bytes) -> ApiResult<DeleteOpts> {
    let b: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("json: {e}")))?
    };
    Ok(DeleteOpts {
        dry_run: b["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d == "All")),
        propagation: b["propagationPolicy"]
            .as_str()
            .map(String::from)
            .or_else(|| q.get("propagationPolicy").cloned()),
        grace_seconds: b["gracePeriodSeconds"]
            .as_i64()
            .or_else(|| q.get("gracePeriodSeconds").and_then(|g| g.parse().ok())),
        precondition_uid: b
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(String::from),
        precondition_rv: b
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok()),
    })
}

struct Filter {
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn new(rt: &ResourceType, ns: Option<&str>, q: &HashMap<String, String>) -> ApiResult<Filter> {
        let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        fields
            .validate(&allowed_fields(rt.group, rt.plural))
            .map_err(ApiError::bad_request)?;
        Ok(Filter {
            ns: ns.map(String::from),
            labels,
            fields,
        })
    }

    /// Matches the served form (field selectors name served fields such as `regarding.*`).
    fn matches(&self, rt: &ResourceType, stored: &Value) -> bool {
        if self.ns.as_deref().is_some_and(|n| n != ns_of(stored)) {
            return false;
        }
        if !self.labels.matches_object(stored) {
            return false;
        }
        if self.fields.is_empty_selector() {
            return true;
        }
        self.fields.matches(&ops::to_served(rt, stored.clone()))
    }
}

fn encode_continue(rv: u64, after: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"rv": rv, "start": after}).to_string())
}

fn decode_continue(token: &str) -> ApiResult<(u64, String)> {
    let bad = || ApiError::bad_request("continue key is not valid: illegal base64 data");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok((
        v["rv"].as_u64().ok_or_else(bad)?,
        v["start"].as_str().ok_or_else(bad)?.to_string(),
    ))
}

fn list(
    c: &Cluster,
    rt: &'static ResourceType,
    ns: Option<&str>,
    q: &HashMap<String, String>,
    as_table: bool,
    include: Include,
) -> ApiResult<Value> {
    let filter = Filter::new(rt, ns, q)?;
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let start = match q.get("continue").filter(|s| !s.is_empty()) {
        Some(tok) => Some(decode_continue(tok)?),
        None => None,
    };
    let (all, rv) = c.store.list(rt.storage, ns);
    let list_rv = start.as_ref().map(|(r, _)| *r).unwrap_or(rv);
    let key = |o: &Value| format!("{}/{}", ns_of(o), name_of(o));
    let mut items = Vec::new();
    let mut cont = None;
    let mut remaining = 0usize;
    for o in all.into_iter().filter(|o| {
        start
            .as_ref()
            .is_none_or(|(_, after)| key(o).as_str() > after.as_str())
    }) {
        if !filter.matches(rt, &o) {
            continue;
        }
        if items.len() >= limit {
            remaining += 1;
            continue;
        }
        items.push(o);
    }
    if remaining > 0
        && let Some(last) = items.last()
    {
        cont = Some(encode_continue(list_rv, &key(last)));
    }
    let rv_s = list_rv.to_string();
    if as_table {
        let mut t = table::table(rt, &items, &rv_s, cont.as_deref(), include);
        if remaining > 0 {
            t["metadata"]["remainingItemCount"] = json!(remaining);
        }
        return Ok(t);
    }
    let items: Vec<Value> = items
        .into_iter()
        .map(|o| {
            // Items of a list carry no kind/apiVersion, as upstream serves them.
            let mut s = ops::to_served(rt, o);
            if let Some(m) = s.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            s
        })
        .collect();
    let mut md = json!({"resourceVersion": rv_s});
    if let Some(ct) = cont {
        md["continue"] = json!(ct);
        md["remainingItemCount"] = json!(remaining);
    }
    Ok(
        json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(), "metadata": md, "items": items}),
    )
}

fn event_line(
    rt: &'static ResourceType,
    type_: &str,
    stored: &Value,
    as_table: bool,
    include: Include,
) -> Bytes {
    let object = if as_table {
        let rv = stored["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        table::table(rt, std::slice::from_ref(stored), &rv, None, include)
    } else {
        ops::to_served(rt, stored.clone())
    };
    let mut line =
        serde_json::to_vec(&json!({"type": type_, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
    let mut md = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        md["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let mut line = serde_json::to_vec(&json!({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": md}})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// How a change looks through a filtered watch: entering the selection is ADDED,
/// leaving it is DELETED, as the API server's watch cache reports.
fn classify(rt: &ResourceType, f: &Filter, ch: &Change) -> Option<&'static str> {
    let now = ch.event != EventType::Deleted && f.matches(rt, &ch.object);
    let before = ch.prev.as_ref().is_some_and(|p| f.matches(rt, p));
    match (ch.event, before, now) {
        (EventType::Deleted, true, _) => Some("DELETED"),
        (EventType::Deleted, false, _) => None,
        (_, false, true) => Some("ADDED"),
        (_, true, true) => Some("MODIFIED"),
        (_, true, false) => Some("DELETED"),
        (_, false, false) => None,
    }
}

fn watch(
    c: &Cluster,
    rt: &'static ResourceType,
    ns: Option<String>,
    q: &HashMap<String, String>,
    as_table: bool,
    include: Include,
) -> ApiResult<Response<Body>> {
    let filter = Filter::new(rt, ns.as_deref(), q)?;
    let since: Option<u64> = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(s) => Some(
            s.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))?,
        ),
    };
    let send_initial = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    let bookmarks = q
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true" || v == "1");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let faults = c.watch_faults();
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    // Initial state: a snapshot as ADDED events (no resourceVersion, or sendInitialEvents),
    // else the retained history after `since`.
    let (initial, mut changes, start_rv) = match since {
        Some(rv) if !send_initial => match c.store.watch_from(rv) {
            Ok((backlog, rx)) => {
                let lines: Vec<Bytes> = backlog
                    .iter()
                    .filter(|ch| ch.storage == rt.storage)
                    .filter_map(|ch| {
                        classify(rt, &filter, ch)
                            .map(|t| event_line(rt, t, &ch.object, as_table, include))
                    })
                    .collect();
                let last = backlog.last().map(|ch| ch.rv).unwrap_or(rv);
                (lines, rx, last)
            }
            Err(e) => {
                // Upstream answers 200 and sends the 410 as an ERROR event.
                let mut line =
                    serde_json::to_vec(&json!({"type": "ERROR", "object": e.to_status()}))
                        .unwrap_or_default();
                line.push(b'\n');
                return Ok(stream_response(vec![Bytes::from(line)], None));
            }
        },
        _ => {
            let (items, rv, rx) = c.store.list_and_watch(rt.storage, ns.as_deref());
            let mut lines: Vec<Bytes> = items
                .iter()
                .filter(|o| filter.matches(rt, o))
                .map(|o| event_line(rt, "ADDED", o, as_table, include))
                .collect();
            if send_initial {
                lines.push(bookmark(rt, rv, true));
            }
            (lines, rx, rv)
        }
    };
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let deadline = match (timeout, faults.close_after) {
            (Some(a), Some(b)) => Some(started + a.min(b)),
            (a, b) => a.or(b).map(|d| started + d),
        };
        let mut sent = 0usize;
        let mut last_rv = start_rv;
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sleep => return,
                _ = tick.tick(), if bookmarks => {
                    if tx.send(bookmark(rt, last_rv, false)).await.is_err() { return; }
                }
                _ = tx.closed() => return,
                msg = changes.recv() => match msg {
                    Ok(ch) => {
                        if ch.rv <= last_rv { continue; }
                        last_rv = ch.rv;
                        if ch.storage != rt.storage { continue; }
                        if let Some(t) = classify(rt, &filter, &ch) {
                            if tx.send(event_line(rt, t, &ch.object, as_table, include)).await.is_err() { return; }
                            sent += 1;
                            if faults.close_after_events.is_some_and(|n| sent >= n) { return; }
                        }
                    }
                    // A watcher too slow to keep up is closed; the client re-watches.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    });
    Ok(stream_response(Vec::new(), Some(rx)))
}

fn stream_response(first: Vec<Bytes>, rx: Option<mpsc::Receiver<Bytes>>) -> Response<Body> {
    use futures::StreamExt;
    let head = futures::stream::iter(first);
    let body: Body = match rx {
        Some(rx) => {
            let tail = tokio_stream::wrappers::ReceiverStream::new(rx);
            BodyExt::boxed(StreamBody::new(
                head.chain(tail)
                    .map(|b| Ok::<_, Infallible>(Frame::data(b))),
            ))
        }
        None => BodyExt::boxed(StreamBody::new(
            head.map(|b| Ok::<_, Infallible>(Frame::data(b))),
        )),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/json")
        .header("Transfer-Encoding", "chunked")
        .body(body)
        .expect("response")
}

/// SelfSubjectAccessReview (answered from the Forbidden faults) and SelfSubjectReview.
fn review(c: &Cluster, who: &Who, rt: &ResourceType, mut body: Value) -> Value {
    body["apiVersion"] = json!(rt.api_version());
    body["kind"] = json!(rt.kind);
    if body["metadata"].is_null() {
        body["metadata"] = json!({});
    }
    body["metadata"]["creationTimestamp"] = json!(crate::store::now_rfc3339());
    if rt.kind == "SelfSubjectReview" {
        let groups = if who.groups.is_empty() {
            vec![
                "system:masters".to_string(),
                "system:authenticated".to_string(),
            ]
        } else {
            let mut g = who.groups.clone();
            g.push("system:authenticated".into());
            g
        };
        body["status"] = json!({"userInfo": {"username": who.user, "groups": groups}});
        return body;
    }
    let attrs = &body["spec"]["resourceAttributes"];
    let verb = attrs["verb"].as_str().unwrap_or("");
    let mut resource = attrs["resource"].as_str().unwrap_or("").to_string();
    if let Some(sub) = attrs["subresource"].as_str().filter(|s| !s.is_empty()) {
        resource = format!("{resource}/{sub}");
    }
    let name = attrs["name"].as_str().unwrap_or("");
    let group = attrs["group"].as_str().unwrap_or("");
    let denied = c.would_forbid(verb, &resource, name)
        || !c.rbac_allows(
            verb,
            group,
            &resource,
            attrs["namespace"].as_str().is_none_or(str::is_empty),
        );
    body["status"] = if denied {
        json!({"allowed": false})
    } else {
        json!({"allowed": true, "reason": "bluegreen-sim allows everything"})
    };
    body
}
