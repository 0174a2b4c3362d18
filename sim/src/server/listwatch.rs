//! List and watch serving: label and field selectors, pagination (limit, continue
//! tokens, remainingItemCount), Table output, and watch streams (from a snapshot or a
//! resourceVersion, filtered ADDED/MODIFIED/DELETED, bookmarks, timeouts, the injected
//! watch faults, 410 Gone as an ERROR event).

use super::http::{Body, stream_response};
use crate::cluster::{Cluster, WatchFaults};
use crate::error::{ApiError, ApiResult};
use crate::ops;
use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector, allowed_fields};
use crate::store::{Change, EventType, Visit, name_of, ns_of};
use crate::table::{self, Include};
use base64::Engine;
use bytes::Bytes;
use hyper::Response;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Which objects a list or watch selects: namespace, label and field selectors.
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

    /// The candidates the store can find without a scan (`pairs`: the label selector's
    /// required pairs): the one named object, else the labelled ones, else all.
    fn visit<'a>(&'a self, pairs: Option<&'a [(String, String)]>) -> Visit<'a> {
        match (self.fields.single_name(), pairs) {
            (Some(name), _) => Visit::Named(name),
            (None, Some(pairs)) => Visit::Labelled(pairs),
            (None, None) => Visit::All,
        }
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
        // Only events.k8s.io serves fields under other names than it stores them.
        if rt.group == "events.k8s.io" {
            self.fields.matches(&ops::to_served(rt, stored.clone()))
        } else {
            self.fields.matches(stored)
        }
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

/// The API server's checks of a list's resourceVersion options
/// (apimachinery's ValidateListOptions, and the storage's refusal of a resourceVersion
/// beside a continue token).
/// Upstream's `ValidateListOptions`: every error at once, as a 422 on `ListOptions`.
fn validate_list_options(q: &HashMap<String, String>) -> ApiResult<()> {
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let (rv, cont) = (get("resourceVersion"), get("continue"));
    if let Some(m) = get("resourceVersionMatch") {
        let field = "resourceVersionMatch".to_string();
        let forbidden = |why: &str| {
            (
                field.clone(),
                "FieldValueForbidden",
                format!("Forbidden: {why}"),
            )
        };
        let mut causes = Vec::new();
        if rv.is_none() {
            causes.push(forbidden(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if cont.is_some() {
            causes.push(forbidden(
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        if m != "Exact" && m != "NotOlderThan" {
            causes.push((
                field.clone(),
                "FieldValueNotSupported",
                format!("Unsupported value: \"{m}\": supported values: \"Exact\", \"NotOlderThan\", \"\""),
            ));
        }
        if m == "Exact" && rv == Some("0") {
            causes.push(forbidden(
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid_kind(
                "meta.k8s.io",
                "ListOptions",
                "",
                &causes,
            ));
        }
    }
    if cont.is_some() && rv.is_some() {
        return Err(ApiError::bad_request(
            "specifying resource version is not allowed when using continue",
        ));
    }
    Ok(())
}

/// A list (or a Table of it), one page of it when `limit` is set.
pub(super) fn list(
    c: &Cluster,
    rt: &'static ResourceType,
    ns: Option<&str>,
    q: &HashMap<String, String>,
    as_table: bool,
    include: Include,
) -> ApiResult<Value> {
    let filter = Filter::new(rt, ns, q)?;
    validate_list_options(q)?;
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let start = match q.get("continue").filter(|s| !s.is_empty()) {
        Some(tok) => Some(decode_continue(tok)?),
        None => None,
    };
    // Selectors are matched before copying: a list costs what it selects.
    let pairs = filter.labels.required_pairs();
    let visit = filter.visit(pairs.as_deref());
    // `Exact` and a continued list read a snapshot (upstream: etcd at that revision);
    // everything else reads the newest state.
    let exact = q.get("resourceVersionMatch").is_some_and(|m| m == "Exact");
    let snapshot_rv = match &start {
        Some((r, _)) => Some(*r),
        None if exact => q.get("resourceVersion").and_then(|r| r.parse::<u64>().ok()),
        None => None,
    };
    let (all, rv) = match snapshot_rv {
        Some(at) => (
            c.store
                .list_at(rt.storage, ns, visit, at, |o| filter.matches(rt, o))?,
            at,
        ),
        None => c
            .store
            .list_where(rt.storage, ns, visit, |o| filter.matches(rt, o)),
    };
    let list_rv = start.as_ref().map(|(r, _)| *r).unwrap_or(rv);
    let key = |o: &Value| format!("{}/{}", ns_of(o), name_of(o));
    let mut items = Vec::new();
    let mut cont = None;
    let mut remaining = 0usize;
    for o in all.into_iter().filter(|o| {
        start
            .as_ref()
            // In the store's (namespace, name) order, which "ns/name" as a string is not.
            .is_none_or(|(_, after)| {
                (ns_of(o), name_of(o)) > after.split_once('/').unwrap_or(("", after.as_str()))
            })
    }) {
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

/// A watch stream: initial events (a snapshot, or the retained history after the
/// requested resourceVersion), then live changes until the timeout, the client leaves,
/// or an injected watch fault closes it.
pub(super) fn watch(
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
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let stream = WatchStream {
        rt,
        filter,
        as_table,
        include,
        bookmarks: q
            .get("allowWatchBookmarks")
            .is_some_and(|v| v == "true" || v == "1"),
        timeout,
        faults: c.watch_faults(),
    };
    // Initial state: a snapshot as ADDED events (no resourceVersion, or sendInitialEvents),
    // else the retained history after `since`.
    let (initial, changes, start_rv) = match since {
        Some(rv) if !send_initial => match c.store.watch_from(rv) {
            Ok((backlog, rx)) => {
                let lines: Vec<Bytes> = backlog
                    .iter()
                    .filter(|ch| ch.storage == rt.storage)
                    .filter_map(|ch| stream.line_for(ch))
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
            let pairs = stream.filter.labels.required_pairs();
            let visit = stream.filter.visit(pairs.as_deref());
            let (items, rv, rx) = c
                .store
                .list_and_watch(rt.storage, ns.as_deref(), visit, |o| {
                    stream.filter.matches(rt, o)
                });
            let mut lines: Vec<Bytes> = items
                .iter()
                .map(|o| event_line(rt, "ADDED", o, as_table, include))
                .collect();
            if send_initial {
                lines.push(bookmark(rt, rv, true));
            }
            (lines, rx, rv)
        }
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    tokio::spawn(stream.forward(tx, initial, changes, start_rv));
    Ok(stream_response(Vec::new(), Some(rx)))
}

/// One watch's settings, moved into the task that feeds its stream.
struct WatchStream {
    rt: &'static ResourceType,
    filter: Filter,
    as_table: bool,
    include: Include,
    bookmarks: bool,
    timeout: Option<Duration>,
    faults: WatchFaults,
}

impl WatchStream {
    /// The event line a change makes through this watch's filter, if any.
    fn line_for(&self, ch: &Change) -> Option<Bytes> {
        classify(self.rt, &self.filter, ch)
            .map(|t| event_line(self.rt, t, &ch.object, self.as_table, self.include))
    }

    /// Sends the initial lines, then changes after `start_rv` (and bookmarks each
    /// second when asked for) until the deadline, a closed client, or a watch fault.
    async fn forward(
        self,
        tx: mpsc::Sender<Bytes>,
        initial: Vec<Bytes>,
        mut changes: broadcast::Receiver<std::sync::Arc<Change>>,
        start_rv: u64,
    ) {
        let rt = self.rt;
        let started = tokio::time::Instant::now();
        let deadline = match (self.timeout, self.faults.close_after) {
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
                _ = tick.tick(), if self.bookmarks => {
                    if tx.send(bookmark(rt, last_rv, false)).await.is_err() { return; }
                }
                _ = tx.closed() => return,
                msg = changes.recv() => match msg {
                    Ok(ch) => {
                        if ch.rv <= last_rv { continue; }
                        last_rv = ch.rv;
                        if ch.storage != rt.storage { continue; }
                        if let Some(line) = self.line_for(&ch) {
                            if tx.send(line).await.is_err() { return; }
                            sent += 1;
                            if self.faults.close_after_events.is_some_and(|n| sent >= n) { return; }
                        }
                    }
                    // A watcher too slow to keep up is closed; the client re-watches.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }
}
