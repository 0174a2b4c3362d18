//! The Deployment controller: creates a ReplicaSet `<deployment>-<pod-template-hash>`
//! per pod template, scales new and old ReplicaSets by the RollingUpdate or Recreate
//! strategy, handles pause and rollback (an old template becomes the newest revision),
//! trims revision history, and writes the Deployment's status and its Available and
//! Progressing conditions (with progressDeadlineSeconds). State: when each Deployment
//! last made progress.

use super::events::record_event;
use super::shared::{OwnerIndex, condition, fnv32a, inputs_hasher, int, owner_ref};
use crate::cluster::Cluster;
use crate::ops::{self, DeleteOpts, Sub, WriteOpts};
use crate::resources::{self, find};
use crate::store::{name_of, now_rfc3339, ns_of, rv_of, uid_of};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use tokio::time::Instant;

const HASH_LABEL: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";

/// What the Deployment controller remembers between passes.
#[derive(Default)]
pub(super) struct DeploymentState {
    /// Last time each Deployment (by uid) made progress, for progressDeadlineSeconds.
    progress_at: HashMap<String, Instant>,
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

fn revision_of(rs: &Value) -> i64 {
    rs.pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
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
    ops::controller_write(
        c,
        storage,
        based_on,
        next,
        super::CONTROLLER_MANAGER,
        Sub::Main,
    )
}

/// Scales a ReplicaSet to `to`, recording the desired/max-replicas annotations and a
/// ScalingReplicaSet event on the Deployment.
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

/// The rollout strategy resolved against the desired replica count.
#[derive(Clone, Copy)]
struct Strategy {
    recreate: bool,
    /// maxSurge (0 for Recreate).
    surge: i64,
    /// maxUnavailable (0 for Recreate; at least 1 when both are 0, as upstream).
    unavailable: i64,
}

impl Strategy {
    fn of(spec: &Value, replicas: i64) -> Strategy {
        let ru = &spec["strategy"]["rollingUpdate"];
        let recreate = spec["strategy"]["type"] == "Recreate";
        if recreate {
            return Strategy {
                recreate,
                surge: 0,
                unavailable: 0,
            };
        }
        let surge = resolve_int_or_percent(&ru["maxSurge"], replicas, true);
        let mut unavailable = resolve_int_or_percent(&ru["maxUnavailable"], replicas, false);
        if surge == 0 && unavailable == 0 {
            unavailable = 1;
        }
        Strategy {
            recreate,
            surge,
            unavailable,
        }
    }
}

/// Reconciles one Deployment; returns when it wants to be looked at again (its
/// progress deadline, or at once after a rollback re-ordered revisions).
pub(super) fn reconcile(
    c: &Cluster,
    state: &mut DeploymentState,
    d: &Value,
    now: Instant,
    rs_index: &OwnerIndex,
    pod_index: &OwnerIndex,
) -> Option<Instant> {
    // Upstream syncs only the status of a Deployment being deleted (its ReplicaSets are
    // going): creating or scaling them would fight the garbage collector.
    if !d["metadata"]["deletionTimestamp"].is_null() {
        return None;
    }
    let uid = uid_of(d).to_string();
    let spec = &d["spec"];
    let replicas = int(&spec["replicas"]);
    let paused = spec["paused"] == true;
    let mut all: Vec<Value> = rs_index.owned(c, "replicasets", &uid, &[]);
    all.sort_by_key(revision_of);

    // A failed create is retried after a back-off, as upstream requeues a failed sync.
    let mut retry = None;
    let (new_rs, created_new) = if paused {
        (find_new_replicaset(d, &all).cloned(), false)
    } else {
        match ensure_new_replicaset(c, state, d, &mut all, now) {
            NewReplicaSet::Requeue => return Some(now),
            NewReplicaSet::Found(rs) => (rs, false),
            NewReplicaSet::Created(rs) => (Some(rs), true),
            NewReplicaSet::Failed => {
                retry = Some(now + super::shared::RETRY_AFTER);
                (None, false)
            }
        }
    };

    let new_name = new_rs.as_ref().map(|r| name_of(r).to_string());
    let olds: Vec<&Value> = all
        .iter()
        .filter(|r| Some(name_of(r).to_string()) != new_name)
        .collect();
    let strategy = Strategy::of(spec, replicas);

    if let Some(new) = new_rs.as_ref().filter(|_| !paused) {
        if strategy.recreate {
            scale_recreate(c, d, new, &olds, pod_index);
        } else {
            scale_rolling(c, d, new, &olds, &all, strategy);
        }
    }
    trim_history(c, d, &olds);

    // Status, re-read so it reflects this pass's writes.
    let names: Vec<(String, String)> = all
        .iter()
        .map(|r| (ns_of(d).to_string(), name_of(r).to_string()))
        .collect();
    let all: Vec<Value> = rs_index.owned(c, "replicasets", &uid, &names);
    let new_rs = new_name
        .as_ref()
        .and_then(|n| all.iter().find(|r| name_of(r) == n));
    let mut st = replica_counts(d, &all, new_rs);
    set_available(&mut st, &d["status"], replicas, strategy);
    let rollout = Rollout {
        new_name: new_name.as_deref().unwrap_or_default(),
        new_rs,
        created_new,
        paused,
    };
    let wake = set_progressing(&mut st, state, d, &rollout, now);
    // Keep upstream's order: Available before Progressing.
    if let Some(list) = st["conditions"].as_array_mut() {
        list.sort_by_key(|c| if c["type"] == "Available" { 0 } else { 1 });
    }
    let mut next = with_revision_of(d, new_rs);
    next["status"] = st;
    if next != *d {
        // Upstream writes the revision annotation (Update) and the status (UpdateStatus)
        // apart; here one write, recorded as the two.
        let rt = resources::by_storage("deployments");
        let mut annotated = with_revision_of(d, new_rs);
        ops::record_write(
            rt,
            Some(d),
            &mut annotated,
            super::CONTROLLER_MANAGER,
            Sub::Main,
        );
        next["metadata"] = annotated["metadata"].clone();
        ops::record_write(
            rt,
            Some(&annotated),
            &mut next,
            super::CONTROLLER_MANAGER,
            Sub::Status,
        );
        let _ = c.store.update("deployments", next, rv_of(d));
    }
    super::shared::earliest(wake, retry)
}

/// What a Deployment's sync reads: itself, its ReplicaSets and their pods (by
/// resourceVersion). The work queue syncs it again when this changes.
pub(super) fn inputs(d: &Value, rs_index: &OwnerIndex, pod_index: &OwnerIndex) -> u64 {
    let mut h = inputs_hasher();
    rv_of(d).hash(&mut h);
    let uid = uid_of(d);
    rs_index.hash_owned(uid, &mut h);
    let mut rs_uids: Vec<&str> = rs_index.uids(uid).collect();
    rs_uids.sort_unstable();
    for rs in rs_uids {
        pod_index.hash_owned(rs, &mut h);
    }
    h.finish()
}

/// The ReplicaSet whose template is the Deployment's (ignoring the hash label).
fn find_new_replicaset<'a>(d: &Value, all: &'a [Value]) -> Option<&'a Value> {
    let wanted_template = normalized(&d["spec"]["template"]);
    all.iter()
        .find(|rs| without_hash_label(&rs["spec"]["template"]) == wanted_template)
}

enum NewReplicaSet {
    /// The current template's ReplicaSet, if there is one (None: paused before any).
    Found(Option<Value>),
    /// Creating it failed: look again after a back-off.
    Failed,
    /// Created in this pass (and added to `all`).
    Created(Value),
    /// A rollback re-ordered revisions: look again in the next pass.
    Requeue,
}

/// Finds or creates the ReplicaSet of the current template; a rollback to an older
/// template makes that ReplicaSet the newest revision.
fn ensure_new_replicaset(
    c: &Cluster,
    state: &mut DeploymentState,
    d: &Value,
    all: &mut Vec<Value>,
    now: Instant,
) -> NewReplicaSet {
    let uid = uid_of(d).to_string();
    let max_revision = all.iter().map(revision_of).max().unwrap_or(0);
    match find_new_replicaset(d, all) {
        None => {
            let rs = new_replicaset_body(d, max_revision + 1);
            let rt = find("apps", "v1", "replicasets").expect("rs");
            match ops::create(
                c,
                rt,
                ns_of(d),
                rs,
                &WriteOpts::by(super::CONTROLLER_MANAGER),
            ) {
                Ok(rs) => {
                    state.progress_at.insert(uid, now);
                    all.push(rs.clone());
                    NewReplicaSet::Created(rs)
                }
                Err(_) => NewReplicaSet::Failed,
            }
        }
        Some(rs) if revision_of(rs) < max_revision => {
            // Upstream's SetNewReplicaSetAnnotations: a reused ReplicaSet keeps the
            // revisions it had before in `revision-history` (oldest first).
            let mut next = rs.clone();
            let old = revision_of(rs).to_string();
            let history = match rs["metadata"]["annotations"][REVISION_HISTORY].as_str() {
                Some(h) if !h.is_empty() => format!("{h},{old}"),
                _ => old,
            };
            next["metadata"]["annotations"][REVISION_HISTORY] = json!(history);
            next["metadata"]["annotations"][REVISION] = json!((max_revision + 1).to_string());
            if write(c, "replicasets", next, rs).is_ok() {
                state.progress_at.insert(uid, now);
            }
            NewReplicaSet::Requeue
        }
        Some(rs) => NewReplicaSet::Found(Some(rs.clone())),
    }
}

const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";

/// A new ReplicaSet `<deployment>-<hash>` (uncut, as upstream) at 0 replicas, its
/// template, selector and labels carrying the pod-template-hash.
fn new_replicaset_body(d: &Value, revision: i64) -> Value {
    let spec = &d["spec"];
    let template = &spec["template"];
    let replicas = int(&spec["replicas"]);
    let hash = template_hash(&normalized(template));
    let mut t = template.clone();
    t["metadata"]["labels"][HASH_LABEL] = json!(hash);
    let mut selector = spec["selector"].clone();
    selector["matchLabels"][HASH_LABEL] = json!(hash);
    let mut labels = template["metadata"]["labels"].clone();
    labels[HASH_LABEL] = json!(hash);
    let mut annotations = json!({
        REVISION: revision.to_string(),
        "deployment.kubernetes.io/desired-replicas": replicas.to_string(),
        "deployment.kubernetes.io/max-replicas": replicas.to_string(),
    });
    if let Some(cause) = d.pointer("/metadata/annotations/kubernetes.io~1change-cause") {
        annotations["kubernetes.io/change-cause"] = cause.clone();
    }
    json!({
        "metadata": {"name": format!("{}-{hash}", name_of(d)), "namespace": ns_of(d), "labels": labels, "annotations": annotations, "ownerReferences": owner_ref("apps/v1", "Deployment", d)},
        "spec": {"replicas": 0, "minReadySeconds": spec["minReadySeconds"].as_i64().unwrap_or(0), "selector": selector, "template": t},
    })
}

/// Recreate: old ReplicaSets to 0; the new one up only once no old pod is left
/// (terminating included), as upstream waits.
fn scale_recreate(c: &Cluster, d: &Value, new: &Value, olds: &[&Value], pod_index: &OwnerIndex) {
    let replicas = int(&d["spec"]["replicas"]);
    let old_active = olds
        .iter()
        .flat_map(|r| pod_index.owned(c, "pods", uid_of(r), &[]))
        .filter(|p| p["status"]["phase"] != "Failed" && p["status"]["phase"] != "Succeeded")
        .count();
    for old in olds {
        set_rs_replicas(c, d, old, 0, 0);
    }
    if old_active == 0 && int(&new["spec"]["replicas"]) != replicas {
        set_rs_replicas(c, d, new, replicas, 0);
    }
}

/// RollingUpdate: the new ReplicaSet up within maxSurge, old ones down within
/// maxUnavailable (all computed from the ReplicaSets as this pass found them).
fn scale_rolling(
    c: &Cluster,
    d: &Value,
    new: &Value,
    olds: &[&Value],
    all: &[Value],
    strategy: Strategy,
) {
    let replicas = int(&d["spec"]["replicas"]);
    let surge = strategy.surge;
    let new_spec = int(&new["spec"]["replicas"]);
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
    let scaled = old_scale_down(replicas, strategy, new, olds, all, total);
    for old in olds {
        if let Some(to) = scaled.get(name_of(old)) {
            set_rs_replicas(c, d, old, *to, surge);
        }
    }
}

/// How far each old ReplicaSet may go down (by name) while availability allows: first
/// their unhealthy replicas, then healthy ones within the availability budget.
fn old_scale_down(
    replicas: i64,
    strategy: Strategy,
    new: &Value,
    olds: &[&Value],
    all: &[Value],
    total: i64,
) -> HashMap<String, i64> {
    let min_available = replicas - strategy.unavailable;
    let new_unavailable = int(&new["spec"]["replicas"]) - int(&new["status"]["availableReplicas"]);
    let mut cleanup = total - min_available - new_unavailable;
    let mut scaled: HashMap<String, i64> = HashMap::new();
    for old in olds {
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
    for old in olds {
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
    scaled
}

/// Revision history trimming: oldest idle ReplicaSets beyond revisionHistoryLimit.
fn trim_history(c: &Cluster, d: &Value, olds: &[&Value]) {
    let limit = d["spec"]["revisionHistoryLimit"].as_i64().unwrap_or(10);
    let idle: Vec<&&Value> = olds
        .iter()
        .filter(|r| int(&r["spec"]["replicas"]) == 0 && int(&r["status"]["replicas"]) == 0)
        .collect();
    if idle.len() as i64 > limit {
        let rt = find("apps", "v1", "replicasets").expect("rs");
        for r in idle.iter().take(idle.len() - limit as usize) {
            let _ = ops::delete(c, rt, ns_of(d), name_of(r), &DeleteOpts::default());
        }
    }
}

/// The status's replica counts summed over the ReplicaSets (zeros omitted, as upstream
/// serializes them), with the old conditions carried over.
fn replica_counts(d: &Value, all: &[Value], new_rs: Option<&Value>) -> Value {
    let sum = |f: &str| -> i64 { all.iter().map(|r| int(&r["status"][f])).sum() };
    let spec_total: i64 = all.iter().map(|r| int(&r["spec"]["replicas"])).sum();
    let mut st = json!({
        "observedGeneration": d["metadata"]["generation"],
        "replicas": sum("replicas"),
        "updatedReplicas": new_rs.map(|r| int(&r["status"]["replicas"])).unwrap_or(0),
        "readyReplicas": sum("readyReplicas"),
        "availableReplicas": sum("availableReplicas"),
        "unavailableReplicas": (spec_total - sum("availableReplicas")).max(0),
        "conditions": d["status"]["conditions"].clone(),
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
    st
}

/// The Available condition: at least replicas - maxUnavailable available.
fn set_available(st: &mut Value, old_status: &Value, replicas: i64, strategy: Strategy) {
    if int(&st["availableReplicas"]) >= replicas - strategy.unavailable {
        set_condition(
            st,
            old_status,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            false,
        );
    } else {
        set_condition(
            st,
            old_status,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            false,
        );
    }
}

/// What this pass did to the rollout, for the Progressing condition.
struct Rollout<'a> {
    /// The new ReplicaSet's name as this pass chose it ("" if none).
    new_name: &'a str,
    /// The new ReplicaSet as re-read after this pass's writes.
    new_rs: Option<&'a Value>,
    created_new: bool,
    paused: bool,
}

/// Whether the new status shows progress over the old one (more updated, ready or
/// available replicas, or fewer old ones).
fn progressed(st: &Value, old_status: &Value) -> bool {
    ["updatedReplicas", "readyReplicas", "availableReplicas"]
        .iter()
        .any(|k| int(&st[k]) > int(&old_status[k]))
        || int(&st["replicas"]) - int(&st["updatedReplicas"])
            < int(&old_status["replicas"]) - int(&old_status["updatedReplicas"])
}

/// The Progressing condition (paused, complete, timed out, created, progressing);
/// returns the progress deadline while the rollout is under way.
fn set_progressing(
    st: &mut Value,
    state: &mut DeploymentState,
    d: &Value,
    rollout: &Rollout,
    now: Instant,
) -> Option<Instant> {
    let uid = uid_of(d).to_string();
    let spec = &d["spec"];
    let old_status = &d["status"];
    let replicas = int(&spec["replicas"]);
    let progressed = progressed(st, old_status);
    if progressed {
        state.progress_at.insert(uid.clone(), now);
    }
    let complete = int(&st["updatedReplicas"]) == replicas
        && int(&st["replicas"]) == replicas
        && int(&st["availableReplicas"]) == replicas
        && rollout.new_rs.is_some();
    let rs_name = rollout.new_name;
    let deadline = spec["progressDeadlineSeconds"].as_i64().unwrap_or(600);
    let was = condition(old_status, "Progressing")
        .map(|p| p["reason"].as_str().unwrap_or("").to_string());
    if rollout.paused {
        set_condition(
            st,
            old_status,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
            false,
        );
        return None;
    }
    if complete {
        set_condition(
            st,
            old_status,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
            false,
        );
        return None;
    }
    if was.as_deref() == Some("ProgressDeadlineExceeded") && !progressed && !rollout.created_new {
        // Stays timed out until something changes.
        return None;
    }
    let last = *state.progress_at.entry(uid).or_insert(now);
    let due = last + std::time::Duration::from_secs(deadline.max(0) as u64);
    if now >= due {
        set_condition(
            st,
            old_status,
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            &format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
            false,
        );
        return None;
    }
    if rollout.created_new {
        set_condition(
            st,
            old_status,
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            &format!("Created new replica set \"{rs_name}\""),
            true,
        );
    } else if was.is_none() || progressed || was.as_deref() != Some("NewReplicaSetCreated") {
        set_condition(
            st,
            old_status,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{rs_name}\" is progressing."),
            progressed,
        );
    }
    Some(due)
}

/// The Deployment with its revision annotation following the new ReplicaSet's.
fn with_revision_of(d: &Value, new_rs: Option<&Value>) -> Value {
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
    next
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
