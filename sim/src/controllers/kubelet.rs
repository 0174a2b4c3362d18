//! The kubelet stand-in: schedules pods onto the one node, gives them IPs, writes their
//! container statuses and conditions (Ready after `pod_ready_after`), and finishes
//! terminating pods after their grace period. State: when each pod started, became Ready
//! and began terminating.
//!
//! Container statuses follow the image convention of [`crate::images`]: `crashloop`,
//! `pullfail`, `neverready`, `http500` (Ready; only its HTTP answers are wrong) and
//! `failafter-<duration>` (Ready, then not ready, then restarted: restartCount grows,
//! `lastState.terminated` tells the crash). Any other image becomes Ready after
//! `pod_ready_after`.

use super::shared::{earliest, fnv32a, inputs_hasher, terminating};
use crate::cluster::{Cluster, Timing};
use crate::images::{self, Behaviour};
use crate::store::{name_of, now_rfc3339, ns_of, rv_of, uid_of};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;
use tokio::time::Instant;

const NODE: &str = "sim-node-1";

/// What the kubelet remembers about pods (by uid) between passes.
#[derive(Default)]
pub(super) struct KubeletState {
    started: HashMap<String, Instant>,
    ready_since: HashMap<String, Instant>,
    terminating_since: HashMap<String, Instant>,
}

impl KubeletState {
    /// When the pod (by uid) last became Ready, if it is Ready.
    pub(super) fn ready_since(&self, uid: &str) -> Option<Instant> {
        self.ready_since.get(uid).copied()
    }

    /// When the kubelet first saw the pod (its containers' first start), by uid.
    pub(super) fn started(&self, uid: &str) -> Option<Instant> {
        self.started.get(uid).copied()
    }
}

/// What a pod's sync reads: the pod (by resourceVersion) and the timing knobs.
pub(super) fn inputs(p: &Value, timing: &Timing) -> u64 {
    let mut h = inputs_hasher();
    rv_of(p).hash(&mut h);
    (timing.pod_ready_after, timing.pod_termination).hash(&mut h);
    h.finish()
}

/// Reconciles one pod; returns when it next needs a look (Ready due, a `failafter`
/// container's next change, grace period over).
pub(super) fn reconcile(
    c: &Cluster,
    state: &mut KubeletState,
    p: &Value,
    now: Instant,
) -> Option<Instant> {
    let timing = c.timing();
    if terminating(p) {
        terminate(c, state, p, now, &timing)
    } else {
        run(c, state, p, now, &timing)
    }
}

/// A terminating pod turns unready at once and is removed after its grace period
/// (capped by `pod_termination`).
fn terminate(
    c: &Cluster,
    state: &mut KubeletState,
    p: &Value,
    now: Instant,
    timing: &Timing,
) -> Option<Instant> {
    let uid = uid_of(p).to_string();
    let since = *state.terminating_since.entry(uid.clone()).or_insert(now);
    let grace = std::time::Duration::from_secs(
        p["metadata"]["deletionGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30),
    )
    .min(timing.pod_termination);
    let gone_at = since + grace;
    if now >= gone_at {
        // The kubelet's final delete: the API server keeps a pod that has finalizers
        // until they are removed (the update that removes the last one deletes it).
        if crate::ops::finalizers(p).is_empty() {
            let _ = c.store.delete("pods", ns_of(p), name_of(p), None);
        }
        state.terminating_since.remove(&uid);
        state.started.remove(&uid);
        state.ready_since.remove(&uid);
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
        let _ =
            crate::ops::controller_write(c, "pods", p, next, "kubelet", crate::ops::Sub::Status);
    }
    Some(gone_at)
}

/// A running pod: node, IPs, container statuses by image convention, conditions.
fn run(
    c: &Cluster,
    state: &mut KubeletState,
    p: &Value,
    now: Instant,
    timing: &Timing,
) -> Option<Instant> {
    let uid = uid_of(p).to_string();
    let started = *state.started.entry(uid.clone()).or_insert(now);
    let st_now = now_rfc3339();
    let mut next = p.clone();
    if p["spec"]["nodeName"].is_null() {
        next["spec"]["nodeName"] = json!(NODE);
    }
    if next["status"]["podIP"].is_null() {
        assign_ips(c, &mut next["status"], &st_now);
    }
    let ready_due = started + timing.pod_ready_after;
    // Once ready, a healthy pod stays ready even if the configured delay grows later.
    let time_ready = now >= ready_due || state.ready_since.contains_key(&uid);
    let clock = PodClock {
        now,
        started,
        time_ready,
        ready_after: timing.pod_ready_after,
        st_now: &st_now,
    };
    let containers = container_statuses(p, &clock);
    let st = &mut next["status"];
    st["phase"] = json!(if containers.any_pull_fail {
        "Pending"
    } else {
        "Running"
    });
    st["containerStatuses"] = json!(containers.statuses);
    st["conditions"] = pod_conditions(p, &containers, &st_now);
    if containers.all_ready {
        state.ready_since.entry(uid.clone()).or_insert(now);
    } else {
        state.ready_since.remove(&uid);
    }
    if next != *p {
        let _ =
            crate::ops::controller_write(c, "pods", p, next, "kubelet", crate::ops::Sub::Status);
    }
    let mut wake = containers.wake;
    if !time_ready {
        wake = earliest(wake, Some(ready_due));
    }
    wake
}

/// A newly placed pod's IPs and start time.
fn assign_ips(c: &Cluster, st: &mut Value, st_now: &str) {
    let ip = c.allocate_pod_ip();
    st["podIP"] = json!(ip);
    st["podIPs"] = json!([{"ip": ip}]);
    st["hostIP"] = json!("172.18.0.2");
    st["hostIPs"] = json!([{"ip": "172.18.0.2"}]);
    st["startTime"] = json!(st_now);
}

/// The times a pod's statuses are computed from.
struct PodClock<'a> {
    now: Instant,
    /// When the kubelet first saw the pod.
    started: Instant,
    /// `pod_ready_after` has passed (or the pod was Ready already).
    time_ready: bool,
    /// `pod_ready_after`, for containers that start again (`failafter`).
    ready_after: std::time::Duration,
    st_now: &'a str,
}

/// The containers' statuses and what they add up to.
struct ContainerStatuses {
    statuses: Vec<Value>,
    all_ready: bool,
    any_pull_fail: bool,
    /// Names of the containers that are not ready, in spec order.
    not_ready: Vec<String>,
    /// The next time a container's status changes by itself (`failafter`).
    wake: Option<Instant>,
}

fn container_statuses(p: &Value, clock: &PodClock) -> ContainerStatuses {
    let containers = p["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let old_statuses = p["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut out = ContainerStatuses {
        statuses: Vec::new(),
        all_ready: true,
        any_pull_fail: false,
        not_ready: Vec::new(),
        wake: None,
    };
    for ctr in &containers {
        let name = ctr["name"].as_str().unwrap_or("");
        let image = ctr["image"].as_str().unwrap_or("");
        let old = old_statuses.iter().find(|s| s["name"] == name);
        let behaviour = Behaviour::of(image);
        // Once one container failed to pull, later ones report no imageID either.
        out.any_pull_fail |= matches!(behaviour, Behaviour::PullFail);
        // Statuses that change with time alone ask to be looked at again then.
        let up_for = clock.now.duration_since(clock.started).as_secs();
        let changes_at = match behaviour {
            Behaviour::FailAfter(after) => Some(next_change(clock, after)),
            // The restart count grows every 10 s.
            Behaviour::CrashLoop => {
                Some(clock.started + Duration::from_secs((up_for / 10 + 1) * 10))
            }
            // ErrImagePull turns ImagePullBackOff after 1 s.
            Behaviour::PullFail if up_for < 1 => Some(clock.started + Duration::from_secs(1)),
            _ => None,
        };
        out.wake = earliest(out.wake, changes_at);
        let cs = container_status(p, ctr, old, &behaviour, out.any_pull_fail, clock);
        if cs["ready"] != true {
            out.all_ready = false;
            out.not_ready.push(name.to_string());
        }
        out.statuses.push(cs);
    }
    out
}

/// When a `failafter` container's status next changes: it becomes ready, fails, or
/// crashes and starts again.
fn next_change(clock: &PodClock, after: std::time::Duration) -> Instant {
    let cyc = images::cycle(clock.started, after, clock.now);
    [
        cyc.started + clock.ready_after,
        cyc.fails_at,
        cyc.crashes_at,
    ]
    .into_iter()
    .filter(|t| *t > clock.now)
    .min()
    .unwrap_or(cyc.crashes_at)
}

/// A `failafter` container: running since its current start, ready between
/// `pod_ready_after` after that start and its failure, restarted after each crash.
fn fail_after_status(
    old: Option<&Value>,
    after: std::time::Duration,
    clock: &PodClock,
) -> (Value, bool, i64, Option<Value>) {
    let cyc = images::cycle(clock.started, after, clock.now);
    let restarts = i64::from(cyc.restarts);
    let same_run = old.is_some_and(|o| o["restartCount"].as_i64() == Some(restarts));
    // Times stay as first written for the run, so a pass changes nothing until it must.
    let kept = |ptr: &str| {
        old.filter(|_| same_run)
            .and_then(|o| o.pointer(ptr).cloned())
    };
    let started_at = kept("/state/running/startedAt").unwrap_or(json!(clock.st_now));
    let ready = clock.now >= cyc.started + clock.ready_after && clock.now < cyc.fails_at;
    let last = (restarts > 0).then(|| {
        kept("/lastState").unwrap_or_else(|| {
            let prev_start = old
                .and_then(|o| o.pointer("/state/running/startedAt").cloned())
                .unwrap_or(json!(clock.st_now));
            json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": prev_start, "finishedAt": clock.st_now}})
        })
    });
    (
        json!({"running": {"startedAt": started_at}}),
        ready,
        restarts,
        last,
    )
}

/// One container's status by the image convention.
fn container_status(
    p: &Value,
    ctr: &Value,
    old: Option<&Value>,
    behaviour: &Behaviour,
    any_pull_fail: bool,
    clock: &PodClock,
) -> Value {
    let uid = uid_of(p);
    let name = ctr["name"].as_str().unwrap_or("");
    let image = ctr["image"].as_str().unwrap_or("");
    let st_now = clock.st_now;
    let started_at = old
        .and_then(|o| o.pointer("/state/running/startedAt").cloned())
        .unwrap_or(json!(st_now));
    let up_for = clock.now.duration_since(clock.started).as_secs();
    let mut last_state = None;
    let (state_v, ready, restarts) = match behaviour {
        Behaviour::CrashLoop => (
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 10s restarting failed container={name} pod={}_{}({uid})", name_of(p), ns_of(p))}}),
            false,
            (up_for / 10 + 1) as i64,
        ),
        Behaviour::PullFail => {
            let reason = if up_for < 1 {
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
        Behaviour::NeverReady => (json!({"running": {"startedAt": started_at}}), false, 0),
        Behaviour::FailAfter(after) => {
            let (state_v, ready, restarts, last) = fail_after_status(old, *after, clock);
            last_state = last;
            (state_v, ready, restarts)
        }
        Behaviour::Normal | Behaviour::Http500 => (
            json!({"running": {"startedAt": started_at}}),
            clock.time_ready,
            0,
        ),
    };
    let mut cs = json!({
        "name": name,
        "image": image,
        "imageID": if any_pull_fail { json!("") } else { json!(format!("{image}@sha256:{:064x}", fnv32a(image.as_bytes()))) },
        "ready": ready,
        "started": state_v.get("running").is_some(),
        "restartCount": restarts,
        "state": state_v,
    });
    if let Some(last) = last_state {
        cs["lastState"] = last;
    } else if restarts > 0 {
        cs["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": st_now, "finishedAt": st_now}});
    }
    if restarts > 0 || !matches!(behaviour, Behaviour::PullFail) {
        cs["containerID"] = json!(format!(
            "containerd://{:064x}",
            fnv32a(format!("{uid}{name}").as_bytes())
        ));
    }
    cs
}

/// The pod's five conditions, keeping each one's lastTransitionTime while its status
/// holds.
fn pod_conditions(p: &Value, containers: &ContainerStatuses, st_now: &str) -> Value {
    let created = &p["metadata"]["creationTimestamp"];
    let scheduled = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": created});
    let initialized = json!({"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": created});
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
    let rs = if containers.all_ready {
        "True"
    } else {
        "False"
    };
    let mut ready_c = json!({"type": "Ready", "status": rs, "lastProbeTime": null, "lastTransitionTime": keep_time("Ready", rs)});
    let mut cready_c = json!({"type": "ContainersReady", "status": rs, "lastProbeTime": null, "lastTransitionTime": keep_time("ContainersReady", rs)});
    if !containers.all_ready {
        let msg = format!(
            "containers with unready status: [{}]",
            containers.not_ready.join(" ")
        );
        for cnd in [&mut ready_c, &mut cready_c] {
            cnd["reason"] = json!("ContainersNotReady");
            cnd["message"] = json!(msg);
        }
    }
    let sandbox = if containers.any_pull_fail {
        "False"
    } else {
        "True"
    };
    let ptsc = json!({"type": "PodReadyToStartContainers", "status": sandbox, "lastProbeTime": null, "lastTransitionTime": keep_time("PodReadyToStartContainers", sandbox)});
    json!([ptsc, initialized, ready_c, cready_c, scheduled])
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
