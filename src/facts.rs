//! One rule per fact: the predicates that the model (what `status` shows), the planner
//! (what a command may do) and `verify` (when a wait is over) must agree on. Each is
//! decided here, once, and unit-tested on inline objects.
//!
//! - [`Rollout`]: whether a Deployment is rolled out at its latest generation;
//! - [`PodOwners`]: which ReplicaSet (so which slot) an endpoint's pod belongs to;
//! - [`pod_cannot_start`]: a pod state that waiting will not fix.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use std::collections::HashMap;

/// The Deployment condition reason the controller sets when a rollout stalls.
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

/// A Deployment's rollout as `kubectl rollout status` judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rollout {
    /// `spec.replicas` (1 when unset, the API default).
    pub desired: i32,
    pub generation: i64,
    pub observed_generation: i64,
    /// `status.replicas`: pods of every ReplicaSet, old ones included.
    pub replicas: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    pub unavailable: i32,
    /// The controller gave up (`ProgressDeadlineExceeded`).
    pub deadline_exceeded: bool,
}

impl Rollout {
    pub fn of(d: &Deployment) -> Rollout {
        let st = d.status.as_ref();
        let get = |f: fn(&k8s_openapi::api::apps::v1::DeploymentStatus) -> Option<i32>| {
            st.and_then(f).unwrap_or(0)
        };
        Rollout {
            desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            generation: d.metadata.generation.unwrap_or(0),
            observed_generation: st.and_then(|s| s.observed_generation).unwrap_or(0),
            replicas: get(|s| s.replicas),
            updated: get(|s| s.updated_replicas),
            ready: get(|s| s.ready_replicas),
            available: get(|s| s.available_replicas),
            unavailable: get(|s| s.unavailable_replicas),
            deadline_exceeded: st.and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED))
            }),
        }
    }

    /// Rolled out at its latest generation: the controller saw the latest spec, every
    /// replica is updated, ready and available, no old pod is left, and it did not give up.
    pub fn is_complete(&self) -> bool {
        self.observed_generation >= self.generation
            && self.updated == self.desired
            && self.replicas == self.desired
            && self.ready == self.desired
            && self.available == self.desired
            && self.unavailable == 0
            && !self.deadline_exceeded
    }
}

/// How the API server names a generated object: the `generateName` base cut to 58
/// characters (63 minus the 5 random ones), then 5 random characters
/// (k8s.io/apiserver/pkg/storage/names).
const GENERATED_BASE_MAX: usize = 58;
const GENERATED_SUFFIX: usize = 5;

/// The prefix every pod of a ReplicaSet carries: its `generateName` (`<rs-name>-`), cut
/// the way the API server cuts it.
pub fn pod_name_prefix(replicaset: &str) -> String {
    let mut base = format!("{replicaset}-");
    if base.len() > GENERATED_BASE_MAX {
        let mut cut = GENERATED_BASE_MAX;
        while !base.is_char_boundary(cut) {
            cut -= 1;
        }
        base.truncate(cut);
    }
    base
}

/// Which ReplicaSet a pod belongs to, from the pod's name alone (an EndpointSlice names
/// its pods but does not carry their labels or owners). Built once from the ReplicaSets
/// that may own the pods.
#[derive(Debug, Default)]
pub struct PodOwners {
    /// Pod name prefix → ReplicaSet name (None when two ReplicaSets share a cut prefix).
    by_prefix: HashMap<String, Option<String>>,
}

impl PodOwners {
    pub fn new<'a>(replicasets: impl IntoIterator<Item = &'a str>) -> PodOwners {
        let mut by_prefix: HashMap<String, Option<String>> = HashMap::new();
        for rs in replicasets {
            by_prefix
                .entry(pod_name_prefix(rs))
                .and_modify(|owner| {
                    if owner.as_deref() != Some(rs) {
                        *owner = None;
                    }
                })
                .or_insert_with(|| Some(rs.to_string()));
        }
        PodOwners { by_prefix }
    }

    pub fn of_replicasets<'a>(replicasets: impl IntoIterator<Item = &'a ReplicaSet>) -> Self {
        PodOwners::new(
            replicasets
                .into_iter()
                .filter_map(|r| r.metadata.name.as_deref()),
        )
    }

    /// The ReplicaSet that created the pod named `pod`, if it is one of ours and unambiguous.
    pub fn owner(&self, pod: &str) -> Option<&str> {
        let cut = pod.len().checked_sub(GENERATED_SUFFIX)?;
        let prefix = pod.get(..cut)?;
        self.by_prefix.get(prefix)?.as_deref()
    }
}

/// The ReplicaSet's controlling Deployment, by owner reference.
pub fn owner_deployment(rs: &ReplicaSet) -> Option<&str> {
    rs.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "Deployment")
        .map(|o| o.name.as_str())
}

/// Container states that will not fix themselves: waiting longer does not help.
const FATAL_WAITING: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// Why a (not terminating) pod cannot become ready, if a container says so.
pub fn pod_cannot_start(p: &Pod) -> Option<String> {
    if p.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let statuses = p.status.as_ref()?;
    for cs in statuses
        .init_container_statuses
        .iter()
        .chain(statuses.container_statuses.iter())
        .flatten()
    {
        if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref())
            && let Some(reason) = w.reason.as_deref().filter(|r| FATAL_WAITING.contains(r))
        {
            return Some(format!(
                "container {} is in {reason}{}",
                cs.name,
                w.message
                    .as_ref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "shop-blue", "generation": 3},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn rolled_out_needs_the_latest_generation_every_replica_and_no_old_pod() {
        let full = json!({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3});
        assert!(Rollout::of(&deployment(full.clone())).is_complete());
        for (field, value) in [
            ("observedGeneration", 2),
            ("replicas", 4),
            ("updatedReplicas", 2),
            ("readyReplicas", 2),
            ("availableReplicas", 2),
            ("unavailableReplicas", 1),
        ] {
            let mut st = full.clone();
            st[field] = json!(value);
            assert!(
                !Rollout::of(&deployment(st)).is_complete(),
                "{field}={value} is not rolled out"
            );
        }
        let mut stalled = full;
        stalled["conditions"] = json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]);
        assert!(
            !Rollout::of(&deployment(stalled)).is_complete(),
            "a rollout the controller gave up on is not complete, whatever the counts"
        );
        assert!(!Rollout::of(&deployment(json!(null))).is_complete());
    }

    #[test]
    fn pods_are_attributed_by_the_api_servers_name_rule() {
        let owners = PodOwners::new(["shop-blue-7d9f8c6b5", "shop-green-5c4b3a2d1"]);
        assert_eq!(
            owners.owner("shop-blue-7d9f8c6b5-x2v4q"),
            Some("shop-blue-7d9f8c6b5")
        );
        assert_eq!(
            owners.owner("shop-green-5c4b3a2d1-abcde"),
            Some("shop-green-5c4b3a2d1")
        );
        assert_eq!(
            owners.owner("shop-blue-1111111-x2v4q"),
            None,
            "another ReplicaSet"
        );
        assert_eq!(
            owners.owner("shop-blue-7d9f8c6b5-x2v4"),
            None,
            "suffix is 5 characters"
        );
        assert_eq!(owners.owner("web"), None);
    }

    #[test]
    fn a_52_character_deployment_name_keeps_its_pods() {
        let deployment = "payments-api-gateway-eu-west-1-canary-blue-long-name";
        assert_eq!(deployment.len(), 52);
        let rs = format!("{deployment}-7d9f8c6b5");
        // What the API server makes of generateName "<rs>-": cut to 58, plus 5 random.
        let pod = format!("{}{}", &format!("{rs}-")[..58], "x2v4q");
        assert_eq!(pod.len(), 63);
        let owners = PodOwners::new([rs.as_str(), "other-7d9f8c6b5"]);
        assert_eq!(owners.owner(&pod), Some(rs.as_str()));
        // The naive rule (drop the last `-segment`) finds no ReplicaSet at all.
        assert_ne!(pod.rsplit_once('-').map(|(p, _)| p), Some(rs.as_str()));
    }

    #[test]
    fn two_replicasets_whose_cut_prefixes_collide_own_nothing() {
        let base = "a".repeat(60);
        let (one, two) = (format!("{base}-111"), format!("{base}-222"));
        let owners = PodOwners::new([one.as_str(), two.as_str()]);
        assert_eq!(owners.owner(&format!("{}abcde", &base[..58])), None);
    }

    #[test]
    fn pods_that_cannot_start_are_named_terminating_ones_are_not() {
        let pod = |deleting: bool, reason: &str| -> Pod {
            let mut p = json!({
                "metadata": {"name": "p"},
                "status": {"containerStatuses": [{"name": "web", "image": "i", "imageID": "", "ready": false, "restartCount": 3,
                  "state": {"waiting": {"reason": reason, "message": "back-off"}}}]}
            });
            if deleting {
                p["metadata"]["deletionTimestamp"] = json!("2026-11-22T00:00:00Z");
            }
            serde_json::from_value(p).unwrap()
        };
        assert_eq!(
            pod_cannot_start(&pod(false, "CrashLoopBackOff")).as_deref(),
            Some("container web is in CrashLoopBackOff (back-off)")
        );
        assert_eq!(pod_cannot_start(&pod(false, "ContainerCreating")), None);
        assert_eq!(pod_cannot_start(&pod(true, "CrashLoopBackOff")), None);
    }
}
