//! The ReplicaSet controller: creates pods (generateName `<rs-name>-`) or deletes the
//! least useful ones until the active count matches `spec.replicas`, and writes the
//! ReplicaSet's status (ready, available after minReadySeconds, fully labeled). No state
//! of its own: availability reads when the kubelet saw each pod become Ready.

use super::kubelet::KubeletState;
use super::shared::{OwnerIndex, earliest, inputs_hasher, int, owner_ref, pod_ready, terminating};
use crate::cluster::Cluster;
use crate::ops::{self, DeleteOpts, Sub, WriteOpts};
use crate::resources::find;
use crate::selector::LabelSelector;
use crate::store::{name_of, ns_of, rv_of, uid_of};
use serde_json::{Value, json};
use std::hash::{Hash, Hasher};
use tokio::time::Instant;

/// What a ReplicaSet's sync reads: itself and its pods (by resourceVersion).
pub(super) fn inputs(rs: &Value, pod_index: &OwnerIndex) -> u64 {
    let mut h = inputs_hasher();
    rv_of(rs).hash(&mut h);
    pod_index.hash_owned(uid_of(rs), &mut h);
    h.finish()
}

/// Reconciles one ReplicaSet: its pod count, then its status. Returns when it wants a
/// look again: a pod create failed, or a Ready pod becomes available (minReadySeconds).
pub(super) fn reconcile(
    c: &Cluster,
    kubelet: &KubeletState,
    rs: &Value,
    now: Instant,
    pod_index: &OwnerIndex,
) -> Option<Instant> {
    let uid = uid_of(rs).to_string();
    let pods: Vec<Value> = pod_index.owned(c, "pods", &uid, &[]);
    // Upstream manages replicas only for a ReplicaSet not being deleted.
    let (created, failed) = if rs["metadata"]["deletionTimestamp"].is_null() {
        manage_replicas(c, rs, &pods)
    } else {
        (Vec::new(), false)
    };
    let pods: Vec<Value> = pod_index
        .owned(c, "pods", &uid, &created)
        .into_iter()
        .filter(|p| !terminating(p))
        .collect();
    let (st, available_at) = status(kubelet, rs, &pods, now);
    if rs["status"] != st {
        let mut next = rs.clone();
        next["status"] = st;
        let _ = ops::controller_write(
            c,
            "replicasets",
            rs,
            next,
            super::CONTROLLER_MANAGER,
            Sub::Status,
        );
    }
    let retry = failed.then(|| now + super::shared::RETRY_AFTER);
    earliest(retry, available_at)
}

/// Creates or deletes pods so that the active ones number `spec.replicas`; returns the
/// (namespace, name) of the pods it created, and whether a create failed.
fn manage_replicas(c: &Cluster, rs: &Value, pods: &[Value]) -> (Vec<(String, String)>, bool) {
    let ns = ns_of(rs);
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
    let mut failed = false;
    if diff < 0 {
        for _ in 0..(-diff) {
            let by = WriteOpts::by(super::CONTROLLER_MANAGER);
            match ops::create(c, pod_rt, ns, pod_body(rs), &by) {
                Ok(p) => created.push((ns.to_string(), name_of(&p).to_string())),
                Err(_) => failed = true,
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
    (created, failed)
}

/// A pod from the ReplicaSet's template, named by the API server from `<rs-name>-`.
fn pod_body(rs: &Value) -> Value {
    let t = &rs["spec"]["template"];
    let mut pod = json!({
        "metadata": {"generateName": format!("{}-", name_of(rs)), "namespace": ns_of(rs), "labels": t["metadata"]["labels"], "annotations": t["metadata"]["annotations"], "ownerReferences": owner_ref("apps/v1", "ReplicaSet", rs)},
        "spec": t["spec"],
    });
    if pod["metadata"]["annotations"].is_null() {
        pod["metadata"]
            .as_object_mut()
            .expect("object")
            .remove("annotations");
    }
    pod
}

/// The ReplicaSet's status over its non-terminating pods (zeros omitted), and when the
/// next Ready pod becomes available (minReadySeconds after it turned Ready).
fn status(
    kubelet: &KubeletState,
    rs: &Value,
    pods: &[Value],
    now: Instant,
) -> (Value, Option<Instant>) {
    let min_ready = rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let ready = pods.iter().filter(|p| pod_ready(p)).count() as i64;
    let mut available_at = None;
    let available = pods
        .iter()
        .filter(|p| pod_ready(p))
        .filter(|p| match kubelet.ready_since(uid_of(p)) {
            None => true,
            Some(since) if now.duration_since(since).as_secs() as i64 >= min_ready => true,
            Some(since) => {
                let at = since + std::time::Duration::from_secs(min_ready as u64);
                available_at = earliest(available_at, Some(at));
                false
            }
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
    (st, available_at)
}
