//! The controllers that run inside the simulated server, in one loop woken by writes and
//! by timers: garbage collector, Deployment, ReplicaSet, a kubelet stand-in and the
//! EndpointSlice/Endpoints controller. Each is a reconcile function over the store that
//! writes through `ops`/`Store` with resourceVersion guards, as upstream controllers do.
//!
//! Kubelet image convention (documented in the README): an image reference containing
//! `crashloop` runs but crash-loops (CrashLoopBackOff), one containing `pullfail` never
//! pulls (ErrImagePull / ImagePullBackOff), one containing `neverready` runs and never
//! passes its readiness probe. Any other image becomes Ready after `pod_ready_after`.

use crate::cluster::Cluster;
use crate::ops::{self, DeleteOpts, WriteOpts};
use crate::resources::{self, find};
use crate::selector::LabelSelector;
use crate::store::{name_of, now_rfc3339, ns_of, rv_of, uid_of};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use tokio::time::Instant;

const HASH_LABEL: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";
const NODE: &str = "sim-node-1";

/// What the controllers remember between passes (upstream keeps this in informer caches
/// and the kubelet's memory).
#[derive(Default)]
pub struct ControllerState {
    pod_started: HashMap<String, Instant>,
    pod_ready_since: HashMap<String, Instant>,
    pod_terminating_since: HashMap<String, Instant>,
    /// Last time each Deployment (by uid) made progress, for progressDeadlineSeconds.
    progress_at: HashMap<String, Instant>,
    /// EndpointSlice updates scheduled per Service (ns, name), applied when due: the
    /// endpoint controller's propagation lag.
    endpoint_queue: HashMap<(String, String), VecDeque<(Instant, Value)>>,
    endpoint_last: HashMap<(String, String), Value>,
}

/// Runs the controllers until the process ends.
pub async fn run(c: Arc<Cluster>) {
    let mut state = ControllerState::default();
    loop {
        if c.controllers_paused() {
            c.kicked.notified().await;
            continue;
        }
        let next = reconcile_until_stable(&c, &mut state);
        if let Some(t) = c.traffic() {
            t.reconcile(&c);
        }
        match next {
            Some(at) => {
                tokio::select! {
                    _ = c.kicked.notified() => {}
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
            None => c.kicked.notified().await,
        }
    }
}

/// Runs passes until a pass changes nothing; returns when the next timed step is due.
pub fn reconcile_until_stable(c: &Cluster, state: &mut ControllerState) -> Option<Instant> {
    let mut next = None;
    for _ in 0..50 {
        let before = c.store.resource_version();
        next = reconcile_once(c, state);
        if c.store.resource_version() == before {
            break;
        }
    }
    next
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Names of the objects each owner (by uid) controls, built once per pass so that a
/// controller's look-up does not scan the namespace (thousands of apps stay cheap).
#[derive(Default)]
struct OwnerIndex(HashMap<String, Vec<(String, String)>>);

impl OwnerIndex {
    fn build(c: &Cluster, storage: &str) -> Self {
        let mut idx: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for (owner, ns, name) in c.store.scan(storage, None, |o| {
            let r = o["metadata"]["ownerReferences"]
                .as_array()?
                .iter()
                .find(|r| r["controller"] == true)?;
            Some((
                r["uid"].as_str()?.to_string(),
                ns_of(o).to_string(),
                name_of(o).to_string(),
            ))
        }) {
            idx.entry(owner).or_default().push((ns, name));
        }
        OwnerIndex(idx)
    }

    /// Current copies of what `owner_uid` controls, plus `extra` names created since.
    fn owned(
        &self,
        c: &Cluster,
        storage: &str,
        owner_uid: &str,
        extra: &[(String, String)],
    ) -> Vec<Value> {
        let base = self.0.get(owner_uid).map(Vec::as_slice).unwrap_or(&[]);
        let mut names: Vec<&(String, String)> = base.iter().chain(extra).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|(ns, n)| c.store.get(storage, ns, n))
            .filter(|o| owned_by(o, owner_uid))
            .collect()
    }
}

pub fn reconcile_once(c: &Cluster, state: &mut ControllerState) -> Option<Instant> {
    let now = Instant::now();
    garbage_collect(c);
    let mut next = None;
    let rs_index = OwnerIndex::build(c, "replicasets");
    let pod_index = OwnerIndex::build(c, "pods");
    for d in c.store.list("deployments", None).0 {
        next = earliest(
            next,
            reconcile_deployment(c, state, &d, now, &rs_index, &pod_index),
        );
    }
    let pod_index = OwnerIndex::build(c, "pods");
    for rs in c.store.list("replicasets", None).0 {
        reconcile_replicaset(c, state, &rs, now, &pod_index);
    }
    for p in c.store.list("pods", None).0 {
        next = earliest(next, kubelet(c, state, &p, now));
    }
    next = earliest(next, reconcile_endpoints(c, state, now));
    next
}

// ---------------------------------------------------------------- garbage collector

/// Deletes objects whose every owner is gone (Background propagation).
fn garbage_collect(c: &Cluster) {
    let mut live: HashSet<String> = HashSet::new();
    for s in ["deployments", "replicasets", "services", "pods"] {
        live.extend(c.store.scan(s, None, |o| Some(uid_of(o).to_string())));
    }
    for storage in ["replicasets", "pods", "endpointslices"] {
        let orphans = c.store.scan(storage, None, |o| {
            let refs = o["metadata"]["ownerReferences"].as_array()?;
            (!refs.is_empty()
                && refs
                    .iter()
                    .all(|r| !live.contains(r["uid"].as_str().unwrap_or(""))))
            .then(|| (ns_of(o).to_string(), name_of(o).to_string()))
        });
        let rt = resources::by_storage(storage);
        for (ns, name) in orphans {
            let _ = ops::delete(c, rt, &ns, &name, &DeleteOpts::default());
        }
    }
}

// ---------------------------------------------------------------- events

/// Records a core/v1 Event about an object, as controllers do through their recorder.
pub fn record_event(
    c: &Cluster,
    obj: &Value,
    type_: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let now = now_rfc3339();
    let nanos = jiff::Timestamp::now().as_nanosecond();
    let ev = json!({
        "metadata": {"name": format!("{}.{:x}", name_of(obj), nanos), "namespace": ns_of(obj)},
        "involvedObject": {"kind": obj["kind"], "namespace": ns_of(obj), "name": name_of(obj), "uid": uid_of(obj), "apiVersion": obj["apiVersion"], "resourceVersion": obj["metadata"]["resourceVersion"]},
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": type_,
        "eventTime": null,
        "reportingComponent": component,
        "reportingInstance": "",
    });
    let rt = find("", "v1", "events").expect("events resource");
    let _ = ops::create(c, rt, ns_of(obj), ev, &WriteOpts::default());
}

// ---------------------------------------------------------------- deployment

/// FNV-1a 32-bit, as upstream hashes pod templates.
fn fnv32a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in data {
        h ^= *b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

/// The `pod-template-hash` of a template: upstream's `SafeEncodeString` of the decimal hash.
pub fn template_hash(template: &Value) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let h = fnv32a(template.to_string().as_bytes());
    h.to_string()
        .bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// Drops nulls and empty maps/lists, so templates compare as upstream's semantic
/// equality does (`kubectl rollout undo` sends `creationTimestamp: null` and `{}`s).
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .filter(|(_, v)| {
                    !(v.is_null()
                        || v.as_object().is_some_and(|m| m.is_empty())
                        || v.as_array().is_some_and(|a| a.is_empty()))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn without_hash_label(template: &Value) -> Value {
    let mut t = normalized(template);
    if let Some(l) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        l.remove(HASH_LABEL);
    }
    t
}

fn owned_by(o: &Value, uid: &str) -> bool {
    o["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == uid && r["controller"] == true)
        })
}

fn owner_ref(api_version: &str, kind: &str, owner: &Value) -> Value {
    json!([{"apiVersion": api_version, "kind": kind, "name": name_of(owner), "uid": uid_of(owner), "controller": true, "blockOwnerDeletion": true}])
}

fn revision_of(rs: &Value) -> i64 {
    rs.pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Resolves an IntOrString (`25%` or `1`) against a total, rounding up or down.
fn resolve_int_or_percent(v: &Value, total: i64, round_up: bool) -> i64 {
    match v {
        Value::String(s) if s.ends_with('%') => {
            let p: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            if round_up {
                (p * total + 99) / 100
            } else {
                p * total / 100
            }
        }
        Value::String(s) => s.parse().unwrap_or(0),
        other => int(other),
    }
}

fn set_rs_replicas(c: &Cluster, d: &Value, rs: &Value, to: i64, max_surge: i64) {
    let from = int(&rs["spec"]["replicas"]);
    if from == to {
        return;
    }
    let mut next = rs.clone();
    next["spec"]["replicas"] = json!(to);
    let ann = &mut next["metadata"]["annotations"];
    if !ann.is_object() {
        *ann = json!({});
    }
    ann["deployment.kubernetes.io/desired-replicas"] =
        json!(int(&d["spec"]["replicas"]).to_string());
    ann["deployment.kubernetes.io/max-replicas"] =
        json!((int(&d["spec"]["replicas"]) + max_surge).to_string());
    if let Ok(stored) = write(c, "replicasets", next, rs) {
        let verb = if to > from { "up" } else { "down" };
        let msg = format!(
            "Scaled {verb} replica set {} from {from} to {to}",
            name_of(&stored)
        );
        record_event(
            c,
            d,
            "Normal",
            "ScalingReplicaSet",
            &msg,
            "deployment-controller",
        );
    }
}

/// A guarded write: fails (and is retried on the next pass) if `based_on` went stale.
fn write(
    c: &Cluster,
    storage: &'static str,
    next: Value,
    based_on: &Value,
) -> Result<Value, crate::error::ApiError> {
    let rt = resources::by_storage(storage);
    let mut next = next;
    if rt.has_generation && next["spec"] != based_on["spec"] {
        next["metadata"]["generation"] = json!(int(&based_on["metadata"]["generation"]) + 1);
    }
    c.store.update(storage, next, rv_of(based_on))
}

fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// Sets a condition, keeping lastTransitionTime unless status flips and lastUpdateTime
/// unless something about it changed (or `touch`).
fn set_condition(
    status: &mut Value,
    old: &Value,
    type_: &str,
    st: &str,
    reason: &str,
    message: &str,
    touch: bool,
) {
    let now = now_rfc3339();
    let prev = condition(old, type_);
    let same_status = prev.is_some_and(|p| p["status"] == st);
    let unchanged =
        same_status && prev.is_some_and(|p| p["reason"] == reason && p["message"] == message);
    let cond = json!({
        "type": type_,
        "status": st,
        "lastUpdateTime": if unchanged && !touch { prev.map(|p| p["lastUpdateTime"].clone()).unwrap_or(json!(now)) } else { json!(now) },
        "lastTransitionTime": if same_status { prev.map(|p| p["lastTransitionTime"].clone()).unwrap_or(json!(now)) } else { json!(now) },
        "reason": reason,
        "message": message,
    });
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let list = status["conditions"].as_array_mut().expect("array");
    match list.iter().position(|c| c["type"] == type_) {
        Some(i) => list[i] = cond,
        None => list.push(cond),
    }
}

fn reconcile_deployment(
    c: &Cluster,
    state: &mut ControllerState,
    d: &Value,
    now: Instant,
    rs_index: &OwnerIndex,
    pod_index: &OwnerIndex,
) -> Option<Instant> {
    let ns = ns_of(d);
    let uid = uid_of(d).to_string();
    let spec = &d["spec"];
    let replicas = int(&spec["replicas"]);
    let template = &spec["template"];
    let mut all: Vec<Value> = rs_index.owned(c, "replicasets", &uid, &[]);
    all.sort_by_key(revision_of);
    let max_revision = all.iter().map(revision_of).max().unwrap_or(0);
    let paused = spec["paused"] == true;
    let wanted_template = normalized(template);
    let mut new_rs = all
        .iter()
        .find(|rs| without_hash_label(&rs["spec"]["template"]) == wanted_template)
        .cloned();
    let mut created_new = false;

    if !paused {
        match &new_rs {
            None => {
                let hash = template_hash(&wanted_template);
                let mut t = template.clone();
                t["metadata"]["labels"][HASH_LABEL] = json!(hash);
                let mut selector = spec["selector"].clone();
                selector["matchLabels"][HASH_LABEL] = json!(hash);
                let mut labels = template["metadata"]["labels"].clone();
                labels[HASH_LABEL] = json!(hash);
                let mut annotations = json!({
                    REVISION: (max_revision + 1).to_string(),
                    "deployment.kubernetes.io/desired-replicas": replicas.to_string(),
                    "deployment.kubernetes.io/max-replicas": replicas.to_string(),
                });
                if let Some(cause) = d.pointer("/metadata/annotations/kubernetes.io~1change-cause")
                {
                    annotations["kubernetes.io/change-cause"] = cause.clone();
                }
                let rs = json!({
                    "metadata": {"name": format!("{}-{hash}", name_of(d)), "namespace": ns, "labels": labels, "annotations": annotations, "ownerReferences": owner_ref("apps/v1", "Deployment", d)},
                    "spec": {"replicas": 0, "minReadySeconds": spec["minReadySeconds"].as_i64().unwrap_or(0), "selector": selector, "template": t},
                });
                let rt = find("apps", "v1", "replicasets").expect("rs");
                if let Ok(rs) = ops::create(c, rt, ns, rs, &WriteOpts::default()) {
                    created_new = true;
                    state.progress_at.insert(uid.clone(), now);
                    all.push(rs.clone());
                    new_rs = Some(rs);
                }
            }
            Some(rs) if revision_of(rs) < max_revision => {
                // A rollback to an older template: that ReplicaSet becomes the newest revision.
                let mut next = rs.clone();
                next["metadata"]["annotations"][REVISION] = json!((max_revision + 1).to_string());
                if write(c, "replicasets", next, rs).is_ok() {
                    state.progress_at.insert(uid.clone(), now);
                }
                // The next pass sees the new revision order.
                return Some(now);
            }
            _ => {}
        }
    }

    let new_name = new_rs.as_ref().map(|r| name_of(r).to_string());
    let olds: Vec<&Value> = all
        .iter()
        .filter(|r| Some(name_of(r).to_string()) != new_name)
        .collect();
    let ru = &spec["strategy"]["rollingUpdate"];
    let recreate = spec["strategy"]["type"] == "Recreate";
    let mut surge = if recreate {
        0
    } else {
        resolve_int_or_percent(&ru["maxSurge"], replicas, true)
    };
    let mut unavailable = if recreate {
        0
    } else {
        resolve_int_or_percent(&ru["maxUnavailable"], replicas, false)
    };
    if !recreate && surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    if recreate {
        surge = 0;
    }

    if let Some(new) = new_rs.as_ref().filter(|_| !paused) {
        let new_spec = int(&new["spec"]["replicas"]);
        if recreate {
            // Upstream waits until no pod of an old ReplicaSet is left, terminating included.
            let old_active = olds
                .iter()
                .flat_map(|r| pod_index.owned(c, "pods", uid_of(r), &[]))
                .filter(|p| p["status"]["phase"] != "Failed" && p["status"]["phase"] != "Succeeded")
                .count();
            for old in &olds {
                set_rs_replicas(c, d, old, 0, 0);
            }
            if old_active == 0 && new_spec != replicas {
                set_rs_replicas(c, d, new, replicas, 0);
            }
        } else {
            let total: i64 = all.iter().map(|r| int(&r["spec"]["replicas"])).sum();
            if new_spec > replicas {
                set_rs_replicas(c, d, new, replicas, surge);
            } else if new_spec < replicas {
                let max_total = replicas + surge;
                if total < max_total {
                    let to = (new_spec + max_total - total).min(replicas);
                    set_rs_replicas(c, d, new, to, surge);
                }
            }
            // Scale down old ReplicaSets only as far as availability allows.
            let min_available = replicas - unavailable;
            let new_unavailable = new_spec - int(&new["status"]["availableReplicas"]);
            let mut cleanup = total - min_available - new_unavailable;
            let mut scaled: HashMap<String, i64> = HashMap::new();
            for old in &olds {
                if cleanup <= 0 {
                    break;
                }
                let spec_n = int(&old["spec"]["replicas"]);
                let unhealthy = spec_n - int(&old["status"]["availableReplicas"]);
                let down = unhealthy.min(cleanup).max(0);
                if down > 0 {
                    scaled.insert(name_of(old).to_string(), spec_n - down);
                    cleanup -= down;
                }
            }
            let available: i64 = all
                .iter()
                .map(|r| int(&r["status"]["availableReplicas"]))
                .sum();
            let mut budget = available - min_available;
            for old in &olds {
                let cur = scaled
                    .get(name_of(old))
                    .copied()
                    .unwrap_or(int(&old["spec"]["replicas"]));
                if budget <= 0 || cur == 0 {
                    continue;
                }
                let down = cur.min(budget);
                scaled.insert(name_of(old).to_string(), cur - down);
                budget -= down;
            }
            for old in &olds {
                if let Some(to) = scaled.get(name_of(old)) {
                    set_rs_replicas(c, d, old, *to, surge);
                }
            }
        }
    }

    // Revision history trimming: oldest idle ReplicaSets beyond revisionHistoryLimit.
    let limit = spec["revisionHistoryLimit"].as_i64().unwrap_or(10);
    let idle: Vec<&&Value> = olds
        .iter()
        .filter(|r| int(&r["spec"]["replicas"]) == 0 && int(&r["status"]["replicas"]) == 0)
        .collect();
    if idle.len() as i64 > limit {
        let rt = find("apps", "v1", "replicasets").expect("rs");
        for r in idle.iter().take(idle.len() - limit as usize) {
            let _ = ops::delete(c, rt, ns, name_of(r), &DeleteOpts::default());
        }
    }

    // Status, re-read so it reflects this pass's writes.
    let names: Vec<(String, String)> = all
        .iter()
        .map(|r| (ns.to_string(), name_of(r).to_string()))
        .collect();
    let all: Vec<Value> = rs_index.owned(c, "replicasets", &uid, &names);
    let new_rs = new_name
        .as_ref()
        .and_then(|n| all.iter().find(|r| name_of(r) == n));
    let sum = |f: &str| -> i64 { all.iter().map(|r| int(&r["status"][f])).sum() };
    let spec_total: i64 = all.iter().map(|r| int(&r["spec"]["replicas"])).sum();
    let old_status = &d["status"];
    let mut st = json!({
        "observedGeneration": d["metadata"]["generation"],
        "replicas": sum("replicas"),
        "updatedReplicas": new_rs.map(|r| int(&r["status"]["replicas"])).unwrap_or(0),
        "readyReplicas": sum("readyReplicas"),
        "availableReplicas": sum("availableReplicas"),
        "unavailableReplicas": (spec_total - sum("availableReplicas")).max(0),
        "conditions": old_status["conditions"].clone(),
    });
    for k in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "unavailableReplicas",
    ] {
        if st[k] == 0 {
            st.as_object_mut().expect("object").remove(k);
        }
    }
    if st["conditions"].is_null() {
        st["conditions"] = json!([]);
    }
    let available = int(&st["availableReplicas"]);
    if available >= replicas - unavailable {
        set_condition(
            &mut st,
            old_status,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            false,
        );
    } else {
        set_condition(
            &mut st,
            old_status,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            false,
        );
    }
    let progressed = ["updatedReplicas", "readyReplicas", "availableReplicas"]
        .iter()
        .any(|k| int(&st[k]) > int(&old_status[k]))
        || int(&st["replicas"]) - int(&st["updatedReplicas"])
            < int(&old_status["replicas"]) - int(&old_status["updatedReplicas"]);
    if progressed {
        state.progress_at.insert(uid.clone(), now);
    }
    let complete = int(&st["updatedReplicas"]) == replicas
        && int(&st["replicas"]) == replicas
        && available == replicas
        && new_rs.is_some();
    let rs_name = new_name.clone().unwrap_or_default();
    let deadline = spec["progressDeadlineSeconds"].as_i64().unwrap_or(600);
    let mut wake = None;
    let was = condition(old_status, "Progressing")
        .map(|p| p["reason"].as_str().unwrap_or("").to_string());
    if paused {
        set_condition(
            &mut st,
            old_status,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
            false,
        );
    } else if complete {
        set_condition(
            &mut st,
            old_status,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
            false,
        );
    } else if was.as_deref() == Some("ProgressDeadlineExceeded") && !progressed && !created_new {
        // Stays timed out until something changes.
    } else {
        let last = *state.progress_at.entry(uid.clone()).or_insert(now);
        let due = last + std::time::Duration::from_secs(deadline.max(0) as u64);
        if now >= due {
            set_condition(
                &mut st,
                old_status,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                &format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                false,
            );
        } else {
            wake = Some(due);
            if created_new {
                set_condition(
                    &mut st,
                    old_status,
                    "Progressing",
                    "True",
                    "NewReplicaSetCreated",
                    &format!("Created new replica set \"{rs_name}\""),
                    true,
                );
            } else if was.is_none() || progressed || was.as_deref() != Some("NewReplicaSetCreated")
            {
                set_condition(
                    &mut st,
                    old_status,
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    &format!("ReplicaSet \"{rs_name}\" is progressing."),
                    progressed,
                );
            }
        }
    }
    // Keep upstream's order: Available before Progressing.
    if let Some(list) = st["conditions"].as_array_mut() {
        list.sort_by_key(|c| if c["type"] == "Available" { 0 } else { 1 });
    }
    let mut next = d.clone();
    if let Some(rs) = new_rs {
        let rev = revision_of(rs).to_string();
        if d.pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
            .and_then(Value::as_str)
            != Some(rev.as_str())
        {
            if !next["metadata"]["annotations"].is_object() {
                next["metadata"]["annotations"] = json!({});
            }
            next["metadata"]["annotations"][REVISION] = json!(rev);
        }
    }
    next["status"] = st;
    if next != *d {
        let _ = c.store.update("deployments", next, rv_of(d));
    }
    wake
}

// ---------------------------------------------------------------- replicaset

fn pod_ready(p: &Value) -> bool {
    condition(&p["status"], "Ready").is_some_and(|c| c["status"] == "True")
}

fn terminating(p: &Value) -> bool {
    !p["metadata"]["deletionTimestamp"].is_null()
}

fn reconcile_replicaset(
    c: &Cluster,
    state: &mut ControllerState,
    rs: &Value,
    now: Instant,
    pod_index: &OwnerIndex,
) {
    let ns = ns_of(rs);
    let uid = uid_of(rs).to_string();
    let pods: Vec<Value> = pod_index.owned(c, "pods", &uid, &[]);
    let mut created: Vec<(String, String)> = Vec::new();
    let active: Vec<&Value> = pods
        .iter()
        .filter(|p| {
            !terminating(p)
                && p["status"]["phase"] != "Failed"
                && p["status"]["phase"] != "Succeeded"
        })
        .collect();
    let want = int(&rs["spec"]["replicas"]);
    let pod_rt = find("", "v1", "pods").expect("pods");
    let diff = active.len() as i64 - want;
    if diff < 0 {
        for _ in 0..(-diff) {
            let t = &rs["spec"]["template"];
            let pod = json!({
                "metadata": {"generateName": format!("{}-", name_of(rs)), "namespace": ns, "labels": t["metadata"]["labels"], "annotations": t["metadata"]["annotations"], "ownerReferences": owner_ref("apps/v1", "ReplicaSet", rs)},
                "spec": t["spec"],
            });
            let mut pod = pod;
            if pod["metadata"]["annotations"].is_null() {
                pod["metadata"]
                    .as_object_mut()
                    .expect("object")
                    .remove("annotations");
            }
            if let Ok(p) = ops::create(c, pod_rt, ns, pod, &WriteOpts::default()) {
                created.push((ns.to_string(), name_of(&p).to_string()));
            }
        }
    } else if diff > 0 {
        // Upstream deletes the least useful pods first: unscheduled, not ready, newest.
        let mut victims = active.clone();
        victims.sort_by_key(|p| {
            (
                p["spec"]["nodeName"].is_string(),
                pod_ready(p),
                std::cmp::Reverse(
                    p["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                ),
            )
        });
        for p in victims.iter().take(diff as usize) {
            let _ = ops::delete(c, pod_rt, ns, name_of(p), &DeleteOpts::default());
        }
    }
    let min_ready = rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let pods: Vec<Value> = pod_index
        .owned(c, "pods", &uid, &created)
        .into_iter()
        .filter(|p| !terminating(p))
        .collect();
    let ready = pods.iter().filter(|p| pod_ready(p)).count() as i64;
    let available = pods
        .iter()
        .filter(|p| pod_ready(p))
        .filter(|p| {
            state
                .pod_ready_since
                .get(uid_of(p))
                .is_none_or(|since| now.duration_since(*since).as_secs() as i64 >= min_ready)
        })
        .count() as i64;
    let template_labels = LabelSelector::from_map(
        rs["spec"]["template"]["metadata"]["labels"]
            .as_object()
            .unwrap_or(&Default::default()),
    );
    let fully_labeled = pods
        .iter()
        .filter(|p| template_labels.matches_object(p))
        .count() as i64;
    let mut st = json!({
        "replicas": pods.len(),
        "fullyLabeledReplicas": fully_labeled,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": rs["metadata"]["generation"],
    });
    for k in ["fullyLabeledReplicas", "readyReplicas", "availableReplicas"] {
        if st[k] == 0 {
            st.as_object_mut().expect("object").remove(k);
        }
    }
    if rs["status"] != st {
        let mut next = rs.clone();
        next["status"] = st;
        let _ = c.store.update("replicasets", next, rv_of(rs));
    }
}

// ---------------------------------------------------------------- kubelet

enum ImageBehaviour {
    Normal,
    CrashLoop,
    PullFail,
    NeverReady,
}

fn behaviour(image: &str) -> ImageBehaviour {
    if image.contains("crashloop") {
        ImageBehaviour::CrashLoop
    } else if image.contains("pullfail") {
        ImageBehaviour::PullFail
    } else if image.contains("neverready") {
        ImageBehaviour::NeverReady
    } else {
        ImageBehaviour::Normal
    }
}

fn kubelet(c: &Cluster, state: &mut ControllerState, p: &Value, now: Instant) -> Option<Instant> {
    let uid = uid_of(p).to_string();
    let timing = c.timing();
    if terminating(p) {
        let since = *state
            .pod_terminating_since
            .entry(uid.clone())
            .or_insert(now);
        let grace = std::time::Duration::from_secs(
            p["metadata"]["deletionGracePeriodSeconds"]
                .as_u64()
                .unwrap_or(30),
        )
        .min(timing.pod_termination);
        let gone_at = since + grace;
        if now >= gone_at {
            let _ = c.store.delete("pods", ns_of(p), name_of(p), None);
            state.pod_terminating_since.remove(&uid);
            state.pod_started.remove(&uid);
            state.pod_ready_since.remove(&uid);
            return None;
        }
        // A terminating pod stops being ready at once (its endpoints turn not-ready).
        let mut next = p.clone();
        set_pod_ready(&mut next, false, "ContainersNotReady");
        if let Some(cs) = next["status"]["containerStatuses"].as_array_mut() {
            for cst in cs {
                cst["ready"] = json!(false);
            }
        }
        if next != *p {
            let _ = c.store.update("pods", next, rv_of(p));
        }
        return Some(gone_at);
    }
    let started = *state.pod_started.entry(uid.clone()).or_insert(now);
    let containers = p["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut next = p.clone();
    if p["spec"]["nodeName"].is_null() {
        next["spec"]["nodeName"] = json!(NODE);
    }
    let st_now = now_rfc3339();
    let st = &mut next["status"];
    if st["podIP"].is_null() {
        let ip = c.allocate_pod_ip();
        st["podIP"] = json!(ip);
        st["podIPs"] = json!([{"ip": ip}]);
        st["hostIP"] = json!("172.18.0.2");
        st["hostIPs"] = json!([{"ip": "172.18.0.2"}]);
        st["startTime"] = json!(st_now);
    }
    let ready_due = started + timing.pod_ready_after;
    // Once ready, a healthy pod stays ready even if the configured delay grows later.
    let time_ready = now >= ready_due || state.pod_ready_since.contains_key(&uid);
    let mut all_ready = true;
    let mut any_pull_fail = false;
    let mut statuses = Vec::new();
    let old_statuses = p["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for ctr in &containers {
        let name = ctr["name"].as_str().unwrap_or("");
        let image = ctr["image"].as_str().unwrap_or("");
        let old = old_statuses.iter().find(|s| s["name"] == name);
        let started_at = old
            .and_then(|o| o.pointer("/state/running/startedAt").cloned())
            .unwrap_or(json!(st_now));
        let (state_v, ready, restarts) = match behaviour(image) {
            ImageBehaviour::CrashLoop => {
                let restarts = (now.duration_since(started).as_secs() / 10 + 1) as i64;
                (
                    json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 10s restarting failed container={name} pod={}_{}({uid})", name_of(p), ns_of(p))}}),
                    false,
                    restarts,
                )
            }
            ImageBehaviour::PullFail => {
                any_pull_fail = true;
                let reason = if now.duration_since(started).as_secs() < 1 {
                    "ErrImagePull"
                } else {
                    "ImagePullBackOff"
                };
                (
                    json!({"waiting": {"reason": reason, "message": format!("Back-off pulling image \"{image}\"")}}),
                    false,
                    0,
                )
            }
            ImageBehaviour::NeverReady => (json!({"running": {"startedAt": started_at}}), false, 0),
            ImageBehaviour::Normal => {
                (json!({"running": {"startedAt": started_at}}), time_ready, 0)
            }
        };
        all_ready &= ready;
        let mut cs = json!({
            "name": name,
            "image": image,
            "imageID": if any_pull_fail { json!("") } else { json!(format!("{image}@sha256:{:064x}", fnv32a(image.as_bytes()))) },
            "ready": ready,
            "started": state_v.get("running").is_some(),
            "restartCount": restarts,
            "state": state_v,
        });
        if restarts > 0 {
            cs["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": st_now, "finishedAt": st_now}});
            cs["containerID"] = json!(format!(
                "containerd://{:064x}",
                fnv32a(format!("{uid}{name}").as_bytes())
            ));
        } else if !matches!(behaviour(image), ImageBehaviour::PullFail) {
            cs["containerID"] = json!(format!(
                "containerd://{:064x}",
                fnv32a(format!("{uid}{name}").as_bytes())
            ));
        }
        statuses.push(cs);
    }
    st["phase"] = json!(if any_pull_fail { "Pending" } else { "Running" });
    st["containerStatuses"] = json!(statuses);
    let scheduled = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": p["metadata"]["creationTimestamp"]});
    let initialized = json!({"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": p["metadata"]["creationTimestamp"]});
    let old_conditions = p["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let keep_time = |t: &str, s: &str| -> Value {
        old_conditions
            .iter()
            .find(|c| c["type"] == t && c["status"] == s)
            .map(|c| c["lastTransitionTime"].clone())
            .unwrap_or(json!(st_now))
    };
    let rs = if all_ready { "True" } else { "False" };
    let mut ready_c = json!({"type": "Ready", "status": rs, "lastProbeTime": null, "lastTransitionTime": keep_time("Ready", rs)});
    let mut cready_c = json!({"type": "ContainersReady", "status": rs, "lastProbeTime": null, "lastTransitionTime": keep_time("ContainersReady", rs)});
    if !all_ready {
        let not_ready: Vec<&str> = containers
            .iter()
            .zip(&statuses)
            .filter(|(_, s)| s["ready"] != true)
            .map(|(c, _)| c["name"].as_str().unwrap_or(""))
            .collect();
        let msg = format!("containers with unready status: [{}]", not_ready.join(" "));
        for cnd in [&mut ready_c, &mut cready_c] {
            cnd["reason"] = json!("ContainersNotReady");
            cnd["message"] = json!(msg);
        }
    }
    let ptsc = json!({"type": "PodReadyToStartContainers", "status": if any_pull_fail {"False"} else {"True"}, "lastProbeTime": null, "lastTransitionTime": keep_time("PodReadyToStartContainers", if any_pull_fail {"False"} else {"True"})});
    st["conditions"] = json!([ptsc, initialized, ready_c, cready_c, scheduled]);
    if all_ready {
        state.pod_ready_since.entry(uid.clone()).or_insert(now);
    } else {
        state.pod_ready_since.remove(&uid);
    }
    if next != *p {
        let _ = c.store.update("pods", next, rv_of(p));
    }
    let mut wake = None;
    if !time_ready {
        wake = Some(ready_due);
    }
    // minReadySeconds: wake the ReplicaSet controller when the pod becomes available.
    if let Some(since) = state.pod_ready_since.get(&uid)
        && let Some(rs_min) = min_ready_seconds_of_owner(c, p)
        && rs_min > 0
    {
        let at = *since + std::time::Duration::from_secs(rs_min as u64);
        if at > now {
            wake = earliest(wake, Some(at));
        }
    }
    wake
}

fn min_ready_seconds_of_owner(c: &Cluster, p: &Value) -> Option<i64> {
    let owner = p["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["kind"] == "ReplicaSet")?;
    let rs = c
        .store
        .get("replicasets", ns_of(p), owner["name"].as_str()?)?;
    rs["spec"]["minReadySeconds"].as_i64()
}

fn set_pod_ready(p: &mut Value, ready: bool, reason: &str) {
    let s = if ready { "True" } else { "False" };
    if let Some(conds) = p["status"]["conditions"].as_array_mut() {
        for c in conds
            .iter_mut()
            .filter(|c| c["type"] == "Ready" || c["type"] == "ContainersReady")
        {
            if c["status"] != s {
                c["status"] = json!(s);
                c["lastTransitionTime"] = json!(now_rfc3339());
                if !ready {
                    c["reason"] = json!(reason);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- endpoints

/// What the endpoint controller would publish for a Service now: (endpoints, ports).
fn desired_endpoints(svc: &Value, pods: &[Value]) -> Value {
    let selector = LabelSelector::from_map(
        svc["spec"]["selector"]
            .as_object()
            .expect("checked by caller"),
    );
    let mut endpoints = Vec::new();
    let mut first_pod: Option<&Value> = None;
    for p in pods {
        if !selector.matches_object(p) || p["status"]["podIP"].is_null() {
            continue;
        }
        if p["status"]["phase"] == "Failed" || p["status"]["phase"] == "Succeeded" {
            continue;
        }
        first_pod.get_or_insert(p);
        let term = terminating(p);
        let ready = pod_ready(p);
        endpoints.push(json!({
            "addresses": [p["status"]["podIP"]],
            "conditions": {"ready": ready && !term, "serving": ready, "terminating": term},
            "targetRef": {"kind": "Pod", "namespace": ns_of(p), "name": name_of(p), "uid": uid_of(p)},
            "nodeName": p["spec"]["nodeName"],
        }));
    }
    let mut ports = Vec::new();
    for sp in svc["spec"]["ports"].as_array().cloned().unwrap_or_default() {
        let target = &sp["targetPort"];
        let port = match target {
            Value::String(name) => first_pod.and_then(|p| {
                p["spec"]["containers"]
                    .as_array()?
                    .iter()
                    .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
                    .find(|cp| cp["name"] == *name)
                    .map(|cp| cp["containerPort"].clone())
            }),
            Value::Null => Some(sp["port"].clone()),
            v => Some(v.clone()),
        };
        if let Some(port) = port {
            let mut p = json!({"port": port, "protocol": sp["protocol"].as_str().unwrap_or("TCP")});
            p["name"] = sp.get("name").cloned().unwrap_or(json!(""));
            ports.push(p);
        }
    }
    json!({"endpoints": endpoints, "ports": ports})
}

fn reconcile_endpoints(c: &Cluster, state: &mut ControllerState, now: Instant) -> Option<Instant> {
    let delay = c.timing().endpoint_delay;
    let mut pods_by_ns: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in c.store.list("pods", None).0 {
        pods_by_ns.entry(ns_of(&p).to_string()).or_default().push(p);
    }
    let mut next = None;
    let mut seen = HashSet::new();
    for svc in c.store.list("services", None).0 {
        if svc["spec"]["selector"]
            .as_object()
            .is_none_or(|m| m.is_empty())
        {
            continue;
        }
        let key = (ns_of(&svc).to_string(), name_of(&svc).to_string());
        seen.insert(key.clone());
        let desired = desired_endpoints(
            &svc,
            pods_by_ns.get(&key.0).map(Vec::as_slice).unwrap_or(&[]),
        );
        if state.endpoint_last.get(&key) != Some(&desired) {
            state.endpoint_last.insert(key.clone(), desired.clone());
            state
                .endpoint_queue
                .entry(key.clone())
                .or_default()
                .push_back((now + delay, desired));
        }
        // Published-but-missing objects (e.g. deleted by a user) are re-created.
        let queue = state.endpoint_queue.entry(key.clone()).or_default();
        let mut due = None;
        while queue.front().is_some_and(|(at, _)| *at <= now) {
            due = queue.pop_front().map(|(_, d)| d);
        }
        if let Some(front) = queue.front() {
            next = earliest(next, Some(front.0));
        }
        if let Some(d) = due {
            publish_endpoints(c, &svc, &d);
        } else if queue.is_empty() && c.store.get("endpoints", &key.0, &key.1).is_none() {
            let d = state
                .endpoint_last
                .get(&key)
                .cloned()
                .unwrap_or(json!({"endpoints": [], "ports": []}));
            publish_endpoints(c, &svc, &d);
        }
    }
    state.endpoint_last.retain(|k, _| seen.contains(k));
    state.endpoint_queue.retain(|k, _| seen.contains(k));
    next
}

fn publish_endpoints(c: &Cluster, svc: &Value, desired: &Value) {
    let ns = ns_of(svc);
    let name = name_of(svc);
    let slice_body = |base: Value| -> Value {
        let mut s = base;
        s["addressType"] = json!("IPv4");
        s["endpoints"] = desired["endpoints"].clone();
        s["ports"] = desired["ports"].clone();
        s
    };
    let slices: Vec<Value> = c.store.scan("endpointslices", Some(ns), |s| {
        (s.pointer("/metadata/labels/kubernetes.io~1service-name")
            .and_then(Value::as_str)
            == Some(name))
        .then(|| s.clone())
    });
    match slices.first() {
        None => {
            let mut labels = svc["metadata"]["labels"].clone();
            if !labels.is_object() {
                labels = json!({});
            }
            labels["kubernetes.io/service-name"] = json!(name);
            labels["endpointslice.kubernetes.io/managed-by"] =
                json!("endpointslice-controller.k8s.io");
            let body = slice_body(
                json!({"metadata": {"generateName": format!("{name}-"), "namespace": ns, "labels": labels, "ownerReferences": owner_ref("v1", "Service", svc)}}),
            );
            let rt = find("discovery.k8s.io", "v1", "endpointslices").expect("slices");
            let _ = ops::create(c, rt, ns, body, &WriteOpts::default());
        }
        Some(s) => {
            let next = slice_body(s.clone());
            if next != *s {
                let _ = c.store.update("endpointslices", next, rv_of(s));
            }
            let rt = find("discovery.k8s.io", "v1", "endpointslices").expect("slices");
            for extra in slices.iter().skip(1) {
                let _ = ops::delete(c, rt, ns, name_of(extra), &DeleteOpts::default());
            }
        }
    }
    // The legacy Endpoints mirror, as `kubectl get endpoints` and describe show it.
    let eps = desired["endpoints"].as_array().cloned().unwrap_or_default();
    let addr = |e: &Value| json!({"ip": e["addresses"][0], "nodeName": e["nodeName"], "targetRef": e["targetRef"]});
    let ready: Vec<Value> = eps
        .iter()
        .filter(|e| e["conditions"]["ready"] == true)
        .map(addr)
        .collect();
    let not_ready: Vec<Value> = eps
        .iter()
        .filter(|e| e["conditions"]["ready"] != true)
        .map(addr)
        .collect();
    let mut subset = json!({"ports": desired["ports"].as_array().map(|ps| ps.iter().map(|p| {
        let mut q = json!({"port": p["port"], "protocol": p["protocol"]});
        if p["name"] != "" { q["name"] = p["name"].clone(); }
        q
    }).collect::<Vec<_>>())});
    if !ready.is_empty() {
        subset["addresses"] = json!(ready);
    }
    if !not_ready.is_empty() {
        subset["notReadyAddresses"] = json!(not_ready);
    }
    let mut ep =
        json!({"metadata": {"name": name, "namespace": ns, "labels": svc["metadata"]["labels"]}});
    if ep["metadata"]["labels"].is_null() {
        ep["metadata"]
            .as_object_mut()
            .expect("object")
            .remove("labels");
    }
    if !eps.is_empty() {
        ep["subsets"] = json!([subset]);
    }
    let rt = find("", "v1", "endpoints").expect("endpoints");
    match c.store.get("endpoints", ns, name) {
        None => {
            let _ = ops::create(c, rt, ns, ep, &WriteOpts::default());
        }
        Some(cur) => {
            let mut next = cur.clone();
            next["subsets"] = ep["subsets"].clone();
            if next["subsets"].is_null() {
                next.as_object_mut().expect("object").remove("subsets");
            }
            if next != cur {
                let _ = c.store.update("endpoints", next, rv_of(&cur));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hash_is_stable_and_uses_the_safe_alphabet() {
        let t = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}});
        let h = template_hash(&t);
        assert_eq!(h, template_hash(&t.clone()));
        assert!(
            h.len() >= 8 && h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{h}"
        );
        let mut t2 = t.clone();
        t2["spec"]["containers"][0]["image"] = json!("i:2");
        assert_ne!(h, template_hash(&t2));
    }

    #[test]
    fn int_or_percent_rounds_like_upstream() {
        assert_eq!(resolve_int_or_percent(&json!("25%"), 3, true), 1);
        assert_eq!(resolve_int_or_percent(&json!("25%"), 3, false), 0);
        assert_eq!(resolve_int_or_percent(&json!("25%"), 10, true), 3);
        assert_eq!(resolve_int_or_percent(&json!(2), 10, true), 2);
    }
}
