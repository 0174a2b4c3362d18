//! The controller loop: runs the in-server controllers (one per file below) in passes
//! until the store is stable, woken by writes (`Cluster::kick`) and by the earliest timer
//! any controller asked for, and runs the opt-in traffic plane after each round.
//!
//! Each controller is a reconcile function over the store that writes through
//! `ops`/`Store` with resourceVersion guards, as upstream controllers do; what a
//! controller remembers between passes (upstream: informer caches, kubelet memory) is its
//! own state struct, gathered in [`ControllerState`]. As upstream's work queues, a pass
//! syncs only the objects whose inputs changed since their last sync or whose requeue
//! time came (`shared::WorkQueue`), so a rollout's pace does not depend on how much else
//! the store holds.

mod autoscaler;
mod conditions;
mod deployment;
mod disruption;
mod endpoints;
mod events;
mod gc;
mod kubelet;
mod replicaset;
mod shared;

pub use deployment::template_hash;

/// The field manager of upstream's controllers (their user agent's first token).
pub const CONTROLLER_MANAGER: &str = "kube-controller-manager";
pub use events::record_event;

use crate::cluster::Cluster;
use crate::store::uid_of;
use crate::traffic::TrafficPlane;
use shared::{OwnerIndex, WorkQueue, earliest};
use std::sync::Arc;
use tokio::time::Instant;

/// What the controllers remember between passes, one part per controller.
#[derive(Default)]
pub struct ControllerState {
    gc: gc::GcState,
    deployments: deployment::DeploymentState,
    deployment_queue: WorkQueue,
    replicaset_queue: WorkQueue,
    kubelet_queue: WorkQueue,
    kubelet: kubelet::KubeletState,
    endpoints: endpoints::EndpointState,
}

/// Runs the controllers until the process ends.
pub async fn run(c: Arc<Cluster>) {
    let mut state = ControllerState::default();
    let mut traffic: Option<TrafficPlane> = None;
    loop {
        if c.controllers_paused() {
            c.kicked.notified().await;
            continue;
        }
        let next = reconcile_until_stable(&c, &mut state);
        if c.traffic_enabled() {
            traffic
                .get_or_insert_with(Default::default)
                .reconcile(&c, &|uid| state.kubelet.started(uid));
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
        // A hold takes effect between passes, not only once the store is stable.
        if c.controllers_paused() {
            break;
        }
        let before = c.store.resource_version();
        next = reconcile_once(c, state);
        if c.store.resource_version() == before {
            break;
        }
    }
    next
}

/// One pass of every controller, in dependency order: garbage collector, Deployments,
/// ReplicaSets, the kubelet, endpoints, autoscalers, disruption budgets. Returns the earliest timer any of them set.
pub fn reconcile_once(c: &Cluster, state: &mut ControllerState) -> Option<Instant> {
    let now = Instant::now();
    gc::garbage_collect(c, &mut state.gc);
    let mut next = None;
    let rs_index = OwnerIndex::build(c, "replicasets");
    let pod_index = OwnerIndex::build(c, "pods");
    for d in c.store.list_shared("deployments") {
        let inputs = deployment::inputs(&d, &rs_index, &pod_index);
        let wake = state.deployment_queue.sync(uid_of(&d), inputs, now, || {
            deployment::reconcile(c, &mut state.deployments, &d, now, &rs_index, &pod_index)
        });
        next = earliest(next, wake);
    }
    state.deployment_queue.end_pass();
    // The Deployment controller may have scaled ReplicaSets: pods are re-indexed.
    let pod_index = OwnerIndex::build(c, "pods");
    for rs in c.store.list_shared("replicasets") {
        let inputs = replicaset::inputs(&rs, &pod_index);
        let wake = state.replicaset_queue.sync(uid_of(&rs), inputs, now, || {
            replicaset::reconcile(c, &state.kubelet, &rs, now, &pod_index)
        });
        next = earliest(next, wake);
    }
    state.replicaset_queue.end_pass();
    let timing = c.timing();
    for p in c.store.list_shared("pods") {
        let inputs = kubelet::inputs(&p, &timing);
        let wake = state.kubelet_queue.sync(uid_of(&p), inputs, now, || {
            kubelet::reconcile(c, &mut state.kubelet, &p, now)
        });
        next = earliest(next, wake);
    }
    state.kubelet_queue.end_pass();
    next = earliest(next, endpoints::reconcile(c, &mut state.endpoints, now));
    for hpa in c.store.list("horizontalpodautoscalers", None).0 {
        autoscaler::reconcile(c, &hpa);
    }
    for pdb in c.store.list("poddisruptionbudgets", None).0 {
        disruption::reconcile(c, &pdb);
    }
    next
}
