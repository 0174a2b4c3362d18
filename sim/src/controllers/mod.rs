//! The controller loop: runs the in-server controllers (one per file below) in passes
//! until the store is stable, woken by writes (`Cluster::kick`) and by the earliest timer
//! any controller asked for, and runs the opt-in traffic plane after each round.
//!
//! Each controller is a reconcile function over the store that writes through
//! `ops`/`Store` with resourceVersion guards, as upstream controllers do; what a
//! controller remembers between passes (upstream: informer caches, kubelet memory) is its
//! own state struct, gathered in [`ControllerState`]. As upstream's informers and work
//! queues, a pass reads only the store's changes since the last one (`informer`) and
//! syncs only the objects they touch or whose requeue time came (`shared::WorkQueue`),
//! so a pass costs what changed and a rollout's pace does not depend on how much else
//! the store holds.

mod autoscaler;
mod conditions;
mod deployment;
mod disruption;
mod endpoints;
mod events;
mod gc;
mod informer;
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
use shared::{Key, WorkQueue, earliest};
use std::collections::BTreeSet;
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
    informer: informer::Informer,
    /// The pod timings the kubelet last synced with.
    pod_timing: Option<(std::time::Duration, std::time::Duration)>,
    /// Objects the passes looked at (Deployments, ReplicaSets, pods, Services): what a
    /// pass costs, which must follow what changed and not what the store holds.
    visited: usize,
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
        let t0 = std::time::Instant::now();
        next = reconcile_once(c, state);
        if std::env::var_os("PASS_TRACE").is_some() {
            eprintln!(
                "pass {:?} rv {} -> {}",
                t0.elapsed(),
                before,
                c.store.resource_version()
            );
        }
        if c.store.resource_version() == before {
            break;
        }
    }
    next
}

/// One pass of every controller, in dependency order: garbage collector, Deployments,
/// ReplicaSets, the kubelet, endpoints, autoscalers, disruption budgets. Each looks at
/// the keys the informer marked since its last turn and those whose requeue time came;
/// the informer catches up between them, so each sees what the ones before it wrote.
/// Returns the earliest timer any of them set.
pub fn reconcile_once(c: &Cluster, state: &mut ControllerState) -> Option<Instant> {
    let now = Instant::now();
    gc::garbage_collect(c, &mut state.gc);
    let inf = &mut state.informer;
    inf.catch_up(c);
    let keys = take(&mut inf.dirty.deployments, state.deployment_queue.due(now));
    state.visited += keys.len();
    for key in keys {
        let Some(d) = c.store.get_shared("deployments", &key.0, &key.1) else {
            state.deployment_queue.forget(&key);
            continue;
        };
        let inputs = deployment::inputs(&d, &inf.replicasets, &inf.pods);
        state
            .deployment_queue
            .sync(&key, uid_of(&d), inputs, now, || {
                deployment::reconcile(
                    c,
                    &mut state.deployments,
                    &d,
                    now,
                    &inf.replicasets,
                    &inf.pods,
                )
            });
    }
    inf.catch_up(c);
    let keys = take(&mut inf.dirty.replicasets, state.replicaset_queue.due(now));
    state.visited += keys.len();
    for key in keys {
        let Some(rs) = c.store.get_shared("replicasets", &key.0, &key.1) else {
            state.replicaset_queue.forget(&key);
            continue;
        };
        let inputs = replicaset::inputs(&rs, &inf.pods);
        state
            .replicaset_queue
            .sync(&key, uid_of(&rs), inputs, now, || {
                replicaset::reconcile(c, &state.kubelet, &rs, now, &inf.pods)
            });
    }
    inf.catch_up(c);
    let timing = c.timing();
    // The kubelet's syncs read the pod timings: a change of them touches every pod.
    let pod_timing = (timing.pod_ready_after, timing.pod_termination);
    if state.pod_timing.replace(pod_timing) != Some(pod_timing) {
        inf.dirty.pods.extend(c.store.keys("pods"));
    }
    let keys = take(&mut inf.dirty.pods, state.kubelet_queue.due(now));
    state.visited += keys.len();
    for key in keys {
        let Some(p) = c.store.get_shared("pods", &key.0, &key.1) else {
            state.kubelet_queue.forget(&key);
            continue;
        };
        let inputs = kubelet::inputs(&p, &timing);
        state.kubelet_queue.sync(&key, uid_of(&p), inputs, now, || {
            kubelet::reconcile(c, &mut state.kubelet, &p, now)
        });
    }
    inf.catch_up(c);
    let services = std::mem::take(&mut inf.dirty.services);
    let pod_labels = std::mem::take(&mut inf.dirty.pod_labels);
    let (mut next, services) =
        endpoints::reconcile(c, &mut state.endpoints, services, &pod_labels, now);
    state.visited += services;
    for queue in [
        &state.deployment_queue,
        &state.replicaset_queue,
        &state.kubelet_queue,
    ] {
        next = earliest(next, queue.next_wake());
    }
    for hpa in c.store.list("horizontalpodautoscalers", None).0 {
        autoscaler::reconcile(c, &hpa);
    }
    for pdb in c.store.list("poddisruptionbudgets", None).0 {
        disruption::reconcile(c, &pdb);
    }
    next
}

/// A controller's turn: the keys marked dirty (taken) and those due, once each.
fn take(dirty: &mut BTreeSet<Key>, due: Vec<Key>) -> BTreeSet<Key> {
    let mut keys = std::mem::take(dirty);
    keys.extend(due);
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Timing;
    use crate::ops::{self, DeleteOpts, Sub, WriteOpts};
    use crate::resources::{self, ResourceType};
    use crate::store::name_of;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::json;
    use shared::OwnerIndex;

    fn rt(plural: &str) -> &'static ResourceType {
        resources::RESOURCES
            .iter()
            .find(|r| r.plural == plural)
            .unwrap()
    }

    /// A cluster with the `default` namespace.
    fn cluster() -> Cluster {
        let c = Cluster::new(Timing::default());
        let ns = json!({"metadata": {"name": "default"}});
        ops::create(&c, rt("namespaces"), "", ns, &WriteOpts::by("test")).unwrap();
        c
    }

    /// An app: a Deployment and the Service selecting its pods.
    fn add_app(c: &Cluster, name: &str, replicas: u64) {
        let opts = WriteOpts::by("test");
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "img:1", "ports": [{"containerPort": 80}]}]}}}});
        ops::create(c, rt("deployments"), "default", deployment, &opts).unwrap();
        let service = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}});
        ops::create(c, rt("services"), "default", service, &opts).unwrap();
    }

    fn patch(c: &Cluster, plural: &str, name: &str, body: serde_json::Value) {
        let body = body.to_string();
        let opts = WriteOpts::by("test");
        let ct = "application/merge-patch+json";
        let rt = rt(plural);
        ops::patch(
            c,
            rt,
            "default",
            name,
            ct,
            body.as_bytes(),
            Sub::Main,
            &opts,
        )
        .unwrap();
    }

    fn names(c: &Cluster, storage: &str) -> Vec<String> {
        c.store.keys(storage).into_iter().map(|(_, n)| n).collect()
    }

    fn pick(rng: &mut StdRng, names: &[String]) -> Option<String> {
        (!names.is_empty()).then(|| names[rng.random_range(0..names.len())].clone())
    }

    /// Seeded random sequences of user writes, each followed by passes until the store
    /// is stable. After each, what the passes built from the store's changes must equal
    /// a fresh list of it: the owner indexes, the garbage collector's graph, and the
    /// work itself — a relist (every key dirty again) must find nothing left to write.
    /// This fails if a change is folded wrongly or leaves a controller's key unmarked.
    #[test]
    fn passes_fed_by_changes_see_what_a_relist_sees() {
        for seed in 0..12 {
            let c = cluster();
            let mut state = ControllerState::default();
            let mut rng = StdRng::seed_from_u64(seed);
            let mut apps = 0;
            for step in 0..40 {
                let deployments = names(&c, "deployments");
                let action = rng.random_range(0..9);
                let delete = DeleteOpts::default();
                match action {
                    0 | 1 => {
                        add_app(&c, &format!("app-{apps}"), rng.random_range(0..3));
                        apps += 1;
                    }
                    2 | 3 => {
                        if let Some(d) = pick(&mut rng, &deployments) {
                            let image = format!("img:{}", rng.random_range(2..6));
                            let containers = json!([{"name": "c", "image": image}]);
                            let spec = json!({"template": {"spec": {"containers": containers}}});
                            patch(&c, "deployments", &d, json!({"spec": spec}));
                        }
                    }
                    4 => {
                        if let Some(d) = pick(&mut rng, &deployments) {
                            let replicas = rng.random_range(0..4);
                            patch(
                                &c,
                                "deployments",
                                &d,
                                json!({"spec": {"replicas": replicas}}),
                            );
                        }
                    }
                    5 => {
                        if let Some(p) = pick(&mut rng, &names(&c, "pods")) {
                            let _ = ops::delete(&c, rt("pods"), "default", &p, &delete);
                        }
                    }
                    6 => {
                        if let Some(rs) = pick(&mut rng, &names(&c, "replicasets")) {
                            let _ = ops::delete(&c, rt("replicasets"), "default", &rs, &delete);
                        }
                    }
                    7 => {
                        if let Some(d) = pick(&mut rng, &deployments) {
                            let propagation = ["Background", "Foreground"][rng.random_range(0..2)];
                            let opts = DeleteOpts {
                                propagation: Some(propagation.into()),
                                ..DeleteOpts::default()
                            };
                            let _ = ops::delete(&c, rt("deployments"), "default", &d, &opts);
                            let _ = ops::delete(&c, rt("services"), "default", &d, &delete);
                        }
                    }
                    _ => {
                        if let Some(s) = pick(&mut rng, &names(&c, "endpointslices")) {
                            let _ = ops::delete(&c, rt("endpointslices"), "default", &s, &delete);
                        }
                    }
                }
                // Now and then the history is cut: the next look must relist.
                if rng.random_range(0..10) == 0 {
                    c.store.compact();
                }
                reconcile_until_stable(&c, &mut state);
                let at = format!("seed {seed}, step {step} (action {action})");
                let inf = &state.informer;
                let fresh = OwnerIndex::build(&c, "replicasets");
                assert_eq!(
                    inf.replicasets.entries(),
                    fresh.entries(),
                    "{at}: ReplicaSets"
                );
                let fresh = OwnerIndex::build(&c, "pods");
                assert_eq!(inf.pods.entries(), fresh.entries(), "{at}: pods");
                let mut swept = gc::GcState::default();
                swept.sweep(&c);
                assert_eq!(
                    state.gc.graph(),
                    swept.graph(),
                    "{at}: the garbage collector's graph"
                );
                let rv = c.store.resource_version();
                state.informer.forget_position();
                state.gc = swept;
                reconcile_until_stable(&c, &mut state);
                let after = c.store.resource_version();
                assert_eq!(
                    after, rv,
                    "{at}: a relist found writes the passes had missed"
                );
            }
        }
    }

    /// What a pass looks at follows what changed: one image change beside 40 other apps
    /// visits as many objects as the same change alone.
    #[test]
    fn a_pass_looks_at_what_changed_not_at_the_neighbours() {
        let visits = |neighbours: usize| {
            let c = cluster();
            let mut state = ControllerState::default();
            add_app(&c, "shop", 2);
            for i in 0..neighbours {
                add_app(&c, &format!("other-{i}"), 1);
            }
            reconcile_until_stable(&c, &mut state);
            state.visited = 0;
            let containers = json!([{"name": "c", "image": "img:2"}]);
            let spec = json!({"template": {"spec": {"containers": containers}}});
            patch(&c, "deployments", "shop", json!({"spec": spec}));
            reconcile_until_stable(&c, &mut state);
            let pods: Vec<_> = c.store.list("pods", None).0;
            assert!(
                pods.iter()
                    .filter(|p| name_of(p).starts_with("shop-"))
                    .count()
                    >= 2
            );
            state.visited
        };
        let alone = visits(0);
        assert!(alone > 0);
        assert_eq!(visits(40), alone);
    }
}
